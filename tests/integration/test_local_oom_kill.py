"""A real kernel OOM kill: the leaking Go service runs in a memory cgroup with a limit, the
watcher samples it like the kubelet, and the kernel SIGKILLs it at the limit. The run must
end with a pre-OOM snapshot, taken at or above the first threshold, durable in the archive."""

import os

import pytest

from oomforensics.archive.spool import Spool
from oomforensics.archive.store import Archive
from oomforensics.capture.client import CaptureSettings, PprofClient
from oomforensics.cli.watch import watch_once
from oomforensics.local.cgroup import CgroupError, MemoryCgroup
from oomforensics.local.launch import KillAtLimit, StandInExit, spawn
from oomforensics.local.memory import CgroupMemory, MemorySource, ProcMemory
from oomforensics.local.probes import ChildExit
from oomforensics.local.session import evidence
from oomforensics.local.watcher import ExitProbe
from oomforensics.triggers.end_of_run import EndOfRun
from oomforensics.triggers.model import ContainerRun, TriggerSettings
from tests.support.leaky import FIXTURE_BIN

pytestmark = pytest.mark.gotool

MiB = 2**20
LIMIT = 128 * MiB


def make_cgroup() -> MemoryCgroup | None:
    try:
        return MemoryCgroup.create_child(f"oomforensics-test-{os.getpid()}", LIMIT)
    except CgroupError:
        return None  # no cgroup here: the fallback stands in for the kernel (asserted below)


async def test_oom_kill_leaves_a_pre_oom_snapshot_above_the_first_threshold(tmp_path):
    archive = Archive.from_url(tmp_path.joinpath("archive").as_uri())
    cgroup = make_cgroup()
    command = [str(FIXTURE_BIN), "-mode", "mapcache", "-rate", "40", "-chunk", str(256 * 1024)]
    settings = TriggerSettings(
        interval=60,
        thresholds=(80, 90, 95),
        horizon=10,
        sample_interval=1.0,
        min_sample_interval=0.25,
        cooldown=5,
    )
    run = ContainerRun("local", "leaky", "local-test", "main", 0)
    try:
        async with (
            spawn(command, cgroup) as (process, base),
            PprofClient(CaptureSettings(read_timeout=5)) as client,
        ):
            memory: MemorySource
            probe: ExitProbe
            if cgroup is not None:
                memory, probe = CgroupMemory(cgroup), ChildExit(process, cgroup)
            else:
                memory = KillAtLimit(ProcMemory(process.pid), process, LIMIT)
                probe = StandInExit(process)
            result = await watch_once(
                base + "/debug/pprof",
                memory,
                LIMIT,
                "oom-test",
                run,
                archive,
                Spool(tmp_path / "spool", 64 * MiB),
                client,
                probe,
                settings,
            )
    finally:
        if cgroup is not None:
            cgroup.remove()

    assert result.exit is not None and result.exit.oom_killed, result.exit
    assert result.exit.exit_code == 137
    if cgroup is not None:
        assert "oom_kill" in result.exit.evidence  # the kernel's own counter, not our guess

    pre = result.pre_oom
    assert pre is not None and pre.percent_of_limit is not None
    assert pre.percent_of_limit >= settings.thresholds[0]
    assert result.captures[0].key.reason == "baseline"

    stored = await archive.list_snapshots("local", "oom-test", "leaky", "main", 0)
    assert pre.key in stored
    manifest, files = await archive.read_snapshot(pre.key)  # verifies every sha256
    assert "heap.pb.gz" in files and manifest.limit_bytes == LIMIT
    record = EndOfRun.from_bytes(await archive.read_run_file("oom-test", run, "oom.json"))
    assert record.oom_killed and record.pre_oom_snapshot == pre.key.path()

    found = await evidence(archive, result)
    assert found is not None and found.comparison.leak_suspected
    assert found.comparison.analysis.suspects[0].function == "main.cacheResponse"
