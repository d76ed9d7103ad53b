"""Helpers of the end-to-end tests: apply manifests, wait for runs, read XComs, pods and logs."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from controller_support import REPO, kubectl
from kdag import compile as compiler
from kdag import manifests, names

EXAMPLES = REPO / "examples"
LOCAL_DAGS = REPO / "tests" / "local" / "dags"
"""DAG files the local tests run too; an e2e test compares its run on the cluster with `kdag run --local`."""
KDAG = str(Path(sys.executable).parent / "kdag")
FINISHED = ("Succeeded", "Failed")


def load_example(name: str) -> dict[str, Any]:
    manifest: dict[str, Any] = yaml.safe_load((EXAMPLES / name).read_text())
    return manifest


def apply(kubeconfig: str, namespace: str, manifest: dict[str, Any]) -> str:
    return kubectl(kubeconfig, "apply", "-n", namespace, "-f", "-", stdin=json.dumps(manifest))


def apply_dags(kubeconfig: str, namespace: str, path: Path, *dag_ids: str) -> list[compiler.LoadedDag]:
    """The DAGs `dag_ids` of one DAG file, compiled and applied (their manifests), in that order."""
    loaded = [compiler.load(path, dag_id=dag_id) for dag_id in dag_ids]
    for manifest in (m for dag in loaded for m in dag.manifests):
        apply(kubeconfig, namespace, manifest)
    return loaded


def trigger(kubeconfig: str, namespace: str, dag: str, logical_date: datetime | None = None) -> str:
    """Start a run of an unscheduled DAG (as `kdag trigger` does), at `logical_date` if given; its name."""
    run_name = names.manual_run_name(dag)
    apply(kubeconfig, namespace, manifests.dagrun_manifest(dag, run_name, logical_date=logical_date))
    return run_name


def get(kubeconfig: str, namespace: str, *what: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(kubectl(kubeconfig, "get", "-n", namespace, *what, "-o", "json"))
    return value


def runs_of(kubeconfig: str, namespace: str, dag: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = get(kubeconfig, namespace, "dagruns", "-l", f"kdag.dev/dag={dag}")["items"]
    return items


def wait_for_run(kubeconfig: str, namespace: str, dag: str, timeout: float = 240) -> dict[str, Any]:
    """The DAG's only run once it has finished (Succeeded or Failed)."""
    deadline = time.monotonic() + timeout
    last: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        last = runs_of(kubeconfig, namespace, dag)
        if len(last) == 1 and (last[0].get("status") or {}).get("phase") in FINISHED:
            return last[0]
        time.sleep(0.5)
    raise AssertionError(
        f"DAG {dag} has no finished run after {timeout} s; runs: "
        + json.dumps([r.get("status", {}) | {"name": r["metadata"]["name"]} for r in last])[:4000]
        + "\n" + kubectl(kubeconfig, "get", "-n", namespace, "taskruns,pods", "-o", "wide", check=False)
    )


def wait_until(condition: Any, what: str, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def xcoms(kubeconfig: str, namespace: str, run: str, task_id: str) -> dict[str, str]:
    """The data of a task's XCom ConfigMap, read with kubectl."""
    configmap = names.xcom_configmap_name(run, task_id)
    data: dict[str, str] = get(kubeconfig, namespace, "configmap", configmap).get("data") or {}
    return data


def taskruns(kubeconfig: str, namespace: str, run: str) -> dict[str, dict[str, Any]]:
    items = get(kubeconfig, namespace, "taskruns", "-l", f"kdag.dev/dagrun={run}")["items"]
    return {tr["spec"]["taskId"]: tr for tr in items}


def pods(kubeconfig: str, namespace: str, run: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = get(kubeconfig, namespace, "pods", "-l", f"kdag.dev/dagrun={run}")["items"]
    return items


def pods_per_task(kubeconfig: str, namespace: str, run: str) -> Counter[str]:
    return Counter(p["metadata"]["labels"]["kdag.dev/task"] for p in pods(kubeconfig, namespace, run))


def task_log(kubeconfig: str, namespace: str, pod: str, tries: int = 5) -> str:
    """The `task` container's log; retried, since the API server reaches the kubelet for it."""
    for _ in range(tries - 1):
        try:
            return kubectl(kubeconfig, "logs", "-n", namespace, pod, "-c", "task")
        except AssertionError:
            time.sleep(2)
    return kubectl(kubeconfig, "logs", "-n", namespace, pod, "-c", "task")


def logical_ds(run: dict[str, Any]) -> str:
    """`ds` of a run: its logical date (spec.logicalDate, else its creation time) as YYYY-MM-DD."""
    text = (run.get("spec") or {}).get("logicalDate") or run["metadata"]["creationTimestamp"]
    return datetime.fromisoformat(text.replace("Z", "+00:00")).strftime("%Y-%m-%d")


def time_of(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def python_task(task_id: str, source: str, callable_name: str, **fields: Any) -> dict[str, Any]:
    return {"id": task_id, "python": {"source": source, "callable": callable_name}, **fields}


def dag_manifest(name: str, tasks: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kdag.dev/v1alpha1",
        "kind": "DAG",
        "metadata": {"name": name},
        "spec": {"tasks": tasks, **spec},
    }


def write_file(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def kdag_json(*args: str) -> dict[str, Any]:
    """`kdag ARGS -o json`: the one line of JSON it printed (fails on anything else)."""
    done = subprocess.run(
        [KDAG, *args, "-o", "json"], capture_output=True, text=True, timeout=600, check=False
    )
    assert done.stdout.count("\n") == 1, done.stdout + done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def user_rows(result: dict[str, Any]) -> list[str]:
    """The XCom rows of a `kdag xcom` or `kdag run --local` result under user keys (not kdag's `__`
    keys), as sorted JSON texts: comparable."""
    return sorted(
        json.dumps(row, sort_keys=True) for row in result["xcoms"] if not row["key"].startswith("__")
    )


def kdag_cli(kubeconfig: str, namespace: str, *args: str) -> dict[str, Any]:
    """`kdag ARGS -o json` against the test cluster's namespace: what it printed."""
    command = [KDAG, *args, "-o", "json", "-n", namespace, "--kubeconfig", kubeconfig]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    value: dict[str, Any] = json.loads(done.stdout)
    return value


def env_of(pod: dict[str, Any]) -> dict[str, str]:
    """The env of a pod's first container, by name ("" for a variable whose value comes from elsewhere)."""
    return {e["name"]: e.get("value", "") for e in pod["spec"]["containers"][0]["env"]}


def task_termination(pod: dict[str, Any]) -> dict[str, Any]:
    """The `terminated` state of a pod's task container."""
    for entry in pod["status"]["containerStatuses"]:
        if entry["name"] == "task":
            terminated: dict[str, Any] = entry["state"]["terminated"]
            return terminated
    raise AssertionError(f"pod {pod['metadata']['name']} has no task container status")


def task_account_can_i(
    kubeconfig: str, namespace: str, verb: str, resource: str
) -> subprocess.CompletedProcess[str]:
    """`kubectl auth can-i VERB RESOURCE` as the task pods' ServiceAccount (stdout: yes or no)."""
    account = f"system:serviceaccount:{namespace}:{names.TASK_SERVICE_ACCOUNT}"
    can_i = ["auth", "can-i", verb, resource, "-n", namespace, f"--as={account}"]
    return subprocess.run(
        ["kubectl", "--kubeconfig", kubeconfig, *can_i],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
