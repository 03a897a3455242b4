"""Run the real `go tool pprof -top` and read its table, to hold our numbers against it.

Also the shared corpus of real profiles (`../shared/pprof-corpus/`, read in place): its
manifest, and the pairs `go tool pprof` diffs.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import json
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CORPUS = Path(os.environ.get("OOMFORENSICS_PPROF_CORPUS", ROOT.parent / "shared" / "pprof-corpus"))
GO = Path("/usr/local/go/bin/go")

# One row of -top: flat flat% sum% cum cum% name. Values carry their unit's suffix (with
# -unit set to the profile's own unit they are whole numbers: "1234B", "5ns", "7").
_ROW_START = re.compile(
    r"^ *(?P<flat>-?\d+)[^\s\d%]*\s+\S+%\s+\S+%\s+(?P<cum>-?\d+)[^\s\d%]*\s+\S+%\s\s", re.M
)
_INLINE = re.compile(r" \((?:inline|partial-inline)\)$")
_TYPE = re.compile(r"^Type: (?P<type>.*)$", re.M)


@dataclass(frozen=True)
class PprofRow:
    name: str
    flat: int
    cum: int


@dataclass(frozen=True)
class PprofTop:
    sample_type: str  # the "Type:" pprof printed: the sample index it used
    rows: tuple[PprofRow, ...]


class PprofRefused(RuntimeError):
    """`go tool pprof` exited non-zero; the message is its stderr."""


def go_binary() -> str:
    if GO.is_file():
        return str(GO)
    go = shutil.which("go")
    if go is None:
        raise RuntimeError("go not found: run `make setup` (installs Debian's golang-go)")
    return go


def pprof_top(
    base: Path,
    new: Path,
    sample_index: str | None = "inuse_space",
    mode: str = "diff_base",
    all_nodes: bool = True,
    unit: str = "B",
) -> list[PprofRow]:
    """Rows of `go tool pprof -top -unit=B -sample_index=X -<mode> BASE NEW`, in pprof's order.

    With all_nodes, pprof's display trimming (nodefraction, nodecount) is switched off so
    every function with a non-zero flat or cum is listed.
    """
    return list(pprof_diff(base, new, sample_index, mode, all_nodes, unit).rows)


_RESULTS: dict[tuple[Any, ...], PprofTop | PprofRefused] = {}
_RESULTS_LOCK = threading.Lock()


def pprof_diff(
    base: Path,
    new: Path,
    sample_index: str | None = None,
    mode: str = "diff_base",
    all_nodes: bool = True,
    unit: str = "",
) -> PprofTop:
    """`go tool pprof -top -<mode> BASE NEW` (sample_index None: pprof's default), cached for
    the session by the files' contents. Raises PprofRefused when pprof refuses the pair."""
    key = (_digest(base), _digest(new), sample_index, mode, all_nodes, unit)
    with _RESULTS_LOCK:
        known = _RESULTS.get(key)
    if known is None:
        known = _run_pprof(base, new, sample_index, mode, all_nodes, unit)
        with _RESULTS_LOCK:
            _RESULTS[key] = known
    if isinstance(known, PprofRefused):
        raise known
    return known


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run_pprof(
    base: Path, new: Path, sample_index: str | None, mode: str, all_nodes: bool, unit: str
) -> PprofTop | PprofRefused:
    trim = ["-nodefraction=0", "-nodecount=1000000"] if all_nodes else []
    command = [
        go_binary(),
        "tool",
        "pprof",
        "-top",
        *([f"-unit={unit}"] if unit else []),
        *([f"-sample_index={sample_index}"] if sample_index is not None else []),
        *trim,
        f"-{mode}",
        str(base),
        str(new),
    ]
    result = subprocess.run(command, capture_output=True, check=False, timeout=300)
    if result.returncode != 0:
        return PprofRefused(_text(result.stderr).strip())
    return parse_pprof_output(_text(result.stdout))


def prefetch(calls: Iterable[tuple[Any, ...]], workers: int = 2) -> None:
    """Fill pprof_diff's cache for these argument tuples, `workers` pprof processes at once."""

    def one(args: tuple[Any, ...]) -> None:
        with contextlib.suppress(PprofRefused):  # kept: the test asks again and sees it
            pprof_diff(*args)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one, calls))


def _text(data: bytes) -> str:
    # pprof prints names byte for byte, invalid UTF-8 included; so do we (surrogateescape).
    return data.decode("utf-8", "surrogateescape")


def parse_top(output: str) -> list[PprofRow]:
    return list(parse_pprof_output(output).rows)


