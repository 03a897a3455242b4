"""The scale benchmark's emulated node: the one emulated part of bench_scale.py.

1,000 pods cannot run on the test cluster's one 2-core node (a containerd shim and a Go
process each), so the pods are real Pod objects in the real API server, bound to a Node of
the benchmark's own that no kubelet runs, and this module does for them what a kubelet would:

- registers the Node `scale-node` (the JSON shape the real kubelet registers, status Ready,
  InternalIP 127.0.0.1, unschedulable so that the scheduler never sends another session's
  pods to it) and renews its Lease in kube-node-lease every 10 s, as the kubelet does, so the
  node lifecycle controller keeps it Ready and evicts nothing;
- writes each pod's status through the pods/status subresource the way the kubelet does: a
  strategic merge patch with the pod's uid as precondition, phase Running, podIP, conditions
  and containerStatuses in the shapes the real kubelet of the test cluster writes;
- serves every pod's endpoints from one small server on one loopback port per pod (the pods
  are hostNetwork, as on the test cluster's node: podIP 127.0.0.1, a port each). /metrics is
  the page of a real Go fixture with `process_resident_memory_bytes` set to the pod's
  emulated working set; /debug/pprof/* is forwarded to one of a few real leaky Go fixtures,
  so every capture fetches real profiles (as the benchmark did before, when pods pointed at
  the fixtures' ports directly).

What it does not emulate: no containers, no cgroups, no /metrics/resource or /stats/summary
(metrics-server cannot scrape this node, whose kubelet port is a socket bound without
listening, so it reports none of these pods and the operator reads each target's /metrics:
operator/oomforensics/k8s/sampler.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import re
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any, TypeVar

import httpx
from aiohttp import web

JSON = dict[str, Any]
T = TypeVar("T")
NODE_NAME = "scale-node"
NODE_IP = "127.0.0.1"
LEASE_NAMESPACE = "kube-node-lease"
LEASE_SECONDS = 40  # the kubelet's nodeLeaseDurationSeconds
LEASE_RENEW = 10.0  # the kubelet renews at a quarter of the lease's duration
NODE_STATUS_REPORT = 300.0  # the kubelet's nodeStatusReportFrequency when nothing changed
STRATEGIC_PATCH = {"Content-Type": "application/strategic-merge-patch+json"}
MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}
EMULATED_LABEL = "oomforensics.io/emulated-node"
# The kubelet's pod conditions of a running pod, in the order it writes them.
POD_CONDITIONS = (
    "PodReadyToStartContainers",
    "Initialized",
    "Ready",
    "ContainersReady",
    "PodScheduled",
)
_RSS_LINE = re.compile(r"^process_resident_memory_bytes .*$", re.MULTILINE)


def rfc3339(at: float | None = None) -> str:
    moment = datetime.datetime.fromtimestamp(time.time() if at is None else at, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_time(at: float | None = None) -> str:
    moment = datetime.datetime.fromtimestamp(time.time() if at is None else at, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class NodeBusy(RuntimeError):
    """Another run's emulated node is alive (its Lease was renewed recently)."""


# --- the Node and its Lease ------------------------------------------------------------------


def node_conditions(now: str, transition: str) -> list[JSON]:
    """The kubelet's four node conditions, all healthy (reasons and messages as it says them)."""
    healthy = [
        ("MemoryPressure", "False", "KubeletHasSufficientMemory",
         "kubelet has sufficient memory available"),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ("PIDPressure", "False", "KubeletHasSufficientPID",
         "kubelet has sufficient PID available"),
        ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
    ]  # fmt: skip
    return [
        {
            "type": type_,
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": now,
            "lastTransitionTime": transition,
        }
        for type_, status, reason, message in healthy
    ]


