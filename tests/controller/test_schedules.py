"""When a DAG runs: `kdag.schedules` against Airflow 3's documented timetable behaviour.

The Airflow statements quoted come from its docs (authoring-and-scheduling/timetable.rst, core-concepts/
dag-run.rst) and its timetables' docstrings; where kdag differs on purpose (catchup off, a stateless
scheduler: docs/design.md, "Schedules"), the test says so. The cluster test at the end checks the CRD's
CEL rules for `spec.timetable` as the API server applies them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from kdag import compile as compiler
from kdag import schedules
from kdag.api.models import DAGSpec
from kdag.api.validation import dag_spec_problems, manifest_problems
from kdag.compile.python_dags import python_dag_spec
from kdag.render import RunInfo, task_env
from kdag.schedules import Cron, DataInterval, Delta, Events, ScheduledRun
from kdag_runner import timetables
from kdag_runner.airflow import DAG, BashOperator
from kube_helpers import KubectlError, kubectl

AMSTERDAM = ZoneInfo("Europe/Amsterdam")


def t(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def run_at(tick: datetime, start: datetime | None = None) -> ScheduledRun:
    return ScheduledRun(tick, DataInterval(start or tick, tick))


def ticks(timetable: schedules.Timetable, after: datetime, count: int) -> list[datetime]:
    found = []
    for _ in range(count):
        run = schedules.next_run(timetable, after)
        assert run is not None
        found.append(run.run_after)
        after = run.run_after
    return found


# --- schedule strings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("preset", "cron"),
    [
        ("@hourly", "0 * * * *"),
        ("@daily", "0 0 * * *"),
        ("@weekly", "0 0 * * 0"),
        ("@monthly", "0 0 1 * *"),
        ("@quarterly", "0 0 1 */3 *"),
        ("@yearly", "0 0 1 1 *"),
    ],
)
def test_airflow_presets_mean_their_cron(preset: str, cron: str) -> None:
    """airflow.utils.dates.cron_presets; Airflow passes any other string (such as @midnight) to croniter."""
    assert schedules.cron_expression(preset) == cron
    assert schedules.cron_problem(preset) is None
    assert ticks(Cron((schedules.cron_expression(preset),)), t(2024, 2, 10, 13), 2) == ticks(
        Cron((cron,)), t(2024, 2, 10, 13), 2
    )


def test_croniter_presets_airflow_passes_through_tick_like_their_twins() -> None:
    after = t(2024, 5, 6, 7, 8)
    assert ticks(Cron(("@midnight",)), after, 3) == ticks(Cron(("0 0 * * *",)), after, 3)
    assert ticks(Cron(("@annually",)), after, 2) == [t(2025, 1, 1), t(2026, 1, 1)]


def test_quarterly_ticks_on_the_first_of_each_quarter() -> None:
    assert ticks(Cron((schedules.cron_expression("@quarterly"),)), t(2024, 2, 10), 4) == [
        t(2024, 4, 1), t(2024, 7, 1), t(2024, 10, 1), t(2025, 1, 1),
    ]  # fmt: skip


@pytest.mark.parametrize("text", ["every day", "0 0 * * * 30", "@reboot", "@continuous", "* * *", ""])
def test_what_is_not_a_five_field_cron_is_refused(text: str) -> None:
    assert schedules.cron_problem(text) == (
        f"{text!r} is not a cron expression: give 5 fields (minute hour day month weekday)"
    )


def test_every_yaml_example_but_the_scheduled_one_runs_once_when_applied() -> None:
    """A DAG without a schedule runs only when triggered: the examples meant to run on apply say @once."""
    examples = Path(__file__).resolve().parents[2] / "examples"
    found = {
        doc["metadata"]["name"]: doc["spec"].get("schedule")
        for path in examples.glob("*.yaml")
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc.get("kind") == "DAG"
    }
    assert found.pop("scheduled-report") == "*/15 * * * *"
    assert found and set(found.values()) == {"@once"}, found


def test_a_spec_without_schedule_and_once_have_no_ticks() -> None:
    """schedule=None: runs only when triggered; @once: the handler's one run at creation, no ticks."""
    tasks = [{"id": "a", "command": ["true"]}]
    assert schedules.timetable_of(DAGSpec.model_validate({"tasks": tasks})) is None
    assert schedules.timetable_of(DAGSpec.model_validate({"tasks": tasks, "schedule": "@once"})) is None
    daily = DAGSpec.model_validate({"tasks": tasks, "schedule": "@daily"})
    assert schedules.timetable_of(daily) == Cron(("0 0 * * *",))


# --- CronTriggerTimetable (a cron string in Airflow 3) -----------------------------------------------


def test_cron_trigger_runs_at_each_tick_with_a_point_data_interval() -> None:
    """'In Airflow 3, a bare cron string such as @daily in schedule= resolves to CronTriggerTimetable';
    'by default data_interval_start and data_interval_end are the same (the trigger time)'.

    Enabled at 3PM on January 31st: Airflow's docs disagree on a past start_date (timetable.rst runs
    midnight January 31st at once, dag-run.rst does not); kdag never makes a run for a tick that passed
    before it saw the DAG, so the first run is midnight February 1st."""
    daily = Cron(("0 0 * * *",))
    run = schedules.next_run(daily, t(2024, 1, 31, 15))
    assert run == run_at(t(2024, 2, 1))
    assert run is not None and run.logical_date == t(2024, 2, 1)
    assert schedules.next_run(daily, t(2024, 2, 1)) == run_at(t(2024, 2, 2))  # strictly after


