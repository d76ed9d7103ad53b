"""The DAGRun handler runs a reschedule-mode sensor against an in-memory API server whose "kubelet" runs each
pod's runner for real: a poke that is not done exits 5, the TaskRun is UpForReschedule with `nextAttemptAt`,
the run is woken by its timer at that time (nothing else reconciles it) and the next pod `{taskrun}-{n+1}` is
made then, with `KDAG_TASK_START` and `KDAG_RESCHEDULES`; reschedules use no retries, and a sensor's timeout
fails the task at once. The pod of an earlier poke is deleted once a newer attempt is recorded, so only the
last attempt's pod is left. tests/e2e/test_sensors_on_cluster.py is the real one."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from datetime import datetime
from pathlib import Path

import pytest
from fake_api import FakeApi, dagrun_manifest, run_pod, runtime_over
from kdag import compile as compiler
from kdag import names
from kdag.handlers import dagruns
from kdag.handlers.pods import task_pod_changed
from kdag_runner import store

NS = "team"
RUN = "sensing-run"

DAG_FILE = """
from datetime import datetime

from airflow.providers.standard.sensors.python import PythonSensor
from airflow.sdk import DAG, PokeReturnValue, task


def third(**context):
    pokes = context["task_reschedule_count"] + 1
    return PokeReturnValue(pokes >= 3, {"pokes": pokes, "try": context["ti"].try_number})


with DAG("sensing", schedule=None, start_date=datetime(2026, 1, 1)):

    @task
    def after(found):
        return found["pokes"]

    wait = PythonSensor(task_id="wait", python_callable=third, mode="reschedule", poke_interval=1, retries=1)
    late = PythonSensor(
        task_id="late", python_callable=lambda: 0, mode="reschedule", poke_interval=1, timeout=1, retries=2
    )
    after(wait.output)