def node_body(kubelet_port: int, real_node: Mapping[str, Any]) -> JSON:
    """The Node as the kubelet registers it, its node info and capacity copied from the real
    node (same machine), its kubelet port one where nothing answers."""
    now = rfc3339()
    real_status = real_node.get("status") or {}
    info = dict(real_status.get("nodeInfo") or {})
    info["machineID"] = info["systemUUID"] = info["bootID"] = os.urandom(16).hex()
    capacity = dict(real_status.get("capacity") or {})
    capacity["pods"] = "1100"  # this node holds the benchmark's 1,000 pods (a kubelet: 110)
    allocatable = dict(real_status.get("allocatable") or capacity)
    allocatable["pods"] = capacity["pods"]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": NODE_NAME,
            "labels": {
                "beta.kubernetes.io/arch": info.get("architecture", "amd64"),
                "beta.kubernetes.io/os": info.get("operatingSystem", "linux"),
                "kubernetes.io/arch": info.get("architecture", "amd64"),
                "kubernetes.io/hostname": NODE_NAME,
                "kubernetes.io/os": info.get("operatingSystem", "linux"),
                EMULATED_LABEL: "bench-scale",
            },
            "annotations": {"volumes.kubernetes.io/controller-managed-attach-detach": "true"},
        },
        # Unschedulable: the scheduler never places another session's pods here (nothing
        # would run them); the benchmark's pods name the node themselves.
        "spec": {"unschedulable": True},
        "status": {
            "capacity": capacity,
            "allocatable": allocatable,
            "conditions": node_conditions(now, now),
            "addresses": [
                {"type": "InternalIP", "address": NODE_IP},
                {"type": "Hostname", "address": NODE_NAME},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}},
            "nodeInfo": info,
            # What the real kubelet declares of itself and its runtime (same binaries).
            **{
                key: real_status[key]
                for key in ("declaredFeatures", "features", "runtimeHandlers")
                if key in real_status
            },
        },
    }


def lease_body(node_uid: str) -> JSON:
    """The node's Lease as the kubelet creates it, owned by the Node (deleted with it)."""
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": NODE_NAME,
            "namespace": LEASE_NAMESPACE,
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Node", "name": NODE_NAME, "uid": node_uid}
            ],
        },
        "spec": {
            "holderIdentity": NODE_NAME,
            "leaseDurationSeconds": LEASE_SECONDS,
            "renewTime": micro_time(),
        },
    }


# --- pod status, as the kubelet writes it ----------------------------------------------------


def running_status(pod: Mapping[str, Any], image_id: str) -> JSON:
    """The kubelet's status patch for a pod whose one container started just now."""
    started = rfc3339()
    generation = pod["metadata"].get("generation", 1)
    conditions = [
        {
            "type": type_,
            "status": "True",
            "lastProbeTime": None,
            "lastTransitionTime": started,
            "observedGeneration": generation,
        }
        for type_ in POD_CONDITIONS
    ]
    statuses = []
    pod_limits: dict[str, str] = {}
    pod_requests: dict[str, str] = {}
    for container in pod["spec"]["containers"]:
        limits = (container.get("resources") or {}).get("limits") or {}
        requests = (container.get("resources") or {}).get("requests") or limits
        # One container: the pod's resources are its container's (the kubelet sums them).
        pod_limits.update(limits)
        pod_requests.update(requests)
        statuses.append(
            {
                "name": container["name"],
                "image": container["image"],
                "imageID": image_id,
                "containerID": f"containerd://{os.urandom(32).hex()}",
                "ready": True,
                "started": True,
                "restartCount": 0,
                "state": {"running": {"startedAt": started}},
                "lastState": {},
                "allocatedResources": dict(requests),
                "resources": {"limits": dict(limits), "requests": dict(requests)},
                "user": {"linux": {"uid": 0, "gid": 0, "supplementalGroups": [0]}},
            }
        )
    return {
        # The kubelet's patches carry the pod's uid: a pod recreated under the same name in
        # the meantime makes the patch fail instead of receiving another pod's status.
        "metadata": {"uid": pod["metadata"]["uid"]},
        "status": {
            "observedGeneration": generation,
            "phase": "Running",
            "conditions": conditions,
            "hostIP": NODE_IP,
            "hostIPs": [{"ip": NODE_IP}],
            "podIP": NODE_IP,  # hostNetwork: the node's address
            "podIPs": [{"ip": NODE_IP}],
            "startTime": started,
            "containerStatuses": statuses,
            "allocatedResources": dict(pod_requests),
            "resources": {"limits": pod_limits, "requests": pod_requests},
        },
    }


