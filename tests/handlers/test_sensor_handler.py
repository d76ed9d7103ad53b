"""The DAGRun handler runs a reschedule-mode sensor against an in-memory API server whose "kubelet" runs each
pod's runner for real: a poke that is not done exits 5, the TaskRun is UpForReschedule with `nextAttemptAt`,
the run is woken by its timer at that time (nothing else reconciles it) and the next pod `{taskrun}-{n+1}` is
made then, with `KDAG_TASK_START` and `KDAG_RESCHEDULES`; reschedules use no retries, and a sensor's timeout
fails the task at once. tests/e2e/test_sensors_on_cluster.py is the real one."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kdag import compile as compiler
from kdag import names
from kdag.handlers import dagruns
from kdag.handlers.runtime import Runtime
from kdag.kube import Kind, kind_of
from kdag.patches import apply_merge_patch
from kdag.settings import ControllerSettings
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


class FakeCluster:
    """The KubeApi calls the DAGRun handler makes, over objects kept in memory (Events recorded)."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.created_at: dict[str, datetime] = {}
        self.counter = itertools.count()

    async def get(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((kind.kind, name))

    async def list(
        self, kind: Kind, namespace: str, labels: dict[str, str] | None = None
    ) -> list[dict[str, Any]]:
        return [
            obj
            for (k, _), obj in sorted(self.objects.items())
            if k == kind.kind
            and all((obj["metadata"].get("labels") or {}).get(a) == b for a, b in (labels or {}).items())
        ]

    async def create(self, obj: dict[str, Any], namespace: str) -> dict[str, Any]:
        kind = kind_of(obj).kind
        stored = json.loads(json.dumps(obj))
        if kind == "Event":
            self.events.append(stored)
            return stored
        stored["metadata"].setdefault("namespace", namespace)
        stored["metadata"]["uid"] = str(uuid.uuid4())
        stored["metadata"]["resourceVersion"] = str(next(self.counter))
        stored["metadata"]["creationTimestamp"] = "2026-11-21T00:00:00Z"
        self.objects[(kind, obj["metadata"]["name"])] = stored
        self.created_at[obj["metadata"]["name"]] = datetime.now(UTC)
        return stored

    async def create_if_absent(self, obj: dict[str, Any], namespace: str) -> dict[str, Any] | None:
        if (kind_of(obj).kind, obj["metadata"]["name"]) in self.objects:
            return None
        return await self.create(obj, namespace)

    async def patch_status(
        self, kind: Kind, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        obj = self.objects[(kind.kind, name)]
        obj["status"] = apply_merge_patch(obj.get("status") or {}, status)  # as the API server merges
        return obj

    async def delete(self, kind: Kind, namespace: str, name: str) -> bool:
        return self.objects.pop((kind.kind, name), None) is not None

    def taskrun(self, task_id: str) -> dict[str, Any]:
        return self.objects[("TaskRun", names.taskrun_name(RUN, task_id))]

    def pods_of(self, task_id: str) -> list[dict[str, Any]]:
        return [
            obj
            for (kind, _), obj in sorted(self.objects.items())
            if kind == "Pod" and obj["metadata"]["labels"][names.TASK_LABEL] == task_id
        ]


def run_pod(cluster: FakeCluster, pod: dict[str, Any], work: Path, dag_file: Path) -> None:
    """What the kubelet and the runner do with one pod: lay out its XCom volumes, run it, store its XComs."""
    name = pod["metadata"]["name"]
    root = work / name
    container = pod["spec"]["containers"][0]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KDAG_")}
    env.update({var["name"]: var["value"] for var in container["env"] if "value" in var})
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    for mount in container["volumeMounts"]:
        if mount["mountPath"].startswith("/kdag/xcom/in/"):
            target = root / "in" / mount["mountPath"].removeprefix("/kdag/xcom/in/")
            target.mkdir(parents=True)
            cm = cluster.objects.get(("ConfigMap", volumes[mount["name"]]["configMap"]["name"]))
            for key, value in ((cm or {}).get("data") or {}).items():
                (target / key).write_text(value)
    sink = root / "sink"
    env.update(
        KDAG_XCOM_IN=str(root / "in"),
        KDAG_XCOM_DIR=str(root / "out"),
        KDAG_XCOM_SINK=f"dir:{sink}",
        KDAG_TERMINATION_LOG=str(root / "termination"),
        KDAG_DAG_FILE=str(dag_file),
    )
    (root / "out").mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-m", "kdag_runner", "run"], env=env, capture_output=True, text=True
    )
    configmap = env["KDAG_XCOM_CONFIGMAP"]
    labels = {names.DAGRUN_LABEL: env["KDAG_RUN_ID"], names.TASK_LABEL: env["KDAG_TASK_ID"]}
    cluster.objects[("ConfigMap", configmap)] = {
        "metadata": {"name": configmap, "labels": labels},
        "data": store.read_task_dir(sink),
    }
    message = (root / "termination").read_text() if (root / "termination").exists() else done.stderr[-500:]
    state = {"terminated": {"exitCode": done.returncode, "message": message, "reason": "Completed"}}
    pod["status"] = {
        "phase": "Succeeded" if done.returncode == 0 else "Failed",
        "containerStatuses": [{"name": "task", "state": state}],
    }


def test_a_reschedule_sensor_is_woken_at_its_time_and_uses_no_retry(tmp_path: Path) -> None:
    dag_file = tmp_path / "sensing.py"
    dag_file.write_text(DAG_FILE)
    loaded = compiler.load(dag_file)
    cluster = FakeCluster()
    settings = ControllerSettings(runner_image="localhost/kdag-runner:dev")
    runtime = Runtime(settings=settings, api=cluster)  # type: ignore[arg-type]
    key = (NS, RUN)
    phases_seen: dict[str, list[str]] = {"wait": [], "late": []}

    def note_phases() -> None:
        for task_id, seen in phases_seen.items():
            if ("TaskRun", names.taskrun_name(RUN, task_id)) in cluster.objects:
                phase = cluster.taskrun(task_id).get("status", {}).get("phase", "")
                if not seen or seen[-1] != phase:
                    seen.append(phase)

    async def main() -> None:
        await cluster.create(compiler.dag_manifest(loaded.name, loaded.spec), NS)
        run = {
            "apiVersion": "kdag.dev/v1alpha1",
            "kind": "DAGRun",
            "metadata": {"name": RUN, "labels": names.labels(loaded.name, RUN)},
            "spec": {"dagRef": {"name": loaded.name}, "logicalDate": "2026-11-21T00:00:00Z"},
        }
        await cluster.create(run, NS)
        await dagruns.request_reconcile(runtime, key)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            note_phases()
            status = cluster.objects[("DAGRun", RUN)].get("status") or {}
            if status.get("phase") in ("Succeeded", "Failed"):
                break
            fresh = [
                obj
                for (kind, _), obj in list(cluster.objects.items())
                if kind == "Pod" and "status" not in obj
            ]
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
    wait = cluster.taskrun("wait")["status"]
    assert (wait["phase"], wait["attempts"], wait["reschedules"], wait["exitCode"]) == ("Succeeded", 3, 2, 0)
    assert phases_seen["wait"][:2] == ["Running", "UpForReschedule"]
    assert "Retrying" not in phases_seen["wait"]
    pods = cluster.pods_of("wait")
    assert [p["metadata"]["name"] for p in pods] == [names.pod_name(RUN, "wait", n) for n in (1, 2, 3)]
    for earlier, later in itertools.pairwise(pods):
        terminated = earlier["status"]["containerStatuses"][0]["state"]["terminated"]
        assert terminated["exitCode"] == 5
        due = datetime.fromisoformat(json.loads(terminated["message"])["reschedule"])
        assert cluster.created_at[later["metadata"]["name"]] >= due
    envs = [{e["name"]: e.get("value") for e in p["spec"]["containers"][0]["env"]} for p in pods]
    assert [e.get("KDAG_RESCHEDULES") for e in envs] == [None, "1", "2"]
    assert {e["KDAG_TASK_START"] for e in envs} == {cluster.taskrun("wait")["status"]["startTime"]}
    xcoms = store.decode(cluster.objects[("ConfigMap", names.xcom_configmap_name(RUN, "wait"))]["data"])
    assert xcoms == {"return_value": {"pokes": 3, "try": 1}}
    after = store.decode(cluster.objects[("ConfigMap", names.xcom_configmap_name(RUN, "after"))]["data"])
    assert after == {"return_value": 3}
    rescheduled = [e for e in cluster.events if e["reason"] == "Rescheduled"]
    assert len(rescheduled) >= 3  # two of wait's, one or more of late's
    assert rescheduled[0]["type"] == "Normal"

    # late: its timeout (1 s from its first attempt) fails it at once, its retries unused.
    late = cluster.taskrun("late")["status"]
    assert late["phase"] == "Failed" and late["attempts"] >= 2
    assert late["reschedules"] == late["attempts"] - 1
    assert late["message"].startswith("AirflowSensorTimeout: Sensor has timed out")
    assert "Retrying" not in phases_seen["late"]
