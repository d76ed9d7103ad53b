"""The typer application: one function per subcommand; the work is done by kdag's modules."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from kdag.cli.errors import EXIT_FAILED, EXIT_USAGE, UserError, reported

app = typer.Typer(
    name="kdag",
    help=(
        "kdag: Airflow's XCom programming model, native to Kubernetes.\n\n"
        "Exit codes: 0 success; 1 a definition mistake, bad input, a failed run or an API error "
        "(one line on stderr); 2 a usage error."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class Output(StrEnum):
    """How a command prints its result."""

    text = "text"
    json = "json"


ParamOption = Annotated[
    list[str] | None,
    typer.Option(
        "--param", "-p", help="A run param KEY=VALUE (VALUE parsed as JSON when it parses); repeatable."
    ),
]
DagIdOption = Annotated[
    str | None, typer.Option("--dag-id", help="Which DAG of a Python file that defines several.")
]


def parse_params(pairs: list[str] | None) -> dict[str, Any]:
    """`-p key=value` pairs as a dict; a value that parses as JSON is that JSON value, else the text."""
    params: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise UserError(f"param {pair!r}: expected KEY=VALUE")
        try:
            params[key] = json.loads(text)
        except ValueError:
            params[key] = text
    return params


def parse_conf(text: str | None) -> dict[str, Any]:
    """`--conf` as a JSON object."""
    if not text:
        return {}
    try:
        conf = json.loads(text)
    except ValueError as err:
        raise UserError(f"--conf: not JSON: {err}") from None
    if not isinstance(conf, dict):
        raise UserError("--conf: must be a JSON object")
    return conf


def parse_date(text: str | None) -> datetime | None:
    """`--logical-date` as an aware UTC datetime (a date alone means midnight UTC)."""
    if not text:
        return None
    from kdag.render import parse_time

    try:
        return parse_time(text)
    except ValueError:
        raise UserError(f"--logical-date: {text!r} is not an ISO 8601 date or time") from None


@app.command("run")
def run_command(
    dag_file: Annotated[Path, typer.Argument(help="A Python DAG file or a YAML DAG manifest.")],
    local: Annotated[bool, typer.Option("--local", help="Run on this machine, without a cluster.")] = False,
    param: ParamOption = None,
    output: Annotated[
        Output, typer.Option("--output", "-o", help="text: live view; json: one object.")
    ] = Output.text,
    conf: Annotated[str | None, typer.Option("--conf", help="The run's conf, a JSON object.")] = None,
    logical_date: Annotated[
        str | None, typer.Option("--logical-date", help="Logical date (ISO 8601); default now.")
    ] = None,
    dag_id: DagIdOption = None,
    workdir: Annotated[
        Path | None,
        typer.Option(
            "--workdir", help="Keep XComs and task logs here (default: a temporary directory, removed)."
        ),
    ] = None,
) -> None:
    """Run a whole DAG: with --local, every task as a subprocess through kdag's runner, XComs in a directory.

    Exit status 0 when the run succeeds, 1 when it fails or the DAG is refused.
    """
    if not local:
        print(
            "error: kdag run needs --local; on a cluster use `kdag apply` then `kdag trigger --wait`",
            file=sys.stderr,
        )
        raise typer.Exit(EXIT_USAGE)
    from kdag import compile as compiler
    from kdag.local.run import LocalDag, run_local

    with reported():
        loaded = compiler.load(dag_file, dag_id=dag_id)
        run_params = parse_params(param)
        run_conf = parse_conf(conf)
        date = parse_date(logical_date)
        if workdir is not None and workdir.exists() and any(workdir.iterdir()):
            # XComs left by another run would show up as this run's rows.
            raise UserError(f"--workdir '{workdir}' is not empty; give a new or empty directory")
        directory = workdir if workdir is not None else Path(tempfile.mkdtemp(prefix="kdag-local-"))
        python_file = loaded.python_file
        if python_file is None and loaded.python_source is not None and loaded.spec.python_file is not None:
            python_file = directory / "dag" / loaded.spec.python_file.key
            python_file.parent.mkdir(parents=True, exist_ok=True)
            python_file.write_text(loaded.python_source, encoding="utf-8")
        dag = LocalDag(loaded.name, loaded.spec, python_file)
        try:
            if output == Output.json:
                result = run_local(dag, directory, params=run_params, conf=run_conf, logical_date=date)
                print(json.dumps(result.as_json()))
            else:
                from kdag.cli import local_view

                result = local_view.run_with_live_view(
                    dag, directory, params=run_params, conf=run_conf, logical_date=date
                )
        finally:
            if workdir is None:
                shutil.rmtree(directory, ignore_errors=True)
    if result.state != "success":
        raise typer.Exit(EXIT_FAILED)


@app.command("compile")
def compile_command(
    dag_file: Annotated[Path, typer.Argument(help="A Python DAG file.")],
    output_dir: Annotated[
        Path | None, typer.Option("--output-dir", "-o", help="Write one YAML file per object here.")
    ] = None,
    dag_id: DagIdOption = None,
    name: Annotated[
        str | None, typer.Option("--name", help="metadata.name of the DAG (default from dag_id).")
    ] = None,
) -> None:
    """Print (or write) the manifests that run a Python DAG on a cluster: the DAG and its `{dag}-source`."""
    from kdag import compile as compiler

    with reported():
        loaded = compiler.load(dag_file, dag_id=dag_id, name=name)
        if output_dir is None:
            sys.stdout.write(compiler.manifests_yaml(loaded.manifests))
        else:
            for path in compiler.write_manifests(loaded.manifests, output_dir):
                print(path)


@app.command("graph")
def graph_command(
    dag: Annotated[
        str, typer.Argument(help="A DAG file (.py or .yaml), or the name of a DAG on the cluster.")
    ],
    svg: Annotated[Path | None, typer.Option("--svg", help="Also draw the graph to this SVG file.")] = None,
    png: Annotated[
        Path | None, typer.Option("--png", help="Also draw it to this PNG file (needs rsvg-convert).")
    ] = None,
    dag_id: DagIdOption = None,
    namespace: Annotated[str | None, typer.Option("--namespace", "-n")] = None,
    kubeconfig: Annotated[str | None, typer.Option("--kubeconfig", envvar="KUBECONFIG")] = None,
) -> None:
    """Draw a DAG's tasks and dependencies in the terminal, and to SVG (--svg) or PNG (--png) files."""
    from kdag.cli import graph_view

    with reported():
        path = Path(dag)
        if path.suffix in (".py", ".yaml", ".yml", ".json") or path.exists():
            from kdag import compile as compiler

            loaded = compiler.load(path, dag_id=dag_id)
            title, spec = loaded.dag_id, loaded.spec
        else:
            from kdag.cli import cluster

            title, spec = cluster.fetch_dag_spec(dag, namespace, kubeconfig)
        graph_view.print_graph(title, spec)
        if svg is not None:
            svg.write_text(graph_view.svg(title, spec), encoding="utf-8")
            print(f"wrote {svg}")
        if png is not None:
            graph_view.write_png(graph_view.svg(title, spec), png)
            print(f"wrote {png}")


@app.command(
    "controller",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def controller_command(ctx: typer.Context) -> None:
    """Run the kdag controller (the kopf operator) in the foreground (`kdag controller --help`)."""
    from kdag.controller import main as controller_main

    controller_main(list(ctx.args))


# The cluster commands live in their own module and register on `app` when it is imported.
from kdag.cli import cluster as _cluster_commands  # noqa: E402

__all__ = ["_cluster_commands", "app"]
