"""Airflow-compatible DAG authoring for Python users: `from kdag.authoring import DAG, PythonOperator`.

The classes live in the runner library (`kdag_runner.airflow`, standard library only) so task pods can
load the same DAG files; this module is their public name in the `kdag` package and exports exactly what
`kdag_runner.airflow` exports, plus the DAG file loaders and `get_current_context`.
"""

from __future__ import annotations

from kdag_runner import airflow
from kdag_runner.airflow import *  # noqa: F403  (the whole public surface, listed once, in airflow.__all__)
from kdag_runner.compat import load_dag_file, load_dags
from kdag_runner.context import get_current_context

__all__ = ["get_current_context", "load_dag_file", "load_dags"]
__all__ += airflow.__all__
