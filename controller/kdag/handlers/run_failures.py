"""What the API server refuses while a run goes on, made visible at once instead of retried in silence.

Admission refuses what would fail for a structural reason (`kdag.api.validation`), but some refusals come
only when the controller writes: a pod over a ResourceQuota, a PodSecurity violation, a webhook of the
cluster's, an object the webhook never saw (it was off). The same request would be refused again, so:
- a refused pod fails its task (`fail_attempt`): the TaskRun is Failed with the API server's reason and a
  `PodRefused` Event, whatever its retries, and the run's next pass (requested at once) decides the rest;
- any other refusal of a pass (or a name kdag cannot derive, or a DAG version that is not the run's or is
  gone: `dag_versions.VersionError`) fails the run (`fail_run`): phase Failed, the Stalled condition and a
  `RunFailed` Event quoting the reason.
What may pass later (no answer, 409, 429, 5xx) is retried; the first time each distinct error is seen a
Warning Event (`ReconcileRetrying`) says so. This module registers nothing; `dagruns` calls it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from kdag_runner import keys

from kdag import conditions, metrics
from kdag.api.models import DAGRunStatus, RunPhase, TaskPhase, TaskRunStatus
from kdag.dag_versions import VersionError
from kdag.handlers import events
from kdag.handlers.runtime import RunKey, Runtime
from kdag.kube import DAGRUN, TASKRUN, JSONObject, KubeApiError

logger = logging.getLogger("kdag.run_failures")

REFUSED_STATUSES = frozenset({400, 403, 422})
"""Bad request, forbidden (RBAC, quota, PodSecurity, an admission webhook), invalid: asking again with the
same object gets the same answer."""


def refused(error: BaseException) -> bool:
    """Whether the API server refused the request for what it holds, so that asking again cannot help."""
    return isinstance(error, KubeApiError) and error.status in REFUSED_STATUSES


def structural(error: BaseException) -> bool:
    """Whether a failed pass would fail the same way every time: a refusal, or a value kdag cannot use
    (a derived name too long, a spec that does not parse)."""
    return refused(error) or isinstance(error, ValueError)


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


async def fail_attempt(
    runtime: Runtime,
    taskrun: JSONObject,
    attempt: int,
    pod_name: str,
    error: KubeApiError,
    start_time: datetime,
) -> None:
    """The pod of `attempt` was refused: the task is Failed, its message and a PodRefused Event quoting the
    API server; the run is looked at again at once (its phase follows from the task's)."""
    meta = taskrun["metadata"]
    task_id = taskrun["spec"]["taskId"]
    message = f"the API server refused pod {pod_name} of attempt {attempt} ({error.status}): {error.message}"
    failed = TaskRunStatus(
        phase=TaskPhase.FAILED,
        attempts=attempt,
        message=message,
        start_time=start_time,
        finish_time=_now(),
        next_attempt_at=None,
    )
    runtime.objects.observe(
        await runtime.api.patch_status(TASKRUN, meta["namespace"], meta["name"], failed.to_patch())
    )
    metrics.TASKS.labels(phase=TaskPhase.FAILED.value).inc()
    logger.warning("task %s of TaskRun %s/%s failed: %s", task_id, meta["namespace"], meta["name"], message)
    events.post(runtime, keys.TASKRUN_KIND, taskrun, "Warning", "PodRefused", f"task {task_id!r}: {message}")
    # The pass under way decided with the task still starting: one more settles the run now.
    runtime.run_state((meta["namespace"], taskrun["spec"]["dagRun"])).dirty = True


async def fail_run(runtime: Runtime, key: RunKey, error: BaseException) -> None:
    """A pass failed for a reason it would meet again: the run is Failed now, Stalled with the reason."""
    namespace, name = key
    dagrun = await runtime.api.get(DAGRUN, namespace, name)
    status = (dagrun or {}).get("status") or {}
    if dagrun is None or status.get("phase") in (RunPhase.SUCCEEDED, RunPhase.FAILED):
        return
    message = f"the run cannot go on: {error}"
    now = _now()
    generation = dagrun["metadata"].get("generation")
    reason = error.reason if isinstance(error, VersionError) else "Refused"
    failed = DAGRunStatus(
        phase=RunPhase.FAILED,
        finish_time=now,
        conditions=conditions.merge_conditions(
            status.get("conditions"), conditions.invalid_conditions(reason, message), generation, now
        ),
    )
    if not status.get("startTime"):
        failed.start_time = now
    await runtime.api.patch_status(DAGRUN, namespace, name, failed.to_patch())
    metrics.observe_run_phase(f"{namespace}/{name}", RunPhase.FAILED.value)
    logger.warning("DAGRun %s/%s failed: %s", namespace, name, message)
    events.post(runtime, keys.DAGRUN_KIND, dagrun, "Warning", "RunFailed", f"DAGRun {name} failed: {message}")


async def report_retry(runtime: Runtime, key: RunKey, error: BaseException, delay: float) -> None:
    """A pass failed for a reason that may pass: a Warning Event the first time this error is seen."""
    state = runtime.run_state(key)
    text = str(error) or type(error).__name__
    if state.reported_error == text:
        return
    state.reported_error = text
    dagrun = await runtime.api.get(DAGRUN, *key)
    if dagrun is not None:
        message = f"reconciling failed (retrying every {delay:g} s): {text}"
        events.post(runtime, keys.DAGRUN_KIND, dagrun, "Warning", "ReconcileRetrying", message)
