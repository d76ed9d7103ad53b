"""Apache Airflow as a reference the benches compare with: `airflow dags test` in a throwaway home.

Airflow is never a dependency of kdag: it lives in its own virtual environment (`--airflow-venv`).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path


def airflow_dags_test(venv: Path, home: Path, dag_id: str, logical_date: str, file: Path) -> None:
    """`airflow dags test DAG DATE -f FILE` with `home` as AIRFLOW_HOME, which keeps its database."""
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(file.parent),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    subprocess.run(
        [str(venv / "bin" / "airflow"), "dags", "test", dag_id, logical_date, "-f", str(file)],
        env=env,
        cwd=home,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )


def latest_run(db: sqlite3.Connection, dag_id: str) -> tuple[str, str]:
    """Run id and state of the DAG's newest run in Airflow's database."""
    run_id, state = db.execute(
        "select run_id, state from dag_run where dag_id = ? order by id desc limit 1", (dag_id,)
    ).fetchone()
    return str(run_id), str(state)
