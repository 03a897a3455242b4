"""The sampling error of a heap profile's figures.

Go does not record every allocation: it samples one every `MemProfileRate` bytes on average
(the profile's `period`, 512 KiB by default), so an allocation of s bytes is recorded with
probability q(s) = 1 - exp(-s/P). The profile stores figures already scaled back up (pprof's
"unsampling", runtime/pprof's scaleHeapSample): a record of n sampled objects of average size
s is written as O = n/q objects and B = n*s/q bytes. So each recorded object stands for s/q
bytes, and the error of B is that of the count n.

Of the N = O objects really live at that stack, each was sampled independently with
probability q, so n is binomial(N, q): Var(n) = N*q*(1-q), and

    Var(B) = (s/q)**2 * N*q*(1-q) = B * s * (1-q)/q,   relative error sqrt((1-q)/n).

For small objects (q small) this is the Poisson error 1/sqrt(n) of a count of n samples; for
objects much larger than the period (q -> 1) every one is recorded and the error vanishes.
A function's figure sums records (one per stack and size class), whose errors are independent:
the variances add.

Between two snapshots the error of the growth is taken as sqrt(var_a + var_b): exact when the
function's live objects turned over completely between them (a cache evicting, buffers in
flight), an over-estimate when the same objects stay live in both (a leak keeps the very
samples it had, and only the new ones add error). Over-estimating is the safe side: growth
called significant is significant.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from oomforensics.pprof.profile import Profile

GO_DEFAULT_MEMPROFILERATE = 512 * 1024
SIGNIFICANCE = 3.0  # growth within this many standard errors is noise


def sampling_period(profile: Profile) -> int:
    """The profile's sampling period in bytes (MemProfileRate); Go's default when absent."""
    return profile.period if profile.period > 0 else GO_DEFAULT_MEMPROFILERATE


def sample_variance(profile: Profile) -> NDArray[np.float64]:
    """Per sample of a heap profile: the variance of its inuse_space figure (see above)."""
    space = profile.sample_index("inuse_space")
    objects = profile.sample_index("inuse_objects")
    values = profile.samples.values
    held = np.asarray(values[:, space], dtype=np.float64)
    count = np.asarray(values[:, objects], dtype=np.float64)
    period = float(sampling_period(profile))
    with np.errstate(divide="ignore", invalid="ignore"):
        size = np.where(count > 0, held / count, 0.0)
        q = -np.expm1(-size / period)
        variance = np.where((count > 0) & (q > 0), held * size * (1.0 - q) / q, 0.0)
    return np.maximum(variance, 0.0)


def standard_error(variance: float) -> int:
    return round(math.sqrt(max(variance, 0.0)))


def growth_error(variance_a: float, variance_b: float) -> int:
    """The standard error of b - a for two snapshots' estimates."""
    return standard_error(variance_a + variance_b)


def z_score(delta: float, variance: float) -> float:
    """delta in units of its standard error; exact figures (variance 0) give 0 or +-inf."""
    if variance > 0:
        return delta / math.sqrt(variance)
    if delta == 0:
        return 0.0
    return math.inf if delta > 0 else -math.inf
