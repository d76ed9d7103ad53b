"""A run's params as `kdag trigger` and `kdag run --local` take them: `-p KEY=VALUE` read against the DAG's
param schemas, and the run refused (one line, exit status 1) before anything is created when a value breaks
its schema (`kdag.params`, the check the controller makes before a run starts)."""

from __future__ import annotations

import sys
from typing import Any

from kdag import params
from kdag.api.models import DAGSpec
from kdag.cli.errors import UserError
from kdag.cli.values import parse_params


def typed_params(pairs: list[str] | None, dag: DAGSpec | None) -> dict[str, Any]:
    """`-p KEY=VALUE` pairs as values: VALUE is JSON when it parses, else text, unless the param's schema
    refuses the JSON value and accepts the text (`-p version=1.10` for a string param)."""
    values = parse_params(pairs)  # refuses a pair without '=' or key
    if dag is None:
        return values
    texts = {}
    for pair in pairs or []:
        key, _, text = pair.partition("=")
        texts[key] = text
    return {key: params.cli_value(texts[key], params.schema_for(dag, key)) for key in values}


def check_run_params(dag_name: str, dag: DAGSpec, run_params: dict[str, Any], conf: dict[str, Any]) -> None:
    """Refuse (UserError, one line) a run whose params or conf break the DAG's param schemas, or that
    lacks a param with no default; warn (stderr) of each `-p` param the DAG does not declare."""
    for name in params.undeclared(dag, run_params):
        print(
            f"warning: param '{name}' is not declared by DAG '{dag_name}'; its tasks get it as given",
            file=sys.stderr,
        )
    problems = params.run_param_problems(dag, run_params, conf)
    if problems:
        raise UserError(f"DAG '{dag_name}': {params.describe(problems)}")


def dag_spec_of(dag_object: dict[str, Any]) -> DAGSpec | None:
    """The spec of a DAG object from the cluster; None when it does not parse (the controller then stalls
    the run as InvalidDAG, naming why)."""
    try:
        return DAGSpec.model_validate(dag_object.get("spec") or {})
    except ValueError:
        return None
