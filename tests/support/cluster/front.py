"""The cluster front: one Kubernetes API URL for kopf, kubectl and the kubernetes client.

It answers discovery (`/version`, `/api`, `/api/v1`, `/apis`, `/apis/<group>[/<version>]`),
serves core v1 pods, events, namespaces and secrets and `metrics.k8s.io/v1beta1` PodMetrics from its
own in-memory store, and proxies `apiextensions.k8s.io` and every custom resource group to a
real API server (tests/support/apiserver.py) when one is given: requests and watch streams
pass through as they are (status, body, query string), chunk by chunk.

The store behaves like the API server where our code can tell: a cluster-wide
resourceVersion on every object, list and watch event; label selectors (=, ==, !=, in, notin,
exists, !key) and field selectors; watches from a resourceVersion (410 Expired when it is too
old), `sendInitialEvents` with the initial-events-end bookmark, `timeoutSeconds`; merge,
strategic-merge (treated as a merge patch: lists are replaced) and JSON patches, including
`test` ops; optimistic concurrency (409 Conflict); the status subresource; finalizers and
graceful pod deletion (when a kubelet is attached); pod spec immutability; Status objects in
the real shape. kmock 0.8's emulator has none of the first three (see DESIGN.md), hence a store.

Every request is recorded in `ClusterFront.calls` (verb, group, resource, subresource,
namespace, name, status) for RBAC checks: `front.permissions()` is the set of
(apiGroup, resource[/subresource], verb) the clients used.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import copy
import functools
import json
import re
import secrets
import shutil
import socket
import ssl
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import (
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Iterator,
    Mapping,
)
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar, cast

import aiohttp
import pytest
import yarl
from aiohttp import web

JSON = dict[str, Any]
T = TypeVar("T")

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
KUBERNETES_VERSION = {
    "major": "1",
    "minor": "36",
    "gitVersion": "v1.36.0-oomforensics-front",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2025-01-01T00:00:00Z",
    "goVersion": "go1.27",
    "compiler": "gc",
    "platform": "linux/amd64",
}
CRD_LIST_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
INITIAL_EVENTS_END = "k8s.io/initial-events-end"


def now_rfc3339(delta: float = 0.0) -> str:
    """A metav1.Time: RFC 3339 in UTC with second precision, as the API server writes it."""
    moment = datetime.now(UTC) + timedelta(seconds=delta)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# -- resources -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Resource:
    """A served resource, as discovery describes it."""

    group: str
    version: str
    plural: str
    kind: str
    singular: str
    namespaced: bool
    verbs: tuple[str, ...]
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    # subresource name -> its verbs in discovery
    subresources: tuple[tuple[str, tuple[str, ...]], ...] = ()
    generation: bool = False  # metadata.generation counts spec changes
    field_labels: frozenset[str] = frozenset({"metadata.name", "metadata.namespace"})

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """How error messages name it: `pods`, `podmetrics.metrics.k8s.io`."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def has_subresource(self, name: str) -> bool:
        return any(sub == name for sub, _ in self.subresources)

    def discovery(self) -> list[JSON]:
        entries: list[JSON] = [
            {
                "name": self.plural,
                "singularName": self.singular,
                "namespaced": self.namespaced,
                "kind": self.kind,
                "verbs": list(self.verbs),
            }
        ]
        if self.short_names:
            entries[0]["shortNames"] = list(self.short_names)
        if self.categories:
            entries[0]["categories"] = list(self.categories)
        for sub, verbs in self.subresources:
            kind = {"proxy": f"{self.kind}ProxyOptions", "log": self.kind}.get(sub, self.kind)
            entries.append(
                {
                    "name": f"{self.plural}/{sub}",
                    "singularName": "",
                    "namespaced": self.namespaced,
                    "kind": kind,
                    "verbs": list(verbs),
                }
            )
        return entries


PODS = Resource(
    "",
    "v1",
    "pods",
    "Pod",
    "pod",
    True,
    ALL_VERBS,
    ("po",),
    ("all",),
    (
        ("status", ("get", "patch", "update")),
        ("log", ("get",)),
        ("proxy", ("create", "delete", "get", "patch", "update")),
    ),
    generation=True,
    field_labels=frozenset(
        {
            "metadata.name",
            "metadata.namespace",
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        }
    ),
)
EVENTS = Resource(
    "",
    "v1",
    "events",
    "Event",
    "event",
    True,
    ALL_VERBS,
    ("ev",),
    field_labels=frozenset(
        {
            "metadata.name",
            "metadata.namespace",
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        }
    ),
)
NAMESPACES = Resource(
    "",
    "v1",
    "namespaces",
    "Namespace",
    "namespace",
    False,
    ("create", "delete", "get", "list", "patch", "update", "watch"),
    ("ns",),
    subresources=(("status", ("get", "patch", "update")), ("finalize", ("update",))),
    field_labels=frozenset({"metadata.name", "status.phase"}),
)
SECRETS = Resource("", "v1", "secrets", "Secret", "secret", True, ALL_VERBS)
POD_METRICS = Resource("metrics.k8s.io", "v1beta1", "pods", "PodMetrics", "", True, ("get", "list"))
STORED = (PODS, EVENTS, NAMESPACES, SECRETS)
CORE_RESOURCES = (PODS, EVENTS, NAMESPACES, SECRETS)
LOCAL_GROUPS: dict[str, dict[str, tuple[Resource, ...]]] = {
    "metrics.k8s.io": {"v1beta1": (POD_METRICS,)},
}


# -- errors ----------------------------------------------------------------------------------


class ApiError(Exception):
    """An API failure; `status()` is the Status object the API server would send."""

    def __init__(self, code: int, reason: str, message: str, details: JSON | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self) -> JSON:
        body: JSON = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def _details(resource: Resource, name: str) -> JSON:
    details: JSON = {"name": name, "kind": resource.plural}
    if resource.group:
        details["group"] = resource.group
    return details


def not_found(resource: Resource, name: str) -> ApiError:
    return ApiError(
        404, "NotFound", f'{resource.qualified} "{name}" not found', _details(resource, name)
    )


def resource_not_found() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def already_exists(resource: Resource, name: str) -> ApiError:
    return ApiError(
        409,
        "AlreadyExists",
        f'{resource.qualified} "{name}" already exists',
        _details(resource, name),
    )


def conflict(resource: Resource, name: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {resource.qualified} "{name}": the object has been '
        "modified; please apply your changes to the latest version and try again",
        _details(resource, name),
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def invalid(resource: Resource, name: str, message: str) -> ApiError:
    return ApiError(
        422,
        "Invalid",
        f'{resource.kind} "{name}" is invalid: {message}',
        {"name": name, "kind": resource.kind, "causes": [{"message": message}]},
    )


def method_not_allowed(method: str) -> ApiError:
    return ApiError(405, "MethodNotAllowed", f"the server does not allow this method ({method})")


# -- selectors -------------------------------------------------------------------------------

_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_SET_TERM = re.compile(r"^(\S+)\s+(in|notin)\s*\(([^()]*)\)$")


@dataclass(frozen=True, slots=True)
class LabelRequirement:
    key: str
    operator: str  # "=", "!=", "in", "notin", "exists", "!"
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.key)
        match self.operator:
            case "=" | "in":
                return value is not None and value in self.values
            case "!=" | "notin":
                return value is None or value not in self.values
            case "exists":
                return value is not None
            case _:
                return value is None


def _split_terms(text: str) -> list[str]:
    terms, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            terms.append(current.strip())
            current = ""
        else:
            current += char
    if current.strip():
        terms.append(current.strip())
    return terms


def parse_label_selector(text: str) -> tuple[LabelRequirement, ...]:
    """A labelSelector query value; 400 BadRequest when the API server would refuse it."""
    requirements: list[LabelRequirement] = []
    for term in _split_terms(text):
        requirement = _parse_label_term(term)
        if not _LABEL_KEY.match(requirement.key) or not all(
            _LABEL_VALUE.match(v) for v in requirement.values
        ):
            raise bad_request(f"unable to parse requirement: invalid label selector {term!r}")
        requirements.append(requirement)
    return tuple(requirements)


