"""Pure: the trigger form a DAG's declared params make, and a submitted form read back into a DAGRun.

A field is read as `kdag trigger -p` reads its value (`kdag.params.cli_value`: JSON when it parses, else
text, as the param's schema wants), and the run is checked with the admission check of DAGRuns
(`kdag.api.validation.dagrun_problems`), so the form refuses exactly what the controller would stall.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kdag import manifests, names, params
from kdag.api.models import DAGSpec
from kdag.api.validation import dagrun_problems
from kdag.render import parse_time

PARAM_PREFIX = "param."
"""Form field name of a param: `param.{name}` (a name is any string: it is only ever an escaped value)."""


@dataclass(frozen=True)
class Field:
    name: str
    widget: str
    """`select` (an enum or a boolean), `json` (a list or an object: a textarea), or `text`."""
    value: str
    """The text shown: the default (a string as itself, anything else as JSON), or what was submitted."""
    options: list[str] = field(default_factory=list)
    required: bool = False
    """No default: the run must give a value."""
    description: str = ""
    schema: str = ""
    """The param's JSON schema, compact, shown beside the field."""


def as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def fields(dag: DAGSpec, submitted: Mapping[str, str] | None = None) -> list[Field]:
    """One field per param the DAG declares, in declaration order, holding what was submitted if any."""
    found = []
    for name, declared in params.declared_params(dag).items():
        schema = dict(declared.schema or {})
        required = declared.default is params.NOTSET
        value = "" if required else as_text(declared.default)
        if submitted is not None and PARAM_PREFIX + name in submitted:
            value = submitted[PARAM_PREFIX + name]
        kind = schema.get("type")
        kinds: list[Any] = list(kind) if isinstance(kind, list) else [kind]
        options: list[str] = []
        if isinstance(schema.get("enum"), list):
            widget, options = "select", [as_text(v) for v in schema["enum"]]
        elif kinds == ["boolean"]:
            widget, options = "select", ["true", "false"]
        elif {"array", "object"} & set(kinds) or isinstance(declared.default, list | dict):
            widget = "json"
        else:
            widget = "text"
        if widget == "select" and value not in options:
            options = ["", *options] if not value else [value, *options]
        found.append(
            Field(
                name,
                widget,
                value,
                options,
                required,
                str(schema.get("description") or ""),
                json.dumps(schema, sort_keys=True) if schema else "",
            )
        )
    return found


@dataclass(frozen=True)
class Submission:
    """A submitted form read back: the DAGRun to create, or what is wrong with it."""

    manifest: dict[str, Any] | None
    problems: list[str]


def read_form(
    dag_name: str, dag_uid: str, dag: DAGSpec, form: Mapping[str, str], run_name: str | None = None
) -> Submission:
    """The DAGRun a submitted form asks for (as `kdag trigger` makes it), or every problem, each naming its
    field. A field left at its default text, or empty, is not sent: the default (or the conf) applies."""
    problems: list[str] = []
    run_params: dict[str, Any] = {}
    for name, declared in params.declared_params(dag).items():
        text = form.get(PARAM_PREFIX + name, "")
        default = "" if declared.default is params.NOTSET else as_text(declared.default)
        if text == "" or text == default:
            continue
        run_params[name] = params.cli_value(text, params.schema_for(dag, name))
    conf: dict[str, Any] = {}
    conf_text = form.get("conf", "").strip()
    if conf_text:
        parsed: Any = None
        try:
            parsed = json.loads(conf_text)
        except ValueError as err:
            problems.append(f"conf: not JSON: {err}")
        if parsed is not None and not isinstance(parsed, dict):
            problems.append(f"conf: must be a JSON object, got {type(parsed).__name__}")
        elif isinstance(parsed, dict):
            conf = parsed
    logical_date: datetime | None = None
    date_text = form.get("logical_date", "").strip()
    if date_text:
        try:
            logical_date = parse_time(date_text)
        except ValueError:
            problems.append(f"logical date: {date_text!r} is not an ISO 8601 date or time")
    if problems:
        return Submission(None, problems)
    manifest = manifests.dagrun_manifest(
        dag_name,
        run_name or names.manual_run_name(dag_name),
        logical_date=logical_date,
        params=run_params,
        conf=conf,
        owner_uid=dag_uid,
        run_type=manifests.MANUAL,
    )
    found = dagrun_problems(manifest["spec"], dag)
    return Submission(None if found else manifest, [str(problem) for problem in found])
