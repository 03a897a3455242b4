"""Which finding leads the status: an HTTP connection leak, whichever of the three, else the
finding whose evidence counts the most bytes."""

from __future__ import annotations

import pytest

from oomforensics.analysis.model import HTTP_KINDS, Finding, FindingKind, dominant_findings

HEAP = Finding(FindingKind.HEAP_GROWTH, "", {"bytes": 1_100_000})
NATIVE = Finding(FindingKind.NON_HEAP_GROWTH, "", {"bytes": 92_000_000})
GOROUTINES = Finding(FindingKind.GOROUTINE_LEAK, "", {"count": 3000})


def kinds(*findings: Finding) -> list[FindingKind]:
    return [f.kind for f in dominant_findings(findings)]


def test_without_an_http_finding_the_most_bytes_lead() -> None:
    assert kinds(HEAP, NATIVE) == [FindingKind.NON_HEAP_GROWTH, FindingKind.HEAP_GROWTH]
    # Evidence without bytes counts none: it follows, in analyse()'s order.
    assert kinds(GOROUTINES, HEAP, NATIVE) == [
        FindingKind.NON_HEAP_GROWTH,
        FindingKind.HEAP_GROWTH,
        FindingKind.GOROUTINE_LEAK,
    ]
    assert kinds(GOROUTINES) == [FindingKind.GOROUTINE_LEAK]
    assert kinds() == []


@pytest.mark.parametrize("kind", sorted(HTTP_KINDS))
def test_each_http_kind_leads_whatever_the_bytes_beside_it(kind: FindingKind) -> None:
    http = Finding(kind, "", {"connections": {"first": 4, "last": 900, "growth": 896}})
    assert kinds(HEAP, GOROUTINES, NATIVE, http) == [
        kind,
        FindingKind.NON_HEAP_GROWTH,
        FindingKind.HEAP_GROWTH,
        FindingKind.GOROUTINE_LEAK,
    ]


def test_the_three_http_kinds_are_the_connection_findings() -> None:
    assert {k for k in FindingKind if k.http} == {
        FindingKind.UNCLOSED_RESPONSE_BODY,
        FindingKind.TRANSPORT_PER_REQUEST,
        FindingKind.SERVER_CONNECTIONS,
    }
    assert {k for k in FindingKind if not k.leak} == {FindingKind.NO_GROWTH}


def test_a_kind_given_as_its_word_is_the_kind_and_an_unknown_word_is_refused() -> None:
    finding = Finding("transport-per-request", "m")  # type: ignore[arg-type]
    assert finding.kind is FindingKind.TRANSPORT_PER_REQUEST
    assert finding.kind.http
    assert type(finding.to_json()["kind"]) is str
    with pytest.raises(ValueError, match="heap-grow"):
        Finding("heap-grow", "m")  # type: ignore[arg-type]
