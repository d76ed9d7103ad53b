"""What a new user reads: `run --local` written to a file or a pipe, `apply`'s lines and errors in order,
internal XCom keys marked, failed tasks' attempts, messages and kept logs, and a DAG file's traceback."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from kdag.cli import cluster
from kdag.cli.local_run import keep_run_directory, kept_run_directory
from kdag.cli.local_view import xcom_table
from kdag.kube import Kind
from kdag.local.run import XComRow
from kdag_runner.kube import Invalid
from rich.console import Console

REPO = Path(__file__).resolve().parents[2]
KDAG = str(Path(sys.executable).parent / "kdag")
FAILING = (
    "from airflow import DAG\nfrom airflow.operators.python import PythonOperator\n"
    "def fail():\n    raise ValueError('bad thing ' + 'x' * 200 + ' end of message')\n"
    "with DAG('fails_here') as dag:\n"
    "    PythonOperator(task_id='a', python_callable=fail, retries=1, retry_delay=0)"
    " >> PythonOperator(task_id='b', python_callable=print)\n"
)


def kdag(*args: str, state: Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """kdag with stdout and stderr pipes (no terminal), no $COLUMNS, the state folder in `state`."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env["XDG_STATE_HOME"] = str(state)
    return subprocess.run(
        [KDAG, *args], capture_output=True, text=True, timeout=120, check=False, env=env, cwd=cwd
    )


