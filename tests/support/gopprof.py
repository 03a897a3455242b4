"""Run the real `go tool pprof -top` and read its table, to hold our numbers against it."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

_ROW = re.compile(
    r"^\s*(?P<flat>-?\d+)B?\s+\S+%\s+\S+%\s+(?P<cum>-?\d+)B?\s+\S+%\s+(?P<name>.+?)"
    r"(?: \((?:inline|partial-inline)\))?$"
)


@dataclass(frozen=True)
class PprofRow:
    name: str
    flat: int
    cum: int


def go_binary() -> str:
    go = shutil.which("go")
    if go is None:
        raise RuntimeError("go not found: run `make setup` (installs Debian's golang-go)")
    return go


def pprof_top(
    base: Path,
    new: Path,
    sample_index: str = "inuse_space",
    mode: str = "diff_base",
    all_nodes: bool = True,
) -> list[PprofRow]:
    """Rows of `go tool pprof -top -unit=B -sample_index=X -<mode> BASE NEW`, in pprof's order.

    With all_nodes, pprof's display trimming (nodefraction, nodecount) is switched off so
    every function with a non-zero flat or cum is listed.
    """
    trim = ["-nodefraction=0", "-nodecount=1000000"] if all_nodes else []
    command = [
        go_binary(),
        "tool",
        "pprof",
        "-top",
        "-unit=B",
        f"-sample_index={sample_index}",
        *trim,
        f"-{mode}",
        str(base),
        str(new),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"go tool pprof failed: {result.stderr.strip()}")
    return parse_top(result.stdout)


def parse_top(output: str) -> list[PprofRow]:
    lines = output.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.split()[:2] == ["flat", "flat%"])
    except StopIteration:
        raise RuntimeError(f"no top table in pprof output:\n{output}") from None
    rows = []
    for line in lines[start + 1 :]:
        match = _ROW.match(line)
        if match is None:
            raise RuntimeError(f"unexpected pprof line: {line!r}")
        rows.append(PprofRow(match["name"], int(match["flat"]), int(match["cum"])))
    return rows