def _parse_label_term(term: str) -> LabelRequirement:
    if match := _SET_TERM.match(term):
        values = frozenset(v.strip() for v in match.group(3).split(",") if v.strip())
        return LabelRequirement(match.group(1), match.group(2), values)
    if term.startswith("!"):
        return LabelRequirement(term[1:].strip(), "!")
    for operator in ("!=", "==", "="):
        if operator in term:
            key, _, value = term.partition(operator)
            return LabelRequirement(
                key.strip(), "!=" if operator == "!=" else "=", frozenset({value.strip()})
            )
    return LabelRequirement(term, "exists")


@dataclass(frozen=True, slots=True)
class FieldRequirement:
    path: str
    value: str
    equal: bool

    def matches(self, obj: JSON) -> bool:
        return (field_value(obj, self.path) == self.value) == self.equal


def field_value(obj: JSON, path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_field_selector(text: str, resource: Resource) -> tuple[FieldRequirement, ...]:
    requirements: list[FieldRequirement] = []
    for term in _split_terms(text):
        for operator in ("!=", "==", "="):
            if operator in term:
                key, _, value = term.partition(operator)
                key = key.strip()
                if key not in resource.field_labels:
                    raise bad_request(f'field label not supported: {key} for "{resource.kind}"')
                requirements.append(FieldRequirement(key, value.strip(), operator != "!="))
                break
        else:
            raise bad_request(f"invalid selector: {text!r}; can't understand {term!r}")
    return tuple(requirements)


@dataclass(frozen=True, slots=True)
class Selector:
    """Which objects a list or watch returns."""

    namespace: str | None = None
    labels: tuple[LabelRequirement, ...] = ()
    fields: tuple[FieldRequirement, ...] = ()

    @classmethod
    def parse(
        cls,
        resource: Resource,
        namespace: str | None = None,
        labels: str | None = None,
        fields: str | None = None,
    ) -> Selector:
        return cls(
            namespace,
            parse_label_selector(labels) if labels else (),
            parse_field_selector(fields, resource) if fields else (),
        )

    def matches(self, obj: JSON) -> bool:
        meta = obj.get("metadata", {})
        if self.namespace is not None and meta.get("namespace") != self.namespace:
            return False
        labels = meta.get("labels") or {}
        return all(r.matches(labels) for r in self.labels) and all(
            r.matches(obj) for r in self.fields
        )


# -- patches ---------------------------------------------------------------------------------


class PatchError(Exception):
    pass


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc: Any, parts: list[str]) -> Any:
    for part in parts:
        if isinstance(doc, dict):
            if part not in doc:
                raise PatchError(f"path element {part!r} not found")
            doc = doc[part]
        elif isinstance(doc, list):
            try:
                doc = doc[int(part)]
            except (ValueError, IndexError):
                raise PatchError(f"invalid list index {part!r}") from None
        else:
            raise PatchError(f"cannot descend into {part!r}")
    return doc


