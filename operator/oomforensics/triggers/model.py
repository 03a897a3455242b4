"""The data the trigger engine takes and returns: samples, runs, settings, decisions, state.

Everything here is a frozen value. The state of one container run is a plain value too, with a
JSON form made of dicts, lists, strings and numbers, so the operator can keep it in the
custom resource's status (or rebuild it) and carry on after a restart of its own: a restart of
the operator must not re-fire thresholds that already fired, nor forget the growth seen so far.

Time is always passed in as POSIX seconds; nothing here reads a clock.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from itertools import pairwise
from typing import Any, TypeVar

from oomforensics.errors import OomForensicsError


class CaptureReason(StrEnum):
    """Why a snapshot was taken (besides a threshold: `threshold_reason(90)`, "threshold-90").

    The reason ends up in the snapshot's archive key and in Event text, so it is a slug.
    """

    BASELINE = "baseline"  # the first capture of a run: the reference every diff starts from
    PERIODIC = "periodic"  # every `interval` seconds after the last capture
    PREDICTED = "predicted"  # the growth fit says the limit is less than `horizon` s away
    GROWTH = "growth"  # no limit: the working set jumped well above its moving average
    MANUAL = "manual"  # asked for by a person, not a trigger


BASELINE = CaptureReason.BASELINE
PERIODIC = CaptureReason.PERIODIC
PREDICTED = CaptureReason.PREDICTED
GROWTH = CaptureReason.GROWTH
_THRESHOLD_PREFIX = "threshold-"
THRESHOLD_PATTERN = f"{_THRESHOLD_PREFIX}*"  # every threshold reason, as a shell pattern
REASON_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
STATE_VERSION = 2  # 2: the run names its pod's namespace and name

_T = TypeVar("_T")


class InvalidState(OomForensicsError, ValueError):
    """A stored trigger state that cannot be read back (damaged, or from another version)."""


def threshold_reason(threshold: int) -> str:
    """The capture reason for a threshold: 90 -> "threshold-90"."""
    return f"{_THRESHOLD_PREFIX}{threshold}"


def reason_threshold(reason: str | None) -> int | None:
    """The threshold a capture reason names ("threshold-90" -> 90), None for other reasons."""
    if reason is None or not reason.startswith(_THRESHOLD_PREFIX):
        return None
    digits = reason[len(_THRESHOLD_PREFIX) :]
    return int(digits) if digits.isdigit() else None


def check_reason(reason: str) -> str:
    """A reason is a slug ([a-z0-9-]): it ends up in archive keys and Kubernetes event text."""
    if not REASON_PATTERN.match(reason):
        raise ValueError(f"capture reason {reason!r} is not a slug of [a-z0-9-]")
    return reason


@dataclass(frozen=True, slots=True)
class MemorySample:
    """The container's working set (what the kubelet and the OOM killer go by) at a moment."""

    at: float  # POSIX seconds
    working_set: int  # bytes

    def __post_init__(self) -> None:
        if not math.isfinite(self.at):
            raise ValueError(f"sample time must be finite, got {self.at!r}")
        if isinstance(self.working_set, bool) or self.working_set < 0:
            raise ValueError(
                f"working set must be a non-negative byte count, got {self.working_set!r}"
            )


