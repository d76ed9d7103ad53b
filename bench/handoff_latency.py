"""Handoff latency and API writes per task of the in-cluster controller (the Helm chart), on a real cluster.

Installs charts/kdag in its own namespace with the local images, runs a chain of N trivial Python tasks R
times (each task pulls its upstream's XCom and pushes one), and watches the pods from here:

    handoff to created  = downstream pod ADDED      - upstream pod's containers all terminated
    handoff to started  = downstream pod's container running - upstream pod's containers all terminated

(times are when this process saw the watch events, so both include the watch's delivery delay, a few ms).
API writes per task are read from the controller's `kdag_api_writes_total` through the API server's pod proxy,
plus the one server-side apply each task pod makes (docs/design.md). Usage:

    KUBECONFIG=... .venv/bin/python bench/handoff_latency.py [--tasks 6] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
CHART = REPO / "charts" / "kdag"
RELEASE = "kdag-bench"
DAG = "bench-chain"


def kubectl(*args: str, stdin: str | None = None) -> str:
    result = subprocess.run(["kubectl", *args], input=stdin, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise SystemExit(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def helm_binary() -> str:
    built = subprocess.run(
        [str(REPO / "tests" / "helm" / "build-helm")], capture_output=True, text=True, check=True
    )
    return built.stdout.strip().splitlines()[-1]


def chain_dag(tasks: int) -> dict[str, Any]:
    """t0 -> t1 -> ... : each task adds one to its upstream's return value."""
    spec_tasks: list[dict[str, Any]] = []
    for i in range(tasks):
        source = "def step(ti, **_):\n"
        source += f"    return (ti.xcom_pull(task_ids='t{i - 1}') or 0) + 1\n" if i else "    return 1\n"
        task: dict[str, Any] = {"id": f"t{i}", "python": {"source": source, "callable": "step"}}
        if i:
            task["upstream"] = [f"t{i - 1}"]
        spec_tasks.append(task)
    return {
        "apiVersion": "kdag.dev/v1alpha1",
        "kind": "DAG",
        "metadata": {"name": DAG},
        "spec": {"tasks": spec_tasks},  # no schedule: creating it starts no run (the bench triggers them)
    }


@dataclass
class PodTimes:
    added: float | None = None
    running: float | None = None
    terminated: float | None = None


@dataclass
class PodWatch:
    """Watches the namespace's pods (a watch request through `kubectl get --raw`: one JSON event a line, which
    kubectl only copies) and notes when each pod reached each state."""

    namespace: str
    selector: str = "kdag.dev/dagrun"
    """Label selector of the pods to watch (Argo's: workflows.argoproj.io/workflow)."""
    pods: dict[str, PodTimes] = field(default_factory=dict)
    labels: dict[str, dict[str, str]] = field(default_factory=dict)
    annotations: dict[str, dict[str, str]] = field(default_factory=dict)
    process: subprocess.Popen[str] | None = None
    restarts: int = 0
    """Times the watch ended before `stop` (the API server closes a watch whose client reads too slowly, and
    any after its timeout) and was started again from the last resourceVersion seen: no event is missed."""
    stopping: bool = False
    resource_version: str = ""

    def start(self) -> None:
        self.stopping = False
        self._spawn()

    def _spawn(self) -> None:
        query = {"watch": "1", "labelSelector": self.selector, "timeoutSeconds": "3600"}
        if self.resource_version:
            query |= {"resourceVersion": self.resource_version, "allowWatchBookmarks": "true"}
        path = f"/api/v1/namespaces/{self.namespace}/pods?{urllib.parse.urlencode(query)}"
        self.process = subprocess.Popen(["kubectl", "get", "--raw", path], stdout=subprocess.PIPE, text=True)
        threading.Thread(target=self._read, args=(self.process,), daemon=True).start()

    def stop(self) -> None:
        self.stopping = True
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            pod = event.get("object") or {}
            if event.get("type") == "ERROR":  # 410 Gone: the resourceVersion is too old; list anew
                self.resource_version = ""
                continue
            self.resource_version = pod.get("metadata", {}).get("resourceVersion") or self.resource_version
            if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                self._note(pod, time.time())
        process.wait()
        if not self.stopping and self.restarts < 100:
            self.restarts += 1
            self._spawn()

    def _note(self, pod: dict[str, Any], seen: float) -> None:
        name = pod["metadata"]["name"]
        times = self.pods.setdefault(name, PodTimes())
        self.labels[name] = pod["metadata"].get("labels", {})
        self.annotations[name] = pod["metadata"].get("annotations", {})
        if times.added is None:
            times.added = seen
        statuses = pod.get("status", {}).get("containerStatuses", [])
        if times.running is None and any("running" in s.get("state", {}) for s in statuses):
            times.running = seen
        if times.running is None and any("terminated" in s.get("state", {}) for s in statuses):
            times.running = seen  # a container that finished between two events was running before
        if (
            times.terminated is None
            and statuses
            and all("terminated" in s.get("state", {}) for s in statuses)
        ):
            times.terminated = seen


def controller_writes(namespace: str) -> dict[str, float]:
    """kdag_api_writes_total of the controller pod, by verb and resource."""
    pod = kubectl("get", "pods", "-n", namespace, "-l", "app.kubernetes.io/name=kdag", "-o", "name").split()[
        0
    ]
    text = kubectl(
        "get", "--raw", f"/api/v1/namespaces/{namespace}/pods/{pod.split('/')[1]}:9090/proxy/metrics"
    )
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("kdag_api_writes_total{"):
            key, value = line.rsplit(" ", 1)
            samples[key[len("kdag_api_writes_total") :]] = float(value)
    return samples


