"""DAGs whose ExternalTaskSensors wait for parents.py's DAG (tests/local/test_local_external_task.py): under
`kdag run --local` the only runs of it are those the same invocation triggered."""

from __future__ import annotations

from datetime import datetime

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.providers.standard.sensors.external_task import ExternalTaskSensor
from airflow.sdk import DAG

START = datetime(2026, 1, 1)

with DAG("trigger_then_sense", schedule=None, start_date=START):
    fire = TriggerDagRunOperator(
        task_id="fire",
        trigger_dag_id="parent",
        logical_date="{{ logical_date }}",
        wait_for_completion=True,
        poke_interval=1,
    )
    sense = ExternalTaskSensor(
        task_id="sense", external_dag_id="parent", external_task_id="marker", poke_interval=1, timeout=60
    )
    group = ExternalTaskSensor(
        task_id="group", external_dag_id="parent", external_task_group_id="grp", poke_interval=1, timeout=60
    )
    fire >> [sense, group]

with DAG("recorded_only", schedule=None, start_date=START):
    fire = TriggerDagRunOperator(task_id="fire", trigger_dag_id="parent", logical_date="{{ logical_date }}")
    queued = ExternalTaskSensor(
        task_id="queued", external_dag_id="parent", allowed_states=["queued"], poke_interval=1, timeout=60
    )
    not_started = ExternalTaskSensor(
        task_id="not_started",
        external_dag_id="parent",
        external_task_id="marker",
        poke_interval=1,
        timeout=2,
        soft_fail=True,
    )
    fire >> [queued, not_started]

with DAG("alone", schedule=None, start_date=START):
    ExternalTaskSensor(
        task_id="nothing", external_dag_id="parent", external_task_id="marker", poke_interval=1, timeout=2
    )
    ExternalTaskSensor(task_id="missing", external_dag_id="nowhere", check_existence=True, poke_interval=1)
