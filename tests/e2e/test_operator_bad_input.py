"""What a user gets wrong becomes a condition, not a crash: a selector matching nothing, a
port the pod does not expose, a pod that serves no pprof and has no memory limit; spec
changes (suspend) take effect without a restart, and deleting the investigation stops its
work. Nothing unchanged is written again (no retry storm on the API)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.operator_harness import (
    MI,
    PODS,
    apply_crd,
    events_about,
    operator_environment,
    poll,
    require_cluster,
    running_operator,
)
from tests.support.cluster import ClusterFront, Kubelet
from tests.support.cluster.pods import container, pod
from tests.support.moto import MotoServer

pytestmark = [pytest.mark.timeout(300)]


def investigation(name: str, app: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "oomforensics.io/v1alpha1",
        "kind": "MemoryInvestigation",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": app}},
            "sampling": {"interval": "1s"},
            **spec,
        },
    }


async def test_bad_input_is_reported_in_conditions_and_spec_changes_apply(
    front: ClusterFront,
    kubelet: Kubelet,
    s3: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    require_cluster(front)
    operator_environment(monkeypatch, front, s3, "e2e-bad", tmp_path / "spool")
    async with httpx.AsyncClient(base_url=front.url, timeout=30) as http:
        await apply_crd(http)
        quiet = pod(
            "quiet",
            [container("main", ["sleep", "3600"], ports={"http": 0})],
            labels={"app": "quiet"},
        )
        assert (await http.post(PODS, json=quiet)).status_code == 201
        portless = investigation("portless", "quiet", endpoint={"portName": "pprof"})
        for body in (investigation("nobody", "absent"), investigation("quiet", "quiet"), portless):
            assert (await http.post(MI, json=body)).status_code == 201

        def condition(body: dict[str, Any], type_: str) -> tuple[str, str] | None:
            for c in (body.get("status") or {}).get("conditions") or []:
                if c["type"] == type_:
                    return c["status"], c["reason"]
            return None

        async def reason(name: str, type_: str, wanted: tuple[str, str]) -> dict[str, Any] | None:
            body: dict[str, Any] = (await http.get(f"{MI}/{name}")).json()
            return body if condition(body, type_) == wanted else None

        async with running_operator() as operator:
            nobody = await poll(
                lambda: reason("nobody", "Ready", ("False", "NoMatchingPods")),
                60,
                "NoMatchingPods",
                operator,
            )
            settled = len(front.calls)
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
            assert "CaptureFailed" in {
                e["reason"] for e in events_about(front, "MemoryInvestigation", "quiet")
            }
            target = failing["status"]["targets"][0]
            assert target["pod"] == "quiet" and "limitBytes" not in target
            assert "capture failed" in target["lastError"]

            # suspend: true pauses, without a restart of the operator
            patched = await http.patch(
                f"{MI}/quiet",
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
            assert (await http.delete(f"{MI}/quiet")).status_code == 200

            async def gone() -> bool:
                return (await http.get(f"{MI}/quiet")).status_code == 404

            await poll(gone, 60, "the investigation to be deleted", operator)
            assert not operator.done()
            # What does not change is not written again: no status patch storm.
            rewrites = [
                c
                for c in front.calls[settled:]
                if c.name == "nobody" and c.subresource == "status" and c.verb == "patch"
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
