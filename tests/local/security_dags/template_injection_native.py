"""`render_template_as_native_obj=True`: upstream XComs a mapped task expands over, or a template pulls,
are still data, never templates (Airflow's native environment is not sandboxed: rendering `PAYLOAD` there
runs `id`; kdag's is sandboxed too).

Run by `tests/local/test_local_template_injection.py` and `tests/e2e/test_security_on_cluster.py`.
"""

from datetime import datetime

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, task

PAYLOAD = "{{ cycler.__init__.__globals__.os.popen('id').read() }}"


def payloads():
    return [PAYLOAD, "{{ ds }}"]


def shown(value):
    return value


with DAG(
    "template_injection_native",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    render_template_as_native_obj=True,
) as dag:
    listed = PythonOperator(task_id="listed", python_callable=payloads)

    @task
    def echo(value):
        return value

    echo.expand(value=listed.output)
    listed >> PythonOperator(
        task_id="pulled", python_callable=shown, op_kwargs={"value": "{{ ti.xcom_pull(task_ids='listed') }}"}
    )
