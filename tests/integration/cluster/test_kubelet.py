"""The test kubelet runs pods as real processes in memory cgroups and reports like a kubelet.

The story: a leaking Go service in a pod with a 128Mi limit. Through the API you see it run,
its PodMetrics climb, the kernel OOM-kill it (OOMKilled, 137, restartCount 1) and the kubelet
start it again. Also: ordinary exits, crash-loop back-off, environment and `$(VAR)`
expansion, logs, and deletion (process and cgroup gone).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from oomforensics.quantity import parse_memory
from tests.support.cluster import (
    PORT_ANNOTATION,
    ClusterFront,
    Kubelet,
    until,
)
from tests.support.cluster.front import memory_bytes
from tests.support.cluster.pods import container, leaky_pod, pod
from tests.support.leaky import FIXTURE_BIN

PODS_URL = "/api/v1/namespaces/default/pods"
METRICS_URL = "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods"
LIMIT = "128Mi"


@pytest.fixture
async def http(front: ClusterFront) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=front.url, timeout=30) as client:
        yield client


async def get_pod(http: httpx.AsyncClient, name: str) -> dict[str, Any]:
    response = await http.get(f"{PODS_URL}/{name}")
    response.raise_for_status()
    return dict(response.json())


def container_status(body: dict[str, Any]) -> dict[str, Any]:
    statuses = (body.get("status") or {}).get("containerStatuses") or [{}]
    return dict(statuses[0])


def condition(body: dict[str, Any], type_: str) -> str | None:
    for item in (body.get("status") or {}).get("conditions") or []:
        if item["type"] == type_:
            return str(item["status"])
    return None


async def working_set(http: httpx.AsyncClient, name: str) -> tuple[str, int] | None:
    """(timestamp, bytes) of the pod's PodMetrics, None while there are none."""
    response = await http.get(f"{METRICS_URL}/{name}")
    if response.status_code == 404:
        return None
    response.raise_for_status()
    metrics = response.json()
    return metrics["timestamp"], memory_bytes(metrics["containers"][0]["usage"]["memory"])


@pytest.mark.gotool
async def test_a_leaking_pod_is_oom_killed_by_the_kernel_and_restarted(
    front: ClusterFront, kubelet: Kubelet, http: httpx.AsyncClient
):
    if not FIXTURE_BIN.is_file():
        pytest.skip(f"{FIXTURE_BIN} is not built (hack/build-go-fixtures.sh)")
    created = await http.post(PODS_URL, json=leaky_pod("leaky", "mapcache", memory_limit=LIMIT))
    assert created.status_code == 201
    spec_port = created.json()["spec"]["containers"][0]["ports"][0]["containerPort"]
    assert spec_port > 0
    assert created.json()["metadata"]["annotations"] == {
        PORT_ANNOTATION.format(container="app"): str(spec_port)
    }

    async def ready() -> dict[str, Any] | None:
        body = await get_pod(http, "leaky")
        return body if condition(body, "Ready") == "True" else None

    running = await until(ready, 30, "the leaky pod to be Ready")
    assert running["spec"]["nodeName"] == kubelet.node_name
    status = running["status"]
    assert status["phase"] == "Running" and status["podIP"] == status["hostIP"] == "127.0.0.1"
    assert {c["type"] for c in status["conditions"]} >= {
        "PodScheduled",
        "Initialized",
        "ContainersReady",
        "Ready",
    }
    first = container_status(running)
    assert first["name"] == "app" and first["ready"] is True and first["started"] is True
    assert first["restartCount"] == 0 and first["lastState"] == {}
    assert first["containerID"].startswith("containerd://") and "@sha256:" in first["imageID"]
    assert "startedAt" in first["state"]["running"]
    first_pid = kubelet.pid("default", "leaky", "app")
    assert first_pid is not None

    # The service answers on its port, through the API server's pod proxy too.
    proxied = await http.get(f"{PODS_URL}/leaky:http/proxy/metrics")
    assert proxied.status_code == 200 and "process_resident_memory_bytes" in proxied.text

    # Memory climbs in PodMetrics (the cgroup's working set, as metrics-server reports it).
    samples: list[int] = []

    async def climbed() -> bool:
        sample = await working_set(http, "leaky")
        if sample is not None and (not samples or sample[1] != samples[-1]):
            samples.append(sample[1])
        return len(samples) >= 3 and samples[-1] > samples[0] + 16 * 2**20

    await until(climbed, 30, "PodMetrics to show the working set climbing by 16 MiB")
    assert samples == sorted(samples) and samples[-1] < parse_memory(LIMIT)

    # The kernel kills it at the limit; the kubelet reports it and starts it again.
    async def restarted() -> dict[str, Any] | None:
        body = await get_pod(http, "leaky")
        status = container_status(body)
        return body if status.get("restartCount") == 1 and status.get("ready") else None

    after = container_status(await until(restarted, 90, "an OOM kill and a restart"))
    terminated = after["lastState"]["terminated"]
    assert terminated["reason"] == "OOMKilled" and terminated["exitCode"] == 137
    assert terminated["containerID"] == first["containerID"]
    assert terminated["startedAt"] == first["state"]["running"]["startedAt"]
    assert terminated["finishedAt"] >= terminated["startedAt"]
    assert after["containerID"] != first["containerID"]
    assert after["state"]["running"]["startedAt"] >= terminated["finishedAt"]
    new_pid = kubelet.pid("default", "leaky", "app")
    assert new_pid is not None and new_pid != first_pid
    assert not Path(f"/proc/{first_pid}").exists()

    # Metrics again, from the new process: back near the start.
    async def fresh() -> int | None:
        sample = await working_set(http, "leaky")
        return sample[1] if sample is not None and sample[1] < parse_memory(LIMIT) // 2 else None

    await until(fresh, 30, "PodMetrics of the restarted container")
    previous_log = await http.get(f"{PODS_URL}/leaky/log", params={"previous": "true"})
    assert previous_log.status_code == 200 and "LISTENING" in previous_log.text


