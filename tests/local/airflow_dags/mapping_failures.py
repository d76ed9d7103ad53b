"""What fails with mapping, as Airflow 3 runs it: an upstream list longer than max_map_length (1024), a
value that cannot be mapped, no value at all, and a failing instance seen by downstream trigger rules
(tests/local/test_local_mapping.py)."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, task

with DAG("mapping_failures", start_date=datetime(2024, 1, 1), schedule=None) as dag:

    @task
    def too_many():
        return list(range(1025))

    @task
    def a_number():
        return 5

    @task
    def no_value():
        return None

    @task
    def each(x):
        return x

    each.override(task_id="each_too_many").expand(x=too_many())
    each.override(task_id="each_number").expand(x=a_number())
    each.override(task_id="each_none").expand(x=no_value())

    @task
    def fragile(x):
        if x == 2:
            raise ValueError("two is not allowed")
        return x

    broken = fragile.expand(x=[1, 2, 3])

    @task(trigger_rule="one_failed")
    def alert():
        return "alerted"

    @task(trigger_rule="all_done")
    def cleanup(values):
        return sorted(values)

    @task
    def after(values):
        return list(values)

    broken >> alert()
    cleanup(broken)
    after(broken)
