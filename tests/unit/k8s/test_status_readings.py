"""New memory readings alone are written to the status once a minute, anything else at once:
100 investigations re-patched their status every 15 s only because working sets moved."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from oomforensics.k8s.conditions import Observation
from oomforensics.k8s.investigation import InvestigationRunner
from oomforensics.k8s.spec import parse_spec
from oomforensics.k8s.targets import select_targets

SPEC = parse_spec({"selector": {"matchLabels": {"app": "checkout"}}})
MiB = 2**20
POD = {
    "metadata": {"name": "checkout", "uid": "uid-checkout", "labels": {"app": "checkout"}},
    "spec": {
        "containers": [
            {
                "name": "app",
                "ports": [{"name": "http", "containerPort": 6060}],
                "resources": {"limits": {"memory": "256Mi"}},
            }
        ]
    },
    "status": {
        "podIP": "10.0.0.7",
        "containerStatuses": [{"name": "app", "restartCount": 0, "state": {"running": {}}}],
    },
}


class Api:
    def __init__(self) -> None:
        self.patches: list[dict[str, Any]] = []

    async def patch_status(self, namespace: str, name: str, patch: Any) -> dict[str, Any]:
        self.patches.append(patch)
        return {}


def observation(snapshots: int) -> Observation:
    return Observation(
        storage_error=None,
        storage_used=True,
        targets=1,
        target_problems=(),
        capture_errors=(),
        no_limit=(),
        snapshots=snapshots,
        summary=None,
        summary_error=None,
        oom_kills=(),
    )


async def test_working_sets_alone_wait_a_minute_other_news_goes_out_at_once() -> None:
    api = Api()
    runner = InvestigationRunner(cast(Any, SimpleNamespace(api=api)), "shop", "mi", "uid-mi")
    targets = select_targets([POD], SPEC)

    async def publish(working_set: int, snapshots: int, later: float = 15) -> None:
        runner._written_at -= later  # the last write is that much older
        runner._last_working_set[targets[0].run] = working_set
        await runner._publish(1, runner._written or {}, observation(snapshots), targets)

    await publish(100 * MiB, 1)
    assert len(api.patches) == 1  # the first status
    await publish(101 * MiB, 1)
    assert len(api.patches) == 1  # only the reading moved: it waits
    await publish(102 * MiB, 2)
    assert len(api.patches) == 2  # a new snapshot: written at once, with the reading
    assert api.patches[-1]["targets"][0]["workingSetBytes"] == 102 * MiB
    await publish(103 * MiB, 2, later=30)
    assert len(api.patches) == 2
    await publish(104 * MiB, 2, later=31)
    assert len(api.patches) == 3  # a minute after the last write: the reading goes out
    assert api.patches[-1]["targets"][0]["workingSetBytes"] == 104 * MiB
