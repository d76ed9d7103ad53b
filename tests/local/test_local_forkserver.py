"""A Python task forked from the local run's fork server sees what a new `python -m kdag_runner run`
process sees, ends with the exit status it would end with, and an attempt the server cannot start as such
(another environment) gets a new interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from kdag.local import forkserver

PROBE = """
import json, os, signal, sys
from datetime import datetime
from airflow import DAG
from airflow.operators.python import PythonOperator

dag = DAG("probe", start_date=datetime(2024, 1, 1), schedule=None)


def probe():
    main = sys.modules["__main__"]
    return {
        "argv": sys.argv,
        "orig_argv": sys.orig_argv[1:],
        "path0": sys.path[0],
        "cwd": os.getcwd(),
        "main_file": main.__file__,
        "main_names": sorted(name for name in vars(main) if not name.startswith("__")),
        "kdag_loaded": sorted(name for name in sys.modules if name == "kdag" or name.startswith("kdag.")),
        "environ": sorted(os.environ),
        "sigint": repr(signal.getsignal(signal.SIGINT)),
        "sigchld": repr(signal.getsignal(signal.SIGCHLD)),
        "stdout_tty": sys.stdout.isatty(),
        "parent_is_kdag": os.getppid() == int(os.environ["PROBE_KDAG_PID"]),
    }


PythonOperator(task_id="probe", python_callable=probe, dag=dag)
"""


def run_probe(tmp_path: Path, name: str) -> dict[str, Any]:
    from kdag import compile as compiler
    from kdag.local.run import LocalDag, run_local

    path = tmp_path / "probe.py"
    path.write_text(PROBE)
    loaded = compiler.load(path)
    result = run_local(LocalDag(loaded.name, loaded.spec, loaded.python_file), tmp_path / name)
    assert result.state == "success", result.tasks["probe"].message
    (row,) = result.xcoms
    value: dict[str, Any] = row.value
    return value


def test_a_forked_task_sees_what_a_new_runner_process_sees(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not forkserver.ENABLED:
        pytest.skip("attempts are forked on Linux only")
    monkeypatch.setenv("PROBE_KDAG_PID", str(os.getpid()))
    forked = run_probe(tmp_path, "forked")
    monkeypatch.setattr(forkserver, "ENABLED", False)
    started = run_probe(tmp_path, "started")
    assert not forked.pop("parent_is_kdag") and started.pop("parent_is_kdag")
    assert forked == started
    assert started["argv"][1:] == ["run"] and started["argv"][0].endswith("kdag_runner/__main__.py")
    assert started["kdag_loaded"] == [] and started["main_names"] == ["main", "sys"]


def attempt_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """An environment the runner refuses at once (no task named): it writes its error and exits."""
    return {**forkserver.host_env(), "KDAG_TERMINATION_LOG": str(tmp_path / "termination"), **extra}


def test_a_forked_attempt_ends_as_a_new_runner_process_does(tmp_path: Path) -> None:
    if not forkserver.ENABLED:
        pytest.skip("attempts are forked on Linux only")
    server = forkserver.ForkServer()
    try:
        log = tmp_path / "forked.log"
        forked = server.start(attempt_env(tmp_path), log)
        assert forked is not None
        forked_exit = forked.wait(timeout=60)
        forked_report = json.loads((tmp_path / "termination").read_text())
        with (tmp_path / "started.log").open("w") as out:
            started_exit = subprocess.run(
                [sys.executable, "-m", "kdag_runner", "run"],
                env=attempt_env(tmp_path),
                stdout=out,
                stderr=out,
                check=False,
                timeout=60,
            ).returncode
        assert forked_exit == started_exit != 0
        assert forked_report == json.loads((tmp_path / "termination").read_text())
        assert log.read_text() == (tmp_path / "started.log").read_text() != ""
    finally:
        server.close()


def test_an_attempt_with_another_environment_is_left_to_a_new_interpreter(tmp_path: Path) -> None:
    if not forkserver.ENABLED:
        pytest.skip("attempts are forked on Linux only")
    server = forkserver.ForkServer()
    try:
        assert server.accepts(attempt_env(tmp_path, KDAG_TASK_ID="t"))
        assert not server.accepts(attempt_env(tmp_path, PYTHONHASHSEED="1"))  # a task's own `env`
        assert server.start(attempt_env(tmp_path, TZ="Asia/Tokyo"), tmp_path / "log") is None
    finally:
        server.close()
    assert server.start(attempt_env(tmp_path), tmp_path / "log") is None  # a closed server forks nothing


def test_a_killed_attempt_ends_by_its_signal(tmp_path: Path) -> None:
    if not forkserver.ENABLED:
        pytest.skip("attempts are forked on Linux only")
    dag = tmp_path / "slow.py"
    dag.write_text(
        textwrap.dedent(
            """\
            import time
            from datetime import datetime
            from airflow import DAG
            from airflow.operators.python import PythonOperator
            dag = DAG("slow", start_date=datetime(2024, 1, 1), schedule=None)
            PythonOperator(task_id="sleep", python_callable=lambda: time.sleep(60), dag=dag)
            """
        )
    )
    server = forkserver.ForkServer()
    try:
        env = attempt_env(
            tmp_path,
            KDAG_DAG_FILE=str(dag),
            KDAG_DAG_ID="slow",
            KDAG_TASK_ID="sleep",
            KDAG_RUN_ID="r",
            KDAG_LOGICAL_DATE="2024-01-01T00:00:00Z",
            KDAG_XCOM_SINK=f"dir:{tmp_path / 'xcom'}",
            KDAG_XCOM_DIR=str(tmp_path / "out"),
        )
        attempt = server.start(env, tmp_path / "log")
        assert attempt is not None
        with pytest.raises(subprocess.TimeoutExpired):
            attempt.wait(timeout=0.5)
        attempt.kill()
        assert attempt.wait(timeout=60) == -9
    finally:
        server.close()
