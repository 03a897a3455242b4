"""Investigations starting together begin their passes a few per second; one alone at once."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from oomforensics.k8s.api import KubeApi
from oomforensics.k8s.services import OperatorServices
from oomforensics.k8s.settings import OperatorSettings


@pytest.fixture
def services(tmp_path: Path) -> OperatorServices:
    http = httpx.AsyncClient(transport=httpx.MockTransport(lambda _: httpx.Response(404)))
    return OperatorServices(KubeApi(http), OperatorSettings(spool_dir=tmp_path))


def test_a_lone_investigation_starts_at_once(services: OperatorServices) -> None:
    assert services.first_pass_delay(now=1000.0) == 0.0
    # Long after the last start, the next one does not wait either.
    assert services.first_pass_delay(now=2000.0) == 0.0


def test_many_starting_together_are_spread_at_the_configured_rate(
    services: OperatorServices,
) -> None:
    delays = [services.first_pass_delay(now=1000.0) for _ in range(100)]
    step = 1 / services.first_passes_per_second
    assert delays == pytest.approx([i * step for i in range(100)])
    # One arriving halfway through the queue waits only for those still ahead of it.
    assert services.first_pass_delay(now=1010.0) == pytest.approx(100 * step - 10.0)
