"""Pure triggers: memory samples -> capture decisions; container runs and OOM kills.

No I/O and no clock: callers pass samples, times and pod JSON in, and act on what comes back.
"""

from oomforensics.triggers.engine import (
    new_state,
    observe,
    project,
    record_capture,
    state_for_run,
)
from oomforensics.triggers.model import (
    BASELINE,
    GROWTH,
    PERIODIC,
    PREDICTED,
    THRESHOLD_PATTERN,
    CaptureReason,
    ContainerRun,
    Decision,
    InvalidState,
    MemorySample,
    TriggerSettings,
    TriggerState,
    reason_threshold,
    threshold_reason,
)
from oomforensics.triggers.oom import (
    OomKill,
    Termination,
    container_runs,
    detect_oom_kills,
    is_oom,
    is_suspected_oom,
    run_of,
    terminations,
)

__all__ = [
    "BASELINE",
    "GROWTH",
    "PERIODIC",
    "PREDICTED",
    "THRESHOLD_PATTERN",
    "CaptureReason",
    "ContainerRun",
    "Decision",
    "InvalidState",
    "MemorySample",
    "OomKill",
    "Termination",
    "TriggerSettings",
    "TriggerState",
    "container_runs",
    "detect_oom_kills",
    "is_oom",
    "is_suspected_oom",
    "new_state",
    "observe",
    "project",
    "reason_threshold",
    "record_capture",
    "run_of",
    "state_for_run",
    "terminations",
    "threshold_reason",
]
