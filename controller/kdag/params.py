"""Pure: params and their JSON schemas, as Airflow 3's ``Param``/``ParamsDict`` check them (docs/design.md,
"Params").

A DAG declares each param in `spec.params` (its default) and/or `spec.paramSchemas` (its JSON schema); a
task may declare its own the same way. Here:

- `schema_problem`: is a schema a valid JSON schema (the DAG validator, for every schema);
- `declared_params`: what a task (or the DAG itself) sees declared: each param's default (or `NOTSET`, no
  default) and schema, by Airflow's rules: a task's plain value keeps the DAG's schema, a task's `Param`
  (an entry of its `paramSchemas`) replaces the DAG's param;
- `param_values`: a run's values: defaults < the run's conf (Airflow's `dag_run_conf_overrides_params`,
  True by default) < the run's params (kdag's `spec.params` of a DAGRun, `-p`);
- `run_param_problems`: what is wrong with a run's values (``kdag trigger``, ``kdag run --local``, the
  controller before a run starts: a run with a problem never starts a pod);
- `dag_param_problems`: what is wrong with a DAG's declarations (compile/apply, the webhook).

Values are checked with `jsonschema` (the validator its `$schema` names, else Draft 2020-12, as Airflow's
`jsonschema.validate`) and a fixed set of formats: `FORMATS`. Unknown keywords (Airflow's UI hints: `title`,
`section`, `values_display`, `examples`, `description`) and unknown formats are ignored, as in Airflow.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jsonschema
from jsonschema.exceptions import SchemaError, ValidationError, best_match
from kdag_runner.airflow.params import NOTSET

from kdag.api.models import DAGSpec, TaskSpec

FORMATS = ("date", "date-time", "time", "email", "ipv4", "ipv6", "uuid", "regex")
"""The `format`s values are checked against: Airflow's date/time pickers (`date`, `date-time`, `time`) and
the checks `jsonschema` makes itself. Others (`multiline`, ...) are UI hints, never checked."""
_MESSAGE_MAX = 240

# A format whose checker needs a package that is missing (date-time and time need rfc3339-validator, a
# dependency of kdag) would go unchecked: tests/controller/test_params.py checks each one is.
_format_checker = jsonschema.FormatChecker([f for f in FORMATS if f in jsonschema.FormatChecker.checkers])


@dataclass(frozen=True)
class Declared:
    """One param as a task (or the DAG) sees it declared."""

    default: Any
    """The default value; `NOTSET` when there is none (every run must give a value)."""
    schema: Mapping[str, Any] | None
    """Its JSON schema; None when it has none (any JSON value)."""


@dataclass(frozen=True)
class ParamProblem:
    """One param whose value a run cannot use."""

    param: str
    message: str
    task_id: str | None = None

    def __str__(self) -> str:
        where = f"task '{self.task_id}': " if self.task_id else ""
        return f"{where}param '{self.param}': {self.message}"


@dataclass(frozen=True)
class DeclarationProblem:
    """One thing wrong with a DAG's params or schemas (`api.validation` turns it into a Problem)."""

    path: str
    message: str
    task_id: str | None = None


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MESSAGE_MAX else text[: _MESSAGE_MAX - 3] + "..."


def _validator_class(schema: Mapping[str, Any]) -> Any:
    return jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)


def schema_problem(schema: Any) -> str | None:
    """Why `schema` is not a JSON schema a param can have (one line), or None."""
    if not isinstance(schema, Mapping):
        return f"a param's schema must be a JSON object, got {type(schema).__name__}"
    try:
        _validator_class(schema).check_schema(schema)
    except SchemaError as error:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        at = f" at {where.lstrip('.')}" if where else ""
        return _shorten(f"not a valid JSON schema{at}: {error.message}")
    return None


def value_problem(value: Any, schema: Mapping[str, Any] | None) -> str | None:
    """Why `value` does not satisfy `schema` (one line naming the rule), or None; `NOTSET` is no value."""
    if value is NOTSET:
        return "has no value: it has no default, so the run must give one (-p, params or conf)"
    if not schema:
        return None
    try:
        validator = _validator_class(schema)(schema, format_checker=_format_checker)
        error = best_match(validator.iter_errors(value))
    except SchemaError as err:  # the DAG validator refuses such a schema; say so if one got through
        return _shorten(f"its schema is not a valid JSON schema: {err.message}")
    except Exception as err:  # an unresolvable $ref, ...: a problem of the schema, never a crash
        return _shorten(f"its schema cannot be checked: {type(err).__name__}: {err}")
    if error is None:
        return None
    return _describe(error)