def test_cron_trigger_interval_ends_at_the_tick() -> None:
    """'Runs every Friday at 18:00 to cover the work week (9:00 Monday to 18:00 Friday)':
    CronTriggerTimetable("0 18 * * 5", timezone="UTC", interval=timedelta(days=4, hours=9)); the logical
    date is the data interval's start."""
    week = Cron(("0 18 * * 5",), interval=timedelta(days=4, hours=9))
    run = schedules.next_run(week, t(2024, 6, 3))  # a Monday
    assert run == ScheduledRun(t(2024, 6, 7, 18), DataInterval(t(2024, 6, 3, 9), t(2024, 6, 7, 18)))
    assert run.logical_date == t(2024, 6, 3, 9)


def test_multiple_cron_trigger_runs_at_the_ticks_of_any_once_per_time() -> None:
    """MultipleCronTriggerTimetable("10 1 * * *", "40 2 * * *"): 'At 1:10 and 2:40 each day';
    'Only at most one run is triggered for any given time'."""
    both = Cron(("10 1 * * *", "40 2 * * *"))
    assert ticks(both, t(2024, 1, 1), 4) == [
        t(2024, 1, 1, 1, 10), t(2024, 1, 1, 2, 40), t(2024, 1, 2, 1, 10), t(2024, 1, 2, 2, 40),
    ]  # fmt: skip
    same = Cron(("0 * * * *", "0 */2 * * *"))
    assert ticks(same, t(2024, 1, 1), 3) == [t(2024, 1, 1, 1), t(2024, 1, 1, 2), t(2024, 1, 1, 3)]


def test_cron_reads_local_time_in_its_time_zone() -> None:
    nine = Cron(("0 9 * * *",), "Europe/Amsterdam")
    assert schedules.next_run(nine, t(2024, 1, 10)) == run_at(t(2024, 1, 10, 8))  # CET, UTC+1
    assert schedules.next_run(nine, t(2024, 7, 10)) == run_at(t(2024, 7, 10, 7))  # CEST, UTC+2


def test_a_skipped_local_time_runs_just_after_the_gap() -> None:
    """Europe/Amsterdam skips 02:00-03:00 on 2024-03-31: the 02:30 tick comes at 03:30 CEST."""
    night = Cron(("30 2 * * *",), "Europe/Amsterdam")
    assert ticks(night, t(2024, 3, 30, 12), 2) == [t(2024, 3, 31, 1, 30), t(2024, 4, 1, 0, 30)]


def test_an_hourly_cron_stays_hourly_across_the_fall_back() -> None:
    """Airflow's fold-hour rule: a cron that fires every hour fires in the repeated hour too
    (Europe/Amsterdam repeats 02:00-03:00 local on 2024-10-27, 00:00-02:00 UTC)."""
    hourly = Cron(("0 * * * *",), "Europe/Amsterdam")
    assert ticks(hourly, t(2024, 10, 26, 22, 30), 5) == [
        t(2024, 10, 26, 23), t(2024, 10, 27, 0), t(2024, 10, 27, 1), t(2024, 10, 27, 2), t(2024, 10, 27, 3),
    ]  # fmt: skip
    daily = Cron(("30 2 * * *",), "Europe/Amsterdam")  # the repeated 02:30 runs once, at its first occurrence
    assert ticks(daily, t(2024, 10, 26, 12), 2) == [t(2024, 10, 27, 0, 30), t(2024, 10, 28, 1, 30)]


# --- CronDataIntervalTimetable ------------------------------------------------------------------------


def test_cron_data_interval_runs_when_the_interval_ends_logical_date_its_start() -> None:
    """'For a data interval timetable ... data_interval_end is the time when a Dag run is triggered
    (run_after), while data_interval_start is the start of the contiguous window. logical_date is
    data_interval_start'."""
    daily = Cron(("0 0 * * *",), data_intervals=True)
    run = schedules.next_run(daily, t(2024, 1, 31, 15))
    assert run == ScheduledRun(t(2024, 2, 1), DataInterval(t(2024, 1, 31), t(2024, 2, 1)))
    assert run.logical_date == t(2024, 1, 31)


@pytest.mark.parametrize(
    ("start", "first_interval"),
    [
        (None, (t(2024, 2, 1, 1, 0), t(2024, 2, 1, 1, 30))),
        (t(2024, 2, 1), (t(2024, 2, 1, 1, 0), t(2024, 2, 1, 1, 30))),
        (t(2024, 2, 1, 0, 10), (t(2024, 2, 1, 1, 0), t(2024, 2, 1, 1, 30))),
        (t(2024, 2, 1, 1, 10), (t(2024, 2, 1, 1, 30), t(2024, 2, 1, 2, 0))),
    ],
)
def test_cron_data_intervals_align_to_the_cron_whatever_the_start(
    start: datetime | None, first_interval: tuple[datetime, datetime]
) -> None:
    """The docs' table for */30 enabled at 01:05 on February 1st: 'Whatever the start date, the data
    intervals are aligned with hour/day/etc. boundaries'; an interval starting before start_date is
    skipped. (With catchup=False Airflow also runs 00:30-01:00 at once; kdag waits for the next one.)"""
    half = Cron(("*/30 * * * *",), data_intervals=True, start=start)
    run = schedules.next_run(half, t(2024, 2, 1, 1, 5))
    assert run is not None
    assert (run.data_interval.start, run.data_interval.end) == first_interval
    assert run.run_after == first_interval[1]


