"""A scheduled DAG with a param that has no default: Airflow refuses the DAG when it parses the file
(its scheduled runs could never give the value), and kdag refuses it when it compiles the file."""

from datetime import datetime

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, Param

with DAG(
    "params_scheduled",
    start_date=datetime(2026, 1, 1),
    schedule="@daily",
    params={"who": Param(type="string")},
) as dag:
    PythonOperator(task_id="greet", python_callable=lambda: "hi")
