"""SIGKILL the operator at random moments, a few times (benchmarks/bench_sigkill.py does 50),
while three pods leak towards their memory limit on the real cluster, are OOM-killed by the
kernel and restarted by the kubelet: nothing announced is lost, nothing is captured twice,
the status converges, and the chart's RBAC refused nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from oomforensics.archive.store import Archive
from tests.e2e.operator_harness import KubeOperator
from tests.e2e.sigkill import check, run_scenario
from tests.support.kube.images import fixture_image
from tests.support.moto import MotoServer

TRIALS = int(os.environ.get("OOMF_SIGKILL_TRIALS", "5"))
# The pods' first OOM kills come ~20 s in; convergence waits through the kubelet's backoff.
pytestmark = [pytest.mark.gotool, pytest.mark.timeout(420 + 15 * TRIALS)]


async def test_sigkill_at_random_points_loses_and_duplicates_nothing(
    kube_operator: KubeOperator, s3: MotoServer, tmp_path: Path
) -> None:
    image = fixture_image(kube_operator.kube, "leaky")
    archive = Archive.from_url(
        kube_operator.archive_url, credentials=s3.credentials, options=s3.options
    )
    outcome = await run_scenario(kube_operator, image, archive, tmp_path, TRIALS, seed=TRIALS)
    assert outcome.announced, "no snapshot was announced: the scenario captured nothing"
    assert sum(outcome.restarts.values()) >= 1, "no OOM kill happened during the trials"
    print(
        f"{TRIALS} kills at {[round(p, 1) for p in outcome.kill_points]} s; "
        f"{len(outcome.archived)} snapshots ({len(outcome.announced)} announced), "
        f"{len(outcome.incomplete)} incomplete left by kills, OOM kills {outcome.restarts}, "
        f"converged {outcome.converge_seconds:.1f} s after the last start"
    )
    await check(outcome, archive)
