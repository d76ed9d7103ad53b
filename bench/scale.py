"""How kdag's cost grows with a DAG's size, on KWOK's fake nodes (`tests/cluster/up --kwok`).

For each size N it runs one DAG of N tasks whose pods go to the fake nodes (KWOK completes them: no real
container), with a host-run controller acting as its own ServiceAccount (`kdag-bench/kdag-controller`), and
reports: wall time from the run's creation to Succeeded, the controller's API requests (reads and writes, from
the API server's audit log, which `up` keeps for the `kdag-bench` ServiceAccounts only) and its own write
counter (`kdag_api_writes_total`), per task; handoff p50/p99 (upstream pod's containers all terminated ->
downstream pod ADDED, seen through a pod watch); the controller's peak RSS and CPU seconds (/proc).

Shapes: `fan` (root -> N-2 tasks -> join: the join has N-2 upstream tasks) and `layers` (N tasks in layers of
50, each task of a layer after every task of the layer before... capped at 8 upstream tasks each).

    KUBECONFIG=... .venv/bin/python bench/scale.py --sizes 100 1000 5000 [--shape fan] [--keep-runs K]

`--keep-runs K` runs the largest size K times and measures the controller's RSS with all their TaskRuns in
the cluster (the runs are kept: runHistoryLimit), then once more after a restart of the controller.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from controller_chain import metric_samples
from controller_support import ControllerProcess, apply_controller_prerequisites, kubectl
from handoff_latency import PodWatch

BENCH_NAMESPACE = "kdag-bench"
CONTROLLER_ACCOUNT = "kdag-controller"
KWOK_PLACEMENT: dict[str, Any] = {
    "nodeSelector": {"type": "kwok"},
    "tolerations": [{"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}],
}
AUDIT_LOG = Path(os.environ.get("KDAG_AUDIT_LOG", str(Path.home() / ".cache/kdag/cluster/logs/audit.log")))


def account_kubeconfig(admin: str, namespace: str, account: str, role: str = "cluster-admin") -> str:
    """A kubeconfig acting as ServiceAccount `namespace/account` (bound to `role`): the audit log then tells
    its requests from everyone else's."""
    kubectl(admin, "create", "namespace", namespace, check=False)
    kubectl(admin, "create", "serviceaccount", account, "-n", namespace, check=False)
    kubectl(
        admin, "create", "clusterrolebinding", f"{namespace}-{account}", f"--clusterrole={role}",
        f"--serviceaccount={namespace}:{account}", check=False,
    )  # fmt: skip
    token = kubectl(admin, "create", "token", account, "-n", namespace, "--duration", "24h").strip()
    config = json.loads(kubectl(admin, "config", "view", "--raw", "--minify", "-o", "json"))
    config["users"] = [{"name": account, "user": {"token": token}}]
    config["contexts"][0]["context"]["user"] = account
    path = Path(tempfile.mkstemp(prefix=f"{account}-", suffix=".kubeconfig")[1])
    path.write_text(json.dumps(config))
    return str(path)


def fan_dag(name: str, n: int) -> dict[str, Any]:
    """root -> w0..w{n-3} -> join, every pod on the fake nodes."""
    tasks: list[dict[str, Any]] = [{"id": "root", "command": ["true"]}]
    tasks += [{"id": f"w{i}", "command": ["true"], "upstream": ["root"]} for i in range(n - 2)]
    tasks.append({"id": "join", "command": ["true"], "upstream": [f"w{i}" for i in range(n - 2)]})
    return dag_manifest(name, tasks)


def layers_dag(name: str, n: int, width: int = 50, fan_in: int = 8) -> dict[str, Any]:
    """Layers of `width` tasks; each task depends on up to `fan_in` tasks of the layer before."""
    tasks: list[dict[str, Any]] = []
    for i in range(n):
        layer, place = divmod(i, width)
        task: dict[str, Any] = {"id": f"t{i}", "command": ["true"]}
        if layer:
            before = [(layer - 1) * width + (place + k) % width for k in range(fan_in)]
            task["upstream"] = [f"t{j}" for j in sorted(set(before))]
        tasks.append(task)
    return dag_manifest(name, tasks)


