"""Where a person reads how a run ended: `oomforensics list` and `fetch` from the status the
kill recorder wrote (and from the archive alone), and the HTML report from the run's record.
An end told apart from an OOM kill says so, with its cause and confidence."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from oomforensics.cli.download import read_manifests
from oomforensics.cli.fetch import archive_kills, archive_others, suggestions
from oomforensics.cli.listing import render_investigation
from oomforensics.cli.selection import by_run, kills_from_status, pairs
from oomforensics.report.model import build_report, build_run
from oomforensics.report.page import end_label, render_report
from oomforensics.triggers.attribution import (
    EndFacts,
    Ending,
    Reading,
    ReadingSource,
    attribute,
)
from tests.unit.k8s.test_kills import ended, record
from tests.unit.k8s.test_step import HEAP, MiB, World
from tests.unit.report.test_model import LIMIT, OOM, evidence


@pytest.fixture
def world(tmp_path: Path) -> World:
    if not HEAP.is_file():
        pytest.skip(f"{HEAP} is not there (the shared pprof corpus)")
    return World(tmp_path)


async def test_list_and_fetch_say_a_sigkill_from_outside_is_not_an_oom_kill(
    world: World, tmp_path: Path
) -> None:
    await record(world, ended("Error", 137), 10 * MiB)
    kills = kills_from_status(world.status, "shop")
    others = kills_from_status(world.status, "shop", "otherTerminations")
    assert kills == [] and [o.ending for o in others] == [Ending.KILLED]
    keys = await world.archive_.list_snapshots("shop", "db")
    manifests = await read_manifests(world.archive_, keys)
    text = render_investigation("shop/db", world.status, "memory://", manifests, kills, others)
    assert "  OOM kills  0" in text and "other ends 1" in text
    assert "container app, run 0, Killed " in text
    assert "(Outside, confidence high), not an OOM kill" in text
    assert "without OOMKilled: a SIGKILL from outside" in text
    # From the archive alone (no cluster): the run's exit.json tells the same.
    runs = list(by_run(keys))
    assert await archive_kills(world.archive_, "db", runs) == []
    (stored,) = await archive_others(world.archive_, "db", runs)
    assert stored.attribution == others[0].attribution
    lines = suggestions(tmp_path, pairs(keys * 2, kills), others)  # a pair needs two keys
    assert any(line.startswith("  ended: Killed ") for line in lines), lines


async def test_list_shows_an_oom_kill_with_whose_limit_and_how_sure(world: World) -> None:
    await record(world, ended("OOMKilled", 137), 95 * MiB)
    kills = kills_from_status(world.status, "shop")
    keys = await world.archive_.list_snapshots("shop", "db")
    manifests = await read_manifests(world.archive_, keys)
    text = render_investigation("shop/db", world.status, "memory://", manifests, kills)
    assert "run 0, OOM-killed " in text and "(ContainerLimit, confidence high)" in text
    assert "not an OOM kill" not in text and "other ends" not in text


def test_the_report_shows_the_attribution_and_the_last_reading() -> None:
    moment = OOM.time.timestamp()
    told = attribute(
        EndFacts(
            "OOMKilled",
            137,
            None,
            moment,
            None,
            LIMIT,
            Reading(196 * MiB, moment - 4, ReadingSource.SAMPLER),
        )
    )
    records = {"oom.json": replace(OOM, attribution=told).to_bytes()}
    run = build_run(evidence(records=records), "r")
    assert end_label(run).endswith("(ContainerLimit, confidence high)")
    page = render_report(build_report([evidence(records=records)]))
    assert "last reading" in page and "98.0% of the limit), 4 s before the end" in page
    killed = attribute(EndFacts("Error", 137, None, moment, None, LIMIT, None))
    record_ = replace(OOM, ending=Ending.KILLED, attribution=killed)
    other = build_run(evidence(records={"exit.json": record_.to_bytes()}), "r")
    assert end_label(other) == "Killed, exit code 137 (Outside, confidence medium): not an OOM kill"
    assert other.timeline.end is not None and other.timeline.end.kind == "exit"
