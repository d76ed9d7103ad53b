"""Setup and teardown tasks as context managers, as Airflow 3 wires them: `with setup >> teardown:` on
classic operators (a work task inside fails: the teardown still runs, the task after the work is
upstream-failed), `with teardown(setup()):` on TaskFlow tasks (the teardown takes the setup's XComArg),
nested scopes (the inner setup after the outer one, the outer teardown after the inner one), and
`with teardown.as_teardown(setups=...):`. tests/local/test_local_setup_teardown.py compares kdag's run
with Apache Airflow's."""

from __future__ import annotations

from datetime import datetime

from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, setup, task, teardown


@setup
def open_session():
    return "session-7"


@teardown
def close_session(session):
    return f"closed {session}"


@task
def query(session):
    return f"rows from {session}"


@task
def summarise(rows):
    return f"summary of {rows}"


@task
def broken():
    raise ValueError("work failed")


with DAG("setup_teardown_scopes", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
    create = BashOperator(task_id="create_bucket", bash_command="echo created").as_setup()
    delete = BashOperator(task_id="delete_bucket", bash_command="echo deleted").as_teardown()
    with create >> delete:
        fill = BashOperator(task_id="fill_bucket", bash_command="echo filled")
        failing = broken()
        after = EmptyOperator(task_id="after_failure")
        fill >> failing >> after

    session = open_session()
    with close_session(session):
        summarise(query(session))

    outer_setup = EmptyOperator(task_id="outer_setup").as_setup()
    outer_teardown = EmptyOperator(task_id="outer_teardown").as_teardown()
    inner_setup = EmptyOperator(task_id="inner_setup").as_setup()
    inner_teardown = EmptyOperator(task_id="inner_teardown").as_teardown()
    with outer_setup >> outer_teardown:
        EmptyOperator(task_id="outer_work")
        with inner_setup >> inner_teardown:
            EmptyOperator(task_id="inner_work")

    lock = EmptyOperator(task_id="take_lock")
    unlock = EmptyOperator(task_id="release_lock")
    with unlock.as_teardown(setups=lock):
        BashOperator(task_id="locked_work", bash_command="echo locked") >> EmptyOperator(
            task_id="locked_more"
        )
