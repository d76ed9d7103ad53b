"""Validation of manifests with errors users can act on: each names the field path and the task id.

The same checks the CRD's CEL rules make (so the CLI refuses what `kubectl apply` would), plus what CEL
cannot check: cycles, xcomInputs from non-ancestors, cron syntax. Used by the webhook and the CLI.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from croniter import croniter
from pydantic import BaseModel, ValidationError

from kdag import graph
from kdag.api.models import DAGRunSpec, DAGSpec, TaskSpec

DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a manifest."""

    path: str
    """Field path, e.g. spec.tasks[1].upstream[0]."""
    message: str
    task_id: str | None = None

    def __str__(self) -> str:
        where = f"task {self.task_id!r} ({self.path})" if self.task_id else self.path
        return f"{where}: {self.message}"


def _path(prefix: str, location: Sequence[int | str]) -> str:
    path = prefix
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _task_id_at(spec: Mapping[str, Any], location: Sequence[int | str]) -> str | None:
    if len(location) >= 2 and location[0] == "tasks" and isinstance(location[1], int):
        tasks = spec.get("tasks")
        if isinstance(tasks, list) and location[1] < len(tasks) and isinstance(tasks[location[1]], Mapping):
            task_id = tasks[location[1]].get("id")
            return str(task_id) if task_id is not None else None
    return None


def _pydantic_problems(error: ValidationError, spec: Mapping[str, Any], prefix: str) -> list[Problem]:
    problems = []
    for entry in error.errors():
        location = [
            part for part in entry["loc"] if not (isinstance(part, str) and part.startswith("function-"))
        ]
        message = entry["msg"]
        if entry["type"] == "extra_forbidden":
            message = "unknown field (check its spelling and case)"
        problems.append(Problem(_path(prefix, location), message, _task_id_at(spec, location)))
    return problems


def _task_problems(task: TaskSpec, index: int, spec: DAGSpec) -> list[Problem]:
    """The per-task rules the CRD checks with CEL."""
    at = f"spec.tasks[{index}]"
    problems: list[Problem] = []

    def add(field: str, message: str) -> None:
        problems.append(Problem(f"{at}.{field}" if field else at, message, task.id))

    if (task.python is None) == (task.command is None):
        add("", "a task needs exactly one of python or command")
    if task.args and task.command is None:
        add("args", "args need a command")
    if task.id in (".", ".."):
        add("id", "a task id may not be '.' or '..' (it names a directory)")
    env_names: set[str] = set()
    for i, env in enumerate(task.env or []):
        if env.name.startswith("KDAG_"):
            add(f"env[{i}].name", f"{env.name!r} may not start with KDAG_ (kdag's own variables)")
        if env.name in env_names:
            add(f"env[{i}].name", f"{env.name!r} is set more than once")
        env_names.add(env.name)
    for i, up in enumerate(task.upstream_ids):
        if up in task.upstream_ids[:i]:
            add(f"upstream[{i}]", f"{up!r} is listed more than once")
    if task.python is not None:
        from_file = bool(task.python.from_dag_file)
        if from_file and (task.python.source is not None or task.python.callable is not None):
            add("python", "python needs either source and callable, or fromDagFile: true (not both)")
        if not from_file and (task.python.source is None or task.python.callable is None):
            add("python", "python needs either source and callable, or fromDagFile: true")
        if from_file and spec.python_file is None:
            add("python.fromDagFile", "tasks with python.fromDagFile need spec.pythonFile")
    envs: set[str] = set()
    for i, inp in enumerate(task.xcom_inputs or []):
        if inp.env.startswith("KDAG_"):
            add(f"xcomInputs[{i}].env", f"{inp.env!r} may not start with KDAG_ (kdag's own variables)")
        if inp.env in envs:
            add(f"xcomInputs[{i}].env", f"{inp.env!r} is used by more than one xcomInput")
        envs.add(inp.env)
    return problems


