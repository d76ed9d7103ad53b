"""The typer application: the local commands are defined here, the cluster ones in `kdag.cli.cluster`.

Shared option types and parsers are in `kdag.cli.options`; the command modules never import this one,
which registers their commands, so no module of the CLI imports one that imports it back.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from kdag.cli import cluster, local_run, logs
from kdag.cli.errors import EXIT_OK, EXIT_USAGE, reported, to_stderr
from kdag.cli.options import (
    ConfOption,
    DagIdOption,
    KubeconfigOption,
    LogicalDateOption,
    NamespaceOption,
    Output,
    ParamOption,
    parse_conf,
    parse_date,
    parse_params,
)

app = typer.Typer(
    name="kdag",
    help=(
        "kdag: Airflow's XCom programming model, native to Kubernetes.\n\n"
        "Exit codes: 0 success; 1 a definition mistake, bad input, a failed run or an API error "
        "(one line on stderr; an exception a DAG file raised adds the traceback of its own frames); "
        "2 a usage error."
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
        Output,
        typer.Option(
            "--output",
            "-o",
            help="text: the task table (live on a terminal) and the XComs, kdag's own keys (`__context`) "
            "dimmed and marked (internal); json: one object, with each task's attempts, exit code, message "
            "and log file.",
        ),
    ] = Output.text,
    conf: ConfOption = None,
    logical_date: LogicalDateOption = None,
    dag_id: DagIdOption = None,
    workdir: Annotated[
        Path | None,
        typer.Option(
            "--workdir",
            help="Keep XComs and task logs here (default: a temporary directory, moved at the end to "
            "~/.local/state/kdag/local-runs/DAG, or under $XDG_STATE_HOME, replacing the DAG's last run).",
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
        to_stderr("error: kdag run needs --local; on a cluster use `kdag apply` then `kdag trigger --wait`")
        raise typer.Exit(EXIT_USAGE)
    arguments = local_run.RunArguments(
        dag_file=dag_file,
        output=output,
        param=param or [],
        conf=conf,
        logical_date=logical_date,
        dag_id=dag_id,
        workdir=workdir,
        dag_folder=dag_folder or [],
    )
    code = local_run.run_locally(arguments)
    if code != EXIT_OK:
        raise typer.Exit(code)


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
    """Print (or write) the manifests that run a Python DAG on a cluster.

    The DAG and its source ConfigMap (`{dag}-source-{hash}`, named by content; with -o, the files of earlier
    versions there are removed)."""
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
    namespace: NamespaceOption = None,
    kubeconfig: KubeconfigOption = None,
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


@app.command("ui")
def ui_command(
    namespace: Annotated[
        list[str] | None,
        typer.Option(
            "--namespace",
            "-n",
            help="Show this namespace (repeatable; default: every namespace "
            "you may list, else your kubeconfig's).",
        ),
    ] = None,
    kubeconfig: Annotated[str | None, typer.Option("--kubeconfig", envvar="KUBECONFIG")] = None,
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8080,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    read_only: Annotated[bool, typer.Option("--read-only", help="No trigger form.")] = False,
    in_cluster: Annotated[
        bool,
        typer.Option(
            "--in-cluster", help="Run as the chart's Deployment: no triggering unless --allow-trigger."
        ),
    ] = False,
    allow_trigger: Annotated[
        bool, typer.Option("--allow-trigger", help="With --in-cluster: allow triggering.")
    ] = False,
) -> None:
    """A web UI of DAGs, runs, task states, logs and XComs: what your kubeconfig may read (docs/ui.md)."""
    from kdag.ui.context import UiSettings
    from kdag.ui.server import serve

    serve(
        UiSettings(
            kubeconfig=None if in_cluster else kubeconfig,
            namespaces=tuple(namespace or ()),
            host=host,
            port=port,
            read_only=read_only,
            in_cluster=in_cluster,
            allow_trigger=allow_trigger,
        )
    )


# The commands that talk to the API server, after the local ones (the order `kdag --help` lists them in).
app.command("apply")(cluster.apply_command)
app.command("trigger")(cluster.trigger_command)
app.command("status")(cluster.status_command)
app.command("xcom")(cluster.xcom_command)
app.command("logs")(logs.logs_command)

__all__ = ["app", "parse_conf", "parse_date", "parse_params"]
