"""Errors the CLI reports as one line and a non-zero exit."""


class UsageError(Exception):
    """The command was given something it cannot use (missing file, bad directory)."""
