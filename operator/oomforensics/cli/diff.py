"""`oomforensics diff BASE NEW`: what grew between two snapshots, with pprof's exact numbers."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from oomforensics.analysis.comparison import compare_series, comparison_json
from oomforensics.cli.errors import UsageError
from oomforensics.cli.files import load_snapshot
from oomforensics.cli.render import render_comparison
from oomforensics.pprof.diff import BaseMode

HUMAN_TOP_DEFAULT = 20


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "diff",
        help="compare two profiles or snapshots (numbers equal to go tool pprof -diff_base)",
        description=(
            "Compare snapshots. Each is a heap profile (.pb.gz) or a snapshot directory holding "
            "heap.pb.gz and optionally heap.txt, goroutine.txt, manifest.json. The first is the "
            "base and the last the new one; with three or more, per-function trends (growth "
            "per hour and steadiness) rank the suspects."
        ),
    )
    parser.add_argument("base", type=Path, metavar="BASE")
    parser.add_argument("new", type=Path, nargs="+", metavar="NEW")
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
    snapshots = [load_snapshot(path) for path in [args.base, *args.new]]
    try:
        comparison = compare_series(snapshots, args.sample_index, BaseMode(args.base_mode))
    except ValueError as exc:  # trends need distinct capture times
        raise UsageError(str(exc)) from None
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
