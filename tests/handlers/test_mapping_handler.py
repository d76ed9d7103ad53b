"""The DAGRun handler runs a mapped task against an in-memory API server whose "kubelet" runs each pod's
runner for real: it lays out the pod's XCom volumes as the kubelet would (a ConfigMap volume, and for a mapped
ancestor the projected volume's `{i}/{key}` items), resolves its env, runs `python -m kdag_runner run` and
stores what the runner pushed in the ConfigMap the pod names, checking the XCom write guard's rule. So the
controller's side of mapping (expansion, instance TaskRuns and pods, the delivery contract, retries of one
instance, the run's status) is checked without a cluster; tests/e2e/test_mapping_on_cluster.py is the real
one."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import sys
import uuid
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


class FakeCluster:
    """The KubeApi calls the DAGRun handler makes, over objects kept in memory."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.counter = itertools.count()

    def _key(self, kind: str, name: str) -> tuple[str, str]:
        return kind, name

    async def get(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get(self._key(kind.kind, name))

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
        stored["metadata"].setdefault("namespace", namespace)
        stored["metadata"]["uid"] = str(uuid.uuid4())
        stored["metadata"]["resourceVersion"] = str(next(self.counter))
        stored["metadata"]["creationTimestamp"] = "2026-11-21T00:00:00Z"
        if kind != "Event":
            self.objects[self._key(kind, obj["metadata"]["name"])] = stored
        return stored

    async def create_if_absent(self, obj: dict[str, Any], namespace: str) -> dict[str, Any] | None:
        if self._key(kind_of(obj).kind, obj["metadata"]["name"]) in self.objects:
            return None
        return await self.create(obj, namespace)

    async def patch_status(
        self, kind: Kind, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        obj = self.objects[self._key(kind.kind, name)]
        obj["status"] = apply_merge_patch(obj.get("status") or {}, status)  # as the API server merges
        return obj

    async def delete(self, kind: Kind, namespace: str, name: str) -> bool:
        return self.objects.pop(self._key(kind.kind, name), None) is not None


def run_pod(
    cluster: FakeCluster, pod: dict[str, Any], work: Path, dag_file: Path, fail_once: set[str]
) -> None:
    """What the kubelet and the runner do with one pod: lay out its volumes, run it, store its XComs."""
    name = pod["metadata"]["name"]
    root = work / name
    container = pod["spec"]["containers"][0]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KDAG_")}
    for var in container["env"]:
        if "value" in var:
            env[var["name"]] = var["value"]
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    for mount in container["volumeMounts"]:
        if not mount["mountPath"].startswith("/kdag/xcom/in/"):
            continue
        target = root / "in" / mount["mountPath"].removeprefix("/kdag/xcom/in/")
        target.mkdir(parents=True)
        volume = volumes[mount["name"]]
        if "configMap" in volume:
            cm = cluster.objects.get(("ConfigMap", volume["configMap"]["name"]))
            for key, value in ((cm or {}).get("data") or {}).items():
                (target / key).write_text(value)
            continue
        for source in volume["projected"]["sources"]:
            cm = cluster.objects.get(("ConfigMap", source["configMap"]["name"]))
            data = (cm or {}).get("data") or {}
            assert source["configMap"]["optional"] is True
            for item in source["configMap"]["items"]:
                if item["key"] in data:  # optional: a missing key is left out
                    path = target / item["path"]
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(data[item["key"]])
    sink = root / "sink"
    env.update(
        KDAG_XCOM_IN=str(root / "in"),
        KDAG_XCOM_DIR=str(root / "out"),
        KDAG_XCOM_SINK=f"dir:{sink}",
        KDAG_TERMINATION_LOG=str(root / "termination"),
        KDAG_DAG_FILE=str(dag_file),
    )
    if name in fail_once:
        env["FAIL_THIS_ATTEMPT"] = "1"
    (root / "out").mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-m", "kdag_runner", "run"], env=env, capture_output=True, text=True
    )
    configmap = env["KDAG_XCOM_CONFIGMAP"]
    # The write guard: a pod writes only the ConfigMap named after it minus "-{attempt}".
    head, _, attempt = name.rpartition("-")
    assert head == configmap and attempt.isdigit(), (name, configmap)
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


DAG_FILE = """
import os
from datetime import datetime

from airflow.sdk import DAG, task

with DAG("mapped", schedule=None, start_date=datetime(2026, 1, 1)) as dag:

    @task
    def numbers():
        return [1, 2, 3, 4]

    @task(retries=1, retry_delay=0)
    def square(n, ti=None):
        if os.environ.get("FAIL_THIS_ATTEMPT"):
            raise ValueError("this attempt fails")
        ti.xcom_push(key="seen", value=n)
        return n * n

    @task
    def total(values, ti=None):
        return {"all": list(values), "one": ti.xcom_pull(task_ids="square", map_indexes=2)}

    @task
    def empty():
        return []

    @task
    def never(x):
        return x

    total(square.expand(n=numbers()))
    never.expand(x=empty())
"""


async def drive(
    cluster: FakeCluster, runtime: Runtime, work: Path, dag_file: Path, fail_once: set[str]
) -> None:
    key = (NS, "mapped-run")
    for _ in range(40):
        await dagruns._reconcile(runtime, key)
        run = cluster.objects[("DAGRun", "mapped-run")]
        if (run.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            return
        pods = [obj for (kind, _), obj in cluster.objects.items() if kind == "Pod" and "status" not in obj]
        for pod in pods:
            run_pod(cluster, pod, work, dag_file, fail_once)
    raise AssertionError("the run did not finish")


def test_the_handler_expands_delivers_retries_one_instance_and_summarises(tmp_path: Path) -> None:
    dag_file = tmp_path / "mapped.py"
    dag_file.write_text(DAG_FILE)
    loaded = compiler.load(dag_file)
    cluster = FakeCluster()
    runtime = Runtime(settings=ControllerSettings(runner_image="localhost/kdag-runner:dev"), api=cluster)  # type: ignore[arg-type]
    fail_once = {names.pod_name("mapped-run", "square", 1, 1)}

    async def main() -> None:
        await cluster.create(compiler.dag_manifest(loaded.name, loaded.spec), NS)
        await cluster.create(
            {
                "apiVersion": "kdag.dev/v1alpha1",
                "kind": "DAGRun",
                "metadata": {"name": "mapped-run", "labels": names.labels(loaded.name, "mapped-run")},
                "spec": {"dagRef": {"name": loaded.name}, "logicalDate": "2026-11-21T00:00:00Z"},
            },
            NS,
        )
        await drive(cluster, runtime, tmp_path / "pods", dag_file, fail_once)
        await asyncio.gather(*runtime.background, return_exceptions=True)

    asyncio.run(main())
    run = cluster.objects[("DAGRun", "mapped-run")]["status"]
    assert run["phase"] == "Succeeded", run
    assert run["tasks"] == {
        "numbers": "Succeeded",
        "square": "Succeeded",
        "total": "Succeeded",
        "empty": "Succeeded",
        "never": "Skipped",
    }
    assert run["mapped"] == {"square": {"length": 4, "phases": {"Succeeded": 4}}}
    assert run["progress"] == "8/8"  # numbers, 4 instances, total, empty, never

    taskruns = {
        obj["metadata"]["name"]: obj for (kind, _), obj in cluster.objects.items() if kind == "TaskRun"
    }
    for index in range(4):
        instance = taskruns[names.taskrun_name("mapped-run", "square", index)]
        assert instance["spec"]["mapIndex"] == index
        assert instance["metadata"]["labels"][names.MAP_INDEX_LABEL] == str(index)
        assert instance["status"]["phase"] == "Succeeded"
        assert instance["status"]["attempts"] == (2 if index == 1 else 1)  # instance 1 alone was retried
    never = taskruns[names.taskrun_name("mapped-run", "never")]
    assert never["status"] == {**never["status"], "phase": "Skipped", "message": "mapped over 0 elements"}
    assert taskruns[names.taskrun_name("mapped-run", "numbers")]["status"]["xcomLengths"] == {
        "return_value": 4
    }

    total = cluster.objects[("ConfigMap", names.xcom_configmap_name("mapped-run", "total"))]["data"]
    assert json.loads(total["return_value"]) == {"all": [1, 4, 9, 16], "one": 9}
    seen = cluster.objects[("ConfigMap", names.xcom_configmap_name("mapped-run", "square", 3))]["data"]
    assert store.decode(seen) == {"seen": 4, "return_value": 16}
    total_pod = cluster.objects[("Pod", names.pod_name("mapped-run", "total", 1))]
    env = {v["name"]: v.get("value") for v in total_pod["spec"]["containers"][0]["env"]}
    assert json.loads(env["KDAG_MAPPED"]) == {"square": 4}
