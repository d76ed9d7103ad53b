"""Airflow-compatible DAG authoring for Python users: `from kdag.authoring import DAG, PythonOperator`.

The classes live in the runner library (`kdag_runner.authoring`, standard library only) so task pods can
load the same DAG files; this module is their public name in the `kdag` package.
"""

from __future__ import annotations

from kdag_runner.authoring import (
    DAG,
    AirflowException,
    AirflowFailException,
    AirflowSkipException,
    BaseOperator,
    BashOperator,
    DagDefinitionError,
    DummyOperator,
    EmptyOperator,
    Param,
    PythonOperator,
    TriggerRule,
    XComArg,
    chain,
    dag,
    task,
)
from kdag_runner.compat import load_dag_file, load_dags
from kdag_runner.context import get_current_context

__all__ = [
    "DAG",
    "AirflowException",
    "AirflowFailException",
    "AirflowSkipException",
    "BaseOperator",
    "BashOperator",
    "DagDefinitionError",
    "DummyOperator",
    "EmptyOperator",
    "Param",
    "PythonOperator",
    "TriggerRule",
    "XComArg",
    "chain",
    "dag",
    "get_current_context",
    "load_dag_file",
    "load_dags",
    "task",
]
