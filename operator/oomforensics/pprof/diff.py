"""Function-level flat/cum tables and the diff of two profiles, equal to `go tool pprof -top`.

pprof builds one node per function (granularity "functions"), adds a sample's value to the
flat of its leaf node and to the cum of every node on its stack once, and with -diff_base or
-base merges the base profile scaled by -1. Both are linear, so a diff's flat and cum equal
new minus base computed per profile; that is what this module does. The two modes differ
only in the total pprof prints percentages against.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from oomforensics.pprof.arrays import group_sum
from oomforensics.pprof.errors import IncompatibleProfiles
from oomforensics.pprof.profile import Profile, SampleType, index_stacks
from oomforensics.pprof.stacks import joint_names


class BaseMode(StrEnum):
    DIFF_BASE = "diff_base"  # percentages against the base profile's total
    BASE = "base"  # percentages against the net difference, as after subtraction


class FunctionValue(NamedTuple):
    """One row of pprof's table: a function's flat and cum (a diff makes 10,000 of these; a
    frozen dataclass took twice as long to make)."""

    name: str
    flat: int
    cum: int


@dataclass(frozen=True, slots=True)
class HeapDiff:
    """What `go tool pprof -top -diff_base BASE NEW` shows, for one sample index."""

    sample_index: str
    unit: str
    mode: BaseMode
    base_total: int
    new_total: int
    # pprof's percentage denominator for this mode (base total, or sum of |net sample deltas|).
    report_total: int
    functions: tuple[FunctionValue, ...]


def function_table(profile: Profile, index: int) -> dict[str, tuple[int, int]]:
    """Per function name: (flat, cum) for one sample index, as pprof's graph computes them.

    A sample adds its value to the flat of its leaf and to the cum of every function on its
    stack once, however often the function recurs. Functions seen only in samples whose
    value is zero are left out.
    """
    samples = profile.samples
    flat, cum, present = samples.function_table(index)
    nodes = np.flatnonzero(present)
    names = samples.names
    return {
        names[node]: (f, c)
        for node, f, c in zip(
            nodes.tolist(), flat[nodes].tolist(), cum[nodes].tolist(), strict=True
        )
    }


def pprof_order(functions: list[FunctionValue]) -> list[FunctionValue]:
    """pprof's FlatNameOrder: |flat| descending, then name, then |cum| descending."""
    return sorted(functions, key=lambda f: (-abs(f.flat), f.name, -abs(f.cum)))


def top(profile: Profile, sample_index: str | int | None = None) -> list[FunctionValue]:
    """`go tool pprof -top` of a single profile."""
    index = profile.sample_index(sample_index)
    table = function_table(profile, index)
    return pprof_order(
        [FunctionValue(name, flat, cum) for name, (flat, cum) in table.items() if flat or cum]
    )


def diff_profiles(
    base: Profile,
    new: Profile,
    sample_index: str | int | None = "inuse_space",
    mode: BaseMode = BaseMode.DIFF_BASE,
) -> HeapDiff:
    """Every function whose flat or cum changed from `base` to `new`, in pprof's order.

    `sample_index` None is pprof's default: see `default_sample_index`.
    """
    check_compatible(base, new)
    index = pair_sample_index(base, new, sample_index)
    functions = _changed_functions(base, new, index)
    base_total, new_total = base.total(index), new.total(index)
    return HeapDiff(
        sample_index=new.sample_types[index].type,
        unit=new.sample_types[index].unit,
        mode=mode,
        base_total=base_total,
        new_total=new_total,
        report_total=_report_total(base, new, index, mode),
        functions=tuple(functions),
    )


def _changed_functions(base: Profile, new: Profile, index: int) -> list[FunctionValue]:
    """Every function whose flat or cum differs between the profiles, in pprof's order."""
    base_flat, base_cum, base_present = base.samples.function_table(index)
    new_flat, new_cum, new_present = new.samples.function_table(index)
    if object in (base_flat.dtype, base_cum.dtype, new_flat.dtype, new_cum.dtype):
        return _changed_functions_exactly(base, new, index)  # Python ints: rare, slow, exact
    # Both tables on one table of names (base's, then new's own; the stack index's too), as
    # int64: every figure is below 2**61 (see arrays), so no difference overflows.
    joint = joint_names([base.samples, new.samples])
    numbers = joint.numbers[1]
    translate = np.arange(len(new.samples.names)) if numbers is None else numbers
    flat = np.zeros(len(joint.names), dtype=np.int64)
    cum = np.zeros(len(joint.names), dtype=np.int64)
    nodes = np.flatnonzero(base_present)
    flat[nodes] -= base_flat[nodes]
    cum[nodes] -= base_cum[nodes]
    nodes = np.flatnonzero(new_present)
    flat[translate[nodes]] += new_flat[nodes]  # names are distinct: no node twice
    cum[translate[nodes]] += new_cum[nodes]
    changed = np.flatnonzero((flat != 0) | (cum != 0))
    names = joint.names
    return _in_pprof_order([names[node] for node in changed.tolist()], flat[changed], cum[changed])


