"""A run's TaskRuns: read with their pods (`read_run`), made when a task starts or is marked
(`ensure_taskrun`; one of the same name that the run does not own is never adopted: `NameTaken`), settled
against their pods (`settle_taskrun`) and marked without running (`mark`). `dagruns` calls these once a pass.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from kdag_runner import keys

from kdag import graph, manifests, mapping, metrics, names, questions, settle
from kdag.api.models import TaskPhase, TaskRunStatus, TaskSpec
from kdag.handlers import events
from kdag.handlers import triggers as trigger_requests
from kdag.handlers.runtime import Runtime
from kdag.kube import POD, TASKRUN, JSONObject
from kdag.render import RunInfo
from kdag.task_state import TaskState


async def read_run(
    runtime: Runtime, namespace: str, name: str, uid: str
) -> tuple[dict[str, JSONObject], dict[str, dict[int, JSONObject]]]:
    """The run's TaskRuns by task id, and its pods by task id and attempt; an instance of a mapped task (a
    TaskRun with spec.mapIndex) by `mapping.instance_key`: `task[i]`.

    The labels only narrow the listing (a long run name's label value is a cut plus a short hash, which
    another run's name can share): a TaskRun is the run's when the run's uid owns it, a pod when one of
    those TaskRuns owns it. Read from what this process keeps of the run (`run_objects`), listed only now
    and then."""
    selector = {names.DAGRUN_LABEL: names.label_value(name)}
    listed, pods = await runtime.objects.read(runtime.api, (namespace, name), selector)
    owned = [tr for tr in listed if manifests.owned_by(tr, uid)]
    taskruns = {taskrun_key(tr["spec"]["taskId"], tr["spec"].get("mapIndex")): tr for tr in owned}
    key_of = {tr["metadata"]["uid"]: key for key, tr in taskruns.items()}
    pods_by_task: dict[str, dict[int, JSONObject]] = {}
    for pod in pods:
        owners = pod["metadata"].get("ownerReferences") or []
        key = next((key_of[o.get("uid")] for o in owners if o.get("uid") in key_of), None)
        if key is not None:
            pods_by_task.setdefault(key, {})[settle.attempt_of(pod)] = pod
    return taskruns, pods_by_task


async def taskrun_changed(body: Mapping[str, Any], type: str | None, memo: Runtime, **_: Any) -> None:
    """A TaskRun's watch event: kept for its run's next pass (`run_objects`). Passes follow pods, so a
    TaskRun's change alone starts none."""
    memo.objects.observe(dict(body), deleted=type == "DELETED")


def taskrun_key(task_id: str, map_index: int | None) -> str:
    """The key of a task's TaskRun in `read_run`'s answer: the task id, or `task[i]` for an instance."""
    return task_id if map_index is None else mapping.instance_key(task_id, map_index)


class NameTaken(Exception):
    """An object of the name kdag derives for this run's task exists and is not the run's own (its owner is
    another uid): it is never adopted. The message says whose it is and what to do."""


async def ensure_taskrun(
    runtime: Runtime, run: RunInfo, run_uid: str, task: TaskSpec, map_index: int | None = None
) -> JSONObject:
    """The TaskRun of `task` (of its instance `map_index`, for a mapped task), created if missing; one that
    exists is this run's only when it is owned by the run's uid (else `NameTaken`)."""
    manifest = manifests.taskrun_manifest(run.namespace, run.dag_name, run.name, run_uid, task, map_index)
    created = await runtime.api.create_if_absent(manifest, run.namespace)
    if created is not None:
        runtime.objects.observe(created)
        return created
    name = manifest["metadata"]["name"]
    existing = await runtime.api.get(TASKRUN, run.namespace, name)
    if existing is None:
        raise RuntimeError(f"TaskRun {name} exists and vanished; will retry")
    runtime.objects.observe(existing)
    if not manifests.owned_by(existing, run_uid):
        raise NameTaken(
            f"task {task.id!r} cannot start: TaskRun {name} exists and belongs to"
            f" {manifests.owner_names(existing)}, not to DAGRun {run.name} (uid {run_uid}); kdag does not"
            " adopt it. It goes by itself when it is left from a deleted run of the same name; otherwise"
            " delete it"
        )
    return existing


async def settle_taskrun(
    runtime: Runtime, run: RunInfo, taskrun: JSONObject, pods: Mapping[int, JSONObject], now: datetime
) -> tuple[TaskState | None, questions.Asked]:
    """Apply `settle.settle` to one TaskRun: write its status patch, delete the pods it no longer needs, post
    its Events, count its metrics. Then act on a TriggerDagRunOperator's request that waits for the
    controller (`handlers.triggers`); the task's questions as they stand are returned with its state."""
    name = taskrun["metadata"]["name"]
    run_key = (run.namespace, run.name)
    versions = settled_versions(taskrun, pods)
    kept = runtime.objects.settled(run_key, name, versions) if versions else None
    if kept is not None:
        state, asked = kept
        return state, asked
    task = runtime.objects.task_of(run_key, taskrun)
    status = TaskRunStatus.model_validate(taskrun.get("status") or {})
    outcome = settle.settle(
        status, pods, task, now, run_name=run.name, map_index=taskrun["spec"].get("mapIndex")
    )
    if outcome.finished is not None:
        runtime.finished_seen_at.setdefault((run.namespace, name), time.time())
        if outcome.finished.xcom_bytes:
            metrics.XCOM_BYTES.inc(outcome.finished.xcom_bytes)
    if outcome.patch is not None:
        written = await runtime.api.patch_status(TASKRUN, run.namespace, name, outcome.patch.to_patch())
        runtime.objects.observe(written)
        metrics.TASKS.labels(phase=outcome.phase.value).inc()
    for pod_name in outcome.delete_pods:  # earlier attempts that were rescheduled, their results recorded
        await runtime.api.delete(POD, run.namespace, pod_name)
    for event in outcome.events:
        events.post(runtime, keys.TASKRUN_KIND, taskrun, event.type, event.reason, event.message)
    asked = questions.Asked.of(status, outcome.patch)
    if asked.trigger is not None and outcome.phase == TaskPhase.UP_FOR_RESCHEDULE:
        trigger = await trigger_requests.advance(runtime, taskrun, asked.trigger)
        asked = questions.Asked(trigger, asked.external_runs)
    quiet = outcome.patch is None and not outcome.delete_pods and not outcome.events
    if versions and quiet and outcome.state is not None and outcome.state.phase.finished:
        # Finished and needing nothing: until it or its pods change, settling it again gives the same.
        runtime.objects.keep_settled(run_key, name, versions, (outcome.state, asked))
    return outcome.state, asked


def settled_versions(taskrun: JSONObject, pods: Mapping[int, JSONObject]) -> tuple[str, ...]:
    """The TaskRun's resourceVersion and its pods' (`attempt:version`); empty when one has none."""
    version = str((taskrun.get("metadata") or {}).get("resourceVersion") or "")
    pod_versions = [(n, str((p.get("metadata") or {}).get("resourceVersion") or "")) for n, p in pods.items()]
    if not version or any(not v for _, v in pod_versions):
        return ()
    return (version, *(f"{n}:{v}" for n, v in sorted(pod_versions)))


async def mark(
    runtime: Runtime,
    run: RunInfo,
    run_uid: str,
    decision: graph.Decision,
    task_id: str,
    phase: TaskPhase,
    now: datetime,
    map_index: int | None = None,
) -> None:
    """The TaskRun of a task (of its instance `map_index`) that `decision` marks without running it:
    UpstreamFailed, Skipped or Failed, its message saying why (a skip request, a mapped task marked as a
    whole, else the trigger rule)."""
    dag = run.dag
    task = dag.resolved_task(task_id, runtime.settings.runner_image)
    taskrun = await ensure_taskrun(runtime, run, run_uid, task, map_index)
    if taskrun.get("status"):
        # It existed already, with a state this pass has not seen: the next pass decides with it.
        runtime.run_state((run.namespace, run.name)).dirty = True
        return
    upstream = ", ".join(dag.task(task_id).upstream_ids)
    key = taskrun_key(task_id, map_index)  # an instance of a mapped task group's task: its own marks
    by = decision.skipped_by.get(key) if phase == TaskPhase.SKIPPED else None
    message = (
        f"skipped by task {by!r}"
        if by
        else (decision.messages.get(task_id) if map_index is None else None)  # marked as a whole: why
        or f"{phase.value} by trigger rule over upstream tasks {upstream}"
    )
    marked = TaskRunStatus(phase=phase, attempts=0, message=message, finish_time=now)
    written = await runtime.api.patch_status(
        TASKRUN, run.namespace, taskrun["metadata"]["name"], marked.to_patch()
    )
    runtime.objects.observe(written)
    metrics.TASKS.labels(phase=phase.value).inc()
