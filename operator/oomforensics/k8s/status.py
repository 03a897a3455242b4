"""The MemoryInvestigation status, built whole from what is observed (level-based).

Status is written with a merge patch, which replaces lists whole, so every list here is built
complete by a pure function. It stays small: it lives in etcd; the archive holds the rest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from oomforensics.analysis.comparison import Comparison
from oomforensics.analysis.model import dominant_findings
from oomforensics.analysis.units import format_signed
from oomforensics.triggers.attribution import Attribution

ConditionType = Literal[
    "Ready", "Capturing", "LeakSuspected", "OOMObserved", "StorageReady", "NotificationsDelivered"
]
ConditionStatus = Literal["True", "False", "Unknown"]  # as Kubernetes spells them
CONDITION_TYPES: tuple[ConditionType, ...] = get_args(ConditionType)
MAX_TARGETS = 100
MAX_OOM_KILLS = 20
MAX_OTHER_TERMINATIONS = 20
MAX_PATH = 32


@dataclass(frozen=True, slots=True)
class Condition:
    type: ConditionType
    status: ConditionStatus
    reason: str  # CamelCase
    message: str


@dataclass(frozen=True, slots=True)
class TargetStatus:
    pod: str
    uid: str
    container: str
    restart_count: int
    limit_bytes: int | None
    working_set_bytes: int | None
    snapshots: int
    last_snapshot: str | None
    last_error: str | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "pod": self.pod,
            "uid": self.uid,
            "container": self.container,
            "restartCount": self.restart_count,
            "snapshots": self.snapshots,
        }
        if self.limit_bytes is not None:
            doc["limitBytes"] = self.limit_bytes
        if self.working_set_bytes is not None:
            doc["workingSetBytes"] = self.working_set_bytes
            if self.limit_bytes:
                doc["percentOfLimit"] = f"{100 * self.working_set_bytes / self.limit_bytes:.1f}%"
        if self.last_snapshot:
            doc["lastSnapshot"] = self.last_snapshot
        if self.last_error:
            doc["lastError"] = self.last_error[:1024]
        return doc


@dataclass(frozen=True, slots=True)
class OomKillStatus:
    """One container end in the status: an OOM kill (status.oomKills) or another end told
    apart from one (status.otherTerminations); `attribution` says which and how sure."""

    pod: str
    uid: str
    container: str
    run: int
    time: datetime
    exit_code: int
    pre_oom_snapshot: str | None
    percent_of_limit: float | None  # of the last snapshot before the end
    summary: Mapping[str, Any] | None
    attribution: Attribution | None = None  # None: recorded before kills were told apart

    @property
    def oom_killed(self) -> bool:
        """An OOM kill (a status written before attributions listed only those)."""
        return self.attribution is None or self.attribution.oom_killed

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "pod": self.pod,
            "uid": self.uid,
            "container": self.container,
            "run": self.run,
            "time": rfc3339(self.time),
            "exitCode": self.exit_code,
        }
        if self.attribution is not None:
            doc.update(self.attribution.to_json())
        if self.pre_oom_snapshot:
            doc["preOomSnapshot"] = self.pre_oom_snapshot
        if self.percent_of_limit is not None:
            doc["percentOfLimit"] = f"{self.percent_of_limit:.1f}%"
        if self.summary:
            doc["summary"] = dict(self.summary)
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> OomKillStatus | None:
        """An entry of a previous status (kept across operator restarts); None for one that
        cannot be read."""
        try:
            percent = doc.get("percentOfLimit")
            return cls(
                pod=str(doc["pod"]),
                uid=str(doc.get("uid") or ""),
                container=str(doc["container"]),
                run=int(doc["run"]),
                time=datetime.fromisoformat(str(doc["time"]).replace("Z", "+00:00")),
                exit_code=int(doc.get("exitCode") or 0),
                pre_oom_snapshot=doc.get("preOomSnapshot"),
                percent_of_limit=float(str(percent).rstrip("%")) if percent else None,
                summary=doc.get("summary"),
                attribution=Attribution.from_json(doc) if "ending" in doc else None,
            )
        except (KeyError, TypeError, ValueError):
            return None


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def conditions_json(
    wanted: Sequence[Condition],
    previous: Sequence[Mapping[str, Any]],
    generation: int,
    now: datetime,
) -> list[dict[str, Any]]:
    """Conditions in the Kubernetes shape; lastTransitionTime changes only with the status."""
    before = {c.get("type"): c for c in previous}
    out = []
    for condition in wanted:
        old = before.get(condition.type)
        changed = old is None or old.get("status") != condition.status
        out.append(
            {
                "type": condition.type,
                "status": condition.status,
                "reason": condition.reason,
                "message": condition.message[:32768],
                "lastTransitionTime": rfc3339(now)
                if changed
                else str(old.get("lastTransitionTime") if old else rfc3339(now)),
                "observedGeneration": generation,
            }
        )
    return out


def summary_json(
    comparison: Comparison, top_n: int = 5, *, by_weight: bool = False
) -> dict[str, Any]:
    """The analysis from the run's baseline to its latest snapshot, bounded for etcd.

    `classification` is the first finding; with `by_weight`, the finding that accounts for
    the most bytes (see `dominant_findings`), so 1 MB of heap growth does not outrank 90 MB
    of native growth in what the printer columns and conditions say.
    """
    analysis = comparison.analysis
    heap_growth = analysis.facts.heap_growth
    findings = dominant_findings(analysis.findings) if by_weight else analysis.findings
    kinds = [f.kind.value for f in findings]
    rss = analysis.facts
    rss_growth = (
        rss.new.rss - rss.base.rss if rss.new.rss is not None and rss.base.rss is not None else None
    )
    doc: dict[str, Any] = {
        "baseline": comparison.base.source,
        "latest": comparison.new.source,
        "heapGrowth": format_signed(heap_growth, "bytes"),
        "heapGrowthBytes": heap_growth,
        "classification": kinds[0] if kinds else "no-growth",
        "leakSuspected": comparison.leak_suspected,
        "verdict": comparison.verdict[:4096],
        "suspects": [
            {
                "function": s.function,
                "bytes": s.bytes,
                "objects": s.objects,
                "path": list(s.path[:MAX_PATH]),
                **({"mechanism": s.mechanism} if s.mechanism else {}),
                **({"errorBytes": s.error} if s.error is not None else {}),
                **({"shape": s.shape} if s.shape else {}),
            }
            for s in analysis.suspects[:top_n]
        ],
    }
    if analysis.suspects:
        doc["suspect"] = analysis.suspects[0].function
    if rss_growth is not None:
        doc["rssGrowthBytes"] = rss_growth
    if comparison.goroutines.base is not None and comparison.goroutines.new is not None:
        doc["goroutineGrowth"] = comparison.goroutines.new - comparison.goroutines.base
    if comparison.judgement is not None:
        judgement = comparison.judgement.to_json()
        judgement["message"] = str(judgement["message"])[:1024]
        doc["judgement"] = {k: v for k, v in judgement.items() if v is not None}
    return doc


def summary_leak_status(summary: Mapping[str, Any]) -> ConditionStatus:
    """LeakSuspected as the series' judgement decides it: True only at the confidence
    analysis/judgement.py documents, Unknown while the series cannot tell yet. A summary
    written before judgements existed (no `judgement` key) says True or False."""
    judgement = summary.get("judgement")
    if isinstance(judgement, Mapping):
        leak = judgement.get("leakSuspected")
        return "Unknown" if leak is None else "True" if leak else "False"
    return "True" if summary.get("leakSuspected") else "False"


def oom_summary_json(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a run's summary kept with each OOM kill."""
    keys = ("baseline", "heapGrowth", "heapGrowthBytes", "suspect", "classification", "verdict")
    return {k: summary[k] for k in keys if k in summary}


