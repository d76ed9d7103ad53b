"""Apache Airflow as a reference the benches compare with: `airflow dags test` in a throwaway home.

Airflow is never a dependency of kdag: it lives in its own virtual environment (`--airflow-venv`), outside
the repository. `airflow_venv()` makes a pinned one once and reuses it: `~/.cache/kdag/airflow-<version>`
(`$XDG_CACHE_HOME/kdag/...` when set), created with the interpreter of `$KDAG_AIRFLOW_PYTHON`, else
`python3.12` on PATH or pyenv's 3.12; a marker file records what was installed, so a changed pin reinstalls.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

AIRFLOW_VERSION = "3.3.2"
CACHE_ROOT = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kdag"


def airflow_python() -> str:
    """A Python 3.12 for Airflow's venv: `$KDAG_AIRFLOW_PYTHON`, `python3.12` on PATH, pyenv's 3.12.x.

    A candidate counts only when it runs (a pyenv shim on PATH may name a version that is not selected).
    """
    candidates = [os.environ.get("KDAG_AIRFLOW_PYTHON"), shutil.which("python3.12")]
    candidates += [str(p) for p in sorted((Path.home() / ".pyenv" / "versions").glob("3.12*/bin/python"))]
    for candidate in candidates:
        if not candidate:
            continue
        if subprocess.run([candidate, "--version"], capture_output=True, check=False).returncode == 0:
            return candidate
    raise SystemExit("no Python 3.12 for Airflow: set KDAG_AIRFLOW_PYTHON")


def airflow_venv(version: str = AIRFLOW_VERSION, extra: tuple[str, ...] = ()) -> Path:
    """The cached virtual environment with `apache-airflow==version` (and `extra` requirements).

    Made on first use (minutes); later calls return it at once while the recorded requirements match.
    """
    venv = CACHE_ROOT / f"airflow-{version}"
    wanted = [f"apache-airflow=={version}", *extra]
    marker = venv / "kdag-requirements.json"
    if marker.exists() and json.loads(marker.read_text(encoding="utf-8")) == wanted:
        return venv
    if not (venv / "bin" / "python").exists():
        venv.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([airflow_python(), "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", *wanted], check=True)
    marker.write_text(json.dumps(wanted), encoding="utf-8")
    return venv


def airflow_version(venv: Path) -> str:
    """`airflow.__version__` of the venv."""
    return subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import airflow; print(airflow.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def airflow_env(home: Path, dags_folder: Path | None = None, load_examples: bool = False) -> dict[str, str]:
    """The environment for an `airflow` command with `home` as AIRFLOW_HOME.

    `load_examples` makes Airflow's own example DAGs (and their plugins) bundles of their own, named
    `example_dags` and `<provider distribution>-example-dags`.
    """
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": str(load_examples)}
    if dags_folder is not None:
        env["AIRFLOW__CORE__DAGS_FOLDER"] = str(dags_folder)
    return env


def migrate(venv: Path, home: Path) -> None:
    """`airflow db migrate`: the SQLite database `home/airflow.db`."""
    subprocess.run(
        [str(venv / "bin" / "airflow"), "db", "migrate"],
        env=airflow_env(home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
    )


def airflow_dags_test(
    venv: Path,
    home: Path,
    dag_id: str,
    logical_date: str,
    file: Path,
    log: Path | None = None,
    timeout: float | None = None,
    bundle: str | None = None,
    dags_folder: Path | None = None,
    load_examples: bool = False,
    conf: dict[str, Any] | None = None,
) -> int | None:
    """`airflow dags test DAG DATE -f FILE` with `home` as AIRFLOW_HOME, which keeps its database.

    The DAGs folder is the file's folder unless `dags_folder` is given; `bundle` adds `-B BUNDLE` (the file
    then belongs to that bundle, such as `example_dags` with `load_examples`). Output goes to `log` when
    given (else nowhere); `conf` is the run's conf (`-c JSON`). Returns the exit status, None after
    `timeout` seconds.
    """
    command = [str(venv / "bin" / "airflow"), "dags", "test", dag_id, logical_date, "-f", str(file)]
    if bundle is not None:
        command += ["-B", bundle]
    if conf is not None:
        command += ["-c", json.dumps(conf)]
    env = airflow_env(home, dags_folder or file.parent, load_examples)
    with open(log or os.devnull, "wb") as out:
        # A session of its own, so a timeout ends the task processes Airflow started too.
        process = subprocess.Popen(
            command, env=env, cwd=home, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return None


def latest_run(db: sqlite3.Connection, dag_id: str) -> tuple[str, str]:
    """Run id and state of the DAG's newest run in Airflow's database."""
    run_id, state = db.execute(
        "select run_id, state from dag_run where dag_id = ? order by id desc limit 1", (dag_id,)
    ).fetchone()
    return str(run_id), str(state)


def xcom_value(stored: Any) -> Any:
    """A value of Airflow 3's xcom.value JSON column: numbers come back as numbers, the rest as text."""
    return json.loads(stored) if isinstance(stored, str | bytes) else stored


def run_results(
    db: sqlite3.Connection, dag_id: str, run_id: str
) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """Task states and XCom rows of one run, as `kdag run -o json` gives them.

    A mapped task's instances are `task_id[map_index]` in the states; XCom rows of a mapped instance carry
    `map_index` (left out when it is -1, as kdag does).
    """
    tasks: dict[str, str] = {}
    for task_id, map_index, state in db.execute(
        "select task_id, map_index, state from task_instance where dag_id = ? and run_id = ?"
        " order by task_id, map_index",
        (dag_id, run_id),
    ):
        name = str(task_id) if map_index == -1 else f"{task_id}[{map_index}]"
        tasks[name] = str(state)
    rows: list[dict[str, Any]] = []
    for task_id, map_index, key, value in db.execute(
        "select task_id, map_index, key, value from xcom where dag_id = ? and run_id = ?"
        " order by timestamp, task_id, map_index, key",
        (dag_id, run_id),
    ):
        row: dict[str, Any] = {"task_id": str(task_id), "key": str(key), "value": xcom_value(value)}
        if map_index != -1:
            row["map_index"] = int(map_index)
        rows.append(row)
    return tasks, rows
