"""`kdag run --local` on setup and teardown tasks used as context managers (`with setup >> teardown:`,
`with teardown(setup()):`, nested scopes, `with t.as_teardown(setups=...):`) gives the task states, XCom
rows and dependencies Apache Airflow gives for the same file (tests/local/dags/setup_teardown_scopes.py).

Reference: `airflow dags test setup_teardown_scopes 2026-11-21 -f FILE` with Apache Airflow 3.3.2
(bench/airflow_reference.py's venv and database reading), recorded 2026-11-30; the edges and marks are
read from the DAG object Airflow built (`task.upstream_task_ids`, `is_setup`, `is_teardown`). kdag's edges
are those `kdag compile` writes into the DAG spec.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from local_support import kdag, run_local_json, user_rows

DAG_FILE = Path(__file__).resolve().parent / "dags" / "setup_teardown_scopes.py"

AIRFLOW_3_3_2_STATE = "failed"  # `broken` fails inside the bucket's scope; its teardown still runs
AIRFLOW_3_3_2_TASKS = {
    "after_failure": "upstream_failed",
    "broken": "failed",
    "close_session": "success",
    "create_bucket": "success",
    "delete_bucket": "success",
    "fill_bucket": "success",
    "inner_setup": "success",
    "inner_teardown": "success",
    "inner_work": "success",
    "locked_more": "success",
    "locked_work": "success",
    "open_session": "success",
    "outer_setup": "success",
    "outer_teardown": "success",
    "outer_work": "success",
    "query": "success",
    "release_lock": "success",
    "summarise": "success",
    "take_lock": "success",
}
AIRFLOW_3_3_2_ROWS: list[dict[str, Any]] = [
    {"task_id": "create_bucket", "key": "return_value", "value": "created"},
    {"task_id": "open_session", "key": "return_value", "value": "session-7"},
    {"task_id": "fill_bucket", "key": "return_value", "value": "filled"},
    {"task_id": "query", "key": "return_value", "value": "rows from session-7"},
    {"task_id": "locked_work", "key": "return_value", "value": "locked"},
    {"task_id": "summarise", "key": "return_value", "value": "summary of rows from session-7"},
    {"task_id": "close_session", "key": "return_value", "value": "closed session-7"},
    {"task_id": "delete_bucket", "key": "return_value", "value": "deleted"},
]
AIRFLOW_3_3_2_EDGES = {
    "after_failure": ["broken"],
    "broken": ["fill_bucket"],
    "close_session": ["open_session", "summarise"],
    "create_bucket": [],
    "delete_bucket": ["after_failure", "create_bucket"],
    "fill_bucket": ["create_bucket"],
    "inner_setup": ["outer_setup"],
    "inner_teardown": ["inner_setup", "inner_work"],
    "inner_work": ["inner_setup"],
    "locked_more": ["locked_work"],
    "locked_work": ["take_lock"],
    "open_session": [],
    "outer_setup": [],
    "outer_teardown": ["inner_teardown", "outer_setup", "outer_work"],
    "outer_work": ["outer_setup"],
    "query": ["open_session"],
    "release_lock": ["locked_more", "take_lock"],
    "summarise": ["query"],
    "take_lock": [],
}
AIRFLOW_3_3_2_SETUPS = ["create_bucket", "inner_setup", "open_session", "outer_setup", "take_lock"]
AIRFLOW_3_3_2_TEARDOWNS = [
    "close_session",
    "delete_bucket",
    "inner_teardown",
    "outer_teardown",
    "release_lock",
]


def test_states_and_rows_match_airflow() -> None:
    result = run_local_json(DAG_FILE)
    assert result["state"] == AIRFLOW_3_3_2_STATE
    assert result["tasks"] == AIRFLOW_3_3_2_TASKS
    assert user_rows(result["xcoms"], result["run_id"]) == user_rows(AIRFLOW_3_3_2_ROWS, "<run_id>")


def test_compiled_dependencies_and_marks_match_airflow() -> None:
    done = kdag("compile", str(DAG_FILE))
    assert done.returncode == 0, done.stderr
    dag = next(doc for doc in yaml.safe_load_all(done.stdout) if doc and doc.get("kind") == "DAG")
    tasks: list[dict[str, Any]] = dag["spec"]["tasks"]
    assert {t["id"]: sorted(t.get("upstream", [])) for t in tasks} == AIRFLOW_3_3_2_EDGES
    assert sorted(t["id"] for t in tasks if t.get("setup")) == AIRFLOW_3_3_2_SETUPS
    assert sorted(t["id"] for t in tasks if t.get("teardown")) == AIRFLOW_3_3_2_TEARDOWNS
