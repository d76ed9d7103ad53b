"""Several expand() arguments: one instance per combination (the last argument varies fastest), over
literals and an upstream XCom, as Airflow 3 runs them (tests/local/test_local_mapping.py)."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, task

with DAG("mapping_product", start_date=datetime(2024, 1, 1), schedule=None) as dag:

    @task
    def combine(letter, number):
        return f"{letter}{number}"

    combine.expand(letter=["a", "b"], number=[1, 2, 3])

    @task
    def sizes():
        return ["small", "large"]

    @task
    def label(size, colour, suffix):
        return f"{size}-{colour}{suffix}"

    label.partial(suffix="!").expand(colour=["red", "blue"], size=sizes())
