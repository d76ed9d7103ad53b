"""Setup and teardown tasks as Airflow 3 runs them: @setup/@teardown (the teardown takes the setup's
XComArg), a failing teardown (the run still succeeds), on_failure_fail_dagrun, as_setup() and
as_teardown(setups=...) on classic operators, a teardown inside a task group after a failing work task
(the teardown still runs; the group's leaf for `scratch >> after_scratch` is the work task, not the
teardown). tests/local/test_local_groups.py compares
kdag's run with Apache Airflow's."""

from __future__ import annotations

from datetime import datetime

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, TaskGroup, setup, task, teardown


@setup
def create_cluster():
    return "cluster-1"


@task
def work(cluster):
    return f"worked on {cluster}"


@teardown
def delete_cluster(cluster):
    return f"deleted {cluster}"


@teardown
def flaky_cleanup(cluster):
    raise RuntimeError(f"could not clean {cluster}")


@teardown(on_failure_fail_dagrun=True)
def strict_cleanup(cluster):
    return f"strictly cleaned {cluster}"


@task
def fails():
    raise ValueError("work failed")


with DAG("setup_teardown", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
    cluster = create_cluster()
    done = work(cluster)
    deleted = delete_cluster(cluster)
    done >> deleted
    done >> flaky_cleanup(cluster)  # fails; a teardown's failure does not fail the run
    done >> strict_cleanup(cluster)  # on_failure_fail_dagrun: it would

    with TaskGroup("scratch") as scratch:
        make = BashOperator(task_id="make", bash_command="echo made").as_setup()
        use = fails()
        clean = BashOperator(task_id="clean", bash_command="echo cleaned")
        make >> use >> clean.as_teardown(setups=make)
    after = BashOperator(task_id="after_scratch", bash_command="echo after", trigger_rule="all_done")
    scratch >> after