def apply_when_webhook_answers(namespace: str, manifest: str, timeout: float = 60) -> None:
    """Server-side apply, retried while the new webhook Service is not routed yet (a second or two)."""
    deadline = time.monotonic() + timeout
    while True:
        command = ["kubectl", "apply", "--server-side", "-n", namespace, "-f", "-"]
        result = subprocess.run(command, input=manifest, capture_output=True, text=True, timeout=60)
        if result.returncode == 0:
            return
        if "failed calling webhook" not in result.stderr or time.monotonic() > deadline:
            raise SystemExit(f"kubectl apply: {result.stderr.strip()}")
        time.sleep(2)


def wait_finished(namespace: str, run: str, timeout: float = 600) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        phase = kubectl("get", "dagrun", run, "-n", namespace, "-o", "jsonpath={.status.phase}")
        if phase in ("Succeeded", "Failed"):
            return phase
        time.sleep(0.5)
    raise SystemExit(f"run {run} did not finish in {timeout} s")


def summary(values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    p90 = ms[min(len(ms) - 1, int(len(ms) * 0.9))]
    return (
        f"n={len(ms)} median={statistics.median(ms):.0f} ms p90={p90:.0f} ms min={ms[0]:.0f} max={ms[-1]:.0f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=6, help="tasks in the chain")
    parser.add_argument("--runs", type=int, default=3, help="runs of the chain, one after the other")
    parser.add_argument("--namespace", default="kdag-bench")
    parser.add_argument("--keep", action="store_true", help="leave the release and namespace installed")
    args = parser.parse_args()
    namespace = args.namespace
    helm = helm_binary()

    if kubectl("get", "namespace", namespace, "--ignore-not-found", "-o", "name").strip():
        raise SystemExit(f"namespace {namespace} exists; delete it or pass --namespace")
    kubectl("create", "namespace", namespace)
    guard = bool(
        kubectl("get", "validatingadmissionpolicy", "kdag-xcom-guard", "--ignore-not-found", "-o", "name")
    )
    values = [
        "image.repository=localhost/kdag-controller", "image.tag=dev", "image.pullPolicy=Never",
        "runnerImage.repository=localhost/kdag-runner", "runnerImage.tag=dev", "runnerImage.pullPolicy=Never",
        "rbac.scope=namespace", f"xcomGuard.create={str(not guard).lower()}",
    ]  # fmt: skip
    # Without cluster DNS (the test cluster) kopf logs in through kubernetes.default.svc: map it by hand.
    api_ip = kubectl("get", "service", "kubernetes", "-n", "default", "-o", "jsonpath={.spec.clusterIP}")
    values += [f"hostAliases[0].ip={api_ip}", "hostAliases[0].hostnames[0]=kubernetes.default.svc"]
    install = [helm, "install", RELEASE, str(CHART), "-n", namespace, "--wait", "--timeout", "240s"]
    for value in values:
        install += ["--set", value]
    subprocess.run(install, check=True, capture_output=True, text=True)
    watch = PodWatch(namespace)
    try:
        apply_when_webhook_answers(namespace, yaml.safe_dump(chain_dag(args.tasks)))
        watch.start()
        before = controller_writes(namespace)
        to_created: list[float] = []
        to_started: list[float] = []
        run_seconds: list[float] = []
        for index in range(args.runs):
            run = f"{DAG}-bench-{index}"
            started = time.time()
            run_manifest = {
                "apiVersion": "kdag.dev/v1alpha1",
                "kind": "DAGRun",
                "metadata": {"name": run},
                "spec": {"dagRef": {"name": DAG}},
            }
            kubectl("create", "-n", namespace, "-f", "-", stdin=json.dumps(run_manifest))
            phase = wait_finished(namespace, run)
            run_seconds.append(time.time() - started)
            if phase != "Succeeded":
                raise SystemExit(f"run {run} {phase}")
            time.sleep(1)  # the last watch events
            by_task = {
                watch.labels[pod].get("kdag.dev/task"): times
                for pod, times in watch.pods.items()
                if watch.labels[pod].get("kdag.dev/dagrun") == run
            }
            for i in range(1, args.tasks):
                upstream, downstream = by_task[f"t{i - 1}"], by_task[f"t{i}"]
                assert upstream.terminated and downstream.added and downstream.running, (
                    i,
                    upstream,
                    downstream,
                )
                to_created.append(downstream.added - upstream.terminated)
                to_started.append(downstream.running - upstream.terminated)
        after = controller_writes(namespace)
        task_count = args.tasks * args.runs
        writes = {key: (after.get(key, 0) - before.get(key, 0)) / task_count for key in after}
        print(f"chain of {args.tasks} tasks x {args.runs} runs, in-cluster controller ({namespace})")
        print(f"handoff to created  {summary(to_created)}")
        print(f"handoff to started  {summary(to_started)}")
        print(f"run wall time       {summary(run_seconds)}")
        print("controller API writes per task:")
        for key, value in sorted(writes.items()):
            if value:
                print(f"  {key:60s} {value:.2f}")
        print(
            f"  total {sum(writes.values()):.2f} (+1 server-side apply of the XCom ConfigMap by the task pod)"
        )
    finally:
        watch.stop()
        if not args.keep:
            kubectl("delete", "dags,dagruns", "--all", "-n", namespace, "--wait=true", "--timeout=120s")
            subprocess.run(
                [helm, "uninstall", RELEASE, "-n", namespace, "--wait"], check=False, capture_output=True
            )
            kubectl("delete", "namespace", namespace, "--wait=false")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
