"""The root of every error oomforensics reports to a person.

Each family (archive, capture, profiles, specs, the Kubernetes API, the command line) derives
from `OomForensicsError`, so the CLI catches one type and prints its message; the families'
own messages say what went wrong, where, and what to do.
"""

from __future__ import annotations


class OomForensicsError(Exception):
    """Something oomforensics could not do; `str()` is the message for the user."""