def _describe(error: ValidationError) -> str:
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    at = f"at {where.lstrip('.')}: " if where else ""
    return _shorten(f"{at}{error.message} (rule '{error.validator}')")


def declared_params(dag: DAGSpec, task: TaskSpec | None = None) -> dict[str, Declared]:
    """Every param the DAG (task None) or a task of it declares, with its default and schema.

    As Airflow merges a task's params over a copy of the DAG's `ParamsDict`: a task's `Param` (an entry of
    its `paramSchemas`) replaces the DAG's param, default and schema (no task default: no default); a
    task's plain value (in its `params` only) replaces the default and keeps the DAG's schema.
    """
    dag_defaults = dag.params or {}
    dag_schemas = dag.param_schemas or {}
    declared = {
        name: Declared(dag_defaults.get(name, NOTSET), dag_schemas.get(name))
        for name in (*dag_defaults, *(k for k in dag_schemas if k not in dag_defaults))
    }
    if task is None:
        return declared
    task_defaults = task.params or {}
    task_schemas = task.param_schemas or {}
    for name, schema in task_schemas.items():
        declared[name] = Declared(task_defaults.get(name, NOTSET), schema)
    for name, value in task_defaults.items():
        if name not in task_schemas:
            inherited = declared.get(name)
            declared[name] = Declared(value, inherited.schema if inherited else None)
    return declared


def param_values(
    declared: Mapping[str, Declared],
    conf: Mapping[str, Any] | None = None,
    run_params: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The run's value of every param: its default < the run's conf < the run's params.

    Every key of conf and of the run's params is a param too, declared or not (Airflow's
    `params.update(dag_run.conf)` makes each conf key one). A declared param with no default and no value
    from the run is absent.
    """
    values = {name: d.default for name, d in declared.items() if d.default is not NOTSET}
    values.update(conf or {})
    values.update(run_params or {})
    return values


def merged_params(
    dag: DAGSpec,
    task: TaskSpec,
    run_params: Mapping[str, Any] | None = None,
    conf: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """What a task's `params` holds (KDAG_PARAMS): DAG params < task params < conf < run params."""
    return param_values(declared_params(dag, task), conf, run_params)


def _problems(
    declared: Mapping[str, Declared], values: Mapping[str, Any], task_id: str | None, names: Iterable[str]
) -> list[ParamProblem]:
    problems = []
    for name in names:
        entry = declared[name]
        why = value_problem(values.get(name, NOTSET), entry.schema)
        if why is not None:
            problems.append(ParamProblem(name, why, task_id))
    return problems


def run_param_problems(
    dag: DAGSpec, run_params: Mapping[str, Any] | None = None, conf: Mapping[str, Any] | None = None
) -> list[ParamProblem]:
    """Every param a run of `dag` with these params and conf cannot use, first the DAG's, then each task's.

    The DAG's params are checked as Airflow's `create_dagrun` checks them (DAG params updated by conf);
    a task's are checked where the task declares its own (as Airflow does when the task starts, failing
    it; kdag refuses the run before it starts). A problem repeated by a task is given once.
    """
    declared = declared_params(dag)
    problems = _problems(declared, param_values(declared, conf, run_params), None, declared)
    seen = {(p.param, p.message) for p in problems}
    for task in dag.tasks:
        own = [*(task.param_schemas or {}), *(k for k in task.params or {} if k not in declared_here(task))]
        if not own:
            continue
        task_declared = declared_params(dag, task)
        values = param_values(task_declared, conf, run_params)
        for problem in _problems(task_declared, values, task.id, own):
            if (problem.param, problem.message) not in seen:
                seen.add((problem.param, problem.message))
                problems.append(problem)
    return problems


def declared_here(task: TaskSpec) -> dict[str, dict[str, Any]]:
    """The task's own `Param`s: their schemas by name."""
    return task.param_schemas or {}


def schema_for(dag: DAGSpec, name: str) -> Mapping[str, Any] | None:
    """The schema of param `name`: the DAG's, else the first task's that declares one."""
    entry = declared_params(dag).get(name)
    if entry is not None and entry.schema is not None:
        return entry.schema
    for task in dag.tasks:
        if name in declared_here(task):
            return declared_here(task)[name]
    return None


def describe(problems: Iterable[ParamProblem], limit: int = 5) -> str:
    """The problems on one line, `; `-separated (the first `limit`, then how many more)."""
    listed = [str(p) for p in problems]
    more = f"; and {len(listed) - limit} more" if len(listed) > limit else ""
    return "; ".join(listed[:limit]) + more


