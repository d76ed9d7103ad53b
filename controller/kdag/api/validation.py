"""kdag's one validator of DAG (and DAGRun) manifests; every problem names its field path and task id.

It makes the checks the CRD's schema and CEL rules make (so the CLI refuses what `kubectl apply` would),
plus what CEL cannot check: cycles, xcomInputs from non-ancestors, cron syntax, time zones, param schemas
and defaults (`kdag.params`), and whatever would make the API server refuse an object kdag derives later
(a TaskRun, a pod): resource quantities read as Kubernetes reads them, env names a task gets twice once
`spec.defaults.env` is joined, names too long for the names kdag derives from them, a run's params
against its DAG's schemas. The webhook, the handlers, `kdag compile`/`apply`/`graph` and `kdag run
--local` all call it; `graph` holds no validation of its own.

Fields are read as the API server reads JSON (strict types: `retries: "3"` is refused, as there), so what
passes here passes the CRD's schema too.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from kdag_runner import keys
from pydantic import BaseModel, ValidationError

from kdag import names, params, schedules, topology
from kdag.api.models import (
    API_VERSION,
    DAG_ID_PATTERN,
    MAX_MAP_LENGTH,
    NAME_MAX,
    POD_ENV_NAME_PATTERN,
    TASK_ID_MAX,
    TASK_ID_PATTERN,
    DAGRunSpec,
    DAGSpec,
    EnvVar,
    ResourceRequirements,
    TaskSpec,
    Timetable,
    TriggerRule,
    default_trigger_rule,
)

SCHEDULE_ONCE = schedules.ONCE
"""Airflow's `@once`: no cron schedule; creating the DAG runs it once (a DAG without a schedule never
runs by itself: only when triggered)."""
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

ATTEMPT_DIGITS = 6
"""Digits kept for an attempt number in a pod name (a sensor's pokes are attempts too)."""
TASK_NAME_PART_MAX = len(
    names.pod_name("", "A" * TASK_ID_MAX, 10**ATTEMPT_DIGITS - 1, MAX_MAP_LENGTH - 1, run_uid="0" * 36)
)
"""The most a task adds to its run's name in the names kdag derives:
`-{task_slug}-{index}-{hash}-{run uid tag}-{attempt}`."""
RUN_NAME_MAX = NAME_MAX - TASK_NAME_PART_MAX
"""The longest DAGRun name whose TaskRuns, XCom ConfigMaps and pods all have valid names."""
DAG_NAME_MAX = RUN_NAME_MAX - max(
    len(names.manual_run_name("", "x" * 5)),
    len(names.scheduled_run_name("", datetime.datetime(2000, 1, 1))),
    len(names.initial_run_name("", "0" * 8)),
)
"""The longest DAG name whose runs (scheduled, `@once`, `kdag trigger`'s) can have valid names."""

# What a pattern of the models means, for messages that name the offending value.
_PATTERN_MEANINGS = {
    TASK_ID_PATTERN: "a task id has letters, digits, '_', '.', '-', and starts and ends with a letter or"
    " digit (it is a label value)",
    DAG_ID_PATTERN: "a dag id has letters, digits, '_', '.', '-' only (Airflow's rule)",
    POD_ENV_NAME_PATTERN: "an env name has letters, digits, '_', '.', '-', and does not start with a digit",
}

_M = TypeVar("_M", bound=BaseModel)


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
        given = entry.get("input")
        pattern = (entry.get("ctx") or {}).get("pattern")
        if entry["type"] == "extra_forbidden":
            message = "unknown field (check its spelling and case)"
        elif entry["type"] == "string_pattern_mismatch" and pattern in _PATTERN_MEANINGS:
            message = f"{given!r:.100} is not valid: {_PATTERN_MEANINGS[pattern]}"
        elif isinstance(given, str | int | float | bool) or given is None:
            message = f"{message} (got {given!r:.100})"
        problems.append(Problem(_path(prefix, location), message, _task_id_at(spec, location)))
    return problems


def _as_json(value: Any) -> Any:
    """`value` as the API server receives it from kubectl: JSON types only (YAML dates become text)."""
    if isinstance(value, Mapping):
        return {str(key): _as_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_as_json(item) for item in value]
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)  # JSON has one number type: the API server takes 2.0 as an integer
    return value


