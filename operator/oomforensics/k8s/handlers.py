"""Every kopf decorator of the operator, in one place; the bodies delegate to the services.

- startup: settings from the environment, the API client, shared archives and spools (memo),
  and the Prometheus page /metrics (metrics.py);
- an index of pods by namespace, so investigations find their targets without API calls;
- one daemon per MemoryInvestigation, running its `InvestigationRunner` until the CR is
  deleted (the archive stays) or the operator stops; it re-reads the spec on every pass;
- a pod event handler that hands every pod change to the runners of its namespace, which
  spot OOM kills (`restartCount` up, `lastState.terminated.reason: OOMKilled`).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol

import kopf

from oomforensics.k8s import metrics
from oomforensics.k8s.api import GROUP, JSON, PLURAL, VERSION, KubeApi, client_for
from oomforensics.k8s.investigation import InvestigationRunner
from oomforensics.k8s.services import OperatorServices
from oomforensics.k8s.settings import InvalidSettings, OperatorSettings
from oomforensics.k8s.targets import essential_pod
from oomforensics.triggers.oom import parse_time

FINALIZER = "oomforensics.io/operator"
PODS_INDEX = "oomf_pods"
log = logging.getLogger(__name__)


def plain(body: Mapping[str, Any]) -> JSON:
    """A detached copy of a kopf body (they are live views)."""
    return copy.deepcopy(dict(body))


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In the cluster, the service account; outside, $KUBECONFIG (read now, not at import)."""
    return credentials(kwargs["settings"])


def credentials(settings: kopf.OperatorSettings) -> kopf.ConnectionInfo | None:
    return kopf.login_with_service_account(settings=settings) or kopf.login_with_kubeconfig(
        settings=settings
    )


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    try:
        config = OperatorSettings.from_env()
    except InvalidSettings as exc:
        raise kopf.PermanentError(str(exc)) from None
    await configure(settings, memo, config)
    memo.metrics = await serve_metrics(memo.services, config)


async def configure(
    settings: kopf.OperatorSettings, memo: kopf.Memo, config: OperatorSettings
) -> None:
    settings.persistence.finalizer = FINALIZER
    settings.watching.server_timeout = config.watch_timeout
    # kopf's worker limit stays unlimited: with a limit below the number of pods, the pod
    # index never fills and the investigations' daemons wait on it forever (bench_scale).
    settings.posting.level = logging.WARNING  # our own Events tell the story
    info = credentials(settings)
    if info is None:
        raise kopf.PermanentError("no Kubernetes credentials: no service account, no kubeconfig")
    memo.services = OperatorServices(KubeApi(client_for(info)), config)
    memo.runners = {}


async def serve_metrics(
    services: OperatorServices, config: OperatorSettings
) -> metrics.MetricsServer | None:
    """/metrics on OOMF_METRICS_PORT (none for 0). A port that cannot be bound is logged, not
    fatal: the operator's work is the evidence, and a scrape target that is down alerts too."""
    metrics.watch_spools(lambda: {a.url: services.spool(a) for a in services.archives.values()})
    if not config.metrics_port:
        return None
    try:
        server = await metrics.serve(config.metrics_address, config.metrics_port)
    except OSError as exc:
        log.error("no /metrics: cannot listen on port %d: %s", config.metrics_port, exc)
        return None
    log.info("serving /metrics on port %d", server.port)
    return server


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    server: metrics.MetricsServer | None = memo.get("metrics")
    if server is not None:
        await server.aclose()
    metrics.watch_spools(dict)
    services: OperatorServices | None = memo.get("services")
    if services is not None:
        await services.aclose()
        await services.api.aclose()


@kopf.index("pods", id=PODS_INDEX)
def pods_by_namespace(namespace: str | None, body: kopf.Body, **_: Any) -> dict[str, JSON]:
    return {namespace or "": essential_pod(body)}


@kopf.on.event("pods")
async def pod_event(namespace: str | None, body: kopf.Body, memo: Any, type: str, **_: Any) -> None:
    # async: it runs in the loop with the runners (sync handlers run in a thread pool)
    if type == "DELETED" or not namespace:
        return
    pod_changed(memo.get("runners") or {}, namespace, essential_pod(body))


@kopf.daemon(GROUP, VERSION, PLURAL, id="investigate", cancellation_timeout=30.0)
async def investigate(
    namespace: str | None,
    name: str,
    uid: str,
    body: kopf.Body,
    memo: Any,
    stopped: kopf.DaemonStopped,
    **kwargs: Any,
) -> None:
    pods: kopf.Index[str, JSON] = kwargs[PODS_INDEX]  # the index, by its id
    if not namespace:
        return
    created = parse_time(str(body.get("metadata", {}).get("creationTimestamp") or ""))
    delay = memo.services.first_pass_delay()
    if delay > 0:
        await stopped.wait(delay)
        if stopped:
            return
    runner = InvestigationRunner(
        memo.services, namespace, name, uid, created, default_notify=memo.services.settings.notify
    )
    memo.runners[(namespace, name)] = runner
    try:
        await run_investigation(
            runner,
            lambda: plain(body),
            lambda: list(pods.get(namespace, [])),
            stopped,
        )
    finally:
        await runner.aclose()
        if memo.runners.get((namespace, name)) is runner:
            del memo.runners[(namespace, name)]
            metrics.forget_investigation(namespace, name)


# --- plain functions the decorators call (and tests may call without kopf) ----------------


def pod_changed(
    runners: Mapping[tuple[str, str], InvestigationRunner], namespace: str, pod: JSON
) -> None:
    for (runner_namespace, _), runner in list(runners.items()):
        if runner_namespace == namespace and runner.spec is not None:
            runner.pod_changed(pod, runner.spec)


class Passes(Protocol):
    """What the daemon's loop drives: an InvestigationRunner (a stand-in in tests)."""

    namespace: str
    name: str

    @property
    def wake(self) -> asyncio.Event: ...

    async def step(self, body: JSON, pods: list[JSON]) -> float: ...


class Stopped(Protocol):
    """kopf's DaemonStopped, as the loop uses it: falsy until set, and waitable."""

    def __bool__(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> Awaitable[object]: ...


async def run_investigation(
    runner: Passes,
    body: Callable[[], JSON],
    pods: Callable[[], Iterable[JSON]],
    stopped: Stopped,
) -> None:
    """Pass after pass until stopped; a failing pass is logged and retried, never fatal."""
    while not stopped:
        runner.wake.clear()  # before the pass: a wake-up during it means another pass at once
        try:
            delay = await runner.step(body(), list(pods()))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("investigation %s/%s: pass failed", runner.namespace, runner.name)
            delay = 15.0
        waiters = {
            asyncio.ensure_future(runner.wake.wait()),
            asyncio.ensure_future(_flag(stopped, delay)),
        }
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            for waiter in waiters:
                with contextlib.suppress(asyncio.CancelledError):
                    await waiter


async def _flag(stopped: Stopped, timeout: float) -> None:
    await stopped.wait(timeout)
