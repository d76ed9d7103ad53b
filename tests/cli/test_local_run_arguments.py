"""`kdag run --local` reads plain arguments without typer (`kdag.cli.local_run`) as typer reads them, and
leaves anything else to typer: help, usage errors, forms it does not know."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import typer
from kdag.cli.app import app
from kdag.cli.local_run import FLAG, VALUED_OPTIONS, RunArguments, parse_arguments
from kdag.cli.values import Output

KDAG = str(Path(sys.executable).parent / "kdag")


def test_the_options_read_without_typer_are_the_run_commands() -> None:
    run = typer.main.get_command(app).commands["run"]  # type: ignore[attr-defined]
    options = [p for p in run.params if p.param_type_name == "option"]
    assert {p.name for p in run.params} - {p.name for p in options} == {"dag_file"}
    assert {name for p in options if p.is_flag for name in [*p.opts, *p.secondary_opts]} == {FLAG}
    valued = [p for p in options if not p.is_flag]
    assert {name: p.name for p in valued for name in p.opts} == VALUED_OPTIONS
    assert not [p for p in valued if p.secondary_opts]
    assert {p.name for p in valued if p.multiple} == {"param", "dag_folder"}


def test_plain_arguments_are_read_as_typer_reads_them() -> None:
    args = ["--local", "dag.py", "-o", "json", "--param=a=1", "-p", "b=x", "--conf", "{}"]
    args += ["--logical-date", "2026-11-21", "--dag-id", "d", "--workdir=w", "--dag-folder", "f1"]
    args += ["--dag-folder", "f2"]
    assert parse_arguments(args) == RunArguments(
        dag_file=Path("dag.py"),
        output=Output.json,
        param=["a=1", "b=x"],
        conf="{}",
        logical_date="2026-11-21",
        dag_id="d",
        workdir=Path("w"),
        dag_folder=[Path("f1"), Path("f2")],
    )
    assert parse_arguments(["dag.py", "--local"]) == RunArguments(dag_file=Path("dag.py"))


@pytest.mark.parametrize(
    "args",
    [
        ["dag.py"],  # not local: typer says what to do instead
        ["--local"],  # no file
        ["--local", "a.py", "b.py"],
        ["--local", "dag.py", "--help"],
        ["--local", "dag.py", "--bogus"],
        ["--local", "dag.py", "-o", "yaml"],
        ["--local", "dag.py", "-ojson"],
        ["--local", "dag.py", "-pkey=1"],
        ["--local", "dag.py", "--conf"],  # a missing value
        ["--local", "dag.py", "--conf", "--dag-id", "d"],
        ["--local", "dag.py", "--dag-id", "a", "--dag-id", "b"],
        ["--local=yes", "dag.py"],
        ["--local", "--", "dag.py"],
    ],
)
def test_anything_else_is_left_to_typer(args: list[str]) -> None:
    assert parse_arguments(args) is None


def test_a_usage_error_is_typers(tmp_path: Path) -> None:
    done = subprocess.run(
        [KDAG, "run", "--local", str(tmp_path / "dag.py"), "--bogus"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and "No such option: --bogus" in done.stderr