def test_latest_run_is_the_most_recently_completed_interval() -> None:
    """What Airflow creates when a data-interval DAG is enabled (kdag: when it missed ticks)."""
    half = Cron(("*/30 * * * *",), data_intervals=True)
    assert schedules.latest_run(half, t(2024, 2, 1, 1, 5)) == ScheduledRun(
        t(2024, 2, 1, 1), DataInterval(t(2024, 2, 1, 0, 30), t(2024, 2, 1, 1))
    )
    daily = Cron(("0 0 * * *",))
    assert schedules.latest_run(daily, t(2024, 2, 2, 15)) == run_at(t(2024, 2, 2))
    assert schedules.latest_run(daily, t(2024, 2, 2)) == run_at(t(2024, 2, 2))  # at the tick itself


# --- DeltaTriggerTimetable (a timedelta in Airflow 3) and DeltaDataIntervalTimetable -------------------


def test_delta_trigger_ticks_every_delta_from_start_else_from_the_epoch() -> None:
    """'A bare timedelta resolves to DeltaTriggerTimetable by default'. Airflow chains each run from the
    previous one; kdag's ticks are start + k * delta (the Unix epoch without a start), so a controller
    restart never shifts them."""
    hourly = Delta(timedelta(hours=1))
    assert ticks(hourly, t(2024, 2, 1, 1, 5), 2) == [t(2024, 2, 1, 2), t(2024, 2, 1, 3)]
    from_start = Delta(timedelta(minutes=30), start=t(2024, 2, 1, 0, 10))
    assert ticks(from_start, t(2024, 2, 1, 1, 5), 2) == [t(2024, 2, 1, 1, 10), t(2024, 2, 1, 1, 40)]
    run = schedules.next_run(Delta(timedelta(days=7), interval=timedelta(days=1)), t(2024, 1, 1))
    assert run == ScheduledRun(t(2024, 1, 4), DataInterval(t(2024, 1, 3), t(2024, 1, 4)))  # epoch: Thursday


def test_a_future_start_is_the_first_delta_tick() -> None:
    later = Delta(timedelta(hours=6), start=t(2030, 5, 5, 5, 5))
    assert schedules.next_run(later, t(2024, 1, 1)) == run_at(t(2030, 5, 5, 5, 5))


def test_delta_data_interval_follows_start_date() -> None:
    """The docs' table for timedelta(minutes=30), start_date 00:10, catchup=True: 00:10-00:40, 'Next one will
    be triggered in 5 minutes covering 00:40 - 01:10' (enabled at 01:05)."""
    half = Delta(timedelta(minutes=30), data_intervals=True, start=t(2024, 2, 1, 0, 10))
    run = schedules.next_run(half, t(2024, 2, 1, 1, 5))
    assert run == ScheduledRun(t(2024, 2, 1, 1, 10), DataInterval(t(2024, 2, 1, 0, 40), t(2024, 2, 1, 1, 10)))
    first = schedules.next_run(half, t(2024, 1, 1))
    assert first == ScheduledRun(
        t(2024, 2, 1, 0, 40), DataInterval(t(2024, 2, 1, 0, 10), t(2024, 2, 1, 0, 40))
    )


# --- EventsTimetable -----------------------------------------------------------------------------------


def test_events_run_at_each_future_event_and_never_catch_up() -> None:
    games = Events((t(2022, 4, 5, 13, 27), t(2022, 4, 17, 13, 27), t(2022, 4, 23, 1, 50)))
    assert schedules.next_run(games, t(2022, 4, 10)) == run_at(t(2022, 4, 17, 13, 27))
    assert schedules.next_run(games, t(2022, 4, 23, 1, 50)) is None
    assert schedules.latest_run(games, t(2022, 4, 20)) == run_at(t(2022, 4, 17, 13, 27))


def test_events_of_the_model_are_sorted_distinct_utc_seconds() -> None:
    spec = DAGSpec.model_validate(
        {
            "tasks": [{"id": "a", "command": ["true"]}],
            "timetable": {
                "events": ["2022-04-17T08:27:00-05:00", "2022-04-05T13:27:00.5Z", "2022-04-17T13:27:00Z"]
            },
        }
    )
    assert schedules.timetable_of(spec) == Events((t(2022, 4, 5, 13, 27), t(2022, 4, 17, 13, 27)))


# --- start and end ---------------------------------------------------------------------------------------


