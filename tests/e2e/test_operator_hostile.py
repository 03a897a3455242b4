"""A hostile endpoint beside a healthy one: a gzip bomb for the heap profile, a slowloris
for its text form, an HTML login page for the goroutines. The operator reports it as a
condition, in bounded memory, without an event storm, and keeps serving the other
investigation; deleting the hostile pod mid-capture ends its work cleanly.

On the real cluster: the hostile server is a pod of its own (the Go fixture
tests/fixtures/go/hostile as an image, on hostNetwork), so deleting it really cuts the
slowloris the operator is reading. The operator runs as a process (`oomforensics run`, the
chart's ServiceAccount and RBAC), so its memory is its own: the bound is on the growth of its
peak RSS during the hostile phase (VmHWM, reset through /proc/PID/clear_refs once the healthy
investigation is served), which nothing else in the test session can add to. (Measured in
the test process, as on the front, the operator shared its heap with whatever tests ran
before: after the classic-leak test the peak grew by ~320 MB.)"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.operator_harness import (
    KubeOperator,
    apply_crd,
    condition,
    kube_events_about,
    poll,
)
from tests.support.kube.images import fixture_image
from tests.support.kube.pods import JSON, NODE_IP, free_port, host_pod, leaky_pod

pytestmark = [pytest.mark.gotool, pytest.mark.timeout(480)]
OPERATOR = Path(sys.executable).with_name("oomforensics")
# The bomb inflates to 256 MiB: an operator that inflated it would grow by that much at least.
MEMORY_BOUND = 256 * 2**20


def investigation(name: str, namespace: str, app: str, **spec: Any) -> JSON:
    return {
        "apiVersion": "oomforensics.io/v1alpha1",
        "kind": "MemoryInvestigation",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "selector": {"matchLabels": {"app": app}},
            "endpoint": {"portName": "http"},
            "sampling": {"interval": "1s"},
            **spec,
        },
    }


@dataclass(frozen=True)
class OperatorProcess:
    process: asyncio.subprocess.Process
    exited: asyncio.Task[None]  # done when the process is: `poll` stops waiting then

    def memory(self, field: str) -> int:
        """A memory figure of the operator's process (VmRSS, VmHWM), in bytes."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024  # kB
        raise AssertionError(f"no {field} in /proc/{self.process.pid}/status")

    def reset_peak(self) -> int:
        """Reset the process's peak RSS to its RSS now (proc(5): clear_refs "5"); return it."""
        Path(f"/proc/{self.process.pid}/clear_refs").write_text("5")
        return self.memory("VmRSS")


@contextlib.asynccontextmanager
async def operator_process(namespace: str, log: Path) -> AsyncIterator[OperatorProcess]:
    """`oomforensics run -n NAMESPACE` in the test's environment, stopped on exit (SIGTERM,
    then SIGKILL); its log's end is printed (pytest shows it when the test fails)."""
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            str(OPERATOR), "run", "-n", namespace, stdout=out, stderr=out, env=dict(os.environ)
        )

    async def waited() -> None:
        await process.wait()

    exited = asyncio.create_task(waited())
    try:
        yield OperatorProcess(process, exited)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.shield(exited), 30)
            except TimeoutError:
                process.kill()
        await exited
        tail = log.read_text(errors="replace").splitlines()[-40:]
        print(f"the operator's log ({log}) ends:", *tail, sep="\n")


