"""The operator's /metrics, scraped over HTTP on the real cluster: a leaking Go pod with a
memory limit runs on the real kubelet until the kernel OOM-kills it; the operator (the chart's
ServiceAccount and RBAC, S3 on moto) captures snapshots on the way; once the kill is recorded
the investigation is suspended, so that nothing changes while the figures are checked against
what happened: every snapshot in the archive counted once under its reason, their bytes, one
latency per durable snapshot, the kill counted once and with evidence, the investigation by
its conditions, an empty spool, no API error, and no pod name or uid in any label."""

from __future__ import annotations

import os
import socket
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from oomforensics.archive.store import Archive
from oomforensics.k8s import metrics
from tests.e2e.operator_harness import KubeOperator, apply_crd, condition, poll, running_operator
from tests.support.kube.images import fixture_image
from tests.support.kube.pods import leaky_pod
from tests.support.moto import MotoServer

pytestmark = [pytest.mark.gotool, pytest.mark.timeout(480)]
ARTIFACTS = Path(os.environ.get("OOMF_E2E_ARTIFACTS", "/tmp/oomf-e2e"))
NAME = "leak-watch"  # the investigation; its pod is "checkout": a label must never say that


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(http: httpx.AsyncClient, port: int) -> tuple[str, Samples]:
    page = await http.get(f"http://127.0.0.1:{port}/metrics")
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(page.text)
        for s in family.samples
    }
    return page.text, samples


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, got), v in samples.items() if n == name and wanted <= got)


def api_errors() -> float:
    """Every API error this process counted so far (earlier tests' included)."""
    return sum(
        s.value
        for family in metrics.REGISTRY.collect()
        if family.name == "oomforensics_api_errors"
        for s in family.samples
        if s.name.endswith("_total")
    )


