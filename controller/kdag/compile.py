"""Turn a DAG file into what runs it: a `DAGSpec`, and the manifests `kubectl apply` takes.

A Python DAG becomes a ConfigMap `{dag}-source` holding the file and a DAG whose tasks run the file's own
operators (`python: {fromDagFile: true}`), so the pods execute exactly the code the author wrote.
A YAML file is read as the DAG manifest it already is. Either way the DAG manifest passes
`kdag.api.validation` (the webhook's own validator) before kdag prints or applies it.
"""

from __future__ import annotations

import inspect
import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

import yaml
from kdag_runner import compat, keys, store, timetables
from kdag_runner.airflow import DAG, BaseOperator, DagDefinitionError, DagTask, MappedOperator
from kdag_runner.airflow.operators import UNHONOURED_ARGUMENTS
from kdag_runner.airflow.params import NOTSET, params_dict

from kdag import dag_sources, names, schedules
from kdag.api import validation
from kdag.api.models import API_VERSION, MAX_MAP_LENGTH, DAGSpec, TaskMap, TriggerRule

PYTHON_SUFFIXES = (".py",)
YAML_SUFFIXES = (".yaml", ".yml", ".json")
_CONFIGMAP_KEY = re.compile(r"[-._a-zA-Z0-9]+")
_DNS_LABEL_INVALID = re.compile(r"[^a-z0-9-]+")


class DefinitionError(Exception):
    """A DAG file kdag refuses; the message is one line naming the task (or DAG) and the problem."""


@dataclass(frozen=True)
class LoadedDag:
    """A DAG read from a file: its object name, spec, the Python file (if any) and its manifests."""

    name: str
    spec: DAGSpec
    python_file: Path | None
    manifests: list[dict[str, Any]]
    python_source: str | None = None
    """The DAG's Python file as text, when a manifest's `{dag}-source` ConfigMap holds it (not a file)."""
    warnings: tuple[str, ...] = ()
    """What the file asks for that kdag cannot honour, one line each (printed on stderr as it loads)."""

    @property
    def dag_id(self) -> str:
        """The DAG id tasks see."""
        return self.spec.dag_id or self.name


def dag_name(dag_id: str) -> str:
    """The DNS-1123 object name of a DAG id: lower-case, runs of other characters become `-`."""
    name = _DNS_LABEL_INVALID.sub("-", dag_id.lower()).strip("-")
    if not name:
        raise DefinitionError(
            f"DAG '{dag_id}': no letters or digits to name the DAG object after; pass --name"
        )
    return name[:63].rstrip("-")


def load(path: Path, *, dag_id: str | None = None, name: str | None = None) -> LoadedDag:
    """Read a `.py` or `.yaml` DAG file; any definition mistake raises DefinitionError (one line)."""
    if not path.is_file():
        raise DefinitionError(f"DAG file '{path}': not found")
    if path.suffix in PYTHON_SUFFIXES:
        return load_python(path, dag_id=dag_id, name=name)
    if path.suffix in YAML_SUFFIXES:
        return load_manifest(path)
    raise DefinitionError(f"DAG file '{path}': expected a .py or .yaml file")


