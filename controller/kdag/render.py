"""Pure rendering of a task attempt's Pod (`kdag.attempts` reads an attempt's result back from it).

Everything the pod of one attempt needs is in `RunInfo` (from the DAGRun), the resolved `TaskSpec` (from the
TaskRun) and the settings: no API calls. The contracts (env vars, mounts, names) are docs/design.md's.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kdag_runner import keys
from kdag_runner.store import STATE_KEY

from kdag import names, params, schedules, topology
from kdag.api.models import API_VERSION, DAGSpec, TaskSpec
from kdag.schedules import DataInterval
from kdag.settings import ControllerSettings
from kdag.xcom_volumes import XCOM_IN_DIR, xcom_in_volumes

XCOM_OUT_DIR = "/kdag/xcom/out"
DAG_FILE_DIR = "/kdag/dag"
STATE_IN_DIR = "/kdag/state"
TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
TASK_CONTAINER = "task"
SIDECAR_CONTAINER = "xcom"
INPUTS_CONTAINER = "xcom-inputs"
RUNNER_COMMAND = ("python3", "-m", "kdag_runner")
"""A Python task's container: the task's own code runs in the runner, in its image's environment."""
ISOLATED_RUNNER_COMMAND = ("python3", "-I", "-m", "kdag_runner")
"""kdag's containers beside a command (the `xcom` collector, which holds the token, and the xcomInputs
check): isolated mode puts neither the working directory nor PYTHON* variables nor the user's site
directory on sys.path, so no file a task writes is ever imported there."""
ISOLATED_WORKDIR = "/"
"""Their working directory: on their read-only root filesystem, shared with no container."""
TOKEN_EXPIRATION_SECONDS = 3607
TASK_UID = 65532


@dataclass(frozen=True)
class RunInfo:
    """What a task pod needs to know of its run (read from the DAGRun and the DAG version it follows)."""

    namespace: str
    dag_name: str
    """metadata.name of the DAG (its objects' `kdag.dev/dag` label)."""
    name: str
    """metadata.name of the DAGRun (the run id)."""
    uid: str
    logical_date: datetime
    dag: DAGSpec
    """The DAG spec the run follows: its DAGVersion's (`kdag.dag_versions`)."""
    params: Mapping[str, Any] = field(default_factory=dict)
    """Param values of the run (spec.params)."""
    conf: Mapping[str, Any] = field(default_factory=dict)
    data_interval: DataInterval | None = None
    """spec.dataInterval of the run (scheduled runs have one); None: inferred from the DAG's timetable."""
    run_type: str = "manual"
    """Airflow's run type: `scheduled` for runs the controller made for the DAG (it owns them),
    `operator_triggered` for a TriggerDagRunOperator's, else `manual` (a DAGRun someone created,
    `kdag trigger`)."""

    @property
    def dag_id(self) -> str:
        """The DAG id tasks see: spec.dagId, else the DAG's name."""
        return self.dag.dag_id or self.dag_name

    @classmethod
    def from_dagrun(cls, dagrun: Mapping[str, Any], dag: DAGSpec) -> RunInfo:
        """From a DAGRun object (dict) and the DAG spec it follows (its DAGVersion's)."""
        meta = dagrun.get("metadata") or {}
        spec = dagrun.get("spec") or {}
        logical = spec.get("logicalDate") or meta.get("creationTimestamp")
        if not logical:
            raise ValueError(
                f"DAGRun {meta.get('name')!r} has neither spec.logicalDate nor a creationTimestamp"
            )
        return cls(
            namespace=meta["namespace"],
            dag_name=spec["dagRef"]["name"],
            name=meta["name"],
            uid=meta["uid"],
            logical_date=parse_time(logical),
            dag=dag,
            params=spec.get("params") or {},
            conf=spec.get("conf") or {},
            data_interval=_data_interval(spec.get("dataInterval")),
            run_type=_run_type(meta),
        )


