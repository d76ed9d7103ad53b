"""An in-memory API server and a "kubelet" that runs a task pod's runner for real, for the DAGRun handler.

`FakeApi` answers the `KubeApi` calls the handler makes over objects kept in memory, merges status patches
as the API server does, records Events and remembers when each object was made and what was deleted.
`run_pod` does what the kubelet and the runner do with one pod: lays out its XCom volumes (a ConfigMap
volume, and for a mapped ancestor the projected volume's `{i}/{key}` items), resolves its env, runs
`python -m kdag_runner run`, stores what the runner pushed in the ConfigMap the pod names (checking the XCom
write guard's rule) and writes the pod's status; `drive_runs` reconciles the runs and runs their pods until
they finish (a foreground deletion collected as the garbage collector would). tests/e2e/ runs the same on a
real cluster.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Collection
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kdag import compile as compiler
from kdag import names, policy
from kdag.handlers import dagruns
from kdag.handlers.runtime import Runtime
from kdag.kube import Kind, kind_of
from kdag.patches import apply_merge_patch
from kdag.settings import ControllerSettings
from kdag_runner import store

Object = dict[str, Any]
LOCAL_DAGS = Path(__file__).resolve().parents[1] / "local" / "dags"
"""DAG files the local tests run too (tests/e2e/ runs some of them on a real cluster)."""


def phase_selected(objects: list[Object], fields: str) -> list[Object]:
    """The objects a field selector of `status.phase!=X` terms selects, as the API server evaluates it (the
    only field selector kdag's lists use)."""
    terms = [term for term in fields.split(",") if term]
    if any(not term.startswith("status.phase!=") for term in terms):
        raise ValueError(f"unsupported field selector {fields!r}")
    excluded = {term.split("!=", 1)[1] for term in terms}
    return [obj for obj in objects if (obj.get("status") or {}).get("phase") not in excluded]


class FakeApi:
    """The KubeApi calls the DAGRun handler makes, over objects kept in memory by (kind, name)."""

    def __init__(self) -> None:
        # The task ClusterRole, as the chart or deploy/ makes it: the controller binds it and owns by it.
        role = policy.task_cluster_role()
        role["metadata"]["uid"] = "uid-task-role"
        self.objects: dict[tuple[str, str], Object] = {("ClusterRole", names.TASK_CLUSTER_ROLE): role}
        self.events: list[Object] = []
        self.created_at: dict[tuple[str, str], datetime] = {}
        self.deleted: dict[tuple[str, str], Object] = {}
        """Each deleted object as it was when deleted."""
        self.deleted_at: dict[tuple[str, str], datetime] = {}
        self.counter = itertools.count()

    async def get(self, kind: Kind, namespace: str, name: str) -> Object | None:
        return self.objects.get((kind.kind, name))

    async def list(self, kind: Kind, namespace: str, labels: dict[str, str] | None = None) -> list[Object]:
        return [
            obj
            for (k, _), obj in sorted(self.objects.items())
            if k == kind.kind
            and all((obj["metadata"].get("labels") or {}).get(a) == b for a, b in (labels or {}).items())
        ]

    async def pages(
        self,
        kind: Kind,
        namespace: str,
        labels: dict[str, str] | None = None,
        *,
        size: int = 2,
        fields: str = "",
    ) -> AsyncIterator[tuple[list[Object], str]]:
        """`list` in pages of two objects, as the API server pages with `limit` (no list revision)."""
        listed = phase_selected(await self.list(kind, namespace, labels), fields)
        for first in range(0, len(listed), size):
            yield listed[first : first + size], ""

    async def create(self, obj: Object, namespace: str) -> Object:
        kind = kind_of(obj).kind
        stored: Object = json.loads(json.dumps(obj))
        if kind == "Event":
            self.events.append(stored)
            return stored
        stored["metadata"].setdefault("namespace", namespace)
        stored["metadata"]["uid"] = str(uuid.uuid4())
        stored["metadata"]["resourceVersion"] = str(next(self.counter))
        stored["metadata"]["creationTimestamp"] = "2026-11-21T00:00:00Z"
        key = (kind, obj["metadata"]["name"])
        self.objects[key] = stored
        self.created_at[key] = datetime.now(UTC)
        return stored

    async def create_if_absent(self, obj: Object, namespace: str) -> Object | None:
        if (kind_of(obj).kind, obj["metadata"]["name"]) in self.objects:
            return None
        return await self.create(obj, namespace)

    async def patch_status(self, kind: Kind, namespace: str, name: str, status: Object) -> Object:
        obj = self.objects[(kind.kind, name)]
        obj["status"] = apply_merge_patch(obj.get("status") or {}, status)  # as the API server merges
        return obj

    async def delete(self, kind: Kind, namespace: str, name: str, *, foreground: bool = False) -> bool:
        if foreground:  # it stays, marked, until the test collects it (as the garbage collector would)
            marked = self.objects.get((kind.kind, name))
            if marked is not None:
                marked["metadata"]["deletionTimestamp"] = "2026-11-21T00:00:00Z"
            return marked is not None
        gone = self.objects.pop((kind.kind, name), None)
        if gone is None:
            return False
        self.deleted[(kind.kind, name)] = gone
        self.deleted_at[(kind.kind, name)] = datetime.now(UTC)
        return True

    def run_uid(self, run: str) -> str:
        """The uid of the DAGRun `run` (its pods' names carry it)."""
        uid: str = self.objects[("DAGRun", run)]["metadata"]["uid"]
        return uid

    def pod_name(self, run: str, task_id: str, attempt: int, map_index: int | None = None) -> str:
        """The name of a pod of the run `run`, as the handler names it."""
        return names.pod_name(run, task_id, attempt, map_index, run_uid=self.run_uid(run))

    def taskrun(self, run: str, task_id: str, map_index: int | None = None) -> Object:
        return self.objects[("TaskRun", names.taskrun_name(run, task_id, map_index))]

    def taskruns(self) -> dict[str, Object]:
        """Every TaskRun by name."""
        return {name: obj for (kind, name), obj in self.objects.items() if kind == "TaskRun"}

    def pods_of(self, task_id: str, *, deleted: bool = False) -> list[Object]:
        """The task's pods that exist (with `deleted`, those made and deleted since), by name."""
        pods = {**self.objects, **self.deleted} if deleted else self.objects
        return [
            obj
            for (kind, _), obj in sorted(pods.items())
            if kind == "Pod" and obj["metadata"]["labels"][names.TASK_LABEL] == task_id
        ]

    def unstarted_pods(self) -> list[Object]:
        """Pods no "kubelet" ran yet (they have no status)."""
        return [obj for (kind, _), obj in list(self.objects.items()) if kind == "Pod" and "status" not in obj]


def runtime_over(api: FakeApi) -> Runtime:
    """The handler's memo with `api` as its Kubernetes client."""
    # Every status change written at once: these tests read the run's status after each pass.
    settings = ControllerSettings(runner_image="localhost/kdag-runner:dev", run_status_interval_seconds=0)
    runtime = Runtime(settings=settings, api=api)  # type: ignore[arg-type]
    # No watches here (tests change objects in place): every pass lists, as after a watch's reconnect.
    runtime.objects.relist_seconds = 0
    return runtime


def dagrun_manifest(name: str, dag_name: str) -> Object:
    """A DAGRun of `dag_name`, as `kdag trigger` makes one, at a fixed logical date."""
    return {
        "apiVersion": "kdag.dev/v1alpha1",
        "kind": "DAGRun",
        "metadata": {"name": name, "labels": names.labels(dag_name, name)},
        "spec": {"dagRef": {"name": dag_name}, "logicalDate": "2026-11-21T00:00:00Z"},
    }


async def create_dags(api: FakeApi, namespace: str, dag_file: Path, *dag_ids: str) -> None:
    """The DAGs `dag_ids` of one DAG file, made as `kdag apply` makes them."""
    for dag_id in dag_ids:
        loaded = compiler.load(dag_file, dag_id=dag_id)
        await api.create(compiler.dag_manifest(loaded.name, loaded.spec), namespace)


async def stop_background(runtime: Runtime) -> None:
    """Cancel every run's wake-up timer and wait for the handler's background tasks to end."""
    for state in runtime.runs.values():
        if state.wake is not None:
            state.wake.cancel()
    await asyncio.gather(*runtime.background, return_exceptions=True)


def collect_garbage(api: FakeApi) -> None:
    """What the garbage collector does for a foreground deletion: dependents first, then the run."""
    for (kind, name), obj in list(api.objects.items()):
        if kind == "DAGRun" and obj["metadata"].get("deletionTimestamp"):
            for key, dependent in list(api.objects.items()):
                labels = dependent.get("metadata", {}).get("labels") or {}
                if key[0] != "DAGRun" and labels.get(names.DAGRUN_LABEL) == name:
                    api.objects.pop(key)
            api.deleted[(kind, name)] = api.objects.pop((kind, name))


async def drive_runs(api: FakeApi, runtime: Runtime, work: Path, dag_file: Path, runs: list[str]) -> None:
    """Reconcile every unfinished run (as the watches would) and run the pods, until `runs` finished."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        phases = {r: (api.objects.get(("DAGRun", r), {}).get("status") or {}).get("phase") for r in runs}
        if all(p in ("Succeeded", "Failed") for p in phases.values()):
            return
        for (kind, name), obj in list(api.objects.items()):
            if kind == "DAGRun" and (obj.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                await dagruns.request_reconcile(runtime, (obj["metadata"]["namespace"], name))
        for pod in api.unstarted_pods():
            await asyncio.to_thread(run_pod, api, pod, work, dag_file)
        collect_garbage(api)
        await asyncio.sleep(0.1)
    raise AssertionError(f"the runs did not finish: {phases}")


def env_of(pod: Object) -> dict[str, str]:
    """A pod's env by name ("" for a variable whose value comes from elsewhere)."""
    return {e["name"]: e.get("value", "") for e in pod["spec"]["containers"][0]["env"]}


def xcoms(api: FakeApi, run: str, task_id: str) -> dict[str, Any]:
    """The XComs a task of `run` stored, decoded."""
    return store.decode(api.objects[("ConfigMap", names.xcom_configmap_name(run, task_id))]["data"])


def run_pod(
    api: FakeApi, pod: Object, work: Path, dag_file: Path, fail_once: Collection[str] = frozenset()
) -> None:
    """What the kubelet and the runner do with one pod: lay out its volumes, run it, store its XComs.

    A pod named in `fail_once` runs with `FAIL_THIS_ATTEMPT=1` in its env (the DAG file decides what fails).
    """
    name = pod["metadata"]["name"]
    root = work / name
    container = pod["spec"]["containers"][0]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KDAG_")}
    env.update({var["name"]: var["value"] for var in container["env"] if "value" in var})
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    for mount in container["volumeMounts"]:
        path = mount["mountPath"]
        if path == "/kdag/xcom/in" or path.startswith("/kdag/xcom/in/"):
            target = root / "in" / path.removeprefix("/kdag/xcom/in").lstrip("/")
            target.mkdir(parents=True)
            _lay_out(api, volumes[mount["name"]], target)
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
    # The write guard: a pod writes only the ConfigMap named after it minus "-{run uid tag}-{attempt}",
    # owned by the DAGRun whose uid the tag begins, and only one that was its run's before.
    head, _, attempt = name.rpartition("-")
    assert head == f"{configmap}-{names.run_uid_tag(env['KDAG_RUN_UID'])}" and attempt.isdigit(), name
    owner = {"apiVersion": "kdag.dev/v1alpha1", "kind": "DAGRun", "name": env["KDAG_RUN_ID"]}
    owners = [{**owner, "uid": env["KDAG_RUN_UID"]}]
    existing = api.objects.get(("ConfigMap", configmap))
    assert existing is None or existing["metadata"].get("ownerReferences") == owners, existing
    labels = {names.DAGRUN_LABEL: env["KDAG_RUN_ID"], names.TASK_LABEL: env["KDAG_TASK_ID"]}
    api.objects[("ConfigMap", configmap)] = {
        "metadata": {"name": configmap, "labels": labels, "ownerReferences": owners},
        "data": store.read_task_dir(sink),
    }
    message = (root / "termination").read_text() if (root / "termination").exists() else done.stderr[-500:]
    state = {"terminated": {"exitCode": done.returncode, "message": message, "reason": "Completed"}}
    pod["status"] = {
        "phase": "Succeeded" if done.returncode == 0 else "Failed",
        "containerStatuses": [{"name": "task", "state": state}],
    }


def _lay_out(api: FakeApi, volume: Object, target: Path) -> None:
    """The files of one XCom volume, as the kubelet mounts them at `target`."""
    if "configMap" in volume:
        cm = api.objects.get(("ConfigMap", volume["configMap"]["name"]))
        for key, value in ((cm or {}).get("data") or {}).items():
            (target / key).write_text(value)
        return
    for source in volume["projected"]["sources"]:
        cm = api.objects.get(("ConfigMap", source["configMap"]["name"]))
        data = (cm or {}).get("data") or {}
        assert source["configMap"]["optional"] is True
        for item in source["configMap"]["items"]:
            if item["key"] in data:  # optional: a missing key is left out
                path = target / item["path"]
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(data[item["key"]])
