"""The notifier of one investigation against a fake of the world: Secrets the test holds, a
sink that answers as the test says, the status patches and Events it records, and a clock the
test moves. What it proves: an event is delivered once (across a restart too), a failing
sink is retried with backoff and becomes a condition and one Event, not an error loop, and a
sink that hangs never delays a pass."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from oomforensics.k8s.api import ApiNotFound, ObjectRef
from oomforensics.k8s.events import Events
from oomforensics.k8s.notifier import Notifier, kill_notification, leak_notification
from oomforensics.k8s.spec import NotifySpec, parse_notify
from oomforensics.k8s.status import OomKillStatus
from oomforensics.notify.delivery import DeliveryFailed
from oomforensics.notify.ledger import Backoff
from oomforensics.notify.messages import InvestigationRef, Payload
from tests.unit.k8s.test_step import HEAP, World, body, pod, runner_for

URL = "https://hooks.example.test/services/T000/B000/very-secret-token"
NOW = datetime.now(UTC).replace(microsecond=0)
PRE = "shop/db/db-0/pod-uid/app/run-0/20261202T050000.000Z-threshold-95/"


def notify(*sinks: Mapping[str, Any]) -> NotifySpec:
    parsed = parse_notify({"sinks": list(sinks)})
    assert parsed is not None
    return parsed


WEBHOOK = {"type": "webhook", "secretRef": {"name": "notify", "key": "url"}}
SLACK = {"type": "slack", "secretRef": {"name": "notify", "key": "slack"}}


def kill(run: int = 0, at: datetime = NOW) -> OomKillStatus:
    return OomKillStatus(
        pod="db-0",
        uid="pod-uid",
        container="app",
        run=run,
        time=at,
        exit_code=137,
        pre_oom_snapshot=PRE,
        percent_of_limit=97.0,
        summary={"verdict": "Heap grows steadily: +40 MiB.", "suspect": "main.cache"},
    )


@dataclass
class Sinks:
    """The fake world: Secrets, sink answers (a queue of failures), what got through."""

    secrets: dict[str, dict[str, str]] = field(
        default_factory=lambda: {"notify": {"url": URL, "slack": URL + "/slack"}}
    )
    failures: list[str] = field(default_factory=list)  # each post pops one, if any
    received: list[tuple[str, Payload]] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str, str, str]] = field(default_factory=list)
    secret_reads: list[tuple[str, str]] = field(default_factory=list)

    async def secret_data(self, namespace: str, name: str) -> dict[str, str]:
        self.secret_reads.append((namespace, name))
        if name not in self.secrets:
            raise ApiNotFound(404, f"secrets {name!r} not found")
        return self.secrets[name]

    async def post_notification(self, url: str, payload: Payload) -> None:
        if self.failures:
            raise DeliveryFailed(self.failures.pop(0))
        self.received.append((url, payload))

    async def patch_status(self, namespace: str, name: str, patch: Mapping[str, Any]) -> Any:
        self.status.update(copy.deepcopy(dict(patch)))
        return {"status": self.status}

    async def post_event(self, about: ObjectRef, reason: str, message: str, type_: str) -> None:
        self.events.append((reason, type_, message))

    def ids(self) -> list[str]:
        return [json.loads(p.body)["id"] for _, p in self.received if b"specversion" in p.body]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def notifier_for(world: Sinks, clock: Clock | None = None) -> Notifier:
    ref = ObjectRef("oomforensics.io/v1alpha1", "MemoryInvestigation", "shop", "db", "mi-uid")
    events = Events(world, ref)  # type: ignore[arg-type]
    return Notifier(
        world,  # type: ignore[arg-type]
        "shop",
        "db",
        "mi-uid",
        events,
        backoff=Backoff(base=2.0, cap=60.0),
        clock=clock or Clock(),
    )


async def test_an_oom_kill_reaches_the_webhook_once_and_the_ledger_is_in_the_status():
    world = Sinks()
    notifier = notifier_for(world)
    notifier.observe(notify(WEBHOOK), [kill()], None, "s3://evidence")
    assert notifier.condition() == ("Unknown", "Delivering", "1 event(s) being delivered")
    assert await notifier.deliver_due() is None
    ((url, sent),) = world.received
    assert url == URL
    event = json.loads(sent.body)
    assert event["type"] == "io.oomforensics.oomkill"
    assert event["data"]["preOomSnapshot"] == PRE
    assert event["data"]["archive"] == "s3://evidence"
    (record,) = world.status["notifications"]["sinks"]
    assert record["sink"] == "webhook:notify/url"
    assert record["delivered"] == [event["id"]] and record["pending"] == 0
    assert notifier.condition() == ("True", "Delivered", "every event delivered to 1 sink(s)")
    notifier.observe(notify(WEBHOOK), [kill()], None, "s3://evidence")  # the next pass
    await notifier.deliver_due()
    assert len(world.received) == 1
    await notifier.aclose()


async def test_after_a_restart_nothing_is_sent_again_and_what_waited_is_sent():
    world = Sinks()
    first = notifier_for(world)
    first.observe(notify(WEBHOOK, SLACK), [kill(0)], None, None)
    await first.deliver_due()
    assert len(world.received) == 2  # one kill, two sinks
    await first.aclose()

    restarted = notifier_for(world)
    restarted.load(copy.deepcopy(world.status))
    restarted.observe(notify(WEBHOOK, SLACK), [kill(0), kill(1)], None, None)
    await restarted.deliver_due()
    runs = [json.loads(p.body).get("data", {}).get("run") for _, p in world.received]
    assert len(world.received) == 4  # only run 1's kill, to each sink
    assert runs[2:] == [1, None]  # the webhook's CloudEvent, then Slack's message
    await restarted.aclose()


async def test_a_failing_sink_backs_off_is_a_condition_and_one_event_then_recovers():
    world = Sinks(failures=["HTTP 503 Service Unavailable"] * 3)
    clock = Clock()
    notifier = notifier_for(world, clock)
    notifier.observe(notify(WEBHOOK), [kill(0), kill(1, NOW + timedelta(seconds=1))], None, None)
    waits = []
    for _ in range(3):
        wait = await notifier.deliver_due()
        assert wait is not None
        waits.append(wait)
        assert await notifier.deliver_due() == wait  # not due yet: not tried again
        clock.now += wait
    assert waits == [2.0, 4.0, 8.0]
    status, reason, message = notifier.condition() or ("", "", "")
    assert (status, reason) == ("False", "SinkFailing")
    assert "HTTP 503" in message and "2 event(s) waiting" in message
    warnings = [e for e in world.events if e[0] == "NotificationFailed"]
    assert len(warnings) == 1 and warnings[0][1] == "Warning"  # once per outage
    assert world.status["notifications"]["sinks"][0]["failures"] == 3

    assert await notifier.deliver_due() is None  # it answers again
    assert [json.loads(p.body)["data"]["run"] for _, p in world.received] == [0, 1]  # in order
    assert notifier.condition() == ("True", "Delivered", "every event delivered to 1 sink(s)")
    assert [e[0] for e in world.events] == ["NotificationFailed", "NotificationsDelivered"]
    (record,) = world.status["notifications"]["sinks"]
    assert "failures" not in record and record["pending"] == 0


async def test_one_failing_sink_does_not_hold_back_another():
    world = Sinks(secrets={"notify": {"url": URL}})  # no "slack" key
    notifier = notifier_for(world)
    notifier.observe(notify(WEBHOOK, SLACK), [kill()], None, None)
    await notifier.deliver_due()
    assert len(world.received) == 1
    status, reason, message = notifier.condition() or ("", "", "")
    assert (status, reason) == ("False", "SecretKeyMissing")
    assert "Secret shop/notify has no key 'slack'" in message


@pytest.mark.parametrize(
    ("secrets", "reason", "words"),
    [
        ({}, "SecretNotFound", "Secret shop/notify not found"),
        ({"notify": {"url": "ftp://files.example/x"}}, "InvalidSinkURL", "http:// or https://"),
        ({"notify": {"url": ""}}, "SecretKeyMissing", "no key 'url'"),
    ],
)
async def test_a_secret_that_cannot_give_a_url_is_a_reason_naming_it(secrets, reason, words):
    world = Sinks(secrets=secrets)
    notifier = notifier_for(world)
    notifier.observe(notify(WEBHOOK), [kill()], None, None)
    await notifier.deliver_due()
    status, got, message = notifier.condition() or ("", "", "")
    assert (status, got) == ("False", reason) and words in message
    assert world.received == []


async def test_the_operator_default_reads_its_secret_in_its_own_namespace():
    world = Sinks()
    notifier = notifier_for(world)
    default = NotifySpec(notify(WEBHOOK).sinks, secret_namespace="oomforensics")
    notifier.observe(default, [kill()], None, None)
    await notifier.deliver_due()
    assert world.secret_reads == [("oomforensics", "notify")]


async def test_no_sinks_no_condition_no_status_and_no_secret_read():
    world = Sinks()
    notifier = notifier_for(world)
    notifier.observe(None, [kill()], None, None)
    notifier.observe(notify(), [kill()], None, None)
    assert notifier.condition() is None and notifier.status() is None
    assert await notifier.deliver_due() is None
    assert world.secret_reads == [] and world.received == []


def test_a_leak_is_told_only_when_the_judgement_says_true():
    inv = InvestigationRef("shop", "db", "mi-uid")
    summary = {
        "latest": PRE,
        "baseline": PRE.replace("threshold-95", "baseline"),
        "verdict": "Heap grows steadily.",
        "classification": "heap-growth",
        "suspect": "main.cache",
        "suspects": [{"function": "main.cache", "path": ["runtime.malg", "main.cache"]}],
        "judgement": {"leakSuspected": True, "confidence": "high"},
    }
    told = leak_notification(inv, summary)
    assert told is not None and told.run.run == 0 and told.run.pod_uid == "pod-uid"
    assert told.data()["suspectPath"] == ["runtime.malg", "main.cache"]
    unknown = {**summary, "judgement": {"leakSuspected": None, "confidence": "low"}}
    assert leak_notification(inv, unknown) is None
    assert leak_notification(inv, {**summary, "latest": "not/a/key"}) is None
    assert kill_notification(inv, kill()).data()["verdict"] == "Heap grows steadily: +40 MiB."


# --- in the runner: a pass never waits on a sink -------------------------------------------


@dataclass
class HangingWorld(World):
    """The test_step world with a sink that never answers."""

    posts: int = 0
    hang: asyncio.Event = field(default_factory=asyncio.Event)

    async def secret_data(self, namespace: str, name: str) -> dict[str, str]:
        return {"url": URL}

    async def post_notification(self, url: str, payload: Payload) -> None:
        self.posts += 1
        await self.hang.wait()


async def test_a_sink_that_hangs_never_delays_a_pass_or_a_capture(tmp_path: Path):
    if not HEAP.is_file():  # what the target serves (test_step's `world` fixture skips too)
        pytest.skip(f"{HEAP} is not there (the shared pprof corpus)")
    world = HangingWorld(tmp_path)
    runner = runner_for(world)
    spec = {**body()["spec"], "notify": {"sinks": [WEBHOOK]}}
    await runner.step({**body(), "spec": spec}, [pod()])
    finished = (NOW - timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    killed = pod(restarts=1, last={"reason": "OOMKilled", "exitCode": 137, "finishedAt": finished})
    runner.pod_changed(killed, runner.spec)
    await asyncio.wait_for(runner.step({**body(), "spec": spec}, [killed]), 10)
    await asyncio.sleep(0)  # the notifier's task starts and blocks in the sink
    assert world.posts == 1
    # The pass wrote its status (the kill, the condition) while the sink still hangs.
    assert world.status["oomKills"][0]["run"] == 0
    (delivered,) = [c for c in world.status["conditions"] if c["type"] == "NotificationsDelivered"]
    assert (delivered["status"], delivered["reason"]) == ("Unknown", "Delivering")
    assert world.status["notifications"]["sinks"][0]["pending"] == 1
    keys = await world.archive_.list_snapshots("shop", "db")
    assert [k.reason for k in keys][:1] == ["baseline"]
    await runner.aclose()  # the daemon stops: the hanging delivery is cancelled