def test_no_run_before_start_or_after_end() -> None:
    window = Cron(("0 0 * * *",), start=t(2024, 3, 1), end=t(2024, 3, 3))
    assert ticks(window, t(2024, 1, 1), 3) == [t(2024, 3, 1), t(2024, 3, 2), t(2024, 3, 3)]
    assert schedules.next_run(window, t(2024, 3, 3)) is None
    assert schedules.latest_run(window, t(2024, 5, 1)) == run_at(t(2024, 3, 3))
    assert schedules.latest_run(window, t(2024, 2, 1)) is None
    intervals = Cron(("0 0 * * *",), data_intervals=True, end=t(2024, 3, 3))
    last = schedules.latest_run(intervals, t(2024, 5, 1))
    assert last == ScheduledRun(t(2024, 3, 4), DataInterval(t(2024, 3, 3), t(2024, 3, 4)))
    assert schedules.next_run(intervals, t(2024, 3, 4)) is None


# --- manual runs and missed ticks -----------------------------------------------------------------------


def test_a_manual_runs_data_interval_is_what_airflow_infers() -> None:
    at = t(2024, 1, 25, 1)
    assert schedules.manual_data_interval(None, at) == DataInterval(at, at)
    # 'the data interval of a manually triggered run at 1am 25th is between 0am 24th and 0am 25th'
    daily = Cron(("0 0 * * *",), data_intervals=True)
    assert schedules.manual_data_interval(daily, at) == DataInterval(t(2024, 1, 24), t(2024, 1, 25))
    assert schedules.manual_data_interval(daily, t(2024, 1, 25)) == DataInterval(
        t(2024, 1, 24), t(2024, 1, 25)
    )
    trigger = Cron(("0 0 * * *",), interval=timedelta(hours=3))
    assert schedules.manual_data_interval(trigger, at) == DataInterval(t(2024, 1, 24, 22), at)
    delta = Delta(timedelta(hours=6), data_intervals=True)
    assert schedules.manual_data_interval(delta, at) == DataInterval(t(2024, 1, 24, 19), at)
    events = (t(2024, 1, 10), t(2024, 1, 20), t(2024, 2, 1))
    assert schedules.manual_data_interval(Events(events), at) == DataInterval(at, at)
    restricted = Events(events, restrict_to_events=True)
    assert schedules.manual_data_interval(restricted, at) == DataInterval(t(2024, 1, 20), t(2024, 1, 20))
    early = t(2024, 1, 1)
    assert schedules.manual_data_interval(restricted, early) == DataInterval(t(2024, 1, 10), t(2024, 1, 10))


def test_after_missed_ticks_only_the_newest_run_is_made() -> None:
    """Catchup off: as when Airflow unpauses a DAG; nothing for a DAG never scheduled before."""
    hourly = Cron(("0 * * * *",))
    now = t(2024, 1, 1, 10, 30)
    assert schedules.missed_run(hourly, None, now) is None
    assert schedules.missed_run(hourly, t(2024, 1, 1, 7), now) == run_at(t(2024, 1, 1, 10))
    assert schedules.missed_run(hourly, t(2024, 1, 1, 10), now) is None


def made_by(
    timetable: schedules.Timetable, cursor: datetime, now: datetime, catchup: bool
) -> list[datetime]:
    """The ticks of the runs a schedule makes at `now`, one after the other, from `cursor` (fixed clock)."""
    made = []
    while (run := schedules.due_run(timetable, cursor, now, catchup)) is not None:
        made.append(run.run_after)
        cursor = run.run_after
    return made


def test_catchup_off_makes_only_the_newest_missed_tick() -> None:
    """Airflow's catchup=False: a schedule that fell behind (the controller away, a run refused) makes the
    newest tick's run, never the ones in between."""
    hourly = Cron(("0 * * * *",))
    last = schedules.resume_cursor(hourly, t(2024, 1, 1, 7), t(2024, 1, 1, 10, 30), catchup=False)
    assert made_by(hourly, last, t(2024, 1, 1, 10, 30), catchup=False) == [t(2024, 1, 1, 10)]
    assert made_by(hourly, t(2024, 1, 1, 10), t(2024, 1, 1, 10, 30), catchup=False) == []


def test_catchup_on_makes_each_missed_tick_once_oldest_first() -> None:
    """Airflow's catchup=True: every tick since the last scheduled run, in order, then none twice."""
    hourly = Cron(("0 * * * *",))
    now = t(2024, 1, 1, 10, 30)
    cursor = schedules.resume_cursor(hourly, t(2024, 1, 1, 7), now, catchup=True)
    made = made_by(hourly, cursor, now, catchup=True)
    assert made == [t(2024, 1, 1, 8), t(2024, 1, 1, 9), t(2024, 1, 1, 10)]
    assert made_by(hourly, made[-1], now, catchup=True) == []


def test_catchup_resumes_after_the_last_logical_date_whatever_the_timetable() -> None:
    """lastScheduleTime is a logical date: a data-interval run's is the start of its interval."""
    intervals = Cron(("0 * * * *",), data_intervals=True)
    now = t(2024, 1, 1, 10, 30)
    cursor = schedules.resume_cursor(intervals, t(2024, 1, 1, 7), now, catchup=True)
    runs = []
    while (run := schedules.due_run(intervals, cursor, now, True)) is not None:
        runs.append((run.logical_date, run.run_after))
        cursor = run.run_after
    assert runs == [(t(2024, 1, 1, h), t(2024, 1, 1, h + 1)) for h in (8, 9)]
    trigger = Delta(timedelta(hours=1), interval=timedelta(hours=1))  # logical date an hour before the tick
    cursor = schedules.resume_cursor(trigger, t(2024, 1, 1, 7), now, catchup=True)
    assert made_by(trigger, cursor, now, catchup=True) == [t(2024, 1, 1, 9), t(2024, 1, 1, 10)]


