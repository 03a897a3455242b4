"""Notifications end to end on the real cluster: a leaky Go pod that the kernel OOM-kills, a
MemoryInvestigation whose spec.notify names two sinks by Secret (a CloudEvents webhook and a
Slack-format one, both a receiver of the test's own on loopback), and the operator with the
chart's RBAC (investigationSecrets grants `get` on that Secret by name). The receiver gets one
OOM-kill CloudEvent with the pre-OOM snapshot, its % of the limit, the verdict and the fetch
command, and Slack's message; the status says what each sink got."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.operator_harness import (
    KubeOperator,
    apply_crd,
    condition,
    dump,
    kube_events_about,
    poll,
    running_operator,
)
from tests.support.kube.images import fixture_image
from tests.support.kube.pods import leaky_pod
from tests.support.moto import MotoServer
from tests.support.notify_receiver import Receiver

pytestmark = [pytest.mark.gotool, pytest.mark.timeout(480)]
ARTIFACTS = Path(os.environ.get("OOMF_E2E_ARTIFACTS", "/tmp/oomf-e2e"))
WEBHOOK = "/hooks/oomforensics"
SLACK = "/services/T0TEST/B0TEST/not-a-real-token"


async def test_an_oom_kill_reaches_the_webhook_as_one_cloudevent_with_the_evidence(
    kube_operator: KubeOperator,
    s3: MotoServer,
) -> None:
    kube, namespace = kube_operator.kube, kube_operator.namespace
    started, operator_user = kube_operator.started, kube_operator.user
    kube_operator.rbac_with(
        {"investigationSecrets": [{"namespace": namespace, "names": ["oncall"]}]}
    )
    image = fixture_image(kube, "leaky")
    mi = f"/apis/oomforensics.io/v1alpha1/namespaces/{namespace}/memoryinvestigations"
    async with Receiver() as receiver, kube.async_http() as http:
        await apply_crd(http)
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "oncall", "namespace": namespace},
            "stringData": {"webhook": receiver.url(WEBHOOK), "slack": receiver.url(SLACK)},
        }
        created = await http.post(f"/api/v1/namespaces/{namespace}/secrets", json=secret)
        assert created.status_code == 201, created.text
        pod = leaky_pod(
            "checkout",
            namespace,
            image,
            "tls403",
            labels={"app": "checkout"},
            memory_limit="160Mi",
            rate=30,
        )
        created = await http.post(f"/api/v1/namespaces/{namespace}/pods", json=pod)
        assert created.status_code == 201, created.text
        investigation = {
            "apiVersion": "oomforensics.io/v1alpha1",
            "kind": "MemoryInvestigation",
            "metadata": {"name": "checkout-oom", "namespace": namespace},
            "spec": {
                "selector": {"matchLabels": {"app": "checkout"}},
                "endpoint": {"portName": "http"},
                "sampling": {"interval": "1s"},
                "snapshots": {"interval": "30s"},
                "triggers": {"cooldown": "5s"},
                "notify": {
                    "sinks": [
                        {"type": "webhook", "secretRef": {"name": "oncall", "key": "webhook"}},
                        {
                            "type": "slack",
                            "secretRef": {"name": "oncall", "key": "slack"},
                            "events": ["OOMKilled"],
                        },
                    ]
                },
            },
        }
        created = await http.post(mi, json=investigation)
        assert created.status_code == 201, created.text

        async with running_operator([namespace]) as operator:

            async def told() -> list[Any] | None:
                kills = [
                    r for r in receiver.accepted(WEBHOOK)
                    if r.body.get("type") == "io.oomforensics.oomkill"
                ]  # fmt: skip
                return kills if kills and receiver.accepted(SLACK) else None

            await poll(told, 360, "the OOM kill's notifications", operator)

            async def recorded() -> dict[str, Any] | None:
                body: dict[str, Any] = (await http.get(f"{mi}/checkout-oom")).json()
                delivered = condition(body, "NotificationsDelivered")
                sinks = ((body.get("status") or {}).get("notifications") or {}).get("sinks")
                done = delivered.get("status") == "True" and all(
                    s["delivered"] and not s["pending"] for s in sinks or []
                )
                return body if done else None

            body = await poll(recorded, 60, "the delivery in the status", operator)
        cr_events = await kube_events_about(http, namespace, "MemoryInvestigation", "checkout-oom")

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "notify-received.json").write_text(
        json.dumps(
            [{"path": r.path, "contentType": r.content_type, "body": r.body} for r in receiver.got],
            indent=2,
            ensure_ascii=False,
        )
    )
    dump(ARTIFACTS / "notify-status.json", body["status"])
    status = body["status"]
    (kill,) = status["oomKills"][:1]
    kills = [
        r.body for r in receiver.accepted(WEBHOOK) if r.body["type"] == "io.oomforensics.oomkill"
    ]
    # One CloudEvent per kill (the first run's kill; later runs may be killed too meanwhile).
    first = [e for e in kills if e["data"]["run"] == kill["run"]]
    assert len(first) == 1, kills
    (event,) = first
    assert event["specversion"] == "1.0"
    assert event["source"] == (
        f"/apis/oomforensics.io/v1alpha1/namespaces/{namespace}/memoryinvestigations/checkout-oom"
    )
    assert event["subject"] == f"pods/checkout/containers/app/runs/{kill['run']}"
    assert len({e["id"] for e in kills}) == len(kills)
    data = event["data"]
    assert data["podUID"] == kill["uid"] and data["exitCode"] == 137
    assert data["preOomSnapshot"] == kill["preOomSnapshot"]
    assert data["percentOfLimit"] == pytest.approx(
        float(kill["percentOfLimit"].rstrip("%")), abs=0.1
    )
    assert data["percentOfLimit"] >= 80
    assert data["verdict"] == kill["summary"]["verdict"]
    assert data["fetch"] == f"oomforensics fetch {namespace}/checkout-oom --oom -1"
    assert data["archive"] == status["archive"]
    webhook = next(r for r in receiver.accepted(WEBHOOK) if r.body is event)
    assert webhook.content_type == "application/cloudevents+json"
    # Slack's message for the same kill (that sink asked for OOM kills only).
    slack = [r.body for r in receiver.accepted(SLACK)]
    assert all(m["text"].startswith("OOM kill: ") for m in slack)
    assert kill["preOomSnapshot"] in json.dumps(slack[0])
    # What each sink got is in the status; the Secret's URLs are nowhere in it.
    sinks = {s["sink"]: s for s in status["notifications"]["sinks"]}
    assert event["id"] in sinks["webhook:oncall/webhook"]["delivered"]
    assert receiver.url("/") not in json.dumps(status)
    assert condition(body, "NotificationsDelivered")["reason"] == "Delivered"
    assert "NotificationFailed" not in {e["reason"] for e in cr_events}
    # The operator read that Secret by name, never listed Secrets, and nothing was refused.
    # (The chart's account is shared with other sessions' tests: only this namespace counts.)
    requests = [
        e
        for e in kube.audit_events(operator_user, since=started)
        if e.get("objectRef", {}).get("namespace") == namespace
    ]
    reads = {
        (e["verb"], e["objectRef"].get("name"))
        for e in requests
        if e.get("objectRef", {}).get("resource") == "secrets"
    }
    assert reads == {("get", "oncall")}, reads
    forbidden = [
        (e["verb"], e["requestURI"]) for e in requests if e["responseStatus"]["code"] == 403
    ]
    assert not forbidden, forbidden
