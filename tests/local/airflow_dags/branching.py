"""Branches as Airflow 3 runs them: BranchPythonOperator, @task.branch, a BaseBranchOperator subclass,
a branch to a task group, None, and joins after branches (tests/local/test_local_branching.py)."""

from __future__ import annotations

from datetime import datetime

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.python import BranchPythonOperator
from airflow.sdk import DAG, BaseBranchOperator, TaskGroup, task


class ParityBranch(BaseBranchOperator):
    """Follows `even` or `odd` by the parity of params.number."""

    def choose_branch(self, context):
        return "even" if context["params"]["number"] % 2 == 0 else "odd"


with DAG(
    "branching",
    start_date=datetime(2024, 1, 1),
    schedule=None,
    params={"number": 7},
) as dag:
    # One id: `left` runs, `right` is skipped; `join` runs (none_failed_min_one_success).
    pick = BranchPythonOperator(task_id="pick", python_callable=lambda: "left")
    left = EmptyOperator(task_id="left")
    right = EmptyOperator(task_id="right")
    after_right = EmptyOperator(task_id="after_right")
    join = EmptyOperator(task_id="join", trigger_rule="none_failed_min_one_success")
    pick >> [left, right]
    right >> after_right
    [left, after_right] >> join

    # A list: a and b run, c is skipped.
    @task.branch
    def choose_many():
        return ["a", "b"]

    many = choose_many()
    many >> [EmptyOperator(task_id="a"), EmptyOperator(task_id="b"), EmptyOperator(task_id="c")]

    # None: every direct downstream task is skipped.
    @task.branch(task_id="choose_nothing")
    def nothing():
        return None

    nothing() >> EmptyOperator(task_id="x")

    # Every downstream task followed: nothing skipped, so the return value is pushed too.
    follow_all = BranchPythonOperator(task_id="follow_all", python_callable=lambda: ["p", "q"])
    follow_all >> [EmptyOperator(task_id="p"), EmptyOperator(task_id="q")]

    # A branch straight to the join: `join2` is downstream of the followed `via`, so it is not skipped.
    shortcut = BranchPythonOperator(task_id="shortcut", python_callable=lambda: "via")
    via = EmptyOperator(task_id="via")
    join2 = EmptyOperator(task_id="join2")
    other = EmptyOperator(task_id="other")
    shortcut >> [via, join2, other]
    via >> join2

    # A BaseBranchOperator subclass; params.number is 7.
    parity = ParityBranch(task_id="parity")
    parity >> [EmptyOperator(task_id="even"), EmptyOperator(task_id="odd")]

    # A task group id: its root tasks are followed.
    to_group = BranchPythonOperator(task_id="to_group", python_callable=lambda: "grp")
    with TaskGroup("grp") as grp:
        first = EmptyOperator(task_id="first")
        first >> EmptyOperator(task_id="second")
    to_group >> [grp, EmptyOperator(task_id="not_grp")]
