"""The real one-node Kubernetes of `hack/cluster` (etcd, kube-apiserver, controller-manager,
scheduler, metrics-server, containerd and the kubelet), given to tests by a session fixture:

    from tests.support.kube import kube_fixture  # noqa: F401  (registers the fixture `kube`)

    def test_x(kube: KubeCluster) -> None: ...
"""

from tests.support.kube.cluster import (
    KUBE_HINT,
    KubeCluster,
    kube_binaries_missing,
    kube_fixture,
)

__all__ = ["KUBE_HINT", "KubeCluster", "kube_binaries_missing", "kube_fixture"]
