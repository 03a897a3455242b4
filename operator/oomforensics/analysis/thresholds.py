"""The bars a finding must clear, and why.

Findings say what the evidence says, judged on the series of a container run's snapshots
(findings.py runs them). With three or more snapshots, every figure is judged by its shape
over time (series.py, shape.py): only growth that continues, beyond its sampling error
(sampling.py), raises a finding. A cache that filled and stopped, a pool that reached its
size, a batch given back are said as such and raise none. With two snapshots the shape cannot
be seen, so the pair bars below stay, and the judgement says its confidence is low
(judgement.py).

Pair bars (see `Thresholds`), and why:
- Heap growth is judged against the size of the heap (HeapInuse of the base snapshot): 20 % of
  it. The heap profile only moves at GC, so when fewer than two GC cycles separate the
  snapshots the bar doubles. Growth below 4 sampling periods (4 x runtime.MemProfileRate) is
  below what a sampled profile can resolve. From four snapshots on these bars give way to
  each function's own sampling error and the series' in-flight jitter: a small grower,
  steadily rising well beyond both, is a leak even when the whole heap's change is within GC
  jitter. With three snapshots the jitter cannot be measured yet (a control that only churns
  moved its churning function by 9 sampling errors over three), so the pair bar still holds.
- Goroutines: +10 and +50 % of the base count (pair); over a series, an owner's goroutines
  still rising in the later half of the run, by 10 or more.
- Native (non-Go) memory: the RSS in excess of all the Go runtime could hold resident
  (Sys - HeapReleased) grew by at least 5 % of the RSS and 1 MiB, and makes at least half of
  the RSS growth; over a series it must also still be rising, and from four snapshots on
  steadily, without a significant drop (RSS and MemStats are read moments apart, so in a busy
  process this figure jitters by megabytes), unless it is ten times its bar or more.
- HTTP connections (their states read by connections.py, judged by connection_findings.py):
  client connections waiting for their body to be closed, idle client connections of
  abandoned Transports, idle server connections, each growing (2 or more), are three
  different bugs with three different fixes.
- Go's goroutine leak profile (Go 1.26, GOEXPERIMENT=goroutineleakprofile), when captured,
  is proof: goroutines the GC found blocked on something no running goroutine can reach.
"""

from __future__ import annotations

from dataclasses import dataclass

from oomforensics.analysis.sampling import SIGNIFICANCE

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Thresholds:
    heap_growth_ratio: float = 0.20
    few_gc_factor: float = 2.0
    noise_samples: int = 4
    goroutine_min: int = 10
    goroutine_ratio: float = 0.5
    non_heap_ratio: float = 0.05
    non_heap_share: float = 0.5
    non_heap_min: int = 1 * MiB
    connection_min: int = 2
    significance: float = SIGNIFICANCE


DEFAULT_THRESHOLDS = Thresholds()
