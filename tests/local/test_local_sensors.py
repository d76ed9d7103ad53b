"""`kdag run --local` on sensors gives the task states and XCom rows Apache Airflow 3.3.2 gave: PythonSensor
in poke mode done at its third poke (its PokeReturnValue the XCom), `@task.sensor` and PythonSensor in
reschedule mode done at their third attempt, a timeout that fails without a retry, `soft_fail` skipping, and
the time sensors (`sensor_dags/sensors.py`; Airflow's results in `sensor_dags/airflow_3_3_2.json`, recorded
once as it says). A rescheduled attempt is re-run after the time its report names, and is no try."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from local_support import kdag, run_local_json

DAGS = Path(__file__).resolve().parent / "sensor_dags"
SENSORS = DAGS / "sensors.py"
AIRFLOW: dict[str, Any] = json.loads((DAGS / "airflow_3_3_2.json").read_text(encoding="utf-8"))


def comparable(rows: list[dict[str, Any]]) -> list[str]:
    """XCom rows under user keys, sorted (Airflow's come in timestamp order)."""
    return sorted(json.dumps(row, sort_keys=True) for row in rows if not row["key"].startswith("__"))


def attempts(log: Path) -> int:
    return len(re.findall(r"^--- attempt \d+$", log.read_text(encoding="utf-8"), re.MULTILINE))


@pytest.mark.parametrize("dag_id", ["sensor_poke", "sensor_reschedule", "sensor_timeout", "sensor_soft_fail"])
def test_states_and_rows_match_airflow(dag_id: str, tmp_path: Path) -> None:
    expected = AIRFLOW[dag_id]
    result = run_local_json(SENSORS, "--dag-id", dag_id, "--workdir", str(tmp_path))
    assert result["state"] == expected["state"]
    assert result["tasks"] == expected["tasks"]
    assert comparable(result["xcoms"]) == comparable(expected["xcoms"])


def test_a_timed_out_sensor_is_not_retried(tmp_path: Path) -> None:
    run_local_json(SENSORS, "--dag-id", "sensor_timeout", "--workdir", str(tmp_path))
    logs = tmp_path / "logs"
    assert attempts(logs / "waits.log") == 1  # retries=2, yet no retry: as Airflow
    report = json.loads((logs / "waits.termination").read_text())
    assert report["retry"] is False
    assert report["error"].startswith("AirflowSensorTimeout: Sensor has timed out; run duration of ")
    assert report["error"].endswith("seconds exceeds the specified timeout of 1.0.")
    # In reschedule mode the timeout counts from the first attempt (which cannot time out): a later one does.
    assert attempts(logs / "rescheduled.log") >= 2
    assert json.loads((logs / "rescheduled.termination").read_text())["retry"] is False


def test_time_sensors_wait_for_their_targets(tmp_path: Path) -> None:
    """Run a few seconds before the run's logical date: TimeDeltaSensor (data_interval_end + delta) and
    DateTimeSensor (`{{ data_interval_end }}`) reschedule until then; the Async ones reschedule once, at the
    target, and end with no XCom, as Airflow's execute_complete; one whose target passed returns True."""
    expected = AIRFLOW["time_sensors"]
    logical = (datetime.now(UTC) + timedelta(seconds=5)).replace(microsecond=0)
    done = kdag(
        "run", "--local", str(SENSORS), "--dag-id", "time_sensors", "-o", "json",
        "--logical-date", logical.isoformat(), "--workdir", str(tmp_path),
    )  # fmt: skip
    result = done.json()
    assert result["state"] == expected["state"]
    assert result["tasks"] == expected["tasks"]
    assert comparable(result["xcoms"]) == comparable(expected["xcoms"])
    logs = tmp_path / "logs"
    assert attempts(logs / "delta_async.log") == 2  # one reschedule, at the target
    assert attempts(logs / "delta_passed.log") == 1
    assert attempts(logs / "at_async.log") == 1
    assert attempts(logs / "delta.log") >= 2
    assert attempts(logs / "at.log") >= 2
    finished = datetime.fromisoformat(
        re.findall(r"^\[(\S+ \S+)\]", (logs / "delta.log").read_text(), re.MULTILINE)[-1].replace(",", ".")
    ).replace(tzinfo=UTC)
    assert finished > logical + timedelta(seconds=2)  # delta=2 s past data_interval_end


def test_a_reschedule_is_reported_then_run_again_after_the_reported_time(tmp_path: Path) -> None:
    """The task is up_for_reschedule between its attempts (no process runs), each attempt starts after the
    time the previous one's report named, and the reschedules are no tries."""
    from kdag import compile as compiler
    from kdag.local.run import LocalDag, TaskReport, run_local

    loaded = compiler.load(SENSORS, dag_id="sensor_reschedule")
    seen: list[tuple[str, str, int]] = []

    def changed(report: TaskReport) -> None:
        seen.append((report.task_id, report.state, report.attempts))

    result = run_local(
        LocalDag(loaded.name, loaded.spec, loaded.python_file), tmp_path / "work", on_change=changed
    )
    assert result.state == "success"
    ready = [(state, n) for tid, state, n in seen if tid == "ready"]
    assert ready == [
        ("running", 1),
        ("up_for_reschedule", 1),
        ("running", 2),
        ("up_for_reschedule", 2),
        ("running", 3),
        ("success", 3),
    ]
    assert result.tasks["ready"].exit_code == 0
    logs = tmp_path / "work" / "logs"
    for sensor in ("ready", "plain"):
        assert attempts(logs / f"{sensor}.log") == 3
        log = (logs / f"{sensor}.log").read_text(encoding="utf-8")
        times = re.findall(r"kdag: rescheduling task: the next attempt starts at (\S+)", log)
        assert len(times) == 2
        # Whole seconds, a poke_interval (1 s) or more apart.
        first, second = (datetime.fromisoformat(t) for t in times)
        assert second - first >= timedelta(seconds=1)
    report = json.loads((logs / "ready.termination").read_text())
    report.pop("xcomLengths", None)  # the lengths of pushed lists and dicts (dynamic task mapping)
    assert report == {"xcomKeys": ["return_value"], "bytes": report["bytes"]}  # a plain success at last