def load_python(path: Path, *, dag_id: str | None = None, name: str | None = None) -> LoadedDag:
    """Execute a Python DAG file with kdag's `airflow` layer and compile the DAG it defines."""
    if not compat.install():
        raise DefinitionError(
            f"DAG file '{path}': Apache Airflow is importable here, so its `airflow` imports would load "
            "Airflow, not kdag; run kdag from an environment without Airflow"
        )
    try:
        dag = compat.load_dag_file(path, dag_id)
    except DagDefinitionError as err:
        raise DefinitionError(str(err)) from None
    except SyntaxError as err:
        raise DefinitionError(f"DAG file '{path}', line {err.lineno}: {err.msg}") from None
    except Exception as err:  # the author's own code failed while the file was loading
        where = compat.error_location(err, path)
        raise DefinitionError(f"{where}: {type(err).__name__}: {err}") from None
    warnings = load_warnings(dag, path)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    object_name = name or dag_name(dag.dag_id)
    key = path.name if _CONFIGMAP_KEY.fullmatch(path.name) else "dag.py"
    spec = python_dag_spec(dag, names.source_configmap_name(object_name), key)
    manifest = dag_manifest(object_name, spec)
    _valid(f"DAG '{dag.dag_id}'", validation.check_dag_manifest(manifest))  # e.g. a --name kube refuses
    extensions = {ext for task in dag.tasks for ext in getattr(task, "template_ext", ()) or ()}
    companions = [
        *dag_sources.imported_modules_beside(path),
        *dag_sources.template_files_beside(path, extensions),
    ]
    try:
        data = dag_sources.source_data(path, key, companions)
    except dag_sources.SourceError as err:
        raise DefinitionError(f"DAG file '{path}': {err}") from None
    manifests = [source_configmap(object_name, data), manifest]
    return LoadedDag(object_name, spec, path.resolve(), manifests, warnings=tuple(warnings))


# DAG arguments kdag accepts but cannot honour, and why (as operators.UNHONOURED_ARGUMENTS for tasks).
UNHONOURED_DAG_ARGUMENTS: dict[str, str] = {
    "max_active_runs": "kdag does not limit concurrent runs of a DAG",
    "max_active_tasks": "kdag does not limit concurrent tasks of a DAG",
    "concurrency": "kdag does not limit concurrent tasks of a DAG",
    "max_consecutive_failed_dag_runs": "kdag never pauses a DAG",
    "dagrun_timeout": "kdag runs have no timeout (tasks have execution_timeout)",
    "sla_miss_callback": "SLAs are not checked (Airflow 3 removed them too)",
    "on_success_callback": "DAG-level callbacks are not called (task callbacks are)",
    "on_failure_callback": "DAG-level callbacks are not called (task callbacks are)",
    "access_control": "kdag has no Airflow UI roles: use Kubernetes RBAC",
    "is_paused_upon_creation": "kdag DAGs cannot be paused",
    "fail_fast": "a failed task does not stop the others",
    "fail_stop": "a failed task does not stop the others",
    "deadline": "deadline alerts are not checked",
}


def load_warnings(dag: DAG, path: Path) -> list[str]:
    """One line per argument the DAG or its tasks set that kdag cannot honour, naming the tasks and file."""
    where = f"DAG file '{path}', DAG '{dag.dag_id}'"
    lines: list[str] = []
    extra = getattr(dag, "extra", {}) or {}
    for argument, why in UNHONOURED_DAG_ARGUMENTS.items():
        if extra.get(argument) not in (None, False, [], {}):
            lines.append(f"{where}: {argument} is accepted but not honoured: {why}")
    tasks_by_argument: dict[str, list[str]] = {}
    for task in dag.tasks:
        for argument in getattr(task, "unhonoured_arguments", {}):
            tasks_by_argument.setdefault(argument, []).append(task.task_id)
        start = getattr(task, "start_date", None)
        if start is not None and dag.start_date is not None and start != dag.start_date:
            tasks_by_argument.setdefault("start_date", []).append(task.task_id)
    reasons = {**UNHONOURED_ARGUMENTS, "start_date": "a task's own start_date is not read; the DAG's is"}
    for argument in sorted(tasks_by_argument, key=list(reasons).index):
        ids = tasks_by_argument[argument]
        tasks = f"task '{ids[0]}'" if len(ids) == 1 else "tasks " + ", ".join(f"'{t}'" for t in ids)
        lines.append(f"{where}: {argument} ({tasks}) is accepted but not honoured: {reasons[argument]}")
    tasks_by_field: dict[str, list[str]] = {}
    for task in dag.tasks:
        for field in executor_config_fields(f"task '{task.task_id}'", task)[1]:
            tasks_by_field.setdefault(field, []).append(task.task_id)
    for field, ids in tasks_by_field.items():
        tasks = f"task '{ids[0]}'" if len(ids) == 1 else "tasks " + ", ".join(f"'{t}'" for t in ids)
        why = _POD_OVERRIDE_READ
        lines.append(f"{where}: executor_config {field} ({tasks}) is accepted but not honoured: {why}")
    return lines