def test_a_dag_never_scheduled_catches_up_from_its_start_only_with_catchup() -> None:
    every_day = Cron(("0 0 * * *",), start=t(2024, 1, 1))
    now = t(2024, 1, 3, 12)
    assert made_by(every_day, schedules.resume_cursor(every_day, None, now, catchup=False), now, False) == []
    cursor = schedules.resume_cursor(every_day, None, now, catchup=True)
    assert made_by(every_day, cursor, now, True) == [t(2024, 1, 1), t(2024, 1, 2), t(2024, 1, 3)]
    no_start = Cron(("0 0 * * *",))
    assert made_by(no_start, schedules.resume_cursor(no_start, None, now, catchup=True), now, True) == []


def test_a_tick_not_made_stays_due_until_it_is() -> None:
    """The cursor moves only past a run that was made: a failed create is asked for again, the same run."""
    hourly = Cron(("0 * * * *",))
    cursor = t(2024, 1, 1, 9, 30)
    first = schedules.due_run(hourly, cursor, t(2024, 1, 1, 10, 0, 1), catchup=False)
    again = schedules.due_run(hourly, cursor, t(2024, 1, 1, 10, 5), catchup=False)
    assert first == again == run_at(t(2024, 1, 1, 10))
    # Catchup off: once a newer tick is due, it replaces the one never made.
    assert schedules.due_run(hourly, cursor, t(2024, 1, 1, 11, 1), False) == run_at(t(2024, 1, 1, 11))
    assert schedules.due_run(hourly, cursor, t(2024, 1, 1, 11, 1), True) == run_at(t(2024, 1, 1, 10))


def test_minute_collisions_name_events_sharing_a_run_name() -> None:
    assert schedules.minute_collisions([t(2024, 1, 1, 0, 0, 10), t(2024, 1, 1, 0, 1)]) == []
    assert schedules.minute_collisions([t(2024, 1, 1, 0, 1, 50), t(2024, 1, 1, 0, 1, 5)]) == [
        (t(2024, 1, 1, 0, 1, 5), t(2024, 1, 1, 0, 1, 50))
    ]


# --- the validator ------------------------------------------------------------------------------------


def spec_with(**fields: Any) -> dict[str, Any]:
    return {"tasks": [{"id": "a", "command": ["true"]}], **fields}


@pytest.mark.parametrize(
    "timetable",
    [
        {"cron": "@daily"},
        {"cron": "0 9 * * 1-5", "timezone": "Europe/Amsterdam", "intervalSeconds": 3600},
        {"cron": "*/30 * * * *", "dataIntervals": True, "start": "2024-02-01T00:10:00Z"},
        {"crons": ["10 1 * * *", "40 2 * * *"], "timezone": "UTC"},
        {"everySeconds": 3600, "start": "2024-01-01T00:30:00Z", "end": "2025-01-01T00:00:00Z"},
        {"everySeconds": 1800, "dataIntervals": True},
        {"events": ["2030-04-05T13:27:00Z", "2030-04-17T13:27:00+02:00"], "restrictToEvents": True},
    ],
)
def test_timetables_kdag_runs_are_accepted(timetable: dict[str, Any]) -> None:
    assert dag_spec_problems(spec_with(timetable=timetable)) == []


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"timetable": {}},
            "spec.timetable: a timetable needs exactly one of cron, crons, everySeconds or events",
        ),
        (
            {"timetable": {"cron": "@daily", "everySeconds": 60}},
            "spec.timetable: a timetable needs exactly one of cron, crons, everySeconds or events",
        ),
        (
            {"schedule": "@daily", "timetable": {"cron": "@daily"}},
            "spec.timetable: give schedule or timetable",
        ),
        (
            {"timetable": {"cron": "every day"}},
            "spec.timetable.cron: 'every day' is not a cron expression: give 5 fields (minute hour day month"
            " weekday) or a preset such as '@daily'",
        ),
        (
            {"timetable": {"crons": ["@daily", "0 0 * * * 5"]}},
            "spec.timetable.crons[1]: '0 0 * * * 5' is not a cron",
        ),
        (
            {"timetable": {"cron": "@daily", "timezone": "Mars/Olympus"}},
            "spec.timetable.timezone: 'Mars/Olympus' is not an IANA time zone",
        ),
        (
            {"timetable": {"everySeconds": 30}},
            "spec.timetable.everySeconds: Input should be greater than or equal to 60",
        ),
        (
            {"timetable": {"everySeconds": 60, "timezone": "UTC"}},
            "spec.timetable.timezone: timezone is for cron",
        ),
        (
            {"timetable": {"crons": ["@daily"], "dataIntervals": True}},
            "dataIntervals is for cron and everySeconds",
        ),
        (
            {"timetable": {"cron": "@daily", "dataIntervals": True, "intervalSeconds": 60}},
            "spec.timetable.intervalSeconds: intervalSeconds is for trigger timetables",
        ),
        ({"timetable": {"cron": "@daily", "restrictToEvents": True}}, "restrictToEvents is for events"),
        (
            {"timetable": {"cron": "@daily", "start": "2024-01-02T00:00:00Z", "end": "2024-01-01T00:00:00Z"}},
            "spec.timetable.end: end 2024-01-01T00:00:00+00:00 may not be before start"
            " 2024-01-02T00:00:00+00:00",
        ),
        (
            {"timetable": {"events": ["2030-01-01T00:00:10Z", "2030-01-01T00:00:40Z"]}},
            "spec.timetable.events: 2030-01-01T00:00:10+00:00 and 2030-01-01T00:00:40+00:00 fall in the same"
            " minute (scheduled runs are named by their minute)",
        ),
        ({"timetable": {"cron": "@daily", "every": 60}}, "spec.timetable.every: unknown field"),
    ],
)
def test_timetable_problems_name_the_field(fields: dict[str, Any], expected: str) -> None:
    problems = dag_spec_problems(spec_with(**fields))
    assert any(expected in problem for problem in problems), problems


