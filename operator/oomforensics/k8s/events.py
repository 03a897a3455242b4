"""Kubernetes Events about an investigation (or a pod it watches): what a person reads in
`kubectl describe`. Posting one never fails a pass: the status tells the story too."""

from __future__ import annotations

import logging
from enum import StrEnum

from oomforensics.k8s.api import ApiFailure, ObjectRef
from oomforensics.k8s.services import Services

log = logging.getLogger(__name__)


class EventReason(StrEnum):
    """The reasons of the Events the operator posts (CamelCase, as Kubernetes spells them)."""

    SNAPSHOT_CAPTURED = "SnapshotCaptured"
    THRESHOLD_CROSSED = "ThresholdCrossed"
    CAPTURE_FAILED = "CaptureFailed"
    STORAGE_UNAVAILABLE = "StorageUnavailable"
    OOM_KILLED = "OOMKilled"
    CONTAINER_ENDED = "ContainerEnded"  # an end told apart from an OOM kill (kills.py)
    LEAK_SUSPECTED = "LeakSuspected"
    NOTIFICATION_FAILED = "NotificationFailed"
    NOTIFICATIONS_DELIVERED = "NotificationsDelivered"


class EventType(StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"


class Events:
    """Posts Events about one MemoryInvestigation (`about` another object when given)."""

    def __init__(self, services: Services, investigation: ObjectRef) -> None:
        self._services = services
        self._investigation = investigation

    async def post(
        self,
        reason: EventReason,
        message: str,
        type_: EventType = EventType.NORMAL,
        about: ObjectRef | None = None,
    ) -> None:
        try:
            await self._services.post_event(
                about or self._investigation, reason.value, message, type_.value
            )
        except ApiFailure as exc:
            log.warning("cannot post event %s: %s", reason.value, exc)