def _add(doc: Any, parts: list[str], value: Any) -> Any:
    if not parts:
        return value
    parent, last = _walk(doc, parts[:-1]), parts[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        index = len(parent) if last == "-" else int(last)
        if not 0 <= index <= len(parent):
            raise PatchError(f"list index {last} out of range")
        parent.insert(index, value)
    else:
        raise PatchError(f"cannot add at {last!r}")
    return doc


def _remove(doc: Any, parts: list[str]) -> Any:
    if not parts:
        raise PatchError("cannot remove the whole document")
    parent, last = _walk(doc, parts[:-1]), parts[-1]
    try:
        if isinstance(parent, dict):
            return parent.pop(last)
        if isinstance(parent, list):
            return parent.pop(int(last))
    except (KeyError, ValueError, IndexError):
        pass
    raise PatchError(f"unable to remove nonexistent key: {last}")


def json_patch(doc: Any, operations: Any) -> Any:
    """RFC 6902 JSON patch; a failed `test` or a bad path raises PatchError."""
    if not isinstance(operations, list):
        raise PatchError("a JSON patch is a list of operations")
    doc = copy.deepcopy(doc)
    for op in operations:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError(f"invalid operation {op!r}")
        parts = _pointer(op["path"])
        match op["op"]:
            case "add":
                doc = _add(doc, parts, copy.deepcopy(op.get("value")))
            case "remove":
                _remove(doc, parts)
            case "replace":
                _walk(doc, parts)  # must exist
                if parts:
                    _remove(doc, parts)
                doc = _add(doc, parts, copy.deepcopy(op.get("value")))
            case "move" | "copy":
                source = _pointer(op.get("from", ""))
                value = copy.deepcopy(_walk(doc, source))
                if op["op"] == "move":
                    _remove(doc, source)
                doc = _add(doc, parts, value)
            case "test":
                try:
                    actual = _walk(doc, parts)
                except PatchError:
                    actual = None
                if actual != op.get("value"):
                    raise PatchError(
                        f"testing value {op['path']} failed: {actual!r} != {op.get('value')!r}"
                    )
            case other:
                raise PatchError(f"unknown operation {other!r}")
    return doc


# -- the store -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Change:
    rv: int
    resource: Resource
    type: str  # ADDED, MODIFIED, DELETED
    old: JSON | None
    new: JSON


@dataclass(frozen=True, slots=True)
class WatchEvent:
    type: str  # ADDED, MODIFIED, DELETED, BOOKMARK, ERROR
    object: JSON

    def as_json(self) -> JSON:
        return {"type": self.type, "object": self.object}


class Watch:
    """One watcher's events; `async for event in watch` or `await watch.next(timeout)`.

    It belongs to the event loop that created it; the store may write from any thread.
    """

    def __init__(self, store: ObjectStore, resource: Resource, selector: Selector) -> None:
        self.store, self.resource, self.selector = store, resource, selector
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[WatchEvent | None] = asyncio.Queue()
        self.closed = False

    def _put(self, event: WatchEvent | None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody listens
            self._loop.call_soon_threadsafe(self._queue.put_nowait, event)

    def _offer(self, change: Change) -> None:
        if change.resource is not self.resource or self.closed:
            return
        was = change.old is not None and self.selector.matches(change.old)
        if change.type == "DELETED":
            if was:
                self._put(WatchEvent("DELETED", copy.deepcopy(change.new)))
            return
        now = self.selector.matches(change.new)
        if now:
            self._put(WatchEvent("MODIFIED" if was else "ADDED", copy.deepcopy(change.new)))
        elif was:
            self._put(WatchEvent("DELETED", copy.deepcopy(change.new)))

    async def next(self, timeout: float | None = None) -> WatchEvent | None:
        """The next event; None on timeout or when the watch is closed (see `closed`)."""
        if self.closed and self._queue.empty():
            return None
        try:
            event = await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None
        if event is None:
            self.closed = True
        return event

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            with self.store.lock:
                self.store._watches.discard(self)
            self._put(None)

    def __aiter__(self) -> Watch:
        return self

    async def __anext__(self) -> WatchEvent:
        event = await self.next()
        if event is None:
            raise StopAsyncIteration
        return event


Mutator = Callable[[Resource, JSON], None]
F = TypeVar("F", bound=Callable[..., Any])


def _locked(method: F) -> F:
    """One writer or reader at a time: the front's thread, the kubelet's, a test's."""

    @functools.wraps(method)
    def locked(self: Any, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            return method(self, *args, **kwargs)

    return cast(F, locked)


class ObjectStore:
    """Objects by resource, namespace and name, with a cluster-wide resourceVersion.

    The public methods are synchronous, atomic (a lock) and callable from any thread.
    Everything returned is a copy.
    """

    def __init__(self, resources: Iterable[Resource] = STORED, history: int = 10_000) -> None:
        self.resources = tuple(resources)
        self.lock = threading.RLock()
        self._objects: dict[Resource, dict[tuple[str, str], JSON]] = {r: {} for r in self.resources}
        self._rv = 100
        self._history: deque[Change] = deque()
        self._history_limit = history
        self._compacted = self._rv  # watches from before this version get 410 Expired
        self._watches: set[Watch] = set()
        # Admission on create (after defaulting), e.g. the kubelet's port allocation.
        self.mutators: list[Mutator] = []
        # With a kubelet attached, deleting a bound pod only marks it; the kubelet finishes.
        self.graceful_pods = False
        for name in DEFAULT_NAMESPACES:
            self.create(NAMESPACES, {"metadata": {"name": name}})

    @property
    def resource_version(self) -> str:
        return str(self._rv)

    # -- reading --

    def _raw(self, resource: Resource, namespace: str | None, name: str) -> JSON:
        key = (namespace or "" if resource.namespaced else "", name)
        try:
            return self._objects[resource][key]
        except KeyError:
            raise not_found(resource, name) from None

    @_locked
    def get(self, resource: Resource, namespace: str | None, name: str) -> JSON:
        return copy.deepcopy(self._raw(resource, namespace, name))

    @_locked
    def find(self, resource: Resource, namespace: str | None, name: str) -> JSON | None:
        try:
            return self.get(resource, namespace, name)
        except ApiError:
            return None

    @_locked
    def items(self, resource: Resource, selector: Selector = Selector()) -> list[JSON]:
        return [
            copy.deepcopy(obj)
            for _, obj in sorted(self._objects[resource].items())
            if selector.matches(obj)
        ]

    @_locked
    def list(
        self,
        resource: Resource,
        selector: Selector = Selector(),
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> JSON:
        """A `<Kind>List` as the API server sends it (items without kind and apiVersion)."""
        entries = sorted(
            (key, obj) for key, obj in self._objects[resource].items() if selector.matches(obj)
        )
        rv = self._rv
        if continue_token:
            try:
                token = json.loads(base64.urlsafe_b64decode(continue_token))
                start, rv = tuple(token["start"]), int(token["rv"])
            except (ValueError, KeyError, TypeError):
                raise bad_request("continue key is not valid") from None
            entries = [(k, o) for k, o in entries if k > start]
        metadata: JSON = {"resourceVersion": str(rv)}
        if limit and len(entries) > limit:
            last = entries[limit - 1][0]
            metadata["continue"] = base64.urlsafe_b64encode(
                json.dumps({"rv": rv, "start": list(last)}).encode()
            ).decode()
            metadata["remainingItemCount"] = len(entries) - limit
            entries = entries[:limit]
        items = []
        for _, obj in entries:
            item = copy.deepcopy(obj)
            item.pop("kind", None)
            item.pop("apiVersion", None)
            items.append(item)
        return {
            "kind": f"{resource.kind}List",
            "apiVersion": resource.api_version,
            "metadata": metadata,
            "items": items,
        }

    # -- watching --

    @_locked
    def watch(
        self,
        resource: Resource,
        selector: Selector = Selector(),
        *,
        since: str | None = None,
        send_initial_events: bool = False,
    ) -> Watch:
        """Events after `since`; without it (or "0"), ADDED for what exists, then changes."""
        watch = Watch(self, resource, selector)
        if since in (None, "", "0") or send_initial_events:
            for obj in self.items(resource, selector):
                watch._put(WatchEvent("ADDED", obj))
            if send_initial_events:
                watch._put(
                    WatchEvent(
                        "BOOKMARK",
                        {
                            "kind": resource.kind,
                            "apiVersion": resource.api_version,
                            "metadata": {
                                "resourceVersion": self.resource_version,
                                "annotations": {INITIAL_EVENTS_END: "true"},
                            },
                        },
                    )
                )
        else:
            assert since is not None
            try:
                start = int(since)
            except ValueError:
                raise bad_request(f"invalid resource version {since!r}") from None
            if start < self._compacted:
                watch._put(
                    WatchEvent(
                        "ERROR",
                        ApiError(
                            410,
                            "Expired",
                            f"too old resource version: {start} ({self._compacted})",
                        ).status(),
                    )
                )
                watch._put(None)
                return watch
            for change in self._history:
                if change.rv > start:
                    watch._offer(change)
        self._watches.add(watch)
        return watch

    @_locked
    def bookmark(self, resource: Resource) -> JSON:
        return {
            "kind": resource.kind,
            "apiVersion": resource.api_version,
            "metadata": {"resourceVersion": self.resource_version},
        }

    def _record(self, resource: Resource, type_: str, old: JSON | None, new: JSON) -> None:
        change = Change(self._rv, resource, type_, copy.deepcopy(old), copy.deepcopy(new))
        self._history.append(change)
        while len(self._history) > self._history_limit:
            self._compacted = self._history.popleft().rv
        for watch in list(self._watches):
            watch._offer(change)

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    # -- writing --

    @_locked
    def create(self, resource: Resource, body: JSON, namespace: str | None = None) -> JSON:
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        for type_field in ("kind", "apiVersion"):
            expected = resource.kind if type_field == "kind" else resource.api_version
            if obj.get(type_field) not in (None, "", expected):
                raise bad_request(f"the API version or kind in the body does not match {expected}")
        obj["kind"], obj["apiVersion"] = resource.kind, resource.api_version
        if resource.namespaced:
            if namespace and meta.get("namespace") not in (None, "", namespace):
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent "
                    "on the request"
                )
            namespace = namespace or meta.get("namespace") or "default"
            meta["namespace"] = namespace
            if (
                resource is not NAMESPACES
                and ("", namespace) not in self._objects[NAMESPACES]
                and NAMESPACES in self._objects
            ):
                raise not_found(NAMESPACES, namespace)
        else:
            meta.pop("namespace", None)
        if not meta.get("name"):
            prefix = meta.get("generateName")
            if not prefix:
                raise invalid(
                    resource, "", "metadata.name: Required value: name or generateName is required"
                )
            meta["name"] = prefix + "".join(
                secrets.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5)
            )
        name = meta["name"]
        key = (meta.get("namespace", ""), name)
        if key in self._objects[resource]:
            raise already_exists(resource, name)
        for field_ in ("deletionTimestamp", "deletionGracePeriodSeconds", "managedFields"):
            meta.pop(field_, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        if resource.generation:
            meta["generation"] = 1
        _DEFAULTS.get(resource.plural, _no_defaults)(obj)
        for mutate in self.mutators:
            mutate(resource, obj)
        _VALIDATE_CREATE.get(resource.plural, _no_validation)(resource, obj)
        meta["resourceVersion"] = self._next_rv()
        self._objects[resource][key] = obj
        self._record(resource, "ADDED", None, obj)
        return copy.deepcopy(obj)

    @_locked
    def replace(
        self,
        resource: Resource,
        namespace: str | None,
        name: str,
        body: JSON,
        subresource: str | None = None,
    ) -> JSON:
        """PUT: the whole object; a stale metadata.resourceVersion is a 409 Conflict."""
        old = self._raw(resource, namespace, name)
        meta = body.get("metadata") or {}
        if meta.get("name") not in (None, name):
            raise bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the "
                f"URL ({name})"
            )
        rv = meta.get("resourceVersion")
        if rv and rv != old["metadata"]["resourceVersion"]:
            raise conflict(resource, name)
        return self._commit(resource, old, copy.deepcopy(body), subresource, api=True)

    @_locked
    def patch(
        self,
        resource: Resource,
        namespace: str | None,
        name: str,
        patch: Any,
        content_type: str = "application/merge-patch+json",
        subresource: str | None = None,
    ) -> JSON:
        old = self._raw(resource, namespace, name)
        if content_type == "application/json-patch+json":
            try:
                new = json_patch(old, patch)
            except PatchError as exc:
                raise ApiError(
                    422,
                    "Invalid",
                    f"the server rejected our request due to an error in our request: {exc}",
                ) from None
        elif content_type in (
            "application/merge-patch+json",
            "application/strategic-merge-patch+json",
        ):
            if not isinstance(patch, dict):
                raise bad_request("a merge patch must be a JSON object")
            rv = (patch.get("metadata") or {}).get("resourceVersion")
            if rv and rv != old["metadata"]["resourceVersion"]:
                raise conflict(resource, name)
            new = merge_patch(old, patch)
        else:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format - accepted media types "
                f"include: application/json-patch+json, application/merge-patch+json, "
                f"application/strategic-merge-patch+json (got {content_type})",
            )
        return self._commit(resource, old, new, subresource, api=True)

    @_locked
    def update(
        self,
        resource: Resource,
        namespace: str | None,
        name: str,
        mutate: Callable[[JSON], None],
        subresource: str | None = None,
        *,
        bump_generation: bool = True,
    ) -> JSON:
        """An in-process write (the kubelet's, a test's): `mutate` edits a copy in place.

        The status subresource rules apply as for the API; pod spec immutability does not.
        `bump_generation=False` for system writes such as a pod's binding to a node.
        """
        old = self._raw(resource, namespace, name)
        new = copy.deepcopy(old)
        mutate(new)
        return self._commit(
            resource, old, new, subresource, api=False, bump_generation=bump_generation
        )

    def _commit(
        self,
        resource: Resource,
        old: JSON,
        new: JSON,
        subresource: str | None,
        *,
        api: bool,
        bump_generation: bool = True,
    ) -> JSON:
        name = old["metadata"]["name"]
        if subresource not in (None, "status") or (
            subresource == "status" and not resource.has_subresource("status")
        ):
            raise resource_not_found()
        if resource.has_subresource("status"):
            if subresource == "status":
                status = new.get("status")
                new = copy.deepcopy(old)
                if status is None:
                    new.pop("status", None)
                else:
                    new["status"] = status
            elif "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)
        new["kind"], new["apiVersion"] = resource.kind, resource.api_version
        meta = new.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        for system in (
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "resourceVersion",
        ):
            if system in old["metadata"]:
                meta[system] = old["metadata"][system]
            else:
                meta.pop(system, None)
        if api:
            _VALIDATE_UPDATE.get(resource.plural, _no_update_validation)(resource, old, new)
        if new == old:
            return copy.deepcopy(old)  # a no-op write changes nothing, not even the version
        if resource.generation and bump_generation and _spec_of(new) != _spec_of(old):
            meta["generation"] = int(meta.get("generation", 1)) + 1
        key = (meta.get("namespace", ""), name)
        if (
            meta.get("deletionTimestamp")
            and not meta.get("finalizers")
            and not meta.get("deletionGracePeriodSeconds")
        ):
            return self._remove(resource, key, new)
        meta["resourceVersion"] = self._next_rv()
        self._objects[resource][key] = new
        self._record(resource, "MODIFIED", old, new)
        return copy.deepcopy(new)

    @_locked
    def delete(
        self,
        resource: Resource,
        namespace: str | None,
        name: str,
        grace_period: int | None = None,
    ) -> JSON:
        """Delete now, or mark for deletion: finalizers pending, or a bound pod to stop."""
        old = self._raw(resource, namespace, name)
        meta = old["metadata"]
        key = (meta.get("namespace", ""), name)
        if (
            resource is PODS
            and self.graceful_pods
            and grace_period != 0
            and (old.get("spec") or {}).get("nodeName")
            and (old.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        ):
            grace = grace_period
            if grace is None:
                grace = int((old.get("spec") or {}).get("terminationGracePeriodSeconds", 30))
            current = meta.get("deletionGracePeriodSeconds")
            if current is not None and current <= grace:
                return copy.deepcopy(old)
            return self._mark_deleted(resource, old, grace)
        if meta.get("finalizers"):
            if meta.get("deletionTimestamp") and not meta.get("deletionGracePeriodSeconds"):
                return copy.deepcopy(old)
            return self._mark_deleted(resource, old, 0)
        if resource is NAMESPACES:
            for other in self.resources:
                if other.namespaced:
                    for ns, item in list(self._objects[other]):
                        if ns == name:
                            self._remove(other, (ns, item), self._objects[other][(ns, item)])
        return self._remove(resource, key, copy.deepcopy(old))

    def _mark_deleted(self, resource: Resource, old: JSON, grace: int) -> JSON:
        new = copy.deepcopy(old)
        new["metadata"]["deletionTimestamp"] = now_rfc3339(grace)
        new["metadata"]["deletionGracePeriodSeconds"] = grace
        if resource is NAMESPACES:
            new.setdefault("status", {})["phase"] = "Terminating"
        new["metadata"]["resourceVersion"] = self._next_rv()
        key = (new["metadata"].get("namespace", ""), new["metadata"]["name"])
        self._objects[resource][key] = new
        self._record(resource, "MODIFIED", old, new)
        return copy.deepcopy(new)

    def _remove(self, resource: Resource, key: tuple[str, str], last: JSON) -> JSON:
        old = self._objects[resource].pop(key)
        final = copy.deepcopy(last)
        final["metadata"]["resourceVersion"] = self._next_rv()
        self._record(resource, "DELETED", old, final)
        return final


def _spec_of(obj: JSON) -> JSON:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "kind", "apiVersion")}


