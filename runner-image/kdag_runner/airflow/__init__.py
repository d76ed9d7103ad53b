"""Airflow-compatible authoring: ``DAG``, operators, ``>>``, TaskFlow's ``@task``/``@dag``, exceptions.

Standard library only, so a DAG file runs unchanged inside a task pod. Definition mistakes raise
``DagDefinitionError`` with one line naming the task (or DAG) and the problem. ``kdag.authoring`` re-exports
this surface for users; ``kdag_runner.compat`` serves it as the ``airflow.*`` modules DAG files import.

One module per concept, each importing only the ones listed before it (no import cycle, lazy or not):

- ``exceptions``, ``trigger_rules``: leaves; ``params`` (``Param``, ``ParamsDict``) imports ``exceptions``.
- ``templating``: Jinja rendering of template fields (jinja2 imported only to render), ``macros``,
  the ``AIRFLOW_CTX_*`` variables.
- ``roots_and_leaves``: which tasks a task group stands for in ``>>`` (its roots; its leaves, a teardown at
  the end standing for the work it follows); pure.
- ``groups``: ``TaskGroup``, the group stack; sees DAGs and tasks through Protocols.
- ``group_decorator``: ``@task_group`` (``TaskGroupFunction``).
- ``dags``: ``DAG``, the id rules, the ``with DAG(...)`` stack, ``created_dags``, the DAG's root group. It
  sees tasks through the ``DagTask`` Protocol and never imports ``operators``.
- ``setup_teardown``: setup and teardown tasks as context managers (``with setup >> teardown:``); it sees
  tasks through the ``ScopedTask`` Protocol.
- ``xcom_arg``: ``XComArg`` and its ``map``/``zip``/``concat`` (``xcom_arg_results``: what those resolve to);
  it sees its task through the ``XComSource`` Protocol.
- ``edges``: ``Label``, ``chain``, ``chain_linear``, ``cross_downstream``.
- ``arguments``: the arguments every operator takes: their defaults, ``default_args`` (DAG, group, task),
  ``UNHONOURED_ARGUMENTS``, the checks, ``apply_defaults`` (a subclass's ``__init__``, as Airflow's
  ``BaseOperatorMeta``).
- ``templater``: ``Templater``, an operator's template fields (``template_ext`` files read, each field
  rendered in place, once).
- ``task_log``: the ``airflow.task`` loggers (``BaseOperator.log``).
- ``operators``: ``BaseOperator`` (its DAG and group, dependencies, setup and teardown, hooks, callbacks, the
  result's push); imports the modules above.
- ``task_runner``: ``run_task`` (a task run as Airflow's task runner does), ``TaskOutcome`` and its states.
- ``empty``: ``EmptyOperator`` (``DummyOperator``).
- ``async_operators``: ``BaseAsyncOperator``, ``is_async_callable``, ``run_coroutine`` (async tasks run to
  completion in the task's process).
- ``python``, ``bash``: ``PythonOperator`` (a coroutine function is awaited), ``BashOperator``.
- ``branching``: branches, short-circuits, ``LatestOnlyOperator``, the weekday and datetime branches.
- ``sensors``: ``BaseSensorOperator``, ``PokeReturnValue``, ``PythonSensor``, the time sensors.
- dynamic task mapping: ``expand_input`` (what instances expand over, instance i's arguments, the length
  expression, ``MappedArgument``), ``mapping_checks`` (what Airflow refuses: ``MappingError``, the values a
  mapped task cannot expand over), ``mapped_operator`` (``MappedOperator``, ``unmap``, ``render_map_index``),
  ``mapping`` (``partial``/``expand``/``expand_kwargs``, mapped task groups: ``MappedTaskGroup``); ``mapping``
  registers ``BaseOperator.partial``'s factory with ``operators`` and ``@task_group``'s
  ``partial``/``expand``/``expand_kwargs`` with ``group_decorator``.
- ``taskflow``: ``@task`` (``@task.bash``), ``@setup``, ``@teardown`` and ``@dag``.
- ``trigger_dagrun``: ``TriggerDagRunOperator`` (the run is started by the controller, asked through the
  runner's report).
- ``external_task``: ``ExternalTaskSensor`` (another DAG's runs and task states, asked through the runner's
  report), ``ExternalTaskMarker``, ``ExternalDagLink``.

Code inside this package imports the submodules, never this package itself.
"""

from __future__ import annotations

from kdag_runner.airflow.async_operators import BaseAsyncOperator, is_async_callable
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
from kdag_runner.airflow.edges import Label, chain, chain_linear, cross_downstream
from kdag_runner.airflow.empty import DummyOperator, EmptyOperator
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
from kdag_runner.airflow.external_task import ExternalDagLink, ExternalTaskMarker, ExternalTaskSensor
from kdag_runner.airflow.group_decorator import task_group
from kdag_runner.airflow.groups import TaskGroup
from kdag_runner.airflow.mapped_operator import MappedOperator
from kdag_runner.airflow.operators import BaseOperator
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
from kdag_runner.airflow.trigger_dagrun import TriggerDagRunOperator
from kdag_runner.airflow.trigger_rules import TriggerRule
from kdag_runner.airflow.xcom_arg import XComArg

__all__ = [
    "DAG",
    "AirflowException",
    "AirflowFailException",
    "AirflowRescheduleException",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "BaseAsyncOperator",
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
    "ExternalDagLink",
    "ExternalTaskMarker",
    "ExternalTaskSensor",
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
    "TriggerDagRunOperator",
    "TriggerRule",
    "WeekDay",
    "XComArg",
    "chain",
    "chain_linear",
    "cross_downstream",
    "dag",
    "is_async_callable",
    "poke_mode_only",
    "setup",
    "task",
    "task_group",
    "teardown",
]
