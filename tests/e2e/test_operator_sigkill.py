"""SIGKILL the operator at random moments, a few times (benchmarks/bench_sigkill.py does 50),
while three pods leak towards their memory limit on the real cluster, are OOM-killed by the
kernel and restarted by the kubelet: nothing announced is lost, nothing is captured twice,
the status converges, and the chart's RBAC refused nothing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from oomforensics.archive.store import Archive
from tests.e2e.operator_harness import KubeOperator
from tests.e2e.sigkill import check, run_scenario
from tests.e2e.test_operator_classic_leak import ARTIFACTS
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
    try:
        outcome = await run_scenario(kube_operator, image, archive, tmp_path, TRIALS, seed=TRIALS)
    except AssertionError:
        keep_evidence(tmp_path, s3, kube_operator.namespace)
        raise
    assert outcome.announced, "no snapshot was announced: the scenario captured nothing"
    assert sum(outcome.restarts.values()) >= 1, "no OOM kill happened during the trials"
    print(
        f"{TRIALS} kills at {[round(p, 1) for p in outcome.kill_points]} s; "
        f"{len(outcome.archived)} snapshots ({len(outcome.announced)} announced), "
        f"{len(outcome.incomplete)} incomplete left by kills, OOM kills {outcome.restarts}, "
        f"converged {outcome.converge_seconds:.1f} s after the last start"
    )
    try:
        await check(outcome, archive)
    except AssertionError:
        keep_evidence(tmp_path, s3, kube_operator.namespace)
        raise


def keep_evidence(workdir: Path, s3: MotoServer, namespace: str) -> None:
    """What a failure needs explained, kept past pytest's last three temp folders and moto's
    end: the operators' log, their spool, every request moto recorded (was a key ever put,
    or deleted?) and moto's log."""
    kept = ARTIFACTS / namespace  # sigkill-...
    kept.mkdir(parents=True, exist_ok=True)
    for source in (workdir / "operator.log", s3.recording, s3.log):
        if source.is_file():
            shutil.copy(source, kept / source.name)
    if (workdir / "spool").is_dir():
        shutil.copytree(workdir / "spool", kept / "spool", dirs_exist_ok=True)
    print(f"evidence kept in {kept}")
