"""The facts of a pair of snapshots (the first and the last of a run), computed once, and
the heap bar they are judged against."""

from __future__ import annotations

from dataclasses import dataclass

from oomforensics.analysis.accounting import MemoryAccount, account
from oomforensics.analysis.sampling import GO_DEFAULT_MEMPROFILERATE
from oomforensics.analysis.series import goroutine_owner
from oomforensics.analysis.snapshot import Snapshot
from oomforensics.analysis.suspects import StackGrowth, stack_growth
from oomforensics.analysis.thresholds import DEFAULT_THRESHOLDS, Thresholds
from oomforensics.analysis.trend import snapshot_time
from oomforensics.pprof.goroutines import goroutine_growth


@dataclass(frozen=True, slots=True)
class Facts:
    """Everything the pair (first and last snapshot) says, computed once."""

    base: MemoryAccount
    new: MemoryAccount
    seconds: float | None  # between the snapshots, when both capture times are known
    gc_cycles: int | None
    heap_growth: int  # net growth of the heap profile's inuse_space
    heap_reference: int  # the heap size growth is judged against
    noise_floor: int
    goroutines_base: int | None
    goroutines_new: int | None
    goroutine_growth: tuple[tuple[str, int], ...]
    stack_growth: StackGrowth

    def per_hour(self, delta: int) -> float | None:
        return delta * 3600 / self.seconds if self.seconds else None


def gather_facts(
    base: Snapshot, new: Snapshot, thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> Facts:
    base_account, new_account = account(base), account(new)
    reference = base_account.heap_inuse or base_account.heap_profile_inuse
    period = new.heap_text.sampling_period // 2 if new.heap_text else GO_DEFAULT_MEMPROFILERATE
    goroutine_changes: tuple[tuple[str, int], ...] = ()
    if base.goroutines and new.goroutines:
        goroutine_changes = tuple(
            goroutine_growth(base.goroutines, new.goroutines, goroutine_owner)
        )
    return Facts(
        base=base_account,
        new=new_account,
        seconds=_seconds_between(base, new),
        gc_cycles=_gc_cycles(base, new),
        heap_growth=new_account.heap_profile_inuse - base_account.heap_profile_inuse,
        heap_reference=reference,
        noise_floor=thresholds.noise_samples * max(period, 1),
        goroutines_base=base.goroutines.total if base.goroutines else None,
        goroutines_new=new.goroutines.total if new.goroutines else None,
        goroutine_growth=goroutine_changes,
        stack_growth=stack_growth(base.profile, new.profile),
    )


def _seconds_between(base: Snapshot, new: Snapshot) -> float | None:
    try:
        seconds = snapshot_time(new) - snapshot_time(base)
    except ValueError:
        return None
    return seconds if seconds > 0 else None


def _gc_cycles(base: Snapshot, new: Snapshot) -> int | None:
    if base.heap_text is None or new.heap_text is None:
        return None
    before, after = (
        base.heap_text.memstats.integer("NumGC"),
        new.heap_text.memstats.integer("NumGC"),
    )
    return after - before if before is not None and after is not None else None


def heap_bar(facts: Facts, thresholds: Thresholds) -> int:
    ratio = thresholds.heap_growth_ratio
    if facts.gc_cycles is not None and facts.gc_cycles < 2:
        ratio *= thresholds.few_gc_factor
    return max(int(ratio * facts.heap_reference), facts.noise_floor)


def difference(before: int | None, after: int | None) -> int | None:
    return after - before if before is not None and after is not None else None
