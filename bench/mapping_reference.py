"""Record what Apache Airflow does with the dynamic-task-mapping DAGs of
`tests/local/airflow_dags/mapping_*.py`.

For each file: `airflow dags test DAG 2026-11-21 -f FILE` in the venv of `airflow_reference.airflow_venv()`
(a fresh AIRFLOW_HOME and SQLite database), then the run's state, its task states (`task[i]` for a mapped
instance), XCom rows (`map_index` on rows of an instance) and each instance's `rendered_map_index`, read
from the database. The result is written as JSON for `tests/local/test_local_mapping.py`:

    .venv/bin/python bench/mapping_reference.py > tests/local/airflow_dags/mapping_airflow_3_3_2.json

Run once, by hand; the tests read the recorded file and never need Airflow."""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from airflow_reference import (
    airflow_dags_test,
    airflow_venv,
    airflow_version,
    latest_run,
    migrate,
    run_results,
)

TOP = Path(__file__).resolve().parent.parent
DAGS = TOP / "tests" / "local" / "airflow_dags"
LOGICAL_DATE = "2026-11-21"


def rendered_map_indexes(db: sqlite3.Connection, dag_id: str, run_id: str) -> dict[str, str]:
    """`task[i]` -> rendered_map_index of the mapped instances that have one."""
    found: dict[str, str] = {}
    for task_id, map_index, rendered in db.execute(
        "select task_id, map_index, rendered_map_index from task_instance where dag_id = ? and run_id = ?"
        " and map_index >= 0 and rendered_map_index is not null order by task_id, map_index",
        (dag_id, run_id),
    ):
        found[f"{task_id}[{map_index}]"] = str(rendered)
    return found


def record(venv: Path, file: Path, scratch: Path) -> dict[str, Any]:
    """Run one DAG file (its DAG id is the file's stem) under Airflow and read back what it did."""
    dag_id = file.stem
    home = scratch / dag_id
    home.mkdir()
    folder = home / "dags"  # the file alone: Airflow parses every file of its DAGs folder
    folder.mkdir()
    copy = folder / file.name
    shutil.copyfile(file, copy)
    migrate(venv, home)
    log = scratch / f"{dag_id}.log"
    started = time.monotonic()
    airflow_dags_test(venv, home, dag_id, LOGICAL_DATE, copy, log=log, timeout=1800)
    seconds = time.monotonic() - started
    with sqlite3.connect(home / "airflow.db") as db:
        run_id, state = latest_run(db, dag_id)
        tasks, rows = run_results(db, dag_id, run_id)
        rendered = rendered_map_indexes(db, dag_id, run_id)
    print(f"{dag_id}: {state} in {seconds:.1f} s (log {log})", file=sys.stderr)
    return {
        "file": file.name,
        "state": state,
        "tasks": tasks,
        "xcoms": [row for row in rows if row["key"] != "return_value" or row["value"] is not None],
        "rendered_map_index": rendered,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--airflow-venv", type=Path, help="default: airflow_reference.airflow_venv()")
    parser.add_argument("--only", help="record only the files whose name contains this text")
    parser.add_argument("--keep", type=Path, help="keep Airflow homes and logs in this directory")
    args = parser.parse_args()
    venv: Path = args.airflow_venv or airflow_venv()
    files = sorted(DAGS.glob("mapping_*.py"))
    if args.only:
        files = [f for f in files if args.only in f.name]
    result: dict[str, Any] = {
        "_recorded": f"Apache Airflow {airflow_version(venv)}: `airflow dags test DAG {LOGICAL_DATE} -f FILE`"
        " in the venv of bench/airflow_reference.py, read from its SQLite database by"
        f" bench/mapping_reference.py on {time.strftime('%Y-%m-%d', time.gmtime())}. Airflow's run ids are"
        " left out; a mapped instance is task[i] in tasks, and its XCom rows carry map_index."
    }
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        for file in files:
            result[file.stem] = record(venv, file, args.keep)
    else:
        with tempfile.TemporaryDirectory(prefix="kdag-mapping-") as scratch:
            for file in files:
                result[file.stem] = record(venv, file, Path(scratch))
    json.dump(result, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
