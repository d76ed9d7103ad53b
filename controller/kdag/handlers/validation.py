"""Pure validation of a DAG spec: what the webhook refuses and what the DAG handler reports."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from croniter import croniter
from pydantic import ValidationError

from kdag import graph
from kdag.api.models import DAGSpec


def _field_path(location: tuple[int | str, ...]) -> str:
    path = "spec"
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def parse_dag_spec(spec: Mapping[str, Any]) -> tuple[DAGSpec | None, list[str]]:
    """The parsed spec and every problem found in it, each naming the field or task at fault."""
    try:
        model = DAGSpec.model_validate(dict(spec))
    except ValidationError as error:
        return None, [f"{_field_path(e['loc'])}: {e['msg']}" for e in error.errors()]
    problems = list(graph.validation_errors(model.tasks))
    if model.schedule is not None and not croniter.is_valid(model.schedule):
        problems.append(f"spec.schedule: {model.schedule!r} is not a cron expression")
    for task in model.tasks:
        envs = [x.env for x in task.xcom_inputs or []]
        for env in sorted({e for e in envs if envs.count(e) > 1}):
            problems.append(f"task {task.id!r}: xcomInputs env {env!r} is used more than once")
    return model, problems


def dag_spec_problems(spec: Mapping[str, Any]) -> list[str]:
    """Every problem of a DAG spec; empty when the DAG can run."""
    return parse_dag_spec(spec)[1]