def undeclared(dag: DAGSpec, names: Iterable[str]) -> list[str]:
    """The names no param of the DAG or of any of its tasks declares (kept, as Airflow keeps extra conf
    keys, but likely a typo: the CLI warns)."""
    known = set(declared_params(dag))
    for task in dag.tasks:
        known.update(task.params or {}, task.param_schemas or {})
    return [name for name in names if name not in known]


def runs_without_trigger(dag: DAGSpec) -> bool:
    """A DAG whose runs the controller starts by itself (a schedule, `@once` or a timetable): its runs get
    no params, so every param needs a valid default (Airflow refuses such a DAG when it is parsed)."""
    return dag.schedule is not None or dag.timetable is not None


def dag_param_problems(dag: DAGSpec) -> list[DeclarationProblem]:
    """What is wrong with a DAG's params (as Airflow finds it when it parses the DAG file, or sooner):

    - every schema must be a valid JSON schema;
    - a task's plain param value must satisfy the DAG's schema of that param (Airflow's `ParamsDict`
      checks it when the operator is made);
    - a DAG that runs without a trigger (a schedule or timetable) needs a default that satisfies its
      schema for every param, the DAG's (Airflow: "Dag ... is not allowed to define a Schedule, as there are
      required params without default values, or the default values are not valid") and each task's.
    """
    problems: list[DeclarationProblem] = []
    bad_schemas: set[tuple[str | None, str]] = set()
    for name, schema in (dag.param_schemas or {}).items():
        why = schema_problem(schema)
        if why is not None:
            bad_schemas.add((None, name))
            problems.append(DeclarationProblem(f"spec.paramSchemas.{name}", why))
    for i, task in enumerate(dag.tasks):
        for name, schema in (task.param_schemas or {}).items():
            why = schema_problem(schema)
            if why is not None:
                bad_schemas.add((task.id, name))
                problems.append(DeclarationProblem(f"spec.tasks[{i}].paramSchemas.{name}", why, task.id))
    dag_declared = declared_params(dag)
    for i, task in enumerate(dag.tasks):
        for name, value in (task.params or {}).items():
            inherited = dag_declared.get(name)
            if name in (task.param_schemas or {}) or inherited is None or (None, name) in bad_schemas:
                continue
            why = value_problem(value, inherited.schema)
            if why is not None:
                problems.append(
                    DeclarationProblem(
                        f"spec.tasks[{i}].params.{name}", f"does not satisfy the DAG's schema: {why}", task.id
                    )
                )
    if not runs_without_trigger(dag):
        return problems
    why_scheduled = "the DAG runs on a schedule, so every param needs a default that satisfies its schema"
    for name, entry in dag_declared.items():
        if (None, name) in bad_schemas:
            continue
        why = value_problem(entry.default, entry.schema)
        if why is not None:
            problems.append(DeclarationProblem(f"spec.params.{name}", f"{why_scheduled}: {why}"))
    for i, task in enumerate(dag.tasks):
        task_declared = declared_params(dag, task)
        for name in task.param_schemas or {}:
            if (task.id, name) in bad_schemas:
                continue
            entry = task_declared[name]
            why = value_problem(entry.default, entry.schema)
            if why is not None:
                problems.append(
                    DeclarationProblem(f"spec.tasks[{i}].params.{name}", f"{why_scheduled}: {why}", task.id)
                )
    return problems


def cli_value(text: str, schema: Mapping[str, Any] | None) -> Any:
    """A `-p KEY=VALUE` value: VALUE as JSON when it parses, else as text; but as text when the param's
    schema refuses the JSON value and accepts the text, or wants a string (`-p version=1.10`, `-p id=007`)."""
    import json

    try:
        parsed = json.loads(text)
    except ValueError:
        return text
    if not schema or isinstance(parsed, str) or value_problem(parsed, schema) is None:
        return parsed
    if value_problem(text, schema) is None:
        return text
    kind = {"type": schema["type"]} if "type" in schema else None
    if kind and value_problem(parsed, kind) is not None and value_problem(text, kind) is None:
        return text  # the text then fails a rule other than its type, and says which
    return parsed


__all__ = [
    "FORMATS",
    "NOTSET",
    "DeclarationProblem",
    "Declared",
    "ParamProblem",
    "cli_value",
    "dag_param_problems",
    "declared_here",
    "declared_params",
    "describe",
    "merged_params",
    "param_values",
    "run_param_problems",
    "runs_without_trigger",
    "schema_for",
    "schema_problem",
    "undeclared",
    "value_problem",
]