def _parse(model: type[_M], spec: Mapping[str, Any]) -> tuple[_M | None, list[Problem]]:
    """Parse `spec` as the API server would: strict JSON types, every error a Problem."""
    try:
        return model.model_validate_json(json.dumps(_as_json(spec), default=str), strict=True), []
    except ValidationError as error:
        return None, _pydantic_problems(error, spec, "spec")


def _env_problems(envs: Sequence[EnvVar], at: str, task_id: str | None) -> list[Problem]:
    """The EnvVar CEL rule (no KDAG_ names) and the list-map key (one entry per name)."""
    problems: list[Problem] = []
    names: set[str] = set()
    for i, env in enumerate(envs):
        if env.name.startswith("KDAG_"):
            message = f"{env.name!r} may not start with KDAG_ (kdag's own variables)"
            problems.append(Problem(f"{at}[{i}].name", message, task_id))
        if env.name in names:
            problems.append(Problem(f"{at}[{i}].name", f"{env.name!r} is set more than once", task_id))
        names.add(env.name)
    return problems


_QUANTITY = re.compile(
    r"^(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?P<suffix>[KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?$"
)
_BINARY_SI = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL_SI = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
STANDARD_CONTAINER_RESOURCES = ("cpu", "memory", "ephemeral-storage")
_QUALIFIED_NAME = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)


def parse_quantity(value: int | str) -> Decimal | None:
    """A Kubernetes resource quantity's value (`500m`, `1.5Gi`, `2e3`, `4`), as the API server reads it;
    None when it is not one (the API server would refuse the pod)."""
    if isinstance(value, int):
        return Decimal(value)
    match = _QUANTITY.fullmatch(value)
    if match is None:
        return None
    try:
        number = Decimal(match["number"])
    except InvalidOperation:
        return None
    suffix = match["suffix"] or ""
    if suffix in _BINARY_SI:
        return number * Decimal(1024) ** _BINARY_SI[suffix]
    if suffix in _DECIMAL_SI:
        return number.scaleb(_DECIMAL_SI[suffix])
    return number.scaleb(int(suffix[1:]))


def _resource_name_problem(name: str) -> str | None:
    """The API server's rule for a container's resource name (`validateContainerResourceName`)."""
    if len(name) > NAME_MAX or not _QUALIFIED_NAME.fullmatch(name):
        return f"{name!r} is not a resource name (a qualified name such as cpu or example.com/gpu)"
    if "/" not in name:
        if name in STANDARD_CONTAINER_RESOURCES or name.startswith("hugepages-"):
            return None
        return (
            f"{name!r} is not a standard container resource (cpu, memory, ephemeral-storage,"
            " hugepages-<size>) nor an extended resource (domain/name)"
        )
    if name.startswith("requests."):
        return f"{name!r} is not an extended resource name (no 'requests.' prefix)"
    return None


def _extended(name: str) -> bool:
    """An extended resource (`example.com/gpu`): counted in whole units, never overcommitted."""
    return "/" in name and "kubernetes.io/" not in name


def _overcommittable(name: str) -> bool:
    """Requests may be below limits only for native resources other than huge pages."""
    return not _extended(name) and not name.startswith("hugepages-")


