"""Params with JSON schemas at DAG and task level: what each task sees in `params` for a run's conf.

`tests/local/test_local_params.py` runs it under kdag with the confs of `airflow_3_3_2.json`, recorded from
Apache Airflow by `bench/params_reference.py`, and compares states and XCom rows (or the refusal).
"""

from datetime import datetime

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, Param


def show(**context):
    """Every param the task sees, with its value."""
    params = context["params"]
    return {key: params[key] for key in sorted(params)}


with DAG(
    "params_basic",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    params={
        "count": Param(2, type="integer", minimum=1, maximum=10, description="How many"),
        "name": Param("world", type="string", minLength=1, maxLength=20),
        "mode": Param("fast", enum=["fast", "slow"]),
        "tags": Param(["a"], type="array", items={"type": "string"}, minItems=1),
        "day": Param("2026-11-21", type="string", format="date"),
        "maybe": Param(None, type=["null", "integer"]),
        "ratio": Param(0.5, type="number", exclusiveMinimum=0, multipleOf=0.25),
        "plain": 7,
    },
) as dag:
    first = PythonOperator(task_id="first", python_callable=show)
    # A plain task value keeps the DAG's schema of `count`; `extra` is the task's own Param.
    second = PythonOperator(
        task_id="second",
        python_callable=show,
        params={"count": 5, "extra": Param(1.5, type="number", minimum=1)},
    )
    first >> second