"""


def test_a_reschedule_sensor_is_woken_at_its_time_and_uses_no_retry(tmp_path: Path) -> None:
    dag_file = tmp_path / "sensing.py"
    dag_file.write_text(DAG_FILE)
    loaded = compiler.load(dag_file)
    cluster = FakeApi()
    runtime = runtime_over(cluster)
    key = (NS, RUN)
    phases_seen: dict[str, list[str]] = {"wait": [], "late": []}

    def note_phases() -> None:
        for task_id, seen in phases_seen.items():
            if ("TaskRun", names.taskrun_name(RUN, task_id)) in cluster.objects:
                phase = cluster.taskrun(RUN, task_id).get("status", {}).get("phase", "")
                if not seen or seen[-1] != phase:
                    seen.append(phase)

    async def main() -> None:
        await cluster.create(compiler.dag_manifest(loaded.name, loaded.spec), NS)
        await cluster.create(dagrun_manifest(RUN, loaded.name), NS)
        await dagruns.request_reconcile(runtime, key)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            note_phases()
            status = cluster.objects[("DAGRun", RUN)].get("status") or {}
            if status.get("phase") in ("Succeeded", "Failed"):
                break
            fresh = cluster.unstarted_pods()
            for pod in fresh:
                await asyncio.to_thread(run_pod, cluster, pod, tmp_path / "pods", dag_file)
            if fresh:
                # What the pod watch does when a pod finishes; the reschedules' times only wake the timer.
                await dagruns.request_reconcile(runtime, key)
            await asyncio.sleep(0.05)
        state = runtime.runs.get(key)
        if state is not None and state.wake is not None:
            state.wake.cancel()
        await asyncio.gather(*runtime.background, return_exceptions=True)

    asyncio.run(main())
    run = cluster.objects[("DAGRun", RUN)]["status"]
    assert run["phase"] == "Failed", run  # `late` timed out
    assert run["tasks"] == {"wait": "Succeeded", "after": "Succeeded", "late": "Failed"}

    # wait: three pods, two reschedules, no retry; each next pod made no earlier than the time reported.
    wait = cluster.taskrun(RUN, "wait")["status"]
    assert (wait["phase"], wait["attempts"], wait["reschedules"], wait["exitCode"]) == ("Succeeded", 3, 2, 0)
    assert phases_seen["wait"][:2] == ["Running", "UpForReschedule"]
    assert "Retrying" not in phases_seen["wait"]
    pods = cluster.pods_of("wait", deleted=True)
    assert [p["metadata"]["name"] for p in pods] == [cluster.pod_name(RUN, "wait", n) for n in (1, 2, 3)]
    for earlier, later in itertools.pairwise(pods):
        terminated = earlier["status"]["containerStatuses"][0]["state"]["terminated"]
        assert terminated["exitCode"] == 5
        due = datetime.fromisoformat(json.loads(terminated["message"])["reschedule"])
        assert cluster.created_at[("Pod", later["metadata"]["name"])] >= due
        # An earlier poke's pod goes once the next attempt is recorded, not before: `kdag logs` reads it.
        assert (
            cluster.deleted_at[("Pod", earlier["metadata"]["name"])]
            >= cluster.created_at[("Pod", later["metadata"]["name"])]
        )
    assert [p["metadata"]["name"] for p in cluster.pods_of("wait")] == [cluster.pod_name(RUN, "wait", 3)]
    envs = [{e["name"]: e.get("value") for e in p["spec"]["containers"][0]["env"]} for p in pods]
    assert [e.get("KDAG_RESCHEDULES") for e in envs] == [None, "1", "2"]
    assert {e["KDAG_TASK_START"] for e in envs} == {cluster.taskrun(RUN, "wait")["status"]["startTime"]}
    xcoms = store.decode(cluster.objects[("ConfigMap", names.xcom_configmap_name(RUN, "wait"))]["data"])
    assert xcoms == {"return_value": {"pokes": 3, "try": 1}}
    after = store.decode(cluster.objects[("ConfigMap", names.xcom_configmap_name(RUN, "after"))]["data"])
    assert after == {"return_value": 3}
    rescheduled = [e for e in cluster.events if e["reason"] == "Rescheduled"]
    assert len(rescheduled) >= 3  # two of wait's, one or more of late's
    assert rescheduled[0]["type"] == "Normal"

    # late: its timeout (1 s from its first attempt) fails it at once, its retries unused.
    late = cluster.taskrun(RUN, "late")["status"]
    assert late["phase"] == "Failed" and late["attempts"] >= 2
    assert late["reschedules"] == late["attempts"] - 1
    # Its pokes' pods went; the pod of the attempt that failed stays.
    assert [p["metadata"]["name"] for p in cluster.pods_of("late")] == [late["podName"]]
    assert late["message"].startswith("AirflowSensorTimeout: Sensor has timed out")
    assert "Retrying" not in phases_seen["late"]


def test_the_deletion_of_a_finished_pokes_pod_wakes_no_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """The controller deletes earlier pokes' pods itself; their DELETED events are no news (a pod deleted
    before it finished is: a failed attempt)."""
    requested: list[tuple[str, str]] = []

    async def record(memo: object, key: tuple[str, str]) -> None:
        requested.append(key)

    monkeypatch.setattr("kdag.handlers.pods.request_reconcile", record)
    name = names.pod_name(RUN, "wait", 1, run_uid="8f14e45f-ceea-467f-a0e6-0123456789ab")
    poke = {"xcomKeys": [], "bytes": 2, "reschedule": "2026-11-21T00:00:05Z"}
    pod = {
        "metadata": {"name": name, "labels": {names.DAGRUN_LABEL: RUN, names.TASK_LABEL: "wait"}},
        "spec": {"containers": [{"name": "task", "env": [{"name": "KDAG_RUN_ID", "value": RUN}]}]},
        "status": {
            "phase": "Failed",
            "containerStatuses": [
                {"name": "task", "state": {"terminated": {"exitCode": 5, "message": json.dumps(poke)}}}
            ],
        },
    }
    runtime = runtime_over(FakeApi())
    asyncio.run(task_pod_changed(body=pod, type="DELETED", namespace=NS, name=name, memo=runtime))
    assert requested == []
    unfinished = {**pod, "status": {"phase": "Running", "containerStatuses": [{"name": "task", "state": {}}]}}
    asyncio.run(task_pod_changed(body=unfinished, type="DELETED", namespace=NS, name=name, memo=runtime))
    assert requested == [(NS, RUN)]
