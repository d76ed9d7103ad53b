"""Mapping over an upstream task's XCom list, a reduce over the instances' values, chained mapping and
`xcom_pull` from a mapped task, as Airflow 3 runs them (tests/local/test_local_mapping.py)."""

from __future__ import annotations

from datetime import datetime

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, task


def pull_all(ti):
    return {
        "all": ti.xcom_pull(task_ids="add_one"),
        "one": ti.xcom_pull(task_ids="add_one", map_indexes=1),
        "some": ti.xcom_pull(task_ids="add_one", map_indexes=[0, 3]),
        "missing": ti.xcom_pull(task_ids="add_one", map_indexes=9, default="none"),
        "odd": ti.xcom_pull(task_ids="keep_odd"),
        "odd_at_1": ti.xcom_pull(task_ids="keep_odd", map_indexes=1),
        "single": ti.xcom_pull(task_ids="single"),
        "both": ti.xcom_pull(task_ids=["make_list", "add_one"]),
        "seen": ti.xcom_pull(task_ids="add_one", key="seen"),
    }


with DAG("mapping_xcom", start_date=datetime(2024, 1, 1), schedule=None) as dag:

    @task
    def make_list():
        return [1, 2, 3, 4]

    @task
    def add_one(x, ti=None):
        ti.xcom_push(key="seen", value=f"saw {x}")
        return x + 1

    numbers = make_list()
    added = add_one.expand(x=numbers)

    @task
    def total(values):
        return {"sum": sum(values), "count": len(values), "as_list": list(values)}

    total(added)

    # Mapping over a mapped task's values: one instance per value it pushed.
    @task
    def times_ten(x):
        return x * 10

    tens = times_ten.expand(x=added)

    @task
    def collect(values):
        return list(values)

    collect(tens)

    # Instances that push nothing leave no value: the others keep the map order.
    @task
    def keep_odd(x):
        return x if x % 2 else None

    odd = keep_odd.expand(x=numbers)

    @task
    def single(x):
        return x

    one = single.expand(x=[42])

    pull = PythonOperator(task_id="pull_all", python_callable=pull_all)
    [added, odd, one] >> pull
