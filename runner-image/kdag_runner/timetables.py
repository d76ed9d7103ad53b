"""Airflow's timetable classes, as kdag's DAG files see them: plain records of their arguments.

A DAG file passes one as ``schedule=`` (``from airflow.timetables.trigger import CronTriggerTimetable``,
or ``from airflow.sdk import ...``). Nothing here computes a time: ``kdag compile`` reads the arguments into
the DAG's ``spec.timetable`` and the controller schedules from that (``kdag.schedules``). The runner never
needs them at run time beyond constructing them while the DAG file loads, so this module is standard
library only (no pendulum, no croniter) and checks only the arguments' types, as Airflow's constructors do.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta, tzinfo
from typing import Any

__all__ = [
    "BaseTimetable",
    "ContinuousTimetable",
    "CronDataIntervalTimetable",
    "CronTriggerTimetable",
    "DeltaDataIntervalTimetable",
    "DeltaTriggerTimetable",
    "EventsTimetable",
    "MultipleCronTriggerTimetable",
    "NullTimetable",
    "OnceTimetable",
    "Timetable",
]

TimezoneArg = str | tzinfo


class BaseTimetable:
    """Base of every timetable: equal when of the same class with the same arguments."""

    def _arguments(self) -> dict[str, Any]:
        return dict(vars(self))

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, BaseTimetable)
        return self._arguments() == other._arguments()

    def __hash__(self) -> int:
        return hash((type(self).__name__, repr(sorted(self._arguments().items()))))

    def __repr__(self) -> str:
        arguments = ", ".join(f"{key}={value!r}" for key, value in self._arguments().items())
        return f"{type(self).__name__}({arguments})"


Timetable = BaseTimetable
"""Airflow's ``airflow.timetables.base.Timetable`` (custom timetables subclass it; kdag runs none)."""


def _cron(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"a cron expression is a string, not {type(value).__name__}")
    return value


def _timezone(value: object) -> TimezoneArg:
    if not isinstance(value, str | tzinfo):
        raise TypeError(f"timezone must be a time zone name or a tzinfo, not {type(value).__name__}")
    return value


def _delta(name: str, value: object) -> timedelta:
    if not isinstance(value, timedelta):
        raise TypeError(f"{name} must be a datetime.timedelta, not {type(value).__name__}")
    return value


class NullTimetable(BaseTimetable):
    """``schedule=None``: the DAG runs only when triggered."""


class OnceTimetable(BaseTimetable):
    """``schedule="@once"``: one run when the DAG is created."""


class ContinuousTimetable(BaseTimetable):
    """``schedule="@continuous"``: a run as soon as the previous one ends (kdag does not run this one)."""


class CronTriggerTimetable(BaseTimetable):
    """A run at each tick of ``cron`` in ``timezone``; its data interval is ``interval`` before the tick."""

    def __init__(
        self,
        cron: str,
        timezone: TimezoneArg = "UTC",
        *,
        interval: timedelta = timedelta(),
        run_immediately: bool | timedelta = False,
    ) -> None:
        self.cron = _cron(cron)
        self.timezone = _timezone(timezone)
        self.interval = _delta("interval", interval)
        if not isinstance(run_immediately, bool | timedelta):
            raise TypeError("run_immediately must be a bool or a datetime.timedelta")
        self.run_immediately = run_immediately


class CronDataIntervalTimetable(BaseTimetable):
    """A run when each interval between two ticks of ``cron`` ends; its logical date is the interval start."""

    def __init__(self, cron: str, timezone: TimezoneArg = "UTC") -> None:
        self.cron = _cron(cron)
        self.timezone = _timezone(timezone)


class MultipleCronTriggerTimetable(BaseTimetable):
    """A run at each tick of any of ``crons`` (one run when several tick at once)."""

    def __init__(
        self,
        *crons: str,
        timezone: TimezoneArg = "UTC",
        interval: timedelta = timedelta(),
        run_immediately: bool | timedelta = False,
    ) -> None:
        if not crons:
            raise ValueError("cron expression required")
        self.crons = tuple(_cron(cron) for cron in crons)
        self.timezone = _timezone(timezone)
        self.interval = _delta("interval", interval)
        if not isinstance(run_immediately, bool | timedelta):
            raise TypeError("run_immediately must be a bool or a datetime.timedelta")
        self.run_immediately = run_immediately


class DeltaTriggerTimetable(BaseTimetable):
    """A run every ``delta``; its data interval is ``interval`` before the run."""

    def __init__(self, delta: timedelta, *, interval: timedelta = timedelta()) -> None:
        self.delta = _delta("delta", delta)
        self.interval = _delta("interval", interval)


class DeltaDataIntervalTimetable(BaseTimetable):
    """A run when each interval of ``delta`` ends; its logical date is the interval start."""

    def __init__(self, delta: timedelta) -> None:
        self.delta = _delta("delta", delta)


class EventsTimetable(BaseTimetable):
    """A run at each of ``event_dates`` (sorted, duplicates dropped)."""

    def __init__(
        self,
        event_dates: Iterable[datetime],
        *,
        restrict_to_events: bool = False,
        presorted: bool = False,
        description: str | None = None,
    ) -> None:
        dates = list(event_dates)
        for date in dates:
            if not isinstance(date, datetime):
                raise TypeError(f"event dates must be datetimes, not {type(date).__name__}")
        self.event_dates = dates if presorted else sorted(dates, key=_sort_key)
        self.restrict_to_events = bool(restrict_to_events)
        self.description = description


def _sort_key(date: datetime) -> float:
    """Naive times are UTC (Airflow's default time zone), so aware and naive dates sort together."""
    if date.tzinfo is None:
        return (date - datetime(1970, 1, 1)).total_seconds()
    return date.timestamp()
