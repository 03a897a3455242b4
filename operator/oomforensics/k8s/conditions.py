"""What one pass observed, and the conditions decided from it alone (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from oomforensics.k8s.api import JSON
from oomforensics.k8s.status import (
    Condition,
    ConditionStatus,
    OomKillStatus,
    summary_leak_status,
)


@dataclass(frozen=True, slots=True)
class Observation:
    """What one pass saw; conditions are decided from it alone."""

    spec_error: str | None = None
    suspended: bool = False
    storage_error: tuple[str, str] | None = None  # (reason, message)
    storage_used: bool = False
    targets: int = 0
    target_problems: tuple[str, ...] = ()
    capture_errors: tuple[str, ...] = ()
    no_limit: tuple[str, ...] = ()
    snapshots: int = 0
    summary: Mapping[str, Any] | None = None
    summary_error: str | None = None
    oom_kills: tuple[OomKillStatus, ...] = ()
    other_terminations: tuple[OomKillStatus, ...] = ()  # ends told apart from OOM kills
    # NotificationsDelivered as the notifier decides it (status, reason, message); None when
    # no sink is configured: then the condition is not there at all.
    notifications: tuple[str, str, str] | None = None


def decide_conditions(obs: Observation) -> list[Condition]:
    """Ready, Capturing, LeakSuspected, OOMObserved, StorageReady, with actionable reasons;
    NotificationsDelivered when sinks are configured (a failing sink is no reason for Ready
    False: the evidence is still taken and kept)."""
    if obs.storage_error is not None:
        storage = Condition("StorageReady", "False", *obs.storage_error)
    elif obs.storage_used:
        storage = Condition("StorageReady", "True", "StorageReachable", "the archive answers")
    else:
        storage = Condition("StorageReady", "Unknown", "NotYetUsed", "nothing stored yet")

    if obs.spec_error is not None:
        capturing = Condition("Capturing", "False", "InvalidSpec", obs.spec_error)
    elif obs.suspended:
        capturing = Condition("Capturing", "False", "Suspended", "spec.suspend is true")
    elif obs.targets == 0:
        capturing = Condition(
            "Capturing",
            "False",
            "NoMatchingPods",
            "no pod in this namespace matches spec.selector: check the labels",
        )
    elif obs.target_problems:
        capturing = Condition(
            "Capturing", "False", "EndpointNotConfigured", "; ".join(obs.target_problems)
        )
    elif obs.capture_errors:
        capturing = Condition("Capturing", "False", "CaptureFailed", "; ".join(obs.capture_errors))
    elif obs.no_limit:
        capturing = Condition(
            "Capturing",
            "True",
            "NoMemoryLimit",
            f"{', '.join(obs.no_limit)} without a memory limit: limit thresholds and "
            "prediction are off, the growth trigger is on; set resources.limits.memory",
        )
    else:
        capturing = Condition(
            "Capturing", "True", "Sampling", f"watching {obs.targets} container(s)"
        )

    if obs.summary is not None:
        leak_condition = _leak_condition(obs.summary)
    elif obs.summary_error is not None:
        leak_condition = Condition(
            "LeakSuspected", "Unknown", "UnreadableProfiles", obs.summary_error
        )
    else:
        leak_condition = Condition(
            "LeakSuspected",
            "Unknown",
            "NotEnoughSnapshots",
            "a summary needs two snapshots of one container run",
        )

    if obs.oom_kills:
        last = obs.oom_kills[-1]
        where = (
            f"; last snapshot before it: {last.pre_oom_snapshot}" if last.pre_oom_snapshot else ""
        )
        told = last.attribution
        if told is not None:  # whose limit, and how sure
            where = f" ({told.cause.value}, confidence {told.confidence.value}){where}"
        oom = Condition(
            "OOMObserved",
            "True",
            "OOMKilled",
            f"{len(obs.oom_kills)} OOM kill(s); last: pod {last.pod} container "
            f"{last.container} run {last.run}{where}",
        )
    else:
        oom = Condition("OOMObserved", "False", "NoOOMKills", "no OOM kill seen")

    blocker = next(
        (c for c in (capturing, storage) if c.status == "False"),
        None,
    )
    if blocker is not None:
        ready = Condition("Ready", "False", blocker.reason, blocker.message)
    else:
        ready = Condition(
            "Ready",
            "True",
            "Investigating",
            f"{obs.targets} container(s) watched, {obs.snapshots} snapshot(s) stored",
        )
    conditions = [ready, capturing, leak_condition, oom, storage]
    if obs.notifications is not None:
        status, reason, message = obs.notifications
        conditions.append(Condition("NotificationsDelivered", _status(status), reason, message))
    return conditions


def _status(value: str) -> ConditionStatus:
    return "True" if value == "True" else "False" if value == "False" else "Unknown"


def _leak_condition(summary: Mapping[str, Any]) -> Condition:
    """From the run's judgement. True: the reason names what leaks (UnclosedResponseBody,
    HeapGrowth, ...), the message gives the verdict and how sure it is. Unknown or False: the
    judgement's reason (InsufficientEvidence, WarmingUp, GrowthStopped, NoGrowth, ...) and
    what more evidence would settle it."""
    status = summary_leak_status(summary)
    classification = str(summary.get("classification") or "no-growth")
    verdict = str(summary.get("verdict") or classification)
    judgement = summary.get("judgement")
    if not isinstance(judgement, Mapping):
        leak = status == "True"
        return Condition(
            "LeakSuspected",
            status,
            _camel(classification) if leak else "NoLeakFound",
            verdict,
        )
    message = str(judgement.get("message") or "")
    if status == "True":  # the reason says what leaks; the judgement's reason, how it is known
        message = f"{verdict} ({message})" if message and message not in verdict else verdict
        return Condition("LeakSuspected", status, _camel(classification), message)
    reason = str(judgement.get("reason") or "InsufficientEvidence")
    return Condition("LeakSuspected", status, reason, message or verdict)


def _camel(slug: str) -> str:
    return "".join(part.capitalize() for part in slug.split("-")) or "LeakSuspected"


def oom_kill_from_json(doc: Mapping[str, Any]) -> OomKillStatus | None:
    """An entry of a previous status.oomKills (kept across operator restarts)."""
    return OomKillStatus.from_json(doc)


def replacing_patch(previous: Mapping[str, Any], new: Mapping[str, Any]) -> JSON:
    """A merge patch turning `previous` into `new`: keys gone from `new` are set to null."""
    patch: JSON = {}
    for key, value in new.items():
        old = previous.get(key)
        if isinstance(value, Mapping) and isinstance(old, Mapping):
            patch[key] = replacing_patch(old, value)
        else:
            patch[key] = value
    for key in previous:
        if key not in new:
            patch[key] = None
    return patch
