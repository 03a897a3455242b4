"""What `fetch` and `list` make of a command line, before any cluster or store is asked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from oomforensics.cli.errors import UsageError
from oomforensics.cli.fetch import DEFAULT_OUT, request_of
from oomforensics.cli.kube import InvestigationRef, parse_options, parse_ref
from oomforensics.cli.main import build_parser
from oomforensics.cli.selection import Filters, Scope, parse_archive_path

SCRIPT = Path(sys.executable).parent / "oomforensics"
PLUGIN = Path(sys.executable).parent / "kubectl-oomforensics"


def request(*argv: str):
    return request_of(build_parser().parse_args(["fetch", *argv]))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("default/checkout-oom", InvestigationRef("default", "checkout-oom")),
        ("team-a/api.v2", InvestigationRef("team-a", "api.v2")),
        ("checkout-oom", InvestigationRef("prod", "checkout-oom")),  # the context's namespace
    ],
)
def test_ns_name_is_namespace_slash_name(text, expected):
    assert parse_ref(text, "prod") == expected
    assert str(expected) == f"{expected.namespace}/{expected.name}"


@pytest.mark.parametrize(
    "text",
    ["default/", "/checkout", "default/Checkout", "a/b/c", "default/under_score", "-x/y", ""],
)
def test_a_malformed_ns_name_is_one_clear_error(text):
    with pytest.raises(UsageError, match="expected NAMESPACE/NAME"):
        parse_ref(text, "default")


def test_a_bare_name_needs_a_namespace_from_somewhere():
    with pytest.raises(UsageError, match="expected NAMESPACE/NAME"):
        parse_ref("checkout-oom")


def test_the_cluster_form_with_filters():
    r = request("default/checkout-oom", "--pod", "checkout", "--oom", "0", "--last", "2")
    assert r.scope is None and r.target == "default/checkout-oom" and r.archive is None
    assert r.filters == Filters(pod="checkout", oom=0, last=2)
    assert r.out == DEFAULT_OUT


def test_the_archive_form_needs_no_cluster():
    path = "default/inv/pod-1/6f1c2a9e/app/run-3"
    r = request("--archive", "s3://b/p", "--path", path, "--out", "d")
    assert r.scope == Scope("default", "inv", "pod-1", "6f1c2a9e", "app", 3)
    assert str(r.scope) == path
    # A pod name alone: every incarnation of it.
    assert request("--archive", "s3://b/p", "--path", "default/inv/pod-1").scope == Scope(
        "default", "inv", "pod-1"
    )
    assert r.archive == "s3://b/p" and r.out == Path("d")
    # NS/NAME with --archive is the same as --path NS/NAME: the cluster is not asked.
    assert request("default/inv", "--archive", "s3://b/p").scope == Scope("default", "inv")


def test_store_options_are_key_value_pairs():
    assert parse_options(["endpoint=http://127.0.0.1:9000", "region = eu-west-1"]) == {
        "endpoint": "http://127.0.0.1:9000",
        "region": "eu-west-1",
    }
    with pytest.raises(UsageError, match="KEY=VALUE"):
        parse_options(["endpoint"])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ((), "name the investigation"),
        (("--path", "default/inv"), "give --archive URL too"),
        (("--archive", "s3://b/p"), "--archive needs --path"),
        (("default/inv", "--archive", "s3://b", "--path", "default/inv"), "not both"),
        (("--archive", "s3://b", "--path", "default"), "NAMESPACE/INVESTIGATION"),
        (("--archive", "s3://b", "--path", "d/i/p/u/c/run-x"), "run-<integer>"),
        (("--archive", "s3://b", "--path", "d/i/p/u/c/run-0/x"), "NAMESPACE/INVESTIGATION"),
        (("--archive", "s3://b", "--path", "d/../p"), "not allowed"),
        (("default/Bad_Name",), "expected NAMESPACE/NAME"),
    ],
)
def test_contradictions_are_usage_errors(argv, message):
    with pytest.raises(UsageError, match=message):
        request(*argv)


@pytest.mark.parametrize(
    "argv",
    [
        ("default/inv", "--run", "1", "--oom", "0"),  # one run or one kill, not both
        ("default/inv", "--run", "-1"),
        ("default/inv", "--last", "0"),
        ("default/inv", "--oom", "first"),
    ],
)
def test_argparse_refuses(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["fetch", *argv])
    assert exit_info.value.code == 2


def test_the_last_kill_is_minus_one():
    assert request("default/inv", "--oom", "-1").filters.oom == -1


def test_archive_paths():
    assert parse_archive_path("/default/inv/") == Scope("default", "inv")
    assert str(parse_archive_path("ns/inv/p/c/run-0")) == "ns/inv/p/c/run-0"


def test_list_takes_a_namespace_or_all():
    args = build_parser().parse_args(["list", "-n", "team-a", "inv"])
    assert (args.namespace, args.name, args.all_namespaces) == ("team-a", "inv", False)
    assert build_parser().parse_args(["list", "-A"]).all_namespaces
    with pytest.raises(SystemExit):
        build_parser().parse_args(["list", "-A", "-n", "x"])


def test_the_kubectl_plugin_is_the_same_command():
    for script in (SCRIPT, PLUGIN):
        result = subprocess.run(
            [str(script), "fetch", "default/Bad_Name"], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 1
        assert result.stderr.startswith("oomforensics: error: 'default/Bad_Name': expected")
        assert len(result.stderr.splitlines()) == 1


def test_no_kubeconfig_is_one_clear_line(tmp_path):
    result = subprocess.run(
        [str(SCRIPT), "list"],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "KUBECONFIG": str(tmp_path / "no")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith("oomforensics: error: cannot use the kubeconfig")
