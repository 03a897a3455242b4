"""What both decoders of profile.proto read the same way: the string table, sample types,
ids of mappings and functions, and the profile's metadata."""

from __future__ import annotations

from collections.abc import Sequence

from oomforensics.pprof.errors import InvalidProfile
from oomforensics.pprof.fields import FunctionFields, ProfileFields
from oomforensics.pprof.model import Profile, Samples, SampleType
from oomforensics.pprof.names import pprof_name, pprof_names


def describe(data: bytes) -> str:
    head = data[:64].lstrip().lower()
    if head.startswith((b"<!doctype", b"<html")):
        return "got an HTML page"
    if head[:1].isascii() and head[:1].isalpha():
        return "got text starting with " + repr(data[:32].decode("utf-8", "replace"))
    return "protobuf decoding failed"


class Header:
    """What both decoders read the same way: strings, sample types, mappings, metadata."""

    def __init__(self, msg: ProfileFields, original: bytes) -> None:
        # The string table is read as bytes: Go's decoder (pprof's) does not check UTF-8, and
        # upb would refuse the whole profile for one bad name. Invalid bytes become lone
        # surrogates, which print back as the same bytes (surrogateescape), as pprof prints.
        raw = msg.string_table
        if not raw or raw[0] != b"":
            raise InvalidProfile(f"not a pprof profile ({describe(original)}: bad string table)")
        self.strings: Sequence[str] = [b.decode("utf-8", "surrogateescape") for b in raw]
        self._full_names: dict[str, str] = {}
        self.sample_types = tuple(
            SampleType(self.text(vt.type, "sample_type"), self.text(vt.unit, "sample_type"))
            for vt in msg.sample_type
        )
        if not self.sample_types:
            raise InvalidProfile(f"not a pprof profile ({describe(original)}: no sample types)")

        # pprof's CheckValid: ids are non-zero and distinct.
        for what, ids in (
            ("mapping", [m.id for m in msg.mapping]),
            ("function", [fn.id for fn in msg.function]),
        ):
            check_ids(what, ids)

    def text(self, index: int, what: str) -> str:
        if not 0 <= index < len(self.strings):
            raise InvalidProfile(f"{what} refers to string {index}, beyond the string table")
        return self.strings[index]

    def function_names(self, functions: Sequence[FunctionFields]) -> list[str]:
        """`function_name` of each function, at once (the same names, the same errors)."""
        strings = self.strings
        count = len(strings)
        try:
            names = [strings[fn.name] if fn.name >= 0 else strings[count] for fn in functions]
            systems = [
                strings[fn.system_name] if fn.system_name >= 0 else strings[count]
                for fn in functions
            ]
        except IndexError:
            for fn in functions:  # the first one beyond the table, as function_name finds it
                self.text(fn.name, "function")
                self.text(fn.system_name, "function")
            raise
        shown, changed = pprof_names(names, systems)
        for i in changed:
            if shown[i]:
                self._full_names.setdefault(shown[i], systems[i])
        return shown

    def function_name(self, fn: FunctionFields) -> str:
        """The function's name as pprof prints it (see `names`); "" when it has none."""
        name = self.text(fn.name, "function")
        system_name = self.text(fn.system_name, "function")
        shown = pprof_name(name, system_name)
        if shown and shown != name:
            self._full_names.setdefault(shown, system_name)
        return shown

    def profile(self, msg: ProfileFields, samples: Samples) -> Profile:
        text = self.text
        period_type = (
            SampleType(
                text(msg.period_type.type, "period_type"),
                text(msg.period_type.unit, "period_type"),
            )
            if msg.HasField("period_type")
            else None
        )
        return Profile(
            sample_types=self.sample_types,
            samples=samples,
            default_sample_type=text(msg.default_sample_type, "default_sample_type"),
            time_nanos=msg.time_nanos,
            duration_nanos=msg.duration_nanos,
            period=msg.period,
            period_type=period_type,
            comments=tuple(text(c, "comment") for c in msg.comment),
            full_names=self._full_names,
        )


def check_ids(what: str, ids: Sequence[int]) -> None:
    if 0 in ids:
        raise InvalidProfile(f"malformed profile: found {what} with reserved ID=0")
    if len(set(ids)) != len(ids):
        raise InvalidProfile(f"malformed profile: multiple {what}s with the same id")
