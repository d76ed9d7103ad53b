"""The typer application: the local commands are defined here, the cluster ones in `kdag.cli.cluster`.

Shared option types and parsers are in `kdag.cli.options`; the command modules never import this one,
which registers their commands, so no module of the CLI imports one that imports it back.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from kdag.cli import cluster
from kdag.cli.errors import EXIT_FAILED, EXIT_USAGE, UserError, reported
from kdag.cli.options import (
    ConfOption,
    DagIdOption,
    LogicalDateOption,
    Output,
    ParamOption,
    parse_conf,
    parse_date,
    parse_params,
)
from kdag.cli.run_params import check_run_params, typed_params

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


@app.command("run")
def run_command(
    dag_file: Annotated[Path, typer.Argument(help="A Python DAG file or a YAML DAG manifest.")],
    local: Annotated[bool, typer.Option("--local", help="Run on this machine, without a cluster.")] = False,
    param: ParamOption = None,
    output: Annotated[
        Output, typer.Option("--output", "-o", help="text: live view; json: one object.")
    ] = Output.text,
    conf: ConfOption = None,
    logical_date: LogicalDateOption = None,
    dag_id: DagIdOption = None,
    workdir: Annotated[
        Path | None,
        typer.Option(
            "--workdir", help="Keep XComs and task logs here (default: a temporary directory, removed)."
        ),
    ] = None,
    dag_folder: Annotated[
        list[Path] | None,
        typer.Option(
            "--dag-folder",
            help="Another folder of DAG files a TriggerDagRunOperator may trigger (the DAG file's own "
            "folder is always searched); repeatable.",
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
    from kdag.local.triggers import LocalTriggers

    with reported():
        loaded = compiler.load(dag_file, dag_id=dag_id)
        run_params = typed_params(param, loaded.spec)
        run_conf = parse_conf(conf)
        check_run_params(loaded.name, loaded.spec, run_params, run_conf)  # as `kdag trigger` does
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
        # A TriggerDagRunOperator's DAG: in the DAG file, its folder, the --dag-folder folders.
        triggers = LocalTriggers(loaded.python_file or dag_file, directory, tuple(dag_folder or ()))
        try:
            if output == Output.json:
                result = run_local(
                    dag, directory, params=run_params, conf=run_conf, logical_date=date, triggers=triggers
                )
                print(json.dumps(result.as_json()))
            else:
                from kdag.cli import local_view

                result = local_view.run_with_live_view(
                    dag, directory, params=run_params, conf=run_conf, logical_date=date, triggers=triggers
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
    """Print (or write) the manifests that run a Python DAG on a cluster: the DAG and its source ConfigMap
    (`{dag}-source-{hash}`, named by content; with -o, the files of earlier versions there are removed)."""
    from kdag import compile as compiler

    with reported():
        loaded = compiler.load(dag_file, dag_id=dag_id, name=name)
        if output_dir is None:
            sys.stdout.write(compiler.manifests_yaml(loaded.manifests))
        else:
            for path in compiler.write_manifests(loaded.manifests, output_dir):
                print(path)
            for path in compiler.remove_replaced_sources(loaded.manifests, output_dir):
                print(f"removed {path}")


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


# The commands that talk to the API server, after the local ones (the order `kdag --help` lists them in).
app.command("apply")(cluster.apply_command)
app.command("trigger")(cluster.trigger_command)
app.command("status")(cluster.status_command)
app.command("xcom")(cluster.xcom_command)
app.command("logs")(cluster.logs_command)

__all__ = ["app", "parse_conf", "parse_date", "parse_params"]