def test_a_runs_data_interval_may_not_end_before_it_starts() -> None:
    run = {
        "apiVersion": "kdag.dev/v1alpha1",
        "kind": "DAGRun",
        "metadata": {"name": "r"},
        "spec": {
            "dagRef": {"name": "d"},
            "dataInterval": {"start": "2024-01-02T00:00:00Z", "end": "2024-01-01T00:00:00Z"},
        },
    }
    assert [str(p) for p in manifest_problems(run)] == [
        "spec.dataInterval.end: end 2024-01-01T00:00:00+00:00 may not be before start"
        " 2024-01-02T00:00:00+00:00"
    ]


# --- what a task is told: KDAG_DATA_INTERVAL_START/END --------------------------------------------------


def task_env_of(dag: dict[str, Any], run_spec: dict[str, Any]) -> dict[str, str]:
    dagrun = {
        "metadata": {"name": "r", "namespace": "ns", "uid": "u", "creationTimestamp": "2024-01-25T01:00:00Z"},
        "spec": {"dagRef": {"name": "d"}, **run_spec},
    }
    spec = DAGSpec.model_validate(spec_with(**dag))
    run = RunInfo.from_dagrun(dagrun, spec)
    return {e["name"]: e["value"] for e in task_env(run, spec.tasks[0], 1) if "value" in e}


def test_a_task_gets_its_runs_data_interval_or_the_one_airflow_infers() -> None:
    scheduled = {"logicalDate": "2024-01-24T00:00:00Z"} | {
        "dataInterval": {"start": "2024-01-24T00:00:00Z", "end": "2024-01-25T00:00:00Z"}
    }
    daily = {"timetable": {"cron": "@daily", "dataIntervals": True}}
    env = task_env_of(daily, scheduled)
    assert (env["KDAG_LOGICAL_DATE"], env["KDAG_DATA_INTERVAL_START"], env["KDAG_DATA_INTERVAL_END"]) == (
        "2024-01-24T00:00:00Z", "2024-01-24T00:00:00Z", "2024-01-25T00:00:00Z",
    )  # fmt: skip
    manual = task_env_of(daily, {})  # logical date: the creation time, 1am on the 25th
    assert (manual["KDAG_DATA_INTERVAL_START"], manual["KDAG_DATA_INTERVAL_END"]) == (
        "2024-01-24T00:00:00Z", "2024-01-25T00:00:00Z",
    )  # fmt: skip
    unscheduled = task_env_of({}, {"logicalDate": "2024-03-05T06:07:08Z"})
    assert (
        unscheduled["KDAG_DATA_INTERVAL_START"]
        == unscheduled["KDAG_DATA_INTERVAL_END"]
        == "2024-03-05T06:07:08Z"
    )


# --- what `kdag compile` makes of each Airflow schedule ---------------------------------------------------


def compiled_schedule(schedule: Any = None, **dag_args: Any) -> dict[str, Any]:
    with DAG("sched", schedule=schedule, **dag_args) as dag:
        BashOperator(task_id="t", bash_command="true")
    spec = python_dag_spec(dag, "sched-source", "dag.py").to_kube()
    return {k: spec[k] for k in ("schedule", "timetable", "catchup") if k in spec}


