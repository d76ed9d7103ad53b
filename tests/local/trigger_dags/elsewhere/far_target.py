"""A DAG outside the controllers' folder: `kdag run --local --dag-folder` finds it."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, task

with DAG("far_target", schedule=None, start_date=datetime(2026, 1, 1)):

    @task
    def hello():
        return "hello from far away"

    hello()
