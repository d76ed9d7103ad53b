"""The controller's memory with many finished TaskRuns (and their pods) in the cluster, on KWOK's fake nodes.

It runs one small DAG (3 tasks on the fake nodes) with a host-run controller, then copies its TaskRuns and
pods (status included; the copies' pods are bound to the fake nodes, which complete them) until the
namespace holds `--taskruns` of each, and starts a fresh controller: its RSS (VmRSS) each second for
`--seconds`, and its peak (VmHWM). The controller lists and watches every TaskRun and task pod of the
cluster, whether or not a run is under way; this measures what that costs at rest.

    KUBECONFIG=... .venv/bin/python bench/controller_memory.py --taskruns 10000 [--seconds 60] [--keep]

The copies stay for the next invocation unless `--cleanup` (which deletes the namespace and exits).
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from controller_support import ControllerProcess, apply_controller_prerequisites, kubectl
from kdag.kube import POD, TASKRUN, KubeApi
from scale import current_rss, fan_dag, proc_usage

NAMESPACE = "kdag-memory"
DAG_NAME = "memory-seed"
CONCURRENCY = 32
SERVER_FIELDS = ("uid", "resourceVersion", "creationTimestamp", "managedFields", "generation")


def _count(admin: str, kind: str) -> int:
    return len(kubectl(admin, "get", kind, "-n", NAMESPACE, "-o", "name", check=False).split())


def seed_run(admin: str) -> None:
    """One finished run of a 3-task DAG on the fake nodes: the TaskRuns and pods the copies are made of."""
    kubectl(admin, "create", "namespace", NAMESPACE, check=False)
    manifest = fan_dag(DAG_NAME, 3)
    kubectl(admin, "apply", "-n", NAMESPACE, "--server-side", "-f", "-", stdin=json.dumps(manifest))
    process = ControllerProcess(kubeconfig=admin, log_path=Path(tempfile.mkdtemp()) / "seed.log")
    process.start()
    try:
        run = f"{DAG_NAME}-{uuid.uuid4().hex[:6]}"
        kubectl(admin, "create", "-n", NAMESPACE, "-f", "-", stdin=json.dumps({
            "apiVersion": "kdag.dev/v1alpha1", "kind": "DAGRun", "metadata": {"name": run},
            "spec": {"dagRef": {"name": DAG_NAME}},
        }))  # fmt: skip
        deadline = time.time() + 300
        while time.time() < deadline:
            phase = kubectl(admin, "get", "dagrun", run, "-n", NAMESPACE, "-o", "jsonpath={.status.phase}")
            if phase == "Succeeded":
                return
            time.sleep(1)
        raise SystemExit(f"the seed run {run} did not succeed in 300 s: {process.log_tail()}")
    finally:
        process.stop()


def _fresh(obj: dict[str, Any], name: str, api_version: str, kind: str) -> dict[str, Any]:
    made = copy.deepcopy(obj)
    made.update(apiVersion=api_version, kind=kind)
    meta = made["metadata"]
    for key in SERVER_FIELDS:
        meta.pop(key, None)
    meta["name"] = name
    made.pop("status", None)
    return made


async def copy_objects(admin: str, total: int) -> None:
    """Copies of the seed run's TaskRuns (status too) and pods until `total` of each exist."""
    api = await KubeApi.connect(admin)
    try:
        taskruns = await api.list(TASKRUN, NAMESPACE, {})
        pods = {p["metadata"]["name"]: p for p in await api.list(POD, NAMESPACE, {})}
        templates = [(tr, pods.get((tr.get("status") or {}).get("podName", ""))) for tr in taskruns]
        templates = [(tr, pod) for tr, pod in templates if pod is not None]
        missing = total - len(taskruns)
        gate = asyncio.Semaphore(CONCURRENCY)
        batch = uuid.uuid4().hex[:4]  # copies of an earlier, interrupted invocation keep their names

        async def one(i: int) -> None:
            taskrun, pod = templates[i % len(templates)]
            async with gate:
                name = f"{taskrun['metadata']['name']}-c{batch}-{i}"
                made = await api.create(_fresh(taskrun, name, TASKRUN.api_version, TASKRUN.kind), NAMESPACE)
                await api.patch_status(TASKRUN, NAMESPACE, name, taskrun["status"])
                pod_copy = _fresh(pod, f"{name}-pod", POD.api_version, POD.kind)
                for owner in pod_copy["metadata"].get("ownerReferences") or []:
                    owner.update(name=name, uid=made["metadata"]["uid"])
                await api.create(pod_copy, NAMESPACE)

        started = time.time()
        for first in range(0, max(missing, 0), 1000):
            await asyncio.gather(*(one(i) for i in range(first, min(first + 1000, missing))))
            done = min(first + 1000, missing)
            print(f"  {done:,}/{missing:,} copies ({time.time() - started:.0f} s)", flush=True)
    finally:
        await api.close()


def measure(admin: str, seconds: float) -> dict[str, Any]:
    """A fresh controller's RSS each second for `seconds`, and its peak."""
    log = Path(tempfile.mkdtemp(prefix="kdag-memory-")) / "controller.log"
    process = ControllerProcess(kubeconfig=admin, log_path=log)
    process.start()
    assert process.process is not None
    pid = process.process.pid
    samples: list[float] = []
    try:
        for _ in range(int(seconds)):
            time.sleep(1)
            samples.append(current_rss(pid))
        peak, cpu = proc_usage(pid)
    finally:
        process.stop()
    return {
        "taskruns": _count(admin, "taskruns"),
        "pods": _count(admin, "pods"),
        "rss_mib_at_end": round(samples[-1], 1),
        "rss_mib_min": round(min(samples), 1),
        "peak_rss_mib": round(peak, 1),
        "cpu_s": round(cpu, 1),
        "samples_every_10_s": [round(s) for s in samples[9::10]],
        "log": str(log),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--taskruns", type=int, default=10000)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--cleanup", action="store_true")
    args = parser.parse_args()
    admin = os.environ["KUBECONFIG"]
    if args.cleanup:
        kubectl(admin, "delete", "namespace", NAMESPACE, "--wait=true", "--timeout=600s", check=False)
        return
    apply_controller_prerequisites(admin)
    if _count(admin, "taskruns") == 0:
        seed_run(admin)
    asyncio.run(copy_objects(admin, args.taskruns))
    print(json.dumps(measure(admin, args.seconds), indent=2))


if __name__ == "__main__":
    main()
