"""From outside the pod network: captures through the real API server's pods/proxy
subresource, which the chart allows only when asked (`rbac.proxyAccess`), and a pod without a
memory limit is still watched (the user is told what that turns off).

The pod has a network namespace of its own (198.18.0.0/24, hack/cluster): the API server
refuses to proxy to a loopback address, so a hostNetwork pod on 127.0.0.1 cannot be reached
this way."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.e2e.operator_harness import KubeOperator, apply_crd, condition, poll, running_operator
from tests.support.kube.images import fixture_image
from tests.support.kube.pods import leaky_pod

pytestmark = [pytest.mark.gotool, pytest.mark.timeout(300)]
PROXY_VALUES = {"rbac": {"proxyAccess": True}}
PROXIED_PATH = re.compile(r"^/api/v1/namespaces/[^/]+/pods/[^/]+/proxy")


def _investigation(name: str, app: str) -> dict[str, Any]:
    return {
        "apiVersion": "oomforensics.io/v1alpha1",
        "kind": "MemoryInvestigation",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": app}},
            "endpoint": {"portName": "http", "access": "apiserver-proxy"},
            "sampling": {"interval": "1s"},
        },
    }


def _proxied(operator: KubeOperator, pod: str) -> list[dict[str, Any]]:
    """The operator's pods/proxy requests to that pod, from the API server's audit log."""
    return [
        e
        for e in operator.kube.audit_events(operator.user, since=operator.started)
        if e.get("objectRef", {}).get("subresource") == "proxy"
        and e["objectRef"].get("name", "").startswith(pod)
    ]


async def test_snapshots_through_the_api_server_proxy_of_a_pod_without_a_limit(
    kube_operator: KubeOperator,
) -> None:
    kube, namespace = kube_operator.kube, kube_operator.namespace
    kube_operator.rbac_with(PROXY_VALUES)
    image = fixture_image(kube, "leaky")
    async with kube.async_http() as http:
        await apply_crd(http)
        pod = leaky_pod(
            "steady",
            namespace,
            image,
            labels={"app": "steady"},
            memory_limit=None,
            rate=1,
            host_network=False,
        )
        assert (await http.post(kube_operator.pods, json=pod)).status_code == 201
        created = await http.post(kube_operator.mi, json=_investigation("steady", "steady"))
        assert created.status_code == 201, created.text
        async with running_operator([namespace]) as operator:

            async def captured() -> dict[str, Any] | None:
                current: dict[str, Any] = (await http.get(f"{kube_operator.mi}/steady")).json()
                status = current.get("status") or {}
                return current if (status.get("snapshots") or {}).get("count") else None

            current = await poll(captured, 120, "a snapshot through pods/proxy", operator)
        pod_now = (await http.get(f"{kube_operator.pods}/steady")).json()
    # The pod is off loopback, where the API server can proxy to it.
    assert pod_now["status"]["podIP"].startswith("198.18."), pod_now["status"]
    status = current["status"]
    assert status["snapshots"]["lastReason"] == "baseline"
    capturing = condition(current, "Capturing")
    assert (capturing["status"], capturing["reason"]) == ("True", "NoMemoryLimit")
    assert "limit" in capturing["message"].lower()
    assert condition(current, "Ready")["status"] == "True"
    # Every profile came through the real API server's pods/proxy, as the chart's account.
    proxied = _proxied(kube_operator, "steady")
    paths = {PROXIED_PATH.sub("", e["requestURI"]).split("?", 1)[0] for e in proxied}
    assert {"/debug/pprof/heap", "/debug/pprof/goroutine"} <= paths, paths
    # (The leak profile is Go's experiment: this fixture is built without it and says 404.)
    answers = {
        e["requestURI"]: e["responseStatus"]["code"]
        for e in proxied
        if "/goroutineleak" not in e["requestURI"]
    }
    assert set(answers.values()) == {200}, answers
    assert not kube_operator.forbidden()


async def test_without_the_charts_proxy_access_the_investigation_says_it_is_forbidden(
    kube_operator: KubeOperator,
) -> None:
    """The chart's default RBAC has no pods/proxy: the real authorizer refuses, and the
    investigation says so instead of failing silently."""
    kube, namespace = kube_operator.kube, kube_operator.namespace
    image = fixture_image(kube, "leaky")
    async with kube.async_http() as http:
        await apply_crd(http)
        pod = leaky_pod(
            "walled",
            namespace,
            image,
            labels={"app": "walled"},
            memory_limit="256Mi",
            rate=1,
            host_network=False,
        )
        assert (await http.post(kube_operator.pods, json=pod)).status_code == 201
        created = await http.post(kube_operator.mi, json=_investigation("walled", "walled"))
        assert created.status_code == 201, created.text
        async with running_operator([namespace]) as operator:

            async def refused() -> dict[str, Any] | None:
                current: dict[str, Any] = (await http.get(f"{kube_operator.mi}/walled")).json()
                capturing = condition(current, "Capturing")
                return current if capturing.get("status") == "False" else None

            current = await poll(refused, 120, "Capturing False for pods/proxy", operator)
    capturing = condition(current, "Capturing")
    assert "403" in capturing["message"] or "forbidden" in capturing["message"].lower(), capturing
    assert not (current["status"].get("snapshots") or {}).get("count")
    forbidden = kube_operator.forbidden()
    assert forbidden and all(PROXIED_PATH.match(uri) for _, uri in forbidden), forbidden