@dataclass(frozen=True, slots=True)
class ContainerRun:
    """One life of one container of one pod: the identity every layer keys a run by.

    A restart starts a new run with fresh evidence and triggers. The pod uid, not its name,
    tells pods apart: a StatefulSet pod recreated under the same name is a new incarnation
    (new uid, restartCount 0 again) with runs of its own. Namespace and name are carried for
    the archive's folders and for people, who know pods by name.
    """

    namespace: str
    pod: str
    pod_uid: str
    container: str
    restart_count: int

    def __post_init__(self) -> None:
        for name in ("namespace", "pod", "pod_uid", "container"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"{name} must be a string, got {getattr(self, name)!r}")
        count = self.restart_count
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"restart_count must be an integer >= 0, got {count!r}")

    @property
    def uid_prefix(self) -> str:
        """The first block of the uid: enough to tell incarnations apart on a screen."""
        return self.pod_uid.split("-", 1)[0][:8]

    @property
    def incarnation(self) -> str:
        """`pod (uid 6f1c2a9e)`: which pod of that name, for people."""
        return f"{self.pod} (uid {self.uid_prefix})"

    def restarted(self, restart_count: int) -> ContainerRun:
        """Another run of the same container of the same pod."""
        return replace(self, restart_count=restart_count)

    def to_json(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "pod": self.pod,
            "podUid": self.pod_uid,
            "container": self.container,
            "restartCount": self.restart_count,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ContainerRun:
        return cls(
            namespace=_typed(data, "namespace", str),
            pod=_typed(data, "pod", str),
            pod_uid=_typed(data, "podUid", str),
            container=_typed(data, "container", str),
            restart_count=_count(data, "restartCount"),
        )


@dataclass(frozen=True, slots=True)
class TriggerSettings:
    """What makes a capture, per container run. Defaults follow the CRD's defaults.

    `average_window` is the time constant of the moving average the growth trigger compares
    against, and also how long a run is watched before growth is judged at all (a Go service
    warming its caches is not a leak).
    """

    interval: float = 600.0  # periodic snapshot every N s after the last capture (0 disables)
    thresholds: tuple[int, ...] = (80, 90, 95)  # % of limit, each fires once per run
    hysteresis: float = 5.0  # a threshold re-arms below (threshold - hysteresis) %
    horizon: float = 120.0  # capture when the projected time to the limit is below (0 disables)
    fit_window: float = 120.0  # seconds of recent samples in the growth fit
    growth_ratio: float = 0.5  # no limit: capture above (1 + ratio) x moving average (0 disables)
    cooldown: float = 30.0  # minimum seconds between two captures (escalating thresholds excepted)
    sample_interval: float = 15.0  # sampling period with plenty of headroom
    min_sample_interval: float = 1.0  # fastest sampling, close to the limit
    baseline: bool = True  # the first sample of a run triggers a "baseline" capture
    average_window: float = 600.0  # moving-average time constant and growth warm-up, seconds

    def __post_init__(self) -> None:
        for name in ("interval", "hysteresis", "horizon", "growth_ratio", "cooldown"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        for name in ("fit_window", "sample_interval", "min_sample_interval", "average_window"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        if self.min_sample_interval > self.sample_interval:
            raise ValueError(
                f"min_sample_interval ({self.min_sample_interval}) must not exceed "
                f"sample_interval ({self.sample_interval})"
            )
        for threshold in self.thresholds:
            if isinstance(threshold, bool) or not isinstance(threshold, int):
                raise ValueError(f"thresholds are whole percentages, got {threshold!r}")
            if not 0 < threshold <= 100:
                raise ValueError(f"thresholds are percentages in 1..100, got {threshold}")
        # Order and duplicates do not matter to the user; the engine wants them sorted.
        object.__setattr__(self, "thresholds", tuple(sorted(set(self.thresholds))))


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do after a sample, and the figures it was decided on (for status and logs)."""

    capture: bool
    reason: str | None  # "baseline" | "periodic" | "threshold-80" | "predicted" | "growth"
    next_sample_in: float  # seconds, within [min_sample_interval, sample_interval]
    percent_of_limit: float | None  # None without a limit
    seconds_to_limit: float | None  # None when not growing, no limit, or too few samples
    growth_per_second: float | None  # bytes/s from the fit; None with too few samples


@dataclass(frozen=True, slots=True)
class TriggerState:
    """Everything the engine remembers about one container run.

    Beyond the fields every caller cares about (last capture, fired thresholds, samples,
    capture count) it keeps what the rules need to hold across samples:

    - pending_thresholds: the armed thresholds the latest decision's capture covers; a
      successful capture (record_capture) marks them fired, a failed one leaves them armed.
    - last_threshold: the threshold of the latest threshold capture, kept after re-arming, so
      only a *higher* threshold may bypass the cooldown (no flood from one flapping threshold).
    - predicted_fired: a "predicted" capture was taken for the current approach to the limit.
    - average: the time-weighted moving average of the working set (growth trigger).
    - growth_level: the working set at the latest growth capture, while that surge lasts.
    - first_sample_at: when the run was first sampled (periodic without a baseline, warm-up).
    """

    run: ContainerRun
    last_capture_at: float | None = None
    last_capture_reason: str | None = None
    fired_thresholds: frozenset[int] = frozenset()
    samples: tuple[MemorySample, ...] = ()  # oldest first, bounded to what the fit needs
    captures: int = 0
    first_sample_at: float | None = None
    pending_thresholds: frozenset[int] = frozenset()
    last_threshold: int | None = None
    predicted_fired: bool = False
    average: float | None = None
    growth_level: int | None = None

    def to_json(self) -> dict[str, Any]:
        """A plain-JSON form (dicts, lists, str, numbers, bool, null) for the CR status."""
        return {
            "version": STATE_VERSION,
            "run": self.run.to_json(),
            "lastCaptureAt": self.last_capture_at,
            "lastCaptureReason": self.last_capture_reason,
            "firedThresholds": sorted(self.fired_thresholds),
            "pendingThresholds": sorted(self.pending_thresholds),
            "lastThreshold": self.last_threshold,
            "predictedFired": self.predicted_fired,
            "average": self.average,
            "growthLevel": self.growth_level,
            "firstSampleAt": self.first_sample_at,
            # [time, bytes] pairs: the compact form, the status lives in etcd
            "samples": [[s.at, s.working_set] for s in self.samples],
            "captures": self.captures,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TriggerState:
        """Read back what to_json wrote; InvalidState says what is wrong with anything else."""
        try:
            if not isinstance(data, Mapping):
                raise InvalidState(f"expected an object, got {type(data).__name__}")
            version = data.get("version")
            if version != STATE_VERSION:
                raise InvalidState(
                    f"unsupported version {version!r} (this build reads {STATE_VERSION})"
                )
            run_data = data.get("run")
            if not isinstance(run_data, Mapping):
                raise InvalidState("'run' must be an object")
            raw_samples = _typed(data, "samples", list)
            samples = []
            for pair in raw_samples:
                if not (isinstance(pair, list | tuple) and len(pair) == 2):
                    raise InvalidState(f"a sample must be a [time, bytes] pair, got {pair!r}")
                at, working_set = pair
                samples.append(
                    MemorySample(
                        at=_number(at, "sample time"), working_set=_byte_count(working_set)
                    )
                )
            if any(b.at <= a.at for a, b in pairwise(samples)):
                raise InvalidState("samples must be in increasing time order")
            last_reason = _optional(data, "lastCaptureReason", str)
            if last_reason is not None:
                check_reason(last_reason)
            return cls(
                run=ContainerRun.from_json(run_data),
                last_capture_at=_optional_number(data, "lastCaptureAt"),
                last_capture_reason=last_reason,
                fired_thresholds=_thresholds(data, "firedThresholds"),
                samples=tuple(samples),
                captures=_count(data, "captures"),
                first_sample_at=_optional_number(data, "firstSampleAt"),
                pending_thresholds=_thresholds(data, "pendingThresholds"),
                last_threshold=_optional_count(data, "lastThreshold"),
                predicted_fired=_typed(data, "predictedFired", bool),
                average=_optional_number(data, "average"),
                growth_level=_optional_count(data, "growthLevel"),
            )
        except InvalidState as exc:
            raise InvalidState(f"trigger state: {exc}") from None
        except ValueError as exc:  # from the value types' own checks
            raise InvalidState(f"trigger state: {exc}") from None


# Readers for the JSON form. They raise InvalidState with the field name in the message.


def _typed(data: Mapping[str, Any], key: str, kind: type[_T]) -> _T:
    value = data.get(key)
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise InvalidState(f"'{key}' must be {kind.__name__}, got {value!r}")
    return value


def _optional(data: Mapping[str, Any], key: str, kind: type[_T]) -> _T | None:
    return None if data.get(key) is None else _typed(data, key, kind)


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidState(f"{what} must be a finite number, got {value!r}")
    return float(value)


def _optional_number(data: Mapping[str, Any], key: str) -> float | None:
    value = data.get(key)
    return None if value is None else _number(value, f"'{key}'")


def _byte_count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidState(f"a byte count must be an integer >= 0, got {value!r}")
    return value


def _count(data: Mapping[str, Any], key: str) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidState(f"'{key}' must be an integer >= 0, got {value!r}")
    return value


def _optional_count(data: Mapping[str, Any], key: str) -> int | None:
    return None if data.get(key) is None else _count(data, key)


def _thresholds(data: Mapping[str, Any], key: str) -> frozenset[int]:
    values = _typed(data, key, list)
    if not all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 100 for v in values):
        raise InvalidState(f"'{key}' must list percentages in 1..100, got {values!r}")
    return frozenset(values)
