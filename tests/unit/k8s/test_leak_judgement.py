"""LeakSuspected follows the run's series judgement: True only at the documented confidence,
Unknown while the series cannot tell, False with the reason the growth is not a leak; the
judgement reads the baseline and the latest comparable snapshots of a run, bounded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from oomforensics.archive.layout import SnapshotKey
from oomforensics.k8s.conditions import Observation, decide_conditions
from oomforensics.k8s.runs import SERIES_LIMIT, RunLedger
from oomforensics.k8s.status import summary_leak_status
from oomforensics.triggers import ContainerRun

VERDICT = "Likely leak: main.(*Store).remember grew 6MB/min for 30 min, steadily."


def summary(leak: bool | None, reason: str, message: str = "") -> dict[str, object]:
    return {
        "classification": "heap-growth" if leak is not False else "no-growth",
        "leakSuspected": leak is not False,
        "verdict": VERDICT,
        "judgement": {
            **({"leakSuspected": leak} if leak is not None else {}),
            "confidence": "high" if leak else "low",
            "reason": reason,
            "message": message,
        },
    }


def leak_condition(doc: dict[str, object]) -> tuple[str, str, str]:
    conditions = decide_conditions(Observation(targets=1, summary=doc))
    (c,) = [c for c in conditions if c.type == "LeakSuspected"]
    return c.status, c.reason, c.message


def test_a_steady_leak_at_high_confidence_is_true_and_says_the_verdict():
    status, reason, message = leak_condition(summary(True, "SteadyGrowth", "high: 6 snapshots"))
    assert (status, reason) == ("True", "HeapGrowth")  # what leaks; the judgement says how
    assert message.startswith(VERDICT) and "6 snapshots" in message


def test_growth_seen_in_too_few_snapshots_is_unknown_with_what_would_settle_it():
    wait = "low confidence: 2 snapshots; 2 more periodic snapshots (20 min) would settle it"
    status, reason, message = leak_condition(summary(None, "InsufficientEvidence", wait))
    assert (status, reason, message) == ("Unknown", "InsufficientEvidence", wait)
    assert leak_condition(summary(None, "WarmingUp", "growth slowing"))[:2] == (
        "Unknown",
        "WarmingUp",
    )


def test_growth_that_stopped_is_false_with_its_reason():
    status, reason, _ = leak_condition(summary(False, "GrowthStopped", "a cache filling"))
    assert (status, reason) == ("False", "GrowthStopped")


def test_a_summary_from_before_judgements_still_decides():
    assert summary_leak_status({"leakSuspected": True}) == "True"
    assert summary_leak_status({"classification": "no-growth"}) == "False"


RUN = ContainerRun("default", "db-0", "uid-1", "app", 0)
T0 = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)


def key(minutes: int, reason: str = "periodic", run: ContainerRun = RUN) -> SnapshotKey:
    return SnapshotKey("mi", run, T0 + timedelta(minutes=minutes), reason)


def test_the_series_is_the_baseline_and_the_latest_snapshots_bounded():
    ledger = RunLedger("mi")
    keys = [key(0, "baseline"), *(key(m) for m in range(10, 110, 10))]
    for k in keys:
        ledger.add(k, ["heap.pb.gz", "goroutine.txt"])
    series = ledger.newest_series()
    assert len(series) == SERIES_LIMIT
    assert series[0] == keys[0] and series[1:] == keys[-(SERIES_LIMIT - 1) :]


def test_the_series_skips_snapshots_missing_the_baselines_files():
    ledger = RunLedger("mi")
    ledger.add(key(0, "baseline"), ["heap.pb.gz", "goroutine.txt"])
    ledger.add(key(10), ["heap.pb.gz", "goroutine.txt"])
    ledger.add(key(11, "threshold-95"), ["heap.pb.gz"])  # the container died mid-capture
    assert [k.reason for k in ledger.newest_series()] == ["baseline", "periodic"]


def test_one_snapshot_is_no_series_and_the_newest_run_is_judged():
    ledger = RunLedger("mi")
    ledger.add(key(0, "baseline"), ["heap.pb.gz"])
    assert ledger.newest_series() == []
    other = ContainerRun("default", "db-0", "uid-2", "app", 0)  # recreated under the same name
    ledger.add(key(1), ["heap.pb.gz"])
    ledger.add(key(30, "baseline", other), ["heap.pb.gz"])
    ledger.add(key(40, "periodic", other), ["heap.pb.gz"])
    assert {k.container_run for k in ledger.newest_series()} == {other}