@pytest.mark.parametrize(
    ("schedule", "dag_args", "expected"),
    [
        (None, {}, {}),
        (None, {"start_date": datetime(2024, 1, 1)}, {}),
        (timetables.NullTimetable(), {}, {}),
        ("@once", {"start_date": datetime(2024, 1, 1)}, {"schedule": "@once"}),
        (timetables.OnceTimetable(), {}, {"schedule": "@once"}),
        ("@daily", {}, {"schedule": "@daily"}),
        ("*/15 * * * *", {}, {"schedule": "*/15 * * * *"}),
        (
            "@daily",
            {"start_date": datetime(2024, 1, 1), "end_date": datetime(2025, 1, 1, tzinfo=UTC)},
            {"timetable": {"cron": "@daily", "start": "2024-01-01T00:00:00Z", "end": "2025-01-01T00:00:00Z"}},
        ),
        (
            "0 9 * * *",
            {"start_date": datetime(2024, 1, 1, tzinfo=AMSTERDAM)},
            {
                "timetable": {
                    "cron": "0 9 * * *",
                    "timezone": "Europe/Amsterdam",
                    "start": "2023-12-31T23:00:00Z",
                }
            },
        ),
        (
            "0 9 * * *",
            {"start_date": datetime(2024, 1, 1, tzinfo=timezone(timedelta(hours=-5)))},
            {"timetable": {"cron": "0 9 * * *", "timezone": "Etc/GMT+5", "start": "2024-01-01T05:00:00Z"}},
        ),
        (timedelta(hours=1), {}, {"timetable": {"everySeconds": 3600}}),
        (
            timedelta(minutes=30),
            {"start_date": datetime(2024, 2, 1, 0, 10)},
            {"timetable": {"everySeconds": 1800, "start": "2024-02-01T00:10:00Z"}},
        ),
        (
            timetables.CronTriggerTimetable(
                "0 18 * * 5", timezone="UTC", interval=timedelta(days=4, hours=9)
            ),
            {},
            {"timetable": {"cron": "0 18 * * 5", "intervalSeconds": 378000}},
        ),
        (
            timetables.CronDataIntervalTimetable("0 1 * * 3", "Europe/Amsterdam"),
            {},
            {"timetable": {"cron": "0 1 * * 3", "timezone": "Europe/Amsterdam", "dataIntervals": True}},
        ),
        (
            timetables.MultipleCronTriggerTimetable("10 1 * * *", "40 2 * * *", timezone=AMSTERDAM),
            {},
            {"timetable": {"crons": ["10 1 * * *", "40 2 * * *"], "timezone": "Europe/Amsterdam"}},
        ),
        (
            timetables.DeltaTriggerTimetable(timedelta(days=7), interval=timedelta(days=1)),
            {},
            {"timetable": {"everySeconds": 604800, "intervalSeconds": 86400}},
        ),
        (
            timetables.DeltaDataIntervalTimetable(timedelta(minutes=30)),
            {},
            {"timetable": {"everySeconds": 1800, "dataIntervals": True}},
        ),
        (
            timetables.EventsTimetable(
                [
                    datetime(2030, 4, 17, 8, 27, tzinfo=ZoneInfo("America/Chicago")),
                    datetime(2030, 4, 5, 13, 27),
                ],
                restrict_to_events=True,
                description="games",
            ),
            {},
            {
                "timetable": {
                    "events": ["2030-04-05T13:27:00Z", "2030-04-17T13:27:00Z"],
                    "restrictToEvents": True,
                }
            },
        ),
    ],
)
def test_each_airflow_schedule_compiles_to_its_spec(
    schedule: Any, dag_args: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert compiled_schedule(schedule, **dag_args) == expected


def test_catchup_true_compiles_to_the_spec_field() -> None:
    assert compiled_schedule("@daily", catchup=True) == {"schedule": "@daily", "catchup": True}
    start = datetime(2024, 1, 1, tzinfo=UTC)
    assert compiled_schedule(timedelta(hours=1), start_date=start, catchup=True) == {
        "timetable": {"everySeconds": 3600, "start": "2024-01-01T00:00:00Z"},
        "catchup": True,
    }


def test_airflow_2s_timetable_argument_is_read_too() -> None:
    with DAG("sched", timetable=timetables.DeltaTriggerTimetable(timedelta(hours=2))) as dag:
        BashOperator(task_id="t", bash_command="true")
    assert python_dag_spec(dag, "c", "k").to_kube()["timetable"] == {"everySeconds": 7200}


@pytest.mark.parametrize(
    ("schedule", "dag_args", "message"),
    [
        ("@continuous", {}, "spec.schedule: '@continuous' is not a cron expression"),
        (timetables.ContinuousTimetable(), {}, "schedule @continuous is not one kdag runs"),
        (
            timedelta(seconds=30),
            {},
            "spec.timetable.everySeconds: Input should be greater than or equal to 60",
        ),
        (timedelta(seconds=90.5), {}, "is not a whole number of seconds"),
        (
            timetables.CronTriggerTimetable("@daily", timezone="UTC", run_immediately=True),
            {},
            "run_immediately=True is not supported",
        ),
        (
            timetables.CronTriggerTimetable("@daily", timezone="Nowhere/Land"),
            {},
            "'Nowhere/Land' is not an IANA",
        ),
        (timetables.EventsTimetable([]), {}, "EventsTimetable has no event_dates"),
        (["an asset"], {}, "schedule list is not one kdag runs"),
    ],
)
def test_what_kdag_cannot_run_is_refused_in_one_line(
    schedule: Any, dag_args: dict[str, Any], message: str
) -> None:
    with pytest.raises(compiler.DefinitionError) as caught:
        compiled_schedule(schedule, **dag_args)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_compiled_timetable_dag_round_trips_through_yaml_and_the_validator(tmp_path: Path) -> None:
    """A Python DAG file with a timetable: compile prints a manifest the webhook's validator admits."""
    path = tmp_path / "weekly.py"
    path.write_text(
        "from datetime import datetime, timedelta\n"
        "from airflow import DAG\n"
        "from airflow.operators.bash import BashOperator\n"
        "from kdag_runner.timetables import CronTriggerTimetable\n"
        "with DAG('weekly_report', start_date=datetime(2025, 1, 3, 18),\n"
        "         schedule=CronTriggerTimetable('0 18 * * 5', timezone='Europe/Amsterdam',\n"
        "                                       interval=timedelta(days=4, hours=9))) as dag:\n"
        "    BashOperator(task_id='report', bash_command='echo {{ data_interval_start }}')\n",
        encoding="utf-8",
    )
    loaded = compiler.load(path)
    (dag,) = [m for m in yaml.safe_load_all(compiler.manifests_yaml(loaded.manifests)) if m["kind"] == "DAG"]
    assert dag["spec"]["timetable"] == {
        "cron": "0 18 * * 5",
        "timezone": "Europe/Amsterdam",
        "intervalSeconds": 378000,
        "start": "2025-01-03T18:00:00Z",
    }
    assert dag_spec_problems(dag["spec"]) == []


# --- the API server: the CRD's schema and CEL rules for spec.timetable and spec.dataInterval ---------------

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def crds(kubeconfig: str) -> None:
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"), kubeconfig=kubeconfig)
    for plural in ("dags", "dagruns"):
        kubectl("wait", "--for=condition=Established", f"crd/{plural}.kdag.dev", kubeconfig=kubeconfig)


def dry_run_refusal(kubeconfig: str, namespace: str, manifest: dict[str, Any]) -> str:
    try:
        kubectl(
            "create", "--dry-run=server", "-n", namespace, "-f", "-",
            kubeconfig=kubeconfig, input=yaml.safe_dump(manifest),
        )  # fmt: skip
    except KubectlError as error:
        return error.stderr
    return ""


def dag_with(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kdag.dev/v1alpha1",
        "kind": "DAG",
        "metadata": {"name": "timed"},
        "spec": spec_with(**spec),
    }


@pytest.mark.cluster
@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"timetable": {}}, "a timetable needs exactly one of cron, crons, everySeconds or events"),
        ({"timetable": {"cron": "@daily", "crons": ["@daily"]}}, "a timetable needs exactly one of"),
        ({"schedule": "@daily", "timetable": {"cron": "@daily"}}, "give schedule or timetable, not both"),
        (
            {"timetable": {"crons": ["@daily"], "dataIntervals": True}},
            "dataIntervals is for cron and everySeconds",
        ),
        (
            {"timetable": {"events": ["2030-01-01T00:00:00Z"], "intervalSeconds": 5}},
            "intervalSeconds is for trigger",
        ),
        ({"timetable": {"everySeconds": 60, "timezone": "UTC"}}, "timezone is for cron and crons"),
        ({"timetable": {"cron": "@daily", "restrictToEvents": True}}, "restrictToEvents is for events"),
        (
            {"timetable": {"cron": "@daily", "start": "2024-01-02T00:00:00Z", "end": "2024-01-01T00:00:00Z"}},
            "end may not be before start",
        ),
        ({"timetable": {"everySeconds": 59}}, "spec.timetable.everySeconds"),
        ({"timetable": {"events": []}}, "spec.timetable.events"),
    ],
)
def test_api_server_refuses_bad_timetables_naming_the_rule(
    kubeconfig: str, namespace: str, crds: None, spec: dict[str, Any], message: str
) -> None:
    assert message in dry_run_refusal(kubeconfig, namespace, dag_with(**spec))


