# BashOperator with Jinja templates: `ds`, `params`, `ti.xcom_pull(...)` and `run_id` in `bash_command` and
# `env`; the last line a command prints is its return_value.
from datetime import datetime

from airflow import DAG
from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.operators.python import PythonOperator

with DAG(
    dag_id='bash_templates',
    start_date=datetime(2024, 1, 1),
    schedule=None,
    params={'greeting': 'Hello'},
) as dag:
    make_name = PythonOperator(task_id='make_name', python_callable=lambda: 'kdag')

    greet = BashOperator(
        task_id='greet',
        bash_command='echo "{{ params.greeting }}, {{ ti.xcom_pull(task_ids=\'make_name\') }}!"',
    )

    dated = BashOperator(
        task_id='dated',
        bash_command='echo "ds={{ ds }}"; echo "$WHO on {{ ds_nodash }}"',
        env={'WHO': '{{ params.who }}'},
        params={'who': 'world'},
    )

    last_line = BashOperator(
        task_id='last_line',
        bash_command='echo first; echo second; echo "{{ ti.xcom_pull(task_ids=\'greet\') }} (last)"',
    )

    which_run = BashOperator(task_id='which_run', bash_command='echo "run {{ run_id }}"')

    make_name >> greet >> last_line
    dated.set_downstream(which_run)
