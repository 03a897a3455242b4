from oomforensics.archive import RetentionPolicy, apply_retention, plan_retention
from tests.unit.archive.factory import snapshot


def members(*snaps):
    return [(s.key, s.manifest) for s in snaps]


def test_a_run_keeps_its_evidence_and_sheds_routine_snapshots():
    baseline = snapshot(0, "baseline", heap_inuse=100)
    routine = [snapshot(10 * i, heap_inuse=100 + i) for i in range(1, 8)]
    threshold = snapshot(45, "threshold-80", heap_inuse=300)
    predicted = snapshot(46, "predicted", heap_inuse=310)
    biggest = snapshot(47, "growth", heap_inuse=900)
    pre_oom = snapshot(48, "growth", heap_inuse=400)
    latest = [snapshot(100 + i, heap_inuse=500) for i in range(2)]
    everything = [baseline, *routine, threshold, predicted, biggest, pre_oom, *latest]

    doomed = plan_retention(
        members(*everything), RetentionPolicy(keep_newest=2), protected={pre_oom.key}
    )

    assert doomed == [s.key for s in routine]  # oldest first


def test_the_first_snapshot_of_a_run_is_its_baseline_whatever_its_reason():
    first, *rest = [snapshot(i) for i in range(5)]
    doomed = plan_retention(members(first, *rest), RetentionPolicy(keep_newest=1))
    # the last one is newest; the largest heap profile is kept too, whichever it is
    kept = {s.key for s in (first, *rest)} - set(doomed)
    assert first.key in kept
    assert rest[-1].key in kept
    assert len(kept) <= 3


def test_largest_heap_is_judged_by_memstats_else_by_the_profile_size():
    small, large, newer = (
        snapshot(0, profile_bytes=100),
        snapshot(1, profile_bytes=9000),
        snapshot(2),
    )
    no_memstats = plan_retention(members(small, large, newer), RetentionPolicy(keep_newest=0))
    assert no_memstats == [newer.key]  # baseline `small` and biggest profile `large` stay

    a, b, c, d = (snapshot(i, heap_inuse=h) for i, h in enumerate([10, 50, 99, 20]))
    assert plan_retention(members(a, b, c, d), RetentionPolicy(keep_newest=0)) == [b.key, d.key]


def test_each_container_run_is_judged_on_its_own():
    run0 = [snapshot(i, run=0, heap_inuse=1) for i in range(4)]
    run1 = [snapshot(10 + i, run=1, heap_inuse=1) for i in range(4)]
    other_pod = [snapshot(i, pod="other", heap_inuse=1) for i in range(4)]
    doomed = set(plan_retention(members(*run0, *run1, *other_pod), RetentionPolicy(keep_newest=1)))
    for run in (run0, run1, other_pod):
        assert run[0].key not in doomed  # every run keeps its baseline
        assert run[-1].key not in doomed  # and its newest
        assert {s.key for s in run[1:-1]} <= doomed


def test_over_budget_the_oldest_unprotected_go_first_and_protected_ones_stay():
    snaps = [snapshot(0, "baseline", heap_inuse=1)]
    snaps += [snapshot(i, heap_inuse=1) for i in range(1, 6)]
    snaps += [snapshot(6, "threshold-90", heap_inuse=1)]
    size = snaps[1].manifest.total_bytes
    # newest 10 would keep all 7; the budget holds 4 of them
    policy = RetentionPolicy(keep_newest=10, max_bytes_per_run=4 * size)
    doomed = plan_retention(members(*snaps), policy)
    # baseline, threshold and the largest heap (the latest of equals) are protected
    assert doomed == [s.key for s in snaps[1:4]]

    tiny = RetentionPolicy(keep_newest=10, max_bytes_per_run=1)
    protected_only = plan_retention(members(*snaps), tiny)
    assert snaps[0].key not in protected_only
    assert snaps[-1].key not in protected_only


def test_nothing_to_judge_nothing_to_delete():
    assert plan_retention([], RetentionPolicy()) == []
    one = snapshot()
    assert plan_retention(members(one), RetentionPolicy(keep_newest=0)) == []


async def test_apply_retention_deletes_what_the_plan_says(archive):
    snaps = [snapshot(0, "baseline", heap_inuse=1)]
    snaps += [snapshot(i, heap_inuse=1) for i in range(1, 6)]
    other = snapshot(3, pod="other", heap_inuse=1)
    for snap in (*snaps, other):
        await archive.put_snapshot(snap.key, snap.files, snap.manifest)

    deleted = await apply_retention(
        archive, RetentionPolicy(keep_newest=2), pod="checkout-7d9f", protected={snaps[2].key}
    )

    assert deleted == [snaps[1].key, snaps[3].key]
    assert await archive.list_snapshots() == [
        snaps[0].key,
        snaps[2].key,
        other.key,
        snaps[4].key,
        snaps[5].key,
    ]
    assert await archive.list_incomplete() == []
