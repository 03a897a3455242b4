"""Entry point: `oomforensics <command>`. Errors a user can act on are one line, exit 1."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from oomforensics import __version__
from oomforensics.archive.store import ArchiveError
from oomforensics.cli import demo, diff, fetch, listing, report, run, watch
from oomforensics.cli.errors import UsageError
from oomforensics.local.cgroup import CgroupError
from oomforensics.local.launch import LaunchError
from oomforensics.pprof.errors import ProfileError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="oomforensics", description="Out-of-memory forensics for Go services."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    diff.add_parser(commands)
    watch.add_parser(commands)
    demo.add_parser(commands)
    report.add_parser(commands)
    run.add_parser(commands)
    listing.add_parser(commands)
    fetch.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except (ProfileError, UsageError, ArchiveError, CgroupError, LaunchError, OSError) as exc:
        print(f"oomforensics: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("oomforensics: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
