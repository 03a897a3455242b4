"""PodMetrics the operator may not list: on the real cluster, with metrics-server serving, the
operator's ServiceAccount has the chart's RBAC minus its one rule on metrics.k8s.io, so every
PodMetrics list meets the real authorizer's 403. The operator then reads each target's own
/metrics (process_resident_memory_bytes) instead, and still captures before the kernel's OOM
kill.

The same fallback serves a cluster without metrics-server at all (the API server's 404 for
metrics.k8s.io): that case is tests/unit/k8s/test_sampler_fallback.py, with the real API
server's 404 body. (The test cluster is shared: its metrics-server APIService stays.)"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from oomforensics.archive.store import Archive
from oomforensics.triggers import reason_threshold
from tests.deploy.chart import NAMESPACE
from tests.e2e.operator_harness import (
    apply_crd,
    condition,
    kube_namespace,
    kube_operator_environment,
    poll,
    running_operator,
)
from tests.support.kube import KubeCluster
from tests.support.kube.images import fixture_image
from tests.support.kube.operator_access import operator_kubeconfig
from tests.support.kube.pods import leaky_pod
from tests.support.moto import MotoServer

pytestmark = [pytest.mark.gotool, pytest.mark.timeout(480)]
METRICS = "metrics.k8s.io"
LIMIT = 128 * 2**20


@pytest.fixture
def namespace(kube: KubeCluster) -> Iterator[str]:
    with kube_namespace(kube, "pm-forbidden") as name:
        yield name


@pytest.fixture
def release(kube: KubeCluster, namespace: str) -> Iterator[str]:
    """A release name of the test's own: its ServiceAccount and RBAC are this test's alone, so
    no other test's grant to the shared chart account can let PodMetrics through."""
    name = f"oomf-{namespace}"
    try:
        yield name
    finally:
        kube.kubectl(
            "delete", "clusterrolebinding,clusterrole", f"{name}-discovery", "--ignore-not-found",
            check=False,
        )  # fmt: skip
        kube.kubectl(
            "delete", "serviceaccount", "-n", NAMESPACE, name, "--ignore-not-found", check=False
        )


def allowed(kube: KubeCluster, user: str, namespace: str, group: str, resource: str) -> bool:
    """The real authorizer's answer to `user` listing `resource` in `namespace`."""
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": user,
            "groups": [
                "system:serviceaccounts",
                f"system:serviceaccounts:{NAMESPACE}",
                "system:authenticated",
            ],
            "resourceAttributes": {
                "namespace": namespace,
                "group": group,
                "resource": resource,
                "verb": "list",
            },
        },
    }
    with kube.http() as http:
        response = http.post("/apis/authorization.k8s.io/v1/subjectaccessreviews", json=review)
    assert response.status_code == 201, response.text
    return bool(response.json()["status"].get("allowed"))


async def test_when_pod_metrics_are_forbidden_the_targets_own_metrics_drive_the_triggers(
    kube: KubeCluster,
    namespace: str,
    release: str,
    s3: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    started = datetime.now(UTC)
    image = fixture_image(kube, "leaky")
    kubeconfig, operator_user = operator_kubeconfig(
        kube,
        tmp_path / "operator.kubeconfig",
        watch_namespaces=[namespace],
        values={"fullnameOverride": release},
        without_api_groups=[METRICS],
    )
    url = kube_operator_environment(
        monkeypatch, kubeconfig, s3, "e2e-pm-forbidden", tmp_path / "spool", namespace
    )
    # Before: this account may list pods but not PodMetrics, while metrics-server serves them.
    assert allowed(kube, operator_user, namespace, "", "pods")
    assert not allowed(kube, operator_user, namespace, METRICS, "pods")
    mi = f"/apis/oomforensics.io/v1alpha1/namespaces/{namespace}/memoryinvestigations"
    async with kube.async_http() as http:
        served = await http.get(f"/apis/{METRICS}/v1beta1/namespaces/{namespace}/pods")
        assert served.status_code == 200, served.text
        await apply_crd(http)
        pod = leaky_pod(
            "nometrics",
            namespace,
            image,
            "mapcache",
            labels={"app": "nometrics"},
            memory_limit="128Mi",
            # The front ran this at 40 (10 MiB/s, the kill ~13 s in); on the loaded real
            # node a reading a second and a capture at 80 % want a few more seconds.
            rate=20,
        )
        created = await http.post(f"/api/v1/namespaces/{namespace}/pods", json=pod)
        assert created.status_code == 201, created.text
        investigation = {
            "apiVersion": "oomforensics.io/v1alpha1",
            "kind": "MemoryInvestigation",
            "metadata": {"name": "nometrics", "namespace": namespace},
            "spec": {
                "selector": {"matchLabels": {"app": "nometrics"}},
                "sampling": {"interval": "1s"},
                "triggers": {"cooldown": "5s"},
            },
        }
        created = await http.post(mi, json=investigation)
        assert created.status_code == 201, created.text
        async with running_operator([namespace]) as operator:

            async def killed() -> dict[str, Any] | None:
                body: dict[str, Any] = (await http.get(f"{mi}/nometrics")).json()
                return body if (body.get("status") or {}).get("oomKills") else None

            await poll(killed, 300, "the OOM kill", operator)

            # Between the kill and the restart the real kubelet may still call the container
            # running while nothing listens on its port: the reading from /metrics fails and
            # Capturing is False for that moment. The restarted container is read again.
            async def capturing_again() -> dict[str, Any] | None:
                body = await killed()
                return (
                    body if body and condition(body, "Capturing").get("status") == "True" else None
                )

            body = await poll(capturing_again, 120, "Capturing True after the restart", operator)

    status = body["status"]
    kill = status["oomKills"][0]
    assert kill["exitCode"] == 137, kill
    pre = kill["preOomSnapshot"]
    assert pre, kill
    threshold = reason_threshold("-".join(pre.rstrip("/").rsplit("-", 2)[-2:]))
    assert threshold is not None and threshold >= 80, pre
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Capturing"]["status"] == "True", conditions["Capturing"]
    archive = Archive.from_url(url, credentials=s3.credentials, options=s3.options)
    keys = await archive.list_snapshots(namespace, "nometrics", "nometrics", "app", 0)
    assert pre in {k.path() for k in keys}
    manifest = await archive.read_manifest(next(k for k in keys if k.path() == pre))
    assert manifest.working_set_bytes is not None
    assert manifest.working_set_bytes >= 0.8 * LIMIT  # the resident set it triggered on
    # The operator asked for PodMetrics, lists only (never per pod), and the real authorizer
    # refused every one; nothing else it asked was refused.
    requests = kube.audit_events(operator_user, since=started)
    metrics = [e for e in requests if e.get("objectRef", {}).get("apiGroup") == METRICS]
    assert metrics, f"no PodMetrics request by {operator_user} in the audit log"
    assert all(e["verb"] == "list" and not e["objectRef"].get("name") for e in metrics), [
        (e["verb"], e["requestURI"]) for e in metrics
    ]
    assert {e["responseStatus"]["code"] for e in metrics} == {403}
    others = [e for e in requests if e not in metrics and e["responseStatus"]["code"] == 403]
    assert not others, [(e["verb"], e["requestURI"]) for e in others]
