"""Pydantic models of the DAG, DAGRun and TaskRun resources: the one source of the CRD schemas.

Field aliases are the camelCase names of the YAML. Every field has a description (it becomes the CRD's
`description`); bounds (`max_length`, `max_items`) exist so the API server's CEL cost estimator accepts the
`x-kubernetes-validations` rules attached with `cel(...)`.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

# The API group and version are spelled once, in the runner library (it writes ownerReferences too).
from kdag_runner.keys import API_VERSION as API_VERSION
from kdag_runner.keys import GROUP as GROUP
from kdag_runner.keys import VERSION as VERSION
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

TASK_ID_PATTERN = r"^[A-Za-z0-9_.-]+$"
TASK_ID_MAX = 63
XCOM_KEY_PATTERN = r"^[A-Za-z0-9_][-._A-Za-z0-9]*$"
XCOM_KEY_MAX = 253
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
MAX_TASKS = 100
MAX_UPSTREAM = 30
MAX_XCOM_INPUTS = 28
MAX_ENV = 64
MAX_ARGS = 64
MAX_ARG_LENGTH = 8192
# Delivered as one env var: Linux refuses a single env string over 128 KiB at exec.
MAX_SOURCE_LENGTH = 65536
NAME_MAX = 253

Arg = Annotated[str, Field(max_length=MAX_ARG_LENGTH)]
TaskIdRef = Annotated[str, Field(max_length=TASK_ID_MAX)]
XComKey = Annotated[str, Field(max_length=XCOM_KEY_MAX)]

DEFAULT_RETRY_DELAY_SECONDS = 1
DEFAULT_MAX_RETRY_DELAY_SECONDS = 300
RETURN_VALUE = "return_value"


def cel(*rules: tuple[str, str]) -> dict[str, Any]:
    """Schema extra holding CEL rules `(rule, message)` for `x-kubernetes-validations`."""
    return {"x-kubernetes-validations": [{"rule": rule, "message": message} for rule, message in rules]}


class KubeModel(BaseModel):
    """Base of every spec model: camelCase aliases, unknown fields refused (typos are errors)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    def to_kube(self) -> dict[str, Any]:
        """The object as the API server stores it: camelCase, unset optionals left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class StatusModel(KubeModel):
    """Base of status models: fields written by other tools (kopf) are ignored, not refused."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    def to_patch(self) -> dict[str, Any]:
        """A JSON merge patch of exactly the fields set on this model (None clears a field).

        Handlers build status writes from these models, so renaming a field is a type error, not a
        silently ignored key on the cluster.
        """
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


class TriggerRule(StrEnum):
    """When a task runs, given the states of its upstream tasks (Airflow's rules of the same name)."""

    ALL_SUCCESS = "all_success"
    ALL_DONE = "all_done"
    ONE_SUCCESS = "one_success"
    ONE_FAILED = "one_failed"
    NONE_FAILED = "none_failed"


class TaskPhase(StrEnum):
    """Phase of one TaskRun."""

    PENDING = "Pending"
    RUNNING = "Running"
    RETRYING = "Retrying"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    UPSTREAM_FAILED = "UpstreamFailed"
    SKIPPED = "Skipped"

    @property
    def finished(self) -> bool:
        """True when the task will not change any more."""
        return self in FINISHED_TASK_PHASES


FINISHED_TASK_PHASES = frozenset(
    {TaskPhase.SUCCEEDED, TaskPhase.FAILED, TaskPhase.UPSTREAM_FAILED, TaskPhase.SKIPPED}
)


class RunPhase(StrEnum):
    """Phase of one DAGRun."""

    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class Condition(StatusModel):
    """A `metav1.Condition`: the state of one aspect of the object."""

    type: str = Field(
        max_length=316,
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
        r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
        description="Type of condition in CamelCase, e.g. Ready.",
    )
    status: Literal["True", "False", "Unknown"] = Field(description="Status of the condition.")
    observed_generation: int | None = Field(
        default=None, ge=0, description="The .metadata.generation the condition was set from."
    )
    last_transition_time: datetime = Field(
        description="When the condition last changed from one status to another (RFC 3339)."
    )
    reason: str = Field(
        max_length=1024,
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        description="Programmatic identifier, in CamelCase, of the reason for the last transition.",
    )
    message: str = Field(
        default="", max_length=32768, description="Human-readable message about the transition."
    )


