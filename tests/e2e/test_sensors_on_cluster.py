"""A reschedule-mode sensor on the cluster: each poke is one pod (attempts 1, 2, 3), a poke that is
not done exits 5 with `{"reschedule": time}`, the TaskRun is UpForReschedule with `nextAttemptAt` and no pod
of the sensor is alive while it waits, the next pod is made at that time and no retry is used; the sensor is
done on its third poke and its XCom rows are `kdag run --local`'s. The pod of an earlier poke is deleted once
a newer attempt is recorded: the last poke's pod stays, for `kdag logs`."""

from __future__ import annotations

import itertools
import json
import subprocess
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from controller_support import ControllerProcess
from e2e_helpers import (
    KDAG,
    apply_dags,
    get,
    kdag_cli,
    kdag_json,
    pods,
    task_termination,
    taskruns,
    time_of,
    trigger,
    wait_for_run,
    write_file,
    xcoms,
)
from kdag import names
from kdag_runner import store

pytestmark = pytest.mark.cluster

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


def sensor_pods(kubeconfig: str, namespace: str, run: str) -> list[dict[str, Any]]:
    return [p for p in pods(kubeconfig, namespace, run) if p["metadata"]["labels"]["kdag.dev/task"] == "wait"]


def alive(pod: dict[str, Any]) -> bool:
    """A pod with a container that has not terminated (as the controller reads an attempt as finished)."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return not statuses or any("terminated" not in (entry.get("state") or {}) for entry in statuses)


def start_sensor_run(
    kubeconfig: str, namespace: str, tmp_path: Path
) -> tuple[Path, str, str, Callable[[int], str]]:
    """The sensor DAG applied and triggered: its file, its name, the run's name, and the name of the pod
    of each poke (by attempt)."""
    path = write_file(tmp_path / "sensor_on_cluster.py", DAG_FILE)
    (loaded,) = apply_dags(kubeconfig, namespace, path, "sensor_on_cluster")
    run = trigger(kubeconfig, namespace, loaded.name)
    uid = get(kubeconfig, namespace, "dagrun", run)["metadata"]["uid"]

    def poke(attempt: int) -> str:
        return names.pod_name(run, "wait", attempt, run_uid=uid)

    return path, loaded.name, run, poke


def test_a_reschedule_sensor_pokes_in_three_pods_and_holds_none_while_waiting(
    kubeconfig: str, controller: ControllerProcess, e2e_namespace: str, tmp_path: Path
) -> None:
    path, dag, run, poke = start_sensor_run(kubeconfig, e2e_namespace, tmp_path)

    # While the run goes on: whenever the sensor is UpForReschedule, none of its pods is alive.
    waits_seen = 0
    states_seen: set[str] = set()
    # Each pod as last seen: the controller deletes an earlier poke's pod once a newer one is recorded.
    seen_pods: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        status = get(kubeconfig, e2e_namespace, "dagrun", run).get("status") or {}
        if status.get("phase") in ("Succeeded", "Failed"):
            break
        tr = taskruns(kubeconfig, e2e_namespace, run).get("wait")
        current = sensor_pods(kubeconfig, e2e_namespace, run)
        seen_pods.update({p["metadata"]["name"]: p for p in current})
        if tr is not None and (tr.get("status") or {}).get("phase") == "UpForReschedule":
            # A pod of the next attempt may exist only once it is due (the status then says Running next).
            due = time_of(tr["status"]["nextAttemptAt"])
            early = [p for p in current if alive(p) and time_of(p["metadata"]["creationTimestamp"]) < due]
            assert early == [], [p["metadata"]["name"] for p in early]
            waits_seen += 1
            states_seen.add(kdag_cli(kubeconfig, e2e_namespace, "xcom", run)["tasks"].get("wait", ""))
        time.sleep(0.5)
    assert waits_seen > 0, "never saw the sensor up for reschedule"
    assert "up_for_reschedule" in states_seen

    done = wait_for_run(kubeconfig, e2e_namespace, dag, timeout=60)
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
    assert sensor["podName"] == poke(3)

    # Three pods, attempts 1..3: the first two exited 5 reporting when to poke again, and the next pod was
    # made no earlier than that (the first two as last seen before they were deleted).
    seen_pods.update({p["metadata"]["name"]: p for p in sensor_pods(kubeconfig, e2e_namespace, run)})
    made = sorted(seen_pods.values(), key=lambda p: p["metadata"]["name"])
    assert [p["metadata"]["name"] for p in made] == [poke(n) for n in (1, 2, 3)]
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
        json.dumps(r, sort_keys=True) for r in kdag_cli(kubeconfig, e2e_namespace, "xcom", run)["xcoms"]
    )
    local_result = kdag_json("run", "--local", str(path))
    assert local_result["state"] == "success"
    local_rows = sorted(json.dumps(r, sort_keys=True) for r in local_result["xcoms"])
    assert [r for r in cluster_rows if '"__' not in r] == [r for r in local_rows if '"__' not in r]
    assert json.dumps({"key": "return_value", "task_id": "after", "value": 30}, sort_keys=True) in local_rows


def test_only_the_last_pokes_pod_is_kept_and_kdag_logs_reads_it(
    kubeconfig: str, controller: ControllerProcess, e2e_namespace: str, tmp_path: Path
) -> None:
    """A poke's pod is deleted once a newer attempt of the sensor is recorded: while the sensor waits its
    last poke's pod is there (`podName`, what `kdag logs` reads), never more than that one and the poke
    under way exist, and after the run only the last attempt's pod is left."""
    _, dag, run, poke = start_sensor_run(kubeconfig, e2e_namespace, tmp_path)
    logs = [KDAG, "logs", run, "wait", "-n", e2e_namespace, "--kubeconfig", kubeconfig]

    most_alive = 0
    waiting_logs: list[str] = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        status = get(kubeconfig, e2e_namespace, "dagrun", run).get("status") or {}
        if status.get("phase") in ("Succeeded", "Failed"):
            break
        current = [
            p
            for p in sensor_pods(kubeconfig, e2e_namespace, run)
            if not p["metadata"].get("deletionTimestamp")
        ]
        most_alive = max(most_alive, len(current))
        tr = (taskruns(kubeconfig, e2e_namespace, run).get("wait") or {}).get("status") or {}
        waits = tr.get("phase") == "UpForReschedule"
        if waits and time_of(tr["nextAttemptAt"]).timestamp() - time.time() > 2 and len(waiting_logs) < 2:
            # The poke just recorded keeps its pod: the log of the wait is that poke's (read well before
            # the next poke starts, which `podName` then names).
            shown = subprocess.run(logs, capture_output=True, text=True, timeout=60, check=False)
            assert shown.returncode == 0, shown.stderr
            waiting_logs.append(shown.stdout)
        time.sleep(0.5)
    assert waiting_logs, "never saw the sensor up for reschedule"
    assert all("kdag: rescheduling task: the next attempt starts at" in text for text in waiting_logs)
    assert most_alive <= 2  # the last finished poke and the one under way, at most

    done = wait_for_run(kubeconfig, e2e_namespace, dag, timeout=60)
    assert done["status"]["phase"] == "Succeeded", done["status"]
    sensor = taskruns(kubeconfig, e2e_namespace, run)["wait"]["status"]
    assert (sensor["attempts"], sensor["reschedules"], sensor["podName"]) == (3, 2, poke(3))

    def left() -> list[str]:
        return sorted(p["metadata"]["name"] for p in sensor_pods(kubeconfig, e2e_namespace, run))

    deadline = time.monotonic() + 60
    while left() != [poke(3)] and time.monotonic() < deadline:
        time.sleep(0.5)  # pods being deleted are listed until the kubelet lets them go
    assert left() == [poke(3)]
    shown = subprocess.run(logs, capture_output=True, text=True, timeout=60, check=True)
    assert "rescheduling task" not in shown.stdout  # the third poke's log: it was done
