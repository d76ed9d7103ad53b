"""The DAG children.py waits for (tests/local/test_local_external_task.py)."""

from __future__ import annotations

from datetime import datetime

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.sensors.external_task import ExternalTaskMarker
from airflow.sdk import DAG, TaskGroup

with DAG("parent", schedule=None, start_date=datetime(2026, 1, 1)):
    marker = ExternalTaskMarker(
        task_id="marker", external_dag_id="trigger_then_sense", external_task_id="sense"
    )
    with TaskGroup("grp") as grp:
        EmptyOperator(task_id="a") >> EmptyOperator(task_id="b")
    marker >> grp
