"""Task pods: when an attempt finishes, reconcile its run. Watch events only, no polling, no pod writes."""

from __future__ import annotations

import time
from typing import Any

import kopf
from kdag_runner import keys

from kdag import names
from kdag.attempts import parse_attempt_result
from kdag.handlers.dagruns import request_reconcile
from kdag.handlers.run_objects import run_of_pod
from kdag.handlers.runtime import Runtime

TASK_POD_LABELS: dict[str, Any] = {
    names.MANAGED_BY_LABEL: names.MANAGED_BY,
    names.DAGRUN_LABEL: kopf.PRESENT,
}
"""The pods this handler watches: those kdag made for a run."""


async def task_pod_changed(
    body: kopf.Body, type: str | None, namespace: str | None, name: str | None, memo: Runtime, **_: Any
) -> None:
    """An attempt's pod changed: once all its containers terminated (or it is stuck), reconcile its run.

    kopf.on.event keeps no state on the pod, so watching pods costs no writes.
    """
    if not namespace or not name:
        return
    memo.objects.observe(dict(body), deleted=type == "DELETED")
    result = parse_attempt_result(body)
    # A pod deleted before it finished is a failed attempt; one that finished was already handled.
    if type == "DELETED" and result.finished:
        return
    if type != "DELETED" and not result.finished and not result.message:
        return
    taskrun = _taskrun_of(body)
    if result.finished and taskrun:
        memo.finished_seen_at.setdefault((namespace, taskrun), time.time())
    owner = (body.get("metadata") or {}).get("labels", {}).get(names.DAGRUN_LABEL)
    # The label may be a hashed cut of a long run name; the TaskRun owner chain names the run exactly.
    dagrun = run_of_pod(dict(body)) or owner
    if dagrun:
        await request_reconcile(memo, (namespace, dagrun))


def _taskrun_of(pod: kopf.Body) -> str | None:
    """The name of the TaskRun that owns the pod (the pod's name is `{taskrun}-{run uid tag}-{attempt}`)."""
    for owner in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if owner.get("kind") == keys.TASKRUN_KIND and owner.get("name"):
            return str(owner["name"])
    return None
