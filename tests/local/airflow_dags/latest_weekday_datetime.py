"""LatestOnlyOperator (a manual run is the latest), BranchDayOfWeekOperator and BranchDateTimeOperator on
the logical date (2026-11-21, a Saturday) as Airflow 3 runs them (tests/local/test_local_branching.py)."""

from __future__ import annotations

from datetime import UTC, datetime, time

from airflow.providers.standard.operators.datetime import BranchDateTimeOperator
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.latest_only import LatestOnlyOperator
from airflow.providers.standard.operators.weekday import BranchDayOfWeekOperator
from airflow.providers.standard.utils.weekday import WeekDay
from airflow.sdk import DAG

with DAG("latest_weekday_datetime", start_date=datetime(2024, 1, 1), schedule="@daily") as dag:
    latest = LatestOnlyOperator(task_id="latest_only")
    latest >> EmptyOperator(task_id="after_latest")

    weekend = BranchDayOfWeekOperator(
        task_id="weekend_check",
        week_day={WeekDay.SATURDAY, WeekDay.SUNDAY},
        use_task_logical_date=True,
        follow_task_ids_if_true="weekend",
        follow_task_ids_if_false="workday",
    )
    weekend >> [EmptyOperator(task_id="weekend"), EmptyOperator(task_id="workday")]

    monday = BranchDayOfWeekOperator(
        task_id="monday_check",
        week_day="Monday",
        use_task_logical_date=True,
        follow_task_ids_if_true=["monday"],
        follow_task_ids_if_false=["not_monday"],
    )
    monday >> [EmptyOperator(task_id="monday"), EmptyOperator(task_id="not_monday")]

    in_window = BranchDateTimeOperator(
        task_id="in_window",
        use_task_logical_date=True,
        target_lower=datetime(2026, 11, 20, tzinfo=UTC),
        target_upper=datetime(2026, 11, 22, tzinfo=UTC),
        follow_task_ids_if_true="inside",
        follow_task_ids_if_false="outside",
    )
    in_window >> [EmptyOperator(task_id="inside"), EmptyOperator(task_id="outside")]

    morning = BranchDateTimeOperator(
        task_id="morning",
        use_task_logical_date=True,
        target_lower=time(6, 0),
        target_upper=time(12, 0),
        follow_task_ids_if_true="before_noon",
        follow_task_ids_if_false="not_morning",
    )
    morning >> [EmptyOperator(task_id="before_noon"), EmptyOperator(task_id="not_morning")]
