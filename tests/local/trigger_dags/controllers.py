"""DAGs that trigger others with TriggerDagRunOperator (tests/local/test_local_trigger_dagrun.py): the DAGs
they trigger are in targets.py beside this file, and in elsewhere/ (found with --dag-folder)."""

from __future__ import annotations

from datetime import datetime

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG

START = datetime(2026, 1, 1)

with DAG("fire_and_forget", schedule=None, start_date=START):
    TriggerDagRunOperator(task_id="fire", trigger_dag_id="doubler", conf={"n": 3})

with DAG("fire_and_wait", schedule=None, start_date=START):
    TriggerDagRunOperator(
        task_id="wait",
        trigger_dag_id="doubler",
        trigger_run_id="doubler-{{ ds_nodash }}",
        conf={"n": 5},
        wait_for_completion=True,
        poke_interval=1,
    )

with DAG("wait_for_a_failure", schedule=None, start_date=START):
    TriggerDagRunOperator(
        task_id="wait", trigger_dag_id="breaker", wait_for_completion=True, poke_interval=1, retries=0
    )

with DAG("same_run_twice", schedule=None, start_date=START):
    first = TriggerDagRunOperator(task_id="first", trigger_dag_id="doubler", trigger_run_id="only-one")
    skip = TriggerDagRunOperator(
        task_id="skip", trigger_dag_id="doubler", trigger_run_id="only-one", skip_when_already_exists=True
    )
    fail = TriggerDagRunOperator(task_id="fail", trigger_dag_id="doubler", trigger_run_id="only-one")
    first >> [skip, fail]

with DAG("missing_and_refused", schedule=None, start_date=START):
    TriggerDagRunOperator(task_id="missing", trigger_dag_id="nowhere")
    TriggerDagRunOperator(task_id="refused", trigger_dag_id="doubler", conf={"n": "three"})

with DAG("far_away", schedule=None, start_date=START):
    TriggerDagRunOperator(
        task_id="far", trigger_dag_id="far_target", wait_for_completion=True, poke_interval=1
    )
