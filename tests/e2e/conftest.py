"""The end-to-end tests' fixtures: `kube` (the real one-node cluster of hack/cluster, shared
by the sessions that run at once), `s3` (moto's S3 server, one per test module) and
`kube_operator` (a namespace, the chart's RBAC and the operator's environment, per test)."""

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.e2e.operator_harness import KubeOperator, kube_namespace, kube_operator_environment
from tests.support.kube import KubeCluster, kube_fixture  # noqa: F401  (registers the fixture)
from tests.support.kube.operator_access import operator_kubeconfig
from tests.support.moto import MotoServer


@pytest.fixture(scope="module")
def s3() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture
def kube_operator(
    request: pytest.FixtureRequest,
    kube: KubeCluster,
    s3: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Iterator[KubeOperator]:
    """A namespace of the test's own on the real cluster (deleted afterwards), the chart's RBAC
    applied for it, and the environment of an operator that watches it as the chart's
    ServiceAccount with S3 on moto as its archive; start it with `running_operator`."""
    prefix = request.node.module.__name__.rsplit(".", 1)[-1].removeprefix("test_operator_")
    prefix = prefix.replace("_", "-")[:20].strip("-")
    started = datetime.now(UTC)
    with kube_namespace(kube, prefix) as namespace:
        kubeconfig, user = operator_kubeconfig(
            kube, tmp_path / "operator.kubeconfig", watch_namespaces=[namespace]
        )
        url = kube_operator_environment(
            monkeypatch, kubeconfig, s3, f"e2e-{namespace}", tmp_path / "spool", namespace
        )
        yield KubeOperator(kube, namespace, kubeconfig, user, url, started)
