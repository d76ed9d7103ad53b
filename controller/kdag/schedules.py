"""Pure: when a DAG runs. Airflow's timetables read from a DAG spec, and the runs they make.

A DAG's time schedule is one of (Airflow 3's class in brackets):
- `Cron`: a run at each tick of one or more cron expressions in a time zone [CronTriggerTimetable, which a
  cron string or preset in `schedule` means in Airflow 3; MultipleCronTriggerTimetable], or with
  `data_intervals` a run when each interval between two ticks ends [CronDataIntervalTimetable];
- `Delta`: a run every `every` [DeltaTriggerTimetable, which a `timedelta` means in Airflow 3], or with
  `data_intervals` a run when each interval of `every` ends [DeltaDataIntervalTimetable];
- `Events`: a run at each listed time [EventsTimetable].
`schedule: "@once"` and no schedule at all have no ticks (`timetable_of` gives None): the handler starts the
one run of an `@once` DAG when it is created, and an unscheduled DAG runs only when triggered.

As in Airflow, a run's logical date is its data interval's start and it is due (`run_after`) at the
interval's end: for a trigger timetable the tick (its interval is `interval` long and ends at the tick,
zero by default), for a data-interval timetable the end of the interval between two ticks. Airflow's
`start_date` and `end_date` are `start` and `end`: ticks (interval starts, for data intervals) before
`start` or after `end` make no run.

Where kdag differs from Airflow's scheduler, on purpose:
- It is stateless: the ticks of a `Delta` are `start + k * every` (the Unix epoch when there is no `start`)
  whenever the controller looks, where Airflow chains each run from the previous one (and, with catchup
  off, starts the chain when it first schedules the DAG).
- No run is made for a tick that passed before the controller first scheduled the DAG (Airflow creates the
  most recent past run then), unless catchup is on and the timetable has a `start`. Ticks missed after
  that (the controller was away, a run could not be made) follow Airflow's `catchup` (`due_run`): off, only
  the newest missed tick runs, as Airflow does after a DAG is unpaused; on, each missed tick runs once,
  oldest first.
Cron expressions are read in local time (zoneinfo) and each tick is converted to UTC, as Airflow does: an
expression that fires every hour keeps firing hourly across daylight-saving changes; other expressions
fire at the first occurrence of a repeated local time and just after a skipped one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from functools import cache
from itertools import pairwise
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from kdag.api import models

ONCE = "@once"
"""Airflow's `@once`: one run when the DAG is created, no ticks."""
CRON_PRESETS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@quarterly": "0 0 1 */3 *",
    "@yearly": "0 0 1 1 *",
}
"""Airflow's cron presets; other `@` names (`@midnight`, `@annually`) go to croniter, as Airflow lets them."""
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_STEP = timedelta(microseconds=1)


@dataclass(frozen=True)
class DataInterval:
    """The period of data a run covers (Airflow's data_interval_start/end), UTC."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class ScheduledRun:
    """One run of a timetable: when it is due and the data interval it covers."""

    run_after: datetime
    """When the run is due: its tick (for a data-interval timetable, the end of its interval). Names it."""
    data_interval: DataInterval

    @property
    def logical_date(self) -> datetime:
        """The run's logical date: its data interval's start, as in Airflow."""
        return self.data_interval.start


@dataclass(frozen=True)
class Cron:
    """Ticks of one or more cron expressions (presets resolved) read in `timezone`."""

    expressions: tuple[str, ...]
    timezone: str = "UTC"
    interval: timedelta = timedelta()
    data_intervals: bool = False
    start: datetime | None = None
    end: datetime | None = None


@dataclass(frozen=True)
class Delta:
    """Ticks every `every`, aligned to `start` (else to the Unix epoch)."""

    every: timedelta
    interval: timedelta = timedelta()
    data_intervals: bool = False
    start: datetime | None = None
    end: datetime | None = None


@dataclass(frozen=True)
class Events:
    """Ticks at listed times (sorted, distinct, UTC, whole seconds)."""

    events: tuple[datetime, ...]
    restrict_to_events: bool = False
    start: datetime | None = None
    end: datetime | None = None


Timetable = Cron | Delta | Events


# --- reading a DAG spec --------------------------------------------------------------------------------


def cron_expression(text: str) -> str:
    """The cron expression of a schedule string: Airflow's presets resolved, anything else as given."""
    return CRON_PRESETS.get(text, text)