def build_status(
    *,
    generation: int,
    previous: Mapping[str, Any],
    conditions: Sequence[Condition],
    targets: Sequence[TargetStatus],
    snapshot_count: int,
    last_snapshot: str | None,
    last_snapshot_time: datetime | None,
    last_snapshot_reason: str | None,
    summary: Mapping[str, Any] | None,
    oom_kills: Sequence[OomKillStatus],
    now: datetime,
    archive: str | None = None,
    other_terminations: Sequence[OomKillStatus] = (),
) -> dict[str, Any]:
    """The whole status, ready for a merge patch of `.status`.

    `oom_kills` are the ends the kernel's OOM killer made; `other_terminations` the ends told
    apart from them (a SIGKILL from outside, SIGTERM, an eviction, an OOMKilled reason the
    exit code contradicts): status.otherTerminations, absent while there is none.

    `archive` is the URL the snapshots go to (never credentials): with the operator's default
    storage it is the only place a user (`oomforensics fetch NS/NAME`) can learn it from.
    """
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "targetCount": len(targets),
        "oomKillCount": len(oom_kills),
        "conditions": conditions_json(
            conditions, previous.get("conditions") or [], generation, now
        ),
        "targets": [t.to_json() for t in targets[:MAX_TARGETS]],
        "snapshots": {"count": snapshot_count},
        "oomKills": [k.to_json() for k in oom_kills[-MAX_OOM_KILLS:]],
    }
    if last_snapshot:
        status["snapshots"]["last"] = last_snapshot
    if last_snapshot_time is not None:
        status["snapshots"]["lastTime"] = rfc3339(last_snapshot_time)
    if last_snapshot_reason:
        status["snapshots"]["lastReason"] = last_snapshot_reason
    if summary is not None:
        status["summary"] = dict(summary)
    if other_terminations:
        status["otherTerminations"] = [
            t.to_json() for t in other_terminations[-MAX_OTHER_TERMINATIONS:]
        ]
    if archive:
        status["archive"] = archive
    return status