def _resource_problems(resources: ResourceRequirements, at: str, task_id: str | None) -> list[Problem]:
    """What the API server refuses in a container's resources: names, quantities, requests over limits."""
    problems: list[Problem] = []
    values: dict[str, dict[str, Decimal]] = {"limits": {}, "requests": {}}
    for kind in ("limits", "requests"):
        for name, raw in (getattr(resources, kind) or {}).items():
            where = f"{at}.{kind}.{name}"
            if (why := _resource_name_problem(name)) is not None:
                problems.append(Problem(where, why, task_id))
                continue
            value = parse_quantity(raw)
            if value is None:
                message = f"{raw!r} is not a Kubernetes quantity (such as 500m, 2, 1.5Gi, 64Mi)"
                problems.append(Problem(where, message, task_id))
            elif value < 0:
                problems.append(Problem(where, f"{raw!r} may not be negative", task_id))
            elif _extended(name) and value != value.to_integral_value():
                problems.append(Problem(where, f"{raw!r} must be a whole number for {name}", task_id))
            else:
                values[kind][name] = value
    limits, requests = values["limits"], values["requests"]
    for name, request in requests.items():
        where = f"{at}.requests.{name}"
        raw = (resources.requests or {})[name]
        limit = limits.get(name)
        if _overcommittable(name):
            if limit is not None and request > limit:
                limit_raw = (resources.limits or {})[name]
                message = f"{raw!r} may not be more than the limit {limit_raw!r}"
                problems.append(Problem(where, message, task_id))
        elif limit is None and name not in (resources.limits or {}):
            problems.append(Problem(where, f"{name} needs a limit too (it cannot be overcommitted)", task_id))
        elif limit is not None and request != limit:
            message = f"{raw!r} must equal the limit of {name} (it cannot be overcommitted)"
            problems.append(Problem(where, message, task_id))
    return problems


def _task_problems(task: TaskSpec, index: int, spec: DAGSpec) -> list[Problem]:
    """The per-task rules the CRD checks with CEL (and its list-map/set keys)."""
    at = f"spec.tasks[{index}]"
    problems: list[Problem] = []

    def add(field: str, message: str) -> None:
        problems.append(Problem(f"{at}.{field}" if field else at, message, task.id))

    if (task.python is None) == (task.command is None):
        add("", "a task needs exactly one of python or command")
    if task.args is not None and task.command is None:
        add("args", "args need a command")
    if task.is_setup and task.is_teardown:
        add("teardown", "a task may be a setup or a teardown, not both")
    if task.fail_run_on_failure and not task.is_teardown:
        add("failRunOnFailure", "failRunOnFailure is for teardown tasks only")
    problems.extend(_env_problems(task.env or [], f"{at}.env", task.id))
    # A task's env is joined to the defaults' (`resolve_task`): a name in both would be set twice in its
    # TaskRun, which the API server refuses (`env` is keyed by name).
    default_names = {env.name for env in (spec.defaults.env if spec.defaults else None) or []}
    for i, env in enumerate(task.env or []):
        if env.name in default_names:
            add(
                f"env[{i}].name",
                f"{env.name!r} is also set in spec.defaults.env (the task's env is added to the defaults';"
                " set it in one of them)",
            )
    if task.resources is not None:
        problems.extend(_resource_problems(task.resources, f"{at}.resources", task.id))
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
    if task.map is not None and task.map.group is None:
        # A mapped task's length reads its upstream tasks' reported lengths (dynamic task mapping); a mapped
        # group's, its ancestors' (`_mapped_group_problems`).
        for ref in task.map.length.references():
            if ref.task not in task.upstream_ids:
                add("map.length", f"xcom task {ref.task!r} must be an upstream task of the mapped task")
    envs: set[str] = set()
    for i, inp in enumerate(task.xcom_inputs or []):
        if inp.env.startswith("KDAG_"):
            add(f"xcomInputs[{i}].env", f"{inp.env!r} may not start with KDAG_ (kdag's own variables)")
        if inp.env in envs:
            add(f"xcomInputs[{i}].env", f"{inp.env!r} is used by more than one xcomInput")
        envs.add(inp.env)
    return problems


