"""`kdag run --local` against Apache Airflow on the same DAG files, timed in pairs, XCom rows compared.

Two comparisons, each tool's whole command timed (wall clock, from start to exit):

- the lesson files (`examples/python`, the seed lessons first): `kdag run --local FILE -o json` against
  `airflow dags test DAG DATE -f FILE`, both after one untimed warm-up run, then `--repeat` rounds of one run
  each, the tool that goes first alternating; the medians and their ratio are printed;
- 1,000 tasks (`--thousand-repeat` runs each, 0 to skip): a DAG file this script writes (`thousand_source`:
  a fan-out of 40 chains of 24 trivial tasks, `@task` and `PythonOperator` by turns, each passing its XCom
  on, 38 fan-in tasks pulling from two chains, and one total), run by `kdag run --local FILE -o json` and
  by `python FILE`, which calls Airflow's `dag.test()` (the file's `if __name__ == "__main__":` block).

Airflow's XCom rows and task states are read from its SQLite database and compared with kdag's `-o json`.
Airflow lives in its own virtual environment, never a kdag dependency (`airflow_reference.airflow_venv`:
`~/.cache/kdag/airflow-3.3.2`, made on first use; or `--airflow-venv`):

    .venv/bin/python bench/local_vs_airflow.py [--airflow-venv VENV] [--repeat 5] [--thousand-repeat 1]

Both tools run with Python's bytecode cache on (`PYTHONDONTWRITEBYTECODE` is dropped from their
environment), as in an installed environment: pip byte-compiles Airflow's packages when it installs them,
and kdag's own modules are compiled by the warm-up run.

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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_reference import (
    airflow_dags_test,
    airflow_env,
    airflow_venv,
    airflow_version,
    latest_run,
    migrate,
    run_results,
)

TOP = Path(__file__).resolve().parent.parent
EXAMPLES = TOP / "examples" / "python"
KDAG = Path(sys.executable).parent / "kdag"
FILES = {
    "etl_dag": EXAMPLES / "xcom_lesson.py",
    "xcom_three_ways": EXAMPLES / "xcom_three_ways.py",
    "xcom_semantics": EXAMPLES / "xcom_semantics.py",
    "bash_templates": EXAMPLES / "bash_templates.py",
}
LOGICAL_DATE = time.strftime("%Y-%m-%d", time.gmtime())
"""Today: the seed lesson starts its DAG yesterday, and Airflow runs no task before a DAG's start_date."""
THOUSAND_DAG_ID = "thousand_tasks"
LANES, LANE_LENGTH, FAN_IN = 40, 24, 38
"""1 + 40 * 24 + 38 + 1 = 1,000 tasks."""


@dataclass
class Outcome:
    """One tool's last run of one file: its run id, state, task states and XCom rows."""

    run_id: str
    state: str
    tasks: dict[str, str]
    rows: list[dict[str, Any]]


def thousand_source() -> str:
    """The 1,000-task DAG file: the same file for both tools (Airflow runs it as a script: `dag.test()`)."""
    return f'''"""{LANES} chains of {LANE_LENGTH} trivial tasks, one start, {FAN_IN} fan-ins, one total."""
from datetime import datetime

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, task


@task
def start():
    return 1


@task
def step(value):
    return value + 1


def pull_one(ti, upstream):
    return ti.xcom_pull(task_ids=upstream) + 1


def pull_many(ti, upstream):
    return sum(ti.xcom_pull(task_ids=upstream))


with DAG("{THOUSAND_DAG_ID}", start_date=datetime(2024, 1, 1), schedule=None) as dag:
    first = start()
    ends = []
    for lane in range({LANES}):
        value = first
        for i in range({LANE_LENGTH}):
            if i % 2 == 0:
                value = step.override(task_id=f"lane{{lane}}_step{{i}}")(value)
            else:
                upstream = value.operator.task_id
                pull = PythonOperator(
                    task_id=f"lane{{lane}}_pull{{i}}",
                    python_callable=pull_one,
                    op_kwargs={{"upstream": upstream}},
                )
                value >> pull
                value = pull.output
        ends.append(value)
    joins = []
    for j in range({FAN_IN}):
        pair = [ends[j % len(ends)], ends[(j + 1) % len(ends)]]
        upstream = [end.operator.task_id for end in pair]
        join = PythonOperator(
            task_id=f"join{{j}}", python_callable=pull_many, op_kwargs={{"upstream": upstream}}
        )
        pair >> join
        joins.append(join)
    total = PythonOperator(
        task_id="total", python_callable=pull_many, op_kwargs={{"upstream": [join.task_id for join in joins]}}
    )
    joins >> total

if __name__ == "__main__":
    dag.test()
'''