def cron_problem(text: str) -> str | None:
    """Why `text` is not a cron expression kdag runs, or None: 5 fields, or a preset such as `@daily`.

    Scheduled runs are named by their minute, so croniter's seconds (and year) fields are refused.
    """
    expression = cron_expression(text)
    preset = expression.strip().startswith("@")
    if (preset or len(expression.split()) == 5) and croniter.is_valid(expression):
        return None
    return f"{text!r} is not a cron expression: give 5 fields (minute hour day month weekday)"


def timezone_problem(name: str) -> str | None:
    """Why `name` is not an IANA time zone this controller knows, or None."""
    try:
        _zone(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a directory, a name too long
        return f"{name!r} is not an IANA time zone (such as 'UTC' or 'Europe/Amsterdam')"
    return None


def utc(value: datetime) -> datetime:
    """An aware UTC datetime; a naive one is UTC (Airflow's default time zone)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def timetable_of(spec: models.DAGSpec) -> Timetable | None:
    """The DAG's time schedule; None when it has none (no schedule: triggered runs only; or `@once`).

    The spec is one `kdag.api.validation` passed: a cron or time zone it refuses raises here.
    """
    if spec.timetable is not None:
        return from_model(spec.timetable)
    if spec.schedule is None or spec.schedule == ONCE:
        return None
    return Cron((cron_expression(spec.schedule),))


def from_model(model: models.Timetable) -> Timetable:
    """The timetable a DAG's `spec.timetable` describes."""
    start = utc(model.start) if model.start is not None else None
    end = utc(model.end) if model.end is not None else None
    interval = timedelta(seconds=model.interval_seconds or 0)
    data_intervals = bool(model.data_intervals)
    if model.cron is not None or model.crons is not None:
        expressions = [model.cron] if model.cron is not None else list(model.crons or [])
        return Cron(
            tuple(cron_expression(e) for e in expressions),
            model.timezone or "UTC",
            interval,
            data_intervals,
            start,
            end,
        )
    if model.every_seconds is not None:
        return Delta(timedelta(seconds=model.every_seconds), interval, data_intervals, start, end)
    if model.events is not None:
        events = sorted({utc(e).replace(microsecond=0) for e in model.events})
        return Events(tuple(events), bool(model.restrict_to_events), start, end)
    raise ValueError("a timetable needs exactly one of cron, crons, everySeconds or events")


# --- ticks ---------------------------------------------------------------------------------------------


@cache
def _zone(name: str) -> tzinfo:
    if name.upper() in ("UTC", "Z", "ETC/UTC"):
        return UTC
    return ZoneInfo(name)


@cache
def _covers_every_hour(expression: str) -> bool:
    """Whether the expression fires in every hour (Airflow's test for the daylight-saving fold)."""
    return bool(croniter(expression).expanded[1] == ["*"])


def _cron_step(expression: str, zone: tzinfo, after: datetime, forward: bool) -> datetime:
    """The first tick strictly after `after` (forward) or strictly before it, as an aware UTC time."""
    naive = after.astimezone(zone).replace(tzinfo=None)
    cursor = naive
    for _ in range(8):  # a local time that is skipped or repeated needs at most a step or two more
        iterator = croniter(expression, cursor)
        found: datetime = iterator.get_next(datetime) if forward else iterator.get_prev(datetime)
        if _covers_every_hour(expression):
            tick = after + (found - naive)  # elapsed time, so an hourly cron stays hourly across DST
        else:
            tick = found.replace(tzinfo=zone).astimezone(UTC)
        if (tick > after) if forward else (tick < after):
            return tick.astimezone(UTC)
        cursor = found
    raise ValueError(f"cron {expression!r} has no tick near {after.isoformat()}")


def _next_tick(timetable: Timetable, after: datetime) -> datetime | None:
    """The first tick strictly after `after`; None when there is none (events ran out)."""
    if isinstance(timetable, Cron):
        zone = _zone(timetable.timezone)
        return min(_cron_step(e, zone, after, True) for e in timetable.expressions)
    if isinstance(timetable, Delta):
        anchor = timetable.start or EPOCH
        steps = (after - anchor) // timetable.every
        return anchor + (steps + 1) * timetable.every
    return next((event for event in timetable.events if event > after), None)


def _prev_tick(timetable: Timetable, before: datetime) -> datetime | None:
    """The last tick strictly before `before`; None when there is none."""
    if isinstance(timetable, Cron):
        zone = _zone(timetable.timezone)
        return max(_cron_step(e, zone, before, False) for e in timetable.expressions)
    if isinstance(timetable, Delta):
        anchor = timetable.start or EPOCH
        steps = -((anchor - before) // timetable.every)  # ceil((before - anchor) / every)
        return anchor + (steps - 1) * timetable.every
    return next((event for event in reversed(timetable.events) if event < before), None)


def _tick_at_or_after(timetable: Timetable, when: datetime) -> datetime | None:
    return _next_tick(timetable, when - _STEP)


def _tick_at_or_before(timetable: Timetable, when: datetime) -> datetime | None:
    return _prev_tick(timetable, when + _STEP)


def _is_data_interval(timetable: Timetable) -> bool:
    return not isinstance(timetable, Events) and timetable.data_intervals


def _trigger_run(timetable: Timetable, tick: datetime) -> ScheduledRun:
    interval = timedelta() if isinstance(timetable, Events) else timetable.interval
    return ScheduledRun(tick, DataInterval(tick - interval, tick))


# --- runs ----------------------------------------------------------------------------------------------


def next_run(timetable: Timetable, after: datetime) -> ScheduledRun | None:
    """The first run of `timetable` due strictly after `after`; None when it makes no more runs.

    Its `run_after` is when to create it, its `logical_date` and `data_interval` what the run gets.
    Ticks before `start` or after `end` make no run (for a data-interval timetable: interval starts).
    """
    after = utc(after)
    start, end = timetable.start, timetable.end
    if not _is_data_interval(timetable):
        if start is not None and start > after:
            tick = _tick_at_or_after(timetable, start)
        else:
            tick = _next_tick(timetable, after)
        if tick is None or (end is not None and tick > end):
            return None
        return _trigger_run(timetable, tick)
    interval_end = _next_tick(timetable, after)
    interval_start = _prev_tick(timetable, interval_end) if interval_end is not None else None
    if interval_start is None or interval_end is None:
        return None
    if start is not None and interval_start < start:
        interval_start = _tick_at_or_after(timetable, start)
        interval_end = _next_tick(timetable, interval_start) if interval_start is not None else None
        if interval_start is None or interval_end is None:
            return None
    if end is not None and interval_start > end:
        return None
    return ScheduledRun(interval_end, DataInterval(interval_start, interval_end))


def latest_run(timetable: Timetable, at: datetime) -> ScheduledRun | None:
    """The last run of `timetable` due at or before `at`; None when there is none.

    The controller makes it when it comes back after missing ticks (catchup off: only the newest one).
    """
    at = utc(at)
    start, end = timetable.start, timetable.end
    if not _is_data_interval(timetable):
        tick = _tick_at_or_before(timetable, at)
        if tick is not None and end is not None and tick > end:
            tick = _tick_at_or_before(timetable, end)
        if tick is None or (start is not None and tick < start):
            return None
        return _trigger_run(timetable, tick)
    interval_end = _tick_at_or_before(timetable, at)
    interval_start = _prev_tick(timetable, interval_end) if interval_end is not None else None
    if interval_start is not None and end is not None and interval_start > end:
        interval_start = _tick_at_or_before(timetable, end)
        interval_end = _next_tick(timetable, interval_start) if interval_start is not None else None
    if interval_start is None or interval_end is None:
        return None
    if start is not None and interval_start < start:
        return None
    return ScheduledRun(interval_end, DataInterval(interval_start, interval_end))


def missed_run(
    timetable: Timetable, last_logical_date: datetime | None, now: datetime
) -> ScheduledRun | None:
    """The run to make now for ticks missed while no controller watched, or None (catchup off).

    Only after a scheduled run was made (`last_logical_date`, the DAG's status.lastScheduleTime): the newest
    run due by `now` when it is newer than that one, as Airflow does when a DAG is unpaused. A DAG seen for
    the first time gets no run for a tick that passed before.
    """
    if last_logical_date is None:
        return None
    return due_run(timetable, resume_cursor(timetable, last_logical_date, now, catchup=False), now, False)


def resume_cursor(
    timetable: Timetable, last_logical_date: datetime | None, now: datetime, catchup: bool
) -> datetime:
    """Where a schedule starting at `now` resumes: every run due at or before the time returned was made
    (or passed over); `due_run` makes the ones after it.

    After a scheduled run was made (`last_logical_date`, the DAG's status.lastScheduleTime), just before the
    first run with a later logical date, so the ticks missed since are due; for a DAG never scheduled, `now`
    (no run for a tick before the controller saw it), or with `catchup` just before the timetable's
    `start`, as Airflow's catchup runs from start_date.
    """
    now = utc(now)
    if last_logical_date is None:
        if catchup and timetable.start is not None and timetable.start < now:
            return timetable.start - _STEP
        return now
    last = utc(last_logical_date)
    run = next_run(timetable, last - _STEP)
    while run is not None and run.logical_date <= last:
        run = next_run(timetable, run.run_after)
    if run is None:
        return now
    return min(run.run_after - _STEP, now)


def due_run(timetable: Timetable, cursor: datetime, now: datetime, catchup: bool) -> ScheduledRun | None:
    """The run to make at `now` when every run due at or before `cursor` was made; None when none is due.

    With `catchup`, the oldest run due after the cursor (each missed tick runs once, oldest first, as
    Airflow's catchup=True); without, the newest run due by `now` when it is after the cursor (the ticks
    missed before it are passed over, as Airflow's catchup=False). Make it, then move the cursor to its
    `run_after`; a run that could not be made stays due.
    """
    now = utc(now)
    run = next_run(timetable, cursor) if catchup else latest_run(timetable, now)
    if run is None or run.run_after > now or run.run_after <= utc(cursor):
        return None
    return run


def manual_data_interval(timetable: Timetable | None, logical_date: datetime) -> DataInterval:
    """The data interval of a run nobody scheduled (a DAGRun, `kdag trigger`, an `@once` or local run).

    Airflow's `infer_manual_data_interval` at the run's logical date: the instant itself without a
    timetable; `interval` before it for a trigger timetable; for a cron data-interval timetable the last
    complete interval ending at or before it, for a delta one the `every` before it; for events restricted
    to events the latest event at or before it (the first event, when it is before them all).
    """
    when = utc(logical_date)
    if timetable is None:
        return DataInterval(when, when)
    if isinstance(timetable, Events):
        if not timetable.restrict_to_events:
            return DataInterval(when, when)
        event = _tick_at_or_before(timetable, when) or timetable.events[0]
        return DataInterval(event, event)
    if not timetable.data_intervals:
        return DataInterval(when - timetable.interval, when)
    if isinstance(timetable, Delta):
        return DataInterval(when - timetable.every, when)
    end = _tick_at_or_before(timetable, when) or when
    return DataInterval(_prev_tick(timetable, end) or end, end)


def describe(timetable: Timetable | None) -> str:
    """A short text of the schedule, for messages."""
    if timetable is None:
        return "no schedule"
    if isinstance(timetable, Cron):
        text = ", ".join(timetable.expressions)
        return f"cron {text} ({timetable.timezone})"
    if isinstance(timetable, Delta):
        return f"every {int(timetable.every.total_seconds())} s"
    return f"{len(timetable.events)} events"


def minute_collisions(times: Sequence[datetime]) -> list[tuple[datetime, datetime]]:
    """Pairs of consecutive distinct times (sorted) in the same minute: their runs would share a name."""
    ordered = sorted({utc(t).replace(microsecond=0) for t in times})
    return [
        (a, b)
        for a, b in pairwise(ordered)
        if a.replace(second=0) == b.replace(second=0)
    ]