class EnvVar(KubeModel):
    """A Kubernetes `EnvVar` of the task container."""

    name: str = Field(
        min_length=1,
        max_length=NAME_MAX,
        description="Name of the environment variable (not KDAG_*: those are kdag's).",
        json_schema_extra=cel(
            ("!self.startsWith('KDAG_')", "env names may not start with KDAG_ (kdag's own)")
        ),
    )
    value: str | None = Field(default=None, max_length=MAX_ARG_LENGTH, description="Literal value.")
    value_from: dict[str, Any] | None = Field(
        default=None,
        description="Source of the value (a Kubernetes EnvVarSource: configMapKeyRef, secretKeyRef, ...).",
    )


Quantity = int | str


class ResourceRequirements(KubeModel):
    """Compute resources of the task container (Kubernetes `ResourceRequirements`)."""

    limits: dict[str, Quantity] | None = Field(
        default=None, description="Maximum resources, e.g. {cpu: '1', memory: 256Mi}."
    )
    requests: dict[str, Quantity] | None = Field(
        default=None, description="Guaranteed resources, e.g. {cpu: 100m, memory: 64Mi}."
    )


class PythonTask(KubeModel):
    """A Python task: inline code and the function to call, or the operator of the DAG's Python file."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "has(self.fromDagFile) && self.fromDagFile"
                " ? !has(self.source) && !has(self.callable)"
                " : has(self.source) && has(self.callable)",
                "python needs either source and callable, or fromDagFile: true (not both)",
            )
        )
    )

    source: str | None = Field(
        default=None, max_length=MAX_SOURCE_LENGTH, description="Python source defining the callable."
    )
    callable: str | None = Field(
        default=None,
        max_length=NAME_MAX,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Name of the function in source to call with Airflow's context.",
    )
    from_dag_file: bool | None = Field(
        default=None,
        description="Run the operator that the DAG's Python file (spec.pythonFile) defines for this task id.",
    )


class XComInput(KubeModel):
    """An XCom of an upstream task delivered to this task as an environment variable."""

    env: str = Field(
        max_length=NAME_MAX,
        pattern=ENV_NAME_PATTERN,
        description="Environment variable that receives the value (a string as text, anything else as JSON).",
        json_schema_extra=cel(("!self.startsWith('KDAG_')", "xcomInputs[].env may not start with KDAG_")),
    )
    task: str = Field(
        max_length=TASK_ID_MAX, pattern=TASK_ID_PATTERN, description="Id of the ancestor task that pushed it."
    )
    key: str = Field(
        default=RETURN_VALUE,
        max_length=XCOM_KEY_MAX,
        pattern=XCOM_KEY_PATTERN,
        description="XCom key (default return_value).",
    )


class TaskDefaults(KubeModel):
    """Airflow's default_args: values every task gets unless it sets its own."""

    image: str | None = Field(default=None, max_length=1024, description="Container image of the tasks.")
    retries: int | None = Field(default=None, ge=0, le=100, description="Retries after a failed attempt.")
    retry_delay_seconds: int | None = Field(
        default=None, ge=0, le=86400, description="Delay before the first retry; doubles each retry."
    )
    max_retry_delay_seconds: int | None = Field(
        default=None, ge=0, le=86400, description="Cap of the exponential retry delay."
    )
    timeout_seconds: int | None = Field(
        default=None, ge=1, description="Time limit of one attempt (the pod's activeDeadlineSeconds)."
    )
    trigger_rule: TriggerRule | None = Field(default=None, description="Default trigger rule of the tasks.")
    resources: ResourceRequirements | None = Field(default=None, description="Default container resources.")
    env: list[EnvVar] | None = Field(
        default=None,
        max_length=MAX_ENV,
        description="Environment variables every task container gets.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )


class TaskSpec(KubeModel):
    """One task of a DAG: what to run, after which tasks, with which XCom inputs."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "has(self.python) != has(self.command)",
                "a task needs exactly one of python or command",
            ),
            ("!has(self.upstream) || !(self.id in self.upstream)", "a task may not list itself in upstream"),
            (
                "!has(self.xcomInputs) || self.xcomInputs.all(x, x.task != self.id)",
                "xcomInputs[].task must name an upstream task, not the task itself",
            ),
            ("!has(self.args) || has(self.command)", "args need a command"),
            ("self.id != '.' && self.id != '..'", "a task id may not be '.' or '..' (it names a directory)"),
        )
    )

    id: str = Field(
        min_length=1,
        max_length=TASK_ID_MAX,
        pattern=TASK_ID_PATTERN,
        description="Task id, unique in the DAG: letters, digits, '_', '.', '-'; at most 63 characters.",
    )
    image: str | None = Field(
        default=None,
        max_length=1024,
        description="Container image; Python tasks default to the kdag runner image.",
    )
    python: PythonTask | None = Field(
        default=None, description="Run a Python callable with Airflow's context."
    )
    command: list[Arg] | None = Field(
        default=None,
        max_length=MAX_ARGS,
        description="Command of the container (any image). XComs: write $KDAG_XCOM_DIR/<key>.json.",
    )
    args: list[Arg] | None = Field(
        default=None,
        max_length=MAX_ARGS,
        description="Arguments of the command.",
    )
    env: list[EnvVar] | None = Field(
        default=None,
        max_length=MAX_ENV,
        description="Extra environment variables of the task container.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    resources: ResourceRequirements | None = Field(default=None, description="Container resources.")
    upstream: list[TaskIdRef] | None = Field(
        default=None,
        max_length=MAX_UPSTREAM,
        description="Ids of the tasks that must finish first.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    retries: int | None = Field(
        default=None, ge=0, le=100, description="Retries after a failed attempt (default 0)."
    )
    retry_delay_seconds: int | None = Field(
        default=None,
        ge=0,
        le=86400,
        description="Delay before the first retry (default 1); retry n waits delay * 2**(n-1).",
    )
    max_retry_delay_seconds: int | None = Field(
        default=None, ge=0, le=86400, description="Cap of the exponential retry delay (default 300)."
    )
    timeout_seconds: int | None = Field(
        default=None, ge=1, description="Time limit of one attempt (the pod's activeDeadlineSeconds)."
    )
    trigger_rule: TriggerRule | None = Field(
        default=None, description="When the task runs given its upstream states (default all_success)."
    )
    params: dict[str, Any] | None = Field(
        default=None, description="Task params (override DAG params; run params override both)."
    )
    xcom_inputs: list[XComInput] | None = Field(
        default=None,
        max_length=MAX_XCOM_INPUTS,
        description="XComs of ancestor tasks delivered as environment variables.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["env"]},
    )

    @property
    def upstream_ids(self) -> list[str]:
        """The upstream ids, empty when none are set."""
        return list(self.upstream or [])

    @property
    def effective_trigger_rule(self) -> TriggerRule:
        """The trigger rule, Airflow's all_success when unset."""
        return self.trigger_rule or TriggerRule.ALL_SUCCESS


class PythonFileRef(KubeModel):
    """Where the DAG's Python file lives (written by `kdag compile` as `{dag}-source`)."""

    config_map: str = Field(max_length=NAME_MAX, description="Name of the ConfigMap holding the file.")
    key: str = Field(max_length=XCOM_KEY_MAX, description="Key of the file in the ConfigMap.")


class DAGSpec(KubeModel):
    """A DAG: its tasks, their dependencies and XCom inputs, params and an optional schedule."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "self.tasks.all(t, !has(t.upstream) || t.upstream.all(u, self.tasks.exists(o, o.id == u)))",
                "every upstream id must name a task of this DAG",
            ),
            (
                "self.tasks.all(t, !has(t.xcomInputs)"
                " || t.xcomInputs.all(x, self.tasks.exists(o, o.id == x.task)))",
                "every xcomInputs[].task must name a task of this DAG",
            ),
            (
                "has(self.pythonFile) || !self.tasks.exists(t, has(t.python) && has(t.python.fromDagFile)"
                " && t.python.fromDagFile)",
                "tasks with python.fromDagFile need spec.pythonFile",
            ),
        )
    )

    dag_id: str | None = Field(
        default=None,
        max_length=NAME_MAX,
        description="The DAG id tasks see as dag_id (default: metadata.name).",
    )
    schedule: str | None = Field(
        default=None,
        max_length=256,
        description="Cron schedule (5 fields or @daily, ...); without one, creating the DAG runs it.",
    )
    params: dict[str, Any] | None = Field(default=None, description="DAG params with their default values.")
    defaults: TaskDefaults | None = Field(default=None, description="Values every task gets (default_args).")
    python_file: PythonFileRef | None = Field(
        default=None, description="ConfigMap holding the DAG's Python file (for python.fromDagFile tasks)."
    )
    run_history_limit: int | None = Field(
        default=None,
        ge=0,
        le=1000,
        description="How many finished runs of this DAG to keep; older ones are deleted (default 10).",
    )
    ttl_seconds_after_finished: int | None = Field(
        default=None,
        ge=0,
        description="Runs the controller starts for this DAG are deleted this long after they finish.",
    )
    tasks: list[TaskSpec] = Field(
        min_length=1,
        max_length=MAX_TASKS,
        description="The tasks; dependencies go in their upstream lists.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["id"]},
    )

    def task(self, task_id: str) -> TaskSpec:
        """The task with this id; KeyError naming it when there is none."""
        for task in self.tasks:
            if task.id == task_id:
                return task
        raise KeyError(f"DAG has no task {task_id!r}")

    def resolved_task(self, task_id: str, runner_image: str) -> TaskSpec:
        """The task with `defaults` and built-in defaults applied: what a TaskRun's spec.task holds."""
        return resolve_task(self.task(task_id), self.defaults, runner_image)


def resolve_task(task: TaskSpec, defaults: TaskDefaults | None, runner_image: str) -> TaskSpec:
    """Fill unset task fields from the DAG's defaults, then from kdag's built-in defaults."""
    d = defaults or TaskDefaults()
    env = [*(d.env or []), *(task.env or [])]
    return task.model_copy(
        update={
            "image": task.image or d.image or runner_image,
            "retries": task.retries if task.retries is not None else (d.retries or 0),
            "retry_delay_seconds": _first_set(
                task.retry_delay_seconds, d.retry_delay_seconds, DEFAULT_RETRY_DELAY_SECONDS
            ),
            "max_retry_delay_seconds": _first_set(
                task.max_retry_delay_seconds, d.max_retry_delay_seconds, DEFAULT_MAX_RETRY_DELAY_SECONDS
            ),
            "timeout_seconds": task.timeout_seconds or d.timeout_seconds,
            "trigger_rule": task.trigger_rule or d.trigger_rule or TriggerRule.ALL_SUCCESS,
            "resources": task.resources or d.resources,
            "env": env or None,
        }
    )


def _first_set(*values: int | None) -> int:
    for value in values:
        if value is not None:
            return value
    raise ValueError("no value set")


class DAGStatus(StatusModel):
    """What the controller observed of a DAG."""

    observed_generation: int | None = Field(default=None, description="The generation last reconciled.")
    conditions: list[Condition] | None = Field(
        default=None,
        max_length=8,
        description="Ready: the DAG is valid and runs can start.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    task_count: int | None = Field(default=None, description="Number of tasks (a printer column).")
    last_run: str | None = Field(default=None, max_length=NAME_MAX, description="Name of the newest DAGRun.")
    last_schedule_time: datetime | None = Field(
        default=None, description="Logical date of the newest scheduled run (RFC 3339)."
    )


class DAGRef(KubeModel):
    """Reference to a DAG in the same namespace."""

    name: str = Field(min_length=1, max_length=NAME_MAX, description="metadata.name of the DAG.")


class DAGRunSpec(KubeModel):
    """One execution of a DAG."""

    model_config = ConfigDict(
        json_schema_extra=cel(("self == oldSelf", "a DAGRun's spec cannot change; create another run"))
    )

    dag_ref: DAGRef = Field(description="The DAG to run.")
    params: dict[str, Any] | None = Field(default=None, description="Param overrides for this run.")
    conf: dict[str, Any] | None = Field(default=None, description="The run's conf (dag_run.conf).")
    logical_date: datetime | None = Field(
        default=None, description="Logical date (gives ds, ts, ...); defaults to the creation time."
    )
    ttl_seconds_after_finished: int | None = Field(
        default=None,
        ge=0,
        description="Delete this run (with its TaskRuns, pods and XComs) this long after it finishes.",
    )


class DAGRunStatus(StatusModel):
    """Where a DAGRun stands."""

    phase: RunPhase | None = Field(default=None, description="Pending, Running, Succeeded or Failed.")
    progress: str | None = Field(default=None, max_length=32, description="Finished/total tasks, e.g. 2/5.")
    start_time: datetime | None = Field(default=None, description="When the first task was started.")
    finish_time: datetime | None = Field(default=None, description="When the run finished.")
    conditions: list[Condition] | None = Field(
        default=None,
        max_length=8,
        description="Ready, Reconciling, Stalled.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    tasks: dict[str, TaskPhase] | None = Field(default=None, description="Phase of each task, by task id.")
    dag: DAGSpec | None = Field(
        default=None,
        description="The DAG spec snapshotted at run start; later edits of the DAG do not apply.",
    )
    observed_generation: int | None = Field(default=None, description="The generation last reconciled.")


class TaskRunSpec(KubeModel):
    """One task of one DAGRun; created by the controller."""

    model_config = ConfigDict(json_schema_extra=cel(("self == oldSelf", "a TaskRun's spec cannot change")))

    dag_run: str = Field(min_length=1, max_length=NAME_MAX, description="Name of the DAGRun.")
    task_id: str = Field(
        min_length=1, max_length=TASK_ID_MAX, pattern=TASK_ID_PATTERN, description="Id of the task."
    )
    task: TaskSpec = Field(description="The task spec as resolved at run start (DAG defaults applied).")


class TaskRunStatus(StatusModel):
    """Where one task of a run stands."""

    phase: TaskPhase | None = Field(default=None, description="Phase of the task.")
    attempts: int | None = Field(default=None, ge=0, description="Number of attempts started.")
    pod_name: str | None = Field(default=None, max_length=NAME_MAX, description="Pod of the newest attempt.")
    exit_code: int | None = Field(default=None, description="Exit code of the task container's last attempt.")
    message: str | None = Field(default=None, max_length=32768, description="Why the task ended as it did.")
    xcom_keys: list[XComKey] | None = Field(
        default=None,
        max_length=1024,
        description="XCom keys the task pushed.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    start_time: datetime | None = Field(default=None, description="When the first attempt started.")
    finish_time: datetime | None = Field(default=None, description="When the task finished.")
    next_attempt_at: datetime | None = Field(default=None, description="When the next retry starts.")


class ObjectMeta(StatusModel):
    """The parts of `metav1.ObjectMeta` kdag reads."""

    name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    generation: int | None = None
    creation_timestamp: datetime | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class DAG(StatusModel):
    """The DAG resource."""

    api_version: Literal["kdag.dev/v1alpha1"] = "kdag.dev/v1alpha1"
    kind: Literal["DAG"] = "DAG"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: DAGSpec
    status: DAGStatus | None = None


class DAGRun(StatusModel):
    """The DAGRun resource."""

    api_version: Literal["kdag.dev/v1alpha1"] = "kdag.dev/v1alpha1"
    kind: Literal["DAGRun"] = "DAGRun"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: DAGRunSpec
    status: DAGRunStatus | None = None


class TaskRun(StatusModel):
    """The TaskRun resource."""

    api_version: Literal["kdag.dev/v1alpha1"] = "kdag.dev/v1alpha1"
    kind: Literal["TaskRun"] = "TaskRun"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: TaskRunSpec
    status: TaskRunStatus | None = None
