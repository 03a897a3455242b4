"""Pod JSON as the API server returns it (the fields the triggers read, and their neighbours)."""

from __future__ import annotations

from typing import Any

UID = "6f1c2a8e-0b7d-4c1e-9f3a-5d2e8b7c4a10"
OTHER_UID = "b2e4d6f8-1a3c-4e5f-8a7b-9c0d1e2f3a4b"
IMAGE = "registry.example.com/shop/checkout:1.14.2"


def terminated(
    reason: str = "OOMKilled",
    exit_code: int = 137,
    started_at: str = "2025-03-04T09:00:00Z",
    finished_at: str = "2025-03-04T10:12:41Z",
    container_id: str = "containerd://4f9a0c1d2e3b",
    signal: int | None = None,
) -> dict[str, Any]:
    state: dict[str, Any] = {
        "containerID": container_id,
        "exitCode": exit_code,
        "reason": reason,
        "startedAt": started_at,
        "finishedAt": finished_at,
    }
    if signal is not None:
        state["signal"] = signal
    return state


def container_status(
    name: str = "app",
    restart_count: int = 0,
    *,
    running_since: str | None = "2025-03-04T09:00:00Z",
    waiting: str | None = None,
    terminated_now: dict[str, Any] | None = None,
    last_terminated: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One entry of status.containerStatuses: the current state is terminated, waiting or
    running (in that order of precedence), lastState holds the previous run's end."""
    if terminated_now is not None:
        state: dict[str, Any] = {"terminated": terminated_now}
    elif waiting is not None:
        state = {
            "waiting": {"reason": waiting, "message": "back-off 10s restarting failed container"}
        }
    else:
        state = {"running": {"startedAt": running_since}}
    return {
        "name": name,
        "image": IMAGE,
        "imageID": f"{IMAGE}@sha256:9b1d3f5a7c",
        "containerID": f"containerd://{name}-{restart_count}",
        "restartCount": restart_count,
        "ready": "running" in state,
        "started": "running" in state,
        "state": state,
        "lastState": {} if last_terminated is None else {"terminated": last_terminated},
    }


def pod(
    *statuses: dict[str, Any], uid: str = UID, name: str = "checkout-7d9f8b6c5d-x2x9q"
) -> dict[str, Any]:
    containers = [s["name"] for s in statuses] or ["app"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "shop",
            "uid": uid,
            "resourceVersion": "48213",
            "labels": {"app": "checkout", "pod-template-hash": "7d9f8b6c5d"},
        },
        "spec": {
            "containers": [
                {
                    "name": c,
                    "image": IMAGE,
                    "resources": {"limits": {"memory": "512Mi"}, "requests": {"memory": "256Mi"}},
                }
                for c in containers
            ],
            "restartPolicy": "Always",
        },
        "status": {
            "phase": "Running",
            "podIP": "10.244.1.17",
            "startTime": "2025-03-04T08:59:58Z",
            "containerStatuses": list(statuses),
        },
    }
