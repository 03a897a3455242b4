"""Pod manifests for the real test cluster's node, as plain JSON (what `kubectl apply` sends).

Conventions of this node (hack/cluster): pods run on `hostNetwork` (the node and every such
pod are 127.0.0.1), so each pod listens on a port the test picks free and declares; a pod
with `host_network=False` gets a network namespace of its own on 198.18.0.0/24 instead (what
the API server's pods/proxy needs: it refuses loopback addresses); images are our own
(tests/support/kube/images.py), never pulled; no service account token is mounted (the
fixtures do not talk to the API).
"""

from __future__ import annotations

import socket
from collections.abc import Mapping, Sequence
from typing import Any

JSON = dict[str, Any]
NODE_IP = "127.0.0.1"


def free_port() -> int:
    """A loopback port free now (the pod binds it a moment later: hostNetwork)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((NODE_IP, 0))
        return int(sock.getsockname()[1])


def host_pod(
    name: str,
    namespace: str,
    image: str,
    args: Sequence[str],
    *,
    port: int,
    container: str = "app",
    labels: Mapping[str, str] | None = None,
    memory_limit: str | None = None,
    restart_policy: str = "Always",
    grace_period: int = 5,
    host_network: bool = True,
) -> JSON:
    spec: JSON = {
        "name": container,
        "image": image,
        "imagePullPolicy": "Never",
        "args": list(args),
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
    }
    if memory_limit is not None:
        spec["resources"] = {"limits": {"memory": memory_limit}}
    metadata: JSON = {"name": name, "namespace": namespace}
    if labels:
        metadata["labels"] = dict(labels)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {
            "hostNetwork": host_network,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "restartPolicy": restart_policy,
            "terminationGracePeriodSeconds": grace_period,
            "containers": [spec],
        },
    }


def leaky_pod(
    name: str,
    namespace: str,
    image: str,
    mode: str = "mapcache",
    *,
    labels: Mapping[str, str] | None = None,
    memory_limit: str | None = "128Mi",
    rate: float = 40,
    chunk: int = 256 * 1024,
    port: int | None = None,
    host_network: bool = True,
) -> JSON:
    """The leaking Go fixture serving /debug/pprof and /metrics on a free loopback port (or on
    every address of its own network namespace)."""
    port = port or free_port()
    args = ["-mode", mode, "-rate", f"{rate:g}", "-chunk", str(chunk)]
    args += ["-listen", f"{NODE_IP if host_network else '0.0.0.0'}:{port}"]
    return host_pod(
        name,
        namespace,
        image,
        args,
        port=port,
        labels=labels or {"app": "leaky"},
        memory_limit=memory_limit,
        host_network=host_network,
    )
