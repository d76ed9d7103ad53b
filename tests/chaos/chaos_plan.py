"""The chaos run, as data: its DAG, the XComs it must leave, when to disrupt it, and what the run left
checked against all three. Pure: `test_chaos_plan.py` tests it without a cluster.

The DAG is layers of Python tasks, each depending on one to three tasks of the layer before (sometimes one
more from two layers up), so it fans out and in. Every task pulls its upstream tasks' return values, pushes
them back as `inputs`, pushes its try number as `try`, and returns `combine(task id, inputs)`: a value no
task can produce without every upstream value, so a value lost or mixed up shows in every task after it,
and the checks name the first. Chosen tasks fail
their first try (a few their first two) on purpose, by try number, so their retries are known in advance.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import random
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kdag import names

LAYER_WIDTHS = (1, 10, 14, 14, 10, 5)
"""54 tasks in 6 layers: wide enough that many pods run at every disruption, short enough for 2 cores."""
TAIL_PAUSE = 8.0
"""Seconds the last layer's tasks sleep: every blow is dealt by the time half the tasks finished, and
blows that come due together strike one after another (a controller kill takes 3-4 s), so the run keeps a
tail that outlasts them instead of finishing before the last one."""
RETRIES = 4
"""Every task's retries: two for the deliberate failures at most, the rest for tries an API server restart
fails (a task's XCom write gives up after a few seconds without an answer)."""
TASK_CALLABLE = "chaos_task"
DELIBERATE = "deliberate failure of try"
"""What a deliberately failed try raises with (followed by its try number)."""

CONTROLLER = "controller"
APISERVER = "kube-apiserver"
KUBELET = "kubelet"
OUTAGE_GRACE_SECONDS = 30.0
"""How long after the API server answers again a task may still fail to reach it: kube-proxy has to see the
`kubernetes` Service's endpoint again before pods do."""


def combine(task_id: str, inputs: Sequence[object]) -> str:
    """A task's return value: 16 hex of sha256 over its id and its upstream values, in upstream order."""
    text = task_id + "<-" + "|".join(str(value) for value in inputs)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# The source of every task: `combine` above, inlined, and the task's own constants.
_TASK_SOURCE = """\
import hashlib
import time
from collections.abc import Sequence

UPSTREAM = {upstream!r}
FAIL_TRIES = {fail_tries!r}
PAUSE_SECONDS = {pause!r}


{combine}

def {callable}(ti, **_):
    inputs = [ti.xcom_pull(task_ids=task_id) for task_id in UPSTREAM]
    time.sleep(PAUSE_SECONDS)
    if ti.try_number <= FAIL_TRIES:
        ti.xcom_push(key="failed_try", value=ti.try_number)
        raise RuntimeError("{deliberate} %d" % ti.try_number)
    ti.xcom_push(key="inputs", value=inputs)
    ti.xcom_push(key="try", value=ti.try_number)
    return combine(ti.task_id, inputs)
"""


@dataclass(frozen=True)
class ChaosTask:
    """One task of the chaos DAG."""

    id: str
    upstream: tuple[str, ...]
    """In the order the task pulls them (sorted)."""
    fail_tries: int
    """Its tries 1..fail_tries fail on purpose."""
    pause: float
    """Seconds it sleeps, so its pod is still running when a disruption strikes."""

    def source(self) -> str:
        return _TASK_SOURCE.format(
            upstream=list(self.upstream),
            fail_tries=self.fail_tries,
            pause=self.pause,
            combine=inspect.getsource(combine),
            callable=TASK_CALLABLE,
            deliberate=DELIBERATE,
        )

    def manifest(self) -> dict[str, Any]:
        """The task as `spec.tasks[]` of a DAG."""
        task: dict[str, Any] = {"id": self.id, "python": {"source": self.source(), "callable": TASK_CALLABLE}}
        if self.upstream:
            task["upstream"] = list(self.upstream)
        return task


def build_dag(
    seed: int, widths: Sequence[int] = LAYER_WIDTHS, failing: int = 12, failing_twice: int = 3
) -> list[ChaosTask]:
    """The tasks, layer by layer (so upstream tasks always come first): `failing` of them fail their
    first try on purpose, `failing_twice` of those their first two."""
    rng = random.Random(f"chaos-dag-{seed}")
    layers = [[f"l{depth}-{index:02d}" for index in range(width)] for depth, width in enumerate(widths)]
    upstream: dict[str, set[str]] = {task_id: set() for layer in layers for task_id in layer}
    for depth in range(1, len(layers)):
        previous, layer = layers[depth - 1], layers[depth]
        for task_id in layer:
            upstream[task_id].update(rng.sample(previous, min(len(previous), rng.randint(1, 3))))
            if depth >= 2 and rng.random() < 0.3:
                upstream[task_id].add(rng.choice(layers[depth - 2]))
        # Every task feeds the next layer, so every value reaches a later check.
        fed = {parent for task_id in layer for parent in upstream[task_id]}
        for orphan in previous:
            if orphan not in fed:
                upstream[rng.choice(layer)].add(orphan)
    ids = [task_id for layer in layers for task_id in layer]
    chosen = rng.sample(ids, failing)
    fail_tries = {task_id: (2 if rank < failing_twice else 1) for rank, task_id in enumerate(chosen)}
    tail = set(layers[-1])
    return [
        ChaosTask(task_id, tuple(sorted(upstream[task_id])), fail_tries.get(task_id, 0),
                  TAIL_PAUSE if task_id in tail else round(rng.uniform(0.2, 1.0), 1))
        for task_id in ids
    ]


def dag_spec(tasks: Sequence[ChaosTask], retry_delay_seconds: int = 1) -> dict[str, Any]:
    """The DAG's `spec`: no schedule (runs are made by hand), every task retried `RETRIES` times."""
    return {
        "defaults": {"retries": RETRIES, "retryDelaySeconds": retry_delay_seconds},
        "tasks": [task.manifest() for task in tasks],
    }


def expected_values(tasks: Sequence[ChaosTask]) -> dict[str, str]:
    """Every task's return value, computed here as the tasks compute theirs."""
    values: dict[str, str] = {}
    for task in tasks:
        values[task.id] = combine(task.id, [values[parent] for parent in task.upstream])
    return values


def expected_xcoms(tasks: Sequence[ChaosTask], tries: Mapping[str, int]) -> dict[str, dict[str, object]]:
    """Every task's XComs once it succeeded on try `tries[task]`: exactly these keys (`failed_try` of the
    tries before must be gone: each try's write replaces the store)."""
    values = expected_values(tasks)
    return {
        task.id: {
            "inputs": [values[parent] for parent in task.upstream],
            "try": tries[task.id],
            "return_value": values[task.id],
        }
        for task in tasks
    }


@dataclass(frozen=True)
class Disruption:
    """One blow: strike `target` once `after_finished` tasks have finished and `delay` more seconds passed."""

    target: str
    """CONTROLLER (SIGKILL, then start again), APISERVER or KUBELET (restarted)."""
    after_finished: int
    delay: float
    down_for: float = 0.0
    """The controller only: how long it stays dead before it starts again."""


def disruption_plan(seed: int, task_count: int, controller_kills: int = 10) -> list[Disruption]:
    """The blows in the order they strike, all while at most half the tasks have finished, so the run is
    under way at each (with the last layer's `TAIL_PAUSE`): the API server restart in the first quarter or so,
    the kubelet restart later."""
    rng = random.Random(f"chaos-plan-{seed}")
    last = int(task_count * 0.5)

    def at(low: float, high: float) -> int:
        return rng.randint(int(task_count * low), int(task_count * high))

    def seconds(most: float) -> float:
        return round(rng.uniform(0, most), 1)

    plan = [
        Disruption(CONTROLLER, rng.randint(0, last), seconds(1.5), down_for=seconds(2.5))
        for _ in range(controller_kills)
    ]
    plan.append(Disruption(APISERVER, at(0.15, 0.3), seconds(1.5)))
    plan.append(Disruption(KUBELET, at(0.3, 0.5), seconds(1.5)))
    return sorted(plan, key=lambda blow: (blow.after_finished, blow.delay))


@dataclass
class Findings:
    """What a check found: counts to report, and one line per problem."""

    counts: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    def add(self, counter: str, problem: str, n: int = 1) -> None:
        self.counts[counter] += n
        self.problems.append(problem)


def xcom_findings(
    tasks: Sequence[ChaosTask], found: Mapping[str, Mapping[str, object] | None], tries: Mapping[str, int]
) -> Findings:
    """Each task's XComs (`found[task]`: decoded, kdag's own `__` keys left out; None without a store)
    against `expected_xcoms`. Lost: a value that is not there, or an upstream value a task pulled as None;
    wrong: any other difference; stale: a key no successful try pushes."""
    findings = Findings()
    expected_of = expected_xcoms(tasks, tries)
    for task in tasks:
        expected = expected_of[task.id]
        findings.counts["xcoms_checked"] += len(expected)
        findings.counts["inputs_checked"] += len(task.upstream)
        data = found.get(task.id)
        if data is None:
            findings.add("lost_xcoms", f"{task.id}: no XComs at all", len(expected))
            continue
        for key, want in expected.items():
            got = data.get(key)
            if key not in data:
                findings.add("lost_xcoms", f"{task.id}: XCom {key!r} missing (expected {want!r})")
            elif key == "inputs" and isinstance(got, list) and None in got:
                lost = [parent for parent, value in zip(task.upstream, got, strict=False) if value is None]
                findings.add("lost_xcoms", f"{task.id}: pulled nothing from {lost}", len(lost))
            elif got != want:
                findings.add("wrong_xcoms", f"{task.id}: XCom {key!r} is {got!r}, expected {want!r}")
        for key in sorted(set(data) - set(expected)):
            findings.add("stale_xcoms", f"{task.id}: XCom {key!r} = {data[key]!r} left by an earlier try")
    return findings


@dataclass(frozen=True)
class Outcome:
    """How one attempt's `task` container ended, from its pod."""

    exit_code: int | None
    error: str
    finished_at: float | None
    """Epoch seconds."""

    @classmethod
    def of(cls, pod: Mapping[str, Any]) -> Outcome:
        status = pod.get("status") or {}
        for container in status.get("containerStatuses") or []:
            terminated = (container.get("state") or {}).get("terminated")
            if container.get("name") == "task" and terminated:
                message = terminated.get("message") or ""
                try:
                    error = str(json.loads(message).get("error", ""))
                except (ValueError, AttributeError):
                    error = message
                finished = terminated.get("finishedAt")
                return cls(terminated.get("exitCode"), error, _epoch(finished) if finished else None)
        reason = " ".join(filter(None, (status.get("phase"), status.get("reason"), status.get("message"))))
        return cls(None, f"the task container never finished ({reason or 'no status'})", None)


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def attempt_findings(
    tasks: Sequence[ChaosTask],
    taskruns: Sequence[Mapping[str, Any]],
    pods: Sequence[Mapping[str, Any]],
    uids_seen: Mapping[str, set[str]],
    run: Mapping[str, Any],
    outages: Sequence[tuple[float, float]],
    kubelet_restarts: Sequence[tuple[float, float]] = (),
) -> Findings:
    """Each task: one TaskRun, Succeeded; one pod per attempt 1..attempts, named for it, never made twice
    (`uids_seen`: every uid seen under each pod name while the run went on); every try but the last failed,
    on purpose (tries 1..fail_tries) or because the API server was restarting (an XCom write that got no
    answer, ending within `outages`, epoch-second windows; or a container the runtime could not start while
    the kubelet restarted, within `kubelet_restarts`); and no try beyond those."""
    findings = Findings()
    runs_of: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for taskrun in taskruns:
        runs_of[taskrun["spec"]["taskId"]].append(taskrun)
    pods_of: dict[str, dict[int, list[Mapping[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for pod in pods:
        labels = pod["metadata"]["labels"]
        pods_of[labels[names.TASK_LABEL]][int(labels[names.ATTEMPT_LABEL])].append(pod)
    for name, uids in sorted(uids_seen.items()):
        if len(uids) > 1:
            findings.add("duplicate_pods", f"pod {name} was made {len(uids)} times", len(uids) - 1)
    for unknown in sorted(set(runs_of) - {task.id for task in tasks}):
        findings.add("unknown_taskruns", f"TaskRun(s) of a task the DAG does not have: {unknown}")
    for task in tasks:
        task_runs = runs_of.get(task.id, [])
        if len(task_runs) == 1:
            pods_by_attempt = pods_of.get(task.id, {})
            _check_task(findings, task, task_runs[0], pods_by_attempt, run, outages, kubelet_restarts)
        else:
            extra = max(len(task_runs) - 1, 1)
            findings.add("duplicate_taskruns", f"{task.id}: {len(task_runs)} TaskRuns", extra)
    return findings


def _check_task(
    findings: Findings,
    task: ChaosTask,
    taskrun: Mapping[str, Any],
    by_attempt: Mapping[int, Sequence[Mapping[str, Any]]],
    run: Mapping[str, Any],
    outages: Sequence[tuple[float, float]],
    kubelet_restarts: Sequence[tuple[float, float]] = (),
) -> None:
    run_name, run_uid = run["metadata"]["name"], run["metadata"]["uid"]
    status = taskrun.get("status") or {}
    if status.get("phase") != "Succeeded":
        findings.add("unsucceeded_tasks", f"{task.id}: {status.get('phase')}: {status.get('message')}")
    attempts = int(status.get("attempts") or 0)
    findings.counts["attempts"] += attempts
    for attempt in sorted(set(by_attempt) - set(range(1, attempts + 1))):
        findings.add("unrecorded_pods", f"{task.id}: a pod of attempt {attempt}; {attempts} recorded")
    outage_failures = 0
    for attempt in range(1, attempts + 1):
        attempt_pods = by_attempt.get(attempt, [])
        if not attempt_pods:
            findings.add("missing_pods", f"{task.id}: no pod of attempt {attempt}")
            continue
        if len(attempt_pods) > 1:
            extra = len(attempt_pods) - 1
            findings.add("duplicate_pods", f"{task.id}: {extra + 1} pods of attempt {attempt}", extra)
        pod_name = attempt_pods[0]["metadata"]["name"]
        if pod_name != names.pod_name(run_name, task.id, attempt, run_uid=run_uid):
            findings.add("misnamed_pods", f"{task.id}: attempt {attempt}'s pod is {pod_name}")
        outcome = Outcome.of(attempt_pods[0])
        if attempt == attempts:
            if outcome.exit_code != 0:
                findings.add("unsucceeded_tasks", f"{task.id}: last attempt {attempt}: {outcome}")
        elif attempt <= task.fail_tries and _failed_on_purpose(outcome, attempt):
            findings.counts["deliberate_failures"] += 1
        elif _failed_for_outage(outcome, outages) or _not_started_for_restart(outcome, kubelet_restarts):
            findings.counts["outage_failures"] += 1
            outage_failures += 1
        else:
            findings.add("unexplained_failures", f"{task.id}: attempt {attempt}: {outcome}")
    expected = task.fail_tries + 1 + outage_failures
    if attempts > expected:
        extra = attempts - expected
        findings.add("extra_attempts", f"{task.id}: {attempts} attempts, expected {expected}", extra)
    elif attempts < expected:
        why = f"{task.id}: succeeded on try {attempts}, though its first {task.fail_tries} fail"
        findings.add("missing_failures", why)


def _failed_on_purpose(outcome: Outcome, attempt: int) -> bool:
    return outcome.exit_code == 1 and f"{DELIBERATE} {attempt}" in outcome.error


def _not_started_for_restart(outcome: Outcome, restarts: Sequence[tuple[float, float]]) -> bool:
    """A container the runtime failed to start (exit code 128) while the kubelet was restarting: the
    attempt failed for the outage, as a worker lost mid-start in Airflow; its retry is the expected one."""
    if outcome.exit_code != 128 or "failed to start" not in outcome.error or outcome.finished_at is None:
        return False
    finished = outcome.finished_at
    return any(start - 2 <= finished <= end + OUTAGE_GRACE_SECONDS for start, end in restarts)


def _failed_for_outage(outcome: Outcome, outages: Sequence[tuple[float, float]]) -> bool:
    """An XCom write that failed (exit code 3) while the API server was restarting."""
    if outcome.exit_code != 3 or "cannot write XComs" not in outcome.error or outcome.finished_at is None:
        return False
    finished = outcome.finished_at
    return any(start - 2 <= finished <= end + OUTAGE_GRACE_SECONDS for start, end in outages)
