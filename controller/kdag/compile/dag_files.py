"""A DAG file read: a `.py` file executed with kdag's `airflow` layer and compiled (`load_python`), or a
`.yaml` file holding a DAG manifest (`load_manifest`); either way a `LoadedDag` whose DAG manifest passed
`kdag.api.validation`."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kdag_runner import compat, keys
from kdag_runner.airflow import DagDefinitionError

from kdag import dag_sources
from kdag.api import validation
from kdag.api.models import DAGSpec
from kdag.compile.errors import DefinitionError, valid
from kdag.compile.manifest_files import dag_manifest, source_configmap
from kdag.compile.python_dags import python_dag_spec
from kdag.compile.unhonoured import load_warnings

PYTHON_SUFFIXES = (".py",)
YAML_SUFFIXES = (".yaml", ".yml", ".json")
_CONFIGMAP_KEY = re.compile(r"[-._a-zA-Z0-9]+")
_DNS_LABEL_INVALID = re.compile(r"[^a-z0-9-]+")


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
    except Exception as err:  # the author's own code failed while the file was loading: its traceback below
        where = compat.error_location(err, path)
        detail = compat.user_traceback(err, path)
        raise DefinitionError(f"{where}: {type(err).__name__}: {err}", detail) from None
    warnings = load_warnings(dag, path)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    object_name = name or dag_name(dag.dag_id)
    if too_long := validation.name_problems(keys.DAG_KIND, object_name):  # before naming its source after it
        raise DefinitionError(f"DAG '{dag.dag_id}': {validation.describe(too_long)}")
    key = path.name if _CONFIGMAP_KEY.fullmatch(path.name) else "dag.py"
    extensions = {ext for task in dag.tasks for ext in getattr(task, "template_ext", ()) or ()}
    companions = [
        *dag_sources.imported_modules_beside(path),
        *dag_sources.template_files_beside(path, extensions),
    ]
    try:
        data = dag_sources.source_data(path, key, companions)
    except dag_sources.SourceError as err:
        raise DefinitionError(f"DAG file '{path}': {err}") from None
    source = source_configmap(object_name, data)
    spec = python_dag_spec(dag, source["metadata"]["name"], key)
    manifest = dag_manifest(object_name, spec)
    valid(f"DAG '{dag.dag_id}'", validation.check_dag_manifest(manifest))  # e.g. a --name kube refuses
    manifests = [source, manifest]
    return LoadedDag(object_name, spec, path.resolve(), manifests, warnings=tuple(warnings))


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
    spec = valid(f"DAG '{object_name}'", validation.check_dag_manifest(manifest))
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
