"""The Airflow context of one task, built from the ``KDAG_*`` environment (see docs/design.md)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from kdag_runner.environment import TaskEnvironment

if TYPE_CHECKING:
    from kdag_runner.authoring import DAG, BaseOperator
    from kdag_runner.xcom import TaskInstance


@dataclass(frozen=True)
class DagRunView:
    """What tasks read of their run through ``dag_run`` (Airflow's DagRun: conf, run_id, logical_date)."""

    dag_id: str
    run_id: str
    logical_date: datetime
    conf: dict[str, Any]
    run_type: str = "manual"

    @property
    def data_interval_start(self) -> datetime:
        return self.logical_date

    @property
    def data_interval_end(self) -> datetime:
        return self.logical_date


def date_fields(logical_date: datetime) -> dict[str, Any]:
    """The context keys derived from the logical date, formatted as Airflow 3 formats them."""
    ds = logical_date.strftime("%Y-%m-%d")
    ts = logical_date.isoformat()
    return {
        "logical_date": logical_date,
        "ds": ds,
        "ds_nodash": ds.replace("-", ""),
        "ts": ts,
        "ts_nodash": logical_date.strftime("%Y%m%dT%H%M%S"),
        "ts_nodash_with_tz": ts.replace("-", "").replace(":", ""),
        "data_interval_start": logical_date,
        "data_interval_end": logical_date,
    }


def build_context(
    env: TaskEnvironment, ti: TaskInstance, task: BaseOperator | None, dag: DAG | None
) -> dict[str, Any]:
    """Return the context dict a task's callable and templates see.

    ``conf`` is the run's conf (kdag has no Airflow configuration object to offer there).
    """
    dag_run = DagRunView(env.dag_id, env.run_id, env.logical_date, dict(env.conf))
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
    }
    context.update(date_fields(env.logical_date))
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
