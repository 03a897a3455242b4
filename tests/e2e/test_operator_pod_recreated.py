"""A StatefulSet's pod deleted and created again under the same name (`db-0`, a new uid,
restartCount 0 again) on the real cluster is a new incarnation: the operator takes a baseline
of its own for it and keeps its snapshots apart from the old pod's, instead of carrying the old
pod's baseline and runs over."""

from __future__ import annotations

from typing import Any

import pytest

from oomforensics.archive.store import Archive
from tests.e2e.operator_harness import (
    KubeOperator,
    apply_crd,
    poll,
    running_operator,
)
from tests.support.kube.images import fixture_image
from tests.support.kube.pods import leaky_pod
from tests.support.moto import MotoServer

pytestmark = [pytest.mark.gotool, pytest.mark.timeout(480)]


async def test_a_pod_recreated_under_the_same_name_is_a_new_incarnation(
    kube_operator: KubeOperator, s3: MotoServer
) -> None:
    kube, namespace = kube_operator.kube, kube_operator.namespace
    image = fixture_image(kube, "leaky")
    archive = Archive.from_url(
        kube_operator.archive_url, credentials=s3.credentials, options=s3.options
    )
    pods, mi = kube_operator.pods, kube_operator.mi

    def db_0() -> dict[str, Any]:
        # A steady service (no leak): only the baselines matter here.
        return leaky_pod(
            "db-0", namespace, image, "mapcache", labels={"app": "db"}, memory_limit="256Mi", rate=1
        )

    async with kube.async_http() as http:
        await apply_crd(http)
        first = await http.post(pods, json=db_0())
        assert first.status_code == 201, first.text
        first_uid = first.json()["metadata"]["uid"]
        investigation = {
            "apiVersion": "oomforensics.io/v1alpha1",
            "kind": "MemoryInvestigation",
            "metadata": {"name": "db", "namespace": namespace},
            "spec": {
                "selector": {"matchLabels": {"app": "db"}},
                "endpoint": {"portName": "http"},
                "sampling": {"interval": "1s"},
                "snapshots": {"interval": "30s"},
            },
        }
        assert (await http.post(mi, json=investigation)).status_code == 201

        async def baseline_of(uid: str) -> list[Any] | None:
            keys = await archive.list_snapshots(namespace, "db", "db-0", pod_uid=uid)
            baselines = [k for k in keys if k.reason == "baseline"]
            return baselines or None

        async with running_operator([namespace]) as operator:
            await poll(lambda: baseline_of(first_uid), 120, "the first db-0's baseline", operator)
            deleted = await http.delete(f"{pods}/db-0", params={"gracePeriodSeconds": "0"})
            assert deleted.status_code == 200, deleted.text

            async def gone() -> bool:
                return (await http.get(f"{pods}/db-0")).status_code == 404

            await poll(gone, 60, "db-0 to be gone", operator)
            second = await http.post(pods, json=db_0())
            assert second.status_code == 201, second.text
            second_uid = second.json()["metadata"]["uid"]
            assert second_uid != first_uid
            await poll(lambda: baseline_of(second_uid), 120, "the new db-0's baseline", operator)

            async def targets_the_new_pod() -> dict[str, Any] | None:
                body: dict[str, Any] = (await http.get(f"{mi}/db")).json()
                targets = (body.get("status") or {}).get("targets") or []
                return body if [t for t in targets if t.get("uid") == second_uid] else None

            body = await poll(targets_the_new_pod, 60, "the status to show the new db-0", operator)

    targets = body["status"]["targets"]
    assert [t["uid"] for t in targets if t["pod"] == "db-0"] == [second_uid], targets
    old = await archive.list_snapshots(namespace, "db", "db-0", pod_uid=first_uid)
    new = await archive.list_snapshots(namespace, "db", "db-0", pod_uid=second_uid)
    assert old and new
    assert not {k.path() for k in old} & {k.path() for k in new}
    assert all(f"/db-0/{second_uid}/" in k.path() for k in new)
    # Both incarnations' runs start at 0 and each has a baseline of its own.
    assert {k.run for k in new} == {0} and "baseline" in {k.reason for k in new}
