"""The classic leak, end to end on the real cluster: a Go service that never closes the bodies
of 403 responses runs as a pod with a memory limit on the real kubelet; a MemoryInvestigation
watches it; the operator, with the chart's ServiceAccount and RBAC, captures snapshots into S3
as memory climbs (the working set from the real metrics-server), the kernel OOM-kills the
container, the kubelet restarts it, and the custom resource tells the story: what leaked, the
kill, and the last snapshot before it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from oomforensics.archive.store import Archive
from oomforensics.triggers import reason_threshold
from tests.e2e.operator_harness import (
    TABLE,
    KubeOperator,
    apply_crd,
    dump,
    kube_events_about,
    poll,
    running_operator,
    table_text,
)
from tests.support.kube.images import fixture_image
from tests.support.kube.pods import leaky_pod
from tests.support.moto import MotoServer

pytestmark = [pytest.mark.gotool, pytest.mark.timeout(480)]
ARTIFACTS = Path(os.environ.get("OOMF_E2E_ARTIFACTS", "/tmp/oomf-e2e"))


async def test_an_unclosed_response_body_leak_is_caught_before_and_after_the_oom_kill(
    kube_operator: KubeOperator, s3: MotoServer
) -> None:
    kube, namespace, mi = kube_operator.kube, kube_operator.namespace, kube_operator.mi
    image = fixture_image(kube, "leaky")
    async with kube.async_http() as http:
        await apply_crd(http)
        pod = leaky_pod(
            "checkout",
            namespace,
            image,
            "tls403",
            labels={"app": "checkout"},
            memory_limit="160Mi",
            rate=20,  # slow enough for a series of snapshots 30 s apart before the kill
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
            },
        }
        created = await http.post(mi, json=investigation)
        assert created.status_code == 201, created.text

        async with running_operator([namespace]) as operator:

            async def killed() -> dict[str, Any] | None:
                body: dict[str, Any] = (await http.get(f"{mi}/checkout-oom")).json()
                kills = (body.get("status") or {}).get("oomKills") or []
                return body if kills else None

            body = await poll(killed, 300, "the operator to record the OOM kill", operator)

            async def summarised() -> dict[str, Any] | None:
                current: dict[str, Any] = (await http.get(f"{mi}/checkout-oom")).json()
                summary = (current.get("status") or {}).get("summary") or {}
                return current if summary.get("leakSuspected") else None

            body = await poll(summarised, 90, "a summary suspecting the leak", operator)
            table = (await http.get(f"{mi}/checkout-oom", headers={"Accept": TABLE})).json()
            pod_now = (await http.get(f"/api/v1/namespaces/{namespace}/pods/checkout")).json()

        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        dump(ARTIFACTS / "classic-status.json", body["status"])
        (ARTIFACTS / "classic-table.txt").write_text(table_text(table) + "\n")
        dump(ARTIFACTS / "classic-table.json", table)
        dump(ARTIFACTS / "classic-pod-status.json", pod_now["status"])
        cr_events = await kube_events_about(http, namespace, "MemoryInvestigation", "checkout-oom")
        pod_events = await kube_events_about(http, namespace, "Pod", "checkout")

    status = body["status"]
    # The kill, from the kernel through the real kubelet's pod status to the custom resource.
    (container,) = pod_now["status"]["containerStatuses"]
    assert container["lastState"]["terminated"]["reason"] == "OOMKilled", container
    assert container["lastState"]["terminated"]["exitCode"] == 137
    assert container["restartCount"] >= 1
    kill = status["oomKills"][0]
    assert kill["pod"] == "checkout" and kill["container"] == "app" and kill["run"] == 0
    assert kill["exitCode"] == 137
    pre = kill["preOomSnapshot"]
    uid = pod_now["metadata"]["uid"]  # the archive keeps pod incarnations apart
    assert kill["uid"] == uid
    assert pre.startswith(f"{namespace}/checkout-oom/checkout/{uid}/app/run-0/"), pre
    assert float(kill["percentOfLimit"].rstrip("%")) >= 80
    reason = pre.rstrip("/").rsplit("-", 2)
    threshold = reason_threshold("-".join(reason[-2:]))
    assert threshold is None or threshold >= 80, pre
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["OOMObserved"]["status"] == "True"
    assert conditions["StorageReady"]["status"] == "True"
    # What leaked: the unclosed response bodies.
    summary = status["summary"]
    assert summary["classification"] == "unclosed-response-body", summary
    assert summary["leakSuspected"] is True
    assert "response bod" in summary["verdict"].lower()
    assert conditions["LeakSuspected"]["status"] == "True"
    assert conditions["LeakSuspected"]["reason"] == "UnclosedResponseBody"
    # The evidence is in S3, the pre-OOM snapshot complete and verified.
    archive = Archive.from_url(
        kube_operator.archive_url, credentials=s3.credentials, options=s3.options
    )
    keys = await archive.list_snapshots(namespace, "checkout-oom", "checkout", "app", 0)
    assert len(keys) >= 3
    assert pre in {k.path() for k in keys}
    # metrics-server samples every 10 s: the first threshold seen may be above 80 %.
    reasons = {k.reason for k in keys}
    assert "baseline" in reasons and [r for r in reasons if r.startswith("threshold-")], reasons
    pre_key = next(k for k in keys if k.path() == pre)
    await archive.verify(pre_key)
    # Events on the CR and on the pod.
    reasons = {e["reason"] for e in cr_events}
    assert {"SnapshotCaptured", "ThresholdCrossed", "OOMKilled", "LeakSuspected"} <= reasons
    assert "OOMKilled" in {e["reason"] for e in pod_events}
    # As the chart's ServiceAccount, memory came from PodMetrics lists (the real
    # metrics-server through the aggregator), never a GET per pod, and nothing was forbidden.
    requests = kube.audit_events(kube_operator.user, since=kube_operator.started)
    assert requests, f"no request by {kube_operator.user} in the audit log"
    metrics = [e for e in requests if e.get("objectRef", {}).get("apiGroup") == "metrics.k8s.io"]
    assert metrics and not [e for e in metrics if e["objectRef"].get("name")]
    assert not kube_operator.forbidden()
    # The Table (kubectl get mi) shows the story.
    names = [c["name"] for c in table["columnDefinitions"]]
    cells = dict(zip(names, table["rows"][0]["cells"], strict=True))
    assert cells["OOMKills"] >= 1 and cells["Snapshots"] >= 3
    assert cells["Suspect"] and cells["Heap growth"]
