"""Task groups as Airflow 3 builds them: nested groups (`outer.inner.task` ids), prefix_group_id=False,
group default_args over the DAG's, @task_group called twice (`summarize__1`), dependencies on whole groups,
edge labels (across groups too), chain_linear and cross_downstream, XComArg keys and inferred
multiple_outputs. tests/local/test_local_groups.py compares kdag's run with Apache Airflow's."""

from __future__ import annotations

from datetime import datetime

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, Label, TaskGroup, chain_linear, cross_downstream, task, task_group


@task
def retries_seen(**context):
    """What the task's own retries are: the DAG's default_args, then its groups', then its own."""
    return context["task"].retries


@task
def split() -> dict[str, int]:
    return {"x": 2, "y": 5}


@task
def add(x, y):
    return x + y


@task
def double(value):
    return value * 2


@task
def report(value):
    return f"total {value}"


@task_group
def summarize(value):
    """Returns its last task's XComArg, so `summarize(...) >> x` binds to `report`."""
    return report(double(value))


@task_group(group_id="checks", default_args={"retries": 4})
def checks():
    retries_seen.override(task_id="first")() >> retries_seen.override(task_id="second")()


with DAG(
    "task_groups",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    default_args={"retries": 1},
) as dag:
    start = EmptyOperator(task_id="start")
    with TaskGroup("outer", default_args={"retries": 2}, tooltip="extract", ui_color="#e8f7e4") as outer:
        head = retries_seen.override(task_id="head")()
        with TaskGroup("inner") as inner:
            deep = retries_seen.override(task_id="deep", retries=3)()
            deeper = retries_seen.override(task_id="deeper")()
            deep >> deeper
        head >> inner
    with TaskGroup("flat", prefix_group_id=False) as flat:
        unprefixed = retries_seen.override(task_id="unprefixed")()

    start >> outer >> flat
    parts = split()
    total = add(parts["x"], parts["y"])
    first = summarize(total)
    second = summarize(parts["y"])
    group_of_checks = checks()
    flat >> Label("then sum") >> parts
    first >> group_of_checks
    second >> Label("across groups") >> group_of_checks

    ends = [EmptyOperator(task_id=f"end_{n}") for n in range(3)]
    joins = [EmptyOperator(task_id=f"join_{n}") for n in range(2)]
    chain_linear(group_of_checks, ends[:2], ends[2])
    cross_downstream(ends, joins)
    with TaskGroup("tail") as tail:
        deeper >> Label("into a group") >> EmptyOperator(task_id="after_deeper")
    joins >> tail