# --- the endpoints ---------------------------------------------------------------------------


@dataclass
class PodEndpoints:
    """One aiohttp server listening on a loopback port per pod (index i: ports[i]).

    `levels[i]` is pod i's working set in bytes, served as process_resident_memory_bytes on
    its /metrics; /debug/pprof/* goes to fixture i mod len(fixtures)."""

    count: int
    fixtures: list[str]  # base URLs of real leaky Go fixtures
    ports: list[int] = field(default_factory=list)
    levels: list[int] = field(default_factory=list)
    requests: list[tuple[float, str]] = field(default_factory=list)  # (wall time, path)
    errors: Counter[str] = field(default_factory=Counter)
    forward_seconds: list[float] = field(default_factory=list)  # each pprof forward's time
    _template: str = ""
    _by_port: dict[int, int] = field(default_factory=dict)

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[PodEndpoints]:
        sockets = []
        for _ in range(self.count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((NODE_IP, 0))
            sockets.append(sock)
        self.ports = [int(s.getsockname()[1]) for s in sockets]
        self._by_port = {port: i for i, port in enumerate(self.ports)}
        self.levels = [0] * self.count
        limits = httpx.Limits(max_connections=8 * len(self.fixtures), max_keepalive_connections=32)
        async with httpx.AsyncClient(timeout=30, limits=limits) as upstream:
            page = await upstream.get(f"{self.fixtures[0]}/metrics")
            page.raise_for_status()
            self._template = page.text
            app = web.Application()
            app["upstream"] = upstream
            app.router.add_route("GET", "/{tail:.*}", self._handle)
            runner = web.AppRunner(app, access_log=None, handle_signals=False)
            await runner.setup()
            try:
                for sock in sockets:
                    await web.SockSite(runner, sock, backlog=64).start()
                yield self
            finally:
                await runner.cleanup()
                for sock in sockets:
                    sock.close()

    def _index(self, request: web.Request) -> int:
        transport = request.transport
        sockname = transport.get_extra_info("sockname") if transport is not None else None
        port = int(sockname[1]) if sockname else int(request.url.port or 0)
        return self._by_port[port]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        index = self._index(request)
        self.requests.append((time.time(), request.path))
        if request.path == "/metrics":
            line = f"process_resident_memory_bytes {float(self.levels[index]):e}"
            text = _RSS_LINE.sub(line, self._template, count=1)
            return web.Response(text=text, content_type="text/plain", charset="utf-8")
        if not request.path.startswith("/debug/pprof"):
            return web.Response(status=404, text="404 page not found\n")
        upstream: httpx.AsyncClient = request.app["upstream"]
        fixture = self.fixtures[index % len(self.fixtures)]
        began = time.monotonic()
        try:
            answer = await upstream.get(f"{fixture}{request.path_qs}")
        except httpx.HTTPError as exc:
            self.errors[f"{type(exc).__name__}: {exc}"[:120]] += 1
            return web.Response(status=502, text=f"fixture unreachable: {exc}\n")
        finally:
            self.forward_seconds.append(time.monotonic() - began)
        headers = {
            name: answer.headers[name]
            for name in ("Content-Type", "Content-Disposition", "X-Content-Type-Options")
            if name in answer.headers
        }
        return web.Response(status=answer.status_code, body=answer.content, headers=headers)


# --- the node --------------------------------------------------------------------------------


@dataclass
class ScaleNode:
    """The Node `scale-node`, its Lease renewed while `alive()` runs; pods' status writes."""

    http: httpx.AsyncClient  # as the cluster's admin
    real_node: str  # the real kubelet's node: capacity and node info are copied from it
    uid: str = ""
    renewals: int = 0
    _parking: socket.socket | None = None

    async def register(self) -> None:
        """Create the Node (replacing one a crashed run left, unless its Lease is fresh)."""
        existing = await self.http.get(f"/api/v1/nodes/{NODE_NAME}")
        if existing.status_code == 200:
            lease = await self.http.get(self._lease_path())
            renewed = (
                (lease.json().get("spec") or {}).get("renewTime") if lease.is_success else None
            )
            if renewed:
                age = time.time() - parse_time(renewed)
                if age < LEASE_SECONDS:
                    raise NodeBusy(
                        f"node {NODE_NAME} exists and its Lease was renewed {age:.0f} s ago: "
                        "another scale benchmark is running on this cluster"
                    )
            await self.remove()
        real = await self.http.get(f"/api/v1/nodes/{self.real_node}")
        real.raise_for_status()
        # metrics-server scrapes every node's kubelet port: this one refuses at once (bound,
        # never listening), so no scrape waits for a timeout and no port is shared by chance.
        self._parking = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._parking.bind((NODE_IP, 0))
        port = int(self._parking.getsockname()[1])
        created = await self.http.post("/api/v1/nodes", json=node_body(port, real.json()))
        if created.status_code != 201:
            raise RuntimeError(f"creating node {NODE_NAME}: {created.status_code} {created.text}")
        self.uid = created.json()["metadata"]["uid"]
        lease = await self.http.post(
            f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases",
            json=lease_body(self.uid),
        )
        if lease.status_code == 409:  # a lease a removed node left behind
            await self.http.delete(self._lease_path())
            lease = await self.http.post(
                f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases",
                json=lease_body(self.uid),
            )
        if lease.status_code != 201:
            raise RuntimeError(f"creating the node's Lease: {lease.status_code} {lease.text}")

    def _lease_path(self) -> str:
        return f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases/{NODE_NAME}"

    async def alive(self, stop: asyncio.Event) -> None:
        """Renew the Lease every 10 s and report the node's status every 5 min, as the
        kubelet does, until `stop` is set."""
        reported = time.monotonic()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), LEASE_RENEW)
            if stop.is_set():
                return
            with contextlib.suppress(httpx.HTTPError):
                answer = await self.http.patch(
                    self._lease_path(),
                    json={"spec": {"renewTime": micro_time(), "holderIdentity": NODE_NAME}},
                    headers=MERGE_PATCH,
                )
                self.renewals += answer.is_success
            if time.monotonic() - reported >= NODE_STATUS_REPORT:
                reported = time.monotonic()
                with contextlib.suppress(httpx.HTTPError):
                    await self.report_status()

    async def report_status(self) -> None:
        current = await self.http.get(f"/api/v1/nodes/{NODE_NAME}")
        current.raise_for_status()
        now = rfc3339()
        conditions = []
        for condition in current.json()["status"]["conditions"]:
            conditions.append({**condition, "lastHeartbeatTime": now})
        await self.http.patch(
            f"/api/v1/nodes/{NODE_NAME}/status",
            json={"status": {"conditions": conditions}},
            headers=STRATEGIC_PATCH,
        )

    async def run_pod(self, namespace: str, body: JSON, image_id: str) -> JSON:
        """Create a pod bound to this node, then write its Running status as the kubelet."""
        created = await self.http.post(f"/api/v1/namespaces/{namespace}/pods", json=body)
        if created.status_code != 201:
            raise RuntimeError(
                f"creating pod {namespace}/{body['metadata']['name']}: {created.text}"
            )
        pod: JSON = created.json()
        name = pod["metadata"]["name"]
        patched = await self.http.patch(
            f"/api/v1/namespaces/{namespace}/pods/{name}/status",
            json=running_status(pod, image_id),
            headers=STRATEGIC_PATCH,
        )
        if patched.status_code != 200:
            raise RuntimeError(f"writing the status of pod {namespace}/{name}: {patched.text}")
        result: JSON = patched.json()
        return result

    async def remove(self) -> None:
        """Delete the Node (its Lease with it, and explicitly, not waiting for the collector)."""
        await self.http.delete(f"/api/v1/nodes/{NODE_NAME}")
        await self.http.delete(self._lease_path())
        if self._parking is not None:
            self._parking.close()
            self._parking = None


def parse_time(text: str) -> float:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


async def bounded(jobs: Sequence[Callable[[], Awaitable[T]]], limit: int) -> list[T]:
    """Run the coroutine factories with at most `limit` at once; results in order."""
    gate = asyncio.Semaphore(limit)

    async def one(job: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await job()

    return list(await asyncio.gather(*(one(job) for job in jobs)))