async def test_exits_are_reported_with_their_codes_and_the_environment_is_expanded(
    front: ClusterFront, kubelet: Kubelet, http: httpx.AsyncClient
):
    script = 'echo "port=$PORT named=$PORT_METRICS greeting=$GREETING"; exit 3'
    failing = pod(
        "fails",
        [
            container(
                "main",
                ["/bin/sh", "-c", script],
                env={"GREETING": "hello-$(PORT)-$$(PORT)"},
                ports={"metrics": 0},
            )
        ],
        restart_policy="Never",
    )
    await http.post(PODS_URL, json=failing)
    completing = pod("completes", [container("main", ["true"])], restart_policy="OnFailure")
    await http.post(PODS_URL, json=completing)

    async def phase(name: str, expected: str) -> dict[str, Any] | None:
        body = await get_pod(http, name)
        return body if body["status"]["phase"] == expected else None

    failed = await until(lambda: phase("fails", "Failed"), 30, "the failing pod to be Failed")
    state = container_status(failed)["state"]["terminated"]
    assert (state["reason"], state["exitCode"]) == ("Error", 3)
    assert container_status(failed)["restartCount"] == 0
    assert condition(failed, "Ready") == "False"

    port = failed["spec"]["containers"][0]["ports"][0]["containerPort"]
    log = (await http.get(f"{PODS_URL}/fails/log")).text
    assert log.strip() == f"port={port} named={port} greeting=hello-{port}-$(PORT)"

    done = await until(lambda: phase("completes", "Succeeded"), 30, "the other to Succeed")
    state = container_status(done)["state"]["terminated"]
    assert (state["reason"], state["exitCode"]) == ("Completed", 0)


async def test_a_crashing_container_backs_off(
    front: ClusterFront, kubelet: Kubelet, http: httpx.AsyncClient
):
    await http.post(PODS_URL, json=pod("crashes", [container("main", ["/bin/sh", "-c", "exit 1"])]))
    reasons: set[str] = set()

    async def backing_off() -> bool:
        status = container_status(await get_pod(http, "crashes"))
        reasons.update(s.get("reason", "") for s in status.get("state", {}).values())
        return status.get("restartCount", 0) >= 2 and "CrashLoopBackOff" in reasons

    await until(backing_off, 30, "restarts with CrashLoopBackOff between them")
    last = container_status(await get_pod(http, "crashes"))["lastState"]["terminated"]
    assert (last["reason"], last["exitCode"]) == ("Error", 1)


@pytest.mark.gotool
async def test_deleting_a_pod_stops_its_process_and_removes_its_cgroup(
    front: ClusterFront, kubelet: Kubelet, http: httpx.AsyncClient
):
    if not FIXTURE_BIN.is_file():
        pytest.skip(f"{FIXTURE_BIN} is not built (hack/build-go-fixtures.sh)")
    await http.post(PODS_URL, json=leaky_pod("short-lived", "steady", memory_limit="64Mi"))

    async def measured() -> bool:
        return await working_set(http, "short-lived") is not None

    await until(measured, 30, "the pod to run and be measured")
    pid = kubelet.pid("default", "short-lived", "app")
    cgroup = kubelet.cgroup("default", "short-lived", "app")
    assert pid is not None and cgroup is not None and pid in cgroup.processes()

    marked = (await http.delete(f"{PODS_URL}/short-lived")).json()
    assert marked["metadata"]["deletionTimestamp"]  # graceful: the kubelet finishes it

    async def gone() -> bool:
        return (await http.get(f"{PODS_URL}/short-lived")).status_code == 404

    await until(gone, 30, "the pod to be deleted for good")
    assert not Path(f"/proc/{pid}").exists()
    assert not cgroup.path.exists()
    assert (await http.get(f"{METRICS_URL}/short-lived")).status_code == 404
