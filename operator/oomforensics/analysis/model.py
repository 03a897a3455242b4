"""The Finding and Analysis types, the kinds of finding, and which finding leads: what
analyse() (findings.py) hands to the verdict, the judgement and the status."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from oomforensics.analysis.facts import Facts
from oomforensics.analysis.series import SeriesEvidence
from oomforensics.analysis.suspects import GrowthPath, Suspect


class FindingKind(StrEnum):
    """What a finding says; the value is the word the status, the CLI and the report show."""

    HEAP_GROWTH = "heap-growth"
    GOROUTINE_LEAK = "goroutine-leak"
    NON_HEAP_GROWTH = "non-heap-growth"
    UNCLOSED_RESPONSE_BODY = "unclosed-response-body"
    TRANSPORT_PER_REQUEST = "transport-per-request"
    SERVER_CONNECTIONS = "server-connections"
    NO_GROWTH = "no-growth"

    @property
    def http(self) -> bool:
        """An HTTP connection leak (connection_findings.py): a signature naming its bug and
        its fix, read from the connections' goroutines, not from bytes."""
        return self in HTTP_KINDS

    @property
    def leak(self) -> bool:
        return self in LEAK_KINDS


HTTP_KINDS = frozenset(
    {
        FindingKind.UNCLOSED_RESPONSE_BODY,
        FindingKind.TRANSPORT_PER_REQUEST,
        FindingKind.SERVER_CONNECTIONS,
    }
)
LEAK_KINDS = frozenset(FindingKind) - {FindingKind.NO_GROWTH}


@dataclass(frozen=True, slots=True)
class Finding:
    kind: FindingKind
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A kind given as its word ("heap-growth") is made the enum; an unknown word is a
        # ValueError naming it.
        object.__setattr__(self, "kind", FindingKind(self.kind))

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "message": self.message, "evidence": self.evidence}


@dataclass(frozen=True, slots=True)
class Analysis:
    facts: Facts
    suspects: tuple[Suspect, ...]
    growth_paths: tuple[GrowthPath, ...]
    findings: tuple[Finding, ...]
    series: SeriesEvidence | None = None

    @property
    def leak_suspected(self) -> bool:
        return any(f.kind.leak for f in self.findings)


def dominant_findings(findings: Sequence[Finding]) -> list[Finding]:
    """The findings in the order the status leads with them: an HTTP connection leak first,
    then by the bytes each finding's evidence counts, largest first (ties keep their order).

    An HTTP finding counts connections, not bytes (most of what a connection holds is
    goroutine stacks and buffers outside its evidence), and names the bug and its one fix, so
    it leads whatever the bytes beside it; otherwise 1 MB of heap growth must not outrank
    90 MB of native growth.
    """

    def weight(index: int) -> tuple[int, int, int]:
        finding = findings[index]
        amount = finding.evidence.get("bytes")
        size = amount if isinstance(amount, int) and not isinstance(amount, bool) else 0
        return (0 if finding.kind.http else 1, -size, index)

    return [findings[i] for i in sorted(range(len(findings)), key=weight)]
