"""Small Airflow helpers the ``airflow.*`` shim serves beside ``kdag_runner.airflow``'s classes.

Standard library only. Each follows the Airflow helper of the same name: ``days_ago`` (Airflow 2's
``airflow.utils.dates``), the state enums (``airflow.utils.state``, ``airflow.sdk``), ``WeightRule``,
``Context`` (a TypedDict, as Airflow 3's), the
``airflow.utils.timezone``/``airflow.sdk.timezone`` functions (aware ``datetime``s in UTC), and
``is_venv_installed``.
"""

from __future__ import annotations

import datetime as dt
import enum
import importlib.util
import shutil
from typing import Any, TypedDict

UTC = dt.UTC
utc = dt.UTC


def days_ago(n: int, hour: int = 0, minute: int = 0, second: int = 0, microsecond: int = 0) -> dt.datetime:
    """Midnight UTC (or the given time) ``n`` days ago, as Airflow's ``days_ago``."""
    today = dt.datetime.now(UTC).replace(hour=hour, minute=minute, second=second, microsecond=microsecond)
    return today - dt.timedelta(days=n)


class TaskInstanceState(enum.StrEnum):
    """A task instance's state, with Airflow 3's values."""

    REMOVED = "removed"
    SCHEDULED = "scheduled"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCESS = "success"
    RESTARTING = "restarting"
    FAILED = "failed"
    UP_FOR_RETRY = "up_for_retry"
    UP_FOR_RESCHEDULE = "up_for_reschedule"
    UPSTREAM_FAILED = "upstream_failed"
    SKIPPED = "skipped"
    DEFERRED = "deferred"


class DagRunState(enum.StrEnum):
    """A DAG run's state, with Airflow 3's values."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"


class State:
    """Airflow's ``State``: the task instance and DAG run states as constants, ``NONE`` for no state."""

    NONE = None
    REMOVED = TaskInstanceState.REMOVED
    SCHEDULED = TaskInstanceState.SCHEDULED
    QUEUED = TaskInstanceState.QUEUED
    RUNNING = TaskInstanceState.RUNNING
    SUCCESS = TaskInstanceState.SUCCESS
    RESTARTING = TaskInstanceState.RESTARTING
    FAILED = TaskInstanceState.FAILED
    UP_FOR_RETRY = TaskInstanceState.UP_FOR_RETRY
    UP_FOR_RESCHEDULE = TaskInstanceState.UP_FOR_RESCHEDULE
    UPSTREAM_FAILED = TaskInstanceState.UPSTREAM_FAILED
    SKIPPED = TaskInstanceState.SKIPPED
    DEFERRED = TaskInstanceState.DEFERRED
    finished = frozenset(
        {
            TaskInstanceState.SUCCESS,
            TaskInstanceState.FAILED,
            TaskInstanceState.SKIPPED,
            TaskInstanceState.UPSTREAM_FAILED,
            TaskInstanceState.REMOVED,
        }
    )
    success_states = frozenset({TaskInstanceState.SUCCESS, TaskInstanceState.SKIPPED})
    failed_states = frozenset({TaskInstanceState.FAILED, TaskInstanceState.UPSTREAM_FAILED})


class WeightRule(enum.StrEnum):
    """Airflow's priority weight rules (kdag accepts ``weight_rule`` and warns that it has no effect)."""

    DOWNSTREAM = "downstream"
    UPSTREAM = "upstream"
    ABSOLUTE = "absolute"


class Context(TypedDict, total=False):
    """The task context, for annotations (``def execute(self, context: Context)``); tasks get a dict."""

    ti: Any
    task_instance: Any
    task: Any
    dag: Any
    dag_run: Any
    params: dict[str, Any]
    conf: Any
    ds: str
    ds_nodash: str
    ts: str
    ts_nodash: str
    ts_nodash_with_tz: str
    logical_date: dt.datetime
    data_interval_start: dt.datetime
    data_interval_end: dt.datetime
    run_id: str
    dag_id: str
    task_id: str
    task_instance_key_str: str


# -- airflow.utils.timezone / airflow.sdk.timezone --------------------------------------------------------


def utcnow() -> dt.datetime:
    """Now, aware, in UTC."""
    return dt.datetime.now(UTC)


def datetime(*args: Any, **kwargs: Any) -> dt.datetime:
    """``datetime.datetime(...)`` in UTC unless ``tzinfo`` is given (Airflow's ``timezone.datetime``)."""
    kwargs.setdefault("tzinfo", UTC)
    return dt.datetime(*args, **kwargs)


def parse(string: str, timezone: dt.tzinfo | None = None) -> dt.datetime:
    """An ISO 8601 time; a naive one is read in ``timezone`` (UTC by default)."""
    parsed = dt.datetime.fromisoformat(string)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone or UTC)


def make_aware(value: dt.datetime | None, timezone: dt.tzinfo | None = None) -> dt.datetime | None:
    """``value`` with ``timezone`` (UTC by default) when it is naive; an aware value raises, as Airflow."""
    if value is None:
        return None
    if value.tzinfo is not None and value.utcoffset() is not None:
        raise ValueError(f"make_aware expects a naive datetime, got {value}")
    return value.replace(tzinfo=timezone or UTC)


def convert_to_utc(value: dt.datetime | None) -> dt.datetime | None:
    """``value`` in UTC; a naive value is taken to be UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


TIMEZONE_FUNCTIONS: dict[str, Any] = {
    "utc": utc,
    "utcnow": utcnow,
    "datetime": datetime,
    "parse": parse,
    "make_aware": make_aware,
    "convert_to_utc": convert_to_utc,
}


def is_venv_installed() -> bool:
    """Whether ``virtualenv`` is available, as Airflow 2's check (kdag runs no virtualenv operators)."""
    return shutil.which("virtualenv") is not None or importlib.util.find_spec("virtualenv") is not None
