"""Runs whose run and task names read alike run side by side in one namespace, each with its own TaskRuns,
pods and XComs, and each task's pod writes its own XCom ConfigMap only.

Run `a` with task `b-c` and run `a-b` with task `c`; run `r` with task `202601010000-x` and run
`r-202601010000` (a scheduled run's name) with task `x`: each pair once shared its TaskRun, pod and XCom
ConfigMap names (`a-b-c`, `r-202601010000-x`), so the second run took the first's over.
tests/handlers/test_run_isolation.py is the same against the in-memory API server.
"""

from __future__ import annotations

import pytest
from controller_support import ControllerProcess
from e2e_helpers import apply, dag_manifest, get, python_task, taskruns, wait_for_run, xcoms
from kdag import manifests, names

pytestmark = pytest.mark.cluster

PUSH = (
    "import os\n\n"
    "def push(**_):\n"
    "    return ' '.join(os.environ[k] for k in ('KDAG_DAG_ID', 'KDAG_RUN_ID', 'KDAG_TASK_ID'))\n"
)
# (DAG, its task, the run made of it)
PAIRS = [
    ("first", "b-c", "a"),
    ("second", "c", "a-b"),
    ("early", "202601010000-x", "r"),
    ("later", "x", "r-202601010000"),
]


def pull(upstream: str) -> str:
    return f"def pull(ti, **_):\n    return ti.xcom_pull(task_ids={upstream!r})\n"


def test_runs_whose_names_read_alike_keep_their_own_tasks_and_xcoms(
    kubeconfig: str, controller: ControllerProcess, e2e_namespace: str
) -> None:
    for dag, task_id, _ in PAIRS:
        tasks = [
            python_task(task_id, PUSH, "push"),
            python_task("pull", pull(task_id), "pull", upstream=[task_id]),
        ]
        apply(kubeconfig, e2e_namespace, dag_manifest(dag, tasks))
    for dag, _, run in PAIRS:
        apply(kubeconfig, e2e_namespace, manifests.dagrun_manifest(dag, run))
    for dag, task_id, run in PAIRS:
        finished = wait_for_run(kubeconfig, e2e_namespace, dag, timeout=300)
        assert finished["metadata"]["name"] == run
        assert finished["status"]["phase"] == "Succeeded", finished["status"]
        uid = finished["metadata"]["uid"]
        expected = f"{dag} {run} {task_id}"
        assert xcoms(kubeconfig, e2e_namespace, run, task_id)["return_value"] == expected
        assert xcoms(kubeconfig, e2e_namespace, run, "pull")["return_value"] == expected
        own = taskruns(kubeconfig, e2e_namespace, run)
        assert set(own) == {task_id, "pull"}
        for task in (task_id, "pull"):
            taskrun = own[task]
            assert taskrun["metadata"]["name"] == names.taskrun_name(run, task)
            assert [o["uid"] for o in taskrun["metadata"]["ownerReferences"]] == [uid]
            assert taskrun["status"]["podName"] == names.pod_name(run, task, 1, run_uid=uid)
            pod = get(kubeconfig, e2e_namespace, "pod", taskrun["status"]["podName"])
            assert [o["uid"] for o in pod["metadata"]["ownerReferences"]] == [taskrun["metadata"]["uid"]]
            configmap = get(kubeconfig, e2e_namespace, "configmap", names.xcom_configmap_name(run, task))
            assert [o["uid"] for o in configmap["metadata"]["ownerReferences"]] == [uid]
    all_taskruns = get(kubeconfig, e2e_namespace, "taskruns")["items"]
    assert len(all_taskruns) == 2 * len(PAIRS)
