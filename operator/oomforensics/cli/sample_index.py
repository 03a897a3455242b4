"""Which sample index a diff used, and why (pprof's default, or as the user asked)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SampleIndexChoice:
    """The sample index a diff used and why: "requested", "default_sample_type" (the
    profile names it) or "last" (pprof's default when the profile names none)."""

    name: str
    source: str

    def describe(self) -> str:
        why = {
            "requested": "as requested",
            "default_sample_type": "pprof's default: the profile's default sample type",
            "last": "pprof's default: the last sample type, the profile names no default",
        }[self.source]
        return f"sample index: {self.name} ({why})"