def airflow_copy(source: Path, folder: Path) -> Path:
    """The file as Airflow 3 accepts it: the two removed Airflow 1 idioms taken out, nothing else."""
    text = source.read_text(encoding="utf-8")
    text = re.sub(r"^\s*provide_context\s*=\s*True,\s*\n", "", text, flags=re.MULTILINE)
    text = re.sub(r",\s*provide_context\s*=\s*True\)", ")", text)
    text = text.replace("airflow.operators.python_operator", "airflow.operators.python")
    target = folder / source.name
    target.write_text(text, encoding="utf-8")
    return target


def timed(run: Callable[[], object]) -> float:
    """Seconds `run` took."""
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def paired(airflow: Callable[[], object], kdag: Callable[[], object], repeat: int) -> tuple[list[float], ...]:
    """Seconds of `repeat` runs of each, after one untimed run of each; the first of a round alternates."""
    airflow()
    kdag()
    airflow_seconds: list[float] = []
    kdag_seconds: list[float] = []
    for round_ in range(repeat):
        if round_ % 2 == 0:
            airflow_seconds.append(timed(airflow))
            kdag_seconds.append(timed(kdag))
        else:
            kdag_seconds.append(timed(kdag))
            airflow_seconds.append(timed(airflow))
    return airflow_seconds, kdag_seconds


class KdagRun:
    """`kdag run --local FILE -o json --logical-date DATE`; `outcome` is its last run's."""

    def __init__(self, file: Path) -> None:
        self.file = file
        self.result: dict[str, Any] = {}

    def __call__(self) -> None:
        command = [str(KDAG), "run", "--local", str(self.file), "-o", "json", "--logical-date", LOGICAL_DATE]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        self.result = json.loads(done.stdout)

    def outcome(self) -> Outcome:
        r = self.result
        return Outcome(r["run_id"], r["state"], r["tasks"], r["xcoms"])


def airflow_outcome(home: Path, dag_id: str) -> Outcome:
    """The newest run of the DAG in Airflow's database."""
    with sqlite3.connect(home / "airflow.db") as db:
        run_id, state = latest_run(db, dag_id)
        tasks, rows = run_results(db, dag_id, run_id)
    return Outcome(run_id, state, tasks, rows)


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


def same_rows(airflow: Outcome, kdag: Outcome) -> bool:
    return comparable(airflow.rows, airflow.run_id) == comparable(kdag.rows, kdag.run_id)


def summary(airflow_seconds: list[float], kdag_seconds: list[float]) -> dict[str, Any]:
    airflow_median = statistics.median(airflow_seconds)
    kdag_median = statistics.median(kdag_seconds)
    return {
        "airflow_seconds": airflow_seconds,
        "kdag_seconds": kdag_seconds,
        "airflow_median_seconds": airflow_median,
        "kdag_median_seconds": kdag_median,
        "ratio_of_medians": airflow_median / kdag_median,
    }


