"""The task state store on the cluster: the first try of a task stores a job id and its pod dies (no XCom
write, no report); the retry's pod, a new pod, reads the id from the instance's own ConfigMap (`.state`,
mounted by the kubelet) and reattaches. Each instance of a mapped task keeps its own state; an async task
resumes from its checkpoint. `.state` is no XCom row, and the rows are `kdag run --local`'s (the DAG file
is tests/local/dags/task_state_store.py, which tests/local/test_local_state_store.py runs too)."""

from __future__ import annotations

import json

import pytest
from controller_support import ControllerProcess
from e2e_helpers import (
    LOCAL_DAGS,
    apply_dags,
    get,
    kdag_cli,
    kdag_json,
    pods,
    task_termination,
    taskruns,
    trigger,
    user_rows,
    wait_for_run,
)
from kdag import names
from kdag_runner import store

pytestmark = pytest.mark.cluster


def test_a_retry_pod_reads_the_state_its_dead_first_try_stored(
    kubeconfig: str, controller: ControllerProcess, e2e_namespace: str
) -> None:
    path = LOCAL_DAGS / "task_state_store.py"
    (loaded,) = apply_dags(kubeconfig, e2e_namespace, path, "task_state_store")
    run = trigger(kubeconfig, e2e_namespace, loaded.name)

    done = wait_for_run(kubeconfig, e2e_namespace, loaded.name, timeout=300)
    assert done["status"]["phase"] == "Succeeded", done["status"]
    assert done["status"]["tasks"] == {
        "run_job": "Succeeded",
        "after": "Succeeded",
        "part": "Succeeded",
        "pages": "Succeeded",
        "tidy": "Succeeded",
    }
    trs = taskruns(kubeconfig, e2e_namespace, run)
    assert trs["run_job"]["status"]["attempts"] == 2
    assert ".state" not in trs["run_job"]["status"]["xcomKeys"]

    # Two pods: the first died after storing the job id; only the second mounts the instance's `.state`.
    all_pods = {p["metadata"]["name"]: p for p in pods(kubeconfig, e2e_namespace, run)}
    first = all_pods[names.pod_name(run, "run_job", 1, run_uid=done["metadata"]["uid"])]
    second = all_pods[names.pod_name(run, "run_job", 2, run_uid=done["metadata"]["uid"])]
    assert task_termination(first)["exitCode"] == 1
    assert all(v["name"] != "state-in" for v in first["spec"]["volumes"])
    configmap = names.xcom_configmap_name(run, "run_job")
    volumes = {v["name"]: v for v in second["spec"]["volumes"]}
    assert {k: v for k, v in volumes["state-in"]["configMap"].items() if k != "defaultMode"} == {
        "name": configmap,
        "optional": True,
        "items": [{"key": ".state", "path": ".state"}],
    }
    env = {e["name"]: e.get("value") for e in second["spec"]["containers"][0]["env"]}
    assert env["KDAG_STATE_IN"] == "/kdag/state"
    assert task_termination(second)["exitCode"] == 0

    # The ConfigMap holds the retry's XComs and the state, each under its own field manager.
    stored = get(kubeconfig, e2e_namespace, "configmap", configmap, "--show-managed-fields")
    assert json.loads(stored["data"][".state"]) == {"job_id": "job-of-try-1"}
    assert store.decode(stored["data"]) == {
        "return_value": {"job_id": "job-of-try-1", "reattached_on_try": 2}
    }
    managers = {f["manager"] for f in stored["metadata"]["managedFields"]}
    assert {"kdag-runner", "kdag-runner-state"} <= managers

    # Each instance of the mapped task has its own state: instance 1 alone saw two tries.
    for index, tries in ((0, [1]), (1, [1, 2])):
        instance = get(kubeconfig, e2e_namespace, "configmap", names.xcom_configmap_name(run, "part", index))
        assert json.loads(instance["data"][".state"]) == {"tries": tries}

    # The XCom rows: no `.state` row; the async task resumed from its checkpoint; the local run's rows.
    result = kdag_cli(kubeconfig, e2e_namespace, "xcom", run)
    rows = {(r["task_id"], r.get("map_index", -1), r["key"]): r["value"] for r in result["xcoms"]}
    assert not [key for (_, _, key) in rows if key.startswith(".")]
    assert rows[("after", -1, "return_value")] == "job-of-try-1"
    assert rows[("part", 1, "return_value")] == {"n": 1, "tries": [1, 2]}
    assert rows[("pages", -1, "return_value")] == {"done": [0, 1, 2, 3], "fetched_on": [1, 1, 2, 2]}
    local_result = kdag_json("run", "--local", str(path))
    assert local_result["state"] == "success", local_result["tasks"]
    assert user_rows(result) == user_rows(local_result)
