"""A run's TaskRuns and pods as this process last saw them, so a reconcile pass reads memory, not the API.

Listing a run's TaskRuns and pods on every pass costs the API server O(tasks) per pass, O(tasks^2) per run:
at thousands of tasks that is most of the cluster's work. Here the two watches the controller holds anyway
(`kopf.on.event` on TaskRuns and pods) and the controller's own writes (`create`, `patch_status`) keep each
active run's objects up to date, as an informer's cache does. The listing is still made, once when a run is
first reconciled in this process and again every `RELIST_SECONDS` while it runs, so an event lost between two
watches (a DELETED during a reconnect) is corrected within that time.

Only runs this process reconciles are kept, and a run is dropped when it finishes or is deleted (`forget`):
memory follows the tasks of the runs under way, not every TaskRun of the cluster.

Read-your-writes: every object the controller writes is stored from the API server's answer at once, so the
next pass never makes it twice. A pod the current attempt of a TaskRun names (`status.podName`) that is not
here is read directly before the pass concludes it is gone (`missing_pods`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from kdag.api.models import TaskPhase, TaskSpec
from kdag.kube import POD, TASKRUN, JSONObject, Kind, KubeApi

RELIST_SECONDS = 60.0
"""How often a running run's TaskRuns and pods are listed again (watch events keep them current between)."""
IDLE_SECONDS = 10.0
"""A run not read for this long is listed again at its next pass: what was kept may have been kept by a
process that was not acting meanwhile (a standby replica's paused handlers), or missed a reconnect."""

RunKey = tuple[str, str]
SettledKey = tuple[str, ...]
"""A TaskRun's resourceVersion and its pods' (attempt:resourceVersion): what settling it depends on."""


@dataclass
class RunObjects:
    """One run's TaskRuns and (slimmed) pods by name, and when they were last listed."""

    taskruns: dict[str, JSONObject] = field(default_factory=dict)
    pods: dict[str, JSONObject] = field(default_factory=dict)
    listed_at: float | None = None
    read_at: float | None = None
    tasks: dict[str, TaskSpec] = field(default_factory=dict)
    """TaskRun uid -> its parsed spec.task (immutable: parsed once, not on every pass)."""
    settled: dict[str, tuple[SettledKey, Any]] = field(default_factory=dict)
    """TaskRun name -> what settling it gave last (its state and questions), for a finished TaskRun that
    needed nothing done, with the versions it was settled at: a pass over a run of thousands of tasks
    settles again only the TaskRuns (or pods) that changed, not every finished one."""


def _slim_metadata(obj: JSONObject) -> JSONObject:
    return {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}


def slim_taskrun(taskrun: JSONObject) -> JSONObject:
    """A TaskRun without its managedFields (which field manager wrote which field: no pass reads it)."""
    return {**taskrun, "metadata": _slim_metadata(taskrun)}


def slim_pod(pod: JSONObject) -> JSONObject:
    """What a pass reads of a pod (`kdag.attempts`, `kdag.settle`): metadata without managedFields, the
    container names, the deadline, and the status. A task pod's env (its Python source, params) stays out."""
    spec = pod.get("spec") or {}
    meta = _slim_metadata(pod)
    slim_spec: dict[str, Any] = {
        "containers": [{"name": c.get("name")} for c in spec.get("containers") or []],
    }
    if spec.get("initContainers"):
        slim_spec["initContainers"] = [{"name": c.get("name")} for c in spec["initContainers"]]
    if spec.get("activeDeadlineSeconds") is not None:
        slim_spec["activeDeadlineSeconds"] = spec["activeDeadlineSeconds"]
    return {"metadata": meta, "spec": slim_spec, "status": pod.get("status") or {}}


def _version(obj: JSONObject) -> int | None:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or "")
    except ValueError:
        return None


def _newer(incoming: JSONObject, current: JSONObject | None) -> bool:
    """Whether `incoming` is at least as new as `current` (etcd's revisions grow; an opaque version wins)."""
    if current is None:
        return True
    new, old = _version(incoming), _version(current)
    return new is None or old is None or new >= old


def merge_listed(
    kept: dict[str, JSONObject],
    listed: dict[str, JSONObject],
    revision: str,
    unlisted: Callable[[JSONObject], bool] | None = None,
) -> dict[str, JSONObject]:
    """What to keep after a list at `revision`, as an informer does: a listed object unless the watch or a
    write already showed a newer version of it; a kept object the list lacks only when it is newer than the
    list (made after its snapshot: a list the API server serves from its cache may lag the watch), or when
    the list could not show it (`unlisted`: a list narrowed by a field selector). Replacing what was kept
    by the list alone put pods back to an older state whose change was already seen, and the run then
    waited for the next list, a minute later."""
    merged = {name: obj if _newer(obj, kept.get(name)) else kept[name] for name, obj in listed.items()}
    try:
        snapshot: int | None = int(revision)
    except ValueError:
        snapshot = None
    for name, obj in kept.items():
        if name in merged:
            continue
        version = _version(obj)
        made_after = snapshot is not None and version is not None and version > snapshot
        if made_after or (unlisted is not None and unlisted(obj)):
            merged[name] = obj
    return merged


FINISHED_POD_PHASES = ("Succeeded", "Failed")
UNFINISHED_PODS = ",".join(f"status.phase!={phase}" for phase in FINISHED_POD_PHASES)
"""The field selector of a relist's pods: a finished pod never changes again (but for its deletion, which
changes nothing a pass reads of it), so a run's relist reads only the pods still going. Listing them all
made a run's relists O(tasks) each, most of the controller's CPU late in a run of thousands of tasks (a task
pod's body is tens of kB)."""


