"""Running the operator end to end on the real test cluster: the CRD applied as the cluster's
admin, kopf with our handlers against a kubeconfig holding a token of the chart's
ServiceAccount, S3 on moto as the default archive, and polling helpers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import kopf
import pytest
import yaml

from tests.support.kube import KubeCluster
from tests.support.kube.operator_access import operator_kubeconfig
from tests.support.moto import MotoServer

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
CRD = yaml.safe_load((ROOT / "crds" / "memoryinvestigations.oomforensics.io.yaml").read_text())
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"


async def poll(
    probe: Callable[[], Awaitable[T | None]],
    timeout: float,
    what: str,
    operator: asyncio.Task[None] | None = None,
) -> T:
    deadline = time.monotonic() + timeout
    while True:
        if operator is not None and operator.done():
            raise AssertionError(f"the operator stopped while waiting for {what}")
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(0.5)


async def apply_crd(http: httpx.AsyncClient) -> None:
    response = await http.post(CRDS, json=CRD)
    assert response.status_code in (201, 409), response.text
    if response.status_code == 409:
        current = (await http.get(f"{CRDS}/{CRD['metadata']['name']}")).json()
        body = {**CRD, "metadata": {**CRD["metadata"], **_rv(current)}}
        assert (await http.put(f"{CRDS}/{CRD['metadata']['name']}", json=body)).is_success

    async def served() -> bool:
        listed = await http.get("/apis/oomforensics.io/v1alpha1/memoryinvestigations")
        return listed.status_code == 200

    await poll(served, 60, "the MemoryInvestigation resource to be served")


def _rv(current: dict[str, Any]) -> dict[str, Any]:
    return {"resourceVersion": current["metadata"]["resourceVersion"]}


def kube_operator_environment(
    monkeypatch: pytest.MonkeyPatch,
    kubeconfig: Path,
    s3: MotoServer,
    prefix: str,
    spool: Path,
    namespace: str,
) -> str:
    """The operator on the real cluster: the given kubeconfig, S3 on moto, one namespace."""
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.setenv("OOMF_STORAGE_URL", s3.archive_url(prefix))
    monkeypatch.setenv("OOMF_STORAGE_OPTIONS", ",".join(f"{k}={v}" for k, v in s3.options.items()))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.credentials["access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.credentials["secret_access_key"])
    monkeypatch.setenv("OOMF_SPOOL_DIR", str(spool))
    monkeypatch.setenv("OOMF_NAMESPACES", namespace)
    # No /metrics page unless a test asks for one (on a port of its own): operators of other
    # tests and sessions run on this machine at the same time.
    monkeypatch.setenv("OOMF_METRICS_PORT", "0")
    return s3.archive_url(prefix)


@contextlib.contextmanager
def kube_namespace(kube: KubeCluster, prefix: str) -> Iterator[str]:
    """A namespace of the test's own on the real cluster, deleted afterwards (the finalizers a
    stopped operator left on its MemoryInvestigations dropped first, so the deletion ends)."""
    name = f"{prefix}-{secrets.token_hex(3)}"
    kube.ensure_namespace(name)
    try:
        yield name
    finally:
        listed = kube.kubectl("get", "mi", "-n", name, "-o", "name", check=False)
        for resource in listed.split():
            kube.kubectl(
                "patch", "-n", name, resource, "--type=merge",
                "-p", '{"metadata":{"finalizers":null}}', check=False,
            )  # fmt: skip
        kube.kubectl("delete", "namespace", name, "--wait=false", check=False)


@dataclass(frozen=True)
class KubeOperator:
    """What a real-cluster e2e test needs to run the operator: a namespace of its own, the
    operator's kubeconfig (the chart's ServiceAccount and RBAC), its user name for the audit
    log, the S3 archive the environment points it at, and when the test began."""

    kube: KubeCluster
    namespace: str
    kubeconfig: Path
    user: str
    archive_url: str
    started: datetime

    @property
    def mi(self) -> str:
        """The collection of MemoryInvestigations in the test's namespace."""
        return f"/apis/oomforensics.io/v1alpha1/namespaces/{self.namespace}/memoryinvestigations"

    @property
    def pods(self) -> str:
        return f"/api/v1/namespaces/{self.namespace}/pods"

    def rbac_with(self, values: Mapping[str, Any]) -> None:
        """The chart's RBAC for the namespace again, rendered with these values (e.g.
        investigationSecrets, rbac.proxyAccess), before the operator starts: same account."""
        operator_kubeconfig(
            self.kube, self.kubeconfig, watch_namespaces=[self.namespace], values=values
        )

    def forbidden(self) -> list[tuple[str, str]]:
        """The operator's requests the real authorizer refused since the test began."""
        requests = self.kube.audit_events(self.user, since=self.started)
        return [
            (e["verb"], e["requestURI"]) for e in requests if e["responseStatus"]["code"] == 403
        ]


async def kube_events_about(
    http: httpx.AsyncClient, namespace: str, kind: str, name: str
) -> list[dict[str, Any]]:
    """Events (core/v1) about one object, as the API server lists them."""
    selector = f"involvedObject.kind={kind},involvedObject.name={name}"
    response = await http.get(
        f"/api/v1/namespaces/{namespace}/events", params={"fieldSelector": selector}
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


@contextlib.asynccontextmanager
async def running_operator(
    namespaces: Sequence[str] = ("default",),
) -> AsyncIterator[asyncio.Task[None]]:
    from oomforensics.k8s import handlers  # noqa: F401  (registers the handlers)

    stop = asyncio.Event()
    task = asyncio.create_task(
        kopf.operator(
            registry=kopf.get_default_registry(),
            standalone=True,
            clusterwide=False,
            namespaces=list(namespaces),
            stop_flag=stop,
        )
    )
    try:
        yield task
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 60)


def condition(body: dict[str, Any], type_: str) -> dict[str, Any]:
    """The condition of that type in the body's status ({} when there is none)."""
    found = [c for c in (body.get("status") or {}).get("conditions") or [] if c["type"] == type_]
    return dict(found[0]) if found else {}


def table_text(table: dict[str, Any]) -> str:
    """A Table object as kubectl prints it (columns of priority 0)."""
    columns = [
        (i, c) for i, c in enumerate(table["columnDefinitions"]) if c.get("priority", 0) == 0
    ]
    rows = [[c["name"].upper() for _, c in columns]]
    for row in table["rows"]:
        rows.append(
            [str(row["cells"][i]) if row["cells"][i] is not None else "" for i, _ in columns]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(columns))]
    return "\n".join(
        "   ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def dump(path: Path, doc: Any) -> None:
    path.write_text(json.dumps(doc, indent=2, sort_keys=True))
