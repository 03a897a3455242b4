"""The containers an investigation watches, read from pod JSON, and where their pprof is (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from oomforensics.capture.prometheus import METRICS_PATH
from oomforensics.k8s.api import JSON
from oomforensics.k8s.spec import Endpoint, InvestigationSpec
from oomforensics.quantity import InvalidQuantity, parse_memory
from oomforensics.triggers import ContainerRun


@dataclass(frozen=True, slots=True)
class Target:
    """One container of one selected pod, as the pod JSON shows it."""

    pod: str
    uid: str
    container: str
    restart_count: int
    limit: int | None  # bytes; None: no memory limit
    ip: str | None
    port: int | None
    running: bool
    node: str = ""
    image: str = ""
    problem: str | None = None  # why it cannot be captured (no port, no container, ...)
    namespace: str = ""

    @property
    def run(self) -> ContainerRun:
        return ContainerRun(self.namespace, self.pod, self.uid, self.container, self.restart_count)


_CONTAINER_FIELDS = ("name", "image", "ports", "resources")
_STATUS_FIELDS = ("name", "restartCount", "state", "lastState")


def essential_pod(pod: Mapping[str, Any]) -> JSON:
    """What the operator reads of a pod (targets, memory limits, ports, runs, OOM kills), and
    nothing else: it holds every selected pod, twice (kopf's index and the OOM watch), and
    real pod bodies are mostly managedFields, env and volumes."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    return {
        "metadata": {
            k: meta[k]
            for k in ("name", "namespace", "uid", "labels", "deletionTimestamp")
            if k in meta
        },
        "spec": {
            "nodeName": spec.get("nodeName"),
            "containers": [
                {k: c[k] for k in _CONTAINER_FIELDS if k in c} for c in spec.get("containers") or []
            ],
        },
        "status": {
            "podIP": status.get("podIP"),
            # An eviction's (or node shutdown's) word, which tells kills apart (kills.py).
            **{k: status[k] for k in ("phase", "reason", "message") if k in status},
            "containerStatuses": [
                {k: c[k] for k in _STATUS_FIELDS if k in c}
                for c in status.get("containerStatuses") or []
            ],
        },
    }


def select_targets(
    pods: Iterable[Mapping[str, Any]], spec: InvestigationSpec, namespace: str = ""
) -> list[Target]:
    """The containers to watch among `pods` (all in `namespace`, the CR's), by pod name."""
    targets = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        if meta.get("deletionTimestamp") or not spec.selector.matches(meta.get("labels") or {}):
            continue
        containers = (pod.get("spec") or {}).get("containers") or []
        if not containers:
            continue
        wanted = spec.container or containers[0].get("name")
        chosen = next((c for c in containers if c.get("name") == wanted), None)
        name, uid = str(meta.get("name") or ""), str(meta.get("uid") or "")
        pod_namespace = str(meta.get("namespace") or namespace)
        status = pod.get("status") or {}
        if chosen is None:
            targets.append(
                Target(
                    name,
                    uid,
                    str(wanted),
                    0,
                    None,
                    None,
                    None,
                    False,
                    problem=f"pod {name} has no container {wanted!r} (spec.container)",
                    namespace=pod_namespace,
                )
            )
            continue
        cstatus: Mapping[str, Any] = next(
            (s for s in status.get("containerStatuses") or [] if s.get("name") == wanted), {}
        )
        port, problem = resolve_port(chosen, spec.endpoint)
        targets.append(
            Target(
                pod=name,
                uid=uid,
                container=str(wanted),
                restart_count=int(cstatus.get("restartCount") or 0),
                limit=memory_limit(chosen),
                ip=status.get("podIP"),
                port=port,
                running="running" in (cstatus.get("state") or {}),
                node=str((pod.get("spec") or {}).get("nodeName") or ""),
                image=str(chosen.get("image") or ""),
                problem=f"pod {name}: {problem}" if problem else None,
                namespace=pod_namespace,
            )
        )
    return sorted(targets, key=lambda t: (t.pod, t.container))


def resolve_port(container: Mapping[str, Any], endpoint: Endpoint) -> tuple[int | None, str | None]:
    """The pprof port: spec.endpoint.port, the named port, or the container's only port."""
    if endpoint.port is not None:
        return endpoint.port, None
    ports = [p for p in container.get("ports") or [] if isinstance(p.get("containerPort"), int)]
    name = container.get("name")
    if endpoint.port_name is not None:
        for port in ports:
            if port.get("name") == endpoint.port_name:
                return int(port["containerPort"]), None
        return None, (
            f"container {name} declares no port named {endpoint.port_name!r} "
            "(spec.endpoint.portName)"
        )
    if len(ports) == 1:
        return int(ports[0]["containerPort"]), None
    return None, (
        f"container {name} declares {len(ports)} ports: set spec.endpoint.port or portName"
    )


def memory_limit(container: Mapping[str, Any]) -> int | None:
    raw = ((container.get("resources") or {}).get("limits") or {}).get("memory")
    if raw is None:
        return None
    try:
        return parse_memory(str(raw))
    except InvalidQuantity:
        return None


def working_sets(metrics: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], int]:
    """(pod, container) -> working set bytes, from a PodMetrics list's items."""
    found: dict[tuple[str, str], int] = {}
    for item in metrics:
        pod = str((item.get("metadata") or {}).get("name") or "")
        for container in item.get("containers") or []:
            raw = (container.get("usage") or {}).get("memory")
            if raw is None:
                continue
            text = str(raw)
            try:
                value = 0 if text.strip("0") == "" else parse_memory(text)
            except InvalidQuantity:
                continue
            found[(pod, str(container.get("name")))] = value
    return found


def measured_at(metrics: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], float]:
    """(pod, container) -> when a PodMetrics list's reading was measured (its `timestamp`,
    POSIX seconds); readings without a readable one are left out."""
    found: dict[tuple[str, str], float] = {}
    for item in metrics:
        stamp = item.get("timestamp")
        if not isinstance(stamp, str):
            continue
        try:
            moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        except ValueError:
            continue
        at = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
        pod = str((item.get("metadata") or {}).get("name") or "")
        for container in item.get("containers") or []:
            found[(pod, str(container.get("name")))] = at
    return found


def pprof_base(target: Target, endpoint: Endpoint, namespace: str) -> str:
    """The pprof root: direct to the pod IP, or a path on the API server (pods/proxy)."""
    return target_url(target, endpoint, namespace, endpoint.path)


def metrics_url(target: Target, endpoint: Endpoint, namespace: str) -> str:
    """The target's Prometheus page, on the pprof port: the memory source without PodMetrics."""
    return target_url(target, endpoint, namespace, METRICS_PATH)


def target_url(target: Target, endpoint: Endpoint, namespace: str, path: str) -> str:
    """`path` on the target's port: direct to the pod IP, or through pods/proxy."""
    if endpoint.access == "apiserver-proxy":
        scheme = "https:" if endpoint.scheme == "https" else ""
        return f"/api/v1/namespaces/{namespace}/pods/{scheme}{target.pod}:{target.port}/proxy{path}"
    host = f"[{target.ip}]" if target.ip and ":" in target.ip else target.ip
    return f"{endpoint.scheme}://{host}:{target.port}{path}"
