"""An attempt's pod: rendered (`render_task_pod`), created (or adopted when a pass stopped after creating it;
a pod of another owner, or one the API server refuses, fails the task) and recorded in the TaskRun status.
`dagruns` calls `start_attempt` for every start and retry `graph.decide` asks for."""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

from kdag_runner import keys

from kdag import manifests, metrics, names
from kdag.api.models import TaskPhase, TaskRunStatus, TaskSpec
from kdag.handlers import events, run_failures
from kdag.handlers.runtime import Runtime
from kdag.handlers.task_rbac import ensure_task_rbac
from kdag.kube import POD, TASKRUN, JSONObject, KubeApiError
from kdag.render import RunInfo, render_task_pod


def _observe_handoff(runtime: Runtime, run: RunInfo, task: TaskSpec) -> None:
    """Time from the last upstream pod finishing (as this process saw it) to this pod being created."""
    seen = [
        runtime.finished_seen_at.get((run.namespace, names.taskrun_name(run.name, up)))
        for up in task.upstream_ids
    ]
    if seen and all(s is not None for s in seen):
        metrics.HANDOFF_SECONDS.observe(max(0.0, time.time() - max(s for s in seen if s is not None)))


async def start_attempt(
    runtime: Runtime,
    run: RunInfo,
    taskrun: JSONObject,
    task: TaskSpec,
    attempt: int,
    now: datetime,
    reschedules: int = 0,
    mapped: Mapping[str, list[list[str]]] | None = None,
    pushed: Mapping[str, Collection[str]] | None = None,
    answers: Mapping[str, Mapping[str, Any]] | None = None,
) -> None:
    """Create the pod of `attempt` and record it in the TaskRun status.

    `answers`: the answers to the task's questions about other runs (`kdag.questions`: variable -> JSON).

    `mapped`: the XCom keys of each instance of the mapped tasks of the run (`mapping.mapped_xcom_keys`);
    the pod of a mapped task's instance carries its `spec.mapIndex`. `pushed`: the keys each other task of
    the run pushed; the pod sees its ancestors' (`xcom_volumes`).

    `reschedules`: the attempts before it that ended up for reschedule (settled this pass, so not read from
    `taskrun`, which was read before); the pod gets them and the task's first start for a sensor's timeout.
    """
    api = runtime.api
    await ensure_task_rbac(runtime, run.namespace)
    meta = taskrun["metadata"]
    current = TaskRunStatus.model_validate(taskrun.get("status") or {})
    pod = render_task_pod(
        run=run,
        task=task,
        taskrun_name=meta["name"],
        taskrun_uid=meta["uid"],
        attempt=attempt,
        settings=runtime.settings,
        task_start=current.start_time or now,
        reschedules=reschedules,
        map_index=taskrun["spec"].get("mapIndex"),
        mapped=mapped,
        pushed=pushed,
        answers=answers,
    )
    try:
        try:
            created = await api.create_if_absent(pod, run.namespace)
        except KubeApiError as error:
            if "serviceaccount" not in str(error).lower():
                raise
            # The namespace was made anew since this process cached its task RBAC: make it again, once.
            runtime.rbac_ready.discard(run.namespace)
            await ensure_task_rbac(runtime, run.namespace)
            created = await api.create_if_absent(pod, run.namespace)
    except KubeApiError as error:
        if not run_failures.refused(error):
            raise
        # The same pod would be refused again (quota, PodSecurity, an invalid field): the task fails now.
        name = pod["metadata"]["name"]
        await run_failures.fail_attempt(runtime, taskrun, attempt, name, error, current.start_time or now)
        return
    if created is not None:
        runtime.objects.observe(created, run=run.name)
        _observe_handoff(runtime, run, task)
    elif not await _own_pod(runtime, run, taskrun, pod["metadata"]["name"], attempt, now):
        return
    started = TaskRunStatus(
        phase=TaskPhase.RUNNING,
        attempts=attempt,
        pod_name=pod["metadata"]["name"],
        start_time=current.start_time or now,
        next_attempt_at=None,
    )
    runtime.objects.observe(await api.patch_status(TASKRUN, run.namespace, meta["name"], started.to_patch()))
    metrics.TASKS.labels(phase=TaskPhase.RUNNING.value).inc()


async def _own_pod(
    runtime: Runtime, run: RunInfo, taskrun: JSONObject, pod_name: str, attempt: int, now: datetime
) -> bool:
    """Whether the pod of `pod_name` that already exists is this TaskRun's (a pass stopped after creating
    it): adopted then. Anything else of that name fails the task, saying whose the pod is."""
    existing = await runtime.api.get(POD, run.namespace, pod_name)
    if existing is None:
        raise RuntimeError(f"pod {pod_name} exists and vanished; will retry")
    meta = taskrun["metadata"]
    if manifests.owned_by(existing, meta["uid"]):
        return True
    message = (
        f"pod {pod_name} of attempt {attempt} exists and belongs to {manifests.owner_names(existing)}, not to"
        f" TaskRun {meta['name']} (uid {meta['uid']}): kdag does not adopt it, so the task failed"
    )
    current = TaskRunStatus.model_validate(taskrun.get("status") or {})
    failed = TaskRunStatus(
        phase=TaskPhase.FAILED,
        attempts=attempt,
        message=message,
        start_time=current.start_time or now,
        finish_time=now,
        next_attempt_at=None,
    )
    runtime.objects.observe(
        await runtime.api.patch_status(TASKRUN, run.namespace, meta["name"], failed.to_patch())
    )
    events.post(runtime, keys.TASKRUN_KIND, taskrun, "Warning", "PodNameTaken", message)
    metrics.TASKS.labels(phase=TaskPhase.FAILED.value).inc()
    return False
