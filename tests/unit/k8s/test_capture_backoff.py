"""Capture failures back off, but a capture reason not tried yet still gets its attempt."""

from __future__ import annotations

from oomforensics.k8s.capturer import Backoff


def test_a_failing_run_waits_until_its_retry_time() -> None:
    failing = Backoff(attempts=1, retry_at=100.0, reasons={"baseline"})
    assert not failing.due("baseline", 99.0)
    assert failing.due("baseline", 100.0)


def test_a_threshold_not_tried_yet_is_attempted_during_the_backoff() -> None:
    failing = Backoff(attempts=3, retry_at=500.0, reasons={"baseline"})
    assert failing.due("threshold-80", 10.0)
    failing.reasons.add("threshold-80")
    assert not failing.due("threshold-80", 10.0)
