"""A run survives chaos: 54 tasks with retries and XComs while the host controller is SIGKILLed 10 times at
random moments (and started again, as tests/e2e/test_restart.py does), the API server is restarted once and
the kubelet once.

Then: the run Succeeded; every task has one TaskRun, one successful attempt, one pod per attempt (none made
twice) and no try beyond its deliberate failures and the tries the API server's restart failed; every XCom
is the exact value the tasks compute; deleting the run leaves none of its TaskRuns, pods or ConfigMaps.
The counts go to `chaos-summary.json` in the test's tmp dir and one `chaos: ...` line on stdout (`-s`/`-rA`).

It restarts cluster daemons, so it runs with the tests that go last (`cluster_lifecycle`), once no other
test session uses the cluster, under its own controller: the session's host controllers are stopped
meanwhile (as the chart and HA tests do) and started again afterwards, with the cluster healthy.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from chaos_plan import (
    APISERVER,
    CONTROLLER,
    KUBELET,
    LAYER_WIDTHS,
    ChaosTask,
    Disruption,
    attempt_findings,
    build_dag,
    dag_spec,
    disruption_plan,
    xcom_findings,
)
from cluster_daemons import (
    make_cluster_healthy,
    restart_daemon,
    why_daemons_cannot_restart,
)
from controller_support import (
    WEBHOOK_CONFIGURATION,
    ControllerProcess,
    apply_controller_prerequisites,
    running_controllers,
)
from kdag import manifests, names
from kdag.kube import CONFIGMAP, DAGRUN, POD, TASKRUN
from kdag_runner import keys, store
from kube_helpers import (
    create_namespace,
    delete_namespace,
    get_object,
    kubectl,
    list_objects,
    sole_user_of_cluster,
    wait_for,
)

SEED = int(os.environ.get("KDAG_CHAOS_SEED", "1"))
"""The DAG and the plan of blows come from it; set KDAG_CHAOS_SEED to try another."""
CONTROLLER_KILLS = 10
DAG_NAME = "chaos"
RUN_TIMEOUT = 420.0
"""Seconds from the run's creation to its end, every blow included."""
RUN_FINISHED = ("Succeeded", "Failed")
TASK_FINISHED = ("Succeeded", "Failed", "UpstreamFailed", "Skipped")


@dataclass
class ChaosCluster:
    kubeconfig: str
    namespace: str
    controller: ControllerProcess
    """This test's own host controller, the only one running while it does."""


@pytest.fixture
def chaos_cluster(kubeconfig: str, tmp_path: Path) -> Iterator[ChaosCluster]:
    reason = why_daemons_cannot_restart(kubeconfig)
    if reason:
        pytest.skip(reason)
    with sole_user_of_cluster():  # restarts would break other sessions' tests
        apply_controller_prerequisites(kubeconfig)
        shared = running_controllers()
        for host_controller in shared:
            host_controller.stop()
        own = ControllerProcess(kubeconfig=kubeconfig, log_path=tmp_path / "controller.log")
        namespace = create_namespace(kubeconfig, prefix="kdag-chaos")
        try:
            own.start()
            yield ChaosCluster(kubeconfig, namespace, own)
        finally:
            try:
                make_cluster_healthy(kubeconfig)
            finally:
                own.stop()
                if own.webhook_registered():  # nobody serves it now; a shared controller registers its own
                    kubectl(
                        "delete", "validatingwebhookconfiguration,mutatingwebhookconfiguration",
                        WEBHOOK_CONFIGURATION, "--ignore-not-found", kubeconfig=kubeconfig,
                    )
                delete_namespace(kubeconfig, namespace)
                for host_controller in shared:
                    host_controller.start()


