"""spec.notify as the operator reads it: sinks by type with their URL in a Secret, and every
mistake rejected with a message naming the field (the OOMF_NOTIFY default the same way)."""

from __future__ import annotations

import json

import pytest

from oomforensics.k8s.settings import InvalidSettings, OperatorSettings
from oomforensics.k8s.spec import InvalidSpec, parse_spec
from oomforensics.notify.messages import NotificationKind, SinkType

SELECTOR = {"selector": {"matchLabels": {"app": "db"}}}


def spec_with(notify: object):
    return parse_spec({**SELECTOR, "notify": notify})


def test_sinks_with_secret_refs_and_events():
    spec = spec_with(
        {
            "sinks": [
                {"type": "webhook", "secretRef": {"name": "notify", "key": "webhook-url"}},
                {
                    "type": "slack",
                    "secretRef": {"name": "notify", "key": "slack"},
                    "events": ["OOMKilled"],
                },
            ]
        }
    )
    assert spec.notify is not None
    webhook, slack = spec.notify.sinks
    assert webhook.type is SinkType.WEBHOOK and webhook.events == tuple(NotificationKind)
    assert slack.events == (NotificationKind.OOM_KILLED,)
    assert slack.id == "slack:notify/slack"
    assert spec.notify.secret_namespace is None  # the investigation's own namespace


def test_no_notify_means_the_operator_default_and_no_sinks_means_off():
    assert parse_spec(SELECTOR).notify is None
    off = spec_with({"sinks": []})
    assert off.notify is not None and off.notify.sinks == ()


@pytest.mark.parametrize(
    ("notify", "field", "words"),
    [
        ({"sinks": [{"type": "email", "secretRef": {"name": "n", "key": "k"}}]},
         "spec.notify.sinks[0].type", "choose from webhook, slack"),
        ({"sinks": [{"type": "slack"}]}, "spec.notify.sinks[0].secretRef", "required"),
        ({"sinks": [{"type": "slack", "secretRef": {"key": "k"}}]},
         "spec.notify.sinks[0].secretRef.name", "required"),
        ({"sinks": [{"type": "slack", "secretRef": {"name": "n"}}]},
         "spec.notify.sinks[0].secretRef.key", "required"),
        ({"sinks": [{"type": "slack", "url": "https://hooks.example/x",
                     "secretRef": {"name": "n", "key": "k"}}]},
         "spec.notify.sinks[0].url", "credential"),
        ({"sinks": [{"type": "slack", "secretRef": {"name": "n", "key": "k"},
                     "events": ["Evicted"]}]},
         "spec.notify.sinks[0].events", "OOMKilled, LeakSuspected"),
        ({"sinks": [{"type": "slack", "secretRef": {"name": "n", "key": "k"}, "events": []}]},
         "spec.notify.sinks[0].events", "empty"),
        ({"sinks": [{"type": "slack", "secretRef": {"name": "n", "key": "k"}}] * 2},
         "spec.notify.sinks[1]", "the same sink twice"),
        ({"sinks": "slack"}, "spec.notify.sinks", "a list"),
        ({"sink": []}, "spec.notify.sink", "unknown field"),
        ("slack", "spec.notify", "expected an object"),
        ({"sinks": [{"type": "slack", "secretRef": {"name": "Bad_Name", "key": "k"}}]},
         "spec.notify.sinks[0].secretRef.name", "a Secret's name"),
    ],
)  # fmt: skip
def test_a_wrong_notify_is_rejected_naming_the_field(notify, field, words):
    with pytest.raises(InvalidSpec) as caught:
        spec_with(notify)
    assert caught.value.field == field
    assert words in str(caught.value)


def test_the_operator_default_reads_its_secrets_in_its_own_namespace():
    env = {
        "OOMF_OPERATOR_NAMESPACE": "oomforensics",
        "OOMF_NOTIFY": json.dumps(
            {"sinks": [{"type": "slack", "secretRef": {"name": "oncall", "key": "url"}}]}
        ),
    }
    notify = OperatorSettings.from_env(env).notify
    assert notify is not None and notify.secret_namespace == "oomforensics"
    assert notify.sinks[0].id == "slack:oncall/url"
    assert OperatorSettings.from_env({}).notify is None


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("{sinks", "OOMF_NOTIFY: not JSON"),
        ('{"sinks": [{"type": "sms"}]}', "OOMF_NOTIFY.sinks[0].type"),
    ],
)
def test_a_wrong_default_stops_the_operator_naming_the_variable(raw, words):
    with pytest.raises(InvalidSettings, match=words.replace("[", r"\[").replace("]", r"\]")):
        OperatorSettings.from_env({"OOMF_NOTIFY": raw})
