"""The test cluster's fixtures, registered once so every module shares one API server:
`apiserver` (session: etcd + apiextensions-apiserver), `front` and `kubelet`."""

from tests.support.cluster import (  # noqa: F401  (registers the fixtures)
    apiserver_fixture,
    front_fixture,
    kubelet_fixture,
)
