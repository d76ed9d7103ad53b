"""DAGs that controllers.py triggers."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param, task

with DAG("doubler", schedule=None, start_date=datetime(2026, 1, 1), params={"n": Param(1, type="integer")}):

    @task
    def double(params=None, dag_run=None):
        return {"double": params["n"] * 2, "conf": dag_run.conf}

    double()

with DAG("breaker", schedule=None, start_date=datetime(2026, 1, 1)):

    @task
    def breaks():
        raise ValueError("broken on purpose")

    breaks()
