"""A Python DAG's `schedule=` (and start_date, end_date, catchup) as the DAG spec's `schedule` or
`timetable` fields; `kdag.schedules` computes the runs from them."""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from typing import Any

from kdag_runner import timetables
from kdag_runner.airflow import DAG

from kdag import schedules
from kdag.compile.errors import DefinitionError


def schedule_fields(dag: DAG) -> dict[str, Any]:
    """The spec fields of the DAG's schedule, as Airflow 3 reads `schedule=` (docs/design.md, "DAG"):

    None (or NullTimetable): {} (the DAG runs only when triggered); "@once" (or OnceTimetable):
    `schedule: "@once"`; a cron string or preset: `schedule` (CronTriggerTimetable in UTC), or `timetable:
    {cron}` when start_date/end_date or start_date's time zone say more; a timedelta: `timetable:
    {everySeconds}` (DeltaTriggerTimetable); a timetable object: `timetable` with its arguments. The
    validator checks cron syntax and time zones.
    """
    where = f"DAG '{dag.dag_id}'"
    value = dag.schedule if dag.schedule is not None else getattr(dag, "extra", {}).get("timetable")
    if value is None or isinstance(value, timetables.NullTimetable):
        return {}
    if value == schedules.ONCE or isinstance(value, timetables.OnceTimetable):
        return {"schedule": schedules.ONCE}
    # catchup=True: each missed tick runs, oldest first, from start_date (kdag.schedules.due_run).
    catchup = {"catchup": True} if getattr(dag, "catchup", False) else {}
    window: dict[str, Any] = {}
    if dag.start_date is not None:
        window["start"] = _rfc3339(where, "start_date", dag.start_date)
    if getattr(dag, "end_date", None) is not None:
        window["end"] = _rfc3339(where, "end_date", dag.end_date)
    if isinstance(value, str):
        # Airflow reads a cron string in the DAG's time zone: start_date's, else UTC.
        zone = _zone_name(where, dag.start_date.tzinfo if dag.start_date is not None else None)
        if not window and zone == "UTC":
            return {"schedule": value, **catchup}
        return {"timetable": {"cron": value, **_zone_field(zone), **window}, **catchup}
    return {"timetable": {**_timetable_fields(where, value), **window}, **catchup}


def _timetable_fields(where: str, value: object) -> dict[str, Any]:
    """The `spec.timetable` fields of a timedelta or an Airflow timetable object (without start/end)."""
    if isinstance(value, timedelta):
        return {"everySeconds": _whole_seconds(where, "schedule", value)}
    if isinstance(value, timetables.CronTriggerTimetable | timetables.MultipleCronTriggerTimetable):
        if value.run_immediately is not False:
            raise DefinitionError(
                f"{where}: run_immediately={value.run_immediately!r} is not supported: kdag never creates"
                " runs for past ticks; the first run is the next tick"
            )
        if isinstance(value, timetables.CronTriggerTimetable):
            fields: dict[str, Any] = {"cron": value.cron}
        else:
            fields = {"crons": list(value.crons)}
        fields.update(_zone_field(_zone_name(where, value.timezone)))
        return {**fields, **_interval_field(where, value.interval)}
    if isinstance(value, timetables.CronDataIntervalTimetable):
        return {"cron": value.cron, **_zone_field(_zone_name(where, value.timezone)), "dataIntervals": True}
    if isinstance(value, timetables.DeltaTriggerTimetable):
        every = _whole_seconds(where, "delta", value.delta)
        return {"everySeconds": every, **_interval_field(where, value.interval)}
    if isinstance(value, timetables.DeltaDataIntervalTimetable):
        return {"everySeconds": _whole_seconds(where, "delta", value.delta), "dataIntervals": True}
    if isinstance(value, timetables.EventsTimetable):
        events = sorted({_rfc3339(where, "event_dates", event) for event in value.event_dates})
        if not events:
            raise DefinitionError(f"{where}: EventsTimetable has no event_dates")
        fields = {"events": events}
        if value.restrict_to_events:
            fields["restrictToEvents"] = True
        return fields
    kind = type(value).__name__
    if isinstance(value, timetables.ContinuousTimetable) or value == "@continuous":
        kind = "@continuous"
    raise DefinitionError(
        f"{where}: schedule {kind} is not one kdag runs: give None, '@once', a cron expression or preset"
        " such as '@daily', a timedelta, or CronTriggerTimetable, CronDataIntervalTimetable,"
        " MultipleCronTriggerTimetable, DeltaTriggerTimetable, DeltaDataIntervalTimetable or EventsTimetable"
    )


def _whole_seconds(where: str, name: str, value: timedelta) -> int:
    seconds = value.total_seconds()
    if seconds != int(seconds):
        raise DefinitionError(f"{where}: {name} {value!r} is not a whole number of seconds")
    return int(seconds)


def _interval_field(where: str, interval: timedelta) -> dict[str, Any]:
    seconds = _whole_seconds(where, "interval", interval)
    return {"intervalSeconds": seconds} if seconds else {}


def _zone_field(zone: str) -> dict[str, Any]:
    return {} if zone == "UTC" else {"timezone": zone}


def _zone_name(where: str, zone: object) -> str:
    """The IANA name of a time zone given as a name or a tzinfo (zoneinfo, pendulum, a whole-hour offset)."""
    if zone is None or isinstance(zone, str):
        return "UTC" if zone is None or zone.upper() in ("UTC", "Z", "ETC/UTC") else zone
    if isinstance(zone, tzinfo):
        name = getattr(zone, "key", None) or getattr(zone, "name", None)
        if isinstance(name, str) and schedules.timezone_problem(name) is None:
            return "UTC" if name.upper() in ("UTC", "ETC/UTC") else name
        offset = zone.utcoffset(None)
        if offset is not None and offset.total_seconds() % 3600 == 0:
            hours = int(offset.total_seconds() // 3600)
            return "UTC" if hours == 0 else f"Etc/GMT{-hours:+d}"  # IANA's Etc/GMT signs are inverted
    raise DefinitionError(f"{where}: time zone {zone!r} has no IANA name; use zoneinfo.ZoneInfo('Area/City')")


def _rfc3339(where: str, name: str, value: object) -> str:
    """An RFC 3339 UTC time (naive times are UTC, Airflow's default time zone); whole seconds."""
    if not isinstance(value, datetime):
        raise DefinitionError(f"{where}: {name} {value!r} is not a datetime")
    return schedules.utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")
