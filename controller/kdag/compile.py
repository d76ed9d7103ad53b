"""Turn a DAG file into what runs it: a `DAGSpec`, and the manifests `kubectl apply` takes.

A Python DAG becomes a ConfigMap `{dag}-source` holding the file and a DAG whose tasks run the file's own
operators (`python: {fromDagFile: true}`), so the pods execute exactly the code the author wrote.
A YAML file is read as the DAG manifest it already is. Either way the DAG manifest passes
`kdag.api.validation` (the webhook's own validator) before kdag prints or applies it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from kdag_runner import authoring, compat, keys

from kdag import names
from kdag.api import validation
from kdag.api.models import API_VERSION, DAGSpec, TriggerRule

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
    except authoring.DagDefinitionError as err:
        raise DefinitionError(str(err)) from None
    except SyntaxError as err:
        raise DefinitionError(f"DAG file '{path}', line {err.lineno}: {err.msg}") from None
    except Exception as err:  # the author's own code failed while the file was loading
        raise DefinitionError(f"DAG file '{path}': {type(err).__name__}: {err}") from None
    object_name = name or dag_name(dag.dag_id)
    key = path.name if _CONFIGMAP_KEY.fullmatch(path.name) else "dag.py"
    spec = python_dag_spec(dag, names.source_configmap_name(object_name), key)
    source = path.read_text(encoding="utf-8")
    manifest = dag_manifest(object_name, spec)
    _valid(f"DAG '{dag.dag_id}'", validation.check_dag_manifest(manifest))  # e.g. a --name kube refuses
    manifests = [source_configmap(object_name, key, source), manifest]
    return LoadedDag(object_name, spec, path.resolve(), manifests)


def python_dag_spec(dag: authoring.DAG, configmap: str, key: str) -> DAGSpec:
    """The DAG spec of a Python DAG: one `fromDagFile` task per operator, in definition order."""
    if not dag.tasks:
        raise DefinitionError(f"DAG '{dag.dag_id}': defines no tasks")
    tasks = [_task_spec(task) for task in dag.tasks]
    spec: dict[str, Any] = {
        "dagId": dag.dag_id,
        "pythonFile": {"configMap": configmap, "key": key},
        "tasks": tasks,
    }
    schedule = _schedule(dag)
    if schedule is not None:
        spec["schedule"] = schedule
    if dag.params:
        spec["params"] = _json_params(f"DAG '{dag.dag_id}'", dag.params)
    return _validated_spec(f"DAG '{dag.dag_id}'", spec)


def _task_spec(task: authoring.BaseOperator) -> dict[str, Any]:
    where = f"task '{task.task_id}'"
    if len(task.task_id) > 63:
        raise DefinitionError(f"{where}: longer than 63 characters (a Kubernetes label value)")
    if not isinstance(task, authoring.PythonOperator | authoring.BashOperator | authoring.EmptyOperator):
        raise DefinitionError(f"{where}: {type(task).__name__} is not an operator kdag runs")
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
    if rule not in {r.value for r in TriggerRule}:
        supported = ", ".join(r.value for r in TriggerRule)
        raise DefinitionError(
            f"{where}: trigger_rule '{rule}' is not supported by kdag (supported: {supported})"
        )
    if rule != TriggerRule.ALL_SUCCESS:
        spec["triggerRule"] = rule
    if task.params:
        spec["params"] = _json_params(where, task.params)
    return spec


def _seconds(value: timedelta) -> int:
    return int(value.total_seconds())


def _schedule(dag: authoring.DAG) -> str | None:
    """The schedule text (the validator checks it is a cron expression or preset); None when unscheduled."""
    schedule = dag.schedule
    if schedule is None or isinstance(schedule, str):
        return schedule
    raise DefinitionError(
        f"DAG '{dag.dag_id}': schedule {schedule!r} is not a cron expression or preset such as '@daily'"
    )


def _json_params(where: str, params: Mapping[str, Any]) -> dict[str, Any]:
    try:
        result: dict[str, Any] = json.loads(json.dumps(dict(params)))
    except (TypeError, ValueError) as err:
        raise DefinitionError(f"{where}: params must be JSON values: {err}") from None
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


def source_configmap(name: str, key: str, source: str) -> dict[str, Any]:
    """The ConfigMap `{dag}-source` the task pods mount the DAG file from."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": names.source_configmap_name(name), "labels": names.labels(name)},
        "data": {key: source},
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
