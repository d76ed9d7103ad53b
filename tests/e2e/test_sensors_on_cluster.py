"""A reschedule-mode sensor on the cluster: each poke is one pod (`{taskrun}-1`, `-2`, `-3`), a poke that is
not done exits 5 with `{"reschedule": time}`, the TaskRun is UpForReschedule with `nextAttemptAt` and no pod
of the sensor is alive while it waits, the next pod is made at that time and no retry is used; the sensor is
done on its third poke and its XCom rows are `kdag run --local`'s."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from controller_support import ControllerProcess
from e2e_helpers import apply, get, pods, taskruns, time_of, trigger, wait_for_run, xcoms
from kdag import compile as compiler
from kdag import names
from kdag_runner import store

pytestmark = pytest.mark.cluster

KDAG = str(Path(sys.executable).parent / "kdag")
POKE_INTERVAL = 5

DAG_FILE = f"""
from datetime import datetime

from airflow.sdk import DAG, PokeReturnValue, task


@task.sensor(poke_interval={POKE_INTERVAL}, mode="reschedule", timeout=600, retries=1)
def wait(**context):
    pokes = context["task_reschedule_count"] + 1
    return PokeReturnValue(is_done=pokes >= 3, xcom_value={{"pokes": pokes, "try": context["ti"].try_number}})


@task
def after(found):
    return found["pokes"] * 10


with DAG("sensor_on_cluster", schedule=None, start_date=datetime(2026, 1, 1)):
    after(wait())
"""


def cli(kubeconfig: str, namespace: str, *args: str) -> dict[str, Any]:
    command = [KDAG, *args, "-o", "json", "-n", namespace, "--kubeconfig", kubeconfig]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    value: dict[str, Any] = json.loads(done.stdout)
    return value


def sensor_pods(kubeconfig: str, namespace: str, run: str) -> list[dict[str, Any]]:
    return [p for p in pods(kubeconfig, namespace, run) if p["metadata"]["labels"]["kdag.dev/task"] == "wait"]


def alive(pod: dict[str, Any]) -> bool:
    """A pod with a container that has not terminated (as the controller reads an attempt as finished)."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return not statuses or any("terminated" not in (entry.get("state") or {}) for entry in statuses)


def task_termination(pod: dict[str, Any]) -> dict[str, Any]:
    for entry in pod["status"]["containerStatuses"]:
        if entry["name"] == "task":
            terminated: dict[str, Any] = entry["state"]["terminated"]
            return terminated
    raise AssertionError(f"pod {pod['metadata']['name']} has no task container status")


def test_a_reschedule_sensor_pokes_in_three_pods_and_holds_none_while_waiting(
    kubeconfig: str, controller: ControllerProcess, e2e_namespace: str, tmp_path: Path
) -> None:
    path = tmp_path / "sensor_on_cluster.py"
    path.write_text(DAG_FILE)
    loaded = compiler.load(path)
    for manifest in loaded.manifests:
        apply(kubeconfig, e2e_namespace, manifest)
    run = trigger(kubeconfig, e2e_namespace, loaded.name)
    taskrun = names.taskrun_name(run, "wait")

    # While the run goes on: whenever the sensor is UpForReschedule, none of its pods is alive.
    waits_seen = 0
    states_seen: set[str] = set()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        status = get(kubeconfig, e2e_namespace, "dagrun", run).get("status") or {}
        if status.get("phase") in ("Succeeded", "Failed"):
            break
        tr = taskruns(kubeconfig, e2e_namespace, run).get("wait")
        if tr is not None and (tr.get("status") or {}).get("phase") == "UpForReschedule":
            current = sensor_pods(kubeconfig, e2e_namespace, run)
            # A pod of the next attempt may exist only once it is due (the status then says Running next).
            due = time_of(tr["status"]["nextAttemptAt"])
            early = [p for p in current if alive(p) and time_of(p["metadata"]["creationTimestamp"]) < due]
            assert early == [], [p["metadata"]["name"] for p in early]
            waits_seen += 1
            states_seen.add(cli(kubeconfig, e2e_namespace, "xcom", run)["tasks"].get("wait", ""))
        time.sleep(0.5)
    assert waits_seen > 0, "never saw the sensor up for reschedule"
    assert "up_for_reschedule" in states_seen

    done = wait_for_run(kubeconfig, e2e_namespace, loaded.name, timeout=60)
    assert done["status"]["phase"] == "Succeeded", done["status"]
    assert done["status"]["tasks"] == {"wait": "Succeeded", "after": "Succeeded"}

    # Three attempts, two of them reschedules: no retry used (retries=1 is left).
    sensor = taskruns(kubeconfig, e2e_namespace, run)["wait"]["status"]
    assert (sensor["phase"], sensor["attempts"], sensor["reschedules"], sensor["exitCode"]) == (
        "Succeeded",
        3,
        2,
        0,
    )
    assert sensor["podName"] == names.pod_name(run, "wait", 3)

    # Three pods, `{taskrun}-1..3`: the first two exited 5 reporting when to poke again, and the next pod was
    # made no earlier than that.
    made = sorted(sensor_pods(kubeconfig, e2e_namespace, run), key=lambda p: p["metadata"]["name"])
    assert [p["metadata"]["name"] for p in made] == [f"{taskrun}-{n}" for n in (1, 2, 3)]
    assert [p["metadata"]["labels"]["kdag.dev/attempt"] for p in made] == ["1", "2", "3"]
    for earlier, later in itertools.pairwise(made):
        ended = task_termination(earlier)
        assert ended["exitCode"] == 5
        report = json.loads(ended["message"])
        assert time_of(later["metadata"]["creationTimestamp"]) >= time_of(report["reschedule"])
        # The poke ran after the container started: the next one is poke_interval after that at least.
        assert time_of(report["reschedule"]) >= time_of(ended["startedAt"]) + timedelta(seconds=POKE_INTERVAL)
    assert task_termination(made[2])["exitCode"] == 0
    env = {e["name"]: e.get("value") for e in made[2]["spec"]["containers"][0]["env"]}
    assert env["KDAG_RESCHEDULES"] == "2"
    assert env["KDAG_TASK_START"] == taskruns(kubeconfig, e2e_namespace, run)["wait"]["status"]["startTime"]

    # The XCom rows are the local run's: the value of the third poke, its try number still 1.
    assert store.decode(xcoms(kubeconfig, e2e_namespace, run, "wait"))["return_value"] == {
        "pokes": 3,
        "try": 1,
    }
    cluster_rows = sorted(
        json.dumps(r, sort_keys=True) for r in cli(kubeconfig, e2e_namespace, "xcom", run)["xcoms"]
    )
    local = subprocess.run(
        [KDAG, "run", "--local", str(path), "-o", "json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    local_result = json.loads(local.stdout)
    assert local_result["state"] == "success"
    local_rows = sorted(json.dumps(r, sort_keys=True) for r in local_result["xcoms"])
    assert [r for r in cluster_rows if '"__' not in r] == [r for r in local_rows if '"__' not in r]
    assert json.dumps({"key": "return_value", "task_id": "after", "value": 30}, sort_keys=True) in local_rows
