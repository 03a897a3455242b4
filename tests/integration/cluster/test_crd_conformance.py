"""The MemoryInvestigation CRD from crds/, on the real kube-apiserver: it applies, the
server fills the defaults, rejects bad specs naming the field, keeps the exact status the
operator writes, and renders the printer columns a user sees in `kubectl get mi`."""

import copy
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from oomforensics.analysis.comparison import compare
from oomforensics.cli.files import load_snapshot
from oomforensics.k8s.status import (
    Condition,
    OomKillStatus,
    TargetStatus,
    build_status,
    oom_summary_json,
    summary_json,
)
from tests.support.kube import KubeCluster
from tests.support.kube.crds import wait_for_crd
from tests.support.waiting import eventually

CRD_FILE = Path(__file__).parents[3] / "crds" / "memoryinvestigations.oomforensics.io.yaml"
CRD = yaml.safe_load(CRD_FILE.read_text())
BASE = "/apis/oomforensics.io/v1alpha1/namespaces/shop/memoryinvestigations"
MINIMAL = {"selector": {"matchLabels": {"app": "checkout"}}, "endpoint": {"port": 6060}}
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"


@pytest.fixture(scope="module")
def api(kube: KubeCluster) -> Iterator[httpx.Client]:
    kube.ensure_namespace("shop")
    with kube.http() as http:
        crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
        response = http.post(crds, json=CRD)
        assert response.status_code in (201, 409), response.text
        if response.status_code == 409:  # applied by an earlier module: replace it
            current = http.get(f"{crds}/{CRD['metadata']['name']}").json()
            body = {
                **CRD,
                "metadata": {
                    **CRD["metadata"],
                    "resourceVersion": current["metadata"]["resourceVersion"],
                },
            }
            assert http.put(f"{crds}/{CRD['metadata']['name']}", json=body).status_code == 200

        wait_for_crd(http, CRD["metadata"]["name"])
        eventually(lambda: http.get(BASE).status_code == 200, 30, "the resource to be served")
        yield http


def create(api: httpx.Client, name: str, spec: dict[str, Any]) -> httpx.Response:
    body = {
        "apiVersion": "oomforensics.io/v1alpha1",
        "kind": "MemoryInvestigation",
        "metadata": {"name": name},
        "spec": spec,
    }
    return api.post(BASE, json=body)


def fresh_name(prefix: str) -> str:
    return f"{prefix}-{time.monotonic_ns() % 10**9}"


def test_the_server_fills_in_every_default(api):
    response = create(api, fresh_name("defaults"), MINIMAL)
    assert response.status_code == 201, response.text
    spec = response.json()["spec"]
    assert spec["endpoint"] == {
        "port": 6060,
        "path": "/debug/pprof",
        "scheme": "http",
        "access": "direct",
    }
    assert spec["sampling"] == {"interval": "15s"}
    assert spec["snapshots"] == {
        "interval": "10m",
        "profiles": ["heap", "heapText", "goroutine"],
        "gc": False,
    }
    assert spec["triggers"] == {
        "limitPercent": [80, 90, 95],
        "predictive": {"horizon": "2m"},
        "growthPercent": 50,
        "cooldown": "30s",
    }
    assert spec["retention"] == {"keepNewest": 10, "maxBytesPerRun": "256Mi"}
    assert spec["summary"] == {"topN": 5}
    assert spec["suspend"] is False


def with_change(path: str, value: Any) -> dict[str, Any]:
    spec = copy.deepcopy(MINIMAL)
    *parents, leaf = path.split(".")
    node = spec
    for part in parents:
        node = node.setdefault(part, {})
    if value is _DELETE:
        node.pop(leaf, None)
    else:
        node[leaf] = value
    return spec


_DELETE = object()

INVALID = [
    ("selector", _DELETE, "spec.selector: Required"),
    ("selector", {}, "selector must have matchLabels or matchExpressions"),
    (
        "selector.matchExpressions",
        [{"key": "app", "operator": "Like"}],
        "spec.selector.matchExpressions[0].operator",
    ),
    ("container", "Main_Container", "spec.container"),
    ("endpoint.port", 0, "spec.endpoint.port"),
    ("endpoint.port", 70000, "spec.endpoint.port"),
    ("endpoint.port", "http", "spec.endpoint.port"),
    ("endpoint.portName", "pprof", "set endpoint.port or endpoint.portName, not both"),
    ("endpoint.path", "http://10.0.0.5:6060/debug/pprof", "spec.endpoint.path"),
    ("endpoint.scheme", "ftp", "spec.endpoint.scheme"),
    ("endpoint.access", "tunnel", "spec.endpoint.access"),
    ("sampling.interval", "15 seconds", "spec.sampling.interval"),
    ("sampling.interval", "100ms", "sampling.interval must be between 1s and 10m"),
    ("snapshots.interval", "10s", "snapshots.interval must be 0s (off) or at least 30s"),
    ("snapshots.profiles", ["cpu"], "spec.snapshots.profiles[0]"),
    ("snapshots.profiles", ["goroutine"], "snapshots.profiles must include heap"),
    ("snapshots.gc", "yes", "spec.snapshots.gc"),
    ("triggers.limitPercent", [80, 120], "spec.triggers.limitPercent[1]"),
    ("triggers.limitPercent", [80, 80], "spec.triggers.limitPercent[1]"),
    ("triggers.cooldown", "soon", "spec.triggers.cooldown"),
    ("triggers.growthPercent", -5, "spec.triggers.growthPercent"),
    ("storage.url", "http://bucket/prefix", "spec.storage.url"),
    ("storage.secretRef", {}, "spec.storage.secretRef.name"),
    ("retention.keepNewest", 0, "spec.retention.keepNewest"),
    ("retention.maxBytesPerRun", "lots", "spec.retention.maxBytesPerRun"),
    ("summary.topN", 50, "spec.summary.topN"),
    ("suspend", "yes", "spec.suspend"),
]


