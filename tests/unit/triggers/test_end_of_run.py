"""The one record of how a container run ended (`oom.json`, `exit.json`): one shape, one
reader, whoever wrote it."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from oomforensics.triggers.attribution import EndFacts, Ending, Reading, ReadingSource, attribute
from oomforensics.triggers.end_of_run import EndOfRun, InvalidEndOfRun
from oomforensics.triggers.model import ContainerRun

RUN = ContainerRun("shop", "db-0", "6f1c2a9e-0d7b-4a51-9c1e-3b8e2f0a7d44", "db", 2)
KILL = EndOfRun(
    run=RUN,
    ending=Ending.OOM_KILLED,
    time=datetime(2026, 11, 26, 3, 12, 9, 123456, tzinfo=UTC),
    exit_code=137,
    evidence="the kubelet reported OOMKilled",
    pre_oom_snapshot="shop/db/db-0/6f1c2a9e-0d7b-4a51-9c1e-3b8e2f0a7d44/db/run-2/x/",
    percent_of_limit=93.1,
    limit_bytes=512 * 2**20,
    last_working_set_bytes=480 * 2**20,
    summary={"classification": "unclosed-response-body"},
)


def test_a_record_reads_back_equal_and_names_its_run():
    doc = json.loads(KILL.to_bytes())
    assert doc["podUid"] == RUN.pod_uid and doc["run"] == 2 and doc["ending"] == "OOMKilled"
    assert doc["time"] == "2026-11-26T03:12:09.123Z"
    assert EndOfRun.from_bytes(KILL.to_bytes()) == KILL
    assert KILL.file_name == "oom.json"
    exited = EndOfRun(RUN, Ending.EXITED, KILL.time)
    assert exited.file_name == "exit.json" and not exited.oom_killed
    assert EndOfRun.from_bytes(exited.to_bytes()) == exited


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"schemaVersion": 3}, "schemaVersion"),
        ({"attribution": {"ending": "OOMKilled", "exitCode": None}}, "attribution"),
        ({"ending": "Vanished"}, "Vanished"),
        ({"podUid": None}, "podUid"),
        ({"run": -1}, "restartCount"),
        ({"time": "yesterday"}, "RFC 3339"),
        ({"exitCode": "137"}, "exitCode"),
        ({"percentOfLimit": "93%"}, "percentOfLimit"),
    ],
)
def test_a_damaged_record_is_refused_with_the_field_named(change, message):
    doc = {**json.loads(KILL.to_bytes()), **change}
    with pytest.raises(InvalidEndOfRun, match=message):
        EndOfRun.from_json(doc)
    with pytest.raises(InvalidEndOfRun, match="not JSON"):
        EndOfRun.from_bytes(b"{")


def test_a_record_keeps_its_attribution_and_a_version_1_record_still_reads() -> None:
    moment = KILL.time.timestamp()
    reading = Reading(480 * 2**20, moment - 2, ReadingSource.SAMPLER)
    told = attribute(EndFacts("OOMKilled", 137, None, moment, None, 512 * 2**20, reading))
    killed = EndOfRun(RUN, Ending.OOM_KILLED, KILL.time, 137, attribution=told)
    doc = json.loads(killed.to_bytes())
    assert doc["schemaVersion"] == 2
    assert doc["attribution"]["cause"] == "ContainerLimit"
    assert doc["attribution"]["lastReading"]["secondsBeforeEnd"] == 2.0
    assert EndOfRun.from_bytes(killed.to_bytes()) == killed
    outside = EndOfRun(RUN, Ending.KILLED, KILL.time, 137)
    assert outside.file_name == "exit.json" and not outside.oom_killed
    old = {**json.loads(KILL.to_bytes()), "schemaVersion": 1}
    assert EndOfRun.from_json(old) == KILL and KILL.attribution is None
