"""Memory accounting: where the resident set goes, from runtime.MemStats and the RSS.

What the kernel kills on is the container's working set (about the RSS); what the heap
profile shows is only live heap objects as of the last GC. In between sit heap memory the
runtime holds but does not use, goroutine stacks, the runtime's own structures, and memory the
Go runtime never sees (cgo, mmap). This module lays those out side by side.
"""

from __future__ import annotations

from dataclasses import dataclass

from oomforensics.analysis.snapshot import Snapshot

RUNTIME_STRUCTURES = ("MSpanSys", "MCacheSys", "BuckHashSys", "GCSys", "OtherSys")
# Outside the heap, what the runtime reports in use (stacks, span and cache structures).
IN_USE = ("StackInuse", "MSpanInuse", "MCacheInuse")


@dataclass(frozen=True, slots=True)
class MemoryAccount:
    """One snapshot's memory, in bytes. None where the snapshot does not say."""

    rss: int | None
    rss_source: str | None  # "manifest" (current RSS at capture) or "MaxRSS" (peak, a fallback)
    heap_profile_inuse: int  # the heap profile's inuse_space: live objects at the last GC
    heap_alloc: int | None  # live + not yet collected heap objects, now
    heap_inuse: int | None  # heap spans in use (objects plus their span slack)
    heap_idle_unreleased: int | None  # HeapIdle - HeapReleased: GC headroom, fragmentation
    heap_released: int | None  # returned to the OS, not resident
    stacks: int | None  # StackSys: goroutine stacks
    runtime_structures: int | None  # MSpan, MCache, BuckHash, GC metadata, other
    go_sys: int | None  # Sys: all the Go runtime obtained from the OS
    # RSS - (Sys - HeapReleased): resident memory the Go runtime does not account for
    # (cgo, mmap, other native memory). Sys - HeapReleased bounds what Go can have resident,
    # so this is a lower bound; it is negative when part of Go's memory is not resident.
    not_go: int | None
    # Sys - HeapSys less the stacks, span and cache structures in use: GC metadata, profiling
    # buckets and other runtime memory, which the runtime maps ahead and touches as it goes.
    # As it does, the RSS, and so not_go, rises with nothing allocated outside Go: the bound
    # of that error. (Idle heap was resident once it was used; fresh heap counts as released.)
    go_unused: int | None = None

    def as_dict(self) -> dict[str, int]:
        """The figures under their JSON names (absent ones left out)."""
        figures = {
            "rssBytes": self.rss,
            "heapProfileInuse": self.heap_profile_inuse,
            "heapIdleUnreleased": self.heap_idle_unreleased,
            "runtimeStructures": self.runtime_structures,
            "notGoRuntime": self.not_go,
        }
        return {k: v for k, v in figures.items() if v is not None}


def account(snapshot: Snapshot) -> MemoryAccount:
    stats = snapshot.heap_text.memstats if snapshot.heap_text else None
    get = stats.integer if stats else (lambda key: None)
    rss, source = snapshot.rss_bytes, "manifest"
    if rss is None:
        rss, source = get("MaxRSS"), "MaxRSS"
    sys_, released, idle = get("Sys"), get("HeapReleased"), get("HeapIdle")
    parts = [get(key) for key in RUNTIME_STRUCTURES]
    profile = snapshot.profile
    return MemoryAccount(
        rss=rss,
        rss_source=source if rss is not None else None,
        heap_profile_inuse=profile.total(profile.sample_index("inuse_space")),
        heap_alloc=get("HeapAlloc"),
        heap_inuse=get("HeapInuse"),
        heap_idle_unreleased=idle - released if idle is not None and released is not None else None,
        heap_released=released,
        stacks=get("StackSys"),
        runtime_structures=sum(p for p in parts if p is not None)
        if any(p is not None for p in parts)
        else None,
        go_sys=sys_,
        not_go=rss - (sys_ - released)
        if rss is not None and sys_ is not None and released is not None
        else None,
        go_unused=_unused(sys_, get("HeapSys"), [get(key) for key in IN_USE]),
    )


def _unused(sys_: int | None, heap: int | None, in_use: list[int | None]) -> int | None:
    if sys_ is None or heap is None or any(v is None for v in in_use):
        return None
    return max(sys_ - heap - sum(v for v in in_use if v is not None), 0)


# Rows of the accounting table: (label, attribute), in the order they add up to the RSS.
ACCOUNT_ROWS = (
    ("RSS", "rss"),
    ("heap profile (live at last GC)", "heap_profile_inuse"),
    ("HeapAlloc (live + garbage)", "heap_alloc"),
    ("HeapInuse", "heap_inuse"),
    ("heap idle, not released", "heap_idle_unreleased"),
    ("heap released to the OS", "heap_released"),
    ("goroutine stacks", "stacks"),
    ("runtime structures", "runtime_structures"),
    ("Go runtime total (Sys)", "go_sys"),
    ("not Go runtime (cgo, mmap)", "not_go"),
)
