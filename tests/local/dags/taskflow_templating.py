"""The rest of TaskFlow and templating as Airflow 3 does them: @task.bash (the function returns the
command), multiple_outputs, `.output`, `XComArg(op, key=...)`, an XComArg in an f-string, in a templated
dict and in op_args (its value never rendered again), template_searchpath, user_defined_macros and
user_defined_filters, BashOperator's output_processor, `.override(task_id=...)`.
tests/local/test_local_groups.py compares kdag's run with Apache Airflow's."""

from __future__ import annotations

import json
import os
from datetime import datetime

from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, XComArg, task

HERE = os.path.dirname(os.path.abspath(__file__))


@task.bash
def greet(name, ds=None):
    return f"echo hello {name} {ds} {{{{ params.suffix }}}}"


@task.bash(multiple_outputs=True, output_processor=json.loads)
def as_json():
    return """echo '{"a": 1, "b": "two"}'"""


@task(multiple_outputs=True)
def pair():
    return {"left": "L", "right": "R"}


@task
def jinja_text():
    return "{{ ds }} stays as it is"


@task
def echo(value):
    return value


def combine(first, second):
    return f"{first}+{second}"


with DAG(
    "taskflow_templating",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    params={"suffix": "!"},
    template_searchpath=[os.path.join(HERE, "templates")],
    user_defined_macros={"project": "kdag"},
    user_defined_filters={"shout": lambda text: text.upper() + "!"},
) as dag:
    greeted = greet("world")
    parsed = as_json()
    halves = pair()
    text = jinja_text()
    echoed = echo.override(task_id="echo_text")(text)
    quoted = BashOperator(task_id="f_string", bash_command=f"echo '{text}'")
    text >> quoted
    env_task = BashOperator(
        task_id="env_from_xcom",
        bash_command='echo "$LEFT/$RIGHT"',
        env={"LEFT": halves["left"], "RIGHT": XComArg(halves.operator, key="right")},
    )
    included = BashOperator(
        task_id="included",
        bash_command="echo \"{% include 'greeting.txt' %}\" | head -n 1",
        output_processor=lambda line: line.replace("greetings", "hello"),
    )
    filtered = BashOperator(task_id="filtered", bash_command="echo '{{ project | shout }}'")
    combined = PythonOperator(
        task_id="combined",
        python_callable=combine,
        op_args=[greeted, parsed["b"]],
        op_kwargs={},
    )
    combined_output = echo.override(task_id="from_output")(combined.output)
