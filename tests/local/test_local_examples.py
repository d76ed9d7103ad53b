"""`kdag run --local -o json` on the example DAG files gives the rows Apache Airflow gave for them."""

from __future__ import annotations

from pathlib import Path

import pytest
from local_support import (
    AIRFLOW_3_3_2_ROWS,
    AIRFLOW_3_3_2_TASKS,
    EXAMPLES,
    LOGICAL_DATE,
    kdag,
    run_local_json,
    user_rows,
)


@pytest.mark.parametrize("file_name", ["xcom_lesson.py", "xcom_semantics.py", "bash_templates.py"])
def test_rows_and_states_match_airflow(file_name: str) -> None:
    result = run_local_json(EXAMPLES / file_name)
    assert result["state"] == "success"
    assert result["tasks"] == AIRFLOW_3_3_2_TASKS[file_name]
    assert user_rows(result["xcoms"], result["run_id"]) == user_rows(
        AIRFLOW_3_3_2_ROWS[file_name], "<run_id>"
    )


def test_json_object_has_exactly_the_documented_fields() -> None:
    result = run_local_json(EXAMPLES / "xcom_lesson.py")
    assert set(result) == {"dag_id", "run_id", "state", "tasks", "task_instances", "logs", "xcoms"}
    assert set(result["task_instances"]) == set(result["tasks"])
    assert all(
        set(instance) == {"state", "attempts", "exit_code", "message", "log"}
        for instance in result["task_instances"].values()
    )
    assert result["dag_id"] == "etl_dag"
    assert result["run_id"].startswith("etl-dag-local-")
    assert all(set(row) == {"task_id", "key", "value"} for row in result["xcoms"])


def test_three_ways_lesson_runs_what_airflow_runs_and_the_two_kdag_methods(tmp_path: Path) -> None:
    """Section 1 gives Airflow's row; sections 2 and 3 (ti.context, ti.params) fail in Airflow, run here."""
    result = run_local_json(EXAMPLES / "xcom_three_ways.py", "--workdir", str(tmp_path))
    assert result["state"] == "success"
    assert set(result["tasks"].values()) == {"success"}
    airflow_tasks = AIRFLOW_3_3_2_TASKS["xcom_three_ways.py"]
    same_in_airflow = {tid for tid, state in airflow_tasks.items() if state == "success"}
    assert {tid for tid, state in result["tasks"].items() if tid in same_in_airflow} == same_in_airflow
    assert user_rows(result["xcoms"], result["run_id"]) == user_rows(
        AIRFLOW_3_3_2_ROWS["xcom_three_ways.py"], "<run_id>"
    )
    context_rows = [row for row in result["xcoms"] if row["key"] == "__context"]
    assert {
        "task_id": "set_context_task",
        "key": "__context",
        "value": {"value": "some value"},
    } in context_rows
    logs = tmp_path / "logs"
    assert "Value: some value" in (logs / "pull_task.log").read_text()
    assert "Value: some value" in (logs / "get_context_task.log").read_text()
    assert "Value: some value" in (logs / "use_value_task.log").read_text()


def test_run_params_override_task_and_dag_params() -> None:
    result = run_local_json(EXAMPLES / "xcom_semantics.py", "-p", "who=cli", "-p", "greeting=hi")
    consume = next(r for r in result["xcoms"] if r["task_id"] == "consume" and r["key"] == "return_value")
    assert consume["value"]["who"] == "cli"
    assert consume["value"]["greeting"] == "hi"


def test_text_output_shows_task_states_and_xcom_table() -> None:
    done = kdag("run", "--local", str(EXAMPLES / "xcom_lesson.py"), "--logical-date", LOGICAL_DATE)
    assert done.returncode == 0, done.stderr
    for text in ("goodbye_task", "success", "XComs", "execution_time", '"2026-11-21"', '["2026-11-21"]'):
        assert text in done.stdout


def test_run_without_local_is_a_usage_error() -> None:
    done = kdag("run", str(EXAMPLES / "xcom_lesson.py"))
    assert done.returncode == 2
    assert "--local" in done.stderr


def test_taskflow_dag_passes_return_values_through_arguments(tmp_path: Path) -> None:
    path = tmp_path / "taskflow.py"
    path.write_text(
        "from datetime import datetime\n"
        "from airflow.decorators import dag, task\n"
        "@dag(dag_id='taskflow_demo', start_date=datetime(2024, 1, 1), schedule=None)\n"
        "def taskflow_demo():\n"
        "    @task\n"
        "    def extract():\n"
        "        return {'a': 1, 'b': 2}\n"
        "    @task\n"
        "    def total(values):\n"
        "        return sum(values.values())\n"
        "    total(extract())\n"
        "taskflow_demo()\n"
    )
    result = run_local_json(path)
    assert result["tasks"] == {"extract": "success", "total": "success"}
    assert result["xcoms"] == [
        {"task_id": "extract", "key": "return_value", "value": {"a": 1, "b": 2}},
        {"task_id": "total", "key": "return_value", "value": 3},
    ]
