"""Every error a person may see derives from one root, so the CLI catches one type; API
errors are typed by status."""

from __future__ import annotations

import pytest

from oomforensics.archive.errors import ArchiveError
from oomforensics.archive.layout import InvalidSnapshotKey
from oomforensics.archive.manifest import InvalidManifest
from oomforensics.capture.errors import CaptureError
from oomforensics.cli.errors import UsageError
from oomforensics.durations import InvalidDuration
from oomforensics.errors import OomForensicsError
from oomforensics.k8s.api import (
    ApiConflict,
    ApiFailure,
    ApiForbidden,
    ApiNotFound,
    ApiServerError,
    ApiUnauthorized,
    ApiUnreachable,
)
from oomforensics.k8s.services import StorageProblem
from oomforensics.k8s.settings import InvalidSettings
from oomforensics.k8s.spec import InvalidSpec
from oomforensics.local.cgroup import CgroupError
from oomforensics.pprof.errors import ProfileError
from oomforensics.quantity import InvalidQuantity
from oomforensics.triggers.end_of_run import InvalidEndOfRun
from oomforensics.triggers.model import InvalidState


@pytest.mark.parametrize(
    "family",
    [
        ArchiveError,
        InvalidSnapshotKey,
        InvalidManifest,
        CaptureError,
        UsageError,
        InvalidDuration,
        ApiFailure,
        StorageProblem,
        InvalidSettings,
        InvalidSpec,
        CgroupError,
        ProfileError,
        InvalidQuantity,
        InvalidEndOfRun,
        InvalidState,
    ],
)
def test_every_family_has_the_one_root(family: type[Exception]) -> None:
    assert issubclass(family, OomForensicsError)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (0, ApiUnreachable),
        (401, ApiUnauthorized),
        (403, ApiForbidden),
        (404, ApiNotFound),
        (409, ApiConflict),
        (503, ApiServerError),
        (422, ApiFailure),
    ],
)
def test_api_failures_are_typed_by_status(status: int, kind: type[ApiFailure]) -> None:
    failure = ApiFailure.of(status, "GET /x: no")
    assert type(failure) is kind and failure.status == status and str(failure) == "GET /x: no"
