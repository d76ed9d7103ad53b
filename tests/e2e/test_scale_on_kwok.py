"""A DAG of 1,000 tasks runs to the end: the pods go to KWOK's fake nodes (`tests/cluster/up --kwok`), which
complete them without a container, so the test measures kdag's own scheduling at a size a real node of this
machine could not hold. Every task runs once, the run Succeeds, and nothing a run stores grows with the DAG
beyond its task list: the run references the DAG's version (no copy of the spec), and its status stays small.
How long it takes and what it costs is `bench/scale.py`'s job, not this test's."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from collections.abc import Iterator

import pytest
from controller_support import ControllerProcess, kubectl
from e2e_helpers import apply, get, taskruns, trigger, wait_for_run
from kube_helpers import CLUSTER_SCRIPTS, CLUSTER_STATE_DIR

pytestmark = pytest.mark.cluster

TASKS = 1000
KWOK = {
    "nodeSelector": {"type": "kwok"},
    "tolerations": [{"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}],
}


@pytest.fixture(scope="module")
def kwok_nodes(kubeconfig: str) -> Iterator[list[str]]:
    """The fake nodes: on the local cluster started here (`up --kwok`) and stopped after (`--kwok=0`, by
    PID), so the tests after see one node; on another cluster they must exist already."""
    local = kubeconfig == str(CLUSTER_STATE_DIR / "admin.kubeconfig")
    if local:
        subprocess.run([str(CLUSTER_SCRIPTS / "up"), "--kwok"], check=True, capture_output=True, timeout=900)
    nodes = kubectl(kubeconfig, "get", "nodes", "-l", "type=kwok", "-o", "name").split()
    if not nodes:
        pytest.skip("no KWOK nodes on this cluster: run tests/cluster/up --kwok (the kind path has none)")
    try:
        yield nodes
    finally:
        if local:
            subprocess.run(
                [str(CLUSTER_SCRIPTS / "up"), "--kwok=0"], check=True, capture_output=True, timeout=900
            )


def test_a_dag_of_a_thousand_tasks_runs_each_task_once(
    kubeconfig: str, controller: ControllerProcess, e2e_namespace: str, kwok_nodes: list[str]
) -> None:
    workers = [{"id": f"w{i:04d}", "command": ["true"], "upstream": ["root"]} for i in range(TASKS - 2)]
    tasks = [
        {"id": "root", "command": ["true"]},
        *workers,
        # A join after every worker: a task with 998 upstream tasks (the CRD allows 10,000).
        {"id": "join", "command": ["true"], "upstream": [w["id"] for w in workers]},
    ]
    manifest = {
        "apiVersion": "kdag.dev/v1alpha1",
        "kind": "DAG",
        "metadata": {"name": "thousand"},
        "spec": {"defaults": KWOK, "tasks": tasks},
    }
    apply(kubeconfig, e2e_namespace, manifest)
    run_name = trigger(kubeconfig, e2e_namespace, "thousand")
    run = wait_for_run(kubeconfig, e2e_namespace, "thousand", timeout=900)
    assert run["status"]["phase"] == "Succeeded", run["status"].get("conditions")
    assert run["status"]["progress"] == f"{TASKS}/{TASKS}"

    found = taskruns(kubeconfig, e2e_namespace, run_name)
    assert len(found) == TASKS
    phases = Counter(tr["status"]["phase"] for tr in found.values())
    attempts = Counter(tr["status"]["attempts"] for tr in found.values())
    assert (phases, attempts) == (Counter({"Succeeded": TASKS}), Counter({1: TASKS}))
    pods = get(kubeconfig, e2e_namespace, "pods", "-l", f"kdag.dev/dagrun={run_name}")["items"]
    per_task = Counter(p["metadata"]["labels"]["kdag.dev/task"] for p in pods)
    assert per_task == Counter(dict.fromkeys(found, 1)), "a task ran more than once, or never"
    assert {p["spec"]["nodeName"] for p in pods} <= {n.removeprefix("node/") for n in kwok_nodes}

    # The join finished after every worker did.
    join_start = found["join"]["status"]["startTime"]
    assert all(found[w["id"]]["status"]["finishTime"] <= join_start for w in workers)
    # No copy of the 1,000-task spec in the run: it names the DAG's version, and its status stays small.
    assert "dag" not in run["status"] and run["status"]["dagVersion"]
    assert len(json.dumps(run["status"])) < 64_000