@pytest.mark.cluster
@pytest.mark.parametrize(
    "timetable",
    [
        {"cron": "0 9 * * 1-5", "timezone": "Europe/Amsterdam", "intervalSeconds": 3600},
        {"cron": "*/30 * * * *", "dataIntervals": True, "start": "2024-02-01T00:10:00Z"},
        {"crons": ["10 1 * * *", "40 2 * * *"]},
        {"everySeconds": 3600, "start": "2024-01-01T00:30:00Z", "end": "2025-01-01T00:00:00Z"},
        {"events": ["2030-04-05T13:27:00Z"], "restrictToEvents": True},
    ],
)
def test_api_server_admits_the_timetables_the_validator_admits(
    kubeconfig: str, namespace: str, crds: None, timetable: dict[str, Any]
) -> None:
    assert dag_spec_problems(spec_with(timetable=timetable)) == []
    assert dry_run_refusal(kubeconfig, namespace, dag_with(timetable=timetable)) == ""


@pytest.mark.cluster
def test_api_server_checks_a_runs_data_interval(kubeconfig: str, namespace: str, crds: None) -> None:
    def run(start: str, end: str) -> dict[str, Any]:
        spec = {"dagRef": {"name": "timed"}, "dataInterval": {"start": start, "end": end}}
        return {"apiVersion": "kdag.dev/v1alpha1", "kind": "DAGRun", "metadata": {"name": "r"}, "spec": spec}

    assert dry_run_refusal(kubeconfig, namespace, run("2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z")) == ""
    refusal = dry_run_refusal(kubeconfig, namespace, run("2024-01-02T00:00:00Z", "2024-01-01T00:00:00Z"))
    assert "end may not be before start" in refusal
