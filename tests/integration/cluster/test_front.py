"""The cluster front answers like a Kubernetes API server, for the clients we use.

Discovery, the store's semantics (versions, selectors, patches, conflicts, watches) in the
real JSON shapes, the kubernetes client, kopf (an index and an event handler on pods), and
custom resource groups proxied to the real API server when its binaries are built.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import kopf
import kubernetes
import pytest

from tests.support.cluster import (
    EVENTS,
    PODS,
    ClusterFront,
    ContainerUsage,
    until,
)
from tests.support.cluster.pods import container, pod

PODS_URL = "/api/v1/namespaces/default/pods"
EVENTS_URL = "/api/v1/namespaces/default/events"
MERGE = {"Content-Type": "application/merge-patch+json"}
JSON_PATCH = {"Content-Type": "application/json-patch+json"}


def sleeper(name: str, namespace: str = "default", **labels: str) -> dict[str, Any]:
    return pod(name, [container("main", ["sleep", "3600"])], namespace=namespace, labels=labels)


@pytest.fixture
async def http(front: ClusterFront) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=front.url, timeout=30) as client:
        yield client


async def test_discovery_answers_in_the_real_shapes(front: ClusterFront, http: httpx.AsyncClient):
    version = (await http.get("/version")).json()
    assert version["major"] == "1" and version["gitVersion"].startswith("v1.")

    api = (await http.get("/api")).json()
    assert api["kind"] == "APIVersions" and api["versions"] == ["v1"]

    core = (await http.get("/api/v1")).json()
    assert core["kind"] == "APIResourceList" and core["groupVersion"] == "v1"
    by_name = {r["name"]: r for r in core["resources"]}
    assert {"pods", "pods/status", "pods/proxy", "pods/log", "events", "namespaces"} <= set(by_name)
    assert by_name["pods"]["kind"] == "Pod" and by_name["pods"]["namespaced"] is True
    assert "watch" in by_name["pods"]["verbs"] and by_name["pods"]["shortNames"] == ["po"]
    assert by_name["namespaces"]["namespaced"] is False
    assert by_name["pods/status"]["verbs"] == ["get", "patch", "update"]

    groups = (await http.get("/apis")).json()
    assert groups["kind"] == "APIGroupList"
    names = {g["name"]: g for g in groups["groups"]}
    metrics = names["metrics.k8s.io"]
    assert metrics["preferredVersion"] == {
        "groupVersion": "metrics.k8s.io/v1beta1",
        "version": "v1beta1",
    }
    if front.upstream is not None:
        assert "apiextensions.k8s.io" in names
    else:
        assert "apiextensions.k8s.io" not in names
        missing = await http.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions")
        assert missing.status_code == 404 and missing.json()["kind"] == "Status"

    resources = (await http.get("/apis/metrics.k8s.io/v1beta1")).json()
    assert resources["groupVersion"] == "metrics.k8s.io/v1beta1"
    assert [(r["name"], r["kind"], r["verbs"]) for r in resources["resources"]] == [
        ("pods", "PodMetrics", ["get", "list"])
    ]
    assert (await http.get("/apis/metrics.k8s.io")).json()["kind"] == "APIGroup"


async def test_objects_have_versions_and_errors_are_status_objects(http: httpx.AsyncClient):
    created = await http.post(PODS_URL, json=sleeper("web", app="web"))
    assert created.status_code == 201
    body = created.json()
    meta = body["metadata"]
    assert body["kind"] == "Pod" and body["apiVersion"] == "v1"
    assert meta["uid"] and meta["creationTimestamp"].endswith("Z") and meta["generation"] == 1
    assert body["status"] == {"phase": "Pending", "qosClass": "BestEffort"}
    assert body["spec"]["restartPolicy"] == "Always"  # defaulted as the API server does

    duplicate = await http.post(PODS_URL, json=sleeper("web"))
    assert duplicate.status_code == 409 and duplicate.json()["reason"] == "AlreadyExists"

    missing = await http.get(f"{PODS_URL}/nope")
    assert missing.status_code == 404
    assert missing.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'pods "nope" not found',
        "reason": "NotFound",
        "code": 404,
        "details": {"name": "nope", "kind": "pods"},
    }

    labelled = await http.patch(
        f"{PODS_URL}/web", json={"metadata": {"labels": {"tier": "front"}}}, headers=MERGE
    )
    assert labelled.status_code == 200
    new_meta = labelled.json()["metadata"]
    assert int(new_meta["resourceVersion"]) > int(meta["resourceVersion"])
    assert new_meta["labels"] == {"app": "web", "tier": "front"} and new_meta["generation"] == 1

    stale = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": meta["resourceVersion"]},
        {"op": "add", "path": "/metadata/finalizers", "value": ["x.test/f"]},
    ]
    refused = await http.patch(f"{PODS_URL}/web", json=stale, headers=JSON_PATCH)
    assert refused.status_code == 422 and refused.json()["reason"] == "Invalid"

    stale_merge = {"metadata": {"resourceVersion": meta["resourceVersion"], "labels": {"a": "b"}}}
    conflict = await http.patch(f"{PODS_URL}/web", json=stale_merge, headers=MERGE)
    assert conflict.status_code == 409 and conflict.json()["reason"] == "Conflict"

    spec_change = {"spec": {"restartPolicy": "Never"}}
    forbidden = await http.patch(f"{PODS_URL}/web", json=spec_change, headers=MERGE)
    assert forbidden.status_code == 422 and "Forbidden" in forbidden.json()["message"]

    # The status subresource takes status only; the main resource ignores status.
    status = {"status": {"phase": "Running"}, "metadata": {"labels": {"ignored": "yes"}}}
    patched = (await http.patch(f"{PODS_URL}/web/status", json=status, headers=MERGE)).json()
    assert (
        patched["status"]["phase"] == "Running" and "ignored" not in patched["metadata"]["labels"]
    )
    unchanged = await http.patch(
        f"{PODS_URL}/web", json={"status": {"phase": "Failed"}}, headers=MERGE
    )
    assert unchanged.json()["status"]["phase"] == "Running"

    gone = await http.delete(f"{PODS_URL}/web")
    assert gone.status_code == 200 and gone.json()["metadata"]["name"] == "web"
    assert (await http.get(f"{PODS_URL}/web")).status_code == 404


async def test_finalizers_hold_deletion_until_removed(http: httpx.AsyncClient):
    body = sleeper("held")
    body["metadata"]["finalizers"] = ["oomforensics.io/test"]
    await http.post(PODS_URL, json=body)
    marked = (await http.delete(f"{PODS_URL}/held")).json()
    assert marked["metadata"]["deletionTimestamp"]
    assert (await http.get(f"{PODS_URL}/held")).status_code == 200
    released = await http.patch(
        f"{PODS_URL}/held", json={"metadata": {"finalizers": None}}, headers=MERGE
    )
    assert released.status_code == 200
    assert (await http.get(f"{PODS_URL}/held")).status_code == 404


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=web", {"a", "b"}),
        ("app==web", {"a", "b"}),
        ("app!=web", {"c", "d"}),
        ("app=web,tier=front", {"a"}),
        ("tier in (front, back)", {"a", "b", "c"}),
        ("tier notin (front)", {"b", "c", "d"}),
        ("tier", {"a", "b", "c"}),
        ("!tier", {"d"}),
        ("app in (web),tier notin (back)", {"a"}),
    ],
)
async def test_label_selectors(http: httpx.AsyncClient, selector: str, expected: set[str]):
    for name, labels in [
        ("a", {"app": "web", "tier": "front"}),
        ("b", {"app": "web", "tier": "back"}),
        ("c", {"app": "db", "tier": "back"}),
        ("d", {"app": "cache"}),
    ]:
        await http.post(PODS_URL, json=sleeper(name, **labels))
    listed = (await http.get(PODS_URL, params={"labelSelector": selector})).json()
    assert listed["kind"] == "PodList" and listed["metadata"]["resourceVersion"]
    assert {item["metadata"]["name"] for item in listed["items"]} == expected


async def test_field_selectors_and_all_namespaces(front: ClusterFront, http: httpx.AsyncClient):
    await http.post("/api/v1/namespaces", json={"metadata": {"name": "team-a"}})
    await http.post(PODS_URL, json=sleeper("x"))
    await http.post("/api/v1/namespaces/team-a/pods", json=sleeper("x", "team-a"))
    mismatch = await http.post("/api/v1/namespaces/team-a/pods", json=sleeper("z", "default"))
    assert mismatch.status_code == 400
    everywhere = await http.get("/api/v1/pods", params={"fieldSelector": "metadata.name=x"})
    assert sorted(i["metadata"]["namespace"] for i in everywhere.json()["items"]) == [
        "default",
        "team-a",
    ]
    only = await http.get(
        "/api/v1/pods", params={"fieldSelector": "metadata.name=x,metadata.namespace!=default"}
    )
    assert [i["metadata"]["namespace"] for i in only.json()["items"]] == ["team-a"]
    refused = await http.get(PODS_URL, params={"fieldSelector": "spec.nope=1"})
    assert refused.status_code == 400 and refused.json()["reason"] == "BadRequest"
    no_namespace = await http.post("/api/v1/namespaces/absent/pods", json=sleeper("y", "absent"))
    assert no_namespace.status_code == 404
    assert no_namespace.json()["message"] == 'namespaces "absent" not found'
    namespaces = (await http.get("/api/v1/namespaces")).json()
    assert {"default", "kube-system", "team-a"} <= {
        n["metadata"]["name"] for n in namespaces["items"]
    }


async def test_watch_from_a_version_and_expired_versions():
    front = ClusterFront(history=5)
    async with front, httpx.AsyncClient(base_url=front.url, timeout=30) as client:
        await client.post(PODS_URL, json=sleeper("old"))
        version = (await client.get(PODS_URL)).json()["metadata"]["resourceVersion"]
        await client.post(PODS_URL, json=sleeper("new", app="x"))
        await client.patch(
            f"{PODS_URL}/new", json={"metadata": {"labels": {"app": "y"}}}, headers=MERGE
        )
        await client.delete(f"{PODS_URL}/new")
        params = {"watch": "true", "resourceVersion": version, "timeoutSeconds": "1"}
        events = await _watch_lines(client, PODS_URL, params)
        assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
            ("ADDED", "new"),
            ("MODIFIED", "new"),
            ("DELETED", "new"),
        ]
        versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
        assert versions == sorted(versions) and versions[0] > int(version)

        # The selector sees the label change as the object leaving it.
        selected = await _watch_lines(client, PODS_URL, {**params, "labelSelector": "app=x"})
        assert [e["type"] for e in selected] == ["ADDED", "DELETED"]

        for index in range(6):  # more changes than the history keeps
            await client.post(PODS_URL, json=sleeper(f"filler-{index}"))
        expired = await _watch_lines(client, PODS_URL, params)
        assert expired[0]["type"] == "ERROR"
        assert expired[0]["object"]["code"] == 410
        assert expired[0]["object"]["reason"] == "Expired"

        initial = await _watch_lines(
            client,
            PODS_URL,
            {
                "watch": "true",
                "sendInitialEvents": "true",
                "allowWatchBookmarks": "true",
                "resourceVersionMatch": "NotOlderThan",
                "timeoutSeconds": "1",
            },
        )
        assert {e["type"] for e in initial[:-1]} == {"ADDED"}
        bookmark = initial[-1]
        assert bookmark["type"] == "BOOKMARK"
        assert bookmark["object"]["metadata"]["annotations"] == {
            "k8s.io/initial-events-end": "true"
        }


async def _watch_lines(
    client: httpx.AsyncClient, url: str, params: dict[str, str]
) -> list[dict[str, Any]]:
    async with client.stream("GET", url, params=params) as response:
        assert response.status_code == 200
        return [json.loads(line) async for line in response.aiter_lines() if line]


async def test_pod_metrics_in_the_metrics_server_shape(
    front: ClusterFront, http: httpx.AsyncClient
):
    await http.post(PODS_URL, json=sleeper("measured", app="m"))
    await http.post(PODS_URL, json=sleeper("unmeasured", app="m"))
    front.metrics.publish("default", "measured", {"main": ContainerUsage(128 * 2**20 + 4096)}, 2.0)
    base = "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods"

    one = (await http.get(f"{base}/measured")).json()
    assert one["kind"] == "PodMetrics" and one["apiVersion"] == "metrics.k8s.io/v1beta1"
    assert one["metadata"]["name"] == "measured" and one["metadata"]["labels"] == {"app": "m"}
    assert one["timestamp"].endswith("Z") and one["window"] == "2s"
    assert one["containers"] == [{"name": "main", "usage": {"cpu": "0", "memory": "131076Ki"}}]

    listed = (await http.get(base, params={"labelSelector": "app=m"})).json()
    assert listed["kind"] == "PodMetricsList"
    assert [i["metadata"]["name"] for i in listed["items"]] == ["measured"]

    absent = await http.get(f"{base}/unmeasured")
    assert absent.status_code == 404
    assert absent.json()["message"] == 'pods.metrics.k8s.io "unmeasured" not found'


def test_the_kubernetes_client_lists_with_selectors_and_watches_events(front: ClusterFront):
    front.store.create(PODS, sleeper("api-1", app="leaky", tier="web"))
    front.store.create(PODS, sleeper("api-2", app="leaky", tier="db"))
    client = kubernetes.config.new_client_from_config(config_file=str(front.kubeconfig))
    core = kubernetes.client.CoreV1Api(client)
    try:
        # A blocking client is fine: the front has a thread and an event loop of its own.
        pods = core.list_namespaced_pod("default", label_selector="app=leaky,tier in (web)")
        assert [p.metadata.name for p in pods.items] == ["api-1"]
        assert pods.metadata.resource_version

        events = core.list_namespaced_event("default")
        front.store.create(
            EVENTS,
            {
                "metadata": {"generateName": "api-1."},
                "involvedObject": {"kind": "Pod", "namespace": "default", "name": "api-1"},
                "reason": "Seen",
                "message": "through the front",
                "type": "Normal",
            },
            "default",
        )
        seen = []
        watcher = kubernetes.watch.Watch()
        for event in watcher.stream(
            core.list_namespaced_event,
            "default",
            resource_version=events.metadata.resource_version,  # what came after the list
            timeout_seconds=20,
        ):
            seen.append((event["type"], event["object"].reason, event["object"].metadata.name))
            watcher.stop()
        assert len(seen) == 1
        kind, reason, name = seen[0]
        assert (kind, reason) == ("ADDED", "Seen") and name.startswith("api-1.")
    finally:
        client.close()


async def test_kopf_indexes_pods_and_handles_their_events_through_the_front(front: ClusterFront):
    front.store.create(PODS, sleeper("before", app="leaky"))
    registry = kopf.OperatorRegistry()
    indexes: dict[str, kopf.Index[str, str]] = {}
    handled: list[tuple[str | None, str]] = []

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=front.url, default_namespace="default")

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.watching.server_timeout = 30

    @kopf.index("pods", id="pods_by_app", registry=registry)  # the id names the kwarg
    def pods_by_app(name: str, labels: dict[str, str], **_: Any) -> dict[str, str]:
        return {labels.get("app", ""): name}

    @kopf.on.event("pods", registry=registry)
    def pod_event(
        type: str | None, name: str, body: Any, pods_by_app: kopf.Index[str, str], **_: Any
    ) -> None:
        indexes["pods_by_app"] = pods_by_app
        handled.append((type, name))
        kopf.info(body, reason="Indexed", message=f"pod {name} indexed")

    stop = asyncio.Event()
    operator = asyncio.create_task(
        kopf.operator(
            registry=registry,
            standalone=True,
            clusterwide=False,
            namespaces=["default"],
            stop_flag=stop,
        )
    )
    try:
        await until(lambda: _indexed(indexes, "before"), 30, "kopf to index the first pod")
        front.store.create(PODS, sleeper("after", app="leaky"))
        await until(lambda: _indexed(indexes, "after"), 30, "kopf to index a new pod")
        assert ("ADDED", "after") in handled  # from the watch, after the initial listing

        async def posted() -> bool:
            reasons = [
                (e["reason"], e["involvedObject"]["name"]) for e in front.store.items(EVENTS)
            ]
            return ("Indexed", "after") in reasons

        await until(posted, 30, "kopf to post an event about the pod")
    finally:
        stop.set()
        await asyncio.wait_for(operator, 30)

    # kopf only read pods: no writes to them, and it listed/watched what it needed.
    writes = [c for c in front.calls if c.resource == "pods" and c.verb not in ("list", "watch")]
    assert writes == []
    used = front.permissions()
    assert {("", "pods", "list"), ("", "pods", "watch"), ("", "events", "create")} <= used
    assert ("", "namespaces", "list") in used
    if front.upstream is not None:  # kopf watched the CRDs through the front's proxy
        crds = ("apiextensions.k8s.io", "customresourcedefinitions", "watch")
        assert crds in front.permissions(proxied=True)


async def _indexed(indexes: dict[str, kopf.Index[str, str]], name: str) -> bool:
    index = indexes.get("pods_by_app")
    return index is not None and name in set(index.get("leaky", []))


async def test_custom_resource_groups_are_the_real_servers(
    front: ClusterFront, http: httpx.AsyncClient
):
    if front.upstream is None:
        pytest.skip("the real API server is not built here (make setup)")
    group = "fronttest.oomforensics.io"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"gadgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                    "subresources": {"status": {}},
                }
            ],
        },
    }
    created = await http.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=crd)
    assert created.status_code in (201, 409)  # the server lives for the whole session

    async def discovered() -> bool:
        groups = (await http.get("/apis")).json()["groups"]
        return any(g["name"] == group for g in groups)

    await until(discovered, 30, "the CRD's group in /apis")
    resources = (await http.get(f"/apis/{group}/v1")).json()
    assert {r["name"] for r in resources["resources"]} == {"gadgets", "gadgets/status"}

    url = f"/apis/{group}/v1/namespaces/default/gadgets"
    await http.request("DELETE", url)  # a clean collection for this test
    missing = await http.get(f"{url}/nope")
    assert missing.status_code == 404 and missing.json()["reason"] == "NotFound"
    listed = (await http.get(url)).json()

    async def first_event() -> dict[str, Any]:
        params = {"watch": "true", "resourceVersion": listed["metadata"]["resourceVersion"]}
        async with http.stream("GET", url, params={**params, "timeoutSeconds": "20"}) as stream:
            async for line in stream.aiter_lines():  # streamed through, not buffered
                return dict(json.loads(line))
        raise AssertionError("the watch ended without events")

    gadget = {"apiVersion": f"{group}/v1", "kind": "Gadget", "metadata": {"name": "g1"}}
    assert (await http.post(url, json=gadget)).status_code == 201
    # The watch starts at the list's version: the creation comes first, long before the
    # server ends the stream (20 s), so the front passes chunks on as they come.
    event = await asyncio.wait_for(first_event(), 10)
    assert event["type"] == "ADDED" and event["object"]["metadata"]["name"] == "g1"
    assert ("fronttest.oomforensics.io", "gadgets", "watch") in front.permissions(proxied=True)
