"""What goes wrong with an archive, as types: the message says what and where.

`translate` turns what obstore raises into these, so callers never see obstore's exceptions.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from obstore.exceptions import (
    BaseError,
    GenericError,
    PermissionDeniedError,
    UnauthenticatedError,
)

from oomforensics.errors import OomForensicsError

if TYPE_CHECKING:
    from oomforensics.archive.manifest import FileDigest


class ArchiveError(OomForensicsError):
    """The archive could not do what was asked; the message says what and where."""


class StorageUnavailable(ArchiveError):
    """The store cannot be reached (refused, timed out, 5xx after retries): try again later."""


class ChecksumMismatch(ArchiveError):
    """A file's content does not match the sha256/size its manifest records."""

    def __init__(self, snapshot: str, name: str, expected: FileDigest, actual: FileDigest) -> None:
        self.snapshot = snapshot
        self.name = name
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"{snapshot}{name}: checksum mismatch: manifest says sha256 {expected.sha256} "
            f"({expected.size} bytes), the file has sha256 {actual.sha256} ({actual.size} bytes)"
        )


class SnapshotIncomplete(ArchiveError):
    """Files without a manifest, or a manifest naming a file that is not there."""


class SnapshotNotFound(ArchiveError):
    """Nothing is stored under that snapshot key (or no such file in it)."""


class SnapshotConflict(ArchiveError):
    """A different snapshot is already stored under the same key: evidence is never replaced."""


# What obstore reports for an unreachable store: its retry loop gave up on connection errors,
# timeouts or 5xx answers. Client errors (4xx: no such bucket, access denied) are not here:
# waiting does not fix them.
# Matched against the first line of the message only: the debug part that follows quotes
# settings such as `retry_timeout` and the server's error body.
_UNAVAILABLE = re.compile(
    r"HTTP error|error sending request|connection (?:refused|reset|closed)|timed out"
    r"|non-2xx status code: 5\d\d|dns error|broken pipe",
    re.IGNORECASE,
)


def translate(exc: Exception, what: str) -> ArchiveError:
    """An object store's exception as an ArchiveError of the right kind; `what` says where."""
    message = first_line(exc)
    if isinstance(exc, PermissionDeniedError | UnauthenticatedError):
        return ArchiveError(f"{what}: access denied; check the storage credentials: {message}")
    if isinstance(exc, ConnectionError | TimeoutError) or (
        isinstance(exc, GenericError | BaseError) and _UNAVAILABLE.search(message)
    ):
        return StorageUnavailable(f"{what}: storage unavailable: {message}")
    return ArchiveError(f"{what}: {message}")


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextlib.contextmanager
def translated(what: str) -> Iterator[None]:
    """Raise what the object store raises inside as an ArchiveError naming `what`.

    FileNotFoundError passes through: callers turn a missing object into their own answer."""
    try:
        yield
    except (FileNotFoundError, ArchiveError):
        raise
    except Exception as exc:
        raise translate(exc, what) from exc
