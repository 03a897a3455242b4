"""Telling people: an investigation's OOM kills and suspected leaks, delivered to its sinks.

Each pass hands the notifier what it observed (`observe`: the kills in the status, the
summary), which is cheap and never waits on a sink: delivery runs in a task of its own, so a
slow or failing sink never delays a capture. The events to send are rebuilt from what the
status holds (the kills, the summary), and the ledger in status.notifications says what each
sink already has, so an operator restart sends nothing twice (notify/ledger.py says why the
status and not the archive).

A failing sink is retried with exponential backoff (notify.ledger.Backoff); meanwhile the
NotificationsDelivered condition is False with its reason (SinkFailing, SecretNotFound, ...)
and one Warning Event says so. Once it answers, the events that waited are delivered in
order, a Normal Event says so, and the condition turns True.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from oomforensics.archive.layout import InvalidSnapshotKey, SnapshotKey
from oomforensics.errors import OomForensicsError
from oomforensics.k8s.api import ApiFailure, ApiNotFound
from oomforensics.k8s.events import EventReason, Events, EventType
from oomforensics.k8s.services import Services
from oomforensics.k8s.spec import NotifySpec, SinkSpec
from oomforensics.k8s.status import OomKillStatus, summary_leak_status
from oomforensics.notify.delivery import DeliveryFailed, check_url
from oomforensics.notify.ledger import Backoff, Ledger
from oomforensics.notify.messages import (
    InvestigationRef,
    LeakFacts,
    Notification,
    NotificationKind,
    OomKillFacts,
    RunRef,
    payload,
)

log = logging.getLogger(__name__)
MAX_LEAKS_KEPT = 4  # suspected leaks of earlier runs still owed to a failing sink


class NotifyReason(StrEnum):
    """The NotificationsDelivered condition's reasons."""

    DELIVERED = "Delivered"
    DELIVERING = "Delivering"
    SINK_FAILING = "SinkFailing"
    SECRET_NOT_FOUND = "SecretNotFound"
    SECRET_UNREADABLE = "SecretUnreadable"
    SECRET_KEY_MISSING = "SecretKeyMissing"
    INVALID_SINK_URL = "InvalidSinkURL"