def _no_defaults(obj: JSON) -> None:
    pass


def _no_validation(resource: Resource, obj: JSON) -> None:
    pass


def _no_update_validation(resource: Resource, old: JSON, new: JSON) -> None:
    pass


def _default_namespace(obj: JSON) -> None:
    obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"][
        "name"
    ]
    obj["spec"] = {"finalizers": ["kubernetes"]}
    obj["status"] = {"phase": "Active"}


def _default_event(obj: JSON) -> None:
    obj.setdefault("count", 1)


def _default_secret(secret: JSON) -> None:
    # As the API server does: stringData is write-only, merged into data as base64.
    secret.setdefault("type", "Opaque")
    data = secret.setdefault("data", {})
    for key, value in (secret.pop("stringData", None) or {}).items():
        data[key] = base64.b64encode(str(value).encode()).decode()


def _validate_secret(resource: Resource, secret: JSON) -> None:
    for key, value in (secret.get("data") or {}).items():
        try:
            base64.b64decode(str(value), validate=True)
        except ValueError:
            name = secret["metadata"].get("name", "")
            raise invalid(resource, name, f"data[{key}]: Invalid value: illegal base64") from None


def _default_pod(pod: JSON) -> None:
    spec = pod.setdefault("spec", {})
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    for container in [*spec.get("initContainers", []), *spec.get("containers", [])]:
        if not isinstance(container, dict):
            continue
        image = str(container.get("image", ""))
        tagged = ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest")
        container.setdefault("imagePullPolicy", "IfNotPresent" if tagged else "Always")
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        resources = container.setdefault("resources", {})
        if resources.get("limits"):
            requests = resources.setdefault("requests", {})
            for name, value in resources["limits"].items():
                requests.setdefault(name, value)
        for port in container.get("ports", []):
            port.setdefault("protocol", "TCP")
    pod["status"] = {"phase": "Pending", "qosClass": _qos_class(spec)}


def _qos_class(spec: JSON) -> str:
    containers = [*spec.get("initContainers", []), *spec.get("containers", [])]
    resources = [c.get("resources") or {} for c in containers if isinstance(c, dict)]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    guaranteed = all(
        all(name in (r.get("limits") or {}) for name in ("cpu", "memory"))
        and (r.get("requests") or {}) == (r.get("limits") or {})
        for r in resources
    )
    return "Guaranteed" if guaranteed else "Burstable"


