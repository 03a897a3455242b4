"""Parse `/debug/pprof/heap?debug=1`: totals, records and the `# runtime.MemStats` block.

The MemStats block is read generically (`# Key = value`), so fields added by newer Go
releases (MaxRSS since Go 1.15, anything later) come through without code changes.
`# Stack = a / b` pairs become `StackInuse` and `StackSys`, as runtime.MemStats names them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from oomforensics.pprof.errors import InvalidProfile, ProfileTooLarge
from oomforensics.pprof.textformat import (
    DEFAULT_MAX_TEXT,
    decode_text,
    first_line,
    frame_function,
    snippet,
)

MemStatValue = int | float | bool | str | tuple[int, ...]

_HEADER = re.compile(r"^heap profile: (\d+): (\d+) \[(\d+): (\d+)\] @ heap/(\d+)\s*$")
_RECORD = re.compile(r"^(\d+): (\d+) \[(\d+): (\d+)\] @((?: 0x[0-9a-fA-F]+)*)\s*$")
_STAT = re.compile(r"^# ([A-Za-z][A-Za-z0-9_]*) = (.*)$")
_PAIR = re.compile(r"^(-?\d+) / (-?\d+)$")
_MEMSTATS = b"\n# runtime.MemStats"
_WHAT = "heap profile in debug=1 text form"


@dataclass(frozen=True, slots=True)
class HeapRecord:
    """One stack of the text profile; counts are as sampled (pprof scales them, this does not)."""

    inuse_objects: int
    inuse_bytes: int
    alloc_objects: int
    alloc_bytes: int
    functions: tuple[str, ...]  # leaf first; empty when the endpoint printed no symbols
    addresses: int = 0  # how many program counters the record's stack has


@dataclass(frozen=True, slots=True)
class MemStats:
    """The `# runtime.MemStats` block (plus `# MaxRSS`), keyed by runtime.MemStats field names."""

    values: Mapping[str, MemStatValue] = field(default_factory=dict)

    def integer(self, key: str) -> int | None:
        value = self.values.get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            return None
        return value

    def integers(self) -> dict[str, int]:
        """The integer-valued fields: the memory figures (arrays, flags and ratios left out)."""
        return {
            k: v for k, v in self.values.items() if isinstance(v, int) and not isinstance(v, bool)
        }


@dataclass(frozen=True, slots=True)
class HeapText:
    inuse_objects: int
    inuse_bytes: int
    alloc_objects: int
    alloc_bytes: int
    # "@ heap/N": N is twice runtime.MemProfileRate.
    sampling_period: int
    records: tuple[HeapRecord, ...]
    memstats: MemStats


def check_heap_text(data: bytes, max_bytes: int = DEFAULT_MAX_TEXT) -> None:
    """Raise what `parse_heap_text` would raise, without reading the records.

    The parser accepts whatever follows a valid header, so the header decides: this is how
    a capture validates the body it received, at a fraction of the cost.
    """
    _header(decode_text(data, _WHAT, max_bytes))


def parse_heap_text(data: bytes, max_bytes: int = DEFAULT_MAX_TEXT) -> HeapText:
    lines = decode_text(data, _WHAT, max_bytes)
    start, header = _header(lines)
    records: list[HeapRecord] = []
    stats: dict[str, MemStatValue] = {}
    current: tuple[int, int, int, int] | None = None
    functions: list[str] = []
    addresses = 0

    def close_record() -> None:
        if current is not None:
            records.append(HeapRecord(*current, functions=tuple(functions), addresses=addresses))

    for line in lines[start + 1 :]:
        record = _RECORD.match(line)
        if record:
            close_record()
            current = _counts(record)
            functions = []
            addresses = record.group(5).count("0x")
            continue
        stat = _STAT.match(line)
        if stat:
            close_record()
            current = None
            _add_stat(stats, stat.group(1), stat.group(2).strip())
            continue
        function = frame_function(line)
        if function is not None and current is not None:
            functions.append(function)
    close_record()
    return HeapText(
        *_counts(header),
        sampling_period=int(header.group(5)),
        records=tuple(records),
        memstats=MemStats(stats),
    )


def _header(lines: list[str]) -> tuple[int, re.Match[str]]:
    start, head = first_line(lines)
    header = _HEADER.match(head)
    if header is None:
        raise InvalidProfile(
            "not a heap profile in debug=1 text form: expected 'heap profile: ...', got "
            + snippet(head)
        )
    return start, header


def parse_memstats(data: bytes, max_bytes: int = DEFAULT_MAX_TEXT) -> MemStats:
    """Only the `# runtime.MemStats` block (and what follows it, such as `# MaxRSS`).

    What `parse_heap_text(data).memstats` gives, without reading the records: for an
    already validated profile whose figures are wanted (the operator's manifest, every capture).
    """
    if len(data) > max_bytes:
        raise ProfileTooLarge(
            f"heap profile in debug=1 text form exceeds the {max_bytes} byte limit"
        )
    start = data.rfind(_MEMSTATS)
    if start < 0:
        return MemStats({})
    stats: dict[str, MemStatValue] = {}
    for line in data[start:].decode("utf-8", "replace").splitlines():
        stat = _STAT.match(line)
        if stat:
            _add_stat(stats, stat.group(1), stat.group(2).strip())
    return MemStats(stats)


def _counts(match: re.Match[str]) -> tuple[int, int, int, int]:
    """inuse objects, inuse bytes, alloc objects, alloc bytes of a header or record line."""
    return (int(match.group(1)), int(match.group(2)), int(match.group(3)), int(match.group(4)))


def _add_stat(stats: dict[str, MemStatValue], key: str, raw: str) -> None:
    pair = _PAIR.match(raw)
    if pair:
        stats[key + "Inuse"] = int(pair.group(1))
        stats[key + "Sys"] = int(pair.group(2))
        return
    stats[key] = _value(raw)


def _value(raw: str) -> MemStatValue:
    if raw in ("true", "false"):
        return raw == "true"
    if raw.startswith("[") and raw.endswith("]"):
        try:
            return tuple(int(x) for x in raw[1:-1].split())
        except ValueError:
            return raw
    try:
        return int(raw)
    except ValueError:
        pass
    try:
        return float(raw)
    except ValueError:
        return raw
