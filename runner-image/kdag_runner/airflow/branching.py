"""Operators that choose which tasks run: branches, short-circuits, ``LatestOnlyOperator``, and the
weekday and datetime branches; ``SkipMixin``, ``BranchMixIn``, ``WeekDay``.

They follow Airflow 3 (``airflow.sdk.bases.skipmixin``, ``airflow.sdk.bases.branch``, and the standard
provider's ``operators/python.py``, ``latest_only.py``, ``weekday.py``, ``datetime.py``):

- A branch (``BaseBranchOperator.choose_branch``, ``BranchPythonOperator``'s callable, ``@task.branch``)
  returns a task id, a task group id (its root tasks), a list of them, or None. ``skip_all_except`` pushes
  ``skipmixin_key`` = ``{"followed": [...]}`` (the direct downstream tasks followed) whenever the branch has
  downstream tasks, and skips the direct downstream tasks that are neither followed nor downstream of a
  followed one, by raising ``DownstreamTasksSkipped``: the task then succeeds WITHOUT pushing its
  ``return_value`` (Airflow's task runner does not push a result it never received); when nothing is
  skipped the return value is pushed as usual.
- ``ShortCircuitOperator`` (``@task.short_circuit``): a truthy result is pushed and nothing is skipped; a
  falsy one skips every task downstream (``ignore_downstream_trigger_rules=True``) or only the direct
  ones, teardowns never, pushing ``skipmixin_key`` = ``{"skipped": [...]}``.
- ``LatestOnlyOperator``: a manual run (``dag_run.run_type``) follows every direct downstream task; a
  scheduled one follows them only while ``now`` is within its interval and the next run's.

``DownstreamTasksSkipped`` reaches the runner through ``task_runner.run_task``, which reports the ids as the
attempt's ``skipTasks``; the controller marks them Skipped and the trigger rules do the rest. The lists in
``skipmixin_key`` are in the DAG's task order (Airflow's come from a set, in no fixed order).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import Any

from kdag_runner.airflow.exceptions import AirflowException, DagDefinitionError, DownstreamTasksSkipped
from kdag_runner.airflow.operators import BaseOperator
from kdag_runner.airflow.python import PythonOperator

XCOM_SKIPMIXIN_KEY = "skipmixin_key"
XCOM_SKIPMIXIN_SKIPPED = "skipped"
XCOM_SKIPMIXIN_FOLLOWED = "followed"

BranchIds = str | Iterable[str] | None


def _dag_tasks(task: Any) -> list[Any]:
    dag = getattr(task, "dag", None)
    return list(dag.tasks) if dag is not None else [task]


def _in_dag_order(task: Any, ids: Iterable[str]) -> list[str]:
    wanted = set(ids)
    return [t.task_id for t in _dag_tasks(task) if t.task_id in wanted]


def _info(owner: object, message: str) -> None:
    """Log as the operator does (``self.log``), or print for an object that has no logger."""
    log = getattr(owner, "log", None)
    if log is not None:
        log.info(message)
    else:
        print(message, flush=True)


class SkipMixin:
    """Skips tasks of the same run (Airflow's ``SkipMixin``): the ids go to the runner's report."""

    def skip(self, ti: Any, tasks: Iterable[Any]) -> None:
        """Skip ``tasks`` (operators): push ``skipmixin_key`` = ``{"skipped": ids}`` and raise
        ``DownstreamTasksSkipped``, which ends the task successfully."""
        ids = [t.task_id for t in tasks if isinstance(t, BaseOperator)]
        if not ids:
            return
        if getattr(self, "task_id", None) is not None:
            ti.xcom_push(key=XCOM_SKIPMIXIN_KEY, value={XCOM_SKIPMIXIN_SKIPPED: ids})
        if getattr(ti, "map_index", -1) == -1:
            raise DownstreamTasksSkipped(tasks=ids)

    def skip_all_except(self, ti: Any, branch_task_ids: BranchIds) -> None:
        """Follow ``branch_task_ids`` and skip the other tasks directly downstream of this one."""
        if isinstance(branch_task_ids, str):
            followed = {branch_task_ids}
        elif branch_task_ids is None:
            followed = set()
        elif isinstance(branch_task_ids, Iterable):
            items = list(branch_task_ids)
            invalid = {(item, type(item).__name__) for item in items if not isinstance(item, str)}
            if invalid:
                raise AirflowException(
                    "Unable to branch to the specified tasks. The branching function returned invalid"
                    f" 'branch_task_ids': {invalid}. Please check that your function returns an Iterable"
                    " of valid task IDs that exist in your DAG."
                )
            followed = set(items)
        else:
            raise AirflowException(
                "'branch_task_ids' must be either None, a task ID, or an Iterable of IDs, "
                f"but got {type(branch_task_ids).__name__!r}."
            )
        task: Any = getattr(ti, "task", None) or self
        dag = task.dag
        _info(self, f"Following branch {sorted(followed)}")
        valid = set(dag.task_ids) if dag is not None else {task.task_id}
        unknown = followed - valid
        if unknown:
            raise AirflowException(
                f"'branch_task_ids' must contain only valid task_ids. Invalid tasks found: {unknown}."
            )
        downstream = [t for t in _dag_tasks(task) if t.task_id in task.downstream_task_ids]
        if not downstream:
            return
        # A task downstream of a followed one is followed too (branch >> join and branch >> a >> join).
        for branch_id in list(followed):
            followed |= dag.get_task(branch_id).get_flat_relative_ids(upstream=False)
        skip = [t.task_id for t in downstream if t.task_id not in followed]
        follow = [t.task_id for t in downstream if t.task_id in followed]
        _info(self, f"Skipping tasks {skip}")
        ti.xcom_push(key=XCOM_SKIPMIXIN_KEY, value={XCOM_SKIPMIXIN_FOLLOWED: follow})
        if skip and getattr(ti, "map_index", -1) == -1:
            raise DownstreamTasksSkipped(tasks=skip)


class BranchMixIn(SkipMixin):
    """``do_branch``: expand task groups into their root tasks, then ``skip_all_except``."""

    def do_branch(self, context: dict[str, Any], branches_to_execute: BranchIds) -> BranchIds:
        _info(self, f"Branch into {branches_to_execute}")
        if branches_to_execute is None:
            self.skip_all_except(context["ti"], None)
        else:
            expanded = list(self._expand_task_group_roots(context, branches_to_execute))
            self.skip_all_except(context["ti"], expanded)
        return branches_to_execute

    def _expand_task_group_roots(
        self, context: dict[str, Any], branches: str | Iterable[str]
    ) -> Iterator[str]:
        """Each id, or the root tasks of the task group it names."""
        task: Any = getattr(context["ti"], "task", None) or self
        groups = task_group_dict(task.dag)
        single = isinstance(branches, str) or not isinstance(branches, Iterable)
        items: Iterable[Any] = [branches] if single else branches
        for branch in items:
            group = groups.get(branch) if isinstance(branch, str) else None
            if group is not None:
                yield from (root.task_id for root in group.roots)
            else:
                yield branch


def task_group_dict(dag: Any) -> dict[Any, Any]:
    """Group id -> task group of ``dag`` (Airflow's ``DAG.task_group_dict``); empty without groups."""
    if dag is None:
        return {}
    groups = getattr(dag, "task_group_dict", None)
    if groups is None:
        root = getattr(dag, "task_group", None)
        groups = root.get_task_group_dict() if root is not None else {}
    return {k: v for k, v in dict(groups).items() if k is not None}


class BaseBranchOperator(BaseOperator, BranchMixIn):
    """A branch: subclasses implement ``choose_branch(context)``; the direct downstream tasks it does
    not return are skipped."""

    inherits_from_skipmixin = True

    def choose_branch(self, context: dict[str, Any]) -> BranchIds:
        raise NotImplementedError(f"{type(self).__name__} does not define choose_branch()")

    def execute(self, context: dict[str, Any]) -> Any:
        return self.do_branch(context, self.choose_branch(context))


class BranchPythonOperator(BaseBranchOperator, PythonOperator):
    """A branch whose ``python_callable`` returns the task id(s) or task group id(s) to follow."""

    def choose_branch(self, context: dict[str, Any]) -> BranchIds:
        result: BranchIds = PythonOperator.execute(self, context)
        return result


class ShortCircuitOperator(PythonOperator, SkipMixin):
    """Continues when ``python_callable`` returns a truthy value; else skips the tasks downstream: all of
    them (``ignore_downstream_trigger_rules=True``) or only the direct ones (their trigger rules then decide
    for the others). Teardown tasks are never skipped."""

    inherits_from_skipmixin = True

    def __init__(self, *, ignore_downstream_trigger_rules: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ignore_downstream_trigger_rules = ignore_downstream_trigger_rules

    def execute(self, context: dict[str, Any]) -> Any:
        condition = super().execute(context)
        self.log.info(f"Condition result is {condition}")
        if condition:
            self.log.info("Proceeding with downstream tasks...")
            return condition
        if not self.downstream_task_ids:
            self.log.info("No downstream tasks; nothing to do.")
            return condition
        task = context.get("task") or self
        if self.ignore_downstream_trigger_rules:
            candidates = task.get_flat_relatives(upstream=False)
        else:
            candidates = [t for t in _dag_tasks(task) if t.task_id in task.downstream_task_ids]
        self.log.info("Skipping downstream tasks")
        self.skip(ti=context["ti"], tasks=[t for t in candidates if not getattr(t, "is_teardown", False)])
        self.log.info("Done.")
        return condition


class LatestOnlyOperator(BaseBranchOperator):
    """Skips the direct downstream tasks unless the run is the latest: a manual run always is; a scheduled
    run is while ``now`` lies after its data interval's start and at most at the end of the next run's
    interval (Airflow's ``_get_compare_dates``)."""

    ui_color = "#e9ffdb"

    def choose_branch(self, context: dict[str, Any]) -> BranchIds:
        dag_run = context["dag_run"]
        following = _in_dag_order(self, self.get_direct_relative_ids(upstream=False))
        if getattr(dag_run, "run_type", "manual") == "manual":
            self.log.info("Manually triggered DAG_Run: allowing execution to proceed.")
            return following
        logical = getattr(dag_run, "logical_date", None) or context["logical_date"]
        start = getattr(dag_run, "data_interval_start", None) or logical
        end = getattr(dag_run, "data_interval_end", None) or logical
        right = next_interval_end(self.dag, end)
        if right is None:
            self.log.info("Last scheduled execution: allowing execution to proceed.")
            return following
        now = datetime.now(UTC)
        self.log.info(f"Checking latest only with left_window: {start} right_window: {right} now: {now}")
        if not start < now <= right:
            self.log.info("Not latest execution, skipping downstream.")
            return []
        self.log.info("Latest, allowing execution to proceed.")
        return following


@enum.unique
class WeekDay(enum.IntEnum):
    """The days of the week, ISO numbered (Airflow's ``WeekDay``)."""

    MONDAY = 1
    TUESDAY = 2
    WEDNESDAY = 3
    THURSDAY = 4
    FRIDAY = 5
    SATURDAY = 6
    SUNDAY = 7

    @classmethod
    def get_weekday_number(cls, week_day_str: str) -> WeekDay:
        name = week_day_str.upper()
        if name not in cls.__members__:
            raise AttributeError(f'Invalid Week Day passed: "{week_day_str}"')
        return cls[name]

    @classmethod
    def convert(cls, day: str | WeekDay) -> int:
        return day if isinstance(day, WeekDay) else cls.get_weekday_number(week_day_str=day)

    @classmethod
    def validate_week_day(cls, week_day: str | WeekDay | Iterable[str] | Iterable[WeekDay]) -> set[int]:
        if not isinstance(week_day, Iterable):
            if not isinstance(week_day, WeekDay):
                raise TypeError(
                    f"Unsupported Type for week_day parameter: {type(week_day)}."
                    "Input should be iterable type:str, set, list, dict or Weekday enum type"
                )
            week_day = {week_day}
        if isinstance(week_day, str):
            week_day = {week_day}
        return {cls.convert(item) for item in week_day}


class BranchDayOfWeekOperator(BaseBranchOperator):
    """Follows ``follow_task_ids_if_true`` on the given week day(s), else ``follow_task_ids_if_false``.
    The day is the logical date's (UTC) with ``use_task_logical_date``, else today's in the DAG's zone."""

    def __init__(
        self,
        *,
        follow_task_ids_if_true: str | Iterable[str],
        follow_task_ids_if_false: str | Iterable[str],
        week_day: str | Iterable[str] | WeekDay | Iterable[WeekDay],
        use_task_logical_date: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.follow_task_ids_if_true = follow_task_ids_if_true
        self.follow_task_ids_if_false = follow_task_ids_if_false
        self.week_day = week_day
        self.use_task_logical_date = use_task_logical_date
        try:
            self._week_day_num = WeekDay.validate_week_day(week_day)
        except (AttributeError, TypeError) as err:
            raise DagDefinitionError(f"task '{self.task_id}': week_day: {err}") from None

    def choose_branch(self, context: dict[str, Any]) -> BranchIds:
        if self.use_task_logical_date:
            now = context.get("logical_date") or _run_after(context)
        else:
            now = datetime.now(UTC).astimezone(dag_timezone(self.dag)).replace(tzinfo=None)
        if now.isoweekday() in self._week_day_num:
            return self.follow_task_ids_if_true
        return self.follow_task_ids_if_false


class BranchDateTimeOperator(BaseBranchOperator):
    """Follows ``follow_task_ids_if_true`` when now (or the logical date, ``use_task_logical_date``) lies
    between ``target_lower`` and ``target_upper`` (datetimes, or times of the day in the DAG's zone)."""

    def __init__(
        self,
        *,
        follow_task_ids_if_true: str | Iterable[str],
        follow_task_ids_if_false: str | Iterable[str],
        target_lower: datetime | time | None,
        target_upper: datetime | time | None,
        use_task_logical_date: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if target_lower is None and target_upper is None:
            raise DagDefinitionError(
                f"task '{self.task_id}': Both target_upper and target_lower are None. At least one must be"
                " defined to be compared to the current datetime"
            )
        self.target_lower = target_lower
        self.target_upper = target_upper
        self.follow_task_ids_if_true = follow_task_ids_if_true
        self.follow_task_ids_if_false = follow_task_ids_if_false
        self.use_task_logical_date = use_task_logical_date

    def choose_branch(self, context: dict[str, Any]) -> BranchIds:
        if self.use_task_logical_date:
            now = context.get("logical_date") or _run_after(context)
        else:
            now = datetime.now(UTC)
        lower, upper = target_times_as_dates(now, self.target_lower, self.target_upper)
        zone = dag_timezone(self.dag)
        lower_at = _aware(lower, zone)
        upper_at = _aware(upper, zone)
        if upper_at is not None and upper_at < now:
            return self.follow_task_ids_if_false
        if lower_at is not None and lower_at > now:
            return self.follow_task_ids_if_false
        return self.follow_task_ids_if_true


def target_times_as_dates(
    base_date: datetime, lower: datetime | time | None, upper: datetime | time | None
) -> tuple[datetime | None, datetime | None]:
    """The targets as datetimes: a time of the day is on ``base_date``'s date; an upper time before the
    lower one is on the next day."""
    if isinstance(lower, datetime) and isinstance(upper, datetime):
        return lower, upper
    low = datetime.combine(base_date, lower) if isinstance(lower, time) else lower
    high = datetime.combine(base_date, upper) if isinstance(upper, time) else upper
    if low is None or high is None:
        return low, high
    if high < low:
        high += timedelta(days=1)
    return low, high


def _aware(value: datetime | None, zone: tzinfo) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=zone, fold=1)


def _run_after(context: dict[str, Any]) -> datetime:
    dag_run = context.get("dag_run")
    value = getattr(dag_run, "run_after", None) or getattr(dag_run, "logical_date", None)
    if not isinstance(value, datetime):
        raise AirflowException("the run has no logical date")
    return value


def dag_timezone(dag: Any) -> tzinfo:
    """The DAG's time zone as Airflow reads it: its ``timezone``, else its start date's, else UTC."""
    zone = getattr(dag, "timezone", None)
    if isinstance(zone, tzinfo):
        return zone
    start = getattr(dag, "start_date", None)
    if isinstance(start, datetime) and start.tzinfo is not None:
        return start.tzinfo
    return UTC


# -- the next run of a schedule, for LatestOnlyOperator ----------------------------------------------

_PRESETS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@quarterly": "0 0 1 */3 *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_NAMES = {
    3: {"jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6}
    | {"jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12},
    4: {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6},
}
_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))


def next_interval_end(dag: Any, end: datetime) -> datetime | None:
    """The end of the data interval of the run after the one whose interval ends at ``end`` (Airflow's
    ``timetable.next_dagrun_info(...).data_interval.end``), or None when the schedule has no next run
    (None, ``@once``, the last event). For a cron the next run's interval ends at the first tick after
    ``end``; for a timedelta, ``delta`` after it."""
    from kdag_runner import timetables

    schedule = getattr(dag, "schedule", None)
    if schedule is None:
        schedule = (getattr(dag, "extra", None) or {}).get("timetable")
    zone = dag_timezone(dag)
    if schedule is None or schedule in ("@once", "@continuous"):
        return None
    if isinstance(schedule, timedelta):
        return end + schedule
    if isinstance(schedule, str):
        return cron_next(schedule, end, zone)
    if isinstance(schedule, timetables.CronTriggerTimetable | timetables.CronDataIntervalTimetable):
        return cron_next(schedule.cron, end, _zone(schedule.timezone))
    if isinstance(schedule, timetables.MultipleCronTriggerTimetable):
        return min(cron_next(cron, end, _zone(schedule.timezone)) for cron in schedule.crons)
    if isinstance(schedule, timetables.DeltaTriggerTimetable | timetables.DeltaDataIntervalTimetable):
        return end + schedule.delta
    if isinstance(schedule, timetables.EventsTimetable):
        later = [e.replace(tzinfo=UTC) if e.tzinfo is None else e for e in schedule.event_dates]
        return min((e for e in later if e > end), default=None)
    return None


def _zone(value: Any) -> tzinfo:
    if isinstance(value, tzinfo):
        return value
    if value in (None, "UTC", "utc", "Etc/UTC"):
        return UTC
    from zoneinfo import ZoneInfo

    return ZoneInfo(str(value))


def cron_next(expression: str, after: datetime, zone: tzinfo = UTC) -> datetime:
    """The first tick of a 5-field cron expression (or preset) in ``zone`` strictly after ``after``."""
    fields = _PRESETS.get(expression.strip(), expression).split()
    if len(fields) != 5:
        raise AirflowException(f"LatestOnlyOperator: cannot read the schedule {expression!r}")
    minutes, hours, days, months, weekdays = (_cron_field(f, i) for i, f in enumerate(fields))
    weekdays = {d % 7 for d in weekdays}
    any_day, any_weekday = fields[2] in ("*", "?"), fields[4] in ("*", "?")
    local = after.astimezone(zone).replace(tzinfo=None, second=0, microsecond=0) + timedelta(minutes=1)
    for _ in range(100_000):
        if local.month not in months:
            local = (local.replace(day=1) + timedelta(days=32)).replace(day=1, hour=0, minute=0)
            continue
        day_ok = local.day in days
        weekday_ok = local.isoweekday() % 7 in weekdays
        # As cron: with both the day of the month and the day of the week restricted, either one will do.
        both_restricted = not any_day and not any_weekday
        if not ((day_ok or weekday_ok) if both_restricted else (day_ok and weekday_ok)):
            local = datetime.combine(local.date() + timedelta(days=1), time())
            continue
        if local.hour not in hours:
            local = local.replace(minute=0) + timedelta(hours=1)
            continue
        if local.minute not in minutes:
            local += timedelta(minutes=1)
            continue
        return local.replace(tzinfo=zone).astimezone(UTC)
    raise AirflowException(f"LatestOnlyOperator: the schedule {expression!r} has no next run")


def _cron_field(text: str, index: int) -> set[int]:
    low, high = _RANGES[index]
    names = _NAMES.get(index, {})
    values: set[int] = set()
    for part in text.lower().split(","):
        body, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if body in ("*", "?"):
            start, stop = low, high
        else:
            first, _, last = body.partition("-")
            start = names[first] if first in names else int(first)
            stop = (names[last] if last in names else int(last)) if last else (high if step_text else start)
        if not low <= start <= high or not low <= stop <= high or step < 1:
            raise AirflowException(f"LatestOnlyOperator: cannot read the cron field {text!r}")
        values.update(range(start, stop + 1, step))
    return values
