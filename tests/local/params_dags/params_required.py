"""A param without a default (Airflow's `Param(type=...)`): every run must give it in its conf."""

from datetime import datetime

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, Param


def greet(**context):
    return f"hello {context['params']['who']}"


with DAG(
    "params_required",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    params={"who": Param(type="string", pattern="^[a-z]+$")},
) as dag:
    PythonOperator(task_id="greet", python_callable=greet)
