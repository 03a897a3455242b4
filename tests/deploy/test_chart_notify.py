"""The chart's notification default: values.notify becomes OOMF_NOTIFY, which the operator
reads as it reads spec.notify, and the operator may get the sinks' Secrets in its namespace by
name, nothing more; investigations' own notify Secrets come from investigationSecrets."""

from __future__ import annotations

import json

import pytest

from oomforensics.k8s.settings import OperatorSettings
from tests.deploy.chart import NAMESPACE, objects, of_kind

SINKS = [
    {"type": "slack", "secretRef": {"name": "oncall-slack", "key": "url"}},
    {
        "type": "webhook",
        "secretRef": {"name": "events-hook", "key": "url"},
        "events": ["OOMKilled"],
    },
]


def env_of(docs: list[dict]) -> dict[str, str]:
    (deployment,) = of_kind(docs, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value", "") for e in container["env"]}


def test_the_default_sinks_reach_the_operator_as_it_reads_them():
    env = env_of(objects({"notify": {"sinks": SINKS}}))
    assert json.loads(env["OOMF_NOTIFY"]) == {"sinks": SINKS}
    settings = OperatorSettings.from_env({**env, "OOMF_OPERATOR_NAMESPACE": NAMESPACE})
    assert settings.notify is not None
    assert [s.id for s in settings.notify.sinks] == [
        "slack:oncall-slack/url",
        "webhook:events-hook/url",
    ]
    assert "OOMF_NOTIFY" not in env_of(objects({}))


def test_the_operator_may_get_the_sinks_secrets_by_name_and_no_other():
    docs = objects(
        {
            "notify": {"sinks": SINKS},
            "storage": {"secretName": "archive"},
            "investigationSecrets": [{"namespace": "shop", "names": ["shop-notify"]}],
        }
    )
    roles = {
        r["metadata"]["namespace"]: r
        for r in of_kind(docs, "Role")
        if "secrets" in r["metadata"]["name"]
    }
    (rule,) = roles[NAMESPACE]["rules"]
    assert rule["resourceNames"] == ["archive", "events-hook", "oncall-slack"]
    assert rule["verbs"] == ["get"]
    (shop,) = roles["shop"]["rules"]
    assert shop["resourceNames"] == ["shop-notify"]


@pytest.mark.parametrize(
    "sink",
    [
        {"type": "email", "secretRef": {"name": "x", "key": "url"}},
        {"type": "slack"},
        {
            "type": "slack",
            "url": "https://hooks.example/x",
            "secretRef": {"name": "x", "key": "url"},
        },
    ],
)
def test_a_wrong_sink_fails_the_install(sink):
    helm = pytest.importorskip("helm_python")
    with pytest.raises(Exception, match="notify"):
        objects({"notify": {"sinks": [sink]}})
    assert helm
