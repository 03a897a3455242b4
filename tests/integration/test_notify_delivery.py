"""Notifications over real HTTP: the notifier's own task posts to a receiver of the tests
(aiohttp on loopback) through the operator's real client. The webhook gets a CloudEvent
and Slack its incoming-webhook message; a sink that fails is retried with backoff (a
condition and one Event meanwhile) and, once it answers, gets what waited, in order; a
restarted operator, reading the ledger back from the status, sends nothing twice."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from oomforensics.k8s.api import ObjectRef
from oomforensics.k8s.events import Events
from oomforensics.k8s.notifier import Notifier
from oomforensics.k8s.spec import NotifySpec, parse_notify
from oomforensics.k8s.status import OomKillStatus
from oomforensics.notify.delivery import WebhookClient
from oomforensics.notify.ledger import Backoff
from oomforensics.notify.messages import Payload
from tests.support.notify_receiver import Receiver

ARTIFACTS = Path(os.environ.get("OOMF_E2E_ARTIFACTS", "/tmp/oomf-e2e"))
NOW = datetime.now(UTC).replace(microsecond=0)
UID = "2b7e51c4-93d6-4f0e-a1c8-6d2f9e3b7a10"
PRE = f"shop/checkout-oom/checkout/{UID}/app/run-0/20261202T054001.120Z-threshold-95/"
# Short waits between attempts keep the test quick; the schedule is Backoff's (unit tests).
FAST = Backoff(base=0.05, cap=0.2)


@dataclass
class Operator:
    """The world of one notifier: a Secret with the receiver's URLs, the real HTTP client,
    the status it patches and the Events it posts."""

    secret: dict[str, str]
    client: WebhookClient = field(default_factory=WebhookClient)
    status: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str, str, str]] = field(default_factory=list)

    async def secret_data(self, namespace: str, name: str) -> dict[str, str]:
        return dict(self.secret)

    async def post_notification(self, url: str, payload: Payload) -> None:
        await self.client.post(url, payload)

    async def patch_status(self, namespace: str, name: str, patch: Mapping[str, Any]) -> Any:
        self.status.update(copy.deepcopy(dict(patch)))
        return {"status": self.status}

    async def post_event(self, about: ObjectRef, reason: str, message: str, type_: str) -> None:
        self.events.append((reason, type_, message))

    def notifier(self) -> Notifier:
        ref = ObjectRef(
            "oomforensics.io/v1alpha1", "MemoryInvestigation", "shop", "checkout-oom", "mi-uid"
        )
        return Notifier(self, "shop", "checkout-oom", "mi-uid", Events(self, ref), backoff=FAST)  # type: ignore[arg-type]


def sinks() -> NotifySpec:
    parsed = parse_notify(
        {
            "sinks": [
                {"type": "webhook", "secretRef": {"name": "notify", "key": "webhook"}},
                {"type": "slack", "secretRef": {"name": "notify", "key": "slack"}},
            ]
        }
    )
    assert parsed is not None
    return parsed


def kill(run: int, at: datetime) -> OomKillStatus:
    return OomKillStatus(
        pod="checkout",
        uid=UID,
        container="app",
        run=run,
        time=at,
        exit_code=137,
        pre_oom_snapshot=PRE.replace("run-0", f"run-{run}"),
        percent_of_limit=96.4,
        summary={
            "verdict": "Leak: response bodies of HTTP 403 answers are never closed.",
            "suspect": "main.fetchQuote",
            "classification": "unclosed-response-body",
            "heapGrowth": "+61.2 MiB",
        },
    )


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as server:
        yield server


async def test_a_failing_sink_recovers_and_a_restart_sends_nothing_twice(receiver: Receiver):
    operator = Operator(
        {"webhook": receiver.url("/hooks/cloudevents"), "slack": receiver.url("/slack/T0/B0/x")}
    )
    receiver.fail("/hooks/cloudevents", 3)  # down for three attempts, then up
    notifier = operator.notifier()
    first_kill = kill(0, NOW - timedelta(minutes=3))
    notifier.observe(sinks(), [first_kill], None, "s3://evidence/oomf")

    (slack,) = await receiver.wait_accepted(1, "/slack/T0/B0/x")
    (event,) = await receiver.wait_accepted(1, "/hooks/cloudevents")
    await notifier.drained()  # the notifier has taken the answers in
    assert len(list(receiver.refused("/hooks/cloudevents"))) == 3
    # The CloudEvent, as received: structured mode.
    assert event.content_type == "application/cloudevents+json"
    body = event.body
    assert body["specversion"] == "1.0" and body["type"] == "io.oomforensics.oomkill"
    assert body["source"].endswith("/namespaces/shop/memoryinvestigations/checkout-oom")
    assert body["data"]["preOomSnapshot"] == PRE and body["data"]["percentOfLimit"] == 96.4
    assert body["data"]["fetch"] == "oomforensics fetch shop/checkout-oom --oom -1"
    # Slack's message, as received.
    assert slack.content_type == "application/json"
    assert slack.body["text"].startswith("OOM kill: shop/checkout container app (run 0)")
    assert [b["type"] for b in slack.body["blocks"]] == ["header", "section", "section", "context"]
    # The outage was told once, as a Warning Event, and its end as a Normal one.
    assert [(r, t) for r, t, _ in operator.events] == [
        ("NotificationFailed", "Warning"),
        ("NotificationsDelivered", "Normal"),
    ]
    assert "HTTP 503" in operator.events[0][2]
    assert receiver.url("/hooks") not in json.dumps([*operator.events, operator.status])  # no URL
    assert notifier.condition() == ("True", "Delivered", "every event delivered to 2 sink(s)")
    ledger = {s["sink"]: s for s in operator.status["notifications"]["sinks"]}
    assert ledger["webhook:notify/webhook"]["delivered"] == [body["id"]]
    await notifier.aclose()

    # The operator restarts: the ledger comes back from the status; a second kill happens.
    restarted = operator.notifier()
    restarted.load(copy.deepcopy(operator.status))
    second_kill = kill(1, NOW - timedelta(minutes=1))
    restarted.observe(sinks(), [first_kill, second_kill], None, "s3://evidence/oomf")
    events = await receiver.wait_accepted(2, "/hooks/cloudevents")
    await receiver.wait_accepted(2, "/slack/T0/B0/x")
    await restarted.drained()
    await restarted.aclose()
    # Oldest first: had the first kill been sent again, it would have come before the second.
    assert [e.body["data"]["run"] for e in events] == [0, 1]
    assert len({e.body["id"] for e in receiver.accepted("/hooks/cloudevents")}) == 2
    assert len(receiver.accepted()) == 4  # two kills, two sinks, each once

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "notify-integration-received.json").write_text(
        json.dumps([r.body for r in receiver.accepted()], indent=2, ensure_ascii=False)
    )
    await operator.client.aclose()


async def test_a_sink_that_answers_with_an_error_page_is_failing_not_delivered(receiver: Receiver):
    operator = Operator({"webhook": receiver.url("/gone"), "slack": receiver.url("/gone")})
    receiver.fail("/gone", 1000, status=410)  # Slack's channel_is_archived
    notifier = operator.notifier()
    notifier.observe(sinks(), [kill(0, NOW)], None, None)
    await receiver.wait_requests(4)  # both sinks tried, then tried again after the backoff
    status, reason, message = notifier.condition() or ("", "", "")
    assert (status, reason) == ("False", "SinkFailing")
    assert "HTTP 410 Gone: try later" in message and "/gone" not in message
    assert [r for r, _, _ in operator.events] == ["NotificationFailed", "NotificationFailed"]
    await notifier.aclose()
    await operator.client.aclose()
