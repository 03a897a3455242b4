"""Writing an investigation's status: the whole of it, built from one pass's observation,
patched only when it changed.

A status whose only news is the targets' memory readings (new with every metrics scrape) is
written at most every READINGS_REFRESH seconds; anything else is written at once. At 100
investigations that is 100 patches a minute instead of 400 (benchmarks/bench_scale.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from oomforensics.k8s.api import ApiFailure
from oomforensics.k8s.capturer import LastCapture
from oomforensics.k8s.conditions import Observation, decide_conditions, replacing_patch
from oomforensics.k8s.metrics import note_conditions
from oomforensics.k8s.services import Services
from oomforensics.k8s.status import TargetStatus, build_status

log = logging.getLogger(__name__)

READINGS_REFRESH = 60.0


@dataclass(frozen=True, slots=True)
class Seen:
    """Everything one pass observed that the status is built from."""

    generation: int
    observation: Observation
    targets: Sequence[TargetStatus] = ()
    last_capture: LastCapture | None = None
    archive_url: str | None = None
    notifications: Mapping[str, Any] | None = None  # what each sink got (k8s/notifier.py)


class StatusWriter:
    """Writes one MemoryInvestigation's status with a merge patch."""

    def __init__(
        self,
        services: Services,
        namespace: str,
        name: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._services = services
        self._clock = clock
        self._namespace = namespace
        self._name = name
        self._written: Mapping[str, Any] | None = None  # the status as last written
        self._written_at = 0.0  # the clock's time of that write

    def previous(self, body: Mapping[str, Any]) -> Mapping[str, Any]:
        """The status as this process last wrote it, else as the custom resource has it."""
        return self._written if self._written is not None else body.get("status") or {}

    async def write(self, seen: Seen, previous: Mapping[str, Any]) -> None:
        last = seen.last_capture
        conditions = decide_conditions(seen.observation)
        note_conditions(self._namespace, self._name, conditions)
        status = build_status(
            generation=seen.generation,
            previous=previous,
            conditions=conditions,
            targets=seen.targets,
            snapshot_count=seen.observation.snapshots,
            last_snapshot=last.key.path() if last else previous.get("snapshots", {}).get("last"),
            last_snapshot_time=last.key.captured_at if last else None,
            last_snapshot_reason=last.reason if last else None,
            summary=seen.observation.summary,
            oom_kills=seen.observation.oom_kills,
            other_terminations=seen.observation.other_terminations,
            now=datetime.now(UTC),
            archive=seen.archive_url or previous.get("archive"),
        )
        if seen.notifications is not None:
            status["notifications"] = dict(seen.notifications)
        if dict(previous) == status:
            return
        if (
            self._written is not None
            and self._clock() - self._written_at < READINGS_REFRESH
            and _without_readings(previous) == _without_readings(status)
        ):
            return
        try:
            written = await self._services.patch_status(
                self._namespace, self._name, replacing_patch(previous, status)
            )
        except ApiFailure as exc:
            log.warning("cannot write the status of %s/%s: %s", self._namespace, self._name, exc)
            return
        self._written = written.get("status") or status
        self._written_at = self._clock()


def _without_readings(status: Mapping[str, Any]) -> dict[str, Any]:
    """The status without the targets' memory readings."""
    return {
        **status,
        "targets": [
            {k: v for k, v in t.items() if k not in ("workingSetBytes", "percentOfLimit")}
            for t in status.get("targets") or []
        ],
    }
