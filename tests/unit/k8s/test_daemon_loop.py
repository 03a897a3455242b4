"""The daemon's loop: a wake-up that arrives during a pass (a container started while the pass
was talking to the API) is not lost: the next pass runs at once, not a sampling interval on."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from oomforensics.k8s.handlers import run_investigation


class Stopped:
    """kopf's DaemonStopped, as the loop uses it: falsy until set, and waitable."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    def __bool__(self) -> bool:
        return self.event.is_set()

    async def wait(self, timeout: float | None = None) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.event.wait(), timeout)
        return self.event.is_set()


class Runner:
    namespace, name = "shop", "mi"

    def __init__(self, stopped: Stopped) -> None:
        self.wake = asyncio.Event()
        self.stopped = stopped
        self.passes = 0

    async def step(self, body: Any, pods: Any) -> float:
        self.passes += 1
        if self.passes == 1:
            self.wake.set()  # a pod event during the pass
        else:
            self.stopped.event.set()
        return 3600.0  # nothing due for an hour


async def test_a_wake_up_during_a_pass_runs_the_next_pass_at_once() -> None:
    stopped = Stopped()
    runner = Runner(stopped)
    loop = run_investigation(runner, dict, list, stopped)
    await asyncio.wait_for(loop, timeout=30)  # bounds a hang; an hour's wait would be the bug
    assert runner.passes == 2