def dag_manifest(name: str, tasks: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "kdag.dev/v1alpha1",
        "kind": "DAG",
        "metadata": {"name": name},
        "spec": {"runHistoryLimit": 100, "defaults": dict(KWOK_PLACEMENT), "tasks": tasks},
    }


def audit_counts(account: str, since: float, until: float) -> dict[str, int]:
    """Requests by `system:serviceaccount:kdag-bench:<account>` between two times, by read and write verb."""
    user = f"system:serviceaccount:{BENCH_NAMESPACE}:{account}"
    counts = {"read": 0, "write": 0, "watch": 0}
    for path in audit_log_files():
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                if user not in line:
                    continue
                entry = json.loads(line)
                # Exactly this user: `...:argo-workflow` is a prefix of `...:argo-workflow-controller`.
                if entry.get("stage") != "ResponseComplete" or entry.get("user", {}).get("username") != user:
                    continue
                when = _timestamp(entry.get("requestReceivedTimestamp", ""))
                if not since <= when <= until:
                    continue
                counts[request_kind(entry.get("verb", ""))] += 1
    return counts


def audit_log_files() -> list[Path]:
    """The audit log and its rotated copies (the API server renames them `audit-<time>.log`), oldest first."""
    rotated = AUDIT_LOG.parent.glob(f"{AUDIT_LOG.stem}-*{AUDIT_LOG.suffix}")
    return sorted({*rotated, *AUDIT_LOG.parent.glob(AUDIT_LOG.name + "*")}, key=lambda p: p.stat().st_mtime)


def request_kind(verb: str) -> str:
    """An audited request's verb as `read` (get, list), `watch` or `write` (everything else)."""
    return "watch" if verb == "watch" else "read" if verb in ("get", "list") else "write"


