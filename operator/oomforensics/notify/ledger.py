"""What each sink got, kept where a restarted operator finds it (pure: no I/O).

The ledger lives in the investigation's status (`status.notifications`), not in the archive:
the events it dedupes (status.oomKills, status.summary) live there too and are rebuilt from
there after a restart, the API server is up whenever the operator works at all (the archive
may be the very thing that is down when an OOM kill is worth telling), and a person sees
with `kubectl get mi -o yaml` what was delivered and what is waiting.

A sink's record: when the operator first saw it (`since`), the ids it acknowledged (newest
last, bounded), and its failures. An event is due for a sink when its id is not delivered
and it is not older than `since` minus BACKLOG: a sink added to an investigation with a long
history gets the last hour (a kill while the operator was down included), not the history.

Delivery is at least once: the record is written after the sink answered 2xx, so an operator
dying between the two sends that event again, with the same CloudEvents `id`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from oomforensics.notify.messages import Notification, NotificationKind

BACKLOG = timedelta(hours=1)
# Ids kept per sink: more than the events the status can rebuild at once (status.oomKills
# keeps 20 kills, plus the newest run's suspected leak), so a delivered event never falls
# out of the record while it can still be built again.
MAX_DELIVERED = 64
MAX_ERROR = 512


@dataclass(frozen=True, slots=True)
class Backoff:
    """Seconds before retry n (1-based) of a failing sink: base * 2^(n-1), at most `cap`."""

    base: float = 2.0
    cap: float = 300.0

    def delay(self, failures: int) -> float:
        if failures <= 0:
            return 0.0
        return float(min(self.cap, self.base * 2.0 ** min(failures - 1, 30)))


@dataclass(slots=True)
class SinkRecord:
    sink: str  # the sink's identity (SinkSpec.id)
    since: datetime
    delivered: list[str] = field(default_factory=list)
    last_delivered: datetime | None = None
    failures: int = 0  # consecutive failed attempts
    reason: str | None = None  # why the last attempt failed (a condition reason)
    error: str | None = None  # what went wrong, for people (never the URL)
    failing_since: datetime | None = None

    def knows(self, event_id: str) -> bool:
        return event_id in self.delivered

    def due(self, notification: Notification) -> bool:
        return not self.knows(notification.id) and notification.time >= self.since - BACKLOG

    def to_json(self, pending: int) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "sink": self.sink,
            "since": _rfc3339(self.since),
            "delivered": list(self.delivered),
            "pending": pending,
        }
        if self.last_delivered is not None:
            doc["lastDelivered"] = _rfc3339(self.last_delivered)
        if self.failures:
            doc["failures"] = self.failures
        if self.reason:
            doc["reason"] = self.reason
        if self.error:
            doc["lastError"] = self.error[:MAX_ERROR]
        if self.failing_since is not None:
            doc["failingSince"] = _rfc3339(self.failing_since)
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> SinkRecord | None:
        """A record of a previous status; None when it cannot be read (it starts afresh)."""
        try:
            delivered = doc.get("delivered") or []
            if not isinstance(delivered, list):
                return None
            return cls(
                sink=str(doc["sink"]),
                since=_parse_time(doc["since"]),
                delivered=[str(i) for i in delivered][-MAX_DELIVERED:],
                last_delivered=_optional_time(doc.get("lastDelivered")),
                failures=int(doc.get("failures") or 0),
                reason=doc.get("reason"),
                error=doc.get("lastError"),
                failing_since=_optional_time(doc.get("failingSince")),
            )
        except (KeyError, TypeError, ValueError):
            return None


class Ledger:
    """The records of one investigation's sinks."""

    def __init__(self, records: Iterable[SinkRecord] = ()) -> None:
        self._records = {r.sink: r for r in records}

    @classmethod
    def from_status(cls, status: Mapping[str, Any]) -> Ledger:
        notifications = status.get("notifications")
        sinks = notifications.get("sinks") if isinstance(notifications, Mapping) else None
        records = [
            record
            for doc in sinks or []
            if isinstance(doc, Mapping) and (record := SinkRecord.from_json(doc)) is not None
        ]
        return cls(records)

    def record(self, sink: str, now: datetime) -> SinkRecord:
        """The sink's record, begun now if the sink is new."""
        if sink not in self._records:
            self._records[sink] = SinkRecord(sink, now)
        return self._records[sink]

    def get(self, sink: str) -> SinkRecord | None:
        return self._records.get(sink)

    def keep_only(self, sinks: Iterable[str]) -> None:
        """Forget the sinks no longer configured."""
        wanted = set(sinks)
        self._records = {k: v for k, v in self._records.items() if k in wanted}

    def due(
        self,
        sink: str,
        notifications: Sequence[Notification],
        kinds: Iterable[NotificationKind],
    ) -> list[Notification]:
        """The sink's events not yet delivered, oldest first."""
        record = self._records.get(sink)
        if record is None:
            return []
        wanted = set(kinds)
        return sorted(
            (n for n in notifications if n.kind in wanted and record.due(n)),
            key=lambda n: (n.time, n.id),
        )

    def delivered(self, sink: str, event_id: str, now: datetime) -> None:
        record = self._records[sink]
        if event_id not in record.delivered:
            record.delivered.append(event_id)
            del record.delivered[:-MAX_DELIVERED]
        record.last_delivered = now
        record.failures = 0
        record.reason = record.error = record.failing_since = None

    def failed(self, sink: str, reason: str, error: str, now: datetime) -> int:
        """Note a failed attempt; the number of consecutive failures."""
        record = self._records[sink]
        record.failures += 1
        record.reason = reason
        record.error = error[:MAX_ERROR]
        if record.failing_since is None:
            record.failing_since = now
        return record.failures

    def records(self) -> list[SinkRecord]:
        return sorted(self._records.values(), key=lambda r: r.sink)

    def to_status(self, pending: Mapping[str, int]) -> dict[str, Any]:
        """status.notifications; `pending` counts each sink's events waiting."""
        return {"sinks": [r.to_json(pending.get(r.sink, 0)) for r in self.records()]}


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(text: object) -> datetime:
    moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    return moment


def _optional_time(text: object) -> datetime | None:
    return None if text in (None, "") else _parse_time(text)
