"""`kdag run --local` against Apache Airflow's `airflow dags test` on the same DAG files.

For each file it times both (wall clock, best of --repeat), reads Airflow's XCom rows and task states from
its SQLite database, and checks kdag's `-o json` rows against them. Airflow lives in a throwaway virtual
environment (never a kdag dependency):

    python3 -m venv /tmp/airflow-venv && /tmp/airflow-venv/bin/pip install "apache-airflow==3.*"
    .venv/bin/python bench/local_vs_airflow.py --airflow-venv /tmp/airflow-venv

Airflow 3 refuses two Airflow 1 idioms the seed lessons use, so the copy Airflow runs has exactly those
removed: the `provide_context=True` argument (a no-op since Airflow 2.0) and the module path
`airflow.operators.python_operator` (read as `airflow.operators.python`). kdag runs the files unchanged.
Rows under keys beginning with `__` are kdag's own (`ti.context`) and are left out of the comparison;
tasks that call `ti.context` / `ti.params`, which Airflow does not have, fail there and are listed apart.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_reference import airflow_dags_test, latest_run

TOP = Path(__file__).resolve().parent.parent
EXAMPLES = TOP / "examples" / "python"
FILES = {
    "etl_dag": EXAMPLES / "xcom_lesson.py",
    "xcom_three_ways": EXAMPLES / "xcom_three_ways.py",
    "xcom_semantics": EXAMPLES / "xcom_semantics.py",
    "bash_templates": EXAMPLES / "bash_templates.py",
}
LOGICAL_DATE = time.strftime("%Y-%m-%d", time.gmtime())
"""Today: the seed lesson starts its DAG yesterday, and Airflow runs no task before a DAG's start_date."""


@dataclass
class Outcome:
    """One tool's run of one file."""

    seconds: list[float]
    run_id: str
    state: str
    tasks: dict[str, str]
    rows: list[dict[str, Any]]


def airflow_copy(source: Path, folder: Path) -> Path:
    """The file as Airflow 3 accepts it: the two removed Airflow 1 idioms taken out, nothing else."""
    text = source.read_text(encoding="utf-8")
    text = re.sub(r"^\s*provide_context\s*=\s*True,\s*\n", "", text, flags=re.MULTILINE)
    text = re.sub(r",\s*provide_context\s*=\s*True\)", ")", text)
    text = text.replace("airflow.operators.python_operator", "airflow.operators.python")
    target = folder / source.name
    target.write_text(text, encoding="utf-8")
    return target


def airflow_value(stored: Any) -> Any:
    """A value of Airflow 3's xcom.value JSON column: numbers come back as numbers, the rest as text."""
    return json.loads(stored) if isinstance(stored, str | bytes) else stored


def run_airflow(venv: Path, home: Path, dag_id: str, file: Path, repeat: int) -> Outcome:
    """`airflow dags test DAG DATE -f FILE`, timed; rows and states of the last run from the database."""
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        airflow_dags_test(venv, home, dag_id, LOGICAL_DATE, file)
        seconds.append(time.perf_counter() - started)
    with sqlite3.connect(home / "airflow.db") as db:
        run_id, state = latest_run(db, dag_id)
        tasks = dict(db.execute("select task_id, state from task_instance where run_id = ?", (run_id,)))
        rows = [
            {"task_id": task_id, "key": key, "value": airflow_value(value)}
            for task_id, key, value in db.execute(
                "select task_id, key, value from xcom where run_id = ? order by timestamp", (run_id,)
            )
        ]
    return Outcome(seconds, run_id, state, {k: str(v) for k, v in tasks.items()}, rows)


def run_kdag(file: Path, repeat: int) -> Outcome:
    """`kdag run --local FILE -o json --logical-date DATE`, timed."""
    kdag = Path(sys.executable).parent / "kdag"
    seconds = []
    result: dict[str, Any] = {}
    for _ in range(repeat):
        started = time.perf_counter()
        done = subprocess.run(
            [str(kdag), "run", "--local", str(file), "-o", "json", "--logical-date", LOGICAL_DATE],
            capture_output=True,
            text=True,
            check=False,
        )
        seconds.append(time.perf_counter() - started)
        result = json.loads(done.stdout)
    return Outcome(seconds, result["run_id"], result["state"], result["tasks"], result["xcoms"])


def comparable(rows: list[dict[str, Any]], run_id: str) -> list[str]:
    """User rows as sorted JSON texts; a run id inside a value is replaced by `<run_id>`."""
    texts = []
    for row in rows:
        if row["key"].startswith("__"):
            continue
        text = json.dumps(row, sort_keys=True)
        text = text.replace(run_id, "<run_id>")
        texts.append(text)
    return sorted(texts)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--airflow-venv", type=Path, default=Path("/tmp/airflow-venv"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    airflow_version = subprocess.run(
        [str(args.airflow_venv / "bin" / "python"), "-c", "import airflow; print(airflow.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    print(f"Apache Airflow {airflow_version}, logical date {LOGICAL_DATE}, best of {args.repeat} runs")
    with tempfile.TemporaryDirectory(prefix="kdag-bench-") as scratch:
        home = Path(scratch) / "airflow-home"
        dags = Path(scratch) / "dags"
        home.mkdir()
        dags.mkdir()
        env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
        subprocess.run(
            [str(args.airflow_venv / "bin" / "airflow"), "db", "migrate"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=True,
        )
        header = f"{'DAG file':<22} {'airflow dags test':>18} {'kdag run --local':>17}  same rows"
        print(header)
        report: dict[str, Any] = {}
        for dag_id, file in FILES.items():
            airflow = run_airflow(args.airflow_venv, home, dag_id, airflow_copy(file, dags), args.repeat)
            kdag = run_kdag(file, args.repeat)
            same = comparable(airflow.rows, airflow.run_id) == comparable(kdag.rows, kdag.run_id)
            failed_in_airflow = sorted(t for t, s in airflow.tasks.items() if s != "success")
            print(
                f"{file.name:<22} {min(airflow.seconds):>16.2f} s {min(kdag.seconds):>15.2f} s  {same}"
                + (f"  (failed in Airflow: {', '.join(failed_in_airflow)})" if failed_in_airflow else "")
            )
            report[file.name] = {
                "airflow_seconds": airflow.seconds,
                "kdag_seconds": kdag.seconds,
                "airflow_median_seconds": statistics.median(airflow.seconds),
                "kdag_median_seconds": statistics.median(kdag.seconds),
                "airflow": {"state": airflow.state, "tasks": airflow.tasks, "xcoms": airflow.rows},
                "kdag": {"state": kdag.state, "tasks": kdag.tasks, "xcoms": kdag.rows},
                "same_rows": same,
            }
        out = Path(scratch).parent / "kdag-bench-local-vs-airflow.json"
        out.write_text(json.dumps(report, indent=2), encoding="utf-8")
        print(f"details: {out}")


if __name__ == "__main__":
    main()
