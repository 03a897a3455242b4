"""The ledger: what each sink got, written into the status and read back after a restart,
so an event is sent once; and the backoff between two attempts on a failing sink."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from oomforensics.notify.ledger import BACKLOG, MAX_DELIVERED, Backoff, Ledger, SinkRecord
from oomforensics.notify.messages import (
    InvestigationRef,
    Notification,
    NotificationKind,
    OomKillFacts,
    RunRef,
)

T0 = datetime(2026, 12, 2, 5, 0, tzinfo=UTC)
INV = InvestigationRef("shop", "db", "mi-uid")
SINK = "webhook:notify/url"
KINDS = tuple(NotificationKind)


def kill(run: int, at: datetime) -> Notification:
    facts = OomKillFacts(RunRef("db-0", "pod-uid", "app", run), at, 137, None, None)
    return Notification(NotificationKind.OOM_KILLED, INV, facts)


def test_an_event_is_due_until_delivered_and_not_after_a_restart():
    ledger = Ledger()
    ledger.record(SINK, T0)
    events = [kill(1, T0 + timedelta(minutes=2)), kill(0, T0 + timedelta(minutes=1))]
    assert [e.facts.run.run for e in ledger.due(SINK, events, KINDS)] == [0, 1]  # oldest first
    ledger.delivered(SINK, events[1].id, T0 + timedelta(minutes=3))
    status = {"notifications": ledger.to_status({SINK: 1})}

    restarted = Ledger.from_status(status)
    assert restarted.due(SINK, events, KINDS) == [events[0]]
    (doc,) = status["notifications"]["sinks"]
    assert doc["delivered"] == [events[1].id] and doc["pending"] == 1
    assert doc["since"] == "2026-12-02T05:00:00Z"


def test_a_new_sink_gets_the_last_hour_not_the_history():
    ledger = Ledger()
    now = T0 + timedelta(days=3)
    ledger.record(SINK, now)
    old = kill(0, now - BACKLOG - timedelta(seconds=1))
    recent = kill(1, now - BACKLOG + timedelta(seconds=1))
    assert ledger.due(SINK, [old, recent], KINDS) == [recent]


def test_a_sink_asks_only_for_its_kinds_and_an_unknown_sink_gets_nothing():
    ledger = Ledger()
    ledger.record(SINK, T0)
    assert ledger.due(SINK, [kill(0, T0)], [NotificationKind.LEAK_SUSPECTED]) == []
    assert ledger.due("slack:other/url", [kill(0, T0)], KINDS) == []


def test_failures_are_counted_until_a_delivery_and_survive_a_restart():
    ledger = Ledger()
    ledger.record(SINK, T0)
    assert ledger.failed(SINK, "SinkFailing", "HTTP 503 Service Unavailable", T0) == 1
    assert ledger.failed(SINK, "SinkFailing", "HTTP 503 Service Unavailable", T0) == 2
    restarted = Ledger.from_status({"notifications": ledger.to_status({})})
    record = restarted.get(SINK)
    assert record is not None
    assert (record.failures, record.reason, record.failing_since) == (2, "SinkFailing", T0)
    restarted.delivered(SINK, "oomkill-1", T0 + timedelta(minutes=1))
    assert (record.failures, record.reason, record.error, record.failing_since) == (
        0,
        None,
        None,
        None,
    )


def test_the_delivered_ids_are_bounded_newest_kept():
    ledger = Ledger()
    ledger.record(SINK, T0)
    for i in range(MAX_DELIVERED + 5):
        ledger.delivered(SINK, f"id-{i}", T0)
    record = ledger.get(SINK)
    assert record is not None and len(record.delivered) == MAX_DELIVERED
    assert record.delivered[-1] == f"id-{MAX_DELIVERED + 4}" and "id-0" not in record.delivered


def test_sinks_no_longer_configured_are_forgotten():
    ledger = Ledger()
    ledger.record(SINK, T0)
    ledger.record("slack:n/k", T0)
    ledger.keep_only(["slack:n/k"])
    assert [r.sink for r in ledger.records()] == ["slack:n/k"]


@pytest.mark.parametrize(
    "doc",
    [
        {"sink": "x"},  # no since
        {"sink": "x", "since": "yesterday"},
        {"sink": "x", "since": "2026-12-02T05:00:00"},  # no time zone
        {"sink": "x", "since": "2026-12-02T05:00:00Z", "delivered": "id"},
    ],
)
def test_an_unreadable_record_starts_afresh(doc):
    assert SinkRecord.from_json(doc) is None
    assert Ledger.from_status({"notifications": {"sinks": [doc]}}).records() == []


def test_a_status_without_notifications_is_an_empty_ledger():
    assert Ledger.from_status({}).records() == []
    assert Ledger.from_status({"notifications": "garbage"}).records() == []


def test_backoff_doubles_from_the_base_up_to_the_cap():
    backoff = Backoff(base=2.0, cap=300.0)
    assert [backoff.delay(n) for n in range(0, 11)] == [
        0.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 300.0, 300.0,
    ]  # fmt: skip
    assert backoff.delay(10_000) == 300.0