def _graph_problems(spec: DAGSpec) -> list[Problem]:
    problems: list[Problem] = []
    ids: set[str] = set()
    for i, task in enumerate(spec.tasks):
        if task.id in ids:
            problems.append(Problem(f"spec.tasks[{i}].id", "task id is used by more than one task", task.id))
        ids.add(task.id)
    for i, task in enumerate(spec.tasks):
        for j, up in enumerate(task.upstream_ids):
            if up == task.id:
                problems.append(
                    Problem(f"spec.tasks[{i}].upstream[{j}]", "a task may not list itself", task.id)
                )
            elif up not in ids:
                problems.append(
                    Problem(f"spec.tasks[{i}].upstream[{j}]", f"{up!r} is not a task of this DAG", task.id)
                )
    if problems:
        return problems
    cycle = graph.find_cycle(spec.tasks)
    if cycle is not None:
        return [Problem("spec.tasks", "tasks form a cycle: " + " -> ".join(cycle))]
    for i, task in enumerate(spec.tasks):
        visible = set(graph.ancestors(spec.tasks, task.id))
        for j, inp in enumerate(task.xcom_inputs or []):
            if inp.task not in visible:
                problems.append(
                    Problem(
                        f"spec.tasks[{i}].xcomInputs[{j}].task",
                        f"{inp.task!r} is not an upstream ancestor of this task (add it to upstream)",
                        task.id,
                    )
                )
    return problems


def check_dag_spec(spec: Mapping[str, Any]) -> tuple[DAGSpec | None, list[Problem]]:
    """The parsed DAG spec (None if it does not parse) and every problem found in it."""
    try:
        model = DAGSpec.model_validate(dict(spec))
    except ValidationError as error:
        return None, _pydantic_problems(error, spec, "spec")
    problems: list[Problem] = []
    for i, task in enumerate(model.tasks):
        problems.extend(_task_problems(task, i, model))
    problems.extend(_graph_problems(model))
    if model.schedule is not None and not croniter.is_valid(model.schedule):
        problems.append(Problem("spec.schedule", f"{model.schedule!r} is not a cron expression"))
    return model, problems


def parse_dag_spec(spec: Mapping[str, Any]) -> tuple[DAGSpec | None, list[str]]:
    """The parsed spec and every problem found in it as text, each naming the field or task at fault."""
    model, problems = check_dag_spec(spec)
    return model, [str(problem) for problem in problems]


def dag_spec_problems(spec: Mapping[str, Any]) -> list[str]:
    """Every problem of a DAG spec as text; empty when the DAG can run."""
    return parse_dag_spec(spec)[1]


def _check_model(model: type[BaseModel], spec: Mapping[str, Any]) -> list[Problem]:
    try:
        model.model_validate(dict(spec))
    except ValidationError as error:
        return _pydantic_problems(error, spec, "spec")
    return []


def manifest_problems(manifest: Mapping[str, Any]) -> list[Problem]:
    """Every problem of a DAG or DAGRun manifest (as `kubectl apply` takes it)."""
    kind = manifest.get("kind")
    meta = manifest.get("metadata") or {}
    name = meta.get("name") if isinstance(meta, Mapping) else None
    problems: list[Problem] = []
    if manifest.get("apiVersion") != "kdag.dev/v1alpha1":
        problems.append(
            Problem("apiVersion", f"expected kdag.dev/v1alpha1, got {manifest.get('apiVersion')!r}")
        )
    if not isinstance(name, str) or not DNS_SUBDOMAIN.match(name):
        problems.append(
            Problem("metadata.name", f"{name!r} is not a valid name (lower-case letters, digits, '-')")
        )
    spec = manifest.get("spec")
    if not isinstance(spec, Mapping):
        return [*problems, Problem("spec", "required: an object")]
    if kind == "DAG":
        problems.extend(check_dag_spec(spec)[1])
    elif kind == "DAGRun":
        problems.extend(_check_model(DAGRunSpec, spec))
    else:
        problems.append(Problem("kind", f"expected DAG or DAGRun, got {kind!r}"))
    return problems