async def test_the_scraped_figures_are_what_the_operator_did(
    kube_operator: KubeOperator, s3: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    kube, namespace, mi = kube_operator.kube, kube_operator.namespace, kube_operator.mi
    port = free_port()
    monkeypatch.setenv("OOMF_METRICS_PORT", str(port))
    monkeypatch.setenv("OOMF_METRICS_ADDRESS", "127.0.0.1")
    image = fixture_image(kube, "leaky")
    errors_before = api_errors()
    async with kube.async_http() as api, httpx.AsyncClient(timeout=10) as http:
        await apply_crd(api)
        pod = leaky_pod(
            "checkout", namespace, image, "tls403", labels={"app": "checkout"},
            memory_limit="160Mi", rate=20,
        )  # fmt: skip
        created = await api.post(kube_operator.pods, json=pod)
        assert created.status_code == 201, created.text
        investigation = {
            "apiVersion": "oomforensics.io/v1alpha1",
            "kind": "MemoryInvestigation",
            "metadata": {"name": NAME, "namespace": namespace},
            "spec": {
                "selector": {"matchLabels": {"app": "checkout"}},
                "endpoint": {"portName": "http"},
                "sampling": {"interval": "1s"},
                "snapshots": {"interval": "30s"},
                "triggers": {"cooldown": "5s"},
            },
        }
        created = await api.post(mi, json=investigation)
        assert created.status_code == 201, created.text

        async with running_operator([namespace]) as operator:

            async def killed() -> dict[str, Any] | None:
                body: dict[str, Any] = (await api.get(f"{mi}/{NAME}")).json()
                return body if (body.get("status") or {}).get("oomKills") else None

            await poll(killed, 300, "the operator to record the OOM kill", operator)
            # Suspended, the investigation captures no more: the figures stand still.
            patched = await api.patch(
                f"{mi}/{NAME}",
                json={"spec": {"suspend": True}},
                headers={"Content-Type": "application/merge-patch+json"},
            )
            assert patched.status_code == 200, patched.text

            async def suspended() -> dict[str, Any] | None:
                body: dict[str, Any] = (await api.get(f"{mi}/{NAME}")).json()
                return body if condition(body, "Capturing").get("reason") == "Suspended" else None

            body = await poll(suspended, 60, "the investigation to be suspended", operator)
            text, samples = await scrape(http, port)
            pod_now = (await api.get(f"{kube_operator.pods}/checkout")).json()
        # The operator stopped: its page went with it.
        with pytest.raises(httpx.ConnectError):
            await http.get(f"http://127.0.0.1:{port}/metrics")

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "metrics-page.txt").write_text(text)
    archive = Archive.from_url(
        kube_operator.archive_url, credentials=s3.credentials, options=s3.options
    )
    keys = await archive.list_snapshots(namespace, NAME)
    assert len(keys) >= 3, keys
    ours = {"namespace": namespace, "investigation": NAME}
    # Every snapshot in the archive was counted once, under its own reason; none spooled,
    # none lost (S3 answered throughout).
    by_reason = Counter(k.reason for k in keys)
    for reason, count in by_reason.items():
        got = total(samples, "oomforensics_captures_total", **ours, reason=reason, outcome="stored")
        assert got == count, (reason, got, count)
    assert total(samples, "oomforensics_captures_total", **ours, outcome="stored") == len(keys)
    assert total(samples, "oomforensics_captures_total", **ours, outcome="spooled") == 0
    assert total(samples, "oomforensics_captures_total", **ours, outcome="storage_failed") == 0
    assert body["status"]["snapshots"]["count"] == len(keys)
    # Their bytes: the files of each snapshot, as the manifests in the archive record them.
    manifests = [await archive.read_manifest(k) for k in keys]
    stored_bytes = sum(d.size for m in manifests for d in m.files.values())
    assert total(samples, "oomforensics_snapshot_bytes_total", **ours, outcome="stored") == (
        stored_bytes
    )
    # One trigger-to-durable latency per snapshot (namespace and reason: no investigation
    # label on histograms), each below the test's own length; one fetch time per attempt.
    durable = total(samples, "oomforensics_trigger_to_durable_seconds_count", namespace=namespace)
    assert durable == len(keys)
    assert total(samples, "oomforensics_trigger_to_durable_seconds_sum", namespace=namespace) > 0
    attempts = total(samples, "oomforensics_captures_total", **ours)
    fetched = total(samples, "oomforensics_capture_duration_seconds_count", namespace=namespace)
    assert fetched == attempts
    # The kill: once, with the evidence of a snapshot taken before it.
    (container,) = pod_now["status"]["containerStatuses"]
    assert container["lastState"]["terminated"]["reason"] == "OOMKilled"
    assert len(body["status"]["oomKills"]) == 1
    assert total(samples, "oomforensics_oom_kills_total", **ours, evidence="true") == 1
    assert total(samples, "oomforensics_oom_kills_total", **ours, evidence="false") == 0
    # The investigation by its conditions, as its status has them.
    for type_ in ("OOMObserved", "Capturing", "StorageReady"):
        got = condition(body, type_)
        labels = {"condition": type_, "status": got["status"], "reason": got["reason"]}
        assert total(samples, "oomforensics_investigations", namespace=namespace, **labels) == 1
    assert total(samples, "oomforensics_investigations", namespace=namespace) == 5
    # Nothing waits in the spool; the operator's own API calls never failed.
    spool = {"archive": kube_operator.archive_url}
    assert total(samples, "oomforensics_spool_snapshots", **spool) == 0
    assert total(samples, "oomforensics_spool_bytes", **spool) == 0
    assert total(samples, "oomforensics_spool_capacity_bytes", **spool) > 0
    assert api_errors() == errors_before
    # No label names the pod, its uid or a snapshot.
    uid = pod_now["metadata"]["uid"]
    for forbidden in ("checkout", uid, *(k.path() for k in keys)):
        assert forbidden not in text, forbidden
