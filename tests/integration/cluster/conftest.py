"""The test cluster's fixtures, registered once so every module shares one of each: `kube`
(session: the real one-node cluster of hack/cluster), and, for the tests not moved onto it yet,
`apiserver` (session: etcd + apiextensions-apiserver), `front` and `kubelet`."""

from tests.support.cluster import (  # noqa: F401  (registers the fixtures)
    apiserver_fixture,
    front_fixture,
    kubelet_fixture,
)
from tests.support.kube import kube_fixture  # noqa: F401  (registers the fixture)
