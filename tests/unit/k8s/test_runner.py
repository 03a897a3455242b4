"""The runner's pure decisions: which containers, where their pprof is, what they use, and
the status patch that replaces what is gone."""

from __future__ import annotations

from typing import Any

from oomforensics.k8s.conditions import replacing_patch
from oomforensics.k8s.spec import Endpoint, parse_spec
from oomforensics.k8s.targets import (
    essential_pod,
    metrics_url,
    pprof_base,
    select_targets,
    working_sets,
)
from oomforensics.triggers import detect_oom_kills

SPEC = parse_spec({"selector": {"matchLabels": {"app": "checkout"}}})


def pod(name: str, labels: dict[str, str], **extra: Any) -> dict[str, Any]:
    container = {
        "name": "app",
        "image": "shop/checkout:1",
        "ports": [{"name": "http", "containerPort": 6060}],
        "resources": {"limits": {"memory": "256Mi"}},
        **extra,
    }
    return {
        "metadata": {"name": name, "uid": f"uid-{name}", "labels": labels},
        "spec": {"containers": [container, {"name": "sidecar"}], "nodeName": "n1"},
        "status": {
            "podIP": "10.0.0.7",
            "containerStatuses": [
                {"name": "app", "restartCount": 2, "state": {"running": {}}},
            ],
        },
    }


def test_only_selected_pods_and_their_first_container_are_targets() -> None:
    targets = select_targets(
        [pod("b", {"app": "checkout"}), pod("a", {"app": "checkout"}), pod("c", {"app": "cart"})],
        SPEC,
    )
    assert [(t.pod, t.container) for t in targets] == [("a", "app"), ("b", "app")]
    first = targets[0]
    assert first.limit == 256 * 2**20 and first.port == 6060 and first.restart_count == 2
    assert first.running and first.ip == "10.0.0.7" and first.problem is None


def test_a_pod_without_a_limit_or_a_port_is_flagged_not_dropped() -> None:
    bare = pod("a", {"app": "checkout"}, resources={}, ports=[])
    (target,) = select_targets([bare], SPEC)
    assert target.limit is None
    assert target.problem is not None and "spec.endpoint.port" in target.problem
    named = parse_spec(
        {"selector": {"matchLabels": {"app": "checkout"}}, "endpoint": {"portName": "debug"}}
    )
    (target,) = select_targets([pod("a", {"app": "checkout"})], named)
    assert target.problem is not None and "'debug'" in target.problem


def test_pprof_is_reached_directly_or_through_the_api_server() -> None:
    (target,) = select_targets([pod("a", {"app": "checkout"})], SPEC)
    assert pprof_base(target, Endpoint(), "shop") == "http://10.0.0.7:6060/debug/pprof"
    proxy = Endpoint(access="apiserver-proxy", scheme="https")
    assert pprof_base(target, proxy, "shop") == (
        "/api/v1/namespaces/shop/pods/https:a:6060/proxy/debug/pprof"
    )
    # the fallback memory source is on the same port, at the root
    assert metrics_url(target, Endpoint(path="/internal/pprof"), "shop") == (
        "http://10.0.0.7:6060/metrics"
    )
    assert (
        metrics_url(target, proxy, "shop")
        == "/api/v1/namespaces/shop/pods/https:a:6060/proxy/metrics"
    )


def test_working_sets_come_from_one_pod_metrics_list() -> None:
    items = [
        {"metadata": {"name": "a"}, "containers": [{"name": "app", "usage": {"memory": "2Mi"}}]},
        {"metadata": {"name": "b"}, "containers": [{"name": "app", "usage": {"memory": "0"}}]},
        {"metadata": {"name": "c"}, "containers": [{"name": "app", "usage": {"memory": "x"}}]},
    ]
    assert working_sets(items) == {("a", "app"): 2 * 2**20, ("b", "app"): 0}


def test_the_status_patch_clears_what_is_no_longer_there() -> None:
    previous = {"summary": {"suspect": "main.f", "heapGrowth": "+1MB"}, "targets": [1], "x": 1}
    new = {"summary": {"heapGrowth": "+2MB"}, "targets": []}
    assert replacing_patch(previous, new) == {
        "summary": {"heapGrowth": "+2MB", "suspect": None},
        "targets": [],
        "x": None,
    }


def test_an_essential_pod_keeps_what_the_operator_reads() -> None:
    full = pod("a", {"app": "checkout"})
    full["metadata"]["managedFields"] = [{"manager": "kubelet", "fieldsV1": {"f:status": {}}}]
    full["spec"]["volumes"] = [{"name": "data", "emptyDir": {}}]
    full["spec"]["containers"][0]["env"] = [{"name": "TOKEN", "value": "x" * 4096}]
    full["status"]["containerStatuses"][0]["lastState"] = {
        "terminated": {"reason": "OOMKilled", "exitCode": 137, "finishedAt": "2026-11-27T03:00:00Z"}
    }
    slim = essential_pod(full)
    assert "managedFields" not in slim["metadata"] and "volumes" not in slim["spec"]
    assert "env" not in slim["spec"]["containers"][0]
    assert select_targets([slim], SPEC) == select_targets([full], SPEC)
    assert detect_oom_kills(None, slim, since=0) == detect_oom_kills(None, full, since=0)
    assert detect_oom_kills(None, slim, since=0)  # the kill is still visible
