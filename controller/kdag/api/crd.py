"""CustomResourceDefinitions built from the pydantic models.

Pydantic's JSON schema is turned into a Kubernetes structural schema: `$ref`s inlined, `Optional` unwrapped,
`dict[str, Any]` made `x-kubernetes-preserve-unknown-fields`, `int | str` made `x-kubernetes-int-or-string`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from kdag.api.models import (
    GROUP,
    VERSION,
    DAGRunSpec,
    DAGRunStatus,
    DAGSpec,
    DAGStatus,
    DAGVersionSpec,
    TaskRunSpec,
    TaskRunStatus,
)

_DROPPED_KEYS = frozenset({"title", "$defs"})
_READY = '.status.conditions[?(@.type=="Ready")].status'


def structural_schema(model: type[BaseModel], keep_validations: bool = True) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of a model (camelCase names); CEL rules dropped on request."""
    schema = model.model_json_schema(by_alias=True, mode="validation")
    defs: Mapping[str, Any] = schema.get("$defs", {})
    return _convert(schema, defs, keep_validations)


def _convert(node: Mapping[str, Any], defs: Mapping[str, Any], keep_validations: bool) -> dict[str, Any]:
    node = dict(node)
    ref = node.pop("$ref", None)
    if ref is not None:
        target = defs[ref.rsplit("/", 1)[-1]]
        merged = {**target, **node}
        return _convert(merged, defs, keep_validations)
    any_of = node.pop("anyOf", None)
    if any_of is not None:
        options = [option for option in any_of if option.get("type") != "null"]
        if node.get("default", ...) is None:
            node.pop("default")
        kinds = sorted(str(option.get("type")) for option in options)
        if kinds == ["integer", "string"]:
            return {**_plain(node, keep_validations), "x-kubernetes-int-or-string": True}
        if len(options) != 1:
            raise ValueError(f"cannot express anyOf {any_of} in a structural schema")
        option = dict(options[0])
        # The outer node's description (the field's) wins over the referenced model's.
        return _convert({**option, **node}, defs, keep_validations)

    result = _plain(node, keep_validations)
    if "properties" in result:
        result["properties"] = {
            name: _convert(prop, defs, keep_validations) for name, prop in result["properties"].items()
        }
    if "items" in result:
        result["items"] = _convert(result["items"], defs, keep_validations)
    additional = result.pop("additionalProperties", None)
    if additional is True or (isinstance(additional, dict) and not additional):
        result["x-kubernetes-preserve-unknown-fields"] = True
    elif isinstance(additional, dict):
        result["additionalProperties"] = _convert(additional, defs, keep_validations)
    if result.get("type") is None and not (
        result.get("x-kubernetes-preserve-unknown-fields") or result.get("x-kubernetes-int-or-string")
    ):
        # An `Any` value: any JSON.
        result["x-kubernetes-preserve-unknown-fields"] = True
    if "const" in result:
        result["enum"] = [result.pop("const")]
    return result


def _plain(node: Mapping[str, Any], keep_validations: bool) -> dict[str, Any]:
    result = {key: value for key, value in node.items() if key not in _DROPPED_KEYS}
    if result.get("default", ...) is None:
        del result["default"]
    if not keep_validations:
        result.pop("x-kubernetes-validations", None)
    return result


@dataclass(frozen=True)
class Kind:
    """What a CRD says about one kind besides its schema."""

    kind: str
    plural: str
    short_name: str
    spec: type[BaseModel]
    status: type[BaseModel] | None
    """None: a kind without status (and without the status subresource)."""
    description: str
    columns: tuple[dict[str, Any], ...]
    keep_status_validations: bool = False
    keep_nested_spec_validations: bool = True
    """False: only the spec's own rules are kept, not those of the models inside it (a DAGVersion's DAG
    spec was validated as a DAG already, and only the controller writes it)."""


