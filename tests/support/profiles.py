"""Build pprof profiles by hand, for tests that need exact control of stacks and frames."""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from oomforensics.pprof import profile_pb2

HEAP_TYPES = (
    ("alloc_objects", "count"),
    ("alloc_space", "bytes"),
    ("inuse_objects", "count"),
    ("inuse_space", "bytes"),
)

Frame = Sequence[str]
"""One location: function names, innermost (inlined) first. An empty name is unnamed."""


@dataclass
class ProfileBuilder:
    sample_types: Sequence[tuple[str, str]] = HEAP_TYPES
    mapping_file: str = "/app/server"
    drop_frames: str = ""
    keep_frames: str = ""
    _strings: dict[str, int] = field(default_factory=lambda: {"": 0})
    _functions: dict[str, int] = field(default_factory=dict)
    _locations: dict[tuple[str, ...], int] = field(default_factory=dict)
    _message: profile_pb2.Profile = field(default_factory=profile_pb2.Profile)

    def __post_init__(self) -> None:
        m = self._message
        for kind, unit in self.sample_types:
            m.sample_type.add(type=self._s(kind), unit=self._s(unit))
        m.default_sample_type = self._s(self.sample_types[-1][0])
        m.mapping.add(
            id=1,
            memory_start=0x400000,
            memory_limit=0x800000,
            filename=self._s(self.mapping_file),
            has_functions=True,
        )
        m.drop_frames = self._s(self.drop_frames)
        m.keep_frames = self._s(self.keep_frames)
        m.period_type.type = self._s("space")
        m.period_type.unit = self._s("bytes")
        m.period = 524288
        m.time_nanos = 1_700_000_000_000_000_000

    def _s(self, text: str) -> int:
        if text not in self._strings:
            self._strings[text] = len(self._strings)
        return self._strings[text]

    def _function(self, name: str) -> int:
        if name not in self._functions:
            fid = len(self._functions) + 1
            self._functions[name] = fid
            self._message.function.add(
                id=fid,
                name=self._s(name),
                system_name=self._s(name),
                filename=self._s("/src/" + name.split(".")[0] + ".go"),
            )
        return self._functions[name]

    def _location(self, frame: Frame) -> int:
        key = tuple(frame)
        if key not in self._locations:
            lid = len(self._locations) + 1
            self._locations[key] = lid
            loc = self._message.location.add(id=lid, mapping_id=1, address=0x401000 + 16 * lid)
            for line_no, name in enumerate(frame):
                if name:
                    loc.line.add(function_id=self._function(name), line=10 + line_no)
        return self._locations[key]

    def sample(self, stack: Sequence[Frame], *values: int, size_label: int = 0) -> ProfileBuilder:
        """Add a sample; `stack` is leaf first, as in the profile format."""
        s = self._message.sample.add()
        s.location_id.extend(self._location(frame) for frame in stack)
        s.value.extend(values)
        if size_label:
            s.label.add(key=self._s("bytes"), num=size_label)
        return self

    def serialize(self, compress: bool = True) -> bytes:
        del self._message.string_table[:]
        self._message.string_table.extend(sorted(self._strings, key=self._strings.__getitem__))
        raw = self._message.SerializeToString()
        return gzip.compress(raw) if compress else raw


def heap_profile(path: Path, leak: int) -> Path:
    """A small gzipped heap profile at `path`: main.leak holding 4096 + `leak` bytes."""
    builder = ProfileBuilder()
    builder.sample([["main.leak"], ["main.main"]], 1, 4096 + leak, 1, 4096 + leak)
    path.write_bytes(builder.serialize())
    return path
