"""`oomforensics watch` as a user runs it: the installed command against a live Go service,
which then dies of something other than an OOM kill; watch must notice within seconds, say it
was not an OOM kill, and list what it stored."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from oomforensics.archive.store import Archive
from tests.support.leaky import LeakyService
from tests.support.snapshots import wait_for_progress
from tests.support.waiting import eventually

pytestmark = pytest.mark.gotool

SCRIPT = Path(sys.executable).parent / "oomforensics"


async def test_watch_stores_snapshots_and_tells_a_plain_kill_from_an_oom_kill(tmp_path):
    store = (tmp_path / "archive").as_uri()
    log = tmp_path / "watch.log"
    with LeakyService("mapcache", "-rate", "20") as svc:
        wait_for_progress(svc, steps=3, gcs=1)
        with log.open("w") as err:
            watch = subprocess.Popen(
                [
                    str(SCRIPT),
                    "watch",
                    svc.base_url,
                    "--limit",
                    "1Gi",
                    "--store",
                    store,
                    "--pid",
                    str(svc.pid),
                    "--sample-interval",
                    "1",
                    "--interval",
                    "2",
                    "--spool",
                    str(tmp_path / "spool"),
                ],
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )
            # Wait for the baseline and a periodic snapshot, then kill the service (not OOM).
            eventually(lambda: log.read_text().count("captured") >= 2, 60, "two captures")
            os.kill(svc.pid, signal.SIGKILL)
            out, _ = watch.communicate(timeout=30)
    assert watch.returncode == 0, log.read_text()
    assert "captured baseline" in log.read_text()
    assert "no OOM kill was counted" in out or "exit status is unknown" in out
    assert "snapshots (" in out and "baseline" in out
    assert "last snapshot before the kill" not in out  # it was not an OOM kill

    archive = Archive.from_url(store)
    keys = await archive.list_snapshots("local", "watch")
    assert len(keys) >= 2 and keys[0].reason == "baseline"
    for key in keys:
        await archive.verify(key)
