"""Where a snapshot lives in the archive: the key layout, pure (no I/O).

    {prefix}/{namespace}/{investigation}/{pod}/{container}/run-{restartCount}/{timestamp}-{reason}/

The timestamp is UTC with milliseconds (``20261126T031200.123Z``), so a plain lexical sort
of the keys of one container run is also the order in time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

TIMESTAMP_FORMAT = "%Y%m%dT%H%M%S"
_TIMESTAMP = re.compile(r"\d{8}T\d{6}\.\d{3}Z")
_TIMESTAMP_LEN = len("20261126T031200.123Z")
REASON = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
MAX_REASON_LENGTH = 63
# Pre-OOM is a verdict reached after the container died (its last snapshot before the kill),
# not a reason to capture: keep the capture reason and mark the key as pre-OOM later.
RESERVED_REASONS = frozenset({"pre-oom"})
_RUN = re.compile(r"run-(0|[1-9]\d*)")


class InvalidSnapshotKey(ValueError):
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


@dataclass(frozen=True, slots=True)
class ContainerRun:
    """One life of one container: what a restart (an OOM kill, for one) ends."""

    namespace: str
    investigation: str
    pod: str
    container: str
    run: int

    def path(self, prefix: str = "") -> str:
        """The run's folder (its snapshots' parent), ending with `/`."""
        for value, what in (
            (self.namespace, "namespace"),
            (self.investigation, "investigation"),
            (self.pod, "pod"),
            (self.container, "container"),
        ):
            check_segment(value, what)
        if isinstance(self.run, bool) or not isinstance(self.run, int) or self.run < 0:
            raise InvalidSnapshotKey(f"run must be an integer >= 0, got {self.run!r}")
        root = normalize_prefix(prefix)
        parts = [self.namespace, self.investigation, self.pod, self.container, f"run-{self.run}"]
        return "/".join([root, *parts] if root else parts) + "/"


@dataclass(frozen=True, slots=True)
class SnapshotKey:
    """The identity of one snapshot; `path()` is its folder in the archive.

    `captured_at` is normalized to UTC and truncated to milliseconds, so a key survives a
    round trip through its path unchanged.
    """

    namespace: str
    investigation: str
    pod: str
    container: str
    run: int
    captured_at: datetime
    reason: str

    def __post_init__(self) -> None:
        check_segment(self.namespace, "namespace")
        check_segment(self.investigation, "investigation")
        check_segment(self.pod, "pod")
        check_segment(self.container, "container")
        if isinstance(self.run, bool) or not isinstance(self.run, int) or self.run < 0:
            raise InvalidSnapshotKey(
                f"run (the container's restartCount) must be an integer >= 0, got {self.run!r}"
            )
        check_reason(self.reason)
        object.__setattr__(self, "captured_at", to_utc_millis(self.captured_at))

    @property
    def container_run(self) -> ContainerRun:
        return ContainerRun(self.namespace, self.investigation, self.pod, self.container, self.run)

    @property
    def timestamp(self) -> str:
        return format_timestamp(self.captured_at)

    @property
    def name(self) -> str:
        """The last path segment: `{timestamp}-{reason}`."""
        return f"{self.timestamp}-{self.reason}"

    def path(self, prefix: str = "") -> str:
        """The snapshot's folder, ending with `/`."""
        return f"{self.container_run.path(prefix)}{self.name}/"

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
        if len(parts) != 6:
            raise InvalidSnapshotKey(
                f"path {path!r} must be {{namespace}}/{{investigation}}/{{pod}}/{{container}}/"
                f"run-{{restartCount}}/{{timestamp}}-{{reason}}/ below the prefix, "
                f"got {len(parts)} segment(s)"
            )
        namespace, investigation, pod, container, run_segment, name = parts
        run_match = _RUN.fullmatch(run_segment)
        if not run_match:
            raise InvalidSnapshotKey(f"segment {run_segment!r} of {path!r} must be run-<integer>")
        if len(name) < _TIMESTAMP_LEN + 2 or name[_TIMESTAMP_LEN] != "-":
            raise InvalidSnapshotKey(
                f"segment {name!r} of {path!r} must be <timestamp>-<reason>, "
                "e.g. 20261126T031200.123Z-periodic"
            )
        return cls(
            namespace=namespace,
            investigation=investigation,
            pod=pod,
            container=container,
            run=int(run_match.group(1)),
            captured_at=parse_timestamp(name[:_TIMESTAMP_LEN]),
            reason=check_reason(name[_TIMESTAMP_LEN + 1 :]),
        )
