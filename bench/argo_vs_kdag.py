"""Argo Workflows against kdag: the same DAG shapes on the same cluster in one run, measured the same way.

Each shape runs once as a kdag DAG (a DAGRun of it) and once as an Argo Workflow (bench/argo: v4.0.5):

    chain10   10 Python tasks in a line, each passing a value on (kdag: XCom; Argo: output parameters),
              real pods of localhost/kdag-runner:dev
    fan100    root -> 100 -> join, the join given all 100 values (real pods): 102 tasks
    fan1000   root -> 998 -> join on KWOK's fake nodes, dependencies only (kdag: `command: ["true"]`):
              1,000 tasks
    fan5000   root -> 4,998 -> join on KWOK: 5,000 tasks
    layers1000, layers5000  1,000 / 5,000 tasks on KWOK in layers of 50, each after 8 tasks of the layer
              before (a join of thousands is more than Argo's `depends` expressions take: see bench/README.md)

Argo runs with its default DEFAULT_REQUEUE_TIME (10 s); chain10 also with 1 s, the interval of argo's own
e2e tests. Measured for both systems by the same code:

    wall       the run object (kdag's DAGRun, Argo's Workflow) created -> phase Succeeded, as a
               `kubectl get -w` of that object saw it
    handoff    upstream pod's containers all terminated -> downstream pod ADDED, from one pod watch
               (bench/handoff_latency.PodWatch); Argo's pods are mapped to tasks by their annotation
               workflows.argoproj.io/node-name, kdag's by their label kdag.dev/task (bench/scale.handoffs)
    requests   the API server's audit log (bench/scale.audit_counts): the controller's ServiceAccount
               (kdag-bench/kdag-controller, kdag-bench/argo-workflow-controller) per task, as read / write /
               watch, from the first object created (kdag: the DAG, then its DAGRun) until the controller has
               made no request for 12 s (so Argo's deletion of its pods, podGC, is in); beside it the task
               pods' own ServiceAccount (kdag-task, argo-workflow), and the controller's requests after
               Succeeded
    RSS, CPU   the controller process (/proc of its PID): peak RSS (VmHWM of a controller started afresh for
               each shape) and CPU seconds over the same window as the requests

One controller runs at a time (the other is stopped), each a host process acting as its ServiceAccount: kdag's
through bench/scale.account_kubeconfig and tests/controller_support.ControllerProcess, Argo's through
bench/argo/start. After each shape its objects are deleted (pods, TaskRuns, XCom ConfigMaps; the Workflow).

    tests/cluster/up --kwok && bench/argo/install
    KUBECONFIG=... .venv/bin/python bench/argo_vs_kdag.py [--shapes chain10 fan100 ...] [--budget-min 45]
    .venv/bin/python bench/argo_vs_kdag.py --plot-only /tmp/argo_vs_kdag-....json   # the PNG again

Argo's 5,000-task run is dropped (and says so) when the time spent so far plus five times its 1,000-task run
would pass `--budget-min`, and stopped (not finished) at the end of the budget. Results go to a JSON file
(`--json`, printed at the end) and the plot of cost against DAG size to `--plot` (bench/scale.png).
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent / "argo"))

import workflows  # bench/argo/workflows.py
from controller_support import (
    ControllerProcess,
    _stop_and_unregister,
    apply_controller_prerequisites,
    kubectl,
)
from handoff_latency import PodWatch, chain_dag
from kdag import names
from scale import (
    AUDIT_LOG,
    BENCH_NAMESPACE,
    CONTROLLER_ACCOUNT,
    _timestamp,
    account_kubeconfig,
    audit_counts,
    current_rss,
    fan_dag,
    handoffs,
    layers_dag,
    percentile,
    proc_usage,
    request_kind,
)
from submit import PID_FILE as ARGO_PID_FILE  # bench/argo/submit.py: where bench/argo/start writes the PID

BENCH = Path(__file__).resolve().parent
ARGO = BENCH / "argo"
ARGO_ACCOUNT = "argo-workflow-controller"
KDAG_TASK_ACCOUNT = "kdag-task"
ARGO_TASK_ACCOUNT = workflows.SERVICE_ACCOUNT
NODE_NAME_ANNOTATION = "workflows.argoproj.io/node-name"
# The controller made no request for this long: the shape's work is over. More than argo's pod GC delay (5 s)
# and its requeue interval (10 s), so that Argo's deletion of its pods is in.
QUIET_S = 12.0
FAN_VALUE = "kdag-bench"  # the fan's root value, as workflows.fan's (expected_fan_value)


@dataclass
class Shape:
    key: str
    title: str
    tasks: int
    kwok: bool
    kdag_dag: Callable[[str], dict[str, Any]]
    argo_workflow: Callable[[], dict[str, Any]]
    # on real pods, each system's proof that the values went through: {system: (task, its value)}
    expected: dict[str, tuple[str, str]] | None = None


def kdag_chain(name: str) -> dict[str, Any]:
    """bench/handoff_latency.chain_dag: t{i} returns (t{i-1}'s value or 0) + 1, real pods."""
    manifest = chain_dag(10)
    manifest["metadata"]["name"] = name
    return manifest


def kdag_python_fan(name: str, n: int = 100) -> dict[str, Any]:
    """root -> w0..w{n-1} -> join as Python tasks on real pods, the values of workflows.fan: the root returns
    'kdag-bench', w{i} its value + '-i', the join pulls all n and returns them sorted and comma-joined."""
    tasks: list[dict[str, Any]] = [
        {"id": "root", "python": {"source": f"def f(**_):\n    return {FAN_VALUE!r}\n", "callable": "f"}}
    ]
    for i in range(n):
        source = f"def f(ti, **_):\n    return ti.xcom_pull(task_ids='root') + '-{i}'\n"
        tasks.append({"id": f"w{i}", "upstream": ["root"], "python": {"source": source, "callable": "f"}})
    source = (
        "def f(ti, **_):\n"
        f"    return ','.join(sorted(ti.xcom_pull(task_ids=[f'w{{i}}' for i in range({n})])))\n"
    )
    workers = [f"w{i}" for i in range(n)]
    tasks.append({"id": "join", "upstream": workers, "python": {"source": source, "callable": "f"}})
    return {
        "apiVersion": "kdag.dev/v1alpha1",
        "kind": "DAG",
        "metadata": {"name": name},
        "spec": {"tasks": tasks},
    }


SHAPES = {
    shape.key: shape
    for shape in (
        Shape("chain10", "chain of 10 Python tasks passing a value, real pods", 10, False, kdag_chain,
              lambda: workflows.chain(10),
              expected={"kdag": ("t9", "10"), "argo": ("t9", workflows.expected_chain_value(10))}),
        Shape("fan100", "root -> 100 -> join (the join gets the 100 values), real pods", 102, False,
              kdag_python_fan, lambda: workflows.fan(100),
              expected={system: ("join", workflows.expected_fan_value(100, FAN_VALUE))
                        for system in ("kdag", "argo")}),
        Shape("fan1000", "root -> 998 -> join, KWOK", 1000, True, lambda name: fan_dag(name, 1000),
              lambda: workflows.fan(998, kwok=True)),
        Shape("fan5000", "root -> 4,998 -> join, KWOK", 5000, True, lambda name: fan_dag(name, 5000),
              lambda: workflows.fan(4998, kwok=True)),
        Shape("layers1000", "20 layers of 50, each task after 8 of the layer before, KWOK", 1000, True,
              lambda name: layers_dag(name, 1000), lambda: workflows.layers(1000)),
        Shape("layers5000", "100 layers of 50, each task after 8 of the layer before, KWOK", 5000, True,
              lambda name: layers_dag(name, 5000), lambda: workflows.layers(5000)),
    )
}  # fmt: skip


class PhaseWatch:
    """`kubectl get -w` of one named object (it may not exist yet): when it reached each phase, and its
    `status.progress`. Only the jsonpath's few fields reach this process, however large the object."""

    def __init__(self, admin: str, resource: str, name: str) -> None:
        self.admin, self.resource, self.name = admin, resource, name
        self.phase = ""
        self.progress = ""
        self.reached: dict[str, float] = {}
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        template = '{.metadata.name}{" "}{.status.phase}{" "}{.status.progress}{"\\n"}'
        self.process = subprocess.Popen(
            ["kubectl", "--kubeconfig", self.admin, "get", self.resource, "-n", BENCH_NAMESPACE,
             "--field-selector", f"metadata.name={self.name}", "-w", "-o", f"jsonpath={template}"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        threading.Thread(target=self._read, args=(self.process,), daemon=True).start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self._note(line.split(), time.time())

    def _note(self, fields: list[str], seen: float) -> None:
        if not fields or fields[0] != self.name:
            return
        self.phase = fields[1] if len(fields) > 1 else ""
        self.progress = fields[2] if len(fields) > 2 else self.progress
        if self.phase:
            self.reached.setdefault(self.phase, seen)

    def wait(self, done: tuple[str, ...], deadline: float) -> tuple[str, float | None]:
        """The first of `done` phases reached and when, or the phase at the deadline and None."""
        last_poll = time.time()
        while time.time() < deadline:
            for phase in done:
                if phase in self.reached:
                    return phase, self.reached[phase]
            if self.process is not None and self.process.poll() is not None:
                self.start()  # the API server ended the watch (after 30-60 min)
            if time.time() - last_poll > 15:  # a safety net; a phase seen only here is 15 s coarse at worst
                last_poll = time.time()
                text = kubectl(
                    self.admin, "get", self.resource, self.name, "-n", BENCH_NAMESPACE,
                    "-o", "jsonpath={.metadata.name} {.status.phase} {.status.progress}", check=False,
                )  # fmt: skip
                self._note(text.split(), last_poll)
            time.sleep(0.05)
        return self.phase, None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


class AuditTail:
    """Follows the audit log from now on (across a rotation) and keeps one user's audited requests: when
    the controller fell quiet, and its requests by verb and resource."""

    def __init__(self, account: str) -> None:
        self.user = f"system:serviceaccount:{BENCH_NAMESPACE}:{account}"
        self.needle = self.user.encode()
        self.file = AUDIT_LOG.open("rb")
        self.file.seek(0, os.SEEK_END)
        self.partial = b""
        self.entries: list[tuple[float, str, str]] = []  # (received, verb, resource[/subresource])
        self.last_new = time.time()

    def poll(self) -> None:
        found = self._read()
        try:
            rotated = os.stat(AUDIT_LOG).st_ino != os.fstat(self.file.fileno()).st_ino
        except FileNotFoundError:
            rotated = False
        if rotated:  # the old file is renamed, this handle still reads it; then the new one from its start
            found += self._read()
            self.file.close()
            self.file, self.partial = AUDIT_LOG.open("rb"), b""
            found += self._read()
        if found:
            self.last_new = time.time()

    def _read(self) -> int:
        lines = (self.partial + self.file.read()).split(b"\n")
        self.partial = lines.pop()
        found = 0
        for line in lines:
            if self.needle not in line:
                continue
            entry = json.loads(line)
            if entry.get("stage") != "ResponseComplete" or entry.get("user", {}).get("username") != self.user:
                continue
            ref = entry.get("objectRef", {})
            resource = ref.get("resource", entry.get("requestURI", "?"))
            if ref.get("subresource"):
                resource += "/" + ref["subresource"]
            received = _timestamp(entry.get("requestReceivedTimestamp", ""))
            self.entries.append((received, entry.get("verb", ""), resource))
            found += 1
        return found

    def wait_quiet(self, quiet: float, limit: float) -> float:
        """Wait until no request for `quiet` seconds (at most `limit`); the time it fell quiet."""
        deadline = time.time() + limit
        while time.time() < deadline:
            self.poll()
            if time.time() - self.last_new >= quiet:
                break
            time.sleep(0.5)
        return time.time()

    def by_resource(self, since: float, until: float) -> dict[str, int]:
        counts = Counter(
            f"{request_kind(verb)} {verb} {resource}"
            for when, verb, resource in self.entries
            if since <= when <= until
        )
        return dict(counts.most_common())

    def close(self) -> None:
        self.file.close()


def delete_collection(admin: str, path: str, selector: str) -> None:
    """One DELETE of a collection (the API server deletes the items itself, no request per object)."""
    kubectl(admin, "delete", "--raw", f"{path}?labelSelector={selector.replace('=', '%3D')}", check=False)


def wait_no_pods(admin: str, selector: str, limit: float = 600) -> int:
    deadline = time.time() + limit
    left = -1
    while time.time() < deadline:
        left = len(kubectl(admin, "get", "pods", "-n", BENCH_NAMESPACE, "-l", selector, "-o", "name").split())
        if not left:
            return 0
        time.sleep(2)
    return left


class Kdag:
    system = "kdag"
    account = CONTROLLER_ACCOUNT
    task_account = KDAG_TASK_ACCOUNT
    resource = "dagruns"
    done = ("Succeeded", "Failed")

    def __init__(self, admin: str, log: Path) -> None:
        self.admin = admin
        config = account_kubeconfig(admin, BENCH_NAMESPACE, CONTROLLER_ACCOUNT)
        self.process = ControllerProcess(kubeconfig=config, log_path=log)
        self.requeue = ""
        self.manifest: dict[str, Any] = {}

    def start(self) -> int:
        self.process.start()
        assert self.process.process is not None
        return int(self.process.process.pid)

    def stop(self) -> None:
        self.process.stop()

    def prepare(self, shape: Shape) -> str:
        """Applies the DAG (before the clock starts: its run is what is timed); the DAGRun's name."""
        self.manifest = shape.kdag_dag(f"avk-{shape.key}")
        kubectl(self.admin, "apply", "-n", BENCH_NAMESPACE, "--server-side", "-f", "-",
                stdin=json.dumps(self.manifest))  # fmt: skip
        return f"avk-{shape.key}-{uuid.uuid4().hex[:6]}"

    def upstream_of(self) -> dict[str, list[str]]:
        return {t["id"]: list(t.get("upstream") or []) for t in self.manifest["spec"]["tasks"]}

    def selector(self, run: str) -> str:
        return f"kdag.dev/dagrun={run}"

    def task_of(self, watch: PodWatch, run: str) -> Callable[[str], str | None]:
        return lambda pod: watch.labels[pod].get("kdag.dev/task")

    def submit(self, run: str) -> None:
        run_manifest = {
            "apiVersion": "kdag.dev/v1alpha1", "kind": "DAGRun", "metadata": {"name": run},
            "spec": {"dagRef": {"name": self.manifest["metadata"]["name"]}},
        }  # fmt: skip
        kubectl(self.admin, "create", "-n", BENCH_NAMESPACE, "-f", "-", stdin=json.dumps(run_manifest))

    def value(self, run: str, task: str) -> str:
        configmap = names.xcom_configmap_name(run, task)
        text: str = kubectl(
            self.admin, "get", "configmap", configmap, "-n", BENCH_NAMESPACE,
            "-o", "jsonpath={.data.return_value}", check=False,
        )  # fmt: skip
        return text.strip()

    def failure(self, run: str) -> str:
        text: str = kubectl(
            self.admin, "get", "dagrun", run, "-n", BENCH_NAMESPACE, "-o", "json", check=False
        )
        try:
            status = json.loads(text).get("status", {})
        except json.JSONDecodeError:
            return text.strip()[:500]
        conditions = [
            f"{c.get('type')}={c.get('status')} {c.get('reason', '')}: {c.get('message', '')}"
            for c in status.get("conditions", [])
        ]
        phases = kubectl(self.admin, "get", "taskruns", "-n", BENCH_NAMESPACE, "-l", self.selector(run), "-o",
                         "jsonpath={.items[*].status.phase}", check=False)  # fmt: skip
        pods = kubectl(self.admin, "get", "pods", "-n", BENCH_NAMESPACE, "-l", self.selector(run), "-o",
                       "jsonpath={.items[*].status.phase}", check=False)  # fmt: skip
        return (
            f"phase {status.get('phase')}, progress {status.get('progress')}; {'; '.join(conditions)};"
            f" TaskRuns by phase {dict(Counter(phases.split()))}, pods by phase {dict(Counter(pods.split()))}"
        )

    def cleanup(self, run: str) -> int:
        """With the controller stopped (so it recreates nothing): the run's pods, TaskRuns and ConfigMaps,
        then the run and the DAG. Pods left after 10 min."""
        selector = self.selector(run)
        delete_collection(self.admin, f"/api/v1/namespaces/{BENCH_NAMESPACE}/pods", selector)
        delete_collection(
            self.admin, f"/apis/kdag.dev/v1alpha1/namespaces/{BENCH_NAMESPACE}/taskruns", selector
        )
        delete_collection(self.admin, f"/api/v1/namespaces/{BENCH_NAMESPACE}/configmaps", selector)
        for kind, name in (("dagrun", run), ("dag", self.manifest["metadata"]["name"])):
            kubectl(self.admin, "delete", kind, name, "-n", BENCH_NAMESPACE, "--ignore-not-found",
                    "--wait=false", check=False)  # fmt: skip
        return wait_no_pods(self.admin, selector)


class Argo:
    system = "argo"
    account = ARGO_ACCOUNT
    task_account = ARGO_TASK_ACCOUNT
    resource = "workflows"
    done = ("Succeeded", "Failed", "Error")

    def __init__(self, admin: str, requeue: str = "") -> None:
        self.admin = admin
        self.requeue = requeue  # "" is argo's default, 10s
        self.manifest: dict[str, Any] = {}

    def _script(self, name: str) -> None:
        env = {**os.environ, "KUBECONFIG": self.admin}
        env.pop("KDAG_ARGO_REQUEUE_TIME", None)
        if self.requeue:
            env["KDAG_ARGO_REQUEUE_TIME"] = self.requeue
        result = subprocess.run([str(ARGO / name)], env=env, capture_output=True, text=True, timeout=300)
        if result.returncode:
            raise RuntimeError(f"bench/argo/{name} failed ({result.returncode}): {result.stderr.strip()}")

    def start(self) -> int:
        self._script("stop")  # a fresh process: its peak RSS is this shape's
        self._script("start")
        return int(ARGO_PID_FILE.read_text().strip())

    def stop(self) -> None:
        self._script("stop")

    def prepare(self, shape: Shape) -> str:
        self.manifest = shape.argo_workflow()
        name = f"argo-{shape.key}-{uuid.uuid4().hex[:6]}"
        self.manifest["metadata"].pop("generateName", None)
        self.manifest["metadata"]["name"] = name
        return name

    def upstream_of(self) -> dict[str, list[str]]:
        dag = next(t for t in self.manifest["spec"]["templates"] if "dag" in t)
        return {
            t["name"]: t["depends"].split(" && ") if t.get("depends") else [] for t in dag["dag"]["tasks"]
        }

    def selector(self, name: str) -> str:
        return f"workflows.argoproj.io/workflow={name}"

    def task_of(self, watch: PodWatch, name: str) -> Callable[[str], str | None]:
        def task(pod: str) -> str | None:
            node = watch.annotations[pod].get(NODE_NAME_ANNOTATION, "")
            return node.removeprefix(f"{name}.") if node.startswith(f"{name}.") else None

        return task

    def submit(self, name: str) -> None:
        kubectl(self.admin, "create", "-f", "-", stdin=json.dumps(self.manifest))

    def nodes(self, name: str) -> dict[str, Any]:
        text = kubectl(self.admin, "get", "workflow", name, "-n", BENCH_NAMESPACE, "-o", "json", check=False)
        try:
            status = json.loads(text).get("status", {})
        except json.JSONDecodeError:
            return {}
        nodes: dict[str, Any] = status.get("nodes") or {}
        if not nodes and status.get("compressedNodes"):  # argo gzips them when the Workflow passes 1 MiB
            nodes = json.loads(gzip.decompress(base64.b64decode(status["compressedNodes"])))
        return nodes

    def value(self, name: str, task: str) -> str:
        for node in self.nodes(name).values():
            if node.get("type") == "Pod" and node.get("displayName") == task:
                params = node.get("outputs", {}).get("parameters", [])
                return next((str(p.get("value")) for p in params if p.get("name") == "value"), "")
        return ""

    def failure(self, name: str) -> str:
        text: str = kubectl(
            self.admin, "get", "workflow", name, "-n", BENCH_NAMESPACE, "-o", "json", check=False
        )
        try:
            status = json.loads(text).get("status", {})
        except json.JSONDecodeError:
            return text.strip()[:500]
        phases = Counter(n.get("phase") for n in self.nodes(name).values() if n.get("type") == "Pod")
        failed = [
            f"{n.get('displayName')}: {n.get('message')}"
            for n in self.nodes(name).values()
            if n.get("phase") in ("Failed", "Error")
        ][:3]
        return (
            f"phase {status.get('phase')}, progress {status.get('progress')},"
            f" message {status.get('message')!r}; pod nodes by phase {dict(phases)}"
            + (f"; {failed}" if failed else "")
        )

    def cleanup(self, name: str) -> int:
        selector = self.selector(name)
        kubectl(self.admin, "delete", "workflow", name, "-n", BENCH_NAMESPACE, "--ignore-not-found",
                "--wait=false", check=False)  # fmt: skip
        delete_collection(self.admin, f"/api/v1/namespaces/{BENCH_NAMESPACE}/pods", selector)
        delete_collection(
            self.admin,
            f"/apis/argoproj.io/v1alpha1/namespaces/{BENCH_NAMESPACE}/workflowtaskresults",
            selector,
        )
        return wait_no_pods(self.admin, selector)


System = Kdag | Argo


def identity(system: System, shape: Shape) -> dict[str, Any]:
    requeue = system.requeue or ("10s" if system.system == "argo" else "")
    return {
        "system": system.system,
        "requeue": requeue,
        "shape": shape.key,
        "title": shape.title,
        "tasks": shape.tasks,
        "kwok": shape.kwok,
    }


def measure(admin: str, system: System, shape: Shape, timeout: float) -> dict[str, Any]:
    """One run of `shape` on `system` with a freshly started controller; what it cost."""
    result = identity(system, shape)
    began = time.time()
    pid = system.start()
    name = ""
    watch: PodWatch | None = None
    phases: PhaseWatch | None = None
    tail = AuditTail(system.account)
    try:
        tail.wait_quiet(2, limit=60)  # the controller's start-up requests are over
        rss_idle = current_rss(pid)
        cpu_before = proc_usage(pid)[1]
        first = time.time()
        name = system.prepare(shape)  # kdag applies its DAG here: the controller's handling of it counts too
        result["name"] = name
        watch = PodWatch(BENCH_NAMESPACE, selector=system.selector(name))
        watch.start()
        phases = PhaseWatch(admin, system.resource, name)
        phases.start()
        time.sleep(1)  # both watches are established before the run exists
        created = time.time()
        system.submit(name)
        phase, done_at = phases.wait(system.done, created + timeout)
        result["phase"] = phase if done_at is not None else f"not finished in {timeout:.0f} s ({phase})"
        result["progress"] = phases.progress
        result["wall_s"] = round(done_at - created, 1) if done_at is not None else None
        finished = done_at if done_at is not None else time.time()
        quiet = tail.wait_quiet(QUIET_S, limit=600)
        time.sleep(1)  # the last lines of the audit log
        tail.poll()
        rss, cpu = proc_usage(pid)
        result["settle_s"] = round(quiet - finished, 1)
        n = shape.tasks
        audit = audit_counts(system.account, first, quiet)
        pods = audit_counts(system.task_account, first, quiet)
        after = tail.by_resource(finished, quiet)
        result["requests"] = audit
        result["requests_per_task"] = {k: round(v / n, 2) for k, v in audit.items()}
        result["requests_per_task_total"] = round(sum(audit.values()) / n, 2)
        result["requests_after_done"] = sum(after.values())
        result["requests_by_resource"] = tail.by_resource(first, quiet)
        result["task_pod_requests_per_task"] = round(sum(pods.values()) / n, 2)
        result["task_pod_requests"] = pods
        result["rss_idle_mib"] = round(rss_idle, 1)
        result["peak_rss_mib"] = round(rss, 1)
        result["cpu_s"] = round(cpu - cpu_before, 1)
        watch.stop()
        phases.stop()
        gaps = handoffs(watch, system.upstream_of(), system.task_of(watch, name))
        result["pods_seen"] = len(watch.pods)
        result["pod_watch_restarts"] = watch.restarts
        result["handoffs"] = len(gaps)
        result["handoff_p50_ms"] = round(percentile(gaps, 0.5) * 1e3) if gaps else None
        result["handoff_p99_ms"] = round(percentile(gaps, 0.99) * 1e3) if gaps else None
        result["handoff_max_ms"] = round(max(gaps) * 1e3) if gaps else None
        if shape.expected is not None:
            task, expected = shape.expected[system.system]
            got = system.value(name, task)
            result["value"] = f"{task} = {got!r}" + ("" if got == expected else f" (expected {expected!r})")
            result["value_ok"] = got == expected
        if result["phase"] != "Succeeded":
            result["error"] = system.failure(name)
    finally:
        if watch is not None:
            watch.stop()
        if phases is not None:
            phases.stop()
        tail.close()
        system.stop()
        if name:
            left = system.cleanup(name)
            if left:
                result["cleanup"] = f"{left} pods still there 10 min after their deletion"
    result["cluster_s"] = round(time.time() - began, 1)
    return result


def row(r: dict[str, Any]) -> str:
    system = "kdag" if r["system"] == "kdag" else f"Argo ({r['requeue']} requeue)"
    if r.get("skipped"):
        return f"| {r['shape']} | {r['tasks']:,} | {system} | dropped: {r['skipped']} | | | | | | |"
    if "requests_per_task" not in r:
        return f"| {r['shape']} | {r['tasks']:,} | {system} | {r.get('error', '?')} | | | | | | |"
    per = r["requests_per_task"]
    wall = f"{r['wall_s']} s" if r.get("wall_s") is not None else "-"
    handoff = (
        f"{r['handoff_p50_ms']:,} / {r['handoff_p99_ms']:,} ms (n={r['handoffs']})"
        if r.get("handoff_p50_ms") is not None
        else "-"
    )
    phase = r["phase"] if r.get("value_ok", True) else f"{r['phase']}, wrong value"
    return (
        f"| {r['shape']} | {r['tasks']:,} | {system} | {phase} | {wall} | {handoff}"
        f" | {r['requests_per_task_total']} ({per['read']} / {per['write']} / {per['watch']})"
        f" | {r['requests_after_done']:,} | {r['task_pod_requests_per_task']}"
        f" | {r['peak_rss_mib']} MiB | {r['cpu_s']} s |"
    )


HEADER = (
    "| shape | tasks | system | result | wall | handoff p50 / p99 | controller requests/task"
    " (read / write / watch) | of them after Succeeded | task pods' requests/task | peak RSS | CPU |\n"
    "| --- | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
)


def plot(results: list[dict[str, Any]], path: Path) -> None:
    """Wall time and controller requests per task against DAG size, fan shape: 102 real pods, then 1,000
    and 5,000 tasks on KWOK; kdag and Argo (default 10 s requeue). Failed or dropped runs are named."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import ScalarFormatter

    if not any(r["shape"].startswith("fan") and r.get("phase") == "Succeeded" for r in results):
        print("no fan run succeeded: no plot")
        return
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.4))
    styles = {"kdag": ("tab:blue", "kdag"), "argo": ("tab:orange", "Argo Workflows v4.0.5 (10 s requeue)")}
    notes: list[tuple[str, str]] = []
    for system, (color, label) in styles.items():
        fans = [r for r in results if r["system"] == system and r["shape"].startswith("fan")]
        fans = [r for r in fans if r.get("requeue", "") in ("", "10s")]
        points = sorted((r for r in fans if r.get("phase") == "Succeeded"), key=lambda r: r["tasks"])
        for axis, key in ((left, "wall_s"), (right, "requests_per_task_total")):
            axis.plot([r["tasks"] for r in points], [r[key] for r in points], "-", color=color, label=label)
            for r in points:
                axis.plot(
                    [r["tasks"]],
                    [r[key]],
                    "o" if r["kwok"] else "s",
                    color=color,
                    markerfacecolor=color if r["kwok"] else "white",
                )
                axis.annotate(
                    f"{r[key]:g}",
                    (r["tasks"], r[key]),
                    textcoords="offset points",
                    xytext=(5, 4),
                    fontsize=8,
                    color=color,
                )
        for r in fans:
            if r.get("phase") == "Succeeded":
                continue
            if r.get("wall_s") is not None:  # ended otherwise (Failed, Error): an x where it ended, no line
                for axis, key in ((left, "wall_s"), (right, "requests_per_task_total")):
                    axis.plot([r["tasks"]], [r[key]], "x", color=color, markersize=8)
                    text = f"{r[key]:g} ({r['phase']})"
                    axis.annotate(text, (r["tasks"], r[key]), textcoords="offset points", xytext=(5, -12),
                                  fontsize=8, color=color)  # fmt: skip
            why = (
                "dropped (time budget)"
                if r.get("skipped")
                else f"{r.get('phase', 'failed')} (x: where it ended)"
            )
            notes.append((f"{label.split(' (')[0]}, {r['tasks']:,} tasks: {why}", color))
    left.set(
        xscale="log", yscale="log", xlabel="tasks in the DAG", title="wall time, created -> Succeeded (s)"
    )
    right.set(xscale="log", xlabel="tasks in the DAG", title="controller API requests per task (audit log)")
    right.set_ylim(bottom=0)
    left.yaxis.set_major_formatter(ScalarFormatter())
    left.yaxis.set_minor_formatter(ScalarFormatter())
    for axis in (left, right):
        axis.set_xlim(70, 9000)
        axis.set_xticks([102, 1000, 5000], ["102\n(real pods)", "1,000\n(KWOK)", "5,000\n(KWOK)"])
        axis.grid(True, which="both", alpha=0.3)
    left.legend(fontsize=8, loc="upper left")
    for i, (note, color) in enumerate(notes):
        left.annotate(note, xy=(0.02, 0.80 - 0.06 * i), xycoords="axes fraction", fontsize=8, color=color)
    figure.suptitle(
        "root -> N-2 parallel tasks -> join, one run each, on one 2-core single-node cluster;"
        " hollow: real pods, filled: KWOK fake nodes",
        fontsize=9,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", nargs="+", choices=list(SHAPES), default=list(SHAPES))
    parser.add_argument("--timeout", type=float, default=1200, help="seconds one run may take to finish")
    parser.add_argument("--budget-min", type=float, default=45, help="drop Argo's 5,000 run past this")
    parser.add_argument("--argo-max-tasks", type=int, default=5000, help="drop Argo's larger shapes")
    parser.add_argument(
        "--json",
        type=Path,
        default=Path(tempfile.gettempdir()) / f"argo_vs_kdag-{time.strftime('%Y%m%dT%H%M%S')}.json",
    )
    parser.add_argument("--plot", type=Path, default=BENCH / "scale.png")
    parser.add_argument("--plot-only", type=Path, help="draw --plot from this JSON of an earlier run")
    args = parser.parse_args()
    if args.plot_only:
        plot(json.loads(args.plot_only.read_text())["results"], args.plot)
        print(args.plot)
        return
    admin = os.environ["KUBECONFIG"]
    started = time.time()
    apply_controller_prerequisites(admin)
    log = Path(tempfile.mkdtemp(prefix="argo-vs-kdag-")) / "kdag-controller.log"
    kdag = Kdag(admin, log)
    runs: list[tuple[Shape, System]] = []
    for key in args.shapes:
        runs += [(SHAPES[key], kdag), (SHAPES[key], Argo(admin))]
        if key == "chain10":
            runs.append((SHAPES[key], Argo(admin, requeue="1s")))
    results: list[dict[str, Any]] = []
    report: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "argv": sys.argv[1:],
        "results": results,
    }
    print(HEADER, flush=True)
    try:
        for shape, system in runs:
            if isinstance(system, Argo) and shape.tasks > args.argo_max_tasks:
                reason = f"over the cluster-time budget (--argo-max-tasks {args.argo_max_tasks})"
                results.append({**identity(system, shape), "skipped": reason})
                print(row(results[-1]), flush=True)
                continue
            if isinstance(system, Argo) and shape.key == "fan5000":
                smaller = next(
                    (r for r in results if r["system"] == "argo" and r["shape"] == "fan1000"), None
                )
                estimate = 5 * smaller["cluster_s"] if smaller and "cluster_s" in smaller else 0.0
                spent = time.time() - started
                if spent + estimate > args.budget_min * 60:
                    results.append(
                        {
                            "system": "argo",
                            "requeue": "10s",
                            "shape": shape.key,
                            "tasks": shape.tasks,
                            "kwok": True,
                            "skipped": f"{spent / 60:.0f} min spent, 5 x Argo's 1,000 run "
                            f"({estimate / 60:.0f} min) would pass the {args.budget_min:.0f} min budget",
                        }
                    )
                    print(row(results[-1]), flush=True)
                    continue
            timeout = args.timeout
            if (
                isinstance(system, Argo) and shape.key == "fan5000"
            ):  # within the budget, 2 min kept to clean up
                timeout = min(timeout, max(300.0, started + args.budget_min * 60 - time.time() - 120))
            try:
                result = measure(admin, system, shape, timeout)
            except Exception as error:  # one shape failing is a result; the others still run
                result = {
                    **identity(system, shape),
                    "error": f"{type(error).__name__}: {error}",
                }
            results.append(result)
            print(row(result), flush=True)
            args.json.write_text(json.dumps(report, indent=1))
    finally:
        kdag.stop()
        _stop_and_unregister(admin, kdag.process)  # no webhook left pointing at a port nobody serves
        report["duration_s"] = round(time.time() - started, 1)
        args.json.write_text(json.dumps(report, indent=1))
    print(f"\nresults {args.json}; kdag controller log {log}; {report['duration_s'] / 60:.1f} min in all")
    for r in results:
        if r.get("error"):
            print(f"{r['system']} {r['requeue']} {r['shape']}: {r['error']}")
        if r.get("requests_by_resource"):
            top = ", ".join(f"{k} {v}" for k, v in list(r["requests_by_resource"].items())[:8])
            print(f"{r['system']} {r['requeue']} {r['shape']} requests: {top}")
    plot(results, args.plot)
    print(f"plot {args.plot}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
