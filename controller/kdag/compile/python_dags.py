"""A Python DAG (`kdag_runner.airflow`'s `DAG`, as its file defined it) as a `DAGSpec`: one `fromDagFile`
task per operator, in definition order, so task pods run the operators the author wrote: its edges, retries,
timeout, trigger rule, setup/teardown, params, the image of its `executor_config`, and a mapped task's `map`.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from kdag_runner import store
from kdag_runner.airflow import DAG, BaseOperator, DagTask, MappedOperator
from kdag_runner.airflow.groups import TaskGroup, closest_mapped_group
from kdag_runner.airflow.mapping import MappedTaskGroup
from kdag_runner.airflow.params import NOTSET, params_dict

from kdag.api import validation
from kdag.api.models import MAX_MAP_LENGTH, DAGSpec, TaskMap, TriggerRule
from kdag.compile.errors import DefinitionError, valid
from kdag.compile.executor_config import executor_config_fields
from kdag.compile.schedule_fields import schedule_fields


def python_dag_spec(dag: DAG, configmap: str, key: str) -> DAGSpec:
    """The DAG spec of a Python DAG: one `fromDagFile` task per operator, in definition order."""
    if not dag.tasks:
        raise DefinitionError(f"DAG '{dag.dag_id}': defines no tasks")
    tasks = [_task_spec(task) for task in dag.tasks]
    spec: dict[str, Any] = {
        "dagId": dag.dag_id,
        "pythonFile": {"configMap": configmap, "key": key},
        "tasks": tasks,
    }
    spec.update(schedule_fields(dag))
    spec.update(_params_fields(f"DAG '{dag.dag_id}'", dag.params))
    return _validated_spec(f"DAG '{dag.dag_id}'", spec)


def _task_spec(task: DagTask) -> dict[str, Any]:
    where = f"task '{task.task_id}'"
    if len(task.task_id) > 63:
        # Group ids count: a task in nested groups is `outer.inner.task` (the TaskSpec id, TaskRun label).
        grouped = " with its task group prefix" if "." in task.task_id else ""
        raise DefinitionError(f"{where}: longer than 63 characters{grouped} (a Kubernetes label value)")
    refusal = _unrunnable(task)
    if refusal or not isinstance(task, BaseOperator):
        site = getattr(task, "definition_site", None)
        at = f"DAG file '{site[0]}', line {site[1]}: " if site else ""
        raise DefinitionError(f"{at}{where}: {refusal}")
    spec: dict[str, Any] = {"id": task.task_id, "python": {"fromDagFile": True}}
    upstream = [t.task_id for t in task.dag.tasks if t.task_id in task.upstream_task_ids] if task.dag else []
    if upstream:
        spec["upstream"] = upstream
    if task.retries:
        spec["retries"] = task.retries
        delay = _seconds(task.retry_delay)
        spec["retryDelaySeconds"] = delay
        # kdag doubles the delay each retry; without Airflow's exponential backoff the cap keeps it constant.
        if task.retry_exponential_backoff:
            if task.max_retry_delay is not None:
                spec["maxRetryDelaySeconds"] = _seconds(task.max_retry_delay)
        else:
            spec["maxRetryDelaySeconds"] = delay
    if task.execution_timeout is not None:
        spec["timeoutSeconds"] = max(1, _seconds(task.execution_timeout))
    rule = str(task.trigger_rule)
    rule = "always" if rule == "dummy" else rule  # Airflow 2's name of the same rule
    if rule not in {r.value for r in TriggerRule}:  # kdag runs every rule of Airflow 3
        known = ", ".join(r.value for r in TriggerRule)
        raise DefinitionError(f"{where}: trigger_rule '{rule}' is not an Airflow trigger rule ({known})")
    # A teardown's unset rule means all_done_setup_success: write its rule even when it is all_success.
    if rule != TriggerRule.ALL_SUCCESS or getattr(task, "is_teardown", False):
        spec["triggerRule"] = rule
    # Airflow's as_setup / as_teardown (@setup, @teardown): the graph gives them Airflow's semantics.
    if task.is_setup:
        spec["setup"] = True
    if task.is_teardown:
        spec["teardown"] = True
        if task.on_failure_fail_dagrun:
            spec["failRunOnFailure"] = True
    spec.update(_params_fields(where, task.params))
    spec.update(executor_config_fields(where, task)[0])
    group = closest_mapped_group(task)
    if isinstance(task, MappedOperator) or group is not None:
        spec["map"] = _map_field(where, task, group)
    return spec


def _map_field(where: str, task: BaseOperator, group: TaskGroup | None) -> dict[str, Any]:
    """A mapped task's `map`: its length expression (XCom keys as ConfigMap keys) and Airflow's cap; a task
    of a mapped task group has its group's length and names the group."""
    field: dict[str, Any]
    if isinstance(group, MappedTaskGroup) and group.group_id:
        field = {
            "length": group.length_expression(store.encode_key),
            "maxLength": MAX_MAP_LENGTH,
            "group": group.group_id,
        }
    else:
        assert isinstance(task, MappedOperator)
        field = {"length": task.length_expression(store.encode_key), "maxLength": MAX_MAP_LENGTH}
    try:
        TaskMap.model_validate(field)
    except ValueError:
        site = task.definition_site
        at = f"DAG file '{site[0]}', line {site[1]}: " if site else ""
        raise DefinitionError(
            f"{at}{where}: what it maps over is nested too deeply for kdag (a product of zips or concats"
            " of plain XComArgs and literals at most)"
        ) from None
    return field


