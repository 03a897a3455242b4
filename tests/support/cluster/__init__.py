"""A small Kubernetes for tests: an API front (store, discovery, proxy to the real API server
for custom resources) and a kubelet that runs pods as real processes in memory cgroups.

    from tests.support.cluster import (  # noqa: F401  (registers the fixtures)
        apiserver_fixture,
        front_fixture,
        kubelet_fixture,
    )

    async def test_x(front: ClusterFront, kubelet: Kubelet) -> None: ...

(the fixtures are named `front` and `kubelet`; importing them registers them in the module)

`apiserver_fixture` (the session fixture `apiserver` of tests/support/apiserver.py) is
re-exported so that `front` finds the real API server from any test module that imports it;
without it or its binaries, `front` runs alone (custom resource groups are then unavailable).
"""

from types import ModuleType

from tests.support.cluster.front import (
    EVENTS,
    NAMESPACES,
    POD_METRICS,
    PODS,
    ApiCall,
    ApiError,
    ClusterFront,
    ContainerUsage,
    ObjectStore,
    Selector,
    front_fixture,
    until,
)
from tests.support.cluster.kubelet import (
    PORT_ANNOTATION,
    Kubelet,
    cgroups_available,
    kubelet_fixture,
)

_harness: ModuleType | None
try:
    from tests.support import apiserver as _harness
except ImportError:  # the real API server harness is not there: front runs without it
    _harness = None
# The session fixture named `apiserver` (registered where this name is imported), if any.
apiserver_fixture = getattr(_harness, "apiserver_fixture", None)

__all__ = [
    "EVENTS",
    "NAMESPACES",
    "PODS",
    "POD_METRICS",
    "PORT_ANNOTATION",
    "ApiCall",
    "ApiError",
    "ClusterFront",
    "ContainerUsage",
    "Kubelet",
    "ObjectStore",
    "Selector",
    "apiserver_fixture",
    "cgroups_available",
    "front_fixture",
    "kubelet_fixture",
    "until",
]