def _run_type(meta: Mapping[str, Any]) -> str:
    labelled = (meta.get("labels") or {}).get(keys.RUN_TYPE_LABEL)
    if labelled in ("scheduled", "manual"):
        return str(labelled)
    # A run a TriggerDagRunOperator asked for (kdag.triggers labels it), as Airflow 3 types it.
    if keys.TRIGGERED_BY_UID_LABEL in (meta.get("labels") or {}):
        return "operator_triggered"
    # A run made before runs were labelled: the controller's own were the only ones its DAG owned.
    owners = meta.get("ownerReferences") or []
    return "scheduled" if any(owner.get("kind") == keys.DAG_KIND for owner in owners) else "manual"


def _data_interval(value: Mapping[str, Any] | None) -> DataInterval | None:
    if not value:
        return None
    return DataInterval(parse_time(value["start"]), parse_time(value["end"]))


def run_data_interval(run: RunInfo) -> DataInterval:
    """The run's data interval: its own (a scheduled run's), else what its DAG's timetable infers for a
    manual run at its logical date (Airflow's rule; the instant itself for a DAG without a timetable)."""
    if run.data_interval is not None:
        return run.data_interval
    return schedules.manual_data_interval(schedules.timetable_of(run.dag), run.logical_date)


def parse_time(value: str | datetime) -> datetime:
    """An RFC 3339 time (or datetime) as an aware UTC datetime."""
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def format_time(value: datetime) -> str:
    """RFC 3339 UTC with a Z, as Kubernetes writes times."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merged_params(
    dag: DAGSpec, task: TaskSpec, run_params: Mapping[str, Any], conf: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """DAG params < task params < the run's conf (Airflow's dag_run_conf_overrides_params) < run params."""
    return params.merged_params(dag, task, run_params, conf)


def is_python_task(task: TaskSpec) -> bool:
    """Python tasks run the runner in their own container; others get the `xcom` sidecar."""
    return task.python is not None


def task_env(
    run: RunInfo,
    task: TaskSpec,
    attempt: int,
    *,
    task_start: datetime | None = None,
    reschedules: int = 0,
    map_index: int | None = None,
    mapped: Mapping[str, int] | None = None,
    answers: Mapping[str, Mapping[str, Any]] | None = None,
    ancestor_ids: Sequence[str] | None = None,
    ancestors_cut: bool = False,
) -> list[dict[str, Any]]:
    """The KDAG_* environment every container of the attempt gets (docs/design.md, "Delivery").

    `ancestor_ids` are the ancestors whose XComs the pod mounts (default: every ancestor); `ancestors_cut`
    says some were left out (`KDAG_ANCESTORS_CUT`: the runner names the limit when a task reads one).

    `answers` (variable name -> JSON object: the answers to the task's questions about other runs,
    `kdag.questions`, such as `KDAG_TRIGGERED_RUN`) are added as they are.

    `map_index` (an instance of a mapped task) becomes `KDAG_MAP_INDEX`, and `mapped` (the mapped
    ancestors' instance counts) `KDAG_MAPPED`: their XComs are in `{task}/{index}/` of the XCom input.

    `task_start` (the TaskRun's startTime: when its first attempt started) becomes `KDAG_TASK_START`, and
    `reschedules` (its attempts that ended up for reschedule) `KDAG_RESCHEDULES`: a reschedule-mode sensor
    measures its timeout from the one, Airflow's try number is `attempt - reschedules`.
    """
    if ancestor_ids is None:
        ancestor_ids = topology.ancestors(run.dag.tasks, task.id)
    interval = run_data_interval(run)
    env: list[dict[str, Any]] = [
        {"name": "KDAG_DAG_ID", "value": run.dag_id},
        # The DAG object's name labels the task's XCom ConfigMap: a dag_id (`_team.etl`) may be no label.
        {"name": "KDAG_DAG_NAME", "value": run.dag_name},
        {"name": "KDAG_TASK_ID", "value": task.id},
        {"name": "KDAG_RUN_ID", "value": run.name},
        {"name": "KDAG_RUN_UID", "value": run.uid},
        {"name": "KDAG_NAMESPACE", "value": run.namespace},
        {"name": "KDAG_LOGICAL_DATE", "value": format_time(run.logical_date)},
        {"name": "KDAG_DATA_INTERVAL_START", "value": format_time(interval.start)},
        {"name": "KDAG_DATA_INTERVAL_END", "value": format_time(interval.end)},
        {"name": "KDAG_RUN_TYPE", "value": run.run_type},
        {"name": "KDAG_ATTEMPT", "value": str(attempt)},
        {"name": "KDAG_PARAMS", "value": _json(merged_params(run.dag, task, run.params, run.conf))},
        {"name": "KDAG_CONF", "value": _json(dict(run.conf))},
        {"name": "KDAG_ANCESTORS", "value": _json(list(ancestor_ids))},
        {"name": "KDAG_XCOM_IN", "value": XCOM_IN_DIR},
        {"name": "KDAG_XCOM_DIR", "value": XCOM_OUT_DIR},
        {"name": "KDAG_XCOM_CONFIGMAP", "value": names.xcom_configmap_name(run.name, task.id, map_index)},
    ]
    if ancestors_cut:
        env.append({"name": "KDAG_ANCESTORS_CUT", "value": str(len(ancestor_ids))})
    if map_index is not None:
        env.append({"name": "KDAG_MAP_INDEX", "value": str(map_index)})
    if mapped:
        env.append({"name": "KDAG_MAPPED", "value": _json(dict(mapped))})
    if task_start is not None:
        env.append({"name": "KDAG_TASK_START", "value": format_time(task_start)})
    if reschedules:
        env.append({"name": "KDAG_RESCHEDULES", "value": str(reschedules)})
    if task.xcom_inputs:
        inputs = [{"env": inp.env, "task": inp.task, "key": inp.key} for inp in task.xcom_inputs]
        env.append({"name": "KDAG_XCOM_INPUTS", "value": json.dumps(inputs, separators=(",", ":"))})
    for name, answer in (answers or {}).items():
        env.append({"name": name, "value": _json(dict(answer))})
    if task.python is not None:
        if task.python.from_dag_file:
            if run.dag.python_file is None:
                raise ValueError(f"task {task.id!r}: python.fromDagFile needs spec.pythonFile in the DAG")
            env.append({"name": "KDAG_DAG_FILE", "value": f"{DAG_FILE_DIR}/{run.dag.python_file.key}"})
        else:
            env.append({"name": "KDAG_PYTHON_SOURCE", "value": task.python.source or ""})
            env.append({"name": "KDAG_PYTHON_CALLABLE", "value": task.python.callable or ""})
    return env


def xcom_input_env(run: RunInfo, task: TaskSpec) -> list[dict[str, Any]]:
    """Declared XCom inputs as env vars read from the producing task's ConfigMap (optional: may be absent),
    for a command's container; a Python task's runner sets them itself (`KDAG_XCOM_INPUTS`), of any size."""
    return [
        {
            "name": inp.env,
            "valueFrom": {
                "configMapKeyRef": {
                    "name": names.xcom_configmap_name(run.name, inp.task),
                    "key": inp.key,
                    "optional": True,
                }
            },
        }
        for inp in task.xcom_inputs or []
    ]


def state_in_volume(run_name: str, task_id: str, map_index: int | None) -> dict[str, Any]:
    """The task state earlier attempts left (docs/design.md, "Task state store"): the `.state` item of the
    instance's own ConfigMap, which the kubelet reads, so the task's token needs no `get` (RBAC could not
    narrow one to its own ConfigMap). Optional: absent until an attempt stored some state."""
    return {
        "name": "state-in",
        "configMap": {
            "name": names.xcom_configmap_name(run_name, task_id, map_index),
            "optional": True,
            "items": [{"key": STATE_KEY, "path": STATE_KEY}],
        },
    }


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _container_security(read_only_root: bool) -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": read_only_root,
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _token_volume() -> dict[str, Any]:
    # Projected by hand (automount is off) so only the container that pushes XComs holds a token.
    return {
        "name": "kdag-token",
        "projected": {
            "defaultMode": 0o444,
            "sources": [
                {"serviceAccountToken": {"path": "token", "expirationSeconds": TOKEN_EXPIRATION_SECONDS}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {
                    "downwardAPI": {
                        "items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]
                    }
                },
            ],
        },
    }


def _resources(task: TaskSpec) -> dict[str, Any]:
    if task.resources is None:
        return {}
    return task.resources.model_dump(mode="json", by_alias=True, exclude_none=True)


def _isolated_runner_container(
    name: str, command: str, env: Sequence[Mapping[str, Any]], settings: ControllerSettings
) -> dict[str, Any]:
    """One of kdag's containers beside a command: the runner image, isolated (`ISOLATED_RUNNER_COMMAND`),
    read-only, no mounts yet."""
    return {
        "name": name,
        "image": settings.runner_image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": [*ISOLATED_RUNNER_COMMAND, command],
        "workingDir": ISOLATED_WORKDIR,
        "env": [dict(var) for var in env],  # copies: no object shared between containers
        "resources": {k: dict(v) for k, v in settings.sidecar_resources.items()},
        "securityContext": _container_security(read_only_root=True),
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def render_task_pod(
    *,
    run: RunInfo,
    task: TaskSpec,
    taskrun_name: str,
    taskrun_uid: str,
    attempt: int,
    settings: ControllerSettings,
    task_start: datetime | None = None,
    reschedules: int = 0,
    map_index: int | None = None,
    mapped: Mapping[str, Sequence[Collection[str]]] | None = None,
    pushed: Mapping[str, Collection[str]] | None = None,
    answers: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The Pod of attempt `attempt` (1-based) of the resolved `task`, owned by its TaskRun (`task_start`,
    `reschedules`, `answers`: see `task_env`).

    `map_index`: the pod runs that instance of a mapped task. What each ancestor pushed (its TaskRun's
    status.xcomKeys): `pushed` by plain task, `mapped` by mapped task and map index; the pod sees exactly
    those XComs, at `{task}/{key}` and `{task}/{i}/{key}` (`xcom_volumes`, docs/design.md, "Delivery").
    """
    image = task.image or settings.runner_image
    # The nearest ancestors' XComs, at most settings.max_xcom_sources ConfigMaps; declared inputs first.
    ancestor_ids, cut = topology.nearest_ancestors(
        run.dag.tasks,
        task.id,
        settings.max_xcom_sources,
        first=[inp.task for inp in task.xcom_inputs or []],
    )
    mapped = {tid: instance_keys for tid, instance_keys in (mapped or {}).items() if tid in ancestor_ids}
    counts = {tid: len(instance_keys) for tid, instance_keys in mapped.items()}
    # HOME on the /tmp emptyDir: the root filesystem of runner containers is read-only.
    kdag_env = [
        *task_env(
            run,
            task,
            attempt,
            task_start=task_start,
            reschedules=reschedules,
            map_index=map_index,
            mapped=counts,
            answers=answers,
            ancestor_ids=ancestor_ids,
            ancestors_cut=cut,
        ),
        {"name": "HOME", "value": "/tmp"},
    ]
    env = [*kdag_env, *(xcom_input_env(run, task) if task.python is None else [])]
    user_env = [e.model_dump(mode="json", by_alias=True, exclude_none=True) for e in task.env or []]

    volumes, xcom_in_mounts = xcom_in_volumes(run.name, ancestor_ids, pushed or {}, mapped)
    volumes.append({"name": "xcom-out", "emptyDir": {"sizeLimit": settings.xcom_out_size_limit}})
    volumes.append({"name": "tmp", "emptyDir": {"sizeLimit": settings.task_tmp_size_limit}})
    volumes.append(_token_volume())
    common_mounts = [
        *xcom_in_mounts,
        {"name": "xcom-out", "mountPath": XCOM_OUT_DIR},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    token_mount = {"name": "kdag-token", "mountPath": TOKEN_DIR, "readOnly": True}

    container: dict[str, Any] = {
        "name": TASK_CONTAINER,
        "image": image,
        "imagePullPolicy": settings.image_pull_policy,
        "env": [*env, *user_env],
        "resources": _resources(task),
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    init_containers: list[dict[str, Any]] = []
    if task.python is not None:
        container["command"] = [*RUNNER_COMMAND, "run"]
        container["volumeMounts"] = [*common_mounts, token_mount]
        container["securityContext"] = _container_security(read_only_root=True)
        if task.python.from_dag_file and run.dag.python_file is not None:
            volumes.append(
                {"name": "dag-file", "configMap": {"name": run.dag.python_file.config_map, "optional": False}}
            )
            container["volumeMounts"].append(
                {"name": "dag-file", "mountPath": DAG_FILE_DIR, "readOnly": True}
            )
        if attempt > 1:  # a retry or a reschedule: the state earlier attempts of the instance left
            volumes.append(state_in_volume(run.name, task.id, map_index))
            state_mount = {"name": "state-in", "mountPath": STATE_IN_DIR, "readOnly": True}
            container["volumeMounts"].append(state_mount)
            container["env"] = [*env, {"name": "KDAG_STATE_IN", "value": STATE_IN_DIR}, *user_env]
    else:
        container["command"] = list(task.command or [])
        if task.args:
            container["args"] = list(task.args)
        container["volumeMounts"] = common_mounts
        # Any image: its root filesystem may need to be writable; it holds no token.
        container["securityContext"] = _container_security(read_only_root=False)
        if task.xcom_inputs:
            # Runs to its end before the collector and the command start: an input too large for the
            # command's environment fails the attempt here, naming it (kdag_runner.xcom_inputs).
            inputs_check = _isolated_runner_container(INPUTS_CONTAINER, "check-inputs", kdag_env, settings)
            inputs_check["volumeMounts"] = [dict(mount) for mount in xcom_in_mounts]
            init_containers.append(inputs_check)
        # The collector holds the token, so it shares only /kdag/xcom/out with the command (never its /tmp
        # nor its own working directory) and runs isolated: nothing the task writes is ever imported.
        collector = _isolated_runner_container(SIDECAR_CONTAINER, "collect", kdag_env, settings)
        collector["restartPolicy"] = "Always"
        collector["volumeMounts"] = [{"name": "xcom-out", "mountPath": XCOM_OUT_DIR}, token_mount]
        init_containers.append(collector)

    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "serviceAccountName": settings.task_service_account,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": TASK_UID,
            "runAsGroup": TASK_UID,
            "fsGroup": TASK_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": volumes,
    }
    if init_containers:
        pod_spec["initContainers"] = init_containers
    if task.timeout_seconds:
        pod_spec["activeDeadlineSeconds"] = task.timeout_seconds
    if task.node_selector:
        pod_spec["nodeSelector"] = dict(task.node_selector)
    if task.tolerations:
        pod_spec["tolerations"] = [t.to_kube() for t in task.tolerations]

    labels = names.labels(run.dag_name, run.name, task.id, map_index)
    labels[names.ATTEMPT_LABEL] = str(attempt)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": names.pod_name(run.name, task.id, attempt, map_index, run_uid=run.uid),
            "namespace": run.namespace,
            "labels": labels,
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": keys.TASKRUN_KIND,
                    "name": taskrun_name,
                    "uid": taskrun_uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": pod_spec,
    }