def _graph_problems(spec: DAGSpec) -> list[Problem]:
    """Task ids and references (CEL and the list-map key), then what CEL cannot check: cycles, ancestors."""
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
        for j, inp in enumerate(task.xcom_inputs or []):
            if inp.task == task.id:
                problems.append(
                    Problem(
                        f"spec.tasks[{i}].xcomInputs[{j}].task",
                        "a task may not read its own XComs (name an upstream task)",
                        task.id,
                    )
                )
            elif inp.task not in ids:
                problems.append(
                    Problem(
                        f"spec.tasks[{i}].xcomInputs[{j}].task",
                        f"{inp.task!r} is not a task of this DAG",
                        task.id,
                    )
                )
    if problems:
        return problems
    cycle = topology.find_cycle(spec.tasks)
    if cycle is not None:
        return [Problem("spec.tasks", "tasks form a cycle: " + " -> ".join(cycle))]
    problems.extend(_mapped_group_problems(spec))
    for i, task in enumerate(spec.tasks):
        if not task.xcom_inputs:
            continue  # ancestors only where asked: a walk per task of a long chain is O(n^2)
        visible = set(topology.ancestors(spec.tasks, task.id))
        for j, inp in enumerate(task.xcom_inputs):
            if inp.task not in visible:
                problems.append(
                    Problem(
                        f"spec.tasks[{i}].xcomInputs[{j}].task",
                        f"{inp.task!r} is not an upstream ancestor of this task (add it to upstream)",
                        task.id,
                    )
                )
    return problems


def _mapped_group_problems(spec: DAGSpec) -> list[Problem]:
    """Tasks of one mapped task group (`map.group`) share its length and maxLength, and the XComs it maps
    over come from ancestors of each of them outside the group (docs/design.md, "Mapped tasks")."""
    problems: list[Problem] = []
    first: dict[str, TaskSpec] = {}
    groups = {task.id: task.map.group for task in spec.tasks if task.map is not None}
    for i, task in enumerate(spec.tasks):
        if task.map is None or task.map.group is None:
            continue
        group = task.map.group
        other = first.setdefault(group, task)
        assert other.map is not None
        if (other.map.length, other.map.max_length) != (task.map.length, task.map.max_length):
            problems.append(
                Problem(
                    f"spec.tasks[{i}].map",
                    f"the tasks of mapped task group {group!r} need the same map.length and map.maxLength"
                    f" (task {other.id!r} has others)",
                    task.id,
                )
            )
        visible = set(topology.ancestors(spec.tasks, task.id))
        for ref in task.map.length.references():
            if ref.task not in visible or groups.get(ref.task) == group:
                problems.append(
                    Problem(
                        f"spec.tasks[{i}].map.length",
                        f"xcom task {ref.task!r} must be an upstream ancestor of the task, outside its mapped"
                        f" task group {group!r}",
                        task.id,
                    )
                )
    return problems


def _setup_follower_problems(spec: DAGSpec) -> list[Problem]:
    """Airflow's `validate_setup_teardown`: a task directly after a setup is a teardown or runs all_success.

    The rule is the task's own, else the DAG's default (a teardown's default is all_done_setup_success).
    """
    setups = {task.id for task in spec.tasks if task.is_setup}
    problems: list[Problem] = []
    for i, task in enumerate(spec.tasks):
        if task.is_teardown or not setups.intersection(task.upstream_ids):
            continue
        rule = task.trigger_rule or default_trigger_rule(task, spec.defaults)
        if rule != TriggerRule.ALL_SUCCESS:
            after = ", ".join(repr(up) for up in task.upstream_ids if up in setups)
            problems.append(
                Problem(
                    f"spec.tasks[{i}].triggerRule",
                    f"a task directly after a setup task ({after}) must be a teardown or use the"
                    f" trigger rule all_success, not {rule.value}",
                    task.id,
                )
            )
    return problems


def schedule_problem(schedule: str) -> str | None:
    """Why `schedule` is not one kdag runs, or None: 5 cron fields, a preset such as `@daily`, or `@once`.

    Run names have minute precision, so croniter's seconds (and year) fields are refused.
    """
    if schedule == SCHEDULE_ONCE:
        return None
    why = schedules.cron_problem(schedule)
    return None if why is None else f"{why} or a preset such as '@daily' or '@once'"


