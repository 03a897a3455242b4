"""Where a snapshot lives in the archive: the key layout, pure (no I/O).

    {prefix}/{namespace}/{investigation}/{pod}/{pod uid}/{container}/run-{restartCount}/
        {timestamp}-{reason}/

The pod uid keeps pod incarnations apart: a StatefulSet pod recreated under the same name
starts again at restartCount 0 and must not find the old pod's runs. The timestamp is UTC
with milliseconds (``20261126T031200.123Z``), so a plain lexical sort of the keys of one
container run is also the order in time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from oomforensics.errors import OomForensicsError
from oomforensics.triggers.model import ContainerRun

TIMESTAMP_FORMAT = "%Y%m%dT%H%M%S"
_TIMESTAMP = re.compile(r"\d{8}T\d{6}\.\d{3}Z")
_TIMESTAMP_LEN = len("20261126T031200.123Z")
REASON = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
MAX_REASON_LENGTH = 63
# Pre-OOM is a verdict reached after the container died (its last snapshot before the kill),
# not a reason to capture: keep the capture reason and mark the key as pre-OOM later.
RESERVED_REASONS = frozenset({"pre-oom"})
_RUN = re.compile(r"run-(0|[1-9]\d*)")
SEGMENTS = 7  # namespace, investigation, pod, pod uid, container, run-N, timestamp-reason


class InvalidSnapshotKey(OomForensicsError, ValueError):
    """A snapshot key or archive path that does not follow the archive layout."""


def check_segment(value: object, what: str) -> str:
    """One path segment: a non-empty string without `/`, not `.` or `..`, no control chars."""
    if not isinstance(value, str):
        raise InvalidSnapshotKey(f"{what} must be a string, got {type(value).__name__}")
    if not value:
        raise InvalidSnapshotKey(f"{what} must not be empty")
    if "/" in value or "\\" in value:
        raise InvalidSnapshotKey(f"{what} {value!r} must not contain '/' or '\\'")
    if value in {".", ".."}:
        raise InvalidSnapshotKey(f"{what} {value!r} is not allowed as a path segment")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise InvalidSnapshotKey(f"{what} {value!r} must not contain control characters")
    return value


def check_reason(value: object) -> str:
    if not isinstance(value, str) or not REASON.fullmatch(value):
        raise InvalidSnapshotKey(
            f"reason {value!r} must be a short slug of [a-z0-9] words joined by '-' "
            "(e.g. baseline, periodic, threshold-80, predicted, growth, manual)"
        )
    if len(value) > MAX_REASON_LENGTH:
        raise InvalidSnapshotKey(f"reason {value!r} is longer than {MAX_REASON_LENGTH} characters")
    if value in RESERVED_REASONS:
        raise InvalidSnapshotKey(
            f"reason {value!r} is reserved: pre-OOM is decided after the container dies; "
            "capture with the trigger's reason and protect the key instead"
        )
    return value


def normalize_prefix(prefix: str) -> str:
    """`a/b/` or `/a/b` -> `a/b`; every segment checked; `` stays ``."""
    stripped = prefix.strip("/")
    if not stripped:
        return ""
    for segment in stripped.split("/"):
        check_segment(segment, f"prefix segment of {prefix!r}")
    return stripped


def format_timestamp(moment: datetime) -> str:
    """`20261126T031200.123Z`: UTC, milliseconds, sortable."""
    utc = to_utc_millis(moment)
    return f"{utc.strftime(TIMESTAMP_FORMAT)}.{utc.microsecond // 1000:03d}Z"


def parse_timestamp(text: str) -> datetime:
    if not _TIMESTAMP.fullmatch(text):
        raise InvalidSnapshotKey(
            f"timestamp {text!r} must look like 20261126T031200.123Z (UTC, milliseconds)"
        )
    try:
        moment = datetime.strptime(text[:15], TIMESTAMP_FORMAT).replace(tzinfo=UTC)
    except ValueError as exc:
        raise InvalidSnapshotKey(f"timestamp {text!r} is not a valid date: {exc}") from exc
    return moment.replace(microsecond=int(text[16:19]) * 1000)


def to_utc_millis(moment: datetime) -> datetime:
    """The instant in UTC, truncated to the millisecond the key can hold."""
    if not isinstance(moment, datetime):
        raise InvalidSnapshotKey(f"captured_at must be a datetime, got {type(moment).__name__}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidSnapshotKey(f"captured_at {moment.isoformat()} must be timezone-aware")
    utc = moment.astimezone(UTC)
    return utc.replace(microsecond=utc.microsecond // 1000 * 1000)


def run_path(investigation: str, run: ContainerRun, prefix: str = "") -> str:
    """The folder of one container run of an investigation (its snapshots' parent), with `/`."""
    for value, what in (
        (run.namespace, "namespace"),
        (investigation, "investigation"),
        (run.pod, "pod"),
        (run.pod_uid, "pod uid"),
        (run.container, "container"),
    ):
        check_segment(value, what)
    root = normalize_prefix(prefix)
    parts = [
        run.namespace,
        investigation,
        run.pod,
        run.pod_uid,
        run.container,
        f"run-{run.restart_count}",
    ]
    return "/".join([root, *parts] if root else parts) + "/"


@dataclass(frozen=True, slots=True)
class SnapshotKey:
    """The identity of one snapshot: an investigation's capture of a container run at a time.

    `path()` is its folder in the archive. `captured_at` is normalized to UTC and truncated to
    milliseconds, so a key survives a round trip through its path unchanged.
    """

    investigation: str
    container_run: ContainerRun
    captured_at: datetime
    reason: str

    def __post_init__(self) -> None:
        if not isinstance(self.container_run, ContainerRun):
            raise InvalidSnapshotKey(
                f"container_run must be a ContainerRun, got {type(self.container_run).__name__}"
            )
        check_segment(self.investigation, "investigation")
        run_path(self.investigation, self.container_run)  # checks every segment
        check_reason(self.reason)
        object.__setattr__(self, "captured_at", to_utc_millis(self.captured_at))

    @property
    def namespace(self) -> str:
        return self.container_run.namespace

    @property
    def pod(self) -> str:
        return self.container_run.pod

    @property
    def pod_uid(self) -> str:
        return self.container_run.pod_uid

    @property
    def container(self) -> str:
        return self.container_run.container

    @property
    def run(self) -> int:
        """The container's restartCount while it ran: the `run-N` of the folder."""
        return self.container_run.restart_count

    @property
    def timestamp(self) -> str:
        return format_timestamp(self.captured_at)

    @property
    def name(self) -> str:
        """The last path segment: `{timestamp}-{reason}`."""
        return f"{self.timestamp}-{self.reason}"

    def run_path(self, prefix: str = "") -> str:
        """The folder of the snapshot's container run, ending with `/`."""
        return run_path(self.investigation, self.container_run, prefix)

    def path(self, prefix: str = "") -> str:
        """The snapshot's folder, ending with `/`."""
        return f"{self.run_path(prefix)}{self.name}/"

    def sort_key(self) -> tuple[datetime, str]:
        """Time first; the path breaks ties so the order is total and stable."""
        return (self.captured_at, self.path())

    @classmethod
    def parse(cls, path: str, prefix: str = "") -> SnapshotKey:
        """The key of a snapshot folder (with or without the trailing `/`)."""
        root = normalize_prefix(prefix)
        rest = path.strip("/")
        if root:
            if rest != root and not rest.startswith(root + "/"):
                raise InvalidSnapshotKey(f"path {path!r} is not under prefix {root!r}")
            rest = rest[len(root) :].lstrip("/")
        parts = rest.split("/") if rest else []
        if len(parts) != SEGMENTS:
            raise InvalidSnapshotKey(
                f"path {path!r} must be {{namespace}}/{{investigation}}/{{pod}}/{{pod uid}}/"
                f"{{container}}/run-{{restartCount}}/{{timestamp}}-{{reason}}/ below the prefix, "
                f"got {len(parts)} segment(s)"
            )
        namespace, investigation, pod, uid, container, run_segment, name = parts
        restart_count = parse_run_segment(run_segment, path)
        if len(name) < _TIMESTAMP_LEN + 2 or name[_TIMESTAMP_LEN] != "-":
            raise InvalidSnapshotKey(
                f"segment {name!r} of {path!r} must be <timestamp>-<reason>, "
                "e.g. 20261126T031200.123Z-periodic"
            )
        return cls(
            investigation=investigation,
            container_run=ContainerRun(namespace, pod, uid, container, restart_count),
            captured_at=parse_timestamp(name[:_TIMESTAMP_LEN]),
            reason=check_reason(name[_TIMESTAMP_LEN + 1 :]),
        )


@dataclass(frozen=True, slots=True)
class Filter:
    """Which snapshots a listing wants, segment by segment of the layout (None: any)."""

    namespace: str | None = None
    investigation: str | None = None
    pod: str | None = None
    pod_uid: str | None = None
    container: str | None = None
    run: int | None = None

    def segments(self) -> list[tuple[str | None, str]]:
        """The folder segments the filters fix, in layout order, with their names."""
        run = None if self.run is None else f"run-{self.run}"
        return [
            (self.namespace, "namespace"),
            (self.investigation, "investigation"),
            (self.pod, "pod"),
            (self.pod_uid, "pod uid"),
            (self.container, "container"),
            (run, "run"),
        ]

    def matches(self, key: SnapshotKey) -> bool:
        return (
            (self.namespace is None or key.namespace == self.namespace)
            and (self.investigation is None or key.investigation == self.investigation)
            and (self.pod is None or key.pod == self.pod)
            and (self.pod_uid is None or key.pod_uid == self.pod_uid)
            and (self.container is None or key.container == self.container)
            and (self.run is None or key.run == self.run)
        )


def parse_run_segment(segment: str, path: str = "") -> int:
    """`run-3` -> 3."""
    match = _RUN.fullmatch(segment)
    if not match:
        where = f" of {path!r}" if path else ""
        raise InvalidSnapshotKey(f"segment {segment!r}{where} must be run-<integer>")
    return int(match.group(1))