def _in_pprof_order(
    names: list[str], flat: NDArray[np.int64], cum: NDArray[np.int64]
) -> list[FunctionValue]:
    """`pprof_order` of the functions named `names` (distinct, so |cum| never decides):
    sorted by name, then stably by |flat| descending, which a key per function in Python
    took twice as long to do."""
    by_name = np.array(sorted(range(len(names)), key=names.__getitem__), dtype=np.intp)
    order = by_name[np.argsort(-np.abs(flat[by_name]), kind="stable")]
    return [
        FunctionValue(names[i], f, c)
        for i, f, c in zip(order.tolist(), flat[order].tolist(), cum[order].tolist(), strict=True)
    ]


def _changed_functions_exactly(base: Profile, new: Profile, index: int) -> list[FunctionValue]:
    base_table = function_table(base, index)
    new_table = function_table(new, index)
    functions = []
    for name in base_table.keys() | new_table.keys():
        base_flat, base_cum = base_table.get(name, (0, 0))
        new_flat, new_cum = new_table.get(name, (0, 0))
        flat, cum = new_flat - base_flat, new_cum - base_cum
        if flat or cum:
            functions.append(FunctionValue(name, flat, cum))
    return pprof_order(functions)


def pair_sample_index(base: Profile, new: Profile, wanted: str | int | None) -> int:
    """The sample index `go tool pprof -sample_index=WANTED -diff_base BASE NEW` uses.

    pprof merges the two profiles first; the merged profile's default sample type is the
    first non-empty one of (new, base). Without -sample_index, pprof takes that type, or
    else the last sample type (net/http/pprof's heap profiles name inuse_space; /allocs and
    several collectors name alloc_space; many writers name none).
    """
    if wanted is None or wanted == "":
        default = new.default_sample_type or base.default_sample_type
        names = [st.type for st in new.sample_types]
        return names.index(default) if default in names else len(names) - 1
    return new.sample_index(wanted)


def check_compatible(base: Profile, new: Profile) -> None:
    """Refuse what pprof's merge refuses: different sample types, or period types of
    different kinds (pprof scales units of one kind, ns and ms say, to a common one)."""
    if not _compatible_periods(base.period_type, new.period_type):

        def period(p: Profile) -> str:
            return f"{p.period_type.type}/{p.period_type.unit}" if p.period_type else "none"

        raise IncompatibleProfiles(
            f"profiles are not comparable: base has period type {period(base)}, "
            f"new has {period(new)}"
        )
    if base.sample_types != new.sample_types:

        def describe(p: Profile) -> str:
            return ", ".join(f"{st.type}/{st.unit}" for st in p.sample_types)

        raise IncompatibleProfiles(
            f"profiles are not comparable: base has [{describe(base)}], new has [{describe(new)}]"
        )


_UNIT_KINDS = (
    {"b", "byte", "bytes", "kb", "kbyte", "kilobyte", "mb", "mbyte", "megabyte", "gb", "tb"},
    {
        "ns", "nanosecond", "nanoseconds", "us", "microsecond", "microseconds", "ms",
        "millisecond", "milliseconds", "s", "sec", "second", "seconds", "hrs", "hour", "hours",
        "minute", "minutes", "day", "days", "week", "weeks", "year", "years",
    },
)  # fmt: skip


def _compatible_periods(a: SampleType | None, b: SampleType | None) -> bool:
    """pprof's compatibleValueTypes (measurement): no period type disqualifies nothing."""
    if a is None or b is None:
        return True
    if a.type.removesuffix("s") != b.type.removesuffix("s"):
        return False
    if a.unit == b.unit:
        return True
    return any(a.unit.lower() in kind and b.unit.lower() in kind for kind in _UNIT_KINDS)


def _report_total(base: Profile, new: Profile, index: int, mode: BaseMode) -> int:
    if mode is BaseMode.DIFF_BASE:
        # pprof: the base samples carry the pprof::base label and alone make the total:
        # the sum of |value| over the base's samples merged per stack.
        total = _abs_stack_total([base], [1], index)
        if total:
            return total
    # -base: sum of |value| over the merged samples. Samples merge per stack here, while pprof
    # also keys on labels; the difference only shows in percentages, never in flat or cum.
    return _abs_stack_total([base, new], [-1, 1], index)


def _abs_stack_total(profiles: list[Profile], signs: list[int], index: int) -> int:
    """Sum over distinct stacks of |sum over the profiles of sign * the stack's value|."""
    columns = [sign * p.samples.values[:, index] for p, sign in zip(profiles, signs, strict=True)]
    if len(columns) == 1 and ((columns[0] >= 0).all() or (columns[0] <= 0).all()):
        return abs(int(columns[0].sum()))  # one sign throughout: merging changes nothing
    stacks = index_stacks([p.samples for p in profiles])
    bound = float(sum(p.samples.bounds[index] for p in profiles))
    sums = group_sum(stacks.group, np.concatenate(columns), len(stacks), bound)
    return int(np.abs(sums).sum())
