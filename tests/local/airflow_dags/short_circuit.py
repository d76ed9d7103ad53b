"""ShortCircuitOperator and @task.short_circuit as Airflow 3 runs them (test_local_branching.py)."""

from __future__ import annotations

from datetime import datetime

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.python import ShortCircuitOperator
from airflow.sdk import DAG, task

with DAG("short_circuit", start_date=datetime(2024, 1, 1), schedule=None) as dag:
    # Falsy: every task downstream is skipped, whatever its trigger rule.
    stop = ShortCircuitOperator(task_id="stop", python_callable=lambda: [])
    s1 = EmptyOperator(task_id="s1")
    s2 = EmptyOperator(task_id="s2", trigger_rule="all_done")
    stop >> s1 >> s2

    # Falsy, respecting trigger rules: only r1 is skipped; r2 (all_done) runs.
    respect = ShortCircuitOperator(
        task_id="respect", python_callable=lambda: 0, ignore_downstream_trigger_rules=False
    )
    r1 = EmptyOperator(task_id="r1")
    r2 = EmptyOperator(task_id="r2", trigger_rule="all_done")
    respect >> r1 >> r2

    # Truthy: the value is pushed and the tasks downstream run.
    @task.short_circuit
    def go_on():
        return {"go": True}

    go_on() >> EmptyOperator(task_id="g1")

    # Falsy without downstream tasks: nothing to skip, so the result (False) is pushed.
    ShortCircuitOperator(task_id="alone", python_callable=lambda: False)
