"""The chart's RBAC is what the operator needs and no more.

Statically: no wildcard, no Secret lists or watches, no pods/exec; every rule is on the short
list of what the operator and kopf use; pods/proxy only with rbac.proxyAccess, Secrets only by
name. Dynamically: the operator runs against the test cluster, namespaced and then cluster-wide,
with an investigation that captures through pods/proxy with its own Secret and one that uses
the default storage Secret, and every API request it made in either run is allowed by the
rules the chart renders for that scope, as the real RBAC authorizer of the test cluster
decides it (the operator runs as the chart's ServiceAccount with the chart's rendered RBAC,
and the API server's audit log says what it asked and what it was refused), and every rule the
chart renders is used by the run: nothing is granted that the operator does not need."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kopf
import pytest
import yaml

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
from tests.e2e.operator_harness import apply_crd, kube_namespace, poll
from tests.support.kube import KubeCluster
from tests.support.kube.images import fixture_image
from tests.support.kube.operator_access import operator_kubeconfig
from tests.support.kube.pods import leaky_pod
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


# -- the operator at work on the real cluster, as the chart's ServiceAccount -----------------

# A release name of this test's own: its ClusterRoles and ServiceAccount are not the ones the
# e2e tests apply, so neither run changes the other's permissions.
PROOF = "oomf-rbac-proof"


@pytest.fixture(scope="module")
def s3() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@contextlib.asynccontextmanager
async def operator(namespaces: list[str]) -> AsyncIterator[asyncio.Task[None]]:
    from oomforensics.k8s import handlers  # noqa: F401  (registers the handlers)

    stop = asyncio.Event()
    task = asyncio.create_task(
        kopf.operator(
            registry=kopf.get_default_registry(),
            standalone=True,
            clusterwide=not namespaces,
            namespaces=namespaces,
            stop_flag=stop,
        )
    )
    try:
        yield task
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 60)


def investigation(name: str, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "oomforensics.io/v1alpha1",
        "kind": "MemoryInvestigation",
        "metadata": {"name": name, "namespace": namespace},
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


def permission(event: dict[str, Any]) -> tuple[str, str, str] | None:
    """(apiGroup, resource[/subresource], verb) of an audited resource request."""
    ref = event.get("objectRef")
    if not ref or not ref.get("resource"):
        return None  # discovery, /version: non-resource requests every user may make
    resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
    return (ref.get("apiGroup", ""), resource, event["verb"])


NEEDED_BY_A_CAPTURE = {
    ("", "pods/proxy", "get"),
    ("", "secrets", "get"),
    ("metrics.k8s.io", "pods", "list"),
    ("oomforensics.io", "memoryinvestigations/status", "patch"),
    ("", "events", "create"),
}


@pytest.mark.gotool
@pytest.mark.timeout(600)
async def test_every_rule_of_the_chart_is_used_and_every_request_allowed(
    kube: KubeCluster,
    s3: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)  # credentials come from the Secrets only
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("OOMF_OPERATOR_NAMESPACE", NAMESPACE)
    monkeypatch.setenv("OOMF_STORAGE_URL", s3.archive_url("rbac-default"))
    monkeypatch.setenv("OOMF_STORAGE_OPTIONS", ",".join(f"{k}={v}" for k, v in s3.options.items()))
    default_secret = f"rbac-s3-{secrets.token_hex(3)}"
    monkeypatch.setenv("OOMF_STORAGE_SECRET", default_secret)
    monkeypatch.setenv("OOMF_SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.setenv("OOMF_METRICS_PORT", "0")  # other operators share the machine
    image = fixture_image(kube, "leaky")
    with kube_namespace(kube, "rbac-shop") as shop:
        values = {
            "fullnameOverride": PROOF,
            "storage": {
                "url": s3.archive_url("rbac-default"),
                "options": s3.options,
                "secretName": default_secret,
            },
            "investigationSecrets": [{"namespace": shop, "names": ["shop-s3"]}],
            "rbac": {"proxyAccess": True},
        }
        kube.ensure_namespace(NAMESPACE)
        for where, name in ((NAMESPACE, default_secret), (shop, "shop-s3")):
            kube.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(secret(where, name, s3)))
        async with kube.async_http() as http:
            await apply_crd(http)
            # Its own network namespace: pods/proxy needs a pod off loopback.
            pod = leaky_pod(
                "shop", shop, image, "steady", labels={"app": "shop"}, memory_limit="256Mi",
                rate=1, host_network=False,
            )  # fmt: skip
            created = await http.post(f"/api/v1/namespaces/{shop}/pods", json=pod)
            assert created.status_code == 201, created.text
        try:
            for scope in ({"watchNamespaces": [shop]}, {}):
                await _one_scope(kube, s3, shop, {**values, **scope}, tmp_path, monkeypatch)
        finally:
            for kind in ("clusterrole", "clusterrolebinding"):
                kube.kubectl("delete", kind, PROOF, f"{PROOF}-discovery", check=False)
            kube.kubectl("delete", "secret", "-n", NAMESPACE, default_secret, check=False)


async def _one_scope(
    kube: KubeCluster,
    s3: MotoServer,
    shop: str,
    values: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One run of the operator with the chart's RBAC for this scope, then the audit log."""
    namespaced = bool(values.get("watchNamespaces"))
    tag = "ns" if namespaced else "cw"
    kubeconfig, user = operator_kubeconfig(
        kube,
        tmp_path / f"operator-{tag}.kubeconfig",
        watch_namespaces=values.get("watchNamespaces") or (),
        values=values,
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    own = s3.archive_url(f"rbac-own-{tag}-{shop}")
    mi = f"/apis/oomforensics.io/v1alpha1/namespaces/{shop}/memoryinvestigations"
    bodies = [
        investigation(
            f"{tag}-proxy",
            shop,
            {
                "endpoint": {"portName": "http", "access": "apiserver-proxy"},
                "storage": {"url": own, "secretRef": {"name": "shop-s3"}, "options": s3.options},
            },
        ),
        investigation(f"{tag}-direct", shop, {"endpoint": {"portName": "http"}}),
    ]
    async with kube.async_http() as http:
        for body in bodies:
            created = await http.post(mi, json=body)
            assert created.status_code == 201, created.text

    async def snapshots(name: str, url: str) -> bool:
        archive = Archive.from_url(url, credentials=s3.credentials, options=s3.options)
        return bool(await archive.list_snapshots(shop, name))

    started = datetime.now(UTC)
    async with operator([shop] if namespaced else []) as task:
        await poll(lambda: snapshots(f"{tag}-proxy", own), 180, "a capture via pods/proxy", task)
        default = s3.archive_url("rbac-default")
        await poll(lambda: snapshots(f"{tag}-direct", default), 180, "a default capture", task)

        async def captured_and_told() -> bool:
            used = {permission(e) for e in kube.audit_events(user, since=started)}
            return used >= NEEDED_BY_A_CAPTURE

        await poll(captured_and_told, 60, "the status patches and Events of a capture", task)
    async with kube.async_http() as http:
        for body in bodies:
            name = body["metadata"]["name"]
            await http.patch(
                f"{mi}/{name}",
                json={"metadata": {"finalizers": None}},
                headers={"Content-Type": "application/merge-patch+json"},
            )
            await http.delete(f"{mi}/{name}")
    found = grants(
        objects(values), user.rsplit(":", 1)[-1], NAMESPACE
    )  # the rules the chart rendered for this scope, bound to the account

    async def watches_closed() -> list[dict[str, Any]] | None:
        # A watch is audited when it ends: the operator's ended with its stop.
        events = kube.audit_events(user, since=started)
        verbs = {e["verb"] for e in events}
        return events if "watch" in verbs else None

    events = await poll(watches_closed, 60, "the operator's watches in the audit log")
    # Refused: nothing in the test's namespaces or cluster-scoped (a cluster-wide run also
    # meets whatever other tests left in theirs).
    ours = [e for e in events if e.get("objectRef", {}).get("namespace") in (None, shop, NAMESPACE)]
    forbidden = [(e["verb"], e["requestURI"]) for e in ours if e["responseStatus"]["code"] == 403]
    assert forbidden == [], f"{tag}: the real authorizer refused {forbidden}"
    used = {p for p in map(permission, ours) if p is not None}
    print(f"{tag}: used {sorted(used)}")  # shown with -s or on failure
    refs = [e.get("objectRef") or {} for e in ours]
    names = {ref.get("name") for ref in refs if ref.get("resource") == "secrets"}
    assert names == {values["storage"]["secretName"], "shop-s3"}
    # Both ways: every request was allowed, and every rule rendered was needed by the run.
    granted = set(triples(found))
    assert used <= granted, used - granted
    assert used == granted, f"{tag}: granted but never used: {granted - used}"
