"""What a notification says, and how each sink's payload spells it (pure: no I/O).

Two events reach people: an OOM kill (the pre-OOM snapshot, how full the container was, the
verdict, the command that fetches the evidence) and a leak suspected in a container run (the
verdict and the suspect with its call path). Each has an `id` made from what it is about
alone (the investigation's uid, the pod's uid, the container, the run), so the same event
built again (after an operator restart) has the same id: the ledger and a receiver can tell
it was already sent.

Payloads:
- `webhook`: a CloudEvent (specversion 1.0) in structured mode, `application/cloudevents+json`;
- `slack`: Slack's incoming-webhook message, `text` (the notification's fallback and the
  line a phone shows) and `blocks`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

SPECVERSION = "1.0"
CLOUDEVENTS_CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"
JSON_CONTENT_TYPE = "application/json; charset=utf-8"
# Slack's limits on a block: a header's text 150 characters, a section's text 3000, a field's
# 2000; longer text makes Slack refuse the whole message (invalid_blocks).
SLACK_HEADER_MAX = 150
SLACK_TEXT_MAX = 3000
SLACK_FIELD_MAX = 2000
SLACK_SUMMARY_MAX = 300  # `text`: the notification's one line
SUSPECT_PATH_MAX = 8  # frames of the suspect's call path a message shows


class NotificationKind(StrEnum):
    """What happened; the values are the names spec.notify.sinks[].events takes."""

    OOM_KILLED = "OOMKilled"
    LEAK_SUSPECTED = "LeakSuspected"

    @property
    def cloudevent_type(self) -> str:
        return _CLOUDEVENT_TYPES[self]


_CLOUDEVENT_TYPES = {
    NotificationKind.OOM_KILLED: "io.oomforensics.oomkill",
    NotificationKind.LEAK_SUSPECTED: "io.oomforensics.leaksuspected",
}


class SinkType(StrEnum):
    """How a sink wants its messages: spec.notify.sinks[].type."""

    WEBHOOK = "webhook"  # a CloudEvent, structured mode
    SLACK = "slack"  # Slack's incoming webhook


@dataclass(frozen=True, slots=True)
class InvestigationRef:
    """The MemoryInvestigation an event comes from (the CloudEvent's source)."""

    namespace: str
    name: str
    uid: str
    archive: str | None = None  # status.archive: where the evidence is

    @property
    def source(self) -> str:
        """A URI reference naming the investigation, as the API server's path spells it."""
        return (
            f"/apis/oomforensics.io/v1alpha1/namespaces/{self.namespace}"
            f"/memoryinvestigations/{self.name}"
        )

    @property
    def target(self) -> str:
        """NS/NAME, as the CLI takes it."""
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class RunRef:
    """One container run: a pod incarnation's container between two restarts."""

    pod: str
    pod_uid: str
    container: str
    run: int  # the container's restartCount while it ran

    @property
    def subject(self) -> str:
        return f"pods/{self.pod}/containers/{self.container}/runs/{self.run}"


@dataclass(frozen=True, slots=True)
class OomKillFacts:
    run: RunRef
    time: datetime  # when the container ended (the kubelet's finishedAt)
    exit_code: int
    pre_oom_snapshot: str | None  # the last snapshot of the run, relative to the archive
    percent_of_limit: float | None  # its working set against the limit
    verdict: str | None = None  # the run's judgement up to the kill
    suspect: str | None = None
    classification: str | None = None
    heap_growth: str | None = None
    # How the operator knows it was the container's own limit (triggers/attribution.py).
    cause: str | None = None
    confidence: str | None = None
    evidence: str | None = None


@dataclass(frozen=True, slots=True)
class LeakFacts:
    run: RunRef
    time: datetime  # the latest snapshot of the series judged
    verdict: str
    classification: str
    suspect: str | None = None
    suspect_path: tuple[str, ...] = ()  # leaf first, as the status keeps it
    heap_growth: str | None = None
    confidence: str | None = None
    baseline: str | None = None
    latest: str | None = None


@dataclass(frozen=True, slots=True)
class Notification:
    """One event for people, whatever the sink."""

    kind: NotificationKind
    investigation: InvestigationRef
    facts: OomKillFacts | LeakFacts

    @property
    def id(self) -> str:
        return notification_id(self.kind, self.investigation.uid, self.facts.run)

    @property
    def time(self) -> datetime:
        return self.facts.time

    @property
    def run(self) -> RunRef:
        return self.facts.run

    @property
    def title(self) -> str:
        run = self.facts.run
        where = f"{self.investigation.namespace}/{run.pod} container {run.container}"
        if isinstance(self.facts, OomKillFacts):
            return f"OOM kill: {where} (run {run.run})"
        return f"Leak suspected: {where} (run {run.run})"

    def data(self) -> dict[str, Any]:
        """The event's facts as JSON (the CloudEvent's `data`), empty fields left out."""
        inv = self.investigation
        run = self.facts.run
        doc: dict[str, Any] = {
            "investigation": {"namespace": inv.namespace, "name": inv.name, "uid": inv.uid},
            "pod": run.pod,
            "podUID": run.pod_uid,
            "container": run.container,
            "run": run.run,
        }
        if inv.archive:
            doc["archive"] = inv.archive
        facts = self.facts
        if isinstance(facts, OomKillFacts):
            doc.update(
                exitCode=facts.exit_code,
                preOomSnapshot=facts.pre_oom_snapshot,
                percentOfLimit=(
                    round(facts.percent_of_limit, 1) if facts.percent_of_limit is not None else None
                ),
                verdict=facts.verdict,
                suspect=facts.suspect,
                classification=facts.classification,
                heapGrowth=facts.heap_growth,
                cause=facts.cause,
                confidence=facts.confidence,
                evidence=facts.evidence,
                fetch=fetch_command(inv, oom=-1),
                fetchRun=fetch_command(inv, run=run),
            )
        else:
            doc.update(
                verdict=facts.verdict,
                classification=facts.classification,
                suspect=facts.suspect,
                suspectPath=list(facts.suspect_path[:SUSPECT_PATH_MAX]) or None,
                confidence=facts.confidence,
                heapGrowth=facts.heap_growth,
                baseline=facts.baseline,
                latest=facts.latest,
                fetch=fetch_command(inv, run=run),
            )
        return {k: v for k, v in doc.items() if v is not None}


def notification_id(kind: NotificationKind, investigation_uid: str, run: RunRef) -> str:
    """Stable per event: one OOM kill per container run, one suspected leak per run."""
    what = "/".join((kind.value, investigation_uid, run.pod_uid, run.container, str(run.run)))
    digest = hashlib.sha256(what.encode()).hexdigest()[:24]
    return f"{kind.cloudevent_type.rsplit('.', 1)[-1]}-{digest}"


def fetch_command(
    inv: InvestigationRef, *, oom: int | None = None, run: RunRef | None = None
) -> str:
    """The CLI command that downloads the evidence (`--oom -1`: the last kill's run)."""
    command = f"oomforensics fetch {inv.target}"
    if oom is not None:
        return f"{command} --oom {oom}"
    if run is not None:
        return f"{command} --pod {run.pod} --container {run.container} --run {run.run}"
    return command


@dataclass(frozen=True, slots=True)
class Payload:
    """What goes over the wire to one sink."""

    content_type: str
    body: bytes


def payload(sink: SinkType, notification: Notification) -> Payload:
    if sink is SinkType.SLACK:
        return Payload(JSON_CONTENT_TYPE, _dumps(slack_message(notification)))
    return Payload(CLOUDEVENTS_CONTENT_TYPE, _dumps(cloudevent(notification)))


def cloudevent(notification: Notification) -> dict[str, Any]:
    """The event in CloudEvents' JSON format (structured content mode)."""
    return {
        "specversion": SPECVERSION,
        "type": notification.kind.cloudevent_type,
        "source": notification.investigation.source,
        "id": notification.id,
        "time": _rfc3339(notification.time),
        "subject": notification.run.subject,
        "datacontenttype": "application/json",
        "data": notification.data(),
    }


def slack_message(notification: Notification) -> dict[str, Any]:
    """Slack's incoming-webhook message: `text` for the notification line, `blocks` for the
    message itself (header, the verdict, the facts as fields, the fetch command)."""
    facts = notification.facts
    inv = notification.investigation
    run = facts.run
    fields = [
        ("Investigation", inv.target),
        ("Pod", f"{run.pod} (uid {run.pod_uid[:8]})"),
        ("Container", f"{run.container}, run {run.run}"),
    ]
    if isinstance(facts, OomKillFacts):
        percent = (
            f"{facts.percent_of_limit:.1f}% of the limit"
            if facts.percent_of_limit is not None
            else "no reading"
        )
        fields += [
            ("Exit code", str(facts.exit_code)),
            ("Last snapshot before the kill", _code(facts.pre_oom_snapshot) or "none taken"),
            ("Working set then", percent),
        ]
        if facts.suspect:
            fields.append(("Suspect", _code(facts.suspect)))
        if facts.cause:
            sure = f", confidence {facts.confidence}" if facts.confidence else ""
            fields.append(("Cause", f"{facts.cause}{sure}"))
        verdict = facts.verdict or "No verdict: the run has fewer than two snapshots."
        command = fetch_command(inv, oom=-1)
        summary = f"{notification.title}: {percent} at the last snapshot. {_first(verdict)}"
    else:
        if facts.suspect:
            path = " ← ".join(facts.suspect_path[:SUSPECT_PATH_MAX]) or facts.suspect
            fields.append(("Suspect", _code(path)))
        if facts.heap_growth:
            fields.append(("Heap growth", facts.heap_growth))
        if facts.confidence:
            fields.append(("Confidence", facts.confidence))
        verdict = facts.verdict
        command = fetch_command(inv, run=run)
        summary = f"{notification.title}: {_first(verdict)}"
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": _cut(notification.title, SLACK_HEADER_MAX)},
        },
        {
            "type": "section",
            # Plain text: Go names such as net/http.(*Client).Get would turn mrkdwn bold.
            "text": {"type": "plain_text", "text": _cut(verdict, SLACK_TEXT_MAX)},
        },
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": _cut(f"*{name}*\n{_escape(value)}", SLACK_FIELD_MAX)}
                for name, value in fields
            ],
        },
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": _cut(
                        f"Evidence: `{_escape(command)}`"
                        + (f" from {_escape(inv.archive)}" if inv.archive else ""),
                        SLACK_TEXT_MAX,
                    ),
                }
            ],
        },
    ]
    return {"text": _cut(summary, SLACK_TEXT_MAX), "blocks": blocks}


def _first(text: str) -> str:
    """The verdict's first sentence: the line a phone shows (the message has the rest)."""
    sentence = text.split(". ", 1)[0].rstrip(".")
    return _cut(sentence + ".", SLACK_SUMMARY_MAX)


def _code(text: str | None) -> str:
    return f"`{text}`" if text else ""


def _escape(text: str) -> str:
    """Slack's mrkdwn: &, < and > are control characters (links, mentions)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _dumps(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
