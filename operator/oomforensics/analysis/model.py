"""The Finding and Analysis types: what analyse() (findings.py) hands to the verdict, the
judgement and the status."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from oomforensics.analysis.facts import Facts
from oomforensics.analysis.series import SeriesEvidence
from oomforensics.analysis.suspects import GrowthPath, Suspect

HTTP_KINDS = ("unclosed-response-body", "transport-per-request", "server-connections")
LEAK_KINDS = frozenset({"heap-growth", "goroutine-leak", "non-heap-growth", *HTTP_KINDS})


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "message": self.message, "evidence": self.evidence}


@dataclass(frozen=True, slots=True)
class Analysis:
    facts: Facts
    suspects: tuple[Suspect, ...]
    growth_paths: tuple[GrowthPath, ...]
    findings: tuple[Finding, ...]
    series: SeriesEvidence | None = None

    @property
    def leak_suspected(self) -> bool:
        return any(f.kind in LEAK_KINDS for f in self.findings)
