"""The Helm chart, rendered by Helm v4's own Go SDK (helm-python-sdk), and an RBAC evaluator
that answers, as the API server's RBAC authorizer would, whether the rendered rules allow a
request: rule by rule (apiGroups, resources or resource/subresource, verbs, resourceNames),
Roles in their namespace, ClusterRoles everywhere they are bound."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "oomforensics"
RELEASE = "oomf"
NAMESPACE = "oomforensics"
JSON = dict[str, Any]


def helm() -> Any:
    import pytest

    return pytest.importorskip("helm_python", reason="helm-python-sdk is a dev dependency")


def render(
    values: Mapping[str, Any] | None = None, *, namespace: str = NAMESPACE
) -> dict[str, list[JSON]]:
    """Template path -> the objects it renders (an install of release `oomf`)."""
    sdk = helm()
    with sdk.Chart.load(str(CHART)) as chart:
        rendered = chart.render(
            dict(values or {}), name=RELEASE, namespace=namespace, is_install=True
        )
    return {
        path: [doc for doc in yaml.safe_load_all(text) if doc]
        for path, text in rendered.items()
        if path.endswith((".yaml", ".yml"))
    }


def objects(values: Mapping[str, Any] | None = None, **kwargs: Any) -> list[JSON]:
    return [doc for docs in render(values, **kwargs).values() for doc in docs]


def of_kind(docs: Iterable[JSON], kind: str) -> list[JSON]:
    return [d for d in docs if d["kind"] == kind]


@dataclass(frozen=True, slots=True)
class Grant:
    """One rule's grant in a place: `namespace` None means every namespace."""

    namespace: str | None
    rule: JSON


@dataclass(frozen=True, slots=True)
class Request:
    """What RBAC is asked: a resource request (group, resource[/sub], verb, namespace, name)."""

    api_group: str
    resource: str
    verb: str
    namespace: str | None = None
    name: str | None = None


def grants(docs: Iterable[JSON], account: str, account_namespace: str) -> list[Grant]:
    """The rules bound to a service account, with where they apply."""
    docs = list(docs)
    roles = {
        (d["metadata"].get("namespace"), d["metadata"]["name"]): d for d in of_kind(docs, "Role")
    }
    cluster_roles = {d["metadata"]["name"]: d for d in of_kind(docs, "ClusterRole")}
    found: list[Grant] = []
    for binding in of_kind(docs, "RoleBinding") + of_kind(docs, "ClusterRoleBinding"):
        subjects = binding.get("subjects") or []
        if not any(
            s.get("kind") == "ServiceAccount"
            and s.get("name") == account
            and s.get("namespace") == account_namespace
            for s in subjects
        ):
            continue
        ref = binding["roleRef"]
        where = binding["metadata"].get("namespace") if binding["kind"] == "RoleBinding" else None
        if ref["kind"] == "Role":
            role = roles.get((where, ref["name"]))
        else:
            role = cluster_roles.get(ref["name"])
        assert role is not None, f"{binding['kind']} {binding['metadata']['name']}: no {ref}"
        found.extend(Grant(where, rule) for rule in role.get("rules") or [])
    return found


def allows(grant: Grant, request: Request) -> bool:
    rule = grant.rule
    if grant.namespace is not None and request.namespace != grant.namespace:
        return False
    if request.api_group not in rule.get("apiGroups", []):
        return False
    if request.resource not in rule.get("resources", []):
        return False
    if request.verb not in rule.get("verbs", []):
        return False
    names = rule.get("resourceNames")
    return not names or request.name in names


def allowed(found: Iterable[Grant], request: Request) -> bool:
    return any(allows(g, request) for g in found)


def triples(found: Iterable[Grant]) -> Iterator[tuple[str, str, str]]:
    """(apiGroup, resource, verb) of every grant."""
    for grant in found:
        for group in grant.rule.get("apiGroups", []):
            for resource in grant.rule.get("resources", []):
                for verb in grant.rule.get("verbs", []):
                    yield (group, resource, verb)
