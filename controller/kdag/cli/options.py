"""What several commands share: option types, and the parsers of their values (`kdag.cli.values`, where
they live without typer); no command is defined here."""

from __future__ import annotations

from typing import Annotated

import typer

from kdag.cli.values import Output, parse_conf, parse_date, parse_params

ParamOption = Annotated[
    list[str] | None,
    typer.Option(
        "--param", "-p", help="A run param KEY=VALUE (VALUE parsed as JSON when it parses); repeatable."
    ),
]
DagIdOption = Annotated[
    str | None, typer.Option("--dag-id", help="Which DAG of a Python file that defines several.")
]
ConfOption = Annotated[str | None, typer.Option("--conf", help="The run's conf, a JSON object.")]
LogicalDateOption = Annotated[
    str | None, typer.Option("--logical-date", help="Logical date (ISO 8601); default now.")
]
NamespaceOption = Annotated[
    str | None, typer.Option("--namespace", "-n", help="Namespace (default: the kubeconfig context's).")
]
KubeconfigOption = Annotated[
    str | None, typer.Option("--kubeconfig", envvar="KUBECONFIG", help="kubeconfig file.")
]

__all__ = [
    "ConfOption",
    "DagIdOption",
    "KubeconfigOption",
    "LogicalDateOption",
    "NamespaceOption",
    "Output",
    "ParamOption",
    "parse_conf",
    "parse_date",
    "parse_params",
]