async def test_a_hostile_endpoint_is_a_condition_and_the_others_are_still_served(
    kube_operator: KubeOperator,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    kube, namespace, mi = kube_operator.kube, kube_operator.namespace, kube_operator.mi
    monkeypatch.setenv("OOMF_CAPTURE_TIMEOUT", "5")
    port = free_port()
    hostile = host_pod(
        "mallory",
        namespace,
        fixture_image(kube, "hostile"),
        ["-listen", f"{NODE_IP}:{port}"],
        port=port,
        labels={"app": "mallory"},
    )
    steady = leaky_pod(
        "alice",
        namespace,
        fixture_image(kube, "leaky"),
        "steady",
        labels={"app": "alice"},
        memory_limit="256Mi",
    )
    async with (
        kube.async_http() as http,
        httpx.AsyncClient(base_url=f"http://{NODE_IP}:{port}", timeout=5) as mallory_http,
    ):
        await apply_crd(http)
        for body in (hostile, steady):
            created = await http.post(kube_operator.pods, json=body)
            assert created.status_code == 201, created.text

        async def requests() -> list[str] | None:
            """The request targets the hostile server received (None until it listens)."""
            try:
                answer = await mallory_http.get("/hostile/requests")
            except httpx.TransportError:
                return None
            return answer.text.splitlines() if answer.status_code == 200 else None

        async def listening() -> bool:
            return await requests() is not None

        async def heap_requests() -> int:
            return (await requests() or []).count("/debug/pprof/heap")

        async def get(name: str) -> dict[str, Any]:
            answer: dict[str, Any] = (await http.get(f"{mi}/{name}")).json()
            return answer

        def snapshots(body: dict[str, Any]) -> int:
            return int(((body.get("status") or {}).get("snapshots") or {}).get("count") or 0)

        async def served(at_least: int) -> dict[str, Any] | None:
            body = await get("alice")
            ready = condition(body, "Ready").get("status") == "True"
            return body if ready and snapshots(body) >= at_least else None

        await poll(listening, 120, "the hostile pod to listen")
        # alice takes a periodic snapshot every 30 s: serving her goes on through the attack
        alice = investigation("alice", namespace, "alice", snapshots={"interval": "30s"})
        created = await http.post(mi, json=alice)
        assert created.status_code == 201, created.text
        async with operator_process(namespace, tmp_path / "operator.log") as operator:
            healthy = await poll(
                lambda: served(1), 120, "the healthy investigation's snapshot", operator.exited
            )
            # Warmed up (imports, a capture, an upload): from here the growth is the attack's.
            rss_before = operator.reset_peak()
            created = await http.post(mi, json=investigation("mallory", namespace, "mallory"))
            assert created.status_code == 201, created.text

            async def failing() -> dict[str, Any] | None:
                body = await get("mallory")
                failed = condition(body, "Capturing").get("reason") == "CaptureFailed"
                return body if failed else None

            failed = await poll(
                failing, 120, "CaptureFailed for the hostile endpoint", operator.exited
            )
            # two more attempts that fail the same way
            attempts = await heap_requests()

            async def retried() -> bool:
                return await heap_requests() >= attempts + 2

            await poll(retried, 120, "two more capture attempts", operator.exited)
            told = [
                e["message"]
                for e in await kube_events_about(http, namespace, "MemoryInvestigation", "mallory")
            ]

            # The hostile pod goes away mid-capture: while the operator is reading the
            # slowloris, the pod is deleted (the kubelet stops the server under it).
            async def reading_the_slowloris() -> bool:
                with contextlib.suppress(httpx.TransportError):
                    answer = await mallory_http.get("/hostile/trickling")
                    return answer.status_code == 200 and int(answer.text) > 0
                return False

            await poll(reading_the_slowloris, 120, "a capture in flight", operator.exited)
            bombs = await heap_requests()
            deleted = await http.delete(f"{kube_operator.pods}/mallory")
            assert deleted.status_code == 200, deleted.text

            async def gone() -> dict[str, Any] | None:
                body = await get("mallory")
                return body if (body.get("status") or {}).get("targetCount") == 0 else None

            ended = await poll(gone, 120, "the deleted pod to leave the targets", operator.exited)
            still = await poll(
                lambda: served(snapshots(healthy) + 1),
                120,
                "a snapshot of the healthy investigation after the attack",
                operator.exited,
            )
            assert not operator.exited.done(), "the operator exited"
            grown = operator.memory("VmHWM") - rss_before
            kept = operator.memory("VmRSS") - rss_before

    message = condition(failed, "Capturing")["message"]
    assert "mallory" in message
    assert "heap.pb.gz" in message  # the bomb is named, by the file it would have been
    # ... and each attack by what stopped it: the size cap, the deadline, the HTML check
    for file, stopped_by in (
        ("heap.pb.gz", "byte limit"),
        ("heap.txt", "read_timeout"),
        ("goroutine.txt", "HTML page"),
    ):
        assert f"{file}: " in message and stopped_by in message, (file, message)
    assert condition(healthy, "Capturing")["reason"] == "Sampling"
    assert condition(ended, "Capturing")["reason"] == "NoMatchingPods"
    assert condition(still, "Ready")["status"] == "True"
    print(
        f"the operator's peak RSS grew by {grown / 2**20:.1f} MiB during the hostile phase "
        f"({bombs} gzip bombs served; its RSS {kept / 2**20:+.1f} MiB at the end of it)"
    )
    assert grown < MEMORY_BOUND, f"the operator's peak RSS grew by {grown} bytes"
    # The same failure, attempt after attempt, is one Event (no storm of them).
    assert sum("capture failed" in m for m in told) == 1, told
    # As the chart's ServiceAccount, nothing was refused.
    assert not kube_operator.forbidden(), kube_operator.forbidden()
