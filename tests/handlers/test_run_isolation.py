"""Runs whose names would have collided keep to their own TaskRuns, pods and XComs, and what the controller
finds under a name it derives is adopted only when the run (by uid) owns it; the in-memory API server and
"kubelet" of `fake_api` run each pod's runner for real. tests/e2e/test_isolation_on_cluster.py is the real
one.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from pathlib import Path
from typing import Any

from fake_api import FakeApi, dagrun_manifest, run_pod, runtime_over
from kdag import compile as compiler
from kdag import names
from kdag.api.models import TaskPhase
from kdag.handlers import dagruns
from kdag_runner import store

NS = "team"

DAG_FILE = """
from datetime import datetime

from airflow.sdk import DAG, task

for dag_id, task_id in (("first", "b-c"), ("second", "c"), ("early", "202601010000-x"), ("later", "x")):
    with DAG(dag_id, schedule=None, start_date=datetime(2026, 1, 1)):

        @task(task_id=task_id)
        def push(dag_run=None, ti=None):
            return f"{ti.dag_id} {dag_run.run_id} {ti.task_id}"

        @task
        def pull(ti=None):
            return ti.xcom_pull(task_ids=ti.task.upstream_task_ids.copy().pop())

        push() >> pull()
"""


def colliding_run_names() -> tuple[str, str]:
    """Two run names (under kdag's longest) whose `kdag.dev/dagrun` label values are equal: a cut plus 20
    bits of sha256 over names of more than 63 characters, so a collision takes about a thousand tries."""
    stem = "shared-" * 9
    seen: dict[str, str] = {}
    for n in itertools.count():
        name = f"{stem}{n}"
        value = names.label_value(name)
        if value in seen:
            return seen[value], name
        seen[value] = name
    raise AssertionError("unreachable")


async def drive(cluster: FakeApi, runtime: Any, work: Path, dag_file: Path, runs: list[str]) -> None:
    """Reconcile every run and run its pods until all of `runs` finished."""
    for _ in range(30):
        for run in runs:
            await dagruns._reconcile(runtime, (NS, run))
        phases = [(cluster.objects[("DAGRun", r)].get("status") or {}).get("phase") for r in runs]
        if all(p in ("Succeeded", "Failed") for p in phases):
            return
        for pod in cluster.unstarted_pods():
            run_pod(cluster, pod, work, dag_file)
    raise AssertionError(f"the runs did not finish: {dict(zip(runs, phases, strict=True))}")


def xcom(cluster: FakeApi, run: str, task_id: str) -> Any:
    data = cluster.objects[("ConfigMap", names.xcom_configmap_name(run, task_id))]["data"]
    return store.decode(data)["return_value"]


def run_pair(tmp_path: Path, runs: list[tuple[str, str]]) -> FakeApi:
    """Runs (name, DAG) of DAG_FILE's DAGs, driven to their end together."""
    dag_file = tmp_path / "dags.py"
    dag_file.write_text(DAG_FILE)
    cluster = FakeApi()
    runtime = runtime_over(cluster)

    async def main() -> None:
        for dag_id in sorted({dag for _, dag in runs}):
            loaded = compiler.load(dag_file, dag_id=dag_id)
            await cluster.create(compiler.dag_manifest(loaded.name, loaded.spec), NS)
        for run, dag in runs:
            await cluster.create(dagrun_manifest(run, dag), NS)
        await drive(cluster, runtime, tmp_path / "pods", dag_file, [run for run, _ in runs])
        await asyncio.gather(*runtime.background, return_exceptions=True)

    asyncio.run(main())
    return cluster


def test_runs_whose_run_and_task_names_read_alike_keep_their_own_xcoms(tmp_path: Path) -> None:
    """Run `a` with task `b-c` and run `a-b` with task `c`; a run `r` with task `202601010000-x` and the
    scheduled-looking run `r-202601010000` with task `x`: before, each pair shared a TaskRun, pod and
    XCom ConfigMap name, so the second run adopted the first's."""
    runs = [("a", "first"), ("a-b", "second"), ("r", "early"), ("r-202601010000", "later")]
    cluster = run_pair(tmp_path, runs)
    for (run, dag), task_id in zip(runs, ["b-c", "c", "202601010000-x", "x"], strict=True):
        assert cluster.objects[("DAGRun", run)]["status"]["phase"] == "Succeeded", run
        assert xcom(cluster, run, task_id) == f"{dag} {run} {task_id}"
        assert xcom(cluster, run, "pull") == f"{dag} {run} {task_id}"
        uid = cluster.run_uid(run)
        for task in (task_id, "pull"):
            owners = cluster.taskrun(run, task)["metadata"]["ownerReferences"]
            assert [o["uid"] for o in owners] == [uid]
    assert len(cluster.taskruns()) == 8


def test_runs_whose_label_values_collide_keep_their_own_taskruns_and_pods(tmp_path: Path) -> None:
    """Long run names are cut plus 5 hex digits in a label: the label narrows a listing, the owner's uid
    decides what is the run's (before, one run took over the other's TaskRuns and pods)."""
    one, other = colliding_run_names()
    assert names.label_value(one) == names.label_value(other)
    cluster = run_pair(tmp_path, [(one, "second"), (other, "second")])
    for run in (one, other):
        status = cluster.objects[("DAGRun", run)]["status"]
        assert (status["phase"], status["progress"]) == ("Succeeded", "2/2"), run
        assert xcom(cluster, run, "pull") == f"second {run} c"
        taskrun = cluster.taskrun(run, "c")
        assert [o["uid"] for o in taskrun["metadata"]["ownerReferences"]] == [cluster.run_uid(run)]
        assert taskrun["status"]["podName"] == cluster.pod_name(run, "c", 1)
    pods = [obj for (kind, _), obj in cluster.objects.items() if kind == "Pod"]
    assert len(pods) == 4  # one attempt of each of the two tasks of each run: none adopted, none doubled


def lone_run(tmp_path: Path) -> tuple[FakeApi, Any, str]:
    """A run of `second` (tasks `c`, then `pull`) that has not been reconciled yet."""
    dag_file = tmp_path / "dags.py"
    dag_file.write_text(DAG_FILE)
    cluster = FakeApi()
    loaded = compiler.load(dag_file, dag_id="second")

    async def setup() -> None:
        await cluster.create(compiler.dag_manifest(loaded.name, loaded.spec), NS)
        await cluster.create(dagrun_manifest("victim", "second"), NS)

    asyncio.run(setup())
    return cluster, runtime_over(cluster), "victim"


def foreign_owner(uid: str) -> list[dict[str, Any]]:
    return [{"apiVersion": "kdag.dev/v1alpha1", "kind": "DAGRun", "name": "victim", "uid": uid}]


def test_a_taskrun_of_the_name_owned_by_another_run_is_not_adopted(tmp_path: Path) -> None:
    cluster, runtime, run = lone_run(tmp_path)
    name = names.taskrun_name(run, "c")
    stranger = hashlib.sha256(b"an earlier run of the same name").hexdigest()
    planted = {
        "apiVersion": "kdag.dev/v1alpha1",
        "kind": "TaskRun",
        "metadata": {
            "name": name,
            "labels": names.labels("second", run, "c"),
            "ownerReferences": foreign_owner(stranger),
        },
        "spec": {"dagRun": run, "taskId": "c", "task": {"id": "c"}},
        "status": {"phase": "Succeeded"},
    }
    asyncio.run(cluster.create(planted, NS))

    async def reconcile() -> None:
        await dagruns._reconcile(runtime, (NS, run))
        await asyncio.gather(*runtime.background, return_exceptions=True)
        for state in runtime.runs.values():
            if state.wake is not None:
                state.wake.cancel()

    asyncio.run(reconcile())
    assert cluster.objects[("TaskRun", name)]["status"] == {"phase": "Succeeded"}  # not written to
    assert cluster.unstarted_pods() == []  # and not started for
    (event,) = [e for e in cluster.events if e["reason"] == "NameTaken"]
    assert event["type"] == "Warning"
    assert event["involvedObject"]["name"] == run
    assert f"TaskRun {name} exists and belongs to DAGRun victim (uid {stranger})" in event["message"]
    assert "kdag does not adopt it" in event["message"]
    status = cluster.objects[("DAGRun", run)]["status"]
    assert status["tasks"].get("pull") is None or status["tasks"]["pull"] == "Pending"


def test_a_pod_of_the_name_owned_by_something_else_fails_the_task(tmp_path: Path) -> None:
    cluster, runtime, run = lone_run(tmp_path)
    name = cluster.pod_name(run, "c", 1)
    planted = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {**names.labels("second", run, "c"), names.ATTEMPT_LABEL: "1"},
            "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "not-ours"}],
        },
        "spec": {"containers": [{"name": "task", "image": "busybox:1.35"}]},
    }
    asyncio.run(cluster.create(planted, NS))

    async def reconcile() -> None:
        await dagruns._reconcile(runtime, (NS, run))
        await asyncio.gather(*runtime.background, return_exceptions=True)

    asyncio.run(reconcile())
    taskrun = cluster.taskrun(run, "c")
    assert taskrun["status"]["phase"] == TaskPhase.FAILED.value
    message = taskrun["status"]["message"]
    assert message.startswith(f"pod {name} of attempt 1 exists and belongs to ConfigMap x (uid not-ours)")
    assert f"not to TaskRun {taskrun['metadata']['name']}" in message
    assert cluster.objects[("Pod", name)]["metadata"]["ownerReferences"][0]["uid"] == "not-ours"
    assert [e["reason"] for e in cluster.events if e["type"] == "Warning"] == ["PodNameTaken"]
