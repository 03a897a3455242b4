"""The test cluster's fixtures for the end-to-end tests: `apiserver`, `front`, `kubelet`, and
`s3` (moto's S3 server, one per test module)."""

from collections.abc import Iterator

import pytest

from tests.support.cluster import (  # noqa: F401  (registers the fixtures)
    apiserver_fixture,
    front_fixture,
    kubelet_fixture,
)
from tests.support.moto import MotoServer


@pytest.fixture(scope="module")
def s3() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server
