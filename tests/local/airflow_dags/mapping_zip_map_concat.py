"""XComArg.zip (shortest, and longest with fillvalue), .map (an instance skipped by its map function)
and .concat, as Airflow 3 runs them (tests/local/test_local_mapping.py)."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, task
from airflow.sdk.exceptions import AirflowSkipException


def shout(s):
    return s.upper()


def hundred_or_skip(x):
    if x == 2:
        raise AirflowSkipException("no twos")
    return x * 100


with DAG("mapping_zip_map_concat", start_date=datetime(2024, 1, 1), schedule=None) as dag:

    @task
    def numbers():
        return [1, 2, 3]

    @task
    def letters():
        return ["x", "y"]

    @task
    def show(value):
        return value

    nums = numbers()
    lets = letters()
    show.override(task_id="zipped").expand(value=nums.zip(lets))
    show.override(task_id="zipped_longest").expand(value=nums.zip(lets, fillvalue="-"))
    show.override(task_id="concatenated").expand(value=nums.concat(lets))
    show.override(task_id="mapped").expand(value=nums.map(hundred_or_skip))
    show.override(task_id="mapped_twice").expand(value=lets.map(shout).map(lambda s: s + s))