def _unrunnable(task: DagTask) -> str:
    """Why the task's pod could not run it, or "": any BaseOperator subclass with an `execute` of its own
    runs (`python -m kdag_runner run` calls it with the context), unless it needs Airflow's triggerer."""
    # A mapped task's instances run its operator class (mapping.py).
    if not isinstance(task, BaseOperator):
        return f"{type(task).__name__} is not an operator (a subclass of BaseOperator)"
    operator_class = task.operator_class if isinstance(task, MappedOperator) else type(task)
    kind = operator_class.__name__
    execute = operator_class.execute
    if execute is BaseOperator.execute:
        return f"{kind} defines no execute(context), the method kdag runs"
    if inspect.iscoroutinefunction(execute):
        return f"{kind}.execute is a coroutine: async operators need Airflow's triggerer"
    if getattr(task, "start_from_trigger", False):
        return f"{kind} starts from a trigger (start_from_trigger): that needs Airflow's triggerer"
    if getattr(task, "deferrable", False) is True:
        return f"{kind} is deferrable (deferrable=True needs Airflow's triggerer): pass deferrable=False"
    return ""


def _seconds(value: timedelta) -> int:
    return int(value.total_seconds())


def _params_fields(where: str, params: Mapping[str, Any] | None) -> dict[str, Any]:
    """`params` (each param's default) and `paramSchemas` (each `Param`'s JSON schema, its description
    included) of a DAG or task; a `Param` without a default is in `paramSchemas` only (a required param)."""
    declared = params_dict(params)
    defaults = {name: p.value for name, p in declared.items() if p.value is not NOTSET}
    schemas = {name: p.full_schema() for name, p in declared.items() if declared.given_as_param(name)}
    fields: dict[str, Any] = {}
    if defaults:
        fields["params"] = _json(where, "params", defaults)
    if schemas:
        fields["paramSchemas"] = _json(where, "param schemas", schemas)
    return fields


def _json(where: str, what: str, value: dict[str, Any]) -> dict[str, Any]:
    try:
        result: dict[str, Any] = json.loads(json.dumps(value))
    except (TypeError, ValueError) as err:
        raise DefinitionError(f"{where}: {what} must be JSON values: {err}") from None
    return result


def _validated_spec(where: str, spec: Mapping[str, Any]) -> DAGSpec:
    """The spec as `kdag.api.validation` parses it; DefinitionError naming every problem otherwise."""
    return valid(where, validation.check_dag_spec(spec))
