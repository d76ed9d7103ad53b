"""Mapped task groups over upstream XComs, as Airflow 3 runs them (tests/local/test_local_mapping.py):
expand() over a task's list, expand_kwargs() over a task's list of dicts and over a literal list, a task
after the group reading all its values, and a group over an empty list (its tasks Skipped, as the task
after it)."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, task, task_group

with DAG("mapping_group_xcom", start_date=datetime(2024, 1, 1), schedule=None) as dag:

    @task
    def numbers():
        return [1, 2, 3, 4]

    @task_group
    def pipeline(n):
        @task
        def square(n):
            return n * n

        @task
        def label(value, ti=None):
            return f"{ti.map_index}:{value}"

        return label(square(n))

    @task
    def join(values):
        return list(values)

    join(pipeline.expand(n=numbers()))

    @task
    def records():
        return [{"name": "a", "size": 1}, {"name": "b", "size": 2}]

    @task_group
    def describe(name, size):
        @task
        def text(name, size):
            return f"{name}:{size}"

        @task
        def shout(value):
            return value.upper()

        shout(text(name, size))

    describe.expand_kwargs(records())
    describe.override(group_id="described").expand_kwargs([{"name": "c", "size": 3}])

    @task
    def nothing():
        return []

    @task_group
    def empty(x):
        @task
        def never(x):
            return x

        @task
        def never_again(x):
            return x

        return never_again(never(x))

    @task
    def after_empty(values):
        return list(values)

    after_empty(empty.expand(x=nothing()))