def _validate_pod(resource: Resource, pod: JSON) -> None:
    from oomforensics.quantity import InvalidQuantity, parse_memory

    name = pod["metadata"]["name"]
    containers = (pod.get("spec") or {}).get("containers")
    if not isinstance(containers, list) or not containers:
        raise invalid(resource, name, "spec.containers: Required value")
    seen: set[str] = set()
    for index, container in enumerate(containers):
        where = f"spec.containers[{index}]"
        if not isinstance(container, dict) or not container.get("name"):
            raise invalid(resource, name, f"{where}.name: Required value")
        if container["name"] in seen:
            raise invalid(resource, name, f'{where}.name: Duplicate value: "{container["name"]}"')
        seen.add(container["name"])
        if not container.get("image"):
            raise invalid(resource, name, f"{where}.image: Required value")
        for kind in ("limits", "requests"):
            memory = ((container.get("resources") or {}).get(kind) or {}).get("memory")
            if memory is not None:
                try:
                    parse_memory(str(memory))
                except InvalidQuantity as exc:
                    raise invalid(
                        resource, name, f"{where}.resources.{kind}.memory: {exc}"
                    ) from None


def _mutable_pod_spec(spec: JSON) -> JSON:
    spec = copy.deepcopy(spec)
    for key in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds"):
        spec.pop(key, None)
    for list_key in ("containers", "initContainers"):
        for container in spec.get(list_key) or []:
            if isinstance(container, dict):
                container.pop("image", None)
    return spec


def _validate_pod_update(resource: Resource, old: JSON, new: JSON) -> None:
    if _mutable_pod_spec(old.get("spec") or {}) != _mutable_pod_spec(new.get("spec") or {}):
        raise invalid(
            resource,
            old["metadata"]["name"],
            "spec: Forbidden: pod updates may not change fields other than "
            "`spec.containers[*].image`,`spec.initContainers[*].image`,"
            "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing "
            "tolerations),`spec.terminationGracePeriodSeconds`",
        )


_DEFAULTS: dict[str, Callable[[JSON], None]] = {
    "pods": _default_pod,
    "namespaces": _default_namespace,
    "events": _default_event,
    "secrets": _default_secret,
}
_VALIDATE_CREATE: dict[str, Callable[[Resource, JSON], None]] = {
    "pods": _validate_pod,
    "secrets": _validate_secret,
}
_VALIDATE_UPDATE: dict[str, Callable[[Resource, JSON, JSON], None]] = {"pods": _validate_pod_update}


# -- pod metrics -----------------------------------------------------------------------------

_BINARY_SUFFIXES = (("Ei", 2**60), ("Pi", 2**50), ("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20))


def format_memory(value: int) -> str:
    """A quantity in canonical BinarySI form, as metrics-server prints a working set."""
    for suffix, unit in _BINARY_SUFFIXES:
        if value and value % unit == 0:
            return f"{value // unit}{suffix}"
    if value and value % 1024 == 0:
        return f"{value // 1024}Ki"
    return str(value)


def memory_bytes(quantity: str) -> int:
    """The inverse of `format_memory` (binary suffixes, or plain bytes), for reading metrics.

    Not oomforensics.quantity.parse_memory: that rejects "Ki" (it accepts only "k").
    """
    units = dict(_BINARY_SUFFIXES) | {"Ki": 1024}
    for suffix, unit in units.items():
        if quantity.endswith(suffix):
            return int(quantity.removesuffix(suffix)) * unit
    return int(quantity)


@dataclass(frozen=True, slots=True)
class ContainerUsage:
    memory: int  # working set, bytes
    cpu_nanocores: int = 0


@dataclass(slots=True)
class _PodSample:
    timestamp: datetime
    window: float
    containers: dict[str, ContainerUsage]


def _go_duration(seconds: float) -> str:
    text = f"{seconds:.3f}".rstrip("0").rstrip(".")
    return f"{text}s"


class MetricsBoard:
    """What metrics-server would answer: the latest sample per pod, published by the kubelet."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self.lock = threading.RLock()
        self._samples: dict[tuple[str, str], _PodSample] = {}

    @_locked
    def publish(
        self,
        namespace: str,
        name: str,
        containers: Mapping[str, ContainerUsage],
        window: float,
        timestamp: datetime | None = None,
    ) -> None:
        self._samples[(namespace, name)] = _PodSample(
            timestamp or datetime.now(UTC), window, dict(containers)
        )

    @_locked
    def forget(self, namespace: str, name: str) -> None:
        self._samples.pop((namespace, name), None)

    def _render(self, pod: JSON, sample: _PodSample) -> JSON:
        meta = pod["metadata"]
        return {
            "kind": "PodMetrics",
            "apiVersion": POD_METRICS.api_version,
            "metadata": {
                "name": meta["name"],
                "namespace": meta["namespace"],
                "creationTimestamp": now_rfc3339(),
                "labels": dict(meta.get("labels") or {}),
            },
            "timestamp": sample.timestamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "window": _go_duration(sample.window),
            "containers": [
                {
                    "name": container,
                    "usage": {
                        "cpu": f"{usage.cpu_nanocores}n" if usage.cpu_nanocores else "0",
                        "memory": format_memory(usage.memory),
                    },
                }
                for container, usage in sample.containers.items()
            ],
        }

    @_locked
    def get(self, namespace: str, name: str) -> JSON:
        pod = self.store.find(PODS, namespace, name)
        sample = self._samples.get((namespace, name))
        if pod is None or sample is None:
            raise not_found(POD_METRICS, name)
        return self._render(pod, sample)

    @_locked
    def list(self, selector: Selector) -> JSON:
        items = []
        for pod in self.store.items(PODS, selector):
            sample = self._samples.get((pod["metadata"]["namespace"], pod["metadata"]["name"]))
            if sample is not None:
                item = self._render(pod, sample)
                items.append(item)
        return {
            "kind": "PodMetricsList",
            "apiVersion": POD_METRICS.api_version,
            "metadata": {},
            "items": items,
        }


# -- calls -----------------------------------------------------------------------------------


@dataclass(slots=True)
class ApiCall:
    """One request, classified the way the API server's RequestInfo does for RBAC."""

    method: str
    path: str
    query: dict[str, str]
    verb: str  # get list watch create update patch delete deletecollection; or a method
    resource_request: bool
    api_group: str = ""
    api_version: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str | None = None
    name: str | None = None
    proxied: bool = False  # answered by the real API server
    status: int | None = None

    @property
    def permission(self) -> tuple[str, str, str]:
        """(apiGroup, resource or resource/subresource, verb), as a Role rule names it."""
        resource = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        return (self.api_group, resource, self.verb)


@dataclass(frozen=True, slots=True)
class _Target:
    namespace: str | None
    plural: str
    name: str | None
    subresource: str | None
    rest: tuple[str, ...]


def _parse_resource_path(parts: list[str]) -> tuple[_Target, bool]:
    """`[watch/][namespaces/NS/]PLURAL[/NAME[/SUB[/...]]]`, as RequestInfo splits it."""
    legacy_watch = bool(parts) and parts[0] == "watch"
    if legacy_watch:
        parts = parts[1:]
    namespace = None
    if parts[:1] == ["namespaces"] and len(parts) > 1:
        namespace = parts[1]
        if len(parts) > 2 and parts[2] not in ("status", "finalize"):
            parts = parts[2:]
        else:
            namespace = None  # the namespace itself: namespaces/NAME[/status]
    if not parts:
        raise resource_not_found()
    return (
        _Target(
            namespace,
            parts[0],
            parts[1] if len(parts) > 1 else None,
            parts[2] if len(parts) > 2 else None,
            tuple(parts[3:]),
        ),
        legacy_watch,
    )


def _classify(request: web.Request) -> ApiCall:
    query = {k: request.query[k] for k in request.query}
    call = ApiCall(request.method, request.path, query, request.method.lower(), False)
    parts = [p for p in request.path.split("/") if p]
    if parts[:1] == ["api"] and len(parts) > 2:
        group, version, rest = "", parts[1], parts[2:]
    elif parts[:1] == ["apis"] and len(parts) > 3:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return call
    try:
        target, legacy_watch = _parse_resource_path(rest)
    except ApiError:
        return call
    call.resource_request = True
    call.api_group, call.api_version = group, version
    call.resource, call.subresource = target.plural, target.subresource or ""
    call.namespace, call.name = target.namespace, target.name
    if target.plural == "namespaces" and target.name is not None:
        call.namespace = target.name
    watching = legacy_watch or query.get("watch") in ("true", "1")
    collection = target.name is None
    verbs = {
        "GET": "watch" if watching else ("list" if collection else "get"),
        "HEAD": "list" if collection else "get",
        "POST": "create",
        "PUT": "update",
        "PATCH": "patch",
        "DELETE": "deletecollection" if collection else "delete",
    }
    call.verb = verbs.get(request.method, request.method.lower())
    return call


# -- the front -------------------------------------------------------------------------------


class Upstream(Protocol):
    """A real API server (tests.support.apiserver.ApiServer satisfies it)."""

    @property
    def url(self) -> str: ...

    def ssl_context(self) -> ssl.SSLContext: ...


# (namespace, pod, container, previous) -> the log, None when there is none
LogSource = Callable[[str, str, str, bool], bytes | None]

_HOP_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-length",
        "content-encoding",
        "date",
        "server",
        "upgrade",
        "host",
        "te",
        "trailer",
        "proxy-authorization",
        "proxy-authenticate",
        "authorization",
        "accept-encoding",
    }
)


