"""TriggerDagRunOperator under `kdag run --local` (tests/local/trigger_dags/): the DAG to trigger is found in
the DAG file's folder (or a `--dag-folder`), runs here to its end with `wait_for_completion`, else is only
recorded and printed; the task's XComs are Airflow 3.3's (`trigger_run_id`, `_link_TriggerDagRunLink`), a
run id taken by another task is Airflow's DagRunAlreadyExists (skip or fail), a missing DAG or a conf its
params refuse fails the task naming the DAG. bench/airflow_examples.py compares Airflow's own example
(`standard/example_trigger_controller_dag.py`) with Airflow's run."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from local_support import run_dag, termination

DAGS = Path(__file__).resolve().parent / "trigger_dags"
LINK = "_link_TriggerDagRunLink"


def run(dag_id: str, workdir: Path, *extra: str) -> tuple[dict[str, Any], str]:
    return run_dag(DAGS / "controllers.py", dag_id, workdir, *extra)


def rows(result: dict[str, Any]) -> dict[str, Any]:
    return {f"{row['task_id']}.{row['key']}": row["value"] for row in result["xcoms"]}


def error(workdir: Path, task_id: str) -> str:
    return str(termination(workdir, task_id)["error"])


def test_without_waiting_the_run_is_recorded_and_printed(tmp_path: Path) -> None:
    result, stderr = run("fire_and_forget", tmp_path)
    assert (result["state"], result["tasks"]) == ("success", {"fire": "success"})
    run_id = rows(result)["fire.trigger_run_id"]
    assert re.fullmatch(r"doubler-local-[a-z0-9]{5}", run_id)
    assert rows(result) == {"fire.trigger_run_id": run_id, f"fire.{LINK}": f"/dags/doubler/runs/{run_id}"}
    assert (
        f"kdag: task 'fire' triggered DAG 'doubler': run {run_id} recorded, not run (kdag run --local runs"
        " a triggered DAG only with wait_for_completion)"
    ) in stderr
    assert not (tmp_path / "triggered").exists()


def test_waiting_runs_the_triggered_dag_here_to_its_end(tmp_path: Path) -> None:
    result, stderr = run("fire_and_wait", tmp_path)
    assert (result["state"], result["tasks"]) == ("success", {"wait": "success"})
    assert rows(result)["wait.trigger_run_id"] == "doubler-20261121"  # the templated trigger_run_id
    assert "kdag: triggered run doubler-20261121 of DAG 'doubler' finished: success" in stderr
    pushed = tmp_path / "triggered" / "doubler-20261121" / "xcom" / "double" / "return_value"
    assert json.loads(pushed.read_text(encoding="utf-8")) == {"double": 10, "conf": {"n": 5}}
    # The first attempt asked, the second read the answer: two attempts, one try.
    log = (tmp_path / "logs" / "wait.log").read_text(encoding="utf-8")
    assert log.count("--- attempt") == 2 and "kdag: asking to trigger DAG 'doubler'" in log


def test_a_failed_triggered_run_fails_the_waiting_task(tmp_path: Path) -> None:
    result, _ = run("wait_for_a_failure", tmp_path)
    assert (result["state"], result["tasks"]) == ("failed", {"wait": "failed"})
    assert error(tmp_path, "wait") == "AirflowException: breaker failed with failed state failed"


def test_a_run_id_another_task_took_skips_or_fails(tmp_path: Path) -> None:
    result, _ = run("same_run_twice", tmp_path)
    assert result["tasks"] == {"first": "success", "skip": "skipped", "fail": "failed"}
    assert error(tmp_path, "fail") == (
        "AirflowFailException: A run already exists for Dag 'doubler' with run_id 'only-one'"
    )
    assert rows(result)["skip." + LINK] == "/dags/doubler/runs/only-one"
    assert "skip.trigger_run_id" not in rows(result)


def test_a_missing_dag_or_a_refused_conf_fails_the_task_naming_the_dag(tmp_path: Path) -> None:
    result, _ = run("missing_and_refused", tmp_path)
    assert result["tasks"] == {"missing": "failed", "refused": "failed"}
    assert error(tmp_path, "missing") == (
        f"AirflowException: DAG 'nowhere' not found: no DAG file in '{DAGS}' defines it"
    )
    assert error(tmp_path, "refused") == (
        "AirflowException: DAG 'doubler': param 'n': 'three' is not of type 'integer' (rule 'type')"
    )


def test_dag_folder_adds_where_the_dag_is_looked_up(tmp_path: Path) -> None:
    result, _ = run("far_away", tmp_path / "without")
    assert result["tasks"] == {"far": "failed"}
    result, stderr = run("far_away", tmp_path / "with", "--dag-folder", str(DAGS / "elsewhere"))
    assert result["tasks"] == {"far": "success"}
    assert re.search(
        r"kdag: triggered run far-target-local-[a-z0-9]{5} of DAG 'far_target' finished: success", stderr
    )