KINDS = (
    Kind(
        kind="DAG",
        plural="dags",
        short_name="dag",
        spec=DAGSpec,
        status=DAGStatus,
        description="A DAG of tasks that pass XComs; runs on its schedule or timetable, or when triggered.",
        columns=(
            {"name": "Tasks", "type": "integer", "jsonPath": ".status.taskCount"},
            {"name": "Schedule", "type": "string", "jsonPath": ".spec.schedule"},
            {"name": "Ready", "type": "string", "jsonPath": _READY},
            {"name": "Last Run", "type": "string", "jsonPath": ".status.lastRun", "priority": 1},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ),
    ),
    Kind(
        kind="DAGRun",
        plural="dagruns",
        short_name="dr",
        spec=DAGRunSpec,
        status=DAGRunStatus,
        description="One execution of a DAG.",
        columns=(
            {"name": "DAG", "type": "string", "jsonPath": ".spec.dagRef.name"},
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Progress", "type": "string", "jsonPath": ".status.progress"},
            {"name": "Logical Date", "type": "date", "jsonPath": ".spec.logicalDate", "priority": 1},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ),
    ),
    Kind(
        kind="TaskRun",
        plural="taskruns",
        short_name="tr",
        spec=TaskRunSpec,
        status=TaskRunStatus,
        description="One task of one DAGRun; owns the task's pods. Made by the controller.",
        columns=(
            {"name": "Task", "type": "string", "jsonPath": ".spec.taskId"},
            # A mapped task's instance (empty for a task that is not mapped).
            {"name": "Index", "type": "integer", "jsonPath": ".spec.mapIndex"},
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Attempts", "type": "integer", "jsonPath": ".status.attempts"},
            {"name": "Pod", "type": "string", "jsonPath": ".status.podName"},
            {"name": "DAGRun", "type": "string", "jsonPath": ".spec.dagRun", "priority": 1},
            {"name": "Map Name", "type": "string", "jsonPath": ".status.renderedMapIndex", "priority": 1},
            {"name": "Message", "type": "string", "jsonPath": ".status.message", "priority": 1},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ),
    ),
    Kind(
        kind="DAGVersion",
        plural="dagversions",
        short_name="dagv",
        spec=DAGVersionSpec,
        status=None,
        description="One immutable version of a DAG's spec, which the runs started with it follow."
        " Made by the controller, named by its content, owned by its DAG.",
        columns=(
            {"name": "DAG", "type": "string", "jsonPath": ".spec.dagRef.name"},
            {"name": "Tasks", "type": "integer", "jsonPath": ".spec.taskCount"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ),
        keep_nested_spec_validations=False,
    ),
)


def crd(kind: Kind) -> dict[str, Any]:
    """The apiextensions.k8s.io/v1 CustomResourceDefinition of one kind."""
    spec_schema = structural_schema(kind.spec, keep_validations=kind.keep_nested_spec_validations)
    if not kind.keep_nested_spec_validations:
        own = kind.spec.model_json_schema(by_alias=True).get("x-kubernetes-validations")
        if own:
            spec_schema["x-kubernetes-validations"] = own
    properties: dict[str, Any] = {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
        "spec": spec_schema,
    }
    version: dict[str, Any] = {"name": VERSION, "served": True, "storage": True}
    if kind.status is not None:
        # Status is written only by the controller: its rules are left out unless a kind asks for them.
        properties["status"] = structural_schema(kind.status, keep_validations=kind.keep_status_validations)
        version["subresources"] = {"status": {}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{kind.plural}.{GROUP}", "labels": {"app.kubernetes.io/part-of": "kdag"}},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.kind.lower(),
                "shortNames": [kind.short_name],
                "categories": ["kdag"],
            },
            "versions": [
                {
                    **version,
                    "additionalPrinterColumns": list(kind.columns),
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": kind.description,
                            "required": ["spec"],
                            "properties": properties,
                        }
                    },
                }
            ],
        },
    }


def crds() -> list[dict[str, Any]]:
    """The CRDs of every kdag kind."""
    return [crd(kind) for kind in KINDS]
