"""ExternalTaskSensor and ExternalTaskMarker under `kdag run --local` (tests/local/external_dags/): the only
other runs are those the same invocation made, so a sensor sees a run a TriggerDagRunOperator ran here (its
tasks, its task group), a run only recorded as queued with nothing started, and otherwise nothing: it pokes
until its timeout (or skips with soft_fail), as Airflow's does when the other run never appears;
`check_existence` looks the DAG up in the DAG files. bench/airflow_examples.py compares Airflow's own
example (`standard/example_external_task_marker_dag.py`, its parent DAG) with Airflow's run."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from local_support import run_dag, termination

DAGS = Path(__file__).resolve().parent / "external_dags"
LINK = "_link_ExternalDagLink"


def run(dag_id: str, workdir: Path) -> tuple[dict[str, Any], str]:
    return run_dag(DAGS / "children.py", dag_id, workdir)


def test_a_sensor_sees_the_run_a_trigger_ran_here(tmp_path: Path) -> None:
    result, stderr = run("trigger_then_sense", tmp_path)
    assert (result["state"], result["tasks"]) == (
        "success",
        {"fire": "success", "sense": "success", "group": "success"},
    )
    rows = {(row["task_id"], row["key"]): row["value"] for row in result["xcoms"]}
    assert rows[("sense", LINK)] == f"/dags/parent/runs/{result['run_id']}"
    parent = rows[("fire", "trigger_run_id")]
    assert re.search(rf"kdag: triggered run {parent} of DAG 'parent' finished: success", stderr)
    # The marker ran as an EmptyOperator there, pushing only its link.
    marker = tmp_path / "triggered" / parent / "xcom" / "marker"
    assert (marker / LINK).read_text("utf-8") == f"/dags/trigger_then_sense/runs/{parent}"
    # The first attempt asked, the next read the answer.
    log = (tmp_path / "logs" / "sense.log").read_text("utf-8")
    assert log.count("--- attempt") == 2 and "kdag: asking about the runs of DAG 'parent'" in log


def test_a_run_only_recorded_is_queued_with_nothing_started(tmp_path: Path) -> None:
    result, _ = run("recorded_only", tmp_path)
    assert result["tasks"] == {"fire": "success", "queued": "success", "not_started": "skipped"}
    assert termination(tmp_path, "not_started")["skipped"].startswith("Sensor has timed out")


def test_with_no_run_the_sensor_pokes_until_its_timeout(tmp_path: Path) -> None:
    result, _ = run("alone", tmp_path)
    assert (result["state"], result["tasks"]) == ("failed", {"nothing": "failed", "missing": "failed"})
    timed_out = termination(tmp_path, "nothing")
    assert (
        timed_out["error"].startswith("AirflowSensorTimeout: Sensor has timed out") and not timed_out["retry"]
    )
    # It asked, then poked with the answer (nothing found) until the timeout.
    assert (tmp_path / "logs" / "nothing.log").read_text("utf-8").count("--- attempt") >= 2
    assert termination(tmp_path, "missing")["error"] == (
        "ExternalDagNotFoundError: The external DAG nowhere does not exist."
    )
