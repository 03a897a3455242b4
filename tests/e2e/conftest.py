"""The test cluster's fixtures for the end-to-end tests: `kube` (the real one-node cluster of
hack/cluster, one per session), `s3` (moto's S3 server, one per test module) and, for the tests
not moved onto the real cluster yet, `apiserver`, `front` and `kubelet`."""

from collections.abc import Iterator

import pytest

from tests.support.cluster import (  # noqa: F401  (registers the fixtures)
    apiserver_fixture,
    front_fixture,
    kubelet_fixture,
)
from tests.support.kube import kube_fixture  # noqa: F401  (registers the fixture)
from tests.support.moto import MotoServer


@pytest.fixture(scope="module")
def s3() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server