@pytest.mark.parametrize(
    ("path", "value", "message"), INVALID, ids=[f"{p}={v!r}"[:60] for p, v, _ in INVALID]
)
def test_invalid_specs_are_rejected_naming_the_field(api, path, value, message):
    response = create(api, fresh_name("invalid"), with_change(path, value))
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["kind"] == "Status" and body["reason"] == "Invalid"
    assert message in body["message"], body["message"]


@pytest.mark.parametrize("mode_snapshots", ["tls403"], indirect=True)
def test_the_operators_status_survives_pruning_unchanged(api, mode_snapshots):
    # The status the operator writes, built by the operator's own code from a real analysis.
    comparison = compare(load_snapshot(mode_snapshots.base), load_snapshot(mode_snapshots.new))
    summary = summary_json(comparison)
    now = datetime(2026, 11, 26, 3, 12, tzinfo=UTC)
    status = build_status(
        generation=1,
        previous={},
        conditions=[
            Condition("Ready", "True", "Watching", "1 target"),
            Condition("Capturing", "True", "SnapshotStored", "threshold-95 at 97.4%"),
            Condition("LeakSuspected", "True", "UnclosedResponseBody", comparison.verdict),
            Condition("OOMObserved", "True", "OOMKilled", "checkout-7d9f/app run 0"),
            Condition("StorageReady", "True", "Reachable", "s3://forensics"),
        ],
        targets=[
            TargetStatus(
                "checkout-7d9f",
                "uid-1",
                "app",
                1,
                200 * 2**20,
                190 * 2**20,
                6,
                "shop/inv/checkout-7d9f/app/run-0/20261126T031200.000Z-threshold-95",
            )
        ],
        snapshot_count=6,
        last_snapshot="shop/inv/checkout-7d9f/app/run-0/20261126T031200.000Z-threshold-95/",
        last_snapshot_time=now,
        last_snapshot_reason="threshold-95",
        summary=summary,
        oom_kills=[
            OomKillStatus(
                "checkout-7d9f",
                "uid-1",
                "app",
                0,
                now,
                137,
                "20261126T031200.000Z-threshold-95",
                97.4,
                oom_summary_json(summary),
            )
        ],
        now=now,
    )
    name = fresh_name("status")
    created = create(api, name, MINIMAL)
    assert created.status_code == 201
    patched = api.patch(
        f"{BASE}/{name}/status",
        json={"status": status},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert patched.status_code == 200, patched.text
    assert api.get(f"{BASE}/{name}").json()["status"] == status


def test_printer_columns_show_what_a_user_needs(api):
    name = fresh_name("table")
    assert create(api, name, MINIMAL).status_code == 201
    status = {
        "targetCount": 3,
        "oomKillCount": 1,
        "snapshots": {"count": 12},
        "summary": {"suspect": "main.fetchReport", "heapGrowth": "+31.13MB"},
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Watching",
                "message": "3 targets",
                "lastTransitionTime": "2026-11-26T03:12:00Z",
            }
        ],
    }
    api.patch(
        f"{BASE}/{name}/status",
        json={"status": status},
        headers={"Content-Type": "application/merge-patch+json"},
    ).raise_for_status()
    table = api.get(f"{BASE}/{name}", headers={"Accept": TABLE}).json()
    columns = [c["name"] for c in table["columnDefinitions"]]
    assert columns[:8] == [
        "Name",
        "Targets",
        "Snapshots",
        "OOMKills",
        "Suspect",
        "Heap growth",
        "Ready",
        "Leak",
    ]
    assert {c["name"]: c["priority"] for c in table["columnDefinitions"]}["Leak"] == 1
    cells = dict(zip(columns, table["rows"][0]["cells"], strict=True))
    assert cells["Targets"] == 3 and cells["Snapshots"] == 12 and cells["OOMKills"] == 1
    assert cells["Suspect"] == "main.fetchReport" and cells["Heap growth"] == "+31.13MB"
    assert cells["Ready"] == "True"


def test_generation_follows_spec_and_status_only_through_its_subresource(api):
    name = fresh_name("generation")
    created = create(api, name, MINIMAL).json()
    assert created["metadata"]["generation"] == 1
    merge = {"Content-Type": "application/merge-patch+json"}
    api.patch(
        f"{BASE}/{name}/status", json={"status": {"targetCount": 2}}, headers=merge
    ).raise_for_status()
    after_status = api.get(f"{BASE}/{name}").json()
    assert after_status["metadata"]["generation"] == 1
    assert after_status["status"]["targetCount"] == 2
    # Status sent to the main resource is ignored; the spec change bumps the generation.
    api.patch(
        f"{BASE}/{name}",
        json={"spec": {"suspend": True}, "status": {"targetCount": 9}},
        headers=merge,
    ).raise_for_status()
    after_spec = api.get(f"{BASE}/{name}").json()
    assert after_spec["metadata"]["generation"] == 2
    assert after_spec["spec"]["suspend"] is True
    assert after_spec["status"]["targetCount"] == 2
