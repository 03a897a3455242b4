"""Live progress of local mode: one line per sample, one per capture."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import TextIO

from oomforensics.analysis.units import format_bytes
from oomforensics.local.watcher import Capture, Reporter
from oomforensics.triggers.model import Decision, MemorySample


class LineReporter(Reporter):
    def __init__(self, out: TextIO = sys.stderr) -> None:
        self.out = out

    def _say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def sample(self, sample: MemorySample, decision: Decision, limit: int | None) -> None:
        parts = [_clock(sample.at), f"working set {format_bytes(sample.working_set):>9}"]
        if limit is not None and decision.percent_of_limit is not None:
            parts.append(f"{decision.percent_of_limit:5.1f}% of {format_bytes(limit)}")
        if decision.growth_per_second is not None:
            parts.append(
                f"{'+' if decision.growth_per_second >= 0 else ''}"
                f"{format_bytes(int(decision.growth_per_second))}/s"
            )
        if decision.seconds_to_limit is not None:
            parts.append(f"limit in ~{decision.seconds_to_limit:.0f}s")
        self._say("  ".join(parts))

    def captured(self, capture: Capture, reason: str) -> None:
        where = f" at {capture.percent_of_limit:.1f}% of limit" if capture.percent_of_limit else ""
        self._say(
            f"{_clock(capture.key.captured_at.timestamp())}  captured {reason}{where} -> "
            f"{capture.path}"
        )

    def failed(self, message: str) -> None:
        self._say(f"  capture failed: {message}")


def _clock(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%H:%M:%S")