def _kube_version_key(version: str) -> tuple[int, int, int, str]:
    """Kubernetes' version priority: GA > beta > alpha, higher numbers first, then names."""
    match = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if not match:
        return (3, 0, 0, version)
    stage = {None: 0, "beta": 1, "alpha": 2}[match.group(2)]
    return (stage, -int(match.group(1)), -int(match.group(3) or 0), version)


def _group_entry(name: str, versions: Iterable[str]) -> JSON:
    ordered = sorted(set(versions), key=_kube_version_key)
    entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in ordered]
    return {"name": name, "versions": entries, "preferredVersion": entries[0]}


class LoopThread:
    """An event loop of its own in a daemon thread: `submit(coro)` runs a coroutine there."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            pending = asyncio.all_tasks(self.loop)
            for task in pending:
                task.cancel()
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self) -> None:
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(30)


class ClusterFront:
    """`with ClusterFront(upstream=apiserver) as front:` (or `async with`): the API at `url`.

    It runs in a thread with its own event loop (so does the kubelet attached to it): a
    client that blocks (the kubernetes client, kubectl, a sync handler) cannot stall it, and
    `kopf.operator()`, which cancels every task created in its loop after it started when it
    stops, cannot cancel the cluster's.

    `front.store` holds pods, events and namespaces (write to it directly from tests, from any
    thread: such writes are not API calls); `front.metrics` the PodMetrics samples;
    `front.calls` every API request; `front.kubeconfig` a kubeconfig for kopf and kubectl.
    """

    def __init__(
        self,
        upstream: Upstream | None = None,
        *,
        workdir: Path | None = None,
        history: int = 10_000,
        watch_timeout: float = 1800.0,
        bookmark_interval: float = 30.0,
    ) -> None:
        self.upstream = upstream
        self.store = ObjectStore(STORED, history)
        self.metrics = MetricsBoard(self.store)
        self.metrics_server = True  # False: no metrics.k8s.io, as in a cluster without one
        self.calls: list[ApiCall] = []
        self.log_source: LogSource | None = None  # set by the kubelet: pods/log
        self.watch_timeout = watch_timeout
        self.bookmark_interval = bookmark_interval
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="oomf-front-"))
        self.kubeconfig = self.workdir / "kubeconfig"
        self.port = 0
        self._thread: LoopThread | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._stopping: asyncio.Event | None = None

    @property
    def url(self) -> str:
        if not self.port:
            raise RuntimeError("the front is not started")
        return f"http://127.0.0.1:{self.port}"

    # -- lifecycle --

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run a coroutine in the front's event loop (the kubelet's home), from any thread."""
        if self._thread is None:
            coro.close()
            raise RuntimeError("the front is not started")
        return self._thread.submit(coro)

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """`await front.run(coro)`: the coroutine runs in the front's loop, the caller waits."""
        return await asyncio.wrap_future(self.submit(coro))

    def start_sync(self) -> None:
        self._thread = LoopThread("cluster-front")
        try:
            self.submit(self._open()).result(60)
        except BaseException:
            self._thread.stop()
            self._thread = None
            if self._own_workdir:
                shutil.rmtree(self.workdir, ignore_errors=True)
            raise

    def stop_sync(self) -> None:
        if self._thread is None:
            return
        try:
            self.submit(self._shutdown()).result(60)
        finally:
            self._thread.stop()
            self._thread = None
            if self._own_workdir:
                shutil.rmtree(self.workdir, ignore_errors=True)

    async def start(self) -> None:
        await asyncio.to_thread(self.start_sync)

    async def stop(self) -> None:
        await asyncio.to_thread(self.stop_sync)

    def __enter__(self) -> Self:
        self.start_sync()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_sync()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _open(self) -> None:
        self._stopping = asyncio.Event()
        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=0.5
        )
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = int(sock.getsockname()[1])
        await web.SockSite(self._runner, sock).start()
        if self.upstream is not None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self.upstream.ssl_context()),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
                auto_decompress=False,
            )
        self._write_kubeconfig()

    async def _shutdown(self) -> None:
        if self._stopping is not None:
            self._stopping.set()
        with self.store.lock:
            watches = list(self.store._watches)
        for watch in watches:
            watch.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _write_kubeconfig(self) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "front", "cluster": {"server": self.url}}],
            "users": [{"name": "anonymous", "user": {}}],
            "contexts": [
                {
                    "name": "front",
                    "context": {"cluster": "front", "user": "anonymous", "namespace": "default"},
                }
            ],
            "current-context": "front",
        }
        self.kubeconfig.write_text(json.dumps(config, indent=2) + "\n")

    # -- for tests --

    def permissions(self, *, proxied: bool | None = None) -> set[tuple[str, str, str]]:
        """(apiGroup, resource[/subresource], verb) of every resource request so far."""
        return {
            call.permission
            for call in self.calls
            if call.resource_request and (proxied is None or call.proxied == proxied)
        }

    # -- HTTP --

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        call = _classify(request)
        self.calls.append(call)
        try:
            response = await self._route(request, call)
        except ApiError as exc:
            response = web.json_response(exc.status(), status=exc.code)
        call.status = response.status
        return response

    async def _route(self, request: web.Request, call: ApiCall) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        if request.path in ("/healthz", "/livez", "/readyz"):
            return web.Response(text="ok")
        if request.path == "/version":
            return web.json_response(KUBERNETES_VERSION)
        if parts[:1] == ["api"]:
            if len(parts) == 1:
                return web.json_response(
                    {
                        "kind": "APIVersions",
                        "versions": ["v1"],
                        "serverAddressByClientCIDRs": [
                            {"clientCIDR": "0.0.0.0/0", "serverAddress": f"127.0.0.1:{self.port}"}
                        ],
                    }
                )
            if parts[1] != "v1":
                raise resource_not_found()
            if len(parts) == 2:
                return web.json_response(self._resource_list("v1", CORE_RESOURCES))
            return await self._serve(request, call, "", CORE_RESOURCES, parts[2:])
        if parts[:1] == ["apis"]:
            if len(parts) == 1:
                return web.json_response(
                    {"kind": "APIGroupList", "apiVersion": "v1", "groups": await self._groups()}
                )
            group = parts[1]
            if group in self._local_groups():
                versions = LOCAL_GROUPS[group]
                if len(parts) == 2:
                    return web.json_response(
                        {"kind": "APIGroup", "apiVersion": "v1", **_group_entry(group, versions)}
                    )
                if parts[2] not in versions:
                    raise resource_not_found()
                if len(parts) == 3:
                    return web.json_response(
                        self._resource_list(f"{group}/{parts[2]}", versions[parts[2]])
                    )
                return await self._serve(request, call, group, versions[parts[2]], parts[3:])
            if self.upstream is not None:
                if len(parts) == 2:
                    for entry in await self._upstream_groups():
                        if entry["name"] == group:
                            return web.json_response(
                                {"kind": "APIGroup", "apiVersion": "v1", **entry}
                            )
                    raise resource_not_found()
                call.proxied = True
                return await self._proxy(request)
        raise resource_not_found()

    @staticmethod
    def _resource_list(group_version: str, resources: Iterable[Resource]) -> JSON:
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": group_version,
            "resources": [entry for r in resources for entry in r.discovery()],
        }

    def _local_groups(self) -> dict[str, dict[str, tuple[Resource, ...]]]:
        if self.metrics_server:
            return LOCAL_GROUPS
        return {k: v for k, v in LOCAL_GROUPS.items() if k != POD_METRICS.group}

    async def _groups(self) -> list[JSON]:
        groups = [_group_entry(name, versions) for name, versions in self._local_groups().items()]
        if self.upstream is not None:
            groups.extend(await self._upstream_groups())
        return groups

    async def _upstream_groups(self) -> list[JSON]:
        """apiextensions.k8s.io and the groups of the established CRDs, as /apis lists them."""
        assert self._session is not None and self.upstream is not None
        async with self._session.get(self.upstream.url + CRD_LIST_PATH) as response:
            if response.status != 200:
                return []
            crds = (await response.json()).get("items", [])
        versions: dict[str, set[str]] = {"apiextensions.k8s.io": {"v1"}}
        for crd in crds:
            conditions = (crd.get("status") or {}).get("conditions") or []
            if not any(
                c.get("type") == "Established" and c.get("status") == "True" for c in conditions
            ):
                continue
            spec = crd.get("spec") or {}
            served = {v["name"] for v in spec.get("versions", []) if v.get("served")}
            if served:
                versions.setdefault(spec["group"], set()).update(served)
        return [_group_entry(name, served) for name, served in versions.items()]

    async def _proxy(self, request: web.Request) -> web.StreamResponse:
        """Pass the request to the real API server and its answer back, chunk by chunk."""
        assert self._session is not None and self.upstream is not None
        url = yarl.URL(
            self.upstream.url
            + request.rel_url.raw_path
            + (f"?{request.rel_url.raw_query_string}" if request.rel_url.raw_query_string else ""),
            encoded=True,
        )
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        # The session would ask for gzip and the relay drops Content-Encoding: a large list
        # (the API server gzips answers over 128 KiB) would reach the client as raw gzip.
        headers["Accept-Encoding"] = "identity"
        body = await request.read() if request.can_read_body else None
        return await self._relay(request, request.method, url, headers, body)

    async def _relay(
        self,
        request: web.Request,
        method: str,
        url: yarl.URL,
        headers: Mapping[str, str],
        body: bytes | None,
        session: aiohttp.ClientSession | None = None,
    ) -> web.StreamResponse:
        session = session or self._session
        assert session is not None
        try:
            upstream = await session.request(method, url, headers=headers, data=body)
        except aiohttp.ClientError as exc:
            raise ApiError(
                503, "ServiceUnavailable", f"error trying to reach {url.host}: {exc}"
            ) from None
        watchdog = asyncio.create_task(self._close_when_gone(request, upstream))
        try:
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for key, value in upstream.headers.items():
                if key.lower() not in _HOP_HEADERS:
                    response.headers.add(key, value)
            response.enable_chunked_encoding()
            await response.prepare(request)
            with contextlib.suppress(ConnectionError, aiohttp.ClientError):
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
        finally:
            watchdog.cancel()
            upstream.close()
        return response

    @staticmethod
    async def _close_when_gone(request: web.Request, upstream: aiohttp.ClientResponse) -> None:
        """A quiet watch stream notices no client leaving: close the upstream one then."""
        while True:
            await asyncio.sleep(0.5)  # polling period of the client's connection state
            if request.transport is None or request.transport.is_closing():
                upstream.close()
                return

    # -- local resources --

    async def _serve(
        self,
        request: web.Request,
        call: ApiCall,
        group: str,
        resources: Iterable[Resource],
        rest: list[str],
    ) -> web.StreamResponse:
        target, legacy_watch = _parse_resource_path(rest)
        resource = next((r for r in resources if r.plural == target.plural), None)
        if resource is None:
            raise resource_not_found()
        if not resource.namespaced and target.namespace is not None:
            raise resource_not_found()
        if resource.namespaced and target.name is not None and target.namespace is None:
            raise resource_not_found()
        if target.subresource and not resource.has_subresource(target.subresource):
            raise resource_not_found()
        query = request.query
        if resource is POD_METRICS:
            return self._serve_metrics(request, target, query)
        if target.subresource == "log":
            return self._serve_log(request, target, query)
        if target.subresource == "proxy":
            return await self._serve_pod_proxy(request, target)
        method = request.method
        if target.name is None:
            if method == "GET":
                selector = Selector.parse(
                    resource,
                    target.namespace,
                    query.get("labelSelector"),
                    query.get("fieldSelector"),
                )
                if legacy_watch or query.get("watch") in ("true", "1"):
                    return await self._watch(request, resource, selector)
                limit = int(query["limit"]) if query.get("limit", "").isdigit() else None
                return self._json(
                    request, self.store.list(resource, selector, limit, query.get("continue"))
                )
            if method == "POST":
                created = self.store.create(resource, await _body(request), target.namespace)
                return self._json(request, created, status=201)
            if method == "DELETE":
                selector = Selector.parse(
                    resource,
                    target.namespace,
                    query.get("labelSelector"),
                    query.get("fieldSelector"),
                )
                items = self.store.items(resource, selector)
                for item in items:
                    meta = item["metadata"]
                    self.store.delete(resource, meta.get("namespace"), meta["name"])
                return self._json(request, self.store.list(resource, Selector(target.namespace)))
            raise method_not_allowed(method)
        name = target.name
        if legacy_watch:
            selector = Selector(
                target.namespace, (), (FieldRequirement("metadata.name", name, True),)
            )
            return await self._watch(request, resource, selector)
        if method == "GET":
            return self._json(request, self.store.get(resource, target.namespace, name))
        if method == "PUT":
            replaced = self.store.replace(
                resource, target.namespace, name, await _body(request), target.subresource
            )
            return self._json(request, replaced)
        if method == "PATCH":
            content_type = request.content_type
            patch = json.loads(await request.read() or b"null")
            patched = self.store.patch(
                resource, target.namespace, name, patch, content_type, target.subresource
            )
            return self._json(request, patched)
        if method == "DELETE" and not target.subresource:
            grace: int | None = None
            if query.get("gracePeriodSeconds", "").lstrip("-").isdigit():
                grace = int(query["gracePeriodSeconds"])
            if request.can_read_body:
                options = json.loads(await request.read() or b"{}")
                if isinstance(options, dict) and options.get("gracePeriodSeconds") is not None:
                    grace = int(options["gracePeriodSeconds"])
            return self._json(request, self.store.delete(resource, target.namespace, name, grace))
        raise method_not_allowed(method)

    def _json(self, request: web.Request, body: JSON, status: int = 200) -> web.Response:
        if "as=Table" in request.headers.get("Accept", ""):
            body = _as_table(body)
        return web.json_response(body, status=status)

    async def _watch(
        self, request: web.Request, resource: Resource, selector: Selector
    ) -> web.StreamResponse:
        query = request.query
        send_initial = query.get("sendInitialEvents") == "true"
        if send_initial and (
            query.get("allowWatchBookmarks") != "true"
            or query.get("resourceVersionMatch") != "NotOlderThan"
        ):
            raise ApiError(
                422,
                "Invalid",
                "sendInitialEvents requires allowWatchBookmarks=true and "
                "resourceVersionMatch=NotOlderThan",
            )
        bookmarks = query.get("allowWatchBookmarks") == "true"
        try:
            timeout = float(query.get("timeoutSeconds") or self.watch_timeout)
        except ValueError:
            raise bad_request("invalid timeoutSeconds") from None
        watch = self.store.watch(
            resource,
            selector,
            since=query.get("resourceVersion"),
            send_initial_events=send_initial,
        )
        table = "as=Table" in request.headers.get("Accept", "")
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        idle_since = loop.time()
        try:
            await response.prepare(request)
            while self._stopping is None or not self._stopping.is_set():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                event = await watch.next(min(remaining, 0.5))
                if event is None:
                    if watch.closed:
                        break
                    transport = request.transport
                    if transport is None or transport.is_closing():
                        break
                    if bookmarks and loop.time() - idle_since >= self.bookmark_interval:
                        event = WatchEvent("BOOKMARK", self.store.bookmark(resource))
                    else:
                        continue
                idle_since = loop.time()
                obj = (
                    _as_table(event.object)
                    if table and event.type in ("ADDED", "MODIFIED", "DELETED")
                    else event.object
                )
                line = json.dumps({"type": event.type, "object": obj}) + "\n"
                await response.write(line.encode())
            with contextlib.suppress(ConnectionError):
                await response.write_eof()
        except ConnectionError:
            pass
        finally:
            watch.close()
        return response

    def _serve_metrics(
        self, request: web.Request, target: _Target, query: Mapping[str, str]
    ) -> web.Response:
        if request.method != "GET":
            raise method_not_allowed(request.method)
        if target.name is not None:
            assert target.namespace is not None
            return self._json(request, self.metrics.get(target.namespace, target.name))
        selector = Selector.parse(
            PODS, target.namespace, query.get("labelSelector"), query.get("fieldSelector")
        )
        return self._json(request, self.metrics.list(selector))

    def _serve_log(
        self, request: web.Request, target: _Target, query: Mapping[str, str]
    ) -> web.Response:
        assert target.namespace is not None and target.name is not None
        pod = self.store.get(PODS, target.namespace, target.name)
        container = query.get("container")
        if container is None:
            names = [c["name"] for c in pod["spec"]["containers"]]
            if len(names) > 1:
                raise bad_request(
                    f"a container name must be specified for pod {target.name}, choose one of: "
                    f"{names}"
                )
            container = names[0]
        data = None
        if self.log_source is not None:
            data = self.log_source(
                target.namespace, target.name, container, query.get("previous") == "true"
            )
        if data is None:
            raise bad_request(f'container "{container}" in pod "{target.name}" is waiting to start')
        if query.get("tailLines", "").isdigit():
            lines = data.splitlines(keepends=True)
            data = b"".join(lines[-int(query["tailLines"]) :]) if int(query["tailLines"]) else b""
        return web.Response(body=data, content_type="text/plain")

    async def _serve_pod_proxy(self, request: web.Request, target: _Target) -> web.StreamResponse:
        """pods/NAME[:PORT]/proxy/PATH to the pod's IP: the apiserver-proxy access mode."""
        assert target.namespace is not None and target.name is not None
        scheme, name, port = "http", target.name, ""
        pieces = target.name.split(":")
        if len(pieces) == 3:
            scheme, name, port = pieces
        elif len(pieces) == 2:
            name, port = pieces
        pod = self.store.get(PODS, target.namespace, name)
        ports = [p for c in pod["spec"]["containers"] for p in c.get("ports", [])]
        if port and not port.isdigit():
            named = [p["containerPort"] for p in ports if p.get("name") == port]
            if not named:
                raise bad_request(f'no such port "{port}" on pod "{name}"')
            port = str(named[0])
        if not port:
            port = str(ports[0]["containerPort"]) if ports else "80"
        ip = (pod.get("status") or {}).get("podIP")
        if not ip:
            raise bad_request(f'pod "{name}" has no IP address yet')
        path = "/" + "/".join(target.rest)
        if request.path.endswith("/") and not path.endswith("/"):
            path += "/"
        raw_query = request.rel_url.raw_query_string
        url = yarl.URL(f"{scheme}://{ip}:{port}{path}" + (f"?{raw_query}" if raw_query else ""))
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        body = await request.read() if request.can_read_body else None
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10), auto_decompress=False
        ) as session:
            return await self._relay(request, request.method, url, headers, body, session)


