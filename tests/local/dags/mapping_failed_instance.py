"""What a failed instance of a mapped task pushed reaches an all_done task downstream, as in Airflow 3.3.2
(tests/handlers/test_mapping_handler.py, and on the cluster tests/e2e/test_mapping_on_cluster.py): Airflow
keeps the XComs of a failed try, so cleanup gets the values of the instances that succeeded and `seen` of
all three."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, task

with DAG("mapping_failed_instance", schedule=None, start_date=datetime(2026, 1, 1)) as dag:

    @task
    def fragile(x, ti=None):
        ti.xcom_push(key="seen", value=x)
        if x == 2:
            raise ValueError("two is not allowed")
        return x

    @task(trigger_rule="all_done")
    def cleanup(values, ti=None):
        return {
            "values": list(values),
            "seen": ti.xcom_pull(task_ids="fragile", key="seen"),
            "seen_by_failed": ti.xcom_pull(task_ids="fragile", key="seen", map_indexes=1),
        }

    cleanup(fragile.expand(x=[1, 2, 3]))