def timetable_problems(timetable: Timetable) -> list[Problem]:
    """The CEL rules of `spec.timetable`, and what CEL cannot check: cron syntax, time zones, and events
    that would share a run name (scheduled runs are named by their minute)."""
    at = "spec.timetable"
    problems: list[Problem] = []
    kinds = [timetable.cron, timetable.crons, timetable.every_seconds, timetable.events]
    if sum(kind is not None for kind in kinds) != 1:
        problems.append(Problem(at, "a timetable needs exactly one of cron, crons, everySeconds or events"))
    uses_cron = timetable.cron is not None or timetable.crons is not None
    if timetable.data_intervals and timetable.cron is None and timetable.every_seconds is None:
        problems.append(Problem(f"{at}.dataIntervals", "dataIntervals is for cron and everySeconds"))
    if timetable.interval_seconds is not None and (timetable.events is not None or timetable.data_intervals):
        problems.append(
            Problem(
                f"{at}.intervalSeconds",
                "intervalSeconds is for trigger timetables (cron, crons, everySeconds without dataIntervals)",
            )
        )
    if timetable.timezone is not None:
        if not uses_cron:
            problems.append(Problem(f"{at}.timezone", "timezone is for cron and crons"))
        elif (why := schedules.timezone_problem(timetable.timezone)) is not None:
            problems.append(Problem(f"{at}.timezone", why))
    if timetable.restrict_to_events is not None and timetable.events is None:
        problems.append(Problem(f"{at}.restrictToEvents", "restrictToEvents is for events"))
    start, end = timetable.start, timetable.end
    if start is not None and end is not None and schedules.utc(end) < schedules.utc(start):
        problems.append(
            Problem(f"{at}.end", f"end {end.isoformat()} may not be before start {start.isoformat()}")
        )
    if timetable.cron is not None and (why := schedules.cron_problem(timetable.cron)) is not None:
        problems.append(Problem(f"{at}.cron", f"{why} or a preset such as '@daily'"))
    for i, cron in enumerate(timetable.crons or []):
        if (why := schedules.cron_problem(cron)) is not None:
            problems.append(Problem(f"{at}.crons[{i}]", f"{why} or a preset such as '@daily'"))
    for first, second in schedules.minute_collisions(timetable.events or []):
        problems.append(
            Problem(
                f"{at}.events",
                f"{first.isoformat()} and {second.isoformat()} fall in the same minute"
                " (scheduled runs are named by their minute)",
            )
        )
    return problems


def check_dag_spec(spec: Mapping[str, Any]) -> tuple[DAGSpec | None, list[Problem]]:
    """The parsed DAG spec (None if it does not parse) and every problem found in it."""
    model, problems = _parse(DAGSpec, spec)
    if model is None:
        return None, problems
    if model.defaults is not None:
        problems.extend(_env_problems(model.defaults.env or [], "spec.defaults.env", None))
        if model.defaults.resources is not None:
            problems.extend(_resource_problems(model.defaults.resources, "spec.defaults.resources", None))
    for i, task in enumerate(model.tasks):
        problems.extend(_task_problems(task, i, model))
    problems.extend(_graph_problems(model))
    problems.extend(_setup_follower_problems(model))
    if model.schedule is not None:
        why = schedule_problem(model.schedule)
        if why is not None:
            problems.append(Problem("spec.schedule", why))
    if model.timetable is not None:
        if model.schedule is not None:
            problems.append(Problem("spec.timetable", "give schedule or timetable, not both"))
        problems.extend(timetable_problems(model.timetable))
    # Params: valid JSON schemas, task values the DAG's schema accepts, valid defaults on a schedule.
    problems.extend(Problem(p.path, p.message, p.task_id) for p in params.dag_param_problems(model))
    return model, problems


def parse_dag_spec(spec: Mapping[str, Any]) -> tuple[DAGSpec | None, list[str]]:
    """The parsed spec and every problem found in it as text, each naming the field or task at fault."""
    model, problems = check_dag_spec(spec)
    return model, [str(problem) for problem in problems]


def dag_spec_problems(spec: Mapping[str, Any]) -> list[str]:
    """Every problem of a DAG spec as text; empty when the DAG can run."""
    return parse_dag_spec(spec)[1]


def describe(problems: Sequence[Problem | str]) -> str:
    """Every problem on one line, `; `-separated (the form error messages and events take)."""
    return "; ".join(str(problem) for problem in problems)


