"""Entry point: `oomforensics <command>`. Errors a user can act on are one line, exit 1.

Commands are imported only when chosen: `diff` needs numpy and the profile decoder, `fetch`
needs kopf and the kubernetes client (1.25 s to import), `watch` needs httpx. Importing every
command for every run made `--version` take 2.2 s; now a command costs only what it uses.
"""

from __future__ import annotations

import gc
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING

from oomforensics import __version__
from oomforensics.errors import OomForensicsError

if TYPE_CHECKING:  # imported by build_parser: a diff starts reading its files before (10 ms)
    import argparse

# name -> (module, one-line help). The help lines are repeated here (not read from the
# modules) so that `oomforensics --help` imports no command; a test keeps them in step.
COMMANDS: dict[str, tuple[str, str]] = {
    "diff": (
        "oomforensics.cli.diff",
        "compare two profiles or snapshots (numbers equal to go tool pprof -diff_base)",
    ),
    "watch": (
        "oomforensics.cli.watch",
        "watch one local Go process, snapshot it before the limit, explain an OOM kill",
    ),
    "demo": (
        "oomforensics.cli.demo",
        "run a leaking Go service into a real OOM kill and explain it",
    ),
    "report": (
        "oomforensics.cli.report",
        "write one self-contained HTML report: timeline, accounting, suspects, flame graph",
    ),
    "run": (
        "oomforensics.cli.run",
        "run the Kubernetes operator (MemoryInvestigation custom resources)",
    ),
    "list": (
        "oomforensics.cli.listing",
        "list investigations, or one investigation's snapshots by container run",
    ),
    "fetch": (
        "oomforensics.cli.fetch",
        "download an investigation's snapshots, verified, into a local folder",
    ),
}


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; given the command line, only the chosen command's module is imported
    (the others are listed by name and help line). Without it, every command is built."""
    from oomforensics.cli.parsing import Parser

    parser = Parser(prog="oomforensics", description="Out-of-memory forensics for Go services.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    # The commands' parsers are Parsers, which the commands take as the ArgumentParsers
    # they are (typeshed's action is invariant in its parser class).
    commands: argparse._SubParsersAction[argparse.ArgumentParser] = parser.add_subparsers(  # type: ignore[assignment]
        dest="command", required=True, metavar="COMMAND"
    )
    chosen = _chosen_command(argv) if argv is not None else None
    for name, (module, help_line) in COMMANDS.items():
        if argv is None or name == chosen:
            _command_module(module).add_parser(commands)
        else:
            commands.add_parser(name, help=help_line)
    return parser


def _chosen_command(argv: Sequence[str]) -> str | None:
    # The top-level parser has only flags (--help, --version): the first word is the command.
    for word in argv:
        if not word.startswith("-"):
            return word
    return None


class _Command(ModuleType):
    add_parser: Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]


def _command_module(name: str) -> _Command:
    module: _Command = importlib.import_module(name)  # type: ignore[assignment]
    return module


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(words).parse_args(words)
    try:
        code: int = args.run(args)
        sys.stdout.flush()  # a closed pipe shows here, while it can still be handled
    except BrokenPipeError:
        return _reader_went_away()
    except KeyboardInterrupt:
        print("oomforensics: interrupted", file=sys.stderr)
        return 130
    except (OomForensicsError, OSError) as exc:  # every error meant for a person: one line
        print(f"oomforensics: error: {exc}", file=sys.stderr)
        return 1
    return code


# Commands whose process ends without the interpreter's teardown once their output is out:
# freeing a 100,000-sample diff's objects one by one took 50 ms of a 0.85 s `diff`, and
# nothing of theirs needs an exit handler.
_NO_TEARDOWN = frozenset({"diff"})


def entry() -> None:
    """The console script: `main`, then exit (after `diff`, at once)."""
    words = sys.argv[1:]
    command = _chosen_command(words)
    if command == "diff":
        # A diff's objects live until it ends (os._exit, below), and they hold few cycles:
        # the cyclic collector would only walk its hundreds of thousands of objects over and
        # over as they are made (60 ms of a 100,000-sample diff, measured A/B).
        gc.disable()
        # Its profiles are inflated on another core while main() imports.
        from oomforensics.cli import prefetch

        prefetch.start(words[words.index(command) + 1 :])
    code = main(words)
    if command not in _NO_TEARDOWN:
        sys.exit(code)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        code = _reader_went_away()
    os._exit(code)


def _reader_went_away() -> int:
    """`oomforensics diff ... | head`: the reader has what it wanted; stop quietly, exit 0.

    Python would report the unflushed output at exit ("Exception ignored ... BrokenPipeError")
    and exit 120; pointing stdout at /dev/null first leaves it nothing to flush (the way the
    Python documentation recommends for SIGPIPE).
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 0


if __name__ == "__main__":
    sys.exit(main())
