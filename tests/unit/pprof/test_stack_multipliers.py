"""The stack hash's multipliers written down in pprof/stacks.py are numpy's draws."""

from __future__ import annotations

import numpy as np
import pytest

from oomforensics.pprof import stacks


@pytest.mark.parametrize("longest", [0, 1, 57, 126, 127, 128, 300])
def test_multipliers_equal_numpys_draws(longest: int) -> None:
    rng = np.random.default_rng(stacks._HASH_SEED)
    drawn = rng.integers(0, 2**63, size=longest + 1, dtype=np.uint64)
    expected = drawn * np.uint64(2) + np.uint64(1)
    got = stacks._multipliers(longest)
    assert got.dtype == np.uint64
    assert np.array_equal(got, expected)