@dataclass
class RunWatch:
    """What the test sees of the run as it goes: its phase, how many tasks finished, every uid each pod
    name had (a pod made twice shows two), and the controller exiting when nobody killed it (it is started
    again, as a Deployment would, and reported)."""

    cluster: ChaosCluster
    run_name: str
    started: float = field(default_factory=time.monotonic)
    uids_seen: dict[str, set[str]] = field(default_factory=dict)
    unexpected_exits: list[str] = field(default_factory=list)
    killed: bool = False
    phase: str | None = None
    finished: int = 0

    def elapsed(self) -> float:
        return round(time.monotonic() - self.started, 1)

    def look(self) -> None:
        kubeconfig, namespace = self.cluster.kubeconfig, self.cluster.namespace
        labels = {names.DAGRUN_LABEL: self.run_name}
        try:
            self.record_pods(list_objects(kubeconfig, POD, namespace, labels))
            taskruns = list_objects(kubeconfig, TASKRUN, namespace, labels)
            run = get_object(kubeconfig, DAGRUN, namespace, self.run_name) or {}
        except Exception:  # an answer that did not come is no news; the next look asks again
            return
        self.finished = sum((tr.get("status") or {}).get("phase") in TASK_FINISHED for tr in taskruns)
        self.phase = (run.get("status") or {}).get("phase")
        process = self.cluster.controller.process
        if not self.killed and process is not None and process.poll() is not None:
            self.unexpected_exits.append(f"exit code {process.returncode} at {self.elapsed()} s")
            self.cluster.controller.start(timeout=90)

    def record_pods(self, pods: list[dict[str, Any]]) -> None:
        for pod in pods:
            self.uids_seen.setdefault(pod["metadata"]["name"], set()).add(pod["metadata"]["uid"])

    def until(self, condition: Callable[[], bool], deadline: float, what: str) -> None:
        while True:
            self.look()
            if condition():
                return
            if time.monotonic() > deadline:
                finished = f"{self.finished} tasks finished"
                raise TimeoutError(f"{what} not reached after {self.elapsed()} s ({finished})")
            time.sleep(0.5)

    def idle(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.look()
            time.sleep(min(0.5, max(0.0, end - time.monotonic())))

    @property
    def run_finished(self) -> bool:
        return self.phase in RUN_FINISHED


def strike(
    watch: RunWatch,
    blow: Disruption,
    outages: list[tuple[float, float]],
    kubelet_restarts: list[tuple[float, float]],
) -> None:
    """One blow: the controller SIGKILLed, dead for a while, started again; or a daemon restarted."""
    if blow.target == CONTROLLER:
        watch.killed = True
        watch.cluster.controller.kill()
        watch.idle(blow.down_for)
        watch.cluster.controller.start(timeout=90)
        watch.killed = False
    else:
        went_down, served_again = restart_daemon(blow.target)
        if blow.target == APISERVER:
            outages.append((went_down, served_again))
        elif blow.target == KUBELET:
            kubelet_restarts.append((went_down, served_again))


@dataclass
class Chaos:
    """What the blows did: each one struck (when, how far the run was, how long it took), the API server's
    outages (epoch seconds), and what went wrong on the way."""

    struck: list[dict[str, Any]] = field(default_factory=list)
    outages: list[tuple[float, float]] = field(default_factory=list)
    kubelet_restarts: list[tuple[float, float]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    run_seconds: float = 0.0

    def count(self, target: str) -> int:
        return sum(record["target"] == target for record in self.struck)


def run_under_chaos(watch: RunWatch, plan: list[Disruption]) -> Chaos:
    """Deal the blows as the run goes, each once its share of tasks finished (and its delay passed, unless
    more finished meanwhile); then wait for the run's end."""
    chaos = Chaos()
    deadline = watch.started + RUN_TIMEOUT
    try:
        for blow in plan:

            def due(blow: Disruption = blow) -> bool:
                return watch.finished >= blow.after_finished or watch.run_finished

            watch.until(due, deadline, f"{blow.after_finished} finished tasks")
            if watch.finished == blow.after_finished:  # an overdue blow waits no more
                watch.idle(blow.delay)
            if watch.run_finished:
                chaos.problems.append(f"the run was {watch.phase} before {blow} could strike")
                continue
            at, finished = watch.elapsed(), watch.finished
            strike(watch, blow, chaos.outages, chaos.kubelet_restarts)
            took = round(watch.elapsed() - at, 1)
            chaos.struck.append({"target": blow.target, "at_s": at, "finished": finished, "took_s": took})
        watch.until(lambda: watch.run_finished, deadline, "the run's end")
    except (AssertionError, TimeoutError) as error:
        chaos.problems.append(f"chaos stopped: {error}")
    chaos.run_seconds = watch.elapsed()
    if len(chaos.struck) != len(plan):
        chaos.problems.append(f"{len(chaos.struck)} of the {len(plan)} blows struck while the run went on")
    chaos.problems += [f"the controller exited by itself: {exit_}" for exit_ in watch.unexpected_exits]
    return chaos


def leftovers(cluster: ChaosCluster, run: dict[str, Any]) -> list[str]:
    """What still exists of a deleted run: the run, its TaskRuns, its pods, ConfigMaps it owns or labels."""
    kubeconfig, namespace = cluster.kubeconfig, cluster.namespace
    name, uid = run["metadata"]["name"], run["metadata"]["uid"]
    labels = {names.DAGRUN_LABEL: name}
    left = [f"dagrun/{name}"] if get_object(kubeconfig, DAGRUN, namespace, name) else []
    for kind in (TASKRUN, POD):
        objects = list_objects(kubeconfig, kind, namespace, labels)
        left += [f"{kind.plural}/{obj['metadata']['name']}" for obj in objects]
    for configmap in list_objects(kubeconfig, CONFIGMAP, namespace):
        meta = configmap["metadata"]
        owned = any(owner.get("uid") == uid for owner in meta.get("ownerReferences") or [])
        if owned or (meta.get("labels") or {}).get(names.DAGRUN_LABEL) == name:
            left.append(f"configmaps/{meta['name']}")
    return left


def delete_and_find_leftovers(cluster: ChaosCluster, run: dict[str, Any]) -> list[str]:
    """Delete the run; what of it the garbage collector left after 3 minutes, or brought back 5 s later."""
    kubectl(
        "delete", "dagrun", run["metadata"]["name"], "-n", cluster.namespace, "--wait=true", "--timeout=60s",
        kubeconfig=cluster.kubeconfig,
    )
    try:
        wait_for(lambda: not leftovers(cluster, run), timeout=180, what="the deleted run's objects to go")
        time.sleep(5)  # nothing of it may come back (a controller recreating what it takes for missing)
    except TimeoutError:
        pass
    return leftovers(cluster, run)


def xcoms_of(
    cluster: ChaosCluster, run_name: str, tasks: list[ChaosTask]
) -> dict[str, dict[str, object] | None]:
    """Each task's XComs as its ConfigMap holds them, decoded; kdag's own `__` keys left out."""
    found: dict[str, dict[str, object] | None] = {}
    for task in tasks:
        name = names.xcom_configmap_name(run_name, task.id)
        configmap = get_object(cluster.kubeconfig, CONFIGMAP, cluster.namespace, name)
        if configmap is None:
            found[task.id] = None
        else:
            values = store.decode(configmap.get("data") or {})
            found[task.id] = {key: value for key, value in values.items() if not key.startswith("__")}
    return found


def summarize(
    tasks: list[ChaosTask], chaos: Chaos, controller: ControllerProcess, phase: str | None,
    counted: Counter[str], left: list[str], problems: list[str],
) -> dict[str, Any]:
    """The counts to quote, in the order the one-line summary prints them."""
    return {
        "seed": SEED,
        "tasks": len(tasks),
        "layers": len(LAYER_WIDTHS),
        "edges": sum(len(task.upstream) for task in tasks),
        "controller_kills": chaos.count(CONTROLLER),
        "controller_starts": len(controller.pids),
        "apiserver_restarts": chaos.count(APISERVER),
        "kubelet_restarts": chaos.count(KUBELET),
        "run_phase": phase,
        "run_seconds": chaos.run_seconds,
        "attempts": counted["attempts"],
        "planned_deliberate_failures": sum(task.fail_tries for task in tasks),
        "deliberate_failures": counted["deliberate_failures"],
        "outage_failures": counted["outage_failures"],
        "unexplained_failures": counted["unexplained_failures"],
        "extra_attempts": counted["extra_attempts"],
        "duplicates": counted["duplicate_pods"] + counted["duplicate_taskruns"] + counted["unrecorded_pods"],
        "missing_pods": counted["missing_pods"],
        "xcoms_checked": counted["xcoms_checked"],
        "inputs_checked": counted["inputs_checked"],
        "lost_xcoms": counted["lost_xcoms"],
        "wrong_xcoms": counted["wrong_xcoms"] + counted["stale_xcoms"],
        "leftovers": len(left),
        "problems": len(problems),
    }


@pytest.mark.cluster
@pytest.mark.cluster_lifecycle
@pytest.mark.timeout(2400)  # waiting for the other sessions to leave the cluster comes first
def test_a_run_survives_controller_kills_and_daemon_restarts(
    chaos_cluster: ChaosCluster, tmp_path: Path
) -> None:
    cluster = chaos_cluster
    kubeconfig, namespace = cluster.kubeconfig, cluster.namespace
    tasks = build_dag(SEED)
    dag = {"apiVersion": keys.API_VERSION, "kind": keys.DAG_KIND, "metadata": {"name": DAG_NAME},
           "spec": dag_spec(tasks)}
    kubectl("create", "-n", namespace, "-f", "-", kubeconfig=kubeconfig, input=json.dumps(dag))
    run_name = names.manual_run_name(DAG_NAME, f"seed{SEED}")
    run_manifest = manifests.dagrun_manifest(DAG_NAME, run_name)
    kubectl("create", "-n", namespace, "-f", "-", kubeconfig=kubeconfig, input=json.dumps(run_manifest))

    watch = RunWatch(cluster, run_name)
    chaos = run_under_chaos(watch, disruption_plan(SEED, len(tasks), CONTROLLER_KILLS))

    run = get_object(kubeconfig, DAGRUN, namespace, run_name) or {}
    phase = (run.get("status") or {}).get("phase")
    problems = list(chaos.problems)
    if phase != "Succeeded":
        problems.append(f"the run is {phase}: {json.dumps(run.get('status'))[:2000]}")
    taskruns = list_objects(kubeconfig, TASKRUN, namespace, {names.DAGRUN_LABEL: run_name})
    pods = list_objects(kubeconfig, POD, namespace, {names.DAGRUN_LABEL: run_name})
    watch.record_pods(pods)
    attempts = attempt_findings(
        tasks, taskruns, pods, watch.uids_seen, run, chaos.outages, chaos.kubelet_restarts
    )
    tries = {tr["spec"]["taskId"]: int((tr.get("status") or {}).get("attempts") or 0) for tr in taskruns}
    xcoms = xcom_findings(tasks, xcoms_of(cluster, run_name, tasks), tries)
    left = delete_and_find_leftovers(cluster, run)
    problems += attempts.problems + xcoms.problems
    problems += [f"left after the run was deleted: {item}" for item in left]

    counted = attempts.counts + xcoms.counts
    summary = summarize(tasks, chaos, cluster.controller, phase, counted, left, problems)
    path = tmp_path / "chaos-summary.json"
    details = {"disruptions": chaos.struck, "apiserver_outages": chaos.outages, "problem_lines": problems,
               "controller_log": str(cluster.controller.log_path)}
    path.write_text(json.dumps({**summary, **details}, indent=2) + "\n")
    print("chaos: " + " ".join(f"{key}={value}" for key, value in summary.items()) + f" ({path})")

    assert not problems, (
        f"{len(problems)} problems (summary: {path}):\n" + "\n".join(problems[:60])
        + "\n--- controller log (tail) ---\n" + cluster.controller.log_tail(60)
    )
