"""How a container run ended: one record, one shape, written next to the run's snapshots.

The operator writes `oom.json` when the kubelet reports a container OOM-killed; local mode
writes `oom.json` when the kernel killed the process and `exit.json` when it ended otherwise.
Both write an `EndOfRun`, and everything that reads one (`fetch --oom`, `list`, the report)
reads it with `EndOfRun.from_bytes`. Pure: no I/O.

    {"schemaVersion": 1, "namespace": "shop", "pod": "db-0", "podUid": "6f1c...",
     "container": "db", "run": 0, "ending": "OOMKilled", "time": "2026-11-26T03:12:09.000Z",
     "exitCode": 137, "evidence": "...", "preOomSnapshot": "shop/db/db-0/6f1c.../db/run-0/...",
     "percentOfLimit": 93.1, "limitBytes": 536870912, "lastWorkingSetBytes": 529530880,
     "attribution": {"ending": "OOMKilled", "cause": "ContainerLimit", "confidence": "high",
                     "reason": "OOMKilled", "exitCode": 137, "evidence": "...",
                     "lastReading": {"workingSetBytes": 529530880, "secondsBeforeEnd": 3.2,
                                     "limitBytes": 536870912, "percentOfLimit": "98.6%",
                                     "source": "sampler"}},
     "summary": {...}}

`ending` is what the attribution decided (triggers/attribution.py): OOMKilled, Killed,
Evicted, Terminated or Exited; the file is `oom.json` only for OOMKilled. Schema version 2
added the attribution and the endings besides OOMKilled and Exited; version 1 records read
as before, without an attribution.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from oomforensics.errors import OomForensicsError
from oomforensics.triggers.attribution import Attribution, Ending
from oomforensics.triggers.model import ContainerRun

OOM_RECORD = "oom.json"
EXIT_RECORD = "exit.json"
RUN_RECORDS = (OOM_RECORD, EXIT_RECORD)
RECORD_VERSION = 2

__all__ = [
    "EXIT_RECORD",
    "OOM_RECORD",
    "RECORD_VERSION",
    "RUN_RECORDS",
    "EndOfRun",
    "Ending",
    "InvalidEndOfRun",
]


class InvalidEndOfRun(OomForensicsError, ValueError):
    """A run record that cannot be read (damaged, or from a newer oomforensics)."""


@dataclass(frozen=True, slots=True)
class EndOfRun:
    """One container run's end: when, how we know, and its last snapshot before."""

    run: ContainerRun
    ending: Ending
    time: datetime  # when it ended (the kubelet's finishedAt), or when that was observed
    exit_code: int | None = None  # None when the process was not ours to wait for
    evidence: str = ""  # what the conclusion rests on, in words
    pre_oom_snapshot: str | None = None  # the last snapshot's path relative to the archive
    percent_of_limit: float | None = None  # of that last snapshot
    limit_bytes: int | None = None
    last_working_set_bytes: int | None = None
    summary: Mapping[str, Any] | None = None  # the operator's baseline -> pre-OOM comparison
    attribution: Attribution | None = None  # how the operator told this end apart

    def __post_init__(self) -> None:
        if self.time.tzinfo is None:
            raise ValueError(f"time {self.time.isoformat()} must be timezone-aware")
        # What the JSON form holds: UTC to the millisecond, so a record reads back equal.
        utc = self.time.astimezone(UTC)
        object.__setattr__(self, "time", utc.replace(microsecond=utc.microsecond // 1000 * 1000))

    @property
    def oom_killed(self) -> bool:
        return self.ending is Ending.OOM_KILLED

    @property
    def file_name(self) -> str:
        """`oom.json` after an OOM kill, `exit.json` after any other end."""
        return OOM_RECORD if self.oom_killed else EXIT_RECORD

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "schemaVersion": RECORD_VERSION,
            **self.run.to_json(),
            "ending": self.ending.value,
            "time": _format_instant(self.time),
            "exitCode": self.exit_code,
            "evidence": self.evidence,
            "preOomSnapshot": self.pre_oom_snapshot,
            "percentOfLimit": self.percent_of_limit,
            "limitBytes": self.limit_bytes,
            "lastWorkingSetBytes": self.last_working_set_bytes,
        }
        # The container run's restartCount is the archive's `run-N`: spelled `run` in records.
        doc["run"] = doc.pop("restartCount")
        if self.summary:
            doc["summary"] = dict(self.summary)
        if self.attribution is not None:
            doc["attribution"] = self.attribution.to_json()
        return doc

    def to_bytes(self) -> bytes:
        return (json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, doc: object) -> EndOfRun:
        if not isinstance(doc, Mapping):
            raise InvalidEndOfRun("a run record must be a JSON object")
        version = doc.get("schemaVersion")
        if not isinstance(version, int) or isinstance(version, bool) or version > RECORD_VERSION:
            raise InvalidEndOfRun(
                f"run record schemaVersion {version!r}: this oomforensics reads up to "
                f"{RECORD_VERSION}"
            )
        try:
            run = ContainerRun.from_json({**doc, "restartCount": doc.get("run")})
            ending = Ending(str(doc.get("ending")))
        except ValueError as exc:
            raise InvalidEndOfRun(f"run record: {exc}") from None
        summary = doc.get("summary")
        told = doc.get("attribution")
        try:
            attribution = Attribution.from_json(told) if isinstance(told, Mapping) else None
        except ValueError as exc:
            raise InvalidEndOfRun(f"run record: attribution: {exc}") from None
        return cls(
            run=run,
            ending=ending,
            time=_parse_instant(doc.get("time")),
            exit_code=_optional_int(doc, "exitCode"),
            evidence=str(doc.get("evidence") or ""),
            pre_oom_snapshot=_optional_str(doc, "preOomSnapshot"),
            percent_of_limit=_optional_float(doc, "percentOfLimit"),
            limit_bytes=_optional_int(doc, "limitBytes"),
            last_working_set_bytes=_optional_int(doc, "lastWorkingSetBytes"),
            summary=summary if isinstance(summary, Mapping) else None,
            attribution=attribution,
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> EndOfRun:
        try:
            return cls.from_json(json.loads(data))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidEndOfRun(f"run record is not JSON: {exc}") from None


def _format_instant(moment: datetime) -> str:
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _parse_instant(value: object) -> datetime:
    if not isinstance(value, str):
        raise InvalidEndOfRun(f"run record: time must be an RFC 3339 string, got {value!r}")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidEndOfRun(f"run record: time {value!r} is not RFC 3339") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _optional_int(doc: Mapping[str, Any], name: str) -> int | None:
    value = doc.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidEndOfRun(f"run record: {name} must be an integer, got {value!r}")
    return value


def _optional_float(doc: Mapping[str, Any], name: str) -> float | None:
    value = doc.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidEndOfRun(f"run record: {name} must be a number, got {value!r}")
    return float(value)


def _optional_str(doc: Mapping[str, Any], name: str) -> str | None:
    value = doc.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidEndOfRun(f"run record: {name} must be a string, got {value!r}")
    return value
