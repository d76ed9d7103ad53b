"""Record what Apache Airflow does with the Params DAGs of `tests/local/params_dags/` for a set of confs.

For each case: `airflow dags test DAG 2026-11-21 -f FILE -c CONF` in the venv of
`airflow_reference.airflow_venv()` (a fresh AIRFLOW_HOME and SQLite database), then the exit status, the
run's state, task states and XCom rows read from the database, and, when Airflow refused the run (no run in
the database) or a task failed, the distinct `...Error: ...` lines of its log. Written as JSON for
`tests/local/test_local_params.py`:

    .venv/bin/python bench/params_reference.py > tests/local/params_dags/airflow_3_3_2.json

Run once, by hand; the tests read the recorded file and never need Airflow.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from airflow_reference import airflow_dags_test, airflow_venv, airflow_version, migrate, run_results

TOP = Path(__file__).resolve().parent.parent
DAGS = TOP / "tests" / "local" / "params_dags"
LOGICAL_DATE = "2026-11-21"

CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "defaults": ("params_basic", {}),
    "conf_overrides": (
        "params_basic",
        {"count": 3, "mode": "slow", "tags": ["x", "y"], "maybe": 4, "undeclared": {"k": 1}},
    ),
    "count_below_minimum": ("params_basic", {"count": 0}),
    "count_not_integer": ("params_basic", {"count": "3"}),
    "mode_not_in_enum": ("params_basic", {"mode": "medium"}),
    "name_too_long": ("params_basic", {"name": "x" * 21}),
    "day_not_a_date": ("params_basic", {"day": "2026-13-01"}),
    "tags_item_not_string": ("params_basic", {"tags": [1]}),
    "ratio_not_a_multiple": ("params_basic", {"ratio": 0.3}),
    "task_param_below_minimum": ("params_basic", {"extra": 0.5}),
    "required_missing": ("params_required", {}),
    "required_given": ("params_required", {"who": "ada"}),
    "required_breaks_pattern": ("params_required", {"who": "Ada"}),
    "scheduled_without_default": ("params_scheduled", {}),
}

_ERROR_LINE = re.compile(r"\b(\w+(?:Error|Exception)): (.+)$")


def error_lines(log: Path) -> list[str]:
    """The distinct `SomethingError: message` lines of an Airflow log, in order."""
    found: list[str] = []
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        match = _ERROR_LINE.search(line)
        if match and (text := f"{match.group(1)}: {match.group(2).strip()}") not in found:
            found.append(text)
    return found


def record(venv: Path, case: str, dag_id: str, conf: dict[str, Any], scratch: Path) -> dict[str, Any]:
    """Run one case under Airflow and read back what it did."""
    home = scratch / case
    home.mkdir()
    folder = home / "dags"  # the file alone: Airflow parses every file of its DAGs folder
    folder.mkdir()
    copy = folder / f"{dag_id}.py"
    shutil.copyfile(DAGS / f"{dag_id}.py", copy)
    migrate(venv, home)
    log = scratch / f"{case}.log"
    started = time.monotonic()
    status = airflow_dags_test(venv, home, dag_id, LOGICAL_DATE, copy, log=log, timeout=900, conf=conf)
    seconds = time.monotonic() - started
    result: dict[str, Any] = {"dag": dag_id, "conf": conf, "exit_status": status}
    with sqlite3.connect(home / "airflow.db") as db:
        found = db.execute(
            "select run_id, state from dag_run where dag_id = ? order by id desc limit 1", (dag_id,)
        ).fetchone()
        if found is None:
            result["state"] = None
        else:
            run_id, state = str(found[0]), str(found[1])
            tasks, rows = run_results(db, dag_id, run_id)
            result.update(state=state, tasks=tasks, xcoms=rows)
    if result["state"] != "success":
        result["errors"] = error_lines(log)
    print(f"{case}: {result['state']} (exit {status}) in {seconds:.1f} s (log {log})", file=sys.stderr)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--airflow-venv", type=Path, help="default: airflow_reference.airflow_venv()")
    parser.add_argument("--only", help="record only the cases whose name contains this text")
    parser.add_argument("--keep", type=Path, help="keep Airflow homes and logs in this directory")
    args = parser.parse_args()
    venv: Path = args.airflow_venv or airflow_venv()
    cases = {name: case for name, case in CASES.items() if not args.only or args.only in name}
    result: dict[str, Any] = {
        "_recorded": f"Apache Airflow {airflow_version(venv)}: `airflow dags test DAG {LOGICAL_DATE} -f FILE"
        " -c CONF` in the venv of bench/airflow_reference.py, read from its SQLite database by"
        f" bench/params_reference.py on {time.strftime('%Y-%m-%d', time.gmtime())}. state null: Airflow"
        " made no run (it refused the conf, or the DAG file); errors: the distinct error lines of its log."
        " Airflow's run ids are left out."
    }
    scratch_root = args.keep or Path(tempfile.mkdtemp(prefix="kdag-params-"))
    scratch_root.mkdir(parents=True, exist_ok=True)
    try:
        for name, (dag_id, conf) in cases.items():
            result[name] = record(venv, name, dag_id, conf, scratch_root)
    finally:
        if not args.keep:
            shutil.rmtree(scratch_root, ignore_errors=True)
    json.dump(result, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
