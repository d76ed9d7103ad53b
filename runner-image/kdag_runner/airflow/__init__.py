"""Airflow-compatible authoring: ``DAG``, operators, ``>>``, TaskFlow's ``@task``/``@dag``, exceptions.

Standard library only, so a DAG file runs unchanged inside a task pod. Definition mistakes raise
``DagDefinitionError`` with one line naming the task (or DAG) and the problem. ``kdag.authoring`` re-exports
this surface for users; ``kdag_runner.compat`` serves it as the ``airflow.*`` modules DAG files import.

One module per concept, each importing only the ones listed before it (no import cycle, lazy or not):

- ``exceptions``, ``trigger_rules``: leaves; ``params`` (``Param``, ``ParamsDict``) imports ``exceptions``.
- ``templating``: Jinja rendering of template fields (jinja2 imported only to render), ``macros``,
  the ``AIRFLOW_CTX_*`` variables.
- ``groups``: ``TaskGroup``, ``@task_group``, the group stack; sees DAGs and tasks through Protocols.
- ``dags``: ``DAG``, the id rules, the ``with DAG(...)`` stack, ``created_dags``, the DAG's root group. It
  sees tasks through the ``DagTask`` Protocol and never imports ``operators``.
- ``xcom_arg``: ``XComArg``; it sees its task through the ``XComSource`` Protocol.
- ``edges``: ``Label``, ``chain_linear``, ``cross_downstream``.
- ``operators``: ``BaseOperator``, dependencies (``>>``, ``chain``), ``EmptyOperator``; imports the two above.
- ``python``, ``bash``: ``PythonOperator``, ``BashOperator``.
- ``branching``: branches, short-circuits, ``LatestOnlyOperator``, the weekday and datetime branches.
- ``sensors``: ``BaseSensorOperator``, ``PokeReturnValue``, ``PythonSensor``, the time sensors.
- ``mapping``: dynamic task mapping (``partial``/``expand``/``expand_kwargs``, ``MappedOperator``); it
  registers ``BaseOperator.partial``'s factory with ``operators``.
- ``taskflow``: ``@task`` (``@task.bash``), ``@setup``, ``@teardown`` and ``@dag``.

Code inside this package imports the submodules, never this package itself.
"""

from __future__ import annotations

from kdag_runner.airflow.bash import BashOperator
from kdag_runner.airflow.branching import (
    BaseBranchOperator,
    BranchDateTimeOperator,
    BranchDayOfWeekOperator,
    BranchMixIn,
    BranchPythonOperator,
    LatestOnlyOperator,
    ShortCircuitOperator,
    SkipMixin,
    WeekDay,
)
from kdag_runner.airflow.dags import DAG, DagTask
from kdag_runner.airflow.edges import Label, chain_linear, cross_downstream
from kdag_runner.airflow.exceptions import (
    AirflowException,
    AirflowFailException,
    AirflowRescheduleException,
    AirflowSensorTimeout,
    AirflowSkipException,
    DagDefinitionError,
    DownstreamTasksSkipped,
    ParamValidationError,
)
from kdag_runner.airflow.groups import TaskGroup, task_group
from kdag_runner.airflow.mapping import MappedOperator
from kdag_runner.airflow.operators import BaseOperator, DummyOperator, EmptyOperator, chain
from kdag_runner.airflow.params import Param, ParamsDict
from kdag_runner.airflow.python import PythonOperator
from kdag_runner.airflow.sensors import (
    BaseSensorOperator,
    DateTimeSensor,
    DateTimeSensorAsync,
    PokeReturnValue,
    PythonSensor,
    TimeDeltaSensor,
    TimeDeltaSensorAsync,
    poke_mode_only,
)
from kdag_runner.airflow.taskflow import dag, setup, task, teardown
from kdag_runner.airflow.trigger_rules import TriggerRule
from kdag_runner.airflow.xcom_arg import XComArg

__all__ = [
    "DAG",
    "AirflowException",
    "AirflowFailException",
    "AirflowRescheduleException",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "BaseBranchOperator",
    "BaseOperator",
    "BaseSensorOperator",
    "BashOperator",
    "BranchDateTimeOperator",
    "BranchDayOfWeekOperator",
    "BranchMixIn",
    "BranchPythonOperator",
    "DagDefinitionError",
    "DagTask",
    "DateTimeSensor",
    "DateTimeSensorAsync",
    "DownstreamTasksSkipped",
    "DummyOperator",
    "EmptyOperator",
    "Label",
    "LatestOnlyOperator",
    "MappedOperator",
    "Param",
    "ParamValidationError",
    "ParamsDict",
    "PokeReturnValue",
    "PythonOperator",
    "PythonSensor",
    "ShortCircuitOperator",
    "SkipMixin",
    "TaskGroup",
    "TimeDeltaSensor",
    "TimeDeltaSensorAsync",
    "TriggerRule",
    "WeekDay",
    "XComArg",
    "chain",
    "chain_linear",
    "cross_downstream",
    "dag",
    "poke_mode_only",
    "setup",
    "task",
    "task_group",
    "teardown",
]