_POD_OVERRIDE_READ = "kdag reads only the image, resources and env of the pod_override's container 'base'"
_BASE_CONTAINER = "base"  # KubernetesExecutor's name of the task container in a pod_override
_KUBE_KEY = re.compile(r"_([a-z0-9])")
_VERBATIM_MAPS = frozenset({"limits", "requests", "labels", "annotations", "nodeSelector"})


def executor_config_fields(where: str, task: DagTask) -> tuple[dict[str, Any], list[str]]:
    """The TaskSpec fields of a task's `executor_config={"pod_override": ...}` (KubernetesExecutor's
    spelling), and the pod_override fields kdag does not read (warned about by `load_warnings`).

    Of the container named `base`: `image`, `resources` (requests, limits) and `env` (value or valueFrom)
    become the task's `image`, `resources` and `env`. The pod_override is a dict in Kubernetes' camelCase,
    or a `kubernetes.client` V1Pod (read with its `to_dict()`, snake_case; kubernetes is not imported).
    """
    config = (getattr(task, "options", None) or {}).get("executor_config")
    if config is None:
        return {}, []
    if not isinstance(config, Mapping):
        raise DefinitionError(
            f"{where}: executor_config must be a dict such as {{'pod_override': k8s.V1Pod(...)}},"
            f" not {type(config).__name__}"
        )
    ignored = [f"[{key!r}]" for key, value in config.items() if key != "pod_override" and _is_set(value)]
    pod = config.get("pod_override")
    if pod is None:
        return {}, ignored
    if not isinstance(pod, Mapping):
        to_dict = getattr(pod, "to_dict", None)
        pod = to_dict() if callable(to_dict) else None
        if not isinstance(pod, Mapping):
            raise DefinitionError(
                f"{where}: executor_config's pod_override must be a kubernetes V1Pod or a dict,"
                f" not {type(config['pod_override']).__name__}"
            )
    pod = _kube_form(pod)
    outside = ("apiVersion", "kind", "spec")  # what a V1Pod is, and its spec (read below)
    ignored += [f"pod_override.{k}" for k, v in pod.items() if k not in outside and _is_set(v)]
    pod_spec = pod.get("spec") or {}
    if not isinstance(pod_spec, Mapping):
        raise DefinitionError(f"{where}: executor_config's pod_override.spec must be a PodSpec (a dict)")
    ignored += [f"pod_override.spec.{k}" for k, v in pod_spec.items() if k != "containers" and _is_set(v)]
    fields: dict[str, Any] = {}
    for index, container in enumerate(pod_spec.get("containers") or []):
        name = container.get("name") if isinstance(container, Mapping) else None
        if name != _BASE_CONTAINER:
            ignored.append(f"pod_override.spec.containers[{name or index!r}]")
            continue
        at = f"pod_override.spec.containers['{_BASE_CONTAINER}']"
        for key, value in container.items():
            if key in ("name", "image", "resources", "env") or not _is_set(value):
                continue
            ignored.append(f"{at}.{key}")
        if _is_set(container.get("image")):
            fields["image"] = container["image"]
        resources = container.get("resources") or {}
        if isinstance(resources, Mapping):
            read = ("requests", "limits")
            ignored += [f"{at}.resources.{k}" for k, v in resources.items() if k not in read and _is_set(v)]
            kept = {k: _quantities(resources[k]) for k in read if _is_set(resources.get(k))}
            if kept:
                fields["resources"] = kept
        if _is_set(container.get("env")):
            fields["env"] = container["env"]
    return fields, ignored


def _is_set(value: object) -> bool:
    return value is not None and value != [] and value != {}


