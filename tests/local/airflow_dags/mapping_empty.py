"""An empty list to map over: the mapped task is skipped, and so is what follows it by trigger rule,
as Airflow 3 runs it (tests/local/test_local_mapping.py)."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, task

with DAG("mapping_empty", start_date=datetime(2024, 1, 1), schedule=None) as dag:

    @task
    def nothing():
        return []

    @task
    def each(x):
        return x

    @task
    def after(values):
        return list(values)

    @task(trigger_rule="all_done")
    def anyway():
        return "ran"

    mapped = each.expand(x=nothing())
    after(mapped)
    mapped >> anyway()

    each.override(task_id="each_literal").expand(x=[])
