"""Memory samples in, capture decisions out: when to take a heap snapshot of a container run.

The caller (the operator's per-investigation daemon, or the local `watch` command) loops:

    state = state_for_run(state, run)                 # a restart starts a new run, fresh state
    state, decision = observe(state, sample, limit, settings)
    if decision.capture and capture_succeeded(...):
        state = record_capture(state, at, decision.reason)
    sleep(decision.next_sample_in)

`observe` never assumes the capture worked: only `record_capture` marks a trigger as done, so
a failed capture is retried on the next sample (within the cooldown rules).

The rules, and why:

- baseline: the first sample of a run is captured, because every diff needs a "before" taken
  while the run was still small. It is retried until one capture of the run succeeds.
- periodic: a snapshot `interval` seconds after the last capture of any kind, so a slow leak
  yields a series for the trend even if nothing else fires. Without a baseline the interval
  counts from the run's first sample.
- thresholds (% of the limit): each fires once per run, because one snapshot at 90% is
  evidence and ten are noise. A threshold re-arms only after the working set falls below
  (threshold - hysteresis) %, so a GC sawtooth around 80% does not re-fire it. When one sample
  crosses several (50% -> 96%), one capture is taken, named after the highest
  ("threshold-95"), and it marks all the crossed ones fired: it is the evidence for each.
- predicted: a least-squares line through the last `fit_window` seconds projects when the
  limit will be reached; under `horizon` seconds, capture ("predicted"). A fast leak is then
  caught well before 80%, and a slow one is not (it reaches the thresholds in its own time).
  A second line through the latest quarter of the window (stretched to the last three
  samples when sampling is sparse) is fitted too and the nearer projection wins, so a leak
  that starts after a long plateau is seen within seconds rather than after a whole window.
  One predicted capture per approach: it re-arms once the projection is gone or at least twice
  the horizon away.
- growth (no limit only: thresholds and projection need a limit): capture when the working
  set exceeds (1 + growth_ratio) x its time-weighted moving average, judged only after the run
  has been watched for `average_window` seconds (start-up is not a leak). While that surge
  lasts, a further growth capture needs another (1 + growth_ratio) step over the last one.
- cooldown: no two captures of a run less than `cooldown` seconds apart, so a flapping signal
  cannot flood the archive. The one exception is a threshold higher than the last threshold
  captured: in a fast leak 80 -> 90 -> 95 must all be caught, and such escalations are
  bounded by the number of thresholds.
- priority, when several fire at once: threshold, predicted, baseline, growth, periodic (the
  most urgent names the snapshot; any capture also serves as the run's baseline).
- sampling: `next_sample_in` is `sample_interval` with plenty of headroom and shrinks with
  it (proportionally below 50% headroom), to at most a quarter of the projected time to the
  limit (so several samples land before it), to the end of a cooldown that holds back a
  wanted capture, and to the moment the next periodic snapshot is due; never below
  `min_sample_interval`. A new run is sampled at the fastest rate until the fit has its three
  points, since a leak that kills within a minute of a restart would otherwise be seen twice
  at most. What sampling cannot do: a leak that goes from a calm level to the limit in less
  than one `sample_interval` can happen entirely between two samples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from oomforensics.triggers.model import (
    BASELINE,
    GROWTH,
    PERIODIC,
    PREDICTED,
    ContainerRun,
    Decision,
    MemorySample,
    TriggerSettings,
    TriggerState,
    check_reason,
    reason_threshold,
    threshold_reason,
)

MIN_FIT_SAMPLES = 3  # a line through two points says nothing about noise
MAX_SAMPLES = 256  # hard bound on the state's size, whatever the settings
CALM_HEADROOM_PERCENT = 50.0  # at or above this headroom, sample at the normal period
SAMPLES_BEFORE_LIMIT = 4.0  # sample at least this often within the projected time to the limit
PREDICTION_REARM_FACTOR = 2.0  # predicted re-arms once the projection is this many horizons away
RECENT_FIT_FRACTION = 4.0  # the second, quicker fit covers this fraction of the fit window


def new_state(run: ContainerRun) -> TriggerState:
    """The state of a run nothing has been seen of yet."""
    return TriggerState(run=run)


def state_for_run(state: TriggerState | None, run: ContainerRun) -> TriggerState:
    """Keep the state while the run is the same; a restart (or a new pod) starts afresh."""
    if state is None or state.run != run:
        return new_state(run)
    return state


def project(
    samples: Sequence[MemorySample], limit: int, now: float, window: float
) -> tuple[float | None, float | None]:
    """(seconds_to_limit, growth_per_second) from a least-squares line over the window.

    Uses the samples taken in [now - window, now]. With fewer than three of them both are None.
    growth_per_second is the slope in bytes/s (zero or negative when memory is flat or
    shrinking, in which case seconds_to_limit is None). The level the projection starts from
    is the higher of the fitted value at `now` and the latest sample, so a sample above the
    line is never ignored. Already at or over the limit: 0.
    """
    if limit <= 0:
        raise ValueError(f"limit must be a positive byte count, got {limit}")
    fit = _fit(samples, now, window)
    if fit is None:
        return None, None
    slope, level = fit
    if slope <= 0:
        return None, slope
    return max(0.0, (limit - level) / slope), slope


def observe(
    state: TriggerState, sample: MemorySample, limit: int | None, settings: TriggerSettings
) -> tuple[TriggerState, Decision]:
    """Add a sample of the state's run and decide whether to capture now.

    `limit` is the container's memory limit in bytes, None when it has none. A sample not newer
    than the latest one (a metrics source repeating itself) is ignored: the state is returned
    unchanged with a no-capture decision.
    """
    if limit is not None and limit <= 0:
        raise ValueError(f"limit must be a positive byte count or None, got {limit}")
    if state.samples and sample.at <= state.samples[-1].at:
        latest = state.samples[-1]
        percent = _percent(latest.working_set, limit)
        seconds_to_limit, growth = _projection(state.samples, limit, latest.at, settings)
        return state, Decision(
            capture=False,
            reason=None,
            next_sample_in=_next_sample_in(
                settings, percent, seconds_to_limit, len(state.samples), None
            ),
            percent_of_limit=percent,
            seconds_to_limit=seconds_to_limit,
            growth_per_second=growth,
        )

    now = sample.at
    working_set = sample.working_set
    samples = _bounded((*state.samples, sample), settings.fit_window)
    first_sample_at = state.first_sample_at if state.first_sample_at is not None else now
    previous_average = state.average
    average = _moving_average(state, sample, settings.average_window)
    percent = _percent(working_set, limit)
    seconds_to_limit, growth = _projection(samples, limit, now, settings)

    # Re-arming comes first: a threshold the series has fallen well below is armed again.
    fired = state.fired_thresholds
    if percent is not None:
        fired = frozenset(t for t in fired if percent >= t - settings.hysteresis)
    predicted_fired = state.predicted_fired and not (
        seconds_to_limit is None or seconds_to_limit >= PREDICTION_REARM_FACTOR * settings.horizon
    )
    growth_level = state.growth_level
    surging = (
        previous_average is not None
        and working_set > (1 + settings.growth_ratio) * previous_average
    )
    if not surging:
        growth_level = None  # the surge is over: the next one is judged afresh

    crossed: frozenset[int] = frozenset()
    if percent is not None:
        crossed = frozenset(t for t in settings.thresholds if percent >= t and t not in fired)
    # Every reason to capture now, most urgent first.
    wanted: list[str] = []
    if crossed:
        wanted.append(threshold_reason(max(crossed)))
    if (
        settings.horizon > 0
        and seconds_to_limit is not None
        and seconds_to_limit < settings.horizon
        and not predicted_fired
    ):
        wanted.append(PREDICTED)
    if settings.baseline and state.last_capture_at is None:
        wanted.append(BASELINE)
    if (
        limit is None
        and settings.growth_ratio > 0
        and surging
        and now - first_sample_at >= settings.average_window
        and (growth_level is None or working_set > (1 + settings.growth_ratio) * growth_level)
    ):
        wanted.append(GROWTH)
    since = state.last_capture_at if state.last_capture_at is not None else first_sample_at
    until_periodic = since + settings.interval - now if settings.interval > 0 else None
    if until_periodic is not None and until_periodic <= 0:
        wanted.append(PERIODIC)

    cooldown_left = 0.0
    if state.last_capture_at is not None:
        cooldown_left = max(0.0, settings.cooldown - (now - state.last_capture_at))
    allowed = [r for r in wanted if cooldown_left <= 0 or _escalates(r, state.last_threshold)]
    reason = allowed[0] if allowed else None

    # When nothing is captured, wake up for what is due next: a capture the cooldown holds
    # back, or the next periodic snapshot.
    wake_up: float | None = None
    if reason is None:
        due = [cooldown_left] if wanted else []
        if until_periodic is not None and until_periodic > 0:
            due.append(until_periodic)
        wake_up = min(due, default=None)

    new = replace(
        state,
        samples=samples,
        first_sample_at=first_sample_at,
        fired_thresholds=fired,
        pending_thresholds=crossed if reason_threshold(reason) is not None else frozenset(),
        predicted_fired=predicted_fired,
        average=average,
        growth_level=growth_level,
    )
    decision = Decision(
        capture=reason is not None,
        reason=reason,
        next_sample_in=_next_sample_in(settings, percent, seconds_to_limit, len(samples), wake_up),
        percent_of_limit=percent,
        seconds_to_limit=seconds_to_limit,
        growth_per_second=growth,
    )
    return new, decision


def record_capture(state: TriggerState, at: float, reason: str) -> TriggerState:
    """Note a successful capture taken `at` (POSIX seconds) for `reason`.

    Call it only when the snapshot is safely stored: until then the trigger stays armed. A
    threshold capture marks fired the threshold it names and the lower ones its decision
    covered; "predicted" and "growth" captures mark their trigger as taken for this approach or
    surge. Any reason that is a slug is accepted (e.g. "manual" from the CLI): it counts for
    the cooldown and the periodic interval.
    """
    check_reason(reason)
    if not math.isfinite(at):
        raise ValueError(f"capture time must be finite, got {at!r}")
    if state.last_capture_at is not None and at < state.last_capture_at:
        raise ValueError(
            f"capture at {at} is earlier than the run's last capture at {state.last_capture_at}"
        )
    fired = state.fired_thresholds
    last_threshold = state.last_threshold
    threshold = reason_threshold(reason)
    if threshold is not None:
        covered = {t for t in state.pending_thresholds if t <= threshold}
        fired = fired | covered | {threshold}
        last_threshold = threshold
    growth_level = state.growth_level
    if reason == GROWTH and state.samples:
        growth_level = state.samples[-1].working_set
    return replace(
        state,
        last_capture_at=at,
        last_capture_reason=reason,
        fired_thresholds=fired,
        pending_thresholds=frozenset(),
        last_threshold=last_threshold,
        predicted_fired=state.predicted_fired or reason == PREDICTED,
        growth_level=growth_level,
        captures=state.captures + 1,
    )


def _escalates(reason: str, last_threshold: int | None) -> bool:
    """A threshold above the last one captured may bypass the cooldown: 80 -> 90 -> 95."""
    threshold = reason_threshold(reason)
    return threshold is not None and (last_threshold is None or threshold > last_threshold)


def _fit(samples: Sequence[MemorySample], now: float, window: float) -> tuple[float, float] | None:
    points = [s for s in samples if now - window <= s.at <= now]
    if len(points) < MIN_FIT_SAMPLES:
        return None
    count = len(points)
    # Centre the times: POSIX seconds squared would lose the precision the slope needs.
    mean_at = sum(p.at for p in points) / count
    mean_ws = sum(p.working_set for p in points) / count
    sxx = sum((p.at - mean_at) ** 2 for p in points)
    if sxx <= 0:
        return None
    sxy = sum((p.at - mean_at) * (p.working_set - mean_ws) for p in points)
    slope = sxy / sxx
    fitted_now = mean_ws + slope * (now - mean_at)
    latest = max(points, key=lambda p: p.at)
    return slope, max(fitted_now, float(latest.working_set))


def _projection(
    samples: Sequence[MemorySample], limit: int | None, now: float, settings: TriggerSettings
) -> tuple[float | None, float | None]:
    """The nearer of two projections: over the fit window and over its latest quarter.

    Over the whole window alone, a leak that starts after a long plateau is underestimated
    for a whole window (the plateau flattens the line); the recent fit sees it within seconds.
    Erring towards the nearer limit costs at most one early capture and faster sampling.
    """
    if limit is None:
        fit = _fit(samples, now, settings.fit_window)
        return None, (None if fit is None else fit[0])
    whole = project(samples, limit, now, settings.fit_window)
    recent = project(samples, limit, now, recent_fit_window(samples, now, settings))
    if recent[0] is not None and (whole[0] is None or recent[0] < whole[0]):
        return recent
    return whole


def recent_fit_window(
    samples: Sequence[MemorySample], now: float, settings: TriggerSettings
) -> float:
    """The quick fit's window: the latest quarter of the fit window, stretched to hold the
    last three samples when sampling is sparse (at 15 s, a 30 s window holds only two once
    the intervals jitter past 15 s, and the quick fit would never speak)."""
    quarter = settings.fit_window / RECENT_FIT_FRACTION
    if len(samples) < MIN_FIT_SAMPLES:
        return quarter
    third_last = samples[-MIN_FIT_SAMPLES].at
    return min(settings.fit_window, max(quarter, now - third_last))


def _percent(working_set: int, limit: int | None) -> float | None:
    return None if limit is None else 100.0 * working_set / limit


def _bounded(samples: tuple[MemorySample, ...], window: float) -> tuple[MemorySample, ...]:
    """Keep the fit window (at least the last three samples), never more than MAX_SAMPLES."""
    newest = samples[-1].at
    keep = len(samples)
    while keep > MIN_FIT_SAMPLES and samples[len(samples) - keep].at < newest - window:
        keep -= 1
    return samples[len(samples) - min(keep, MAX_SAMPLES) :]


def _moving_average(state: TriggerState, sample: MemorySample, window: float) -> float:
    """Time-weighted exponential moving average: sampling speeds up near the limit, and a
    count-based average would then shrink its own window."""
    if state.average is None or not state.samples:
        return float(sample.working_set)
    elapsed = sample.at - state.samples[-1].at
    weight = 1.0 - math.exp(-elapsed / window)
    return state.average + (sample.working_set - state.average) * weight


def _next_sample_in(
    settings: TriggerSettings,
    percent: float | None,
    seconds_to_limit: float | None,
    sample_count: int,
    wake_up: float | None,
) -> float:
    if sample_count < MIN_FIT_SAMPLES:
        return settings.min_sample_interval  # a new run: get the fit going
    wait = settings.sample_interval
    if percent is not None:
        headroom = max(0.0, 100.0 - percent)
        wait = min(wait, settings.sample_interval * headroom / CALM_HEADROOM_PERCENT)
    if seconds_to_limit is not None:
        wait = min(wait, seconds_to_limit / SAMPLES_BEFORE_LIMIT)
    if wake_up is not None:
        wait = min(wait, wake_up)
    return min(settings.sample_interval, max(settings.min_sample_interval, wait))
