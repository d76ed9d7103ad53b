"""The Airflow context of one task, built from the ``KDAG_*`` environment (see docs/design.md)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from kdag_runner.environment import TaskEnvironment
from kdag_runner.state_store import TaskStateStoreAccessor

if TYPE_CHECKING:
    from kdag_runner.airflow import DAG, BaseOperator
    from kdag_runner.xcom import TaskInstance


@dataclass(frozen=True)
class DagRunView:
    """What tasks read of their run through ``dag_run`` (Airflow's DagRun: conf, run_id, logical_date)."""

    dag_id: str
    run_id: str
    logical_date: datetime
    conf: dict[str, Any]
    run_type: str = "manual"
    data_interval_start: datetime | None = None
    data_interval_end: datetime | None = None

    def __post_init__(self) -> None:
        # A run without a data interval (a bare test environment) covers its logical date alone.
        if self.data_interval_start is None:
            object.__setattr__(self, "data_interval_start", self.logical_date)
        if self.data_interval_end is None:
            object.__setattr__(self, "data_interval_end", self.logical_date)


def date_fields(
    logical_date: datetime, interval_start: datetime | None = None, interval_end: datetime | None = None
) -> dict[str, Any]:
    """The context keys derived from the logical date and data interval, as Airflow 3 formats them."""
    ds = logical_date.strftime("%Y-%m-%d")
    ts = logical_date.isoformat()
    return {
        "logical_date": logical_date,
        "ds": ds,
        "ds_nodash": ds.replace("-", ""),
        "ts": ts,
        "ts_nodash": logical_date.strftime("%Y%m%dT%H%M%S"),
        "ts_nodash_with_tz": ts.replace("-", "").replace(":", ""),
        "data_interval_start": interval_start or logical_date,
        "data_interval_end": interval_end or logical_date,
    }


def build_context(
    env: TaskEnvironment, ti: TaskInstance, task: BaseOperator | None, dag: DAG | None
) -> dict[str, Any]:
    """Return the context dict a task's callable and templates see.

    ``conf`` is the run's conf (kdag has no Airflow configuration object to offer there).
    """
    dag_run = DagRunView(
        env.dag_id,
        env.run_id,
        env.logical_date,
        dict(env.conf),
        env.run_type,
        env.data_interval_start,
        env.data_interval_end,
    )
    context: dict[str, Any] = {
        "ti": ti,
        "task_instance": ti,
        "run_id": env.run_id,
        "dag_id": env.dag_id,
        "task_id": env.task_id,
        "params": ti.params,
        "dag_run": dag_run,
        "conf": dag_run.conf,
        "task": task,
        "dag": dag,
        "task_instance_key_str": f"{env.dag_id}__{env.task_id}__{env.logical_date.strftime('%Y%m%d')}",
        # Dynamic task mapping: `ti.map_index` is the instance; the template names it once it ran.
        "map_index_template": (getattr(task, "options", None) or {}).get("map_index_template"),
        # Airflow 3's count of this task's reschedules so far (a sensor in reschedule mode).
        "task_reschedule_count": env.reschedules,
        # Airflow 3.3's state of this task instance, kept across its attempts (state_store.py).
        "task_state_store": TaskStateStoreAccessor.for_task(env),
    }
    context.update(date_fields(env.logical_date, env.data_interval_start, env.data_interval_end))
    return context


_current: list[dict[str, Any]] = []


def set_current_context(context: dict[str, Any] | None) -> None:
    """Make ``context`` what ``get_current_context()`` returns while the task runs."""
    _current.clear()
    if context is not None:
        _current.append(context)


def get_current_context() -> dict[str, Any]:
    """Return the running task's context, as Airflow's ``get_current_context``."""
    if not _current:
        raise RuntimeError("get_current_context() works only while a task runs")
    return _current[0]
