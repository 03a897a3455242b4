"""A hostile endpoint beside a healthy one: a gzip bomb for the heap profile, a slowloris
for its text form, an HTML login page for the goroutines. The operator reports it as a
condition, in bounded memory, without an event storm, and keeps serving the other
investigation; deleting the hostile pod mid-capture ends its work cleanly."""

from __future__ import annotations

import resource
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.operator_harness import (
    MI,
    PODS,
    apply_crd,
    condition,
    events_about,
    operator_environment,
    poll,
    require_cluster,
    running_operator,
)
from tests.support.cluster import ClusterFront, Kubelet
from tests.support.cluster.pods import container, leaky_pod, pod
from tests.support.leaky import FIXTURE_BIN
from tests.support.moto import MotoServer

pytestmark = [pytest.mark.gotool, pytest.mark.timeout(300)]
HOSTILE = Path(__file__).resolve().parents[1] / "support" / "hostile_pod.py"
MEMORY_BOUND = 256 * 2**20  # the bomb inflates to 256 MiB; a parser that inflated it would pass


def investigation(name: str, app: str) -> dict[str, Any]:
    return {
        "apiVersion": "oomforensics.io/v1alpha1",
        "kind": "MemoryInvestigation",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": app}},
            "endpoint": {"portName": "http"},
            "sampling": {"interval": "1s"},
        },
    }


def max_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


async def test_a_hostile_endpoint_is_a_condition_and_the_others_are_still_served(
    front: ClusterFront,
    kubelet: Kubelet,
    s3: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    require_cluster(front)
    if not FIXTURE_BIN.is_file():
        pytest.skip(f"{FIXTURE_BIN} is not built (hack/build-go-fixtures.sh)")
    operator_environment(monkeypatch, front, s3, "e2e-hostile", tmp_path / "spool")
    monkeypatch.setenv("OOMF_CAPTURE_TIMEOUT", "5")
    requests = tmp_path / "mallory-requests.log"

    def heap_requests() -> int:
        lines = requests.read_text().splitlines() if requests.exists() else []
        return lines.count("/debug/pprof/heap")

    async with httpx.AsyncClient(base_url=front.url, timeout=30) as http:
        await apply_crd(http)
        hostile = pod(
            "mallory",
            [
                container(
                    "app",
                    [sys.executable, str(HOSTILE)],
                    env={"HOSTILE_LOG": str(requests)},
                    ports={"http": 0},
                )
            ],
            labels={"app": "mallory"},
        )
        steady = leaky_pod("alice", "steady", labels={"app": "alice"}, memory_limit="256Mi")
        for body in (hostile, steady):
            assert (await http.post(PODS, json=body)).status_code == 201
        for body in (investigation("mallory", "mallory"), investigation("alice", "alice")):
            assert (await http.post(MI, json=body)).status_code == 201

        async def get(name: str) -> dict[str, Any]:
            answer: dict[str, Any] = (await http.get(f"{MI}/{name}")).json()
            return answer

        before = max_rss()
        async with running_operator() as operator:

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
            told = [e["message"] for e in events_about(front, "MemoryInvestigation", "mallory")]

            # the hostile pod goes away mid-capture (its slowloris is always in flight)
            assert (await http.delete(f"{PODS}/mallory")).status_code == 200

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