async def _body(request: web.Request) -> JSON:
    try:
        body = json.loads(await request.read() or b"null")
    except ValueError as exc:
        raise bad_request(f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise bad_request("the body must be a JSON object")
    return body


def _as_table(body: JSON) -> JSON:
    """Server-side printing for `kubectl get`: a meta.k8s.io/v1 Table."""
    items = body.get("items", [body])
    kind = body.get("kind", "").removesuffix("List")
    columns: list[tuple[str, str]] = [("Name", "string")]
    if kind == "Pod":
        columns += [
            ("Ready", "string"),
            ("Status", "string"),
            ("Restarts", "string"),
            ("Age", "string"),
            ("IP", "string"),
            ("Node", "string"),
        ]
    elif kind == "Event":
        columns += [
            ("Type", "string"),
            ("Reason", "string"),
            ("Object", "string"),
            ("Message", "string"),
        ]
    else:
        columns += [("Status", "string"), ("Age", "string")]
    rows = []
    for item in items:
        meta = item.get("metadata", {})
        cells: list[Any] = [meta.get("name", "")]
        age = _age(meta.get("creationTimestamp"))
        if kind == "Pod":
            status = item.get("status") or {}
            statuses = status.get("containerStatuses") or []
            ready = sum(1 for s in statuses if s.get("ready"))
            total = len((item.get("spec") or {}).get("containers") or [])
            phase = status.get("phase", "")
            for s in statuses:
                state = s.get("state") or {}
                if "waiting" in state:
                    phase = state["waiting"].get("reason", phase)
                elif "terminated" in state:
                    phase = state["terminated"].get("reason", phase)
            if meta.get("deletionTimestamp"):
                phase = "Terminating"
            cells += [
                f"{ready}/{total}",
                phase,
                str(sum(s.get("restartCount", 0) for s in statuses)),
                age,
                status.get("podIP") or "<none>",
                (item.get("spec") or {}).get("nodeName") or "<none>",
            ]
        elif kind == "Event":
            involved = item.get("involvedObject") or {}
            cells += [
                item.get("type", ""),
                item.get("reason", ""),
                f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}",
                item.get("message", ""),
            ]
        else:
            cells += [(item.get("status") or {}).get("phase", ""), age]
        rows.append(
            {
                "cells": cells,
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": meta,
                },
            }
        )
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": (body.get("metadata") or {}).get("resourceVersion", "")},
        "columnDefinitions": [
            {
                "name": name,
                "type": type_,
                "format": "name" if name == "Name" else "",
                "description": name,
                "priority": 0,
            }
            for name, type_ in columns
        ],
        "rows": rows,
    }


def _age(timestamp: str | None) -> str:
    if not timestamp:
        return "<unknown>"
    created = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    seconds = int((datetime.now(UTC) - created).total_seconds())
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"


# -- waiting and fixtures --------------------------------------------------------------------


async def until(
    probe: Callable[[], Awaitable[T | None]], timeout: float = 30.0, what: str = "condition"
) -> T:
    """Await `probe()` until it returns something truthy; TimeoutError naming `what`."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(delay)  # poll interval, not synchronisation: the probe decides
        delay = min(delay * 2, 0.25)


def optional_apiserver(request: pytest.FixtureRequest) -> Upstream | None:
    """The session's real API server when its binaries are built and its fixture is visible."""
    try:
        from tests.support import apiserver as module
    except ImportError:
        return None
    if not module.apiserver_binaries_present():
        return None
    try:
        server: Upstream = request.getfixturevalue("apiserver")
    except pytest.FixtureLookupError:
        return None
    return server


@pytest.fixture(name="front")
def front_fixture(request: pytest.FixtureRequest) -> Iterator[ClusterFront]:
    """A started front; with the real API server behind it when that can run here."""
    with ClusterFront(optional_apiserver(request)) as started:
        yield started
