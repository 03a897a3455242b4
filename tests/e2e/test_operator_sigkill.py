"""SIGKILL the operator at random moments, a few times (benchmarks/bench_sigkill.py does 50):
nothing announced is lost, nothing is captured twice, the status converges."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from oomforensics.archive.store import Archive
from tests.e2e.operator_harness import operator_environment, require_cluster
from tests.e2e.sigkill import check, run_scenario
from tests.support.cluster import ClusterFront, Kubelet
from tests.support.leaky import FIXTURE_BIN
from tests.support.moto import MotoServer

TRIALS = int(os.environ.get("OOMF_SIGKILL_TRIALS", "5"))
pytestmark = [pytest.mark.gotool, pytest.mark.timeout(240 + 15 * TRIALS)]


async def test_sigkill_at_random_points_loses_and_duplicates_nothing(
    front: ClusterFront,
    kubelet: Kubelet,
    s3: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    require_cluster(front)
    if not FIXTURE_BIN.is_file():
        pytest.skip(f"{FIXTURE_BIN} is not built (hack/build-go-fixtures.sh)")
    url = operator_environment(monkeypatch, front, s3, "e2e-sigkill", tmp_path / "spool")
    archive = Archive.from_url(url, credentials=s3.credentials, options=s3.options)
    outcome = await run_scenario(front, archive, tmp_path, TRIALS, seed=TRIALS)
    assert outcome.announced, "no snapshot was announced: the scenario captured nothing"
    assert sum(outcome.restarts.values()) >= 1, "no OOM kill happened during the trials"
    print(
        f"{TRIALS} kills at {[round(p, 1) for p in outcome.kill_points]} s; "
        f"{len(outcome.archived)} snapshots ({len(outcome.announced)} announced), "
        f"{len(outcome.incomplete)} incomplete left by kills, OOM kills {outcome.restarts}, "
        f"converged {outcome.converge_seconds:.1f} s after the last start"
    )
    await check(outcome, archive)
