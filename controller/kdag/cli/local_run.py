"""`kdag run --local`: a whole DAG run on this machine (`run_locally`), and the way in that skips typer.

`kdag.cli.main` hands `kdag run ...` arguments to `main` first: when they are plainly a local run (the
options of `kdag.cli.app.run_command`, each as `--name value`, `--name=value` or `-x value`), the run starts
without loading typer, and the fork server that starts its tasks (`kdag.local.forkserver`) loads the runner
while this process loads kdag. Anything else (`--help`, an unknown or repeated option, a value that looks
like an option, a missing one) is left to typer, which reads it, or reports the usage error, as always.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kdag.cli.errors import EXIT_FAILED, EXIT_OK, UserError, reported, warn
from kdag.cli.values import Output, parse_conf, parse_date

VALUED_OPTIONS = {
    "--param": "param",
    "-p": "param",
    "--output": "output",
    "-o": "output",
    "--conf": "conf",
    "--logical-date": "logical_date",
    "--dag-id": "dag_id",
    "--workdir": "workdir",
    "--dag-folder": "dag_folder",
}
"""`kdag run`'s options that take a value, by the names typer knows them under (`run_command`'s)."""
FLAG = "--local"


@dataclass
class RunArguments:
    """`kdag run --local`'s arguments, as `run_command` receives them from typer."""

    dag_file: Path
    output: Output = Output.text
    param: list[str] = field(default_factory=list)
    conf: str | None = None
    logical_date: str | None = None
    dag_id: str | None = None
    workdir: Path | None = None
    dag_folder: list[Path] = field(default_factory=list)


def parse_arguments(args: list[str]) -> RunArguments | None:
    """The arguments after `run` when they are plainly a local run; None for anything typer should read."""
    single: dict[str, str] = {}
    multiple: dict[str, list[str]] = {"param": [], "dag_folder": []}
    positional: list[str] = []
    local = False
    rest = iter(args)
    for arg in rest:
        if arg == FLAG:
            local = True
            continue
        if not arg.startswith("-") or arg == "-":
            positional.append(arg)
            continue
        name, equals, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        option = VALUED_OPTIONS.get(name)
        if option is None:
            return None
        if not equals:
            value = next(rest, "-")  # no value: left to typer, as a value that looks like an option
            if value.startswith("-"):
                return None
        if option in multiple:
            multiple[option].append(value)
        elif option in single:
            return None
        else:
            single[option] = value
    if not local or len(positional) != 1 or single.get("output", Output.text) not in tuple(Output):
        return None
    return RunArguments(
        dag_file=Path(positional[0]),
        output=Output(single.get("output", Output.text)),
        param=multiple["param"],
        conf=single.get("conf"),
        logical_date=single.get("logical_date"),
        dag_id=single.get("dag_id"),
        workdir=Path(single["workdir"]) if "workdir" in single else None,
        dag_folder=[Path(folder) for folder in multiple["dag_folder"]],
    )


def main(args: list[str]) -> None:
    """Run `kdag run ARGS` here and exit when they are plainly a local run; return (to typer) if not."""
    arguments = parse_arguments(args)
    if arguments is None:
        return
    from kdag.local import forkserver

    forkserver.prestart()
    # Loading kdag makes objects that live as long as the process: no collection while it does.
    gc.disable()
    try:
        for module in ("kdag.compile", "kdag.cli.run_params", "kdag.local.run", "kdag.local.triggers"):
            importlib.import_module(module)
    finally:
        gc.freeze()
        gc.enable()
    sys.exit(run_locally(arguments))


def run_locally(arguments: RunArguments) -> int:
    """Run a whole DAG with every task a subprocess through kdag's runner, XComs in a directory; print the
    result (a live view, or one JSON object). The exit status: 0 when the run succeeds, else 1."""
    from kdag import compile as compiler
    from kdag.cli.run_params import check_run_params, typed_params
    from kdag.local.run import LocalDag, run_local
    from kdag.local.triggers import LocalTriggers

    workdir = arguments.workdir
    with reported():
        loaded = compiler.load(arguments.dag_file, dag_id=arguments.dag_id)
        run_params = typed_params(arguments.param, loaded.spec)
        run_conf = parse_conf(arguments.conf)
        check_run_params(loaded.name, loaded.spec, run_params, run_conf)  # as `kdag trigger` does
        date = parse_date(arguments.logical_date)
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
        folders = tuple(arguments.dag_folder)
        triggers = LocalTriggers(loaded.python_file or arguments.dag_file, directory, folders)
        temporary = workdir is None
        try:
            if arguments.output == Output.json:
                result = run_local(
                    dag, directory, params=run_params, conf=run_conf, logical_date=date, triggers=triggers
                )
                if temporary:
                    result.workdir = keep_run_directory(directory, kept_run_directory(loaded.name))
                    temporary = result.workdir != directory
                print(json.dumps(result.as_json()))
            else:
                from kdag.cli import local_view

                result = local_view.run_with_live_view(
                    dag, directory, params=run_params, conf=run_conf, logical_date=date, triggers=triggers
                )
                if temporary:
                    result.workdir = keep_run_directory(directory, kept_run_directory(loaded.name))
                    temporary = result.workdir != directory
                local_view.print_logs_folder(result)
        finally:
            if temporary:  # kept elsewhere, or the run did not end
                shutil.rmtree(directory, ignore_errors=True)
    return EXIT_OK if result.state == "success" else EXIT_FAILED


def kept_run_directory(dag: str, environ: Mapping[str, str] | None = None, home: Path | None = None) -> Path:
    """Where the last local run of DAG `dag` without --workdir is kept (its task logs and XComs):
    `$XDG_STATE_HOME/kdag/local-runs/{dag}`, `~/.local/state/kdag/local-runs/{dag}` by default."""
    environ = os.environ if environ is None else environ
    state = environ.get("XDG_STATE_HOME") or ""
    root = Path(state) if Path(state).is_absolute() else (home or Path.home()) / ".local" / "state"
    return root / "kdag" / "local-runs" / dag


def keep_run_directory(directory: Path, kept: Path) -> Path:
    """Move a run's work directory to `kept`, replacing the run kept there; `directory` itself when that
    fails (a warning on stderr; it is left where it is)."""
    try:
        kept.parent.mkdir(parents=True, exist_ok=True)
        staged = Path(tempfile.mkdtemp(prefix=f".{kept.name}-", dir=kept.parent))
        shutil.copytree(directory, staged, dirs_exist_ok=True, symlinks=True)
        replaced = kept.with_name(f"{staged.name}-replaced")
        with contextlib.suppress(FileNotFoundError):
            kept.rename(replaced)  # another run of the same DAG may have moved it away at the same time
        staged.rename(kept)
        shutil.rmtree(replaced, ignore_errors=True)
    except OSError as err:
        warn(f"the run's task logs were not kept in '{kept}': {err}")
        return directory
    return kept
