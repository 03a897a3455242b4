"""What a user gets wrong becomes a condition, not a crash: a selector matching nothing, a
port the pod does not expose, a pod that serves no pprof and has no memory limit; spec
changes (suspend) take effect without a restart, and deleting the investigation stops its
work. Nothing unchanged is written again (no retry storm on the API). On the real cluster,
with the chart's RBAC; the API server's audit log counts the writes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.operator_harness import (
    apply_crd,
    kube_events_about,
    kube_namespace,
    kube_operator_environment,
    poll,
    running_operator,
)
from tests.support.kube import KubeCluster
from tests.support.kube.operator_access import operator_kubeconfig
from tests.support.kube.pods import free_port, host_pod
from tests.support.moto import MotoServer

pytestmark = [pytest.mark.timeout(300)]


PAUSE_IMAGE = "oomforensics.local/pause:1"  # the node's own pause image: serves nothing


@pytest.fixture
def namespace(kube: KubeCluster) -> Iterator[str]:
    with kube_namespace(kube, "bad-input") as name:
        yield name


def investigation(name: str, namespace: str, app: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "oomforensics.io/v1alpha1",
        "kind": "MemoryInvestigation",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "selector": {"matchLabels": {"app": app}},
            "sampling": {"interval": "1s"},
            **spec,
        },
    }


async def test_bad_input_is_reported_in_conditions_and_spec_changes_apply(
    kube: KubeCluster,
    namespace: str,
    s3: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    kubeconfig, operator_user = operator_kubeconfig(
        kube, tmp_path / "operator.kubeconfig", watch_namespaces=[namespace]
    )
    kube_operator_environment(monkeypatch, kubeconfig, s3, "e2e-bad", tmp_path / "spool", namespace)
    mi = f"/apis/oomforensics.io/v1alpha1/namespaces/{namespace}/memoryinvestigations"
    async with kube.async_http() as http:
        await apply_crd(http)
        # A pod with a port where nothing listens and no memory limit.
        quiet = host_pod(
            "quiet", namespace, PAUSE_IMAGE, [], port=free_port(), container="main",
            labels={"app": "quiet"},
        )  # fmt: skip
        created = await http.post(f"/api/v1/namespaces/{namespace}/pods", json=quiet)
        assert created.status_code == 201, created.text
        portless = investigation("portless", namespace, "quiet", endpoint={"portName": "pprof"})
        for body in (
            investigation("nobody", namespace, "absent"),
            investigation("quiet", namespace, "quiet"),
            portless,
        ):
            assert (await http.post(mi, json=body)).status_code == 201

        def condition(body: dict[str, Any], type_: str) -> tuple[str, str] | None:
            for c in (body.get("status") or {}).get("conditions") or []:
                if c["type"] == type_:
                    return c["status"], c["reason"]
            return None

        async def reason(name: str, type_: str, wanted: tuple[str, str]) -> dict[str, Any] | None:
            body: dict[str, Any] = (await http.get(f"{mi}/{name}")).json()
            return body if condition(body, type_) == wanted else None

        async with running_operator([namespace]) as operator:
            nobody = await poll(
                lambda: reason("nobody", "Ready", ("False", "NoMatchingPods")),
                60,
                "NoMatchingPods",
                operator,
            )
            settled = datetime.now(UTC)
            unexposed = await poll(
                lambda: reason("portless", "Capturing", ("False", "EndpointNotConfigured")),
                60,
                "EndpointNotConfigured",
                operator,
            )
            failing = await poll(
                lambda: reason("quiet", "Capturing", ("False", "CaptureFailed")),
                60,
                "CaptureFailed for a pod without pprof",
                operator,
            )
            events = await kube_events_about(http, namespace, "MemoryInvestigation", "quiet")
            assert "CaptureFailed" in {e["reason"] for e in events}
            target = failing["status"]["targets"][0]
            assert target["pod"] == "quiet" and "limitBytes" not in target
            assert "capture failed" in target["lastError"]

            # suspend: true pauses, without a restart of the operator
            patched = await http.patch(
                f"{mi}/quiet",
                json={"spec": {"suspend": True}},
                headers={"Content-Type": "application/merge-patch+json"},
            )
            assert patched.status_code == 200
            await poll(
                lambda: reason("quiet", "Capturing", ("False", "Suspended")),
                30,
                "Suspended",
                operator,
            )

            # deleting it stops the work (the finalizer is released)
            assert (await http.delete(f"{mi}/quiet")).status_code == 200

            async def gone() -> bool:
                return (await http.get(f"{mi}/quiet")).status_code == 404

            await poll(gone, 60, "the investigation to be deleted", operator)
            assert not operator.done()
            # What does not change is not written again: no status patch storm.
            rewrites = [
                e
                for e in kube.audit_events(operator_user, since=settled)
                if e["objectRef"].get("name") == "nobody"
                and e["objectRef"].get("subresource") == "status"
                and e["verb"] == "patch"
            ]
            assert rewrites == [], f"{len(rewrites)} unchanged status rewrites"
    assert nobody["status"]["targetCount"] == 0
    message = next(
        c["message"] for c in unexposed["status"]["conditions"] if c["type"] == "Capturing"
    )
    assert "'pprof'" in message and "quiet" in message
    assert "selector" in next(
        c["message"] for c in nobody["status"]["conditions"] if c["type"] == "Ready"
    )