def _kube_form(value: Any) -> Any:
    """A pod (part) in Kubernetes' camelCase without unset (None) fields: `V1Pod.to_dict()` gives Python's
    snake_case names; keys of label-like maps and of requests/limits are kept as they are."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if item is None:
                continue
            name = _KUBE_KEY.sub(lambda m: m.group(1).upper(), str(key))
            verbatim = name in _VERBATIM_MAPS and isinstance(item, Mapping)
            kept = {str(k): v for k, v in item.items() if v is not None} if verbatim else None
            out[name] = kept if verbatim else _kube_form(item)
        return out
    if isinstance(value, list | tuple):
        return [_kube_form(item) for item in value]
    return value


def _quantities(value: Any) -> Any:
    """requests/limits with float quantities written as strings (a TaskSpec quantity is an int or a str)."""
    if not isinstance(value, Mapping):
        return value
    return {k: str(v) if isinstance(v, float) else v for k, v in value.items()}


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
    spec.update(_schedule(dag))
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
    if isinstance(task, MappedOperator):
        spec["map"] = _map_field(where, task)
    return spec


def _map_field(where: str, task: MappedOperator) -> dict[str, Any]:
    """A mapped task's `map`: its length expression (XCom keys as ConfigMap keys) and Airflow's cap."""
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


def _schedule(dag: DAG) -> dict[str, Any]:
    """The spec fields of the DAG's schedule, as Airflow 3 reads `schedule=` (docs/design.md, "DAG"):

    None (or NullTimetable): {} (the DAG runs only when triggered); "@once" (or OnceTimetable):
    `schedule: "@once"`; a cron string or preset: `schedule` (CronTriggerTimetable in UTC), or `timetable:
    {cron}` when start_date/end_date or start_date's time zone say more; a timedelta: `timetable:
    {everySeconds}` (DeltaTriggerTimetable); a timetable object: `timetable` with its arguments. The
    validator checks cron syntax and time zones.
    """
    where = f"DAG '{dag.dag_id}'"
    value = dag.schedule if dag.schedule is not None else getattr(dag, "extra", {}).get("timetable")
    if value is None or isinstance(value, timetables.NullTimetable):
        return {}
    if value == schedules.ONCE or isinstance(value, timetables.OnceTimetable):
        return {"schedule": schedules.ONCE}
    if getattr(dag, "catchup", False):
        raise DefinitionError(
            f"{where}: catchup=True is not supported: kdag never creates runs for past ticks"
            " (Airflow 3's default catchup=False); start those with DAGRuns or `kdag trigger --logical-date`"
        )
    window: dict[str, Any] = {}
    if dag.start_date is not None:
        window["start"] = _rfc3339(where, "start_date", dag.start_date)
    if getattr(dag, "end_date", None) is not None:
        window["end"] = _rfc3339(where, "end_date", dag.end_date)
    if isinstance(value, str):
        # Airflow reads a cron string in the DAG's time zone: start_date's, else UTC.
        zone = _zone_name(where, dag.start_date.tzinfo if dag.start_date is not None else None)
        if not window and zone == "UTC":
            return {"schedule": value}
        return {"timetable": {"cron": value, **_zone_field(zone), **window}}
    return {"timetable": {**_timetable_fields(where, value), **window}}


def _timetable_fields(where: str, value: object) -> dict[str, Any]:
    """The `spec.timetable` fields of a timedelta or an Airflow timetable object (without start/end)."""
    if isinstance(value, timedelta):
        return {"everySeconds": _whole_seconds(where, "schedule", value)}
    if isinstance(value, timetables.CronTriggerTimetable | timetables.MultipleCronTriggerTimetable):
        if value.run_immediately is not False:
            raise DefinitionError(
                f"{where}: run_immediately={value.run_immediately!r} is not supported: kdag never creates"
                " runs for past ticks; the first run is the next tick"
            )
        if isinstance(value, timetables.CronTriggerTimetable):
            fields: dict[str, Any] = {"cron": value.cron}
        else:
            fields = {"crons": list(value.crons)}
        fields.update(_zone_field(_zone_name(where, value.timezone)))
        return {**fields, **_interval_field(where, value.interval)}
    if isinstance(value, timetables.CronDataIntervalTimetable):
        return {"cron": value.cron, **_zone_field(_zone_name(where, value.timezone)), "dataIntervals": True}
    if isinstance(value, timetables.DeltaTriggerTimetable):
        every = _whole_seconds(where, "delta", value.delta)
        return {"everySeconds": every, **_interval_field(where, value.interval)}
    if isinstance(value, timetables.DeltaDataIntervalTimetable):
        return {"everySeconds": _whole_seconds(where, "delta", value.delta), "dataIntervals": True}
    if isinstance(value, timetables.EventsTimetable):
        events = sorted({_rfc3339(where, "event_dates", event) for event in value.event_dates})
        if not events:
            raise DefinitionError(f"{where}: EventsTimetable has no event_dates")
        fields = {"events": events}
        if value.restrict_to_events:
            fields["restrictToEvents"] = True
        return fields
    kind = type(value).__name__
    if isinstance(value, timetables.ContinuousTimetable) or value == "@continuous":
        kind = "@continuous"
    raise DefinitionError(
        f"{where}: schedule {kind} is not one kdag runs: give None, '@once', a cron expression or preset"
        " such as '@daily', a timedelta, or CronTriggerTimetable, CronDataIntervalTimetable,"
        " MultipleCronTriggerTimetable, DeltaTriggerTimetable, DeltaDataIntervalTimetable or EventsTimetable"
    )


def _whole_seconds(where: str, name: str, value: timedelta) -> int:
    seconds = value.total_seconds()
    if seconds != int(seconds):
        raise DefinitionError(f"{where}: {name} {value!r} is not a whole number of seconds")
    return int(seconds)


def _interval_field(where: str, interval: timedelta) -> dict[str, Any]:
    seconds = _whole_seconds(where, "interval", interval)
    return {"intervalSeconds": seconds} if seconds else {}


def _zone_field(zone: str) -> dict[str, Any]:
    return {} if zone == "UTC" else {"timezone": zone}


def _zone_name(where: str, zone: object) -> str:
    """The IANA name of a time zone given as a name or a tzinfo (zoneinfo, pendulum, a whole-hour offset)."""
    if zone is None or isinstance(zone, str):
        return "UTC" if zone is None or zone.upper() in ("UTC", "Z", "ETC/UTC") else zone
    if isinstance(zone, tzinfo):
        name = getattr(zone, "key", None) or getattr(zone, "name", None)
        if isinstance(name, str) and schedules.timezone_problem(name) is None:
            return "UTC" if name.upper() in ("UTC", "ETC/UTC") else name
        offset = zone.utcoffset(None)
        if offset is not None and offset.total_seconds() % 3600 == 0:
            hours = int(offset.total_seconds() // 3600)
            return "UTC" if hours == 0 else f"Etc/GMT{-hours:+d}"  # IANA's Etc/GMT signs are inverted
    raise DefinitionError(f"{where}: time zone {zone!r} has no IANA name; use zoneinfo.ZoneInfo('Area/City')")


def _rfc3339(where: str, name: str, value: object) -> str:
    """An RFC 3339 UTC time (naive times are UTC, Airflow's default time zone); whole seconds."""
    if not isinstance(value, datetime):
        raise DefinitionError(f"{where}: {name} {value!r} is not a datetime")
    return schedules.utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


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
    return _valid(where, validation.check_dag_spec(spec))


def _valid(where: str, checked: tuple[DAGSpec | None, list[validation.Problem]]) -> DAGSpec:
    """The spec of a validator's answer; DefinitionError listing every problem on one line otherwise,
    e.g. `DAG 'x': task 'a' (spec.tasks[0].env[0].name): ...; spec.schedule: ...`."""
    model, problems = checked
    if model is None or problems:
        raise DefinitionError(f"{where}: {validation.describe(problems)}")
    return model


def load_manifest(path: Path) -> LoadedDag:
    """Read a YAML file holding one DAG manifest (other documents, such as ConfigMaps, are kept for apply)."""
    try:
        documents = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]
    except yaml.YAMLError as err:
        raise DefinitionError(f"DAG file '{path}': not valid YAML: {str(err).splitlines()[0]}") from None
    dags = [doc for doc in documents if isinstance(doc, dict) and doc.get("kind") == keys.DAG_KIND]
    if len(dags) != 1:
        raise DefinitionError(f"DAG file '{path}': expected one object of kind DAG, found {len(dags)}")
    manifest = dags[0]
    object_name = str((manifest.get("metadata") or {}).get("name") or "")
    if not object_name:
        raise DefinitionError(f"DAG file '{path}': metadata.name is missing")
    spec = _valid(f"DAG '{object_name}'", validation.check_dag_manifest(manifest))
    manifests = [d for d in documents if isinstance(d, dict)]
    if spec.python_file is None:
        return LoadedDag(object_name, spec, None, manifests)
    ref = spec.python_file
    beside = path.parent / ref.key
    if beside.is_file():
        return LoadedDag(object_name, spec, beside.resolve(), manifests)
    return LoadedDag(
        object_name, spec, None, manifests, _source_from_configmap(path, documents, ref.config_map, ref.key)
    )


def _source_from_configmap(path: Path, documents: list[Any], configmap: str, key: str) -> str | None:
    """The DAG file from its ConfigMap: in the same YAML, or `configmap-{name}.yaml` beside it."""
    candidates = list(documents)
    sibling = path.parent / f"configmap-{configmap}.yaml"
    if sibling.is_file():
        try:
            candidates.extend(yaml.safe_load_all(sibling.read_text(encoding="utf-8")))
        except yaml.YAMLError as err:
            raise DefinitionError(f"'{sibling}': not valid YAML: {str(err).splitlines()[0]}") from None
    for doc in candidates:
        if isinstance(doc, dict) and doc.get("kind") == "ConfigMap":
            data = doc.get("data") or {}
            if (doc.get("metadata") or {}).get("name") == configmap and isinstance(data.get(key), str):
                return str(data[key])
    return None


def source_configmap(name: str, data: Mapping[str, str]) -> dict[str, Any]:
    """The ConfigMap `{dag}-source` the task pods mount as the DAG's folder (`kdag.dag_sources`)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": names.source_configmap_name(name), "labels": names.labels(name)},
        "data": dict(data),
    }


def dag_manifest(name: str, spec: DAGSpec) -> dict[str, Any]:
    """The DAG object, ready for `kubectl apply`."""
    return {
        "apiVersion": API_VERSION,
        "kind": keys.DAG_KIND,
        "metadata": {"name": name, "labels": {names.MANAGED_BY_LABEL: names.MANAGED_BY}},
        "spec": spec.to_kube(),
    }


class _ManifestDumper(yaml.SafeDumper):
    """Writes multi-line strings (the DAG file, inline sources) as literal blocks people can read."""


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text and not any(line != line.rstrip() for line in text.splitlines()) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_ManifestDumper.add_representer(str, _represent_str)


def manifests_yaml(manifests: list[dict[str, Any]]) -> str:
    """Manifests as one multi-document YAML text, in apply order (the source before the DAG)."""
    return yaml.dump_all(manifests, Dumper=_ManifestDumper, sort_keys=False, width=1000)


def write_manifests(manifests: list[dict[str, Any]], directory: Path) -> list[Path]:
    """One file per manifest, `{kind}-{name}.yaml`, for a GitOps repository."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for manifest in manifests:
        kind = str(manifest.get("kind", "object")).lower()
        file = directory / f"{kind}-{manifest['metadata']['name']}.yaml"
        file.write_text(manifests_yaml([manifest]), encoding="utf-8")
        written.append(file)
    return written
