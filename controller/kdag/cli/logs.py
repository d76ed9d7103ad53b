"""`kdag logs`: the log of one attempt of a task on the cluster (registered by `kdag.cli.app`).

Which pod and container to read is decided from the TaskRun and the DAGRun (`attempt_pod`, `check_container`,
pure); a task that never got a pod, an attempt that does not exist and a container the pod lacks are each
one line naming what there is instead.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Annotated, Any

import typer

from kdag import names
from kdag.cli import cluster
from kdag.cli.errors import UserError, reported
from kdag.cli.options import KubeconfigOption, NamespaceOption

NEVER_RUN_PHASES = ("UpstreamFailed", "Skipped")
"""Phases a task may end in without an attempt: the controller marks it so instead of starting a pod."""


def attempt_pod(dagrun: Mapping[str, Any], taskrun: Mapping[str, Any], task: str, attempt: int | None) -> str:
    """The pod of attempt `attempt` (the latest when None) of the TaskRun's task; UserError when there is
    none: the task was never run (naming its phase and why), has not started yet, or had fewer attempts."""
    run = dagrun["metadata"]["name"]
    status = taskrun.get("status") or {}
    phase, attempts = status.get("phase") or "Pending", int(status.get("attempts") or 0)
    latest = status.get("podName")
    if not latest or attempts == 0:
        why = f" ({status['message']})" if status.get("message") else ""
        if phase in NEVER_RUN_PHASES:
            raise UserError(f"task '{task}' of run '{run}' was never run: {phase}{why}; it has no log")
        raise UserError(f"task '{task}' of run '{run}' has no pod yet ({phase}){why}")
    if attempt is None or attempt == attempts:
        return str(latest)
    if attempt > attempts:
        raise UserError(
            f"task '{task}' of run '{run}' has had {attempts} attempt{'s' if attempts != 1 else ''}; "
            f"--attempt takes 1 to {attempts}"
        )
    index = taskrun["spec"].get("mapIndex")
    return names.pod_name(run, task, attempt, index, run_uid=dagrun["metadata"]["uid"])


def no_taskrun(dagrun: Mapping[str, Any], task: str, map_index: int | None) -> UserError:
    """What to say of a task with no TaskRun: never run (its phase in the run's status), not started yet,
    or not a task of the run."""
    run = dagrun["metadata"]["name"]
    phase = ((dagrun.get("status") or {}).get("tasks") or {}).get(task)
    if map_index is None and phase in NEVER_RUN_PHASES:
        return UserError(f"task '{task}' of run '{run}' was never run: {phase}; it has no log")
    of = f"instance {map_index} of task" if map_index is not None else "task"
    if phase is not None:
        return UserError(f"{of} '{task}' of run '{run}' has no pod yet ({phase})")
    return UserError(f"run '{run}' has no {of} '{task}' (not started yet, or no such task)")


def container_names(pod: Mapping[str, Any]) -> list[str]:
    """The pod's containers, init containers first (as `kubectl logs -c` takes them)."""
    spec = pod.get("spec") or {}
    return [c["name"] for key in ("initContainers", "containers") for c in spec.get(key) or []]


def check_container(pod: Mapping[str, Any], container: str) -> None:
    """UserError naming the pod's containers when it has no `container` (a Python task has no `xcom`
    sidecar: its runner stores the XComs itself)."""
    found = container_names(pod)
    if container not in found:
        why = "; a Python task stores its XComs itself, with no xcom sidecar" if container == "xcom" else ""
        raise UserError(
            f"pod '{pod['metadata']['name']}' has no container '{container}' "
            f"(its containers: {', '.join(found) or 'none'}){why}"
        )


def logs_command(
    run: Annotated[str, typer.Argument(help="metadata.name of the DAGRun.")],
    task_id: Annotated[str, typer.Argument(help="The task id.")],
    container: Annotated[
        str,
        typer.Option(
            "--container",
            "-c",
            help="task, or xcom: the XCom sidecar of a task that runs a command or image.",
        ),
    ] = "task",
    map_index: Annotated[
        int | None, typer.Option("--map-index", help="The instance of a mapped task.", min=0)
    ] = None,
    attempt: Annotated[
        int | None,
        typer.Option("--attempt", help="Which attempt (1 is the first; default the latest).", min=1),
    ] = None,
    namespace: NamespaceOption = None,
    kubeconfig: KubeconfigOption = None,
) -> None:
    """The log of a task's attempt on the cluster (its pod's `task` container).

    The latest attempt, or another with --attempt; one instance of a mapped task with --map-index."""
    from kdag.kube import DAGRUN, POD, TASKRUN

    with reported(), cluster.connect(kubeconfig) as api:
        namespace = namespace or api.namespace
        dagrun = cluster.require(api, DAGRUN, namespace, run)
        taskrun = api.get(TASKRUN, namespace, names.taskrun_name(run, task_id, map_index))
        if taskrun is None:
            raise no_taskrun(dagrun, task_id, map_index)
        pod_name = attempt_pod(dagrun, taskrun, task_id, attempt)
        pod = api.get(POD, namespace, pod_name)
        if pod is None:
            raise UserError(f"pod '{pod_name}' of task '{task_id}' is gone: its log went with it")
        check_container(pod, container)
        text = api.pod_log(namespace, pod_name, container)
    sys.stdout.write(text)
