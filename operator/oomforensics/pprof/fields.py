"""A profile's top level as the decoders read it: `ProfileFields`.

upb's `profile_pb2.ProfileView` has these fields; so does `ProfileParts`, which the C kernels
split out of the bytes without protobuf (kernels.split_profile), sparing its import (20 ms)
and upb's parse. Only what the decoders read is here; the careful decoder, which reads every
field as upb gives it, takes the ProfileView itself.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol, overload


class ValueTypeFields(Protocol):
    @property
    def type(self) -> int: ...
    @property
    def unit(self) -> int: ...


class MappingFields(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def filename(self) -> int: ...


class FunctionFields(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def name(self) -> int: ...
    @property
    def system_name(self) -> int: ...


class ProfileFields(Protocol):
    """The fields of a Profile message the decoders read (samples and locations encoded)."""

    @property
    def sample_type(self) -> Sequence[ValueTypeFields]: ...
    @property
    def sample(self) -> Sequence[bytes]: ...
    @property
    def mapping(self) -> Sequence[MappingFields]: ...
    @property
    def location(self) -> Sequence[bytes]: ...
    @property
    def function(self) -> Sequence[FunctionFields]: ...
    @property
    def string_table(self) -> Sequence[bytes]: ...
    @property
    def drop_frames(self) -> int: ...
    @property
    def keep_frames(self) -> int: ...
    @property
    def time_nanos(self) -> int: ...
    @property
    def duration_nanos(self) -> int: ...
    @property
    def period_type(self) -> ValueTypeFields: ...
    @property
    def period(self) -> int: ...
    @property
    def comment(self) -> Sequence[int]: ...
    @property
    def default_sample_type(self) -> int: ...
    def HasField(self, field_name: str) -> bool: ...  # protobuf's name


class ValueTypeParts(NamedTuple):
    type: int
    unit: int


class MappingParts(NamedTuple):
    id: int
    filename: int


class FunctionParts(NamedTuple):
    id: int
    name: int
    system_name: int


_NO_PERIOD_TYPE = ValueTypeParts(0, 0)


class Messages(Sequence[bytes]):
    """Encoded messages as spans of one buffer: the kernels read them in place, and a message
    becomes bytes only when asked for. (100,000 samples as bytes objects took 15 ms to make
    and 4 ms to free, and 15 MB.)"""

    __slots__ = ("_spans", "bounds", "data")

    def __init__(self, data: bytes, bounds: bytearray) -> None:
        self.data = data
        self.bounds = bounds  # (start, stop) of each message in data, as intp pairs
        # "n" is Py_ssize_t, the kernels' intp (typeshed's overloads leave it out).
        self._spans: memoryview[int] = memoryview(bounds).cast("n")  # type: ignore[call-overload]

    def __len__(self) -> int:
        return len(self._spans) // 2

    @overload
    def __getitem__(self, index: int) -> bytes: ...
    @overload
    def __getitem__(self, index: slice) -> list[bytes]: ...
    def __getitem__(self, index: int | slice) -> bytes | list[bytes]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        count = len(self)
        if not -count <= index < count:
            raise IndexError("message index out of range")
        at = 2 * (index % count)
        return self.data[self._spans[at] : self._spans[at + 1]]

    def __iter__(self) -> Iterator[bytes]:
        data, spans = self.data, self._spans
        for at in range(0, len(spans), 2):
            yield data[spans[at] : spans[at + 1]]


@dataclass(frozen=True, slots=True)
class ProfileParts:
    """`ProfileFields` split out of a profile's bytes by the C kernels."""

    sample_type: list[ValueTypeParts]
    sample: Messages
    mapping: list[MappingParts]
    location: Messages
    function: list[FunctionParts]
    string_table: list[bytes]
    drop_frames: int
    keep_frames: int
    time_nanos: int
    duration_nanos: int
    period: int
    default_sample_type: int
    given_period_type: ValueTypeParts | None
    comment: list[int]

    @property
    def period_type(self) -> ValueTypeParts:
        return self.given_period_type or _NO_PERIOD_TYPE

    def HasField(self, field_name: str) -> bool:  # protobuf's name
        if field_name != "period_type":
            raise ValueError(f"{field_name} is not a message field of ProfileParts")
        return self.given_period_type is not None
