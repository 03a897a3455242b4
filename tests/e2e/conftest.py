"""The test cluster's fixtures for the end-to-end tests: `apiserver`, `front`, `kubelet`."""

from tests.support.cluster import (  # noqa: F401  (registers the fixtures)
    apiserver_fixture,
    front_fixture,
    kubelet_fixture,
)