def _timestamp(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() if text else 0.0


def proc_usage(pid: int) -> tuple[float, float]:
    """(peak RSS MiB, CPU seconds) of a live process."""
    status = Path(f"/proc/{pid}/status").read_text()
    hwm = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return hwm / 1024, (int(fields[11]) + int(fields[12])) / ticks


def current_rss(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")) / 1024


def handoffs(
    watch: PodWatch, upstream_of: dict[str, list[str]], task_of: Callable[[str], str | None] | None = None
) -> list[float]:
    """Seconds from a task's last upstream pod finishing to its pod being created, for each task.

    `task_of(pod name)` names a pod's task (default: its `kdag.dev/task` label, as kdag's pods carry it)."""
    by_task: dict[str, tuple[float | None, float | None]] = {}
    for pod, times in watch.pods.items():
        task = task_of(pod) if task_of is not None else watch.labels[pod].get("kdag.dev/task")
        if task:
            by_task[task] = (times.added, times.terminated)
    gaps = []
    for task, ups in upstream_of.items():
        added = by_task.get(task, (None, None))[0]
        ends = [by_task.get(u, (None, None))[1] for u in ups]
        if ups and added is not None and all(e is not None for e in ends):
            gaps.append(added - max(e for e in ends if e is not None))
    return gaps


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def run_once(admin: str, process: ControllerProcess, manifest: dict[str, Any]) -> dict[str, Any]:
    """Apply the DAG, trigger a run, wait for it; what it cost."""
    name = manifest["metadata"]["name"]
    upstream_of = {t["id"]: list(t.get("upstream") or []) for t in manifest["spec"]["tasks"]}
    kubectl(admin, "apply", "-n", BENCH_NAMESPACE, "--server-side", "-f", "-", stdin=json.dumps(manifest))
    writes_before = _writes(process)
    watch = PodWatch(BENCH_NAMESPACE, selector=f"kdag.dev/dag={name}")
    watch.start()
    run = f"{name}-{uuid.uuid4().hex[:6]}"
    started = time.time()
    kubectl(admin, "create", "-n", BENCH_NAMESPACE, "-f", "-", stdin=json.dumps({
        "apiVersion": "kdag.dev/v1alpha1", "kind": "DAGRun", "metadata": {"name": run},
        "spec": {"dagRef": {"name": name}},
    }))  # fmt: skip
    phase = ""
    while time.time() - started < 3600:
        phase = kubectl(admin, "get", "dagrun", run, "-n", BENCH_NAMESPACE, "-o", "jsonpath={.status.phase}")
        if phase in ("Succeeded", "Failed"):
            break
        time.sleep(1)
    wall = time.time() - started
    time.sleep(2)  # the last events reach the watch and the audit log
    watch.stop()
    assert process.process is not None
    rss, cpu = proc_usage(process.process.pid)
    n = len(upstream_of)
    audit = audit_counts(CONTROLLER_ACCOUNT, started, time.time())
    gaps = handoffs(watch, upstream_of)
    return {
        "tasks": n,
        "phase": phase,
        "wall_s": round(wall, 1),
        "writes_per_task": round((_writes(process) - writes_before) / n, 2),
        "audit_per_task": {k: round(v / n, 2) for k, v in audit.items()},
        "handoff_p50_ms": round(percentile(gaps, 0.5) * 1e3),
        "handoff_p99_ms": round(percentile(gaps, 0.99) * 1e3),
        "peak_rss_mib": round(rss, 1),
        "rss_mib": round(current_rss(process.process.pid), 1),
        "cpu_s": round(cpu, 1),
        "run": run,
    }


def _writes(process: ControllerProcess) -> float:
    return sum(metric_samples(process.metrics(), "kdag_api_writes_total").values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 5000])
    parser.add_argument("--shape", choices=("fan", "layers"), default="fan")
    parser.add_argument("--keep-runs", type=int, default=0)
    args = parser.parse_args()
    admin = os.environ["KUBECONFIG"]
    apply_controller_prerequisites(admin)
    config = account_kubeconfig(admin, BENCH_NAMESPACE, CONTROLLER_ACCOUNT)
    log = Path(tempfile.mkdtemp(prefix="kdag-scale-")) / "controller.log"
    process = ControllerProcess(kubeconfig=config, log_path=log)
    process.start()
    build = fan_dag if args.shape == "fan" else layers_dag
    try:
        print("| tasks | run | wall | writes/task (controller) | requests/task (audit: read, write, watch)"
              " | handoff p50 / p99 | peak RSS | CPU |")  # fmt: skip
        print("| ---: | --- | ---: | ---: | --- | ---: | ---: | ---: |")
        for n in args.sizes:
            result = run_once(admin, process, build(f"scale-{args.shape}-{n}", n))
            audit = result["audit_per_task"]
            print(
                f"| {n:,} | {result['phase']} | {result['wall_s']} s | {result['writes_per_task']}"
                f" | {audit['read']}, {audit['write']}, {audit['watch']}"
                f" | {result['handoff_p50_ms']} / {result['handoff_p99_ms']} ms"
                f" | {result['peak_rss_mib']} MiB | {result['cpu_s']} s |",
                flush=True,
            )
        if args.keep_runs:
            n = max(args.sizes)
            for _ in range(args.keep_runs - 1):
                run_once(admin, process, build(f"scale-{args.shape}-{n}", n))
            count = len(kubectl(admin, "get", "taskruns", "-n", BENCH_NAMESPACE, "-o", "name").split())
            assert process.process is not None
            before = current_rss(process.process.pid)
            process.stop()
            process.start()
            time.sleep(30)  # the restarted controller has listed and watched every TaskRun by now
            assert process.process is not None
            print(
                f"\nTaskRuns in the cluster: {count:,}; controller RSS {before:.1f} MiB after the runs,"
                f" {current_rss(process.process.pid):.1f} MiB 30 s after a restart"
                f" (peak {proc_usage(process.process.pid)[0]:.1f} MiB)"
            )
    finally:
        process.stop()
        print(f"\ncontroller log: {log}")


if __name__ == "__main__":
    main()
