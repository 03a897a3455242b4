"""A hostile endpoint beside a healthy one: a gzip bomb for the heap profile, a slowloris
for its text form, an HTML login page for the goroutines. The operator reports it as a
condition, in bounded memory, without an event storm, and keeps serving the other
investigation; deleting the hostile pod mid-capture ends its work cleanly.

On the real cluster: the hostile pod is the node's pause image on hostNetwork, and the hostile
server (tests/support/hostile_pod.py, Python, which no image here holds) listens on the pod's
declared port on the host, which is the pod's network: the operator meets it at the pod's
address, 127.0.0.1:<port>, as it would meet a process in the pod."""

from __future__ import annotations

import contextlib
import os
import resource
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.operator_harness import (
    apply_crd,
    condition,
    kube_events_about,
    kube_namespace,
    kube_operator_environment,
    poll,
    running_operator,
)
from tests.support.kube import KubeCluster
from tests.support.kube.images import fixture_image
from tests.support.kube.operator_access import operator_kubeconfig
from tests.support.kube.pods import free_port, host_pod, leaky_pod
from tests.support.moto import MotoServer
from tests.support.waiting import eventually

pytestmark = [pytest.mark.gotool, pytest.mark.timeout(300)]
HOSTILE = Path(__file__).resolve().parents[1] / "support" / "hostile_pod.py"
MEMORY_BOUND = 256 * 2**20  # the bomb inflates to 256 MiB; a parser that inflated it would pass


PAUSE_IMAGE = "oomforensics.local/pause:1"


@pytest.fixture
def namespace(kube: KubeCluster) -> Iterator[str]:
    with kube_namespace(kube, "hostile") as name:
        yield name


def investigation(name: str, namespace: str, app: str) -> dict[str, Any]:
    return {
        "apiVersion": "oomforensics.io/v1alpha1",
        "kind": "MemoryInvestigation",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "selector": {"matchLabels": {"app": app}},
            "endpoint": {"portName": "http"},
            "sampling": {"interval": "1s"},
        },
    }


@contextlib.contextmanager
def hostile_server(port: int, requests: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """tests/support/hostile_pod.py on 127.0.0.1:port, stopped on exit."""
    environment = {**os.environ, "PORT": str(port), "HOSTILE_LOG": str(requests)}
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, str(HOSTILE)], env=environment, stdout=output, stderr=output
        )
    try:
        with httpx.Client(timeout=2) as client:

            def listening() -> bool:
                try:
                    return client.get(f"http://127.0.0.1:{port}/metrics").status_code == 200
                except httpx.TransportError:
                    assert process.poll() is None, log.read_text()
                    return False

            eventually(listening, 30, "the hostile server to listen")
        yield process
    finally:
        process.kill()
        process.wait(10)


def max_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


async def test_a_hostile_endpoint_is_a_condition_and_the_others_are_still_served(
    kube: KubeCluster,
    namespace: str,
    s3: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    image = fixture_image(kube, "leaky")
    kubeconfig, _ = operator_kubeconfig(
        kube, tmp_path / "operator.kubeconfig", watch_namespaces=[namespace]
    )
    kube_operator_environment(
        monkeypatch, kubeconfig, s3, "e2e-hostile", tmp_path / "spool", namespace
    )
    monkeypatch.setenv("OOMF_CAPTURE_TIMEOUT", "5")
    mi = f"/apis/oomforensics.io/v1alpha1/namespaces/{namespace}/memoryinvestigations"
    pods = f"/api/v1/namespaces/{namespace}/pods"
    requests = tmp_path / "mallory-requests.log"

    def heap_requests() -> int:
        lines = requests.read_text().splitlines() if requests.exists() else []
        return lines.count("/debug/pprof/heap")

    port = free_port()
    async with contextlib.AsyncExitStack() as stack:
        stack.enter_context(hostile_server(port, requests, tmp_path / "mallory.log"))
        http = await stack.enter_async_context(kube.async_http())
        await apply_crd(http)
        hostile = host_pod(
            "mallory", namespace, PAUSE_IMAGE, [], port=port, labels={"app": "mallory"}
        )
        steady = leaky_pod(
            "alice", namespace, image, "steady", labels={"app": "alice"}, memory_limit="256Mi"
        )
        for body in (hostile, steady):
            created = await http.post(pods, json=body)
            assert created.status_code == 201, created.text
        for body in (
            investigation("mallory", namespace, "mallory"),
            investigation("alice", namespace, "alice"),
        ):
            assert (await http.post(mi, json=body)).status_code == 201

        async def get(name: str) -> dict[str, Any]:
            answer: dict[str, Any] = (await http.get(f"{mi}/{name}")).json()
            return answer

        before = max_rss()
        async with running_operator([namespace]) as operator:

            async def failing() -> dict[str, Any] | None:
                body = await get("mallory")
                return (
                    body if condition(body, "Capturing").get("reason") == "CaptureFailed" else None
                )

            async def served() -> dict[str, Any] | None:
                body = await get("alice")
                count = ((body.get("status") or {}).get("snapshots") or {}).get("count") or 0
                return (
                    body
                    if count >= 1 and condition(body, "Ready").get("status") == "True"
                    else None
                )

            failed = await poll(failing, 90, "CaptureFailed for the hostile endpoint", operator)
            healthy = await poll(served, 60, "the healthy investigation's snapshot", operator)
            # two more attempts that fail the same way
            attempts = heap_requests()

            async def retried() -> bool:
                return heap_requests() >= attempts + 2

            await poll(retried, 90, "two more capture attempts", operator)
            told = [
                e["message"]
                for e in await kube_events_about(http, namespace, "MemoryInvestigation", "mallory")
            ]

            # the hostile pod goes away mid-capture (its slowloris is always in flight)
            assert (await http.delete(f"{pods}/mallory")).status_code == 200

            async def gone() -> dict[str, Any] | None:
                body = await get("mallory")
                return body if (body.get("status") or {}).get("targetCount") == 0 else None

            ended = await poll(gone, 90, "the deleted pod to leave the targets", operator)
            still = await poll(served, 30, "the healthy investigation still served", operator)
            assert not operator.done()
        grown = max_rss() - before

    message = condition(failed, "Capturing")["message"]
    assert "mallory" in message
    assert "heap.pb.gz" in message  # the bomb is named, by the file it would have been
    assert condition(healthy, "Capturing")["reason"] == "Sampling"
    assert condition(ended, "Capturing")["reason"] == "NoMatchingPods"
    assert condition(still, "Ready")["status"] == "True"
    assert grown < MEMORY_BOUND, f"the test process grew by {grown} bytes"
    # The same failure, attempt after attempt, is one Event (no storm of them).
    assert sum("capture failed" in m for m in told) == 1, told