def check_dag_manifest(manifest: Mapping[str, Any]) -> tuple[DAGSpec | None, list[Problem]]:
    """A DAG manifest (as `kubectl apply` takes it): its parsed spec and every problem, metadata included."""
    problems = _object_problems(manifest, keys.DAG_KIND)
    spec = manifest.get("spec")
    if not isinstance(spec, Mapping):
        return None, [*problems, Problem("spec", "required: an object")]
    model, spec_problems = check_dag_spec(spec)
    return model, [*problems, *spec_problems]


def _object_problems(manifest: Mapping[str, Any], kind: str) -> list[Problem]:
    problems: list[Problem] = []
    if manifest.get("apiVersion") != API_VERSION:
        problems.append(Problem("apiVersion", f"expected {API_VERSION}, got {manifest.get('apiVersion')!r}"))
    if manifest.get("kind") != kind:
        problems.append(Problem("kind", f"expected {kind}, got {manifest.get('kind')!r}"))
    meta = manifest.get("metadata") or {}
    name = meta.get("name") if isinstance(meta, Mapping) else None
    if not isinstance(name, str) or not DNS_SUBDOMAIN.match(name):
        problems.append(
            Problem("metadata.name", f"{name!r} is not a valid name (lower-case letters, digits, '-')")
        )
    else:
        problems.extend(name_problems(kind, name))
    return problems


def name_problems(kind: str, name: str) -> list[Problem]:
    """A DAG or DAGRun name too long for the names kdag derives from it (its runs, TaskRuns, pods)."""
    longest = DAG_NAME_MAX if kind == keys.DAG_KIND else RUN_NAME_MAX
    if len(name) <= longest:
        return []
    derived = "its runs, their TaskRuns and pods" if kind == keys.DAG_KIND else "its TaskRuns and pods"
    message = (
        f"'{name[:40]}...' is {len(name)} characters; a {kind} name may have at most {longest}, so that the"
        f" names of {derived} (up to {NAME_MAX - longest} characters longer) fit in {NAME_MAX}"
    )
    return [Problem("metadata.name", message)]


def dagrun_problems(spec: Mapping[str, Any], dag: DAGSpec | None = None) -> list[Problem]:
    """Every problem of a DAGRun spec; with its DAG (when it exists and is valid), the run's params and
    conf against the DAG's params and schemas (`kdag.params.run_param_problems`)."""
    run, problems = _parse(DAGRunSpec, spec)
    if run is None:
        return problems
    interval = run.data_interval
    if interval is not None and schedules.utc(interval.end) < schedules.utc(interval.start):
        message = f"end {interval.end.isoformat()} may not be before start {interval.start.isoformat()}"
        problems.append(Problem("spec.dataInterval.end", message))
    if dag is not None:
        for problem in params.run_param_problems(dag, run.params, run.conf):
            where = f"task {problem.task_id!r}: " if problem.task_id else ""
            # The field the value came from; a value nobody gave belongs in the params.
            from_conf = problem.param in (run.conf or {}) and problem.param not in (run.params or {})
            path = f"spec.conf.{problem.param}" if from_conf else f"spec.params.{problem.param}"
            problems.append(Problem(path, f"{where}{problem.message}"))
    return problems


def manifest_problems(manifest: Mapping[str, Any]) -> list[Problem]:
    """Every problem of a DAG or DAGRun manifest (as `kubectl apply` takes it)."""
    kind = manifest.get("kind")
    if kind == keys.DAG_KIND:
        return check_dag_manifest(manifest)[1]
    if kind != keys.DAGRUN_KIND:
        problems = [p for p in _object_problems(manifest, keys.DAG_KIND) if p.path != "kind"]
        return [*problems, Problem("kind", f"expected DAG or DAGRun, got {kind!r}")]
    problems = _object_problems(manifest, keys.DAGRUN_KIND)
    spec = manifest.get("spec")
    if not isinstance(spec, Mapping):
        return [*problems, Problem("spec", "required: an object")]
    return [*problems, *dagrun_problems(spec)]