def pod_finished(pod: JSONObject) -> bool:
    return (pod.get("status") or {}).get("phase") in FINISHED_POD_PHASES


def run_of_taskrun(taskrun: JSONObject) -> str | None:
    return (taskrun.get("spec") or {}).get("dagRun")


def run_of_pod(pod: JSONObject) -> str | None:
    """The run's exact name: the KDAG_RUN_ID env of the pod's containers (a label value may be a cut)."""
    for container in (pod.get("spec") or {}).get("containers") or []:
        for env in container.get("env") or []:
            if env.get("name") == "KDAG_RUN_ID" and env.get("value"):
                return str(env["value"])
    return None


@dataclass
class ObjectCache:
    """The runs this process reconciles, each with its objects (`RunObjects`)."""

    runs: dict[RunKey, RunObjects] = field(default_factory=dict)
    relist_seconds: float = RELIST_SECONDS

    def observe(self, obj: JSONObject, *, deleted: bool = False, run: str | None = None) -> None:
        """A TaskRun or pod as a watch event or a write's answer showed it; ignored unless its run is kept."""
        meta = obj.get("metadata") or {}
        namespace, name = meta.get("namespace"), meta.get("name")
        is_pod = obj.get("kind") == "Pod" or "containers" in (obj.get("spec") or {})
        run = run or (run_of_pod(obj) if is_pod else run_of_taskrun(obj))
        if not namespace or not name or not run:
            return
        objects = self.runs.get((namespace, run))
        if objects is None:
            return
        store = objects.pods if is_pod else objects.taskruns
        if deleted:
            store.pop(name, None)
        elif _newer(obj, store.get(name)):
            store[name] = slim_pod(obj) if is_pod else slim_taskrun(obj)

    def forget(self, key: RunKey) -> None:
        self.runs.pop(key, None)

    def settled(self, key: RunKey, name: str, versions: SettledKey) -> Any:
        """What settling the TaskRun gave when it was last settled at these versions; None when not kept."""
        objects = self.runs.get(key)
        kept = objects.settled.get(name) if objects is not None else None
        return kept[1] if kept is not None and kept[0] == versions else None

    def keep_settled(self, key: RunKey, name: str, versions: SettledKey, result: Any) -> None:
        self.runs.setdefault(key, RunObjects()).settled[name] = (versions, result)

    def task_of(self, key: RunKey, taskrun: JSONObject) -> TaskSpec:
        """The TaskRun's spec.task, parsed once per TaskRun."""
        objects = self.runs.setdefault(key, RunObjects())
        uid = taskrun["metadata"]["uid"]
        task = objects.tasks.get(uid)
        if task is None:
            task = objects.tasks[uid] = TaskSpec.model_validate(taskrun["spec"]["task"])
        return task

    async def read(
        self, api: KubeApi, key: RunKey, selector: dict[str, str]
    ) -> tuple[list[JSONObject], list[JSONObject]]:
        """The run's TaskRuns and pods: listed when not yet (or not lately) listed, else as kept."""
        objects = self.runs.setdefault(key, RunObjects())
        now = time.monotonic()
        idle = objects.read_at is None or now - objects.read_at >= IDLE_SECONDS
        objects.read_at = now
        if idle or objects.listed_at is None or now - objects.listed_at >= self.relist_seconds:
            namespace = key[0]
            # Page by page, each object slimmed before the next page is read: a run of thousands of tasks
            # is never held whole, managedFields and pod specs included. Every pod the first time; then
            # only those not finished, and the finished ones are kept as they were seen.
            fields = UNFINISHED_PODS if objects.listed_at is not None else ""
            objects.taskruns = merge_listed(
                objects.taskruns, *await _listed(api, TASKRUN, namespace, selector, slim_taskrun)
            )
            pods, revision = await _listed(api, POD, namespace, selector, slim_pod, fields)
            objects.pods = merge_listed(objects.pods, pods, revision, pod_finished if fields else None)
            objects.listed_at = now
        await self._missing_pods(api, key, objects)
        return list(objects.taskruns.values()), list(objects.pods.values())

    async def _missing_pods(self, api: KubeApi, key: RunKey, objects: RunObjects) -> None:
        """Read the current attempt's pod of every unfinished TaskRun that has none here: a pass must not
        take a pod it has not seen yet for one that was deleted."""
        for name in _current_pods(objects.taskruns.values()):
            if name not in objects.pods:
                pod = await api.get(POD, key[0], name)
                if pod is not None:
                    objects.pods[name] = slim_pod(pod)


Slim = Callable[[JSONObject], JSONObject]


async def _listed(
    api: KubeApi, kind: Kind, namespace: str, selector: dict[str, str], slim: Slim, fields: str = ""
) -> tuple[dict[str, JSONObject], str]:
    """The objects listed by name, each slimmed before the next page is read, and the list's revision."""
    listed: dict[str, JSONObject] = {}
    revision = ""
    async for page, page_revision in api.pages(kind, namespace, selector, fields=fields):
        listed.update((obj["metadata"]["name"], slim(obj)) for obj in page)
        revision = page_revision
    return listed, revision


def _current_pods(taskruns: Iterable[JSONObject]) -> list[str]:
    """The pods Running TaskRuns say their current attempt runs in."""
    names = []
    for taskrun in taskruns:
        status = taskrun.get("status") or {}
        if status.get("podName") and status.get("phase") == TaskPhase.RUNNING:
            names.append(str(status["podName"]))
    return names
