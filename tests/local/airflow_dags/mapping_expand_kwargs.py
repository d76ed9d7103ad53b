"""expand_kwargs(): one instance per dict of arguments, from a literal list and from an upstream XCom
(plain and through .map), for @task and classic operators, as Airflow 3 runs them
(tests/local/test_local_mapping.py)."""

from __future__ import annotations

from datetime import datetime

from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, task


def power(base, exponent):
    return base**exponent


with DAG("mapping_expand_kwargs", start_date=datetime(2024, 1, 1), schedule=None) as dag:

    @task
    def add(x, y):
        return x + y

    add.expand_kwargs([{"x": 1, "y": 2}, {"x": 10, "y": 20}])

    @task
    def numbers():
        return [1, 2, 3]

    @task
    def pair(x, y):
        return [x, y]

    pair.expand_kwargs(numbers().map(lambda n: {"x": n, "y": n * n}))

    @task
    def commands():
        return [
            {"bash_command": "echo first"},
            {"bash_command": 'echo "second $NAME"', "env": {"NAME": "env"}},
        ]

    BashOperator.partial(task_id="run_commands").expand_kwargs(commands())

    PythonOperator.partial(task_id="powers", python_callable=power).expand_kwargs(
        [{"op_kwargs": {"base": 2, "exponent": 5}}, {"op_kwargs": {"base": 3, "exponent": 2}}]
    )
