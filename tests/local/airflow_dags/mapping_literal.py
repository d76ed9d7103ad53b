"""Dynamic task mapping over literals as Airflow 3 runs it: @task and classic operators (PythonOperator,
BashOperator) expanded over a list and a dict, `partial`, `map_index_template` and the context of an instance
(tests/local/test_local_mapping.py; Airflow's results in `mapping_airflow_3_3_2.json`)."""

from __future__ import annotations

from datetime import datetime

from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, get_current_context, task


def greet(greeting, name):
    return f"{greeting}, {name}!"


def where(**context):
    ti = context["ti"]
    return {"map_index": ti.map_index, "task_id": ti.task_id}


with DAG("mapping_literal", start_date=datetime(2024, 1, 1), schedule=None) as dag:

    @task
    def double(x):
        return 2 * x

    doubled = double.expand(x=[1, 2, 3])

    @task
    def scaled(x, factor):
        return x * factor

    # partial() fixes an argument every instance shares.
    scaled.partial(factor=10).expand(x=[4, 5])

    # A dict maps to (key, value) pairs, in the dict's order.
    @task
    def show(pair):
        key, value = pair
        return f"{key}={value}"

    show.expand(pair={"a": 1, "b": 2})

    # A classic operator: every argument of partial() is shared, expand() maps its own.
    PythonOperator.partial(task_id="classic", python_callable=greet).expand(
        op_args=[["hello", "kdag"], ["hi", "airflow"]]
    )
    BashOperator.partial(task_id="echo", env={"WHO": "bash"}, append_env=True).expand(
        bash_command=["echo one $WHO", "echo two $WHO"]
    )

    # The name of each instance, rendered after it ran with its context.
    @task(map_index_template="{{ label }}")
    def labelled(colour):
        get_current_context()["label"] = f"colour {colour}"
        return colour.upper()

    labelled.expand(colour=["red", "green"])

    PythonOperator.partial(task_id="context", python_callable=where).expand(op_kwargs=[{}, {}, {}])

    # Pushes under other keys are rows of the instance too.
    @task
    def push_more(x):
        get_current_context()["ti"].xcom_push(key="square", value=x * x)

    push_more.expand(x=[3, 4])
