"""Whether an investigation's archive takes its snapshots: the StorageReady story.

A snapshot the store refused sits in the local spool (safe, uploaded once the store answers);
while any does, the store is unavailable, and that is said once as an Event and always in
the condition.
"""

from __future__ import annotations

from dataclasses import dataclass

from oomforensics.archive.store import Archive
from oomforensics.k8s.events import EventReason, Events, EventType
from oomforensics.k8s.services import Services, StorageReason


@dataclass(frozen=True, slots=True)
class StorageFailure:
    reason: StorageReason
    message: str

    def pair(self) -> tuple[str, str]:
        """(reason, message), as the conditions take it."""
        return (self.reason.value, self.message)


class StorageHealth:
    """The archive's last known state for one investigation."""

    def __init__(self, services: Services, events: Events) -> None:
        self._services = services
        self._events = events
        self.failure: StorageFailure | None = None  # the last store write failed
        self.used = False  # a snapshot was stored (or spooled) by this process
        self.archive_url: str | None = None  # status.archive: where the snapshots go

    async def write_failed(self, archive: Archive, error: Exception) -> None:
        """Neither the store nor the spool could keep a snapshot."""
        self.failure = StorageFailure(StorageReason.STORAGE_UNAVAILABLE, f"{archive.url}: {error}")
        await self._events.post(
            EventReason.STORAGE_UNAVAILABLE, self.failure.message, EventType.WARNING
        )

    async def note_spool(self, archive: Archive) -> None:
        """Snapshots waiting in the spool mean the store is down: say so (they are safe)."""
        pending = len(self._services.spool(archive).pending())
        if pending:
            message = (
                f"{archive.url} does not answer: {pending} snapshot(s) kept in the local spool, "
                "uploaded as soon as it does"
            )
            if self.failure is None:
                await self._events.post(EventReason.STORAGE_UNAVAILABLE, message, EventType.WARNING)
            self.failure = StorageFailure(StorageReason.STORAGE_UNAVAILABLE, message)
        else:
            self.failure = None
