"""Errors the CLI reports as one line and a non-zero exit."""

from oomforensics.errors import OomForensicsError


class UsageError(OomForensicsError):
    """The command was given something it cannot use (missing file, bad directory)."""
