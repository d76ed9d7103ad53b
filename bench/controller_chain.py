"""Handoff latency and API writes of the controller, on the test cluster.

Runs a chain of N trivial Python tasks (and a fan-out of N) with a host-run controller, then reads the
controller's metrics: the handoff histogram (upstream pod finished -> downstream pod created) and the
write requests it made, per resource. Usage:

    KUBECONFIG=... .venv/bin/python bench/controller_chain.py [N]
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from controller_support import ControllerProcess, apply_controller_prerequisites, kubectl


def metric_samples(text: str, name: str) -> dict[str, float]:
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            samples[key] = float(value)
    return samples


def chain(name: str, n: int) -> dict[str, object]:
    tasks: list[dict[str, object]] = []
    for i in range(n):
        task: dict[str, object] = {
            "id": f"t{i}",
            "python": {"source": f"def f(**_):\n    return {i}\n", "callable": "f"},
        }
        if i:
            task["upstream"] = [f"t{i - 1}"]
        tasks.append(task)
    return {"apiVersion": "kdag.dev/v1alpha1", "kind": "DAG", "metadata": {"name": name},
            "spec": {"schedule": "@once", "tasks": tasks}}


def fan(name: str, n: int) -> dict[str, object]:
    tasks: list[dict[str, object]] = [{"id": "root", "python": {"source": "def f(**_):\n    return 0\n",
                                                                "callable": "f"}}]
    tasks += [
        {"id": f"w{i}", "upstream": ["root"], "python": {"source": f"def f(**_):\n    return {i}\n",
                                                         "callable": "f"}}
        for i in range(n)
    ]
    return {"apiVersion": "kdag.dev/v1alpha1", "kind": "DAG", "metadata": {"name": name},
            "spec": {"schedule": "@once", "tasks": tasks}}


def run_dag(
    kubeconfig: str, namespace: str, manifest: dict[str, object], timeout: float = 900
) -> dict[str, object]:
    kubectl(kubeconfig, "apply", "-n", namespace, "-f", "-", stdin=json.dumps(manifest))
    dag = str(manifest["metadata"]["name"])  # type: ignore[index]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = json.loads(kubectl(kubeconfig, "get", "dagruns", "-n", namespace, "-l", f"kdag.dev/dag={dag}",
                                  "-o", "json"))["items"]
        if runs and runs[0].get("status", {}).get("phase") in ("Succeeded", "Failed"):
            run: dict[str, object] = runs[0]
            return run
        time.sleep(0.5)
    raise SystemExit(f"{dag} did not finish in {timeout} s")


def measure(kubeconfig: str, process: ControllerProcess, namespace: str, manifest: dict[str, object],
            tasks: int) -> None:
    before = process.metrics()
    started = time.monotonic()
    run = run_dag(kubeconfig, namespace, manifest)
    elapsed = time.monotonic() - started
    after = process.metrics()
    writes_before = metric_samples(before, "kdag_api_writes_total")
    writes_after = metric_samples(after, "kdag_api_writes_total")
    writes = {k: v - writes_before.get(k, 0.0) for k, v in writes_after.items()}
    writes = {k.split("{", 1)[1].rstrip("}"): v for k, v in writes.items() if v}
    hist_before = metric_samples(before, "kdag_handoff_seconds")
    hist_after = metric_samples(after, "kdag_handoff_seconds")
    count = hist_after.get("kdag_handoff_seconds_count", 0) - hist_before.get("kdag_handoff_seconds_count", 0)
    total = hist_after.get("kdag_handoff_seconds_sum", 0) - hist_before.get("kdag_handoff_seconds_sum", 0)
    name = manifest["metadata"]["name"]  # type: ignore[index]
    status: dict[str, Any] = run["status"]  # type: ignore[assignment]
    print(f"{name}: {tasks} tasks, phase {status['phase']}, wall {elapsed:.1f} s")
    if count:
        print(f"  handoff: {count:.0f} observations, mean {total / count * 1000:.0f} ms")
    all_writes = sum(writes.values())
    no_events = sum(v for k, v in writes.items() if "events" not in k)
    print(f"  controller writes: {all_writes:.0f} ({all_writes / tasks:.2f}/task; "
          f"{no_events / tasks:.2f}/task without Events)")
    for key, value in sorted(writes.items()):
        print(f"    {key}: {value:.0f}")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    kubeconfig = os.environ["KUBECONFIG"]
    apply_controller_prerequisites(kubeconfig)
    log = Path(tempfile.mkdtemp(prefix="kdag-bench-")) / "controller.log"
    process = ControllerProcess(kubeconfig=kubeconfig, log_path=log)
    process.start()
    namespace = f"kdag-bench-{uuid.uuid4().hex[:6]}"
    kubectl(kubeconfig, "create", "namespace", namespace)
    try:
        measure(kubeconfig, process, namespace, chain("chain", n), n)
        measure(kubeconfig, process, namespace, fan("fan", n), n + 1)
    finally:
        process.stop()
        kubectl(kubeconfig, "delete", "namespace", namespace, "--wait=false", check=False)
        for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
            kubectl(kubeconfig, "delete", kind, "kdag.dev", "--ignore-not-found", check=False)
        print(f"controller log: {log}")


if __name__ == "__main__":
    main()
