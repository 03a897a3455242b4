"""What a notification says: the CloudEvent a webhook receives and the Slack message, built
from the facts alone, with ids that stay the same when the event is built again."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

from oomforensics.notify.messages import (
    CLOUDEVENTS_CONTENT_TYPE,
    SLACK_FIELD_MAX,
    SLACK_HEADER_MAX,
    InvestigationRef,
    LeakFacts,
    Notification,
    NotificationKind,
    OomKillFacts,
    RunRef,
    SinkType,
    cloudevent,
    payload,
    slack_message,
)

INV = InvestigationRef("shop", "checkout-oom", "mi-uid-1", "s3://evidence/oomf")
RUN = RunRef("checkout-7d9f", "pod-uid-1234567890", "app", 2)
KILLED = datetime(2026, 12, 2, 5, 40, 7, tzinfo=UTC)
PRE = "shop/checkout-oom/checkout-7d9f/pod-uid-1234567890/app/run-2/20261202T054001.120Z-limit-95/"


def kill(**changes) -> Notification:
    facts = OomKillFacts(
        run=RUN,
        time=KILLED,
        exit_code=137,
        pre_oom_snapshot=PRE,
        percent_of_limit=96.44,
        verdict="Response bodies of HTTP 403 answers are never closed: +61.2 MiB.",
        suspect="main.fetchQuote",
        classification="unclosed-response-body",
        heap_growth="+61.2 MiB",
    )
    return Notification(NotificationKind.OOM_KILLED, INV, replace(facts, **changes))


def leak() -> Notification:
    facts = LeakFacts(
        run=RUN,
        time=KILLED,
        verdict="Leak: unclosed response bodies <403> & their TLS buffers.",
        classification="unclosed-response-body",
        suspect="main.fetchQuote",
        suspect_path=("bytes.makeSlice", "bytes.(*Buffer).Grow", "main.fetchQuote"),
        heap_growth="+61.2 MiB",
        confidence="high",
        baseline="b/",
        latest=PRE,
    )
    return Notification(NotificationKind.LEAK_SUSPECTED, INV, facts)


def test_an_oom_kill_is_a_cloudevent_with_the_evidence_and_the_fetch_command():
    event = cloudevent(kill())
    assert event["specversion"] == "1.0"
    assert event["type"] == "io.oomforensics.oomkill"
    assert event["source"] == (
        "/apis/oomforensics.io/v1alpha1/namespaces/shop/memoryinvestigations/checkout-oom"
    )
    assert event["subject"] == "pods/checkout-7d9f/containers/app/runs/2"
    assert event["time"] == "2026-12-02T05:40:07Z"
    assert event["datacontenttype"] == "application/json"
    data = event["data"]
    assert data["preOomSnapshot"] == PRE
    assert data["percentOfLimit"] == 96.4
    assert data["verdict"].startswith("Response bodies")
    assert data["exitCode"] == 137
    assert data["fetch"] == "oomforensics fetch shop/checkout-oom --oom -1"
    assert data["fetchRun"] == (
        "oomforensics fetch shop/checkout-oom --pod checkout-7d9f --container app --run 2"
    )
    assert data["archive"] == "s3://evidence/oomf"
    assert data["investigation"] == {"namespace": "shop", "name": "checkout-oom", "uid": "mi-uid-1"}


def test_the_id_is_the_same_when_the_event_is_built_again_and_differs_per_run_and_kind():
    assert kill().id == kill(verdict="another wording, later").id
    other_run = Notification(
        NotificationKind.OOM_KILLED,
        INV,
        OomKillFacts(RunRef(RUN.pod, RUN.pod_uid, "app", 3), KILLED, 137, None, None),
    )
    assert other_run.id != kill().id
    assert leak().id != kill().id
    recreated = Notification(
        NotificationKind.OOM_KILLED,
        InvestigationRef("shop", "checkout-oom", "mi-uid-2"),
        kill().facts,
    )
    assert recreated.id != kill().id  # a new investigation of the same name
    assert kill().id.startswith("oomkill-") and leak().id.startswith("leaksuspected-")


def test_a_kill_without_a_snapshot_leaves_the_fields_out_instead_of_null():
    data = cloudevent(kill(pre_oom_snapshot=None, percent_of_limit=None, verdict=None))["data"]
    assert "preOomSnapshot" not in data and "percentOfLimit" not in data
    assert "verdict" not in data
    text = json.dumps(
        slack_message(kill(pre_oom_snapshot=None, percent_of_limit=None, verdict=None))
    )
    assert "none taken" in text and "fewer than two snapshots" in text


def test_a_suspected_leak_carries_the_verdict_and_the_suspect_with_its_path():
    event = cloudevent(leak())
    assert event["type"] == "io.oomforensics.leaksuspected"
    data = event["data"]
    assert data["suspect"] == "main.fetchQuote"
    assert data["suspectPath"][0] == "bytes.makeSlice"
    assert data["confidence"] == "high"
    assert data["fetch"].endswith("--pod checkout-7d9f --container app --run 2")


def test_slack_gets_text_and_blocks_the_verdict_as_plain_text():
    message = slack_message(leak())
    assert message["text"] == (
        "Leak suspected: shop/checkout-7d9f container app (run 2): "
        "Leak: unclosed response bodies <403> & their TLS buffers."
    )
    kinds = [b["type"] for b in message["blocks"]]
    assert kinds == ["header", "section", "section", "context"]
    verdict = message["blocks"][1]["text"]
    assert verdict == {"type": "plain_text", "text": leak().facts.verdict}  # no mrkdwn: (*T)
    fields = "\n".join(f["text"] for f in message["blocks"][2]["fields"])
    assert "`bytes.makeSlice ← bytes.(*Buffer).Grow ← main.fetchQuote`" in fields


def test_slack_limits_are_kept_for_long_verdicts_and_names():
    long = kill(verdict="x" * 10_000, suspect="f" * 5000)
    message = slack_message(long)
    assert len(message["blocks"][0]["text"]["text"]) <= SLACK_HEADER_MAX
    assert len(message["blocks"][1]["text"]["text"]) <= 3000
    assert all(len(f["text"]) <= SLACK_FIELD_MAX for f in message["blocks"][2]["fields"])
    assert len(message["text"]) <= 3000


def test_the_oom_kill_slack_message_says_how_full_and_how_to_fetch():
    message = slack_message(kill())
    text = json.dumps(message, ensure_ascii=False)
    assert "96.4% of the limit" in text
    assert "`oomforensics fetch shop/checkout-oom --oom -1`" in text
    assert PRE in text


def test_payloads_carry_their_content_types():
    webhook = payload(SinkType.WEBHOOK, kill())
    assert webhook.content_type == CLOUDEVENTS_CONTENT_TYPE
    assert json.loads(webhook.body)["id"] == kill().id
    slack = payload(SinkType.SLACK, kill())
    assert slack.content_type.startswith("application/json")
    assert set(json.loads(slack.body)) == {"text", "blocks"}


def test_the_slack_line_is_the_verdicts_first_sentence_and_mrkdwn_is_escaped():
    long = kill(verdict="Likely leak in main.f. The live heap changed by +44MB. Confidence: high.")
    message = slack_message(long)
    assert message["text"].endswith(
        "96.4% of the limit at the last snapshot. Likely leak in main.f."
    )
    odd = slack_message(kill(suspect="main.(*T)<&>"))
    fields = "\n".join(f["text"] for f in odd["blocks"][2]["fields"])
    assert "`main.(*T)&lt;&amp;&gt;`" in fields
