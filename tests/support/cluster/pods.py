"""Pod manifests for the test cluster, as plain JSON (what `kubectl apply` would send).

Conventions of the test kubelet (tests/support/cluster/kubelet.py):
- a container runs `command` + `args` on this machine (there are no images: `image` is a
  label for status only);
- a declared port with `containerPort: 0` is allocated by the kubelet (a free loopback port)
  when the pod is created; the container gets it as `$PORT` (its first port) and
  `$PORT_<NAME>` (named ports), and `$(PORT)` in `command`/`args` expands as Kubernetes
  expands `$(VAR)` references; the pod shows it in `spec.containers[].ports[].containerPort`
  and in the annotation `kubelet.test/port-<container>`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tests.support.leaky import FIXTURE_BIN

JSON = dict[str, Any]

LEAKY_IMAGE = "registry.test/oomforensics/leaky:v1"


def container(
    name: str,
    command: Sequence[str],
    args: Sequence[str] = (),
    *,
    image: str = "registry.test/oomforensics/process:v1",
    env: Mapping[str, str] | None = None,
    memory_limit: str | None = None,
    ports: Mapping[str, int] | None = None,
) -> JSON:
    """A container; `ports` maps port names to numbers (0: the kubelet picks one)."""
    spec: JSON = {"name": name, "image": image, "command": list(command)}
    if args:
        spec["args"] = list(args)
    if env:
        spec["env"] = [{"name": key, "value": value} for key, value in env.items()]
    if memory_limit is not None:
        spec["resources"] = {"limits": {"memory": memory_limit}}
    if ports:
        spec["ports"] = [
            {"name": port_name, "containerPort": number, "protocol": "TCP"}
            for port_name, number in ports.items()
        ]
    return spec


def pod(
    name: str,
    containers: Sequence[JSON],
    *,
    namespace: str = "default",
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    restart_policy: str = "Always",
    grace_period: int = 5,
) -> JSON:
    metadata: JSON = {"name": name, "namespace": namespace}
    if labels:
        metadata["labels"] = dict(labels)
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {
            "containers": list(containers),
            "restartPolicy": restart_policy,
            "terminationGracePeriodSeconds": grace_period,
        },
    }


def leaky_container(
    mode: str = "mapcache",
    *,
    name: str = "app",
    memory_limit: str | None = "128Mi",
    rate: float = 40,
    chunk: int = 256 * 1024,
    extra_args: Sequence[str] = (),
) -> JSON:
    """The leaking Go fixture serving /debug/pprof and /metrics on its allocated port."""
    args = ["-mode", mode, "-rate", f"{rate:g}", "-chunk", str(chunk)]
    args += ["-listen", "127.0.0.1:$(PORT)", *extra_args]
    return container(
        name,
        [str(FIXTURE_BIN)],
        args,
        image=LEAKY_IMAGE,
        memory_limit=memory_limit,
        ports={"http": 0},
    )


def leaky_pod(
    name: str,
    mode: str = "mapcache",
    *,
    namespace: str = "default",
    labels: Mapping[str, str] | None = None,
    memory_limit: str | None = "128Mi",
    rate: float = 40,
    chunk: int = 256 * 1024,
) -> JSON:
    return pod(
        name,
        [leaky_container(mode, memory_limit=memory_limit, rate=rate, chunk=chunk)],
        namespace=namespace,
        labels=labels or {"app": "leaky"},
    )
