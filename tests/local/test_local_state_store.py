"""The task state store under `kdag run --local`: a retry reattaches to what its failed try left, each
instance of a mapped task keeps its own state, an async task checkpoints, and the state is no XCom row."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kdag_runner import store
from local_support import kdag

DAG_FILE = Path(__file__).resolve().parent / "dags" / "task_state_store.py"


def test_a_retrying_dag_reattaches_to_the_state_its_failed_tries_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    submitted = tmp_path / "submitted"
    submitted.mkdir()
    workdir = tmp_path / "work"
    monkeypatch.setenv("SUBMITTED_DIR", str(submitted))  # the tasks inherit the host's environment
    done = kdag("run", "--local", str(DAG_FILE), "-o", "json", "--workdir", str(workdir), timeout=180)
    result = json.loads(done.stdout)
    assert result["state"] == "success", done.stdout + done.stderr
    assert result["tasks"] == {
        "run_job": "success",
        "after": "success",
        "part[0]": "success",
        "part[1]": "success",
        "part[2]": "success",
        "pages": "success",
        "tidy": "success",
    }
    # One job submitted, by the first try; the retry reattached to it instead of submitting another.
    assert sorted(p.name for p in submitted.iterdir()) == ["job-of-try-1"]
    rows = {(r["task_id"], r.get("map_index", -1), r["key"]): r["value"] for r in result["xcoms"]}
    assert rows[("run_job", -1, "return_value")] == {"job_id": "job-of-try-1", "reattached_on_try": 2}
    assert rows[("after", -1, "return_value")] == "job-of-try-1"
    # Each instance of the mapped task has its own state: only instance 1 saw two tries.
    assert [rows[("part", i, "return_value")]["tries"] for i in range(3)] == [[1], [1, 2], [1]]
    # The async task resumed from its checkpoint: pages 0 and 1 fetched once, on the first try.
    assert rows[("pages", -1, "return_value")] == {"done": [0, 1, 2, 3], "fetched_on": [1, 1, 2, 2]}
    assert rows[("tidy", -1, "return_value")] == "cleared"
    # The state is never an XCom row, and stays after success (Airflow's clear_on_success is False).
    assert all(not key.startswith(".") for (_, _, key) in rows)
    xcom = workdir / "xcom"
    assert json.loads((xcom / "run_job" / store.STATE_KEY).read_text()) == {"job_id": "job-of-try-1"}
    assert json.loads((xcom / "part" / "1" / store.STATE_KEY).read_text()) == {"tries": [1, 2]}
    assert not (xcom / "tidy" / store.STATE_KEY).exists()
    log = (workdir / "logs" / "run_job.log").read_text()
    assert log.count("--- attempt") == 2 and "worker lost after submitting job-of-try-1" in log
