"""What a mapped task of N instances (default 100) costs on the test cluster, with a host-run controller.

The DAG: `make` returns a list of N numbers, `each` is mapped over it (`map: {length: {xcom: {task:
make}}}`, one TaskRun, pod and XCom ConfigMap per instance; each picks its element with `ti.map_index`),
`reduce` pulls every instance's value through one projected volume. Printed: the run's wall time and phase;
how many pods, TaskRuns and ConfigMaps the run made; the controller's writes (`kdag_api_writes_total`, read
from the host controller's metrics as bench/controller_chain.py does) in all, per instance and by verb and
resource; the time from `make` finishing to the last instance's pod being created; the size of the reduce
pod's manifest and its projected volume's sources. With `--fan` the same N as a plain fan-out of N unmapped
tasks (at most 30: a task has at most 30 upstream tasks), for comparison.

    KUBECONFIG=... .venv/bin/python bench/mapping_cost.py [--instances 100] [--fan]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from controller_chain import metric_samples
from controller_support import ControllerProcess, apply_controller_prerequisites, kubectl
from kdag.api.models import MAX_UPSTREAM


def python(callable_name: str, source: str) -> dict[str, str]:
    return {"callable": callable_name, "source": source}


def mapped_dag(name: str, n: int) -> dict[str, Any]:
    tasks = [
        {"id": "make", "python": python("make", f"def make(**_):\n    return list(range({n}))\n")},
        {
            "id": "each",
            "upstream": ["make"],
            "map": {"length": {"xcom": {"task": "make"}}},
            "python": python(
                "each", "def each(ti, **_):\n    return ti.xcom_pull(task_ids='make')[ti.map_index] * 2\n"
            ),
        },
        {
            "id": "reduce",
            "upstream": ["each"],
            "python": python(
                "reduce", "def reduce(ti, **_):\n    return sum(ti.xcom_pull(task_ids='each'))\n"
            ),
        },
    ]
    return {
        "apiVersion": "kdag.dev/v1alpha1",
        "kind": "DAG",
        "metadata": {"name": name},
        "spec": {"schedule": "@once", "tasks": tasks},
    }


def fan_dag(name: str, n: int) -> dict[str, Any]:
    tasks: list[dict[str, Any]] = [{"id": "make", "python": python("f", "def f(**_):\n    return 0\n")}]
    tasks += [
        {"id": f"w{i}", "upstream": ["make"], "python": python("f", f"def f(**_):\n    return {i * 2}\n")}
        for i in range(n)
    ]
    tasks.append(
        {
            "id": "reduce",
            "upstream": [f"w{i}" for i in range(n)],
            "python": python("f", "def f(**_):\n    return 0\n"),
        }
    )
    return {
        "apiVersion": "kdag.dev/v1alpha1",
        "kind": "DAG",
        "metadata": {"name": name},
        "spec": {"schedule": "@once", "tasks": tasks},
    }


def get_json(kubeconfig: str, *args: str) -> Any:
    return json.loads(kubectl(kubeconfig, "get", *args, "-o", "json"))


def run_dag(kubeconfig: str, namespace: str, manifest: dict[str, Any], timeout: float) -> dict[str, Any]:
    kubectl(kubeconfig, "apply", "-n", namespace, "-f", "-", stdin=json.dumps(manifest))
    dag = manifest["metadata"]["name"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = get_json(kubeconfig, "dagruns", "-n", namespace, "-l", f"kdag.dev/dag={dag}")["items"]
        if runs and runs[0].get("status", {}).get("phase") in ("Succeeded", "Failed"):
            run: dict[str, Any] = runs[0]
            return run
        time.sleep(1)
    raise SystemExit(f"{dag} did not finish in {timeout} s")


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def measure(
    kubeconfig: str,
    process: ControllerProcess,
    namespace: str,
    manifest: dict[str, Any],
    instances: int,
    timeout: float,
) -> None:
    before = process.metrics()
    started = time.monotonic()
    run = run_dag(kubeconfig, namespace, manifest, timeout)
    elapsed = time.monotonic() - started
    after = process.metrics()
    writes_before = metric_samples(before, "kdag_api_writes_total")
    writes = {
        k.split("{", 1)[1].rstrip("}"): v - writes_before.get(k, 0.0)
        for k, v in metric_samples(after, "kdag_api_writes_total").items()
    }
    writes = {k: v for k, v in writes.items() if v}
    name = run["metadata"]["name"]
    selector = f"kdag.dev/dagrun={name}"
    pods = get_json(kubeconfig, "pods", "-n", namespace, "-l", selector)["items"]
    taskruns = get_json(kubeconfig, "taskruns", "-n", namespace, "-l", selector)["items"]
    configmaps = get_json(kubeconfig, "configmaps", "-n", namespace, "-l", selector)["items"]
    status = run["status"]
    print(
        f"{manifest['metadata']['name']}: {instances} instances, phase {status['phase']},"
        f" wall {elapsed:.1f} s, progress {status.get('progress')}"
    )
    print(f"  objects: {len(pods)} pods, {len(taskruns)} TaskRuns, {len(configmaps)} ConfigMaps")
    print(f"  DAGRun status: {len(json.dumps(status))} bytes (mapped: {json.dumps(status.get('mapped'))})")
    total = sum(writes.values())
    no_events = sum(v for k, v in writes.items() if "events" not in k)
    print(
        f"  controller writes: {total:.0f} ({total / instances:.2f}/instance;"
        f" {no_events / instances:.2f}/instance without Events)"
    )
    for key, value in sorted(writes.items()):
        print(f"    {key}: {value:.0f}")
    by_task: dict[str, list[dict[str, Any]]] = {}
    for pod in pods:
        by_task.setdefault(pod["metadata"]["labels"]["kdag.dev/task"], []).append(pod)
    make = next((tr for tr in taskruns if tr["spec"]["taskId"] == "make"), None)
    fanned = [p for tid, ps in by_task.items() if tid not in ("make", "reduce") for p in ps]
    if make is not None and fanned and make.get("status", {}).get("finishTime"):
        last = max(parse(p["metadata"]["creationTimestamp"]) for p in fanned)
        first = min(parse(p["metadata"]["creationTimestamp"]) for p in fanned)
        done = parse(make["status"]["finishTime"])
        print(
            f"  pods created {(first - done).total_seconds():.0f}.."
            f"{(last - done).total_seconds():.0f} s after make finished (second precision)"
        )
    for pod in by_task.get("reduce", []):
        sources = sum(len(v["projected"]["sources"]) for v in pod["spec"]["volumes"] if "projected" in v)
        print(
            f"  reduce pod: {len(json.dumps(pod['spec']))} bytes of spec,"
            f" {len(pod['spec']['volumes'])} volumes, {sources} projected sources"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--instances", type=int, default=100)
    parser.add_argument("--fan", action="store_true", help="also run N unmapped tasks, for comparison")
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args()
    kubeconfig = os.environ["KUBECONFIG"]
    apply_controller_prerequisites(kubeconfig)
    log = Path(tempfile.mkdtemp(prefix="kdag-bench-")) / "controller.log"
    process = ControllerProcess(kubeconfig=kubeconfig, log_path=log)
    process.start()
    namespace = f"kdag-bench-{uuid.uuid4().hex[:6]}"
    kubectl(kubeconfig, "create", "namespace", namespace)
    try:
        measure(
            kubeconfig, process, namespace, mapped_dag("mapped", args.instances), args.instances, args.timeout
        )
        if args.fan:
            # A task has at most MAX_UPSTREAM (30) upstream tasks, so the unmapped join reads at most 30
            # workers; a mapped task has no such limit (one upstream, any number of instances).
            width = min(args.instances, MAX_UPSTREAM)
            measure(kubeconfig, process, namespace, fan_dag("fan", width), width, args.timeout)
    finally:
        process.stop()
        kubectl(kubeconfig, "delete", "namespace", namespace, "--wait=false", check=False)
        for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
            kubectl(kubeconfig, "delete", kind, "kdag.dev", "--ignore-not-found", check=False)
        print(f"controller log: {log}")


if __name__ == "__main__":
    main()