def test_run_local_to_a_pipe_puts_each_title_on_its_own_line_and_wraps_nothing(tmp_path: Path) -> None:
    done = kdag("run", "--local", str(REPO / "examples/python/xcom_three_ways.py"), state=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "XComs" in lines, done.stdout
    assert not [line for line in lines if line != line.rstrip()], "no line ends in padding"
    run_id = lines[-2].removeprefix("run ").removesuffix(": success")
    assert lines[0] == f"xcom_three_ways {run_id}: success"
    assert sum(line.startswith("└") for line in lines) == 2 and all(
        line.endswith("┘") for line in lines if line.startswith("└")
    )
    failed = tmp_path / "fails.py"
    failed.write_text(FAILING)
    done = kdag("run", "--local", str(failed), state=tmp_path)
    assert done.returncode == 1
    assert any(("x" * 200 + " end of message") in line for line in done.stdout.splitlines()), done.stdout


def test_internal_xcom_keys_are_marked_and_dimmed() -> None:
    console = Console(file=io.StringIO(), width=200, force_terminal=True, color_system="standard")
    console.print(xcom_table([XComRow("t", "__context", {"a": 1}), XComRow("t", "mine", 2)]))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    context_line = next(line for line in text.splitlines() if "__context" in line)
    mine_line = next(line for line in text.splitlines() if "mine" in line)
    assert "__context (internal)" in context_line and "\x1b[2m" in context_line  # dim
    assert "(internal)" not in mine_line and "\x1b[2m" not in mine_line


def test_failed_tasks_have_attempts_exit_codes_messages_and_kept_logs(tmp_path: Path) -> None:
    path = tmp_path / "fails.py"
    path.write_text(FAILING)
    kept = tmp_path / "state" / "kdag" / "local-runs" / "fails-here"
    for _ in range(2):  # the second run replaces the first one's logs
        done = kdag("run", "--local", str(path), "-o", "json", state=tmp_path / "state")
        assert done.returncode == 1
        result = json.loads(done.stdout)
        failed = result["task_instances"]["a"]
        assert (failed["state"], failed["attempts"], failed["exit_code"]) == ("failed", 2, 1)
        assert failed["message"].startswith("ValueError: bad thing")
        assert failed["log"] == str(kept / "logs" / "a.log")
        log = Path(failed["log"]).read_text()
        assert log.count("--- attempt 1") == 1 and log.count("--- attempt 2") == 1 and "bad thing" in log
        assert result["task_instances"]["b"] == {
            "state": "upstream_failed", "attempts": 0, "exit_code": None, "message": "", "log": None
        }  # fmt: skip
        assert result["logs"] == str(kept / "logs")
    text = kdag("run", "--local", str(path), state=tmp_path / "state")
    assert f"task logs: {kept / 'logs'}" in text.stdout.splitlines()
    assert f"  a: {kept / 'logs' / 'a.log'}" in text.stdout.splitlines()


def test_the_kept_run_directory_is_per_user_and_replaced(tmp_path: Path) -> None:
    assert kept_run_directory("d", {"XDG_STATE_HOME": "/s"}) == Path("/s/kdag/local-runs/d")
    home = tmp_path / "home"
    assert kept_run_directory("d", {}, home) == home / ".local/state/kdag/local-runs/d"
    assert (
        kept_run_directory("d", {"XDG_STATE_HOME": "relative"}, home)
        == home / ".local/state/kdag/local-runs/d"
    )
    for text in ("first", "second"):
        run = tmp_path / f"run-{text}"
        (run / "logs").mkdir(parents=True)
        (run / "logs" / f"{text}.log").write_text(text)
        assert keep_run_directory(run, tmp_path / "kept") == tmp_path / "kept"
    assert sorted(p.name for p in (tmp_path / "kept" / "logs").iterdir()) == ["second.log"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept", "run-first", "run-second"]


HELPER = "def helper():\n    return {}['x']\n"
IMPORTS_HELPER = "from airflow import DAG\nimport mylib\n\nwith DAG('boom') as dag:\n    mylib.helper()\n"


@pytest.mark.parametrize(
    "command",
    [["run", "--local"], ["compile"], ["graph"], ["apply", "--kubeconfig", "/nonexistent"]],
    ids=["run", "compile", "graph", "apply"],
)
def test_an_exception_in_a_dag_file_shows_its_line_and_the_authors_traceback(
    tmp_path: Path, command: list[str]
) -> None:
    (tmp_path / "mylib.py").write_text(HELPER)
    (tmp_path / "boom.py").write_text(IMPORTS_HELPER)
    done = kdag(*command, "boom.py", state=tmp_path, cwd=tmp_path)
    assert done.returncode == 1
    first, *traceback = done.stderr.splitlines()
    assert first == f"error: DAG file 'boom.py', line 5 (in '{tmp_path}/mylib.py', line 2): KeyError: 'x'"
    assert traceback[:2] == ['  File "boom.py", line 5, in <module>', "    mylib.helper()"]
    assert traceback[2:4] == [f'  File "{tmp_path}/mylib.py", line 2, in helper', "    return {}['x']"]
    assert not [line for line in traceback if "kdag" in line], "no frame of kdag's own"


class RefusingApi:
    """Applies ConfigMaps; refuses the DAG as the API server refuses an invalid object."""

    namespace = "ns"

    def __enter__(self) -> RefusingApi:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass

    def get(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        return None

    def list(self, kind: Kind, namespace: str, labels: dict[str, str] | None = None) -> list[dict[str, Any]]:
        return []

    def apply(self, obj: dict[str, Any], namespace: str, field_manager: str) -> dict[str, Any]:
        if obj["kind"] == "DAG":
            raise Invalid(422, 'DAG.kdag.dev "slow2" is invalid: spec.tasks[0].python: Invalid value')
        return {**obj, "metadata": {**obj["metadata"], "uid": str(uuid.uuid4())}}


def test_apply_prints_what_it_applied_and_then_the_error_each_on_its_own_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """stdout to a file is buffered, stderr is not: where both go to one file the lines stay in order."""
    path = tmp_path / "slow2.py"
    path.write_text(FAILING.replace("fails_here", "slow2"))
    out = tmp_path / "out.txt"
    with out.open("ab") as both_out, out.open("ab", buffering=0) as both_err:
        monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(both_out, encoding="utf-8"))
        monkeypatch.setattr(sys, "stderr", io.TextIOWrapper(both_err, encoding="utf-8", write_through=True))
        monkeypatch.setattr(cluster, "connect", lambda kubeconfig: RefusingApi())
        with pytest.raises(SystemExit) as exited:
            cluster.apply_command(path, namespace="ns", kubeconfig=None, dag_id=None)
        sys.stdout.flush()
    lines = out.read_text().splitlines()
    assert exited.value.code == 1
    assert len(lines) == 2, lines
    assert lines[0].startswith("configmap/slow2-source-") and lines[0].endswith(" applied")
    assert lines[1].startswith("error: ") and "is invalid" in lines[1]
