"""The chart's RBAC is what the operator needs and no more.

Statically: no wildcard, no Secret lists or watches, no pods/exec; every rule is on the short
list of what the operator and kopf use; pods/proxy only with rbac.proxyAccess, Secrets only by
name. Dynamically: the operator runs against the test cluster, namespaced and then cluster-wide,
with an investigation that captures through pods/proxy with its own Secret and one that uses
the default storage Secret, and every API request it made in either run is allowed by the
rules the chart renders for that scope, as the RBAC authorizer would decide (resourceNames
included)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import kopf
import pytest

from oomforensics.archive.store import Archive
from tests.deploy.chart import (
    NAMESPACE,
    Grant,
    Request,
    allowed,
    grants,
    objects,
    of_kind,
    triples,
)
from tests.deploy.cluster import discard
from tests.e2e.operator_harness import apply_crd, poll, require_cluster
from tests.support.cluster import ApiCall, ClusterFront, Kubelet
from tests.support.cluster.pods import leaky_pod
from tests.support.leaky import FIXTURE_BIN
from tests.support.moto import MotoServer

ACCOUNT = "oomf-oomforensics"
SHOP = "shop"  # the investigations' namespace, the test's own
MI = f"/apis/oomforensics.io/v1alpha1/namespaces/{SHOP}/memoryinvestigations"
PODS = f"/api/v1/namespaces/{SHOP}/pods"
WATCH = ("oomforensics.io", "memoryinvestigations")
# Everything the chart may ever grant, whatever the values.
THE_LIST = {
    ("oomforensics.io", "memoryinvestigations", "list"),
    ("oomforensics.io", "memoryinvestigations", "watch"),
    ("oomforensics.io", "memoryinvestigations", "patch"),
    ("oomforensics.io", "memoryinvestigations/status", "patch"),
    ("", "pods", "list"),
    ("", "pods", "watch"),
    ("", "pods/proxy", "get"),
    ("metrics.k8s.io", "pods", "list"),
    ("", "events", "create"),
    ("", "secrets", "get"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "list"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
    ("", "namespaces", "list"),
    ("", "namespaces", "watch"),
}
SECRETS = {"storage": {"secretName": "oomforensics-s3"}}
VARIANTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "namespaced": {"watchNamespaces": ["default", "shop"]},
    "everything": {
        "watchNamespaces": ["default"],
        "storage": {"url": "s3://forensics", "secretName": "oomforensics-s3"},
        "investigationSecrets": [{"namespace": "default", "names": ["shop-s3"]}],
        "rbac": {"proxyAccess": True},
    },
    "cluster-wide-everything": {
        "storage": {"url": "s3://forensics", "secretName": "oomforensics-s3"},
        "investigationSecrets": [{"namespace": "default", "names": ["shop-s3"]}],
        "rbac": {"proxyAccess": True},
    },
    "no-discovery": {"rbac": {"clusterDiscovery": False}, "watchNamespaces": ["default"]},
}


def rules_of(values: dict[str, Any]) -> list[Grant]:
    return grants(objects(values), ACCOUNT, NAMESPACE)


@pytest.mark.parametrize("values", VARIANTS.values(), ids=VARIANTS.keys())
def test_rules_stay_on_the_list(values: dict[str, Any]) -> None:
    found = rules_of(values)
    for grant in found:
        rule = grant.rule
        for key in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule.get(key, []), rule
        assert not rule.get("nonResourceURLs"), rule
        if "secrets" in rule["resources"]:
            assert rule["verbs"] == ["get"] and rule.get("resourceNames"), rule
            assert grant.namespace is not None, "Secrets are never granted cluster-wide"
    granted = set(triples(found))
    assert granted <= THE_LIST, granted - THE_LIST
    assert ("", "pods/exec", "create") not in granted
    assert (("", "pods/proxy", "get") in granted) == bool(values.get("rbac", {}).get("proxyAccess"))
    has_secrets = bool(values.get("storage", {}).get("secretName"))
    assert (("", "secrets", "get") in granted) == has_secrets


def test_the_scope_follows_watch_namespaces() -> None:
    everywhere = rules_of({})
    assert {g.namespace for g in everywhere} == {None}
    assert ("", "namespaces", "list") not in set(triples(everywhere))  # kopf lists none then
    namespaced = rules_of({"watchNamespaces": ["default", "shop"]})
    watching = [g for g in namespaced if g.rule["apiGroups"] == [WATCH[0]]]
    assert {g.namespace for g in watching} == {"default", "shop"}
    cluster_wide = {t for g in namespaced if g.namespace is None for t in triples([g])}
    assert {r for _, r, _ in cluster_wide} == {"customresourcedefinitions", "namespaces"}
    docs = objects({"watchNamespaces": ["default"], "rbac": {"clusterDiscovery": False}})
    assert not of_kind(docs, "ClusterRole") and not of_kind(docs, "ClusterRoleBinding")


def test_secrets_by_name_and_namespace() -> None:
    found = rules_of(VARIANTS["everything"])
    assert allowed(found, Request("", "secrets", "get", NAMESPACE, "oomforensics-s3"))
    assert allowed(found, Request("", "secrets", "get", "default", "shop-s3"))
    assert not allowed(found, Request("", "secrets", "get", "default", "oomforensics-s3"))
    assert not allowed(found, Request("", "secrets", "get", "default", "other"))
    assert not allowed(found, Request("", "secrets", "list", "default"))
    assert not allowed(found, Request("", "secrets", "watch", None))
    assert not rules_of({"rbac": {"create": False}})


# -- the operator at work, its requests against the rendered rules ---------------------------


@pytest.fixture(scope="module")
def s3() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@contextlib.asynccontextmanager
async def operator(clusterwide: bool) -> AsyncIterator[asyncio.Task[None]]:
    from oomforensics.k8s import handlers  # noqa: F401  (registers the handlers)

    stop = asyncio.Event()
    task = asyncio.create_task(
        kopf.operator(
            registry=kopf.get_default_registry(),
            standalone=True,
            clusterwide=clusterwide,
            namespaces=[] if clusterwide else [SHOP],
            stop_flag=stop,
        )
    )
    try:
        yield task
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 60)


def investigation(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "oomforensics.io/v1alpha1",
        "kind": "MemoryInvestigation",
        "metadata": {"name": name, "namespace": SHOP},
        "spec": {
            "selector": {"matchLabels": {"app": "shop"}},
            "sampling": {"interval": "1s"},
            **spec,
        },
    }


def secret(namespace: str, name: str, s3: MotoServer) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "stringData": dict(s3.credentials),
    }


SCENARIO = {
    ("", "pods/proxy", "get"),
    ("", "secrets", "get"),
    ("metrics.k8s.io", "pods", "list"),
    ("oomforensics.io", "memoryinvestigations/status", "patch"),
    ("oomforensics.io", "memoryinvestigations", "patch"),
    ("", "events", "create"),
}


async def used_since(front: ClusterFront, start: int) -> bool:
    return {c.permission for c in front.calls[start:] if c.resource_request} >= SCENARIO


def denied(calls: list[ApiCall], found: list[Grant]) -> list[str]:
    return sorted(
        {
            f"{c.verb} {c.api_group or 'core'}/{c.permission[1]} in {c.namespace} ({c.name})"
            for c in calls
            if c.resource_request
            and not allowed(
                found, Request(c.api_group, c.permission[1], c.verb, c.namespace, c.name)
            )
        }
    )


@pytest.mark.gotool
@pytest.mark.timeout(400)
async def test_every_request_of_the_operator_is_allowed_by_the_chart(
    front: ClusterFront,
    kubelet: Kubelet,
    s3: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    require_cluster(front)
    if not FIXTURE_BIN.is_file():
        pytest.skip(f"{FIXTURE_BIN} is not built (hack/build-go-fixtures.sh)")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)  # credentials come from the Secrets only
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("KUBECONFIG", str(front.kubeconfig))
    monkeypatch.setenv("OOMF_OPERATOR_NAMESPACE", NAMESPACE)
    monkeypatch.setenv("OOMF_STORAGE_URL", s3.archive_url("rbac-default"))
    monkeypatch.setenv("OOMF_STORAGE_OPTIONS", ",".join(f"{k}={v}" for k, v in s3.options.items()))
    monkeypatch.setenv("OOMF_STORAGE_SECRET", "oomforensics-s3")
    monkeypatch.setenv("OOMF_SPOOL_DIR", str(tmp_path / "spool"))
    values = {
        "storage": {
            "url": s3.archive_url("rbac-default"),
            "options": s3.options,
            "secretName": "oomforensics-s3",
        },
        "investigationSecrets": [{"namespace": SHOP, "names": ["shop-s3"]}],
        "rbac": {"proxyAccess": True},
    }
    async with httpx.AsyncClient(base_url=front.url, timeout=30) as http:
        await apply_crd(http)
        for name in (NAMESPACE, SHOP):
            namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
            created = await http.post("/api/v1/namespaces", json=namespace)
            assert created.status_code in (201, 409), created.text
        for where, name in ((NAMESPACE, "oomforensics-s3"), (SHOP, "shop-s3")):
            created = await http.post(
                f"/api/v1/namespaces/{where}/secrets", json=secret(where, name, s3)
            )
            assert created.status_code == 201, created.text
        shop = leaky_pod(
            "shop", "steady", namespace=SHOP, labels={"app": "shop"}, memory_limit="256Mi"
        )
        assert (await http.post(PODS, json=shop)).status_code == 201

    async def snapshots(name: str, url: str) -> bool:
        archive = Archive.from_url(url, credentials=s3.credentials, options=s3.options)
        return bool(await archive.list_snapshots(SHOP, name))

    investigations = []
    for clusterwide, scope in ((False, {"watchNamespaces": [SHOP]}), (True, {})):
        tag = "cw" if clusterwide else "ns"
        own = s3.archive_url(f"rbac-own-{tag}")
        async with httpx.AsyncClient(base_url=front.url, timeout=30) as http:
            for body in (
                investigation(
                    f"{tag}-proxy",
                    {
                        "endpoint": {"portName": "http", "access": "apiserver-proxy"},
                        "storage": {
                            "url": own,
                            "secretRef": {"name": "shop-s3"},
                            "options": s3.options,
                        },
                    },
                ),
                investigation(f"{tag}-direct", {"endpoint": {"portName": "http"}}),
            ):
                assert (await http.post(MI, json=body)).status_code == 201
                investigations.append(f"{MI}/{body['metadata']['name']}")
        start = len(front.calls)
        async with operator(clusterwide) as task:
            # Wait on the archive (not the API), so that every request in the window is the
            # operator's own.
            proxied = functools.partial(snapshots, f"{tag}-proxy", own)
            await poll(proxied, 120, "a capture through pods/proxy", task)
            direct = functools.partial(snapshots, f"{tag}-direct", s3.archive_url("rbac-default"))
            await poll(direct, 120, "a capture to the default storage", task)
            # The Event and the status patch that follow a capture (the front's record, read
            # in memory: no request).
            await poll(functools.partial(used_since, front, start), 30, "the Events", task)
        calls = [c for c in front.calls[start:] if c.resource_request]
        used = {c.permission for c in calls}
        print(f"cluster-wide={clusterwide}: used {sorted(used)}")  # shown with -s or on failure
        # The run did what the scenario is for: proxy, both Secrets, PodMetrics, status, events.
        assert used >= SCENARIO, SCENARIO - used
        assert {c.name for c in calls if c.resource == "secrets"} == {"oomforensics-s3", "shop-s3"}
        found = rules_of({**values, **scope})
        assert denied(calls, found) == [], f"cluster-wide={clusterwide}"
        # ... and the rules grant nothing the run did not use.
        assert used == set(triples(found)), set(triples(found)) ^ used
    async with httpx.AsyncClient(base_url=front.url, timeout=30) as http:
        for url in investigations:
            await discard(http, url)
