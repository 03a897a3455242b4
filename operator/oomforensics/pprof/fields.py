"""A profile's top level as the decoders read it: `ProfileFields`.

upb's `profile_pb2.ProfileView` has these fields; so does `ProfileParts`, which the C kernels
split out of the bytes without protobuf (kernels.split_profile), sparing its import (20 ms)
and upb's parse. Only what the decoders read is here; the careful decoder, which reads every
field as upb gives it, takes the ProfileView itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol


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


@dataclass(frozen=True, slots=True)
class ProfileParts:
    """`ProfileFields` split out of a profile's bytes by the C kernels."""

    sample_type: list[ValueTypeParts]
    sample: list[bytes]
    mapping: list[MappingParts]
    location: list[bytes]
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
