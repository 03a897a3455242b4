"""The HTML report of real evidence, opened in a real browser.

Real kernel OOM kills of the real leaking Go service (the classic: TLS connections pinned by
unclosed 403 response bodies) twice in a row, so one pod has two container runs, plus a second
pod with a cache leak; every run watched by the same engine the operator uses, into a file://
archive laid out as the operator lays it out. `oomforensics report` of the whole archive is
then opened in headless Chromium: it must render without a console error or a request, with a
marker per snapshot, an OOM kill per run, and the flame graph's frames, and look right.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from oomforensics.archive.spool import Spool
from oomforensics.archive.store import Archive
from oomforensics.capture.client import CaptureSettings, PprofClient
from oomforensics.cli.report import WrittenReport, write_report
from oomforensics.cli.watch import watch_once
from oomforensics.local.cgroup import CgroupError, MemoryCgroup
from oomforensics.local.launch import KillAtLimit, StandInExit, spawn
from oomforensics.local.memory import CgroupMemory, MemorySource, ProcMemory
from oomforensics.local.probes import ChildExit
from oomforensics.local.watcher import ExitProbe
from oomforensics.triggers.model import ContainerRun, TriggerSettings
from tests.support.browser import Browser, require_chromium
from tests.support.leaky import FIXTURE_BIN

pytestmark = pytest.mark.gotool

MiB = 2**20
LIMIT = 128 * MiB
ARTIFACTS = Path(os.environ.get("OOMF_E2E_ARTIFACTS") or "/tmp/oomf-report")
SETTINGS = TriggerSettings(
    interval=4,  # periodic snapshots every few seconds: many markers on the timeline
    thresholds=(80, 90, 95),
    horizon=10,
    sample_interval=0.5,
    min_sample_interval=0.25,
    cooldown=2,
)
# (pod, leak mode, fixture arguments, container run)
RUNS = [
    ("leaky-tls403", "tls403", ("-rate", "60"), 0),
    ("leaky-tls403", "tls403", ("-rate", "60"), 1),
    ("leaky-mapcache", "mapcache", ("-rate", "40", "-chunk", str(256 * 1024)), 0),
]


@dataclass(frozen=True)
class RealArchive:
    root: Path
    snapshot_dirs: int
    oom_kills: int


@pytest.fixture(scope="session")
def chromium() -> Path:
    return require_chromium()  # fails (does not skip) with a pointer to make setup


async def oom_kill(archive: Archive, tmp: Path, pod: str, mode: str, args, run: int) -> None:
    command = [str(FIXTURE_BIN), "-mode", mode, *args]
    try:
        cgroup: MemoryCgroup | None = MemoryCgroup.create_child(
            f"oomforensics-report-{os.getpid()}-{pod}-{run}", LIMIT
        )
    except CgroupError:
        cgroup = None  # the stand-in kills at the limit instead of the kernel
    container_run = ContainerRun("local", pod, f"local-{pod}-{run}", "main", run)
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
                "report-test",
                container_run,
                archive,
                Spool(tmp / f"spool-{pod}-{run}", 64 * MiB),
                client,
                probe,
                SETTINGS,
            )
    finally:
        if cgroup is not None:
            cgroup.remove()
    assert result.exit is not None and result.exit.oom_killed, result.exit


async def oom_kills(root: Path, tmp: Path) -> None:
    archive = Archive.from_url(root.as_uri())
    for pod, mode, args, run in RUNS:
        await oom_kill(archive, tmp, pod, mode, args, run)


@pytest.fixture(scope="session")
def real_archive(chromium, tmp_path_factory) -> RealArchive:
    tmp = tmp_path_factory.mktemp("report-archive")
    root = tmp / "archive"
    asyncio.run(oom_kills(root, tmp))
    dirs = [p.parent for p in root.rglob("heap.pb.gz")]
    kills = len(list(root.rglob("oom.json")))
    return RealArchive(root, len(dirs), kills)


@pytest.fixture(scope="session")
def written(real_archive: RealArchive, tmp_path_factory) -> WrittenReport:
    out = tmp_path_factory.mktemp("report") / "report.html"
    return write_report([real_archive.root], out)


async def test_the_report_of_real_oom_kills_renders_in_chromium(real_archive, written):
    report = written.report
    assert written.runs == len(RUNS) and written.snapshots == real_archive.snapshot_dirs
    assert real_archive.oom_kills == len(RUNS)
    # Small for what it holds: the flame graph prunes frames below 0.5 % of the change.
    assert written.size < 1_500_000, f"{written.size} bytes"
    flames = {run.anchor: len(run.flame.frames) for run in report.runs if run.flame}
    assert len(flames) == len(RUNS)

    async with Browser() as browser, browser.page(width=1400, height=1000) as page:
        await page.open(written.path)
        assert await page.evaluate("document.querySelectorAll('[data-snapshot]').length") == (
            real_archive.snapshot_dirs
        )
        assert await page.evaluate("document.querySelectorAll('[data-oom-kill]').length") == len(
            RUNS
        )
        for run in report.runs:
            anchor = run.anchor
            markers = await page.evaluate(
                f"document.querySelectorAll('#{anchor} svg.timeline [data-snapshot]').length"
            )
            frames = await page.evaluate(
                f"document.querySelectorAll('#{anchor} .flame [data-frame]').length"
            )
            assert (markers, frames) == (len(run.timeline.points), flames[anchor]), anchor
            # Rendered, not just present: the chart and the flame graph take room on screen.
            box = await page.evaluate(
                f"(() => {{ const s = document.querySelector('#{anchor} svg.timeline')"
                ".getBoundingClientRect(); const f = document.querySelector("
                f"'#{anchor} .flame [data-frame]').getBoundingClientRect(); "
                "return [s.width, s.height, f.width, f.height]; })()"
            )
            assert box[0] > 800 and box[1] > 250 and box[2] > 800 and box[3] > 10, (anchor, box)
        shot = await page.screenshot(ARTIFACTS / "report.png")
        shutil.copyfile(written.path, ARTIFACTS / "report.html")
        widest = max(flames, key=flames.__getitem__)  # the flame graph with the most frames
        await page.element_screenshot(f"#{widest} svg.timeline", ARTIFACTS / "report-timeline.png")
        await page.element_screenshot(f"#{widest} .flame", ARTIFACTS / "report-flame.png", scale=1)

        # The run selector shows one run; a click zooms the flame graph into a frame.
        hidden = await page.evaluate(
            "(() => { const s = document.getElementById('run-select'); s.value = 'run-2'; "
            "s.dispatchEvent(new Event('change')); return Array.from("
            "document.querySelectorAll('section.run')).map(x => x.hidden); })()"
        )
        assert hidden == [True, False, True]
        zoomed = await page.evaluate(
            "(() => { const f = document.querySelector('#run-2 .flame [data-depth=\"1\"]'); "
            "f.click(); return f.style.width; })()"
        )
        assert float(zoomed.rstrip("%")) == 100
        assert page.problems.all() == []
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000

    html = written.path.read_text()
    tls = [r for r in report.runs if r.identity.pod == "leaky-tls403"]
    assert [r.identity.run for r in tls] == [0, 1]
    for run in tls:
        assert run.comparison is not None and "main.fetchReport" in run.comparison.verdict
        assert run.timeline.end is not None and run.timeline.end.kind == "oom-kill"
        assert any(p.pre_oom for p in run.timeline.points)
    assert "unclosed-response-body" in html and "main.cacheResponse" in html