def parse_pprof_output(output: str) -> PprofTop:
    kind = _TYPE.search(output)
    lines = output.splitlines(keepends=True)
    try:
        start = next(i for i, line in enumerate(lines) if line.split()[:2] == ["flat", "flat%"])
    except StopIteration:
        raise RuntimeError(f"no top table in pprof output:\n{output}") from None
    table = "".join(lines[start + 1 :])
    rows = []
    # A name runs to the next row (names may hold newlines: pprof prints them as they are).
    starts = list(_ROW_START.finditer(table))
    if table.strip() and (not starts or starts[0].start() != 0):
        raise RuntimeError(f"unexpected pprof line: {table.splitlines()[0]!r}")
    for match, following in itertools.zip_longest(starts, starts[1:]):
        end = following.start() if following is not None else len(table)
        name = _INLINE.sub("", table[match.end() : end].removesuffix("\n"))
        rows.append(PprofRow(name, int(match["flat"]), int(match["cum"])))
    return PprofTop(kind["type"] if kind else "", tuple(rows))


# --- the shared corpus --------------------------------------------------------------------


@dataclass(frozen=True)
class CorpusFile:
    name: str
    format: str  # "raw protobuf", "gzip protobuf", "legacy text", "legacy binary"
    sample_types: str  # "type/unit type/unit ..."
    default_sample_type: str
    pprof_reads_it: bool
    origin: str  # "go", "c++", "java", ...
    pprof_error: str

    @property
    def path(self) -> Path:
        return CORPUS / self.name

    @property
    def protobuf(self) -> bool:
        return "protobuf" in self.format

    @property
    def go_heap_text(self) -> bool:
        return self.format == "legacy text" and self.origin == "go" and self._heap_header()

    def _heap_header(self) -> bool:
        with self.path.open("rb") as f:
            return f.read(64).lstrip().startswith(b"heap profile:")

    @property
    def unit(self) -> str:
        """The unit of pprof's default sample index (as -unit, so values print whole)."""
        return self.unit_of(self.default_sample_type)

    def unit_of(self, sample_type: str) -> str:
        """The unit of `sample_type` ("" or unknown: of the last type, as pprof defaults)."""
        types = self.sample_types.split()
        wanted = [t for t in types if t.split("/")[0] == sample_type]
        return (wanted or types or ["/"])[-1].split("/", 1)[1]


def pair_unit(base: CorpusFile, new: CorpusFile) -> str:
    """The unit of the sample index pprof uses for -diff_base BASE NEW: the merged profile's
    default sample type is the new profile's, else the base's."""
    return new.unit_of(new.default_sample_type or base.default_sample_type)


@functools.cache
def corpus() -> tuple[CorpusFile, ...]:
    entries = json.loads((CORPUS / "manifest.json").read_text())
    return tuple(
        CorpusFile(
            name=e["file"],
            format=e["format"],
            sample_types=e["sample_types"],
            default_sample_type=e["default_sample_type"],
            pprof_reads_it=e["pprof_reads_it"],
            origin=e["origin"],
            pprof_error=e.get("pprof_error") or "",
        )
        for e in entries
    )


def corpus_available() -> bool:
    return (CORPUS / "manifest.json").is_file()


def protobuf_pairs() -> list[tuple[CorpusFile, CorpusFile]]:
    """Every pair of protobuf profiles pprof reads that have the same sample types (what
    pprof can diff), base first in manifest order."""
    if not corpus_available():
        return []
    readable = [f for f in corpus() if f.protobuf and f.pprof_reads_it]
    return [
        (a, b) for a, b in itertools.combinations(readable, 2) if a.sample_types == b.sample_types
    ]


def pair_id(pair: Sequence[CorpusFile]) -> str:
    return "-vs-".join(f.name for f in pair)


_RAW_SAMPLE = re.compile(r"^\s*(-?\d+(?:\s+-?\d+)*):((?: \d+)*) ?$")


def pprof_raw_samples(path: Path) -> list[tuple[tuple[int, ...], int]]:
    """Each sample of `go tool pprof -raw PATH`: its values and how many locations it has."""
    result = subprocess.run(
        [go_binary(), "tool", "pprof", "-raw", str(path)],
        capture_output=True,
        check=False,
        timeout=300,
    )
    if result.returncode != 0:
        raise PprofRefused(_text(result.stderr).strip())
    samples = []
    for line in _text(result.stdout).splitlines():
        match = _RAW_SAMPLE.match(line)
        if match:
            values = tuple(int(v) for v in match.group(1).split())
            samples.append((values, len(match.group(2).split())))
    return samples
