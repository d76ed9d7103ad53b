"""Dynamic task mapping where kdag goes beyond Apache Airflow 3.3 (tests/local/test_local_mapping.py):
mapping over an XCom under another key than return_value (Airflow refuses `task["key"]` when it parses the
file), a literal list longer than max_map_length (Airflow 3.3 has no cap there; kdag's controller fails the
task), a mapped task in a task group, and a mapped task that retries one instance."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, TaskGroup, get_current_context, task

with DAG("mapping_beyond_airflow", start_date=datetime(2024, 1, 1), schedule=None) as dag:

    @task(multiple_outputs=True)
    def make():
        return {"names": ["ann", "bob"], "count": 2}

    @task
    def hello(name):
        return f"hello {name}"

    hello.expand(name=make()["names"])

    @task
    def each(x):
        return x

    each.override(task_id="too_many").expand(x=list(range(1025)))

    with TaskGroup("grp"):
        each.override(task_id="inner").expand(x=[1, 2])

    @task(retries=1, retry_delay=0)
    def flaky(x):
        ti = get_current_context()["ti"]
        if x == 2 and ti.try_number == 1:
            raise ValueError("first try of 2 fails")
        return x * 10

    flaky.expand(x=[1, 2, 3])
