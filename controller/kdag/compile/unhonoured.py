"""What a DAG file asks for that kdag accepts but cannot honour: one warning line per argument (DAG
arguments, operator arguments, a task's own start_date, executor_config fields kdag does not read), printed
on stderr as the file loads."""

from __future__ import annotations

from pathlib import Path

from kdag_runner.airflow import DAG
from kdag_runner.airflow.arguments import UNHONOURED_ARGUMENTS

from kdag.compile.executor_config import POD_OVERRIDE_READ, executor_config_fields

# DAG arguments kdag accepts but cannot honour, and why (as arguments.UNHONOURED_ARGUMENTS for tasks).
UNHONOURED_DAG_ARGUMENTS: dict[str, str] = {
    "max_active_runs": "kdag does not limit concurrent runs of a DAG",
    "max_active_tasks": "kdag does not limit concurrent tasks of a DAG",
    "concurrency": "kdag does not limit concurrent tasks of a DAG",
    "max_consecutive_failed_dag_runs": "kdag never pauses a DAG",
    "dagrun_timeout": "kdag runs have no timeout (tasks have execution_timeout)",
    "sla_miss_callback": "SLAs are not checked (Airflow 3 removed them too)",
    "on_success_callback": "DAG-level callbacks are not called (task callbacks are)",
    "on_failure_callback": "DAG-level callbacks are not called (task callbacks are)",
    "access_control": "kdag has no Airflow UI roles: use Kubernetes RBAC",
    "is_paused_upon_creation": "kdag DAGs cannot be paused",
    "fail_fast": "a failed task does not stop the others",
    "fail_stop": "a failed task does not stop the others",
    "deadline": "deadline alerts are not checked",
}


def load_warnings(dag: DAG, path: Path) -> list[str]:
    """One line per argument the DAG or its tasks set that kdag cannot honour, naming the tasks and file."""
    where = f"DAG file '{path}', DAG '{dag.dag_id}'"
    lines: list[str] = []
    extra = getattr(dag, "extra", {}) or {}
    for argument, why in UNHONOURED_DAG_ARGUMENTS.items():
        if extra.get(argument) not in (None, False, [], {}):
            lines.append(f"{where}: {argument} is accepted but not honoured: {why}")
    tasks_by_argument: dict[str, list[str]] = {}
    for task in dag.tasks:
        for argument in getattr(task, "unhonoured_arguments", {}):
            tasks_by_argument.setdefault(argument, []).append(task.task_id)
        start = getattr(task, "start_date", None)
        if start is not None and dag.start_date is not None and start != dag.start_date:
            tasks_by_argument.setdefault("start_date", []).append(task.task_id)
    reasons = {**UNHONOURED_ARGUMENTS, "start_date": "a task's own start_date is not read; the DAG's is"}
    for argument in sorted(tasks_by_argument, key=list(reasons).index):
        ids = tasks_by_argument[argument]
        tasks = f"task '{ids[0]}'" if len(ids) == 1 else "tasks " + ", ".join(f"'{t}'" for t in ids)
        lines.append(f"{where}: {argument} ({tasks}) is accepted but not honoured: {reasons[argument]}")
    tasks_by_field: dict[str, list[str]] = {}
    for task in dag.tasks:
        for field in executor_config_fields(f"task '{task.task_id}'", task)[1]:
            tasks_by_field.setdefault(field, []).append(task.task_id)
    for field, ids in tasks_by_field.items():
        tasks = f"task '{ids[0]}'" if len(ids) == 1 else "tasks " + ", ".join(f"'{t}'" for t in ids)
        why = POD_OVERRIDE_READ
        lines.append(f"{where}: executor_config {field} ({tasks}) is accepted but not honoured: {why}")
    return lines
