"""`oomforensics diff BASE NEW`: what grew between two snapshots, with pprof's exact numbers."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from oomforensics.analysis.comparison import compare, comparison_json
from oomforensics.cli.files import load_snapshot
from oomforensics.cli.render import render_comparison
from oomforensics.pprof.diff import BaseMode

HUMAN_TOP_DEFAULT = 20


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "diff",
        help="compare two heap snapshots (numbers equal to go tool pprof -diff_base)",
        description=(
            "Compare two snapshots. BASE and NEW are each a heap profile (.pb.gz) or a snapshot "
            "directory holding heap.pb.gz and optionally heap.txt, goroutine.txt, manifest.json."
        ),
    )
    parser.add_argument("base", type=Path, metavar="BASE")
    parser.add_argument("new", type=Path, metavar="NEW")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--sample-index",
        default="inuse_space",
        metavar="X",
        help="inuse_space (default), inuse_objects, alloc_space, alloc_objects, or a number",
    )
    parser.add_argument(
        "--base-mode",
        choices=[m.value for m in BaseMode],
        default=BaseMode.DIFF_BASE.value,
        help="pprof semantics: -diff_base (default) or -base",
    )
    parser.add_argument(
        "--top",
        type=_positive,
        metavar="N",
        help=f"show N functions (JSON: all by default; text: {HUMAN_TOP_DEFAULT})",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    base = load_snapshot(args.base)
    new = load_snapshot(args.new)
    comparison = compare(base, new, args.sample_index, BaseMode(args.base_mode))
    if args.json:
        json.dump(comparison_json(comparison, args.top), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(render_comparison(comparison, args.top or HUMAN_TOP_DEFAULT))
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value