class SinkProblem(OomForensicsError):
    def __init__(self, reason: NotifyReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


ConditionFields = tuple[str, str, str]  # (status, reason, message)


class Notifier:
    """The notifications of one MemoryInvestigation and their delivery."""

    def __init__(
        self,
        services: Services,
        namespace: str,
        name: str,
        uid: str,
        events: Events,
        *,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,  # when to retry
        now: Callable[[], datetime] = lambda: datetime.now(UTC),  # what the ledger says
    ) -> None:
        self._services = services
        self._namespace = namespace
        self._name = name
        self._uid = uid
        self._events = events
        self._backoff = backoff or Backoff()
        self._clock = clock
        self._now = now
        self._ledger = Ledger()
        self._loaded = False
        self._notify: NotifySpec | None = None
        self._kills: list[Notification] = []
        self._leaks: dict[str, Notification] = {}  # id -> the leak events built, newest last
        self._retry_at: dict[str, float] = {}  # sink id -> the clock's time of its next try
        self._kick = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._round = asyncio.Lock()

    # --- what a pass tells it (no I/O) -----------------------------------------------------

    def load(self, status: Mapping[str, Any]) -> None:
        """What the sinks got, as a previous status says (once: then this process knows)."""
        if self._loaded:
            return
        self._loaded = True
        self._ledger = Ledger.from_status(status)

    def observe(
        self,
        notify: NotifySpec | None,
        kills: Sequence[OomKillStatus],
        summary: Mapping[str, Any] | None,
        archive: str | None,
    ) -> None:
        """The events this pass's observation holds; delivery of the due ones starts."""
        self._notify = notify if notify is not None and notify.sinks else None
        if self._notify is None:
            self._ledger.keep_only(())
            self._kills, self._leaks = [], {}
            return
        investigation = InvestigationRef(self._namespace, self._name, self._uid, archive)
        self._kills = [kill_notification(investigation, kill) for kill in kills]
        leak = leak_notification(investigation, summary) if summary is not None else None
        if leak is not None:
            self._leaks.pop(leak.id, None)
            self._leaks[leak.id] = leak
            while len(self._leaks) > MAX_LEAKS_KEPT:
                del self._leaks[next(iter(self._leaks))]
        now = self._now()
        for sink in self._notify.sinks:
            self._ledger.record(sink.id, now)
        self._ledger.keep_only(s.id for s in self._notify.sinks)
        if any(self.pending().values()):
            self._start()

    def pending(self) -> dict[str, list[Notification]]:
        """Each sink's events not delivered yet, oldest first."""
        if self._notify is None:
            return {}
        notifications = [*self._kills, *self._leaks.values()]
        return {
            sink.id: self._ledger.due(sink.id, notifications, sink.events)
            for sink in self._notify.sinks
        }

    def condition(self) -> ConditionFields | None:
        """NotificationsDelivered: None when no sink is configured."""
        if self._notify is None:
            return None
        pending = self.pending()
        failing = [r for r in self._ledger.records() if r.failures and pending.get(r.sink)]
        if failing:
            first = failing[0]
            parts = [
                f"{r.sink}: {r.error} ({len(pending.get(r.sink, []))} event(s) waiting, "
                f"{r.failures} failed attempt(s), retried with backoff)"
                for r in failing
            ]
            return ("False", first.reason or NotifyReason.SINK_FAILING.value, "; ".join(parts))
        waiting = sum(len(p) for p in pending.values())
        if waiting:
            return ("Unknown", NotifyReason.DELIVERING.value, f"{waiting} event(s) being delivered")
        sinks = len(self._notify.sinks)
        return ("True", NotifyReason.DELIVERED.value, f"every event delivered to {sinks} sink(s)")

    def status(self) -> dict[str, Any] | None:
        """status.notifications (None when no sink is configured)."""
        if self._notify is None:
            return None
        return self._ledger.to_status({k: len(v) for k, v in self.pending().items()})

    # --- delivery (its own task) -----------------------------------------------------------

    def _start(self) -> None:
        self._kick.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(
                self._deliver_until_done(), name=f"notify {self._namespace}/{self._name}"
            )

    async def drained(self) -> None:
        """Wait until nothing is left to deliver (the task ends then), for tests and tools."""
        task = self._task
        if task is not None:
            await asyncio.shield(task)

    async def aclose(self) -> None:
        """Stop delivering (the investigation's daemon stops); what waits stays in the ledger."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _deliver_until_done(self) -> None:
        while True:
            self._kick.clear()
            try:
                wait = await self.deliver_due()
            except Exception:  # a bug must not end delivery for good: log, try again later
                log.exception("notifications of %s/%s", self._namespace, self._name)
                wait = self._backoff.cap
            if wait is None:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), wait)

    async def deliver_due(self) -> float | None:
        """One round: each sink whose retry time has come gets its pending events, in order.
        Returns the seconds until the next sink is due, None when nothing waits."""
        async with self._round:
            notify = self._notify
            if notify is None:
                return None
            changed = False
            for sink in notify.sinks:
                due = self.pending().get(sink.id) or []
                if due and self._clock() >= self._retry_at.get(sink.id, 0.0):
                    changed = await self._deliver(notify, sink, due) or changed
            if changed:
                await self._save()
            waits = [
                max(0.0, self._retry_at.get(sink_id, 0.0) - self._clock())
                for sink_id, due in self.pending().items()
                if due
            ]
            return min(waits) if waits else None

    async def _deliver(self, notify: NotifySpec, sink: SinkSpec, due: list[Notification]) -> bool:
        """Send `due` to the sink until one fails; True when the ledger changed."""
        record = self._ledger.get(sink.id)
        was_failing = record is not None and record.failures > 0
        try:
            url = await self._url(notify, sink)
        except SinkProblem as problem:
            await self._failed(sink, problem.reason, str(problem), len(due))
            return True
        sent = 0
        for notification in due:
            try:
                await self._services.post_notification(url, payload(sink.type, notification))
            except DeliveryFailed as exc:
                await self._failed(sink, NotifyReason.SINK_FAILING, str(exc), len(due) - sent)
                return True
            self._ledger.delivered(sink.id, notification.id, self._now())
            self._retry_at.pop(sink.id, None)
            sent += 1
            log.info("notified %s of %s (%s)", sink.id, notification.id, notification.title)
        if was_failing:
            await self._events.post(
                EventReason.NOTIFICATIONS_DELIVERED,
                f"sink {sink.id} answers again: {sent} waiting event(s) delivered",
            )
        return True

    async def _failed(self, sink: SinkSpec, reason: NotifyReason, error: str, waiting: int) -> None:
        failures = self._ledger.failed(sink.id, reason.value, error, self._now())
        delay = self._backoff.delay(failures)
        self._retry_at[sink.id] = self._clock() + delay
        log.warning(
            "notifications of %s/%s to %s: %s (attempt %d, next in %.0fs)",
            self._namespace, self._name, sink.id, error, failures, delay,
        )  # fmt: skip
        if failures == 1:  # once per outage: the condition tells the rest
            await self._events.post(
                EventReason.NOTIFICATION_FAILED,
                f"sink {sink.id}: {error}; {waiting} event(s) waiting, retried with backoff",
                EventType.WARNING,
            )

    async def _url(self, notify: NotifySpec, sink: SinkSpec) -> str:
        """The sink's URL, read from its Secret at each round (a fixed Secret is used at once)."""
        namespace = notify.secret_namespace or self._namespace
        where = f"Secret {namespace}/{sink.secret_name}"
        try:
            data = await self._services.secret_data(namespace, sink.secret_name)
        except ApiNotFound:
            raise SinkProblem(
                NotifyReason.SECRET_NOT_FOUND, f"{where} not found (it holds the sink's URL)"
            ) from None
        except ApiFailure as exc:
            raise SinkProblem(NotifyReason.SECRET_UNREADABLE, f"{where}: {exc}") from None
        value = data.get(sink.secret_key)
        if not value:
            raise SinkProblem(
                NotifyReason.SECRET_KEY_MISSING, f"{where} has no key {sink.secret_key!r}"
            )
        try:
            return check_url(value)
        except DeliveryFailed as exc:
            raise SinkProblem(
                NotifyReason.INVALID_SINK_URL, f"{where}, key {sink.secret_key}: {exc}"
            ) from None

    async def _save(self) -> None:
        """The ledger into the status now, not at the next pass: a restart in between would
        send again what was just delivered."""
        record = self.status()
        if record is None:
            return
        try:
            await self._services.patch_status(
                self._namespace, self._name, {"notifications": record}
            )
        except ApiFailure as exc:
            log.warning(
                "cannot record notifications of %s/%s: %s", self._namespace, self._name, exc
            )


def kill_notification(investigation: InvestigationRef, kill: OomKillStatus) -> Notification:
    """An OOM kill as status.oomKills has it: the pre-OOM snapshot and the run's verdict."""
    summary = kill.summary or {}
    told = kill.attribution
    facts = OomKillFacts(
        run=RunRef(kill.pod, kill.uid, kill.container, kill.run),
        time=kill.time,
        exit_code=kill.exit_code,
        pre_oom_snapshot=kill.pre_oom_snapshot,
        percent_of_limit=kill.percent_of_limit,
        verdict=_text(summary.get("verdict")),
        suspect=_text(summary.get("suspect")),
        classification=_text(summary.get("classification")),
        heap_growth=_text(summary.get("heapGrowth")),
        cause=told.cause.value if told is not None else None,
        confidence=told.confidence.value if told is not None else None,
        evidence=told.evidence if told is not None else None,
    )
    return Notification(NotificationKind.OOM_KILLED, investigation, facts)


def leak_notification(
    investigation: InvestigationRef, summary: Mapping[str, Any]
) -> Notification | None:
    """The suspected leak a summary states (None unless LeakSuspected is True): about the run
    of its latest snapshot, at that snapshot's time."""
    if summary_leak_status(summary) != "True":
        return None
    try:
        latest = SnapshotKey.parse(str(summary.get("latest") or ""))
    except InvalidSnapshotKey:
        return None
    suspects = summary.get("suspects") or []
    first = suspects[0] if suspects and isinstance(suspects[0], Mapping) else {}
    raw_path = first.get("path")
    path: list[Any] = raw_path if isinstance(raw_path, list) else []
    judgement = summary.get("judgement")
    confidence = judgement.get("confidence") if isinstance(judgement, Mapping) else None
    classification = str(summary.get("classification") or "leak")
    facts = LeakFacts(
        run=RunRef(latest.pod, latest.pod_uid, latest.container, latest.run),
        time=latest.captured_at,
        verdict=str(summary.get("verdict") or classification),
        classification=classification,
        suspect=_text(summary.get("suspect")),
        suspect_path=tuple(str(frame) for frame in path),
        heap_growth=_text(summary.get("heapGrowth")),
        confidence=_text(confidence),
        baseline=_text(summary.get("baseline")),
        latest=latest.path(),
    )
    return Notification(NotificationKind.LEAK_SUSPECTED, investigation, facts)


def _text(value: object) -> str | None:
    return str(value) if value not in (None, "") else None
