"""The real test cluster's node (hack/cluster: the kubelet on containerd and runc, cgroup v1):
a pod of our own image runs on loopback, the kernel OOM-kills it in its memory cgroup, and
the kubelet's status says so as on any cluster; metrics-server serves its working set
through the aggregation layer."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.kube import KubeCluster
from tests.support.kube.images import fixture_image
from tests.support.kube.pods import leaky_pod
from tests.support.waiting import eventually

pytestmark = [pytest.mark.gotool, pytest.mark.timeout(300)]


@pytest.fixture
def namespace(kube: KubeCluster) -> Iterator[str]:
    name = f"node-{secrets.token_hex(3)}"
    kube.ensure_namespace(name)
    yield name
    kube.kubectl("delete", "namespace", name, "--wait=false", check=False)


def container_status(http: httpx.Client, namespace: str, pod: str) -> dict[str, Any] | None:
    body = http.get(f"/api/v1/namespaces/{namespace}/pods/{pod}").json()
    statuses = (body.get("status") or {}).get("containerStatuses") or []
    return dict(statuses[0]) if statuses else None


def test_a_pod_oom_killed_by_the_kernel_shows_the_kubelets_status(
    kube: KubeCluster, namespace: str
) -> None:
    image = fixture_image(kube, "leaky")
    pod = leaky_pod("oom", namespace, image, "mapcache", memory_limit="64Mi", rate=80)
    with kube.http() as http:
        created = http.post(f"/api/v1/namespaces/{namespace}/pods", json=pod)
        assert created.status_code == 201, created.text

        def restarted_after_oom() -> dict[str, Any] | None:
            status = container_status(http, namespace, "oom")
            terminated = ((status or {}).get("lastState") or {}).get("terminated") or {}
            return status if terminated.get("reason") == "OOMKilled" else None

        status = eventually(restarted_after_oom, 180, "the kubelet to report the OOM kill")
        terminated = status["lastState"]["terminated"]
        assert terminated["exitCode"] == 137
        assert status["restartCount"] >= 1
        assert status["containerID"].startswith("containerd://")
        body = http.get(f"/api/v1/namespaces/{namespace}/pods/oom").json()
        assert body["spec"]["nodeName"] == kube.node_name
        assert body["status"]["podIP"] == "127.0.0.1"

        def crash_loop() -> dict[str, Any] | None:
            current = container_status(http, namespace, "oom") or {}
            waiting = (current.get("state") or {}).get("waiting") or {}
            return current if waiting.get("reason") == "CrashLoopBackOff" else None

        # Killed again after the restart: the kubelet backs off (10 s, then doubling).
        eventually(crash_loop, 180, "CrashLoopBackOff after repeated OOM kills")


def test_metrics_server_serves_the_working_set_of_a_running_pod(
    kube: KubeCluster, namespace: str
) -> None:
    image = fixture_image(kube, "leaky")
    pod = leaky_pod("steady", namespace, image, "mapcache", memory_limit="256Mi", rate=1)
    with kube.http() as http:
        assert http.post(f"/api/v1/namespaces/{namespace}/pods", json=pod).status_code == 201
        url = f"/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods"

        def reported() -> dict[str, Any] | None:
            response = http.get(url)
            items = response.json().get("items") or [] if response.status_code == 200 else []
            return items[0] if items else None

        metrics = eventually(reported, 120, "metrics-server to report the pod")
        (usage,) = [c["usage"] for c in metrics["containers"] if c["name"] == "app"]
        memory = usage["memory"]
        assert memory.endswith("Ki"), memory
        assert 1024 < int(memory[:-2]) < 256 * 1024  # a working set under the limit