def lessons(venv: Path, home: Path, dags: Path, repeat: int) -> dict[str, Any]:
    """The lesson files, `airflow dags test` and `kdag run --local` in alternating pairs."""
    print(f"medians of {repeat} alternating pairs after a warm-up pair")
    print(f"{'DAG file':<22} {'airflow dags test':>18} {'kdag run --local':>17} {'ratio':>7}  same rows")
    report: dict[str, Any] = {}
    for dag_id, file in FILES.items():
        copy = airflow_copy(file, dags)
        kdag = KdagRun(file)
        airflow_seconds, kdag_seconds = paired(
            lambda dag_id=dag_id, copy=copy: airflow_dags_test(venv, home, dag_id, LOGICAL_DATE, copy),
            kdag,
            repeat,
        )
        airflow, ours = airflow_outcome(home, dag_id), kdag.outcome()
        failed_in_airflow = sorted(t for t, s in airflow.tasks.items() if s != "success")
        times = summary(airflow_seconds, kdag_seconds)
        airflow_median, kdag_median = times["airflow_median_seconds"], times["kdag_median_seconds"]
        print(
            f"{file.name:<22} {airflow_median:>16.2f} s {kdag_median:>15.3f} s"
            f" {times['ratio_of_medians']:>6.1f}x  {same_rows(airflow, ours)}"
            + (f"  (failed in Airflow: {', '.join(failed_in_airflow)})" if failed_in_airflow else "")
        )
        report[file.name] = {
            **times,
            "airflow": vars(airflow),
            "kdag": vars(ours),
            "same_rows": same_rows(airflow, ours),
        }
    return report


def thousand(venv: Path, home: Path, folder: Path, repeat: int) -> dict[str, Any]:
    """The 1,000-task DAG: `python FILE` (Airflow's `dag.test()`) and `kdag run --local FILE`, in pairs."""
    folder.mkdir()
    file = folder / "thousand_tasks.py"
    file.write_text(thousand_source(), encoding="utf-8")
    env = airflow_env(home, folder)

    def airflow() -> None:
        command = [str(venv / "bin" / "python"), str(file)]
        subprocess.run(
            command, env=env, cwd=home, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, check=True
        )

    kdag = KdagRun(file)
    airflow_seconds: list[float] = []
    kdag_seconds: list[float] = []
    for round_ in range(repeat):  # no warm-up: a run is minutes, its start-up a small part of it
        pair = ((airflow, airflow_seconds), (kdag, kdag_seconds))
        for run, seconds in pair if round_ % 2 == 0 else reversed(pair):
            seconds.append(timed(run))
    airflow_run, ours = airflow_outcome(home, THOUSAND_DAG_ID), kdag.outcome()
    same_states = airflow_run.tasks == ours.tasks
    times = summary(airflow_seconds, kdag_seconds)
    print(
        f"1,000 tasks: Airflow dag.test() {times['airflow_median_seconds']:.1f} s ({airflow_run.state}), "
        f"kdag run --local {times['kdag_median_seconds']:.1f} s ({ours.state}), "
        f"{times['ratio_of_medians']:.1f}x; same task states {same_states}, "
        f"same XCom rows {same_rows(airflow_run, ours)} ({len(ours.rows)} rows)"
    )
    return {
        **times,
        "same_states": same_states,
        "same_rows": same_rows(airflow_run, ours),
        "rows": len(ours.rows),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--airflow-venv", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=5, help="timed rounds per lesson file (0: none)")
    parser.add_argument("--thousand-repeat", type=int, default=1, help="runs of the 1,000-task DAG (0: none)")
    args = parser.parse_args()
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # the tools' caches, as installed: see the docstring
    venv = args.airflow_venv or airflow_venv()
    print(f"Apache Airflow {airflow_version(venv)}, logical date {LOGICAL_DATE}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="kdag-bench-") as scratch:
        home = Path(scratch) / "airflow-home"
        dags = Path(scratch) / "dags"
        home.mkdir()
        dags.mkdir()
        migrate(venv, home)
        report: dict[str, Any] = {}
        if args.repeat > 0:
            report["lessons"] = lessons(venv, home, dags, args.repeat)
        if args.thousand_repeat > 0:
            report["thousand_tasks"] = thousand(venv, home, Path(scratch) / "thousand", args.thousand_repeat)
        out = Path(scratch).parent / "kdag-bench-local-vs-airflow.json"
        out.write_text(json.dumps(report, indent=2), encoding="utf-8")
        print(f"details: {out}")


if __name__ == "__main__":
    main()
