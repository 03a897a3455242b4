"""The test cluster's fixtures (`apiserver`, `front`, `kubelet`) for the deployment tests:
the examples are applied to it, and the image's operator and the RBAC scenario run against it."""

from tests.support.cluster import (  # noqa: F401  (registers the fixtures)
    apiserver_fixture,
    front_fixture,
    kubelet_fixture,
)
