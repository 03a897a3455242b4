"""Typed errors for bad profile input. Messages are meant to be shown to a user as-is."""

from oomforensics.errors import OomForensicsError


class ProfileError(OomForensicsError):
    """Base class: the input is not something oomforensics can read as a profile."""


class InvalidProfile(ProfileError):
    """Not a pprof profile, or a damaged one (bad gzip, bad protobuf, dangling references)."""


class ProfileTooLarge(ProfileError):
    """The (decompressed) input exceeds the configured cap; gzip bombs end here."""


class IncompatibleProfiles(ProfileError):
    """Two profiles that cannot be compared (different sample types)."""


class UnknownSampleIndex(ProfileError):
    """The requested sample index is not one of the profile's sample types."""
