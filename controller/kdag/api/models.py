"""Pydantic models of the DAG, DAGRun, TaskRun and DAGVersion resources: the one source of the CRD schemas.

Field aliases are the camelCase names of the YAML. Every field has a description (it becomes the CRD's
`description`); bounds (`max_length`, `max_items`) exist so the API server's CEL cost estimator accepts the
`x-kubernetes-validations` rules attached with `cel(...)`.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar

# The API group and version are spelled once, in the runner library (it writes ownerReferences too).
from kdag_runner.keys import API_VERSION as API_VERSION
from kdag_runner.keys import GROUP as GROUP
from kdag_runner.keys import VERSION as VERSION
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

# A task id is the `kdag.dev/task` label value of its TaskRuns and pods, so it must be a valid label value:
# it starts and ends with a letter or digit (Airflow allows `_x` and `x.`; the API server's labels do not).
TASK_ID_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?$"
TASK_ID_MAX = 63
# Airflow's KEY_REGEX and ID_LEN for a dag_id (`kdag_runner.airflow.dags`).
DAG_ID_PATTERN = r"^[A-Za-z0-9_.-]+$"
DAG_ID_MAX = 250
# The API server's rule for an env var name (Kubernetes 1.32, `IsEnvVarName`).
POD_ENV_NAME_PATTERN = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"
# The ConfigMap key an XCom is stored under (kdag_runner.store.STORE_KEY_PATTERN): the key as pushed, or
# its escaped form ("-" + the key, other UTF-8 bytes as ".xx") for keys with other characters.
XCOM_KEY_PATTERN = r"^[-_A-Za-z0-9][-._A-Za-z0-9]*$"
XCOM_KEY_MAX = 253
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
# A DAG's size: Airflow has no cap; these are high enough for the DAGs people run (a fan-in of every task)
# and keep the cost the API server's CEL estimator computes for the per-field rules in budget. Whole-graph
# checks (every upstream names a task, no cycle) are the webhook's (`api.validation`): O(n) there, O(n^2)
# in CEL.
MAX_TASKS = 10000
MAX_UPSTREAM = 10000
MAX_XCOM_INPUTS = 28
MAX_ENV = 64
MAX_ARGS = 64
MAX_ARG_LENGTH = 8192
# Delivered as one env var: Linux refuses a single env string over 128 KiB at exec.
MAX_SOURCE_LENGTH = 65536
NAME_MAX = 253
# Tasks one successful attempt may ask to skip (`skipTasks` of its termination report).
MAX_SKIP_TASKS = 2048
# Dynamic task mapping: the most instances of one mapped task (Airflow's [core] max_map_length default;
# kdag_runner.airflow.mapping_checks.MAX_MAP_LENGTH), and the most terms a length expression combines.
MAX_MAP_LENGTH = 1024
MAX_MAP_TERMS = 12

Arg = Annotated[str, Field(max_length=MAX_ARG_LENGTH)]
TaskIdRef = Annotated[str, Field(max_length=TASK_ID_MAX)]
_M = TypeVar("_M", bound=BaseModel)
XComKey = Annotated[str, Field(max_length=XCOM_KEY_MAX)]

DEFAULT_RETRY_DELAY_SECONDS = 1
DEFAULT_MAX_RETRY_DELAY_SECONDS = 300
RETURN_VALUE = "return_value"


def cel(*rules: tuple[str, str] | tuple[str, str, str]) -> dict[str, Any]:
    """Schema extra holding CEL rules `(rule, message)` or `(rule, message, messageExpression)` for
    `x-kubernetes-validations`: the expression names the offending value (task id, field, value), the
    message is what the API server says when the expression cannot be evaluated."""
    validations: list[dict[str, str]] = []
    for rule, message, *expression in rules:
        validation = {"rule": rule, "message": message}
        if expression:
            validation["messageExpression"] = expression[0]
        validations.append(validation)
    return {"x-kubernetes-validations": validations}


ATOMIC: dict[str, Any] = {"x-kubernetes-map-type": "atomic"}
"""An object that server-side apply replaces as a whole, never merging the fields two managers applied."""


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
    """When a task runs, given the states of its upstream tasks: Airflow 3's rules of the same name.

    `trigger_rules.evaluate_trigger_rule` gives their meaning (when the task runs, and whether it becomes
    UpstreamFailed or Skipped when the rule can never hold), after Airflow's TriggerRuleDep.
    """

    ALL_SUCCESS = "all_success"
    ALL_FAILED = "all_failed"
    ALL_DONE = "all_done"
    ALL_DONE_MIN_ONE_SUCCESS = "all_done_min_one_success"
    ALL_DONE_SETUP_SUCCESS = "all_done_setup_success"
    ALL_SKIPPED = "all_skipped"
    ONE_SUCCESS = "one_success"
    ONE_FAILED = "one_failed"
    ONE_DONE = "one_done"
    NONE_FAILED = "none_failed"
    NONE_FAILED_MIN_ONE_SUCCESS = "none_failed_min_one_success"
    NONE_SKIPPED = "none_skipped"
    ALWAYS = "always"


class TaskPhase(StrEnum):
    """Phase of one TaskRun."""

    PENDING = "Pending"
    RUNNING = "Running"
    RETRYING = "Retrying"
    UP_FOR_RESCHEDULE = "UpForReschedule"
    """A sensor not done yet (runner exit code 5): its next attempt starts at nextAttemptAt, no pod before."""
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
        pattern=POD_ENV_NAME_PATTERN,
        description="Name of the environment variable (not KDAG_*: those are kdag's).",
        json_schema_extra=cel(
            (
                "!self.startsWith('KDAG_')",
                "env names may not start with KDAG_ (kdag's own)",
                "'env name ' + self + \" may not start with KDAG_ (kdag's own)\"",
            )
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


class Toleration(KubeModel):
    """A toleration of the task's pod (Kubernetes `Toleration`): lets it run on tainted nodes."""

    key: str | None = Field(
        default=None, max_length=316, description="The taint key; empty with Exists: all."
    )
    operator: Literal["Exists", "Equal"] | None = Field(
        default=None, description="Exists or Equal (default)."
    )
    value: str | None = Field(default=None, max_length=63, description="The taint value, for Equal.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="The taint effect to tolerate; empty: all."
    )
    toleration_seconds: int | None = Field(
        default=None, ge=0, description="NoExecute: how long the pod stays bound after the taint appears."
    )


MAX_NODE_SELECTOR = 32
MAX_TOLERATIONS = 32
NodeSelector = Annotated[
    dict[str, Annotated[str, Field(max_length=63)]],
    Field(max_length=MAX_NODE_SELECTOR),
]


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
        json_schema_extra=cel(
            (
                "!self.startsWith('KDAG_')",
                "xcomInputs[].env may not start with KDAG_",
                "'xcomInputs[].env ' + self + ' may not start with KDAG_'",
            )
        ),
    )
    task: str = Field(
        max_length=TASK_ID_MAX, pattern=TASK_ID_PATTERN, description="Id of the ancestor task that pushed it."
    )
    key: str = Field(
        default=RETURN_VALUE,
        max_length=XCOM_KEY_MAX,
        pattern=XCOM_KEY_PATTERN,
        description=(
            "XCom key (default return_value) as its ConfigMap key: the key as pushed, or for a key with"
            " characters other than letters, digits, '_', '-', '.' its escaped form (see docs/design.md)."
        ),
    )


_ONE_MAP_TERM = (
    "(has(self.literal) ? 1 : 0) + (has(self.xcom) ? 1 : 0) + (has(self.zip) ? 1 : 0)"
    " + (has(self.concat) ? 1 : 0) + (has(self.product) ? 1 : 0) == 1"
)


class MapXComRef(KubeModel):
    """An upstream task's XCom a mapped task expands over: its length is an instance count."""

    task: str = Field(
        max_length=TASK_ID_MAX, pattern=TASK_ID_PATTERN, description="Id of the upstream task that pushes it."
    )
    key: str = Field(
        default=RETURN_VALUE,
        max_length=XCOM_KEY_MAX,
        pattern=XCOM_KEY_PATTERN,
        description="Its ConfigMap key (default return_value); the length is the one the task reported.",
    )


class MapLeaf(KubeModel):
    """A length inside zip or concat of a term: a literal or an upstream XCom's."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            ("(has(self.literal) ? 1 : 0) + (has(self.xcom) ? 1 : 0) == 1", "one of literal or xcom")
        )
    )

    literal: int | None = Field(default=None, ge=0, le=MAX_MAP_LENGTH, description="A literal's length.")
    xcom: MapXComRef | None = Field(default=None, description="An upstream XCom's length (a list or dict).")

    @model_validator(mode="after")
    def _one_kind(self) -> MapLeaf:
        return _one_map_kind(self, "literal or xcom")


def _one_map_kind(node: _M, kinds: str) -> _M:
    """The CEL rules of MapLength/MapTerm/MapLeaf, for the validator: exactly one kind; fill with zip only."""
    given = [
        name
        for name in ("literal", "xcom", "product", "zip", "concat")
        if getattr(node, name, None) is not None
    ]
    if len(given) != 1:
        raise ValueError(f"one of {kinds}")
    if getattr(node, "fill", None) is not None and getattr(node, "zip", None) is None:
        raise ValueError("fill is for zip")
    return node


class MapTerm(KubeModel):
    """A length combined by product, zip or concat: a literal, an XCom, or a zip or concat of leaves."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "(has(self.literal) ? 1 : 0) + (has(self.xcom) ? 1 : 0) + (has(self.zip) ? 1 : 0)"
                " + (has(self.concat) ? 1 : 0) == 1",
                "one of literal, xcom, zip or concat",
            ),
            ("!has(self.fill) || has(self.zip)", "fill is for zip"),
        )
    )

    literal: int | None = Field(default=None, ge=0, le=MAX_MAP_LENGTH, description="A literal's length.")
    xcom: MapXComRef | None = Field(default=None, description="An upstream XCom's length (a list or dict).")
    zip: list[MapLeaf] | None = Field(
        default=None, min_length=1, max_length=MAX_MAP_TERMS, description="The shortest (fill: the longest)."
    )
    fill: bool | None = Field(default=None, description="zip with a fillvalue: as long as the longest.")
    concat: list[MapLeaf] | None = Field(
        default=None, min_length=1, max_length=MAX_MAP_TERMS, description="The sum of the lengths."
    )

    @model_validator(mode="after")
    def _one_kind(self) -> MapTerm:
        return _one_map_kind(self, "literal, xcom, zip or concat")


class MapLength(KubeModel):
    """How many instances a mapped task has, from lengths the controller knows (docs/design.md, "Mapped
    tasks"): exactly one of a literal, an upstream XCom's reported length, the product of several (one
    instance per combination: several expand() arguments), their zip or their concat."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (_ONE_MAP_TERM, "one of literal, xcom, product, zip or concat"),
            ("!has(self.fill) || has(self.zip)", "fill is for zip"),
        )
    )

    literal: int | None = Field(
        default=None, ge=0, description="A literal's length (a list or dict written in the DAG file)."
    )
    xcom: MapXComRef | None = Field(default=None, description="An upstream XCom's length (a list or dict).")
    product: list[MapTerm] | None = Field(
        default=None, min_length=1, max_length=MAX_MAP_TERMS, description="The product of the lengths."
    )
    zip: list[MapTerm] | None = Field(
        default=None, min_length=1, max_length=MAX_MAP_TERMS, description="The shortest (fill: the longest)."
    )
    fill: bool | None = Field(default=None, description="zip with a fillvalue: as long as the longest.")
    concat: list[MapTerm] | None = Field(
        default=None, min_length=1, max_length=MAX_MAP_TERMS, description="The sum of the lengths."
    )

    @model_validator(mode="after")
    def _one_kind(self) -> MapLength:
        return _one_map_kind(self, "literal, xcom, product, zip or concat")

    def references(self) -> list[MapXComRef]:
        """Every upstream XCom the length needs, in order."""
        found: list[MapXComRef] = []
        stack: list[MapLength | MapTerm | MapLeaf] = [self]
        while stack:
            node = stack.pop(0)
            if node.xcom is not None:
                found.append(node.xcom)
            for children in (
                getattr(node, "product", None),
                getattr(node, "zip", None),
                getattr(node, "concat", None),
            ):
                stack.extend(children or [])
        return found


class TaskMap(KubeModel):
    """A mapped task (Airflow's expand/expand_kwargs): one TaskRun and pod per instance."""

    length: MapLength = Field(description="How many instances, computed once the upstream tasks are done.")
    max_length: int | None = Field(
        default=None,
        ge=1,
        le=MAX_MAP_LENGTH,
        description="More instances than this fail the task (Airflow's max_map_length; default 1024).",
    )
    group: str | None = Field(
        default=None,
        max_length=TASK_ID_MAX,
        pattern=TASK_ID_PATTERN,
        description="The mapped task group the task belongs to (Airflow's expand on a @task_group), by its"
        " id: every task of the group has the group's length and maxLength, and instance i waits only for"
        " instance i of the group's tasks upstream of it.",
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
    node_selector: NodeSelector | None = Field(
        default=None, description="Node labels every task's pod needs (Kubernetes nodeSelector)."
    )
    tolerations: list[Toleration] | None = Field(
        default=None, max_length=MAX_TOLERATIONS, description="Taints every task's pod tolerates."
    )
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
                "'task ' + self.id + ' needs exactly one of python or command'",
            ),
            (
                "!has(self.xcomInputs) || self.xcomInputs.all(x, x.task != self.id)",
                "xcomInputs[].task must name an upstream task, not the task itself",
                "'task ' + self.id + ': xcomInputs[].task must name an upstream task, not '"
                " + self.id + ' itself'",
            ),
            (
                "!has(self.args) || has(self.command)",
                "args need a command",
                "'task ' + self.id + ': args need a command'",
            ),
            (
                "!(has(self.setup) && self.setup && has(self.teardown) && self.teardown)",
                "a task may be a setup or a teardown, not both",
                "'task ' + self.id + ' may be a setup or a teardown, not both'",
            ),
            (
                "!has(self.failRunOnFailure) || !self.failRunOnFailure"
                " || (has(self.teardown) && self.teardown)",
                "failRunOnFailure is for teardown tasks only",
                "'task ' + self.id + ': failRunOnFailure is for teardown tasks only'",
            ),
        )
    )

    id: str = Field(
        min_length=1,
        max_length=TASK_ID_MAX,
        pattern=TASK_ID_PATTERN,
        description="Task id, unique in the DAG: letters, digits, '_', '.', '-', starting and ending with a"
        " letter or digit (it is a label value); at most 63 characters.",
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
    node_selector: NodeSelector | None = Field(
        default=None,
        description="Node labels the task's pod needs (Kubernetes nodeSelector; replaces the default's).",
    )
    tolerations: list[Toleration] | None = Field(
        default=None,
        max_length=MAX_TOLERATIONS,
        description="Taints the task's pod tolerates (replaces the defaults' list).",
    )
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
        default=None,
        description="When the task runs given its upstream states"
        " (default all_success; all_done_setup_success for a teardown).",
    )
    setup: bool | None = Field(
        default=None,
        description="A setup task (Airflow's as_setup): its teardowns run once it succeeded, even if"
        " work failed.",
    )
    teardown: bool | None = Field(
        default=None,
        description="A teardown task (Airflow's as_teardown): its failure does not fail the run, unless"
        " failRunOnFailure.",
    )
    fail_run_on_failure: bool | None = Field(
        default=None,
        description="A teardown whose failure fails the run (Airflow's on_failure_fail_dagrun).",
    )
    params: dict[str, Any] | None = Field(
        default=None,
        description="Task params with their default values (override the DAG's; a run's conf and params"
        " override both).",
    )
    param_schemas: dict[str, dict[str, Any]] | None = Field(
        default=None,
        description="JSON schema of each of the task's own params (Airflow's Param(**schema)); it replaces"
        " the DAG's schema of that param for this task. A param here without a default in params has none.",
    )
    xcom_inputs: list[XComInput] | None = Field(
        default=None,
        max_length=MAX_XCOM_INPUTS,
        description="XComs of ancestor tasks delivered as environment variables.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["env"]},
    )
    map: TaskMap | None = Field(
        default=None,
        description="Run the task as instances (Airflow's dynamic task mapping): as many as map.length"
        " comes to once the upstream tasks are done, each with KDAG_MAP_INDEX; none: Skipped.",
    )

    @property
    def is_mapped(self) -> bool:
        """True for a mapped task (``map``): it runs as instances."""
        return self.map is not None

    @property
    def upstream_ids(self) -> list[str]:
        """The upstream ids, empty when none are set."""
        return list(self.upstream or [])

    @property
    def is_setup(self) -> bool:
        """True for a setup task."""
        return bool(self.setup)

    @property
    def is_teardown(self) -> bool:
        """True for a teardown task."""
        return bool(self.teardown)

    @property
    def effective_trigger_rule(self) -> TriggerRule:
        """The trigger rule: all_success when unset, all_done_setup_success for a teardown (as_teardown's)."""
        return self.trigger_rule or default_trigger_rule(self)


class PythonFileRef(KubeModel):
    """Where the DAG's Python file lives (written by `kdag compile` as `{dag}-source`)."""

    config_map: str = Field(max_length=NAME_MAX, description="Name of the ConfigMap holding the file.")
    key: str = Field(max_length=XCOM_KEY_MAX, description="Key of the file in the ConfigMap.")


MAX_CRONS = 32
MAX_EVENTS = 1000
MIN_EVERY_SECONDS = 60  # scheduled runs are named by their minute
TIMEZONE_MAX = 64


class Timetable(KubeModel):
    """When a DAG runs, as one of Airflow's timetables: exactly one of cron, crons, everySeconds, events.

    cron: CronTriggerTimetable (a run at each tick), or CronDataIntervalTimetable with dataIntervals: true
    (a run when each interval between two ticks ends). crons: MultipleCronTriggerTimetable. everySeconds:
    DeltaTriggerTimetable, or DeltaDataIntervalTimetable with dataIntervals: true. events:
    EventsTimetable. A run's logical date is its data interval's start; `DAGSpec.catchup` says what missed
    ticks make.
    """

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "(has(self.cron) ? 1 : 0) + (has(self.crons) ? 1 : 0) + (has(self.everySeconds) ? 1 : 0)"
                " + (has(self.events) ? 1 : 0) == 1",
                "a timetable needs exactly one of cron, crons, everySeconds or events",
            ),
            (
                "!has(self.dataIntervals) || !self.dataIntervals || has(self.cron) || has(self.everySeconds)",
                "dataIntervals is for cron and everySeconds",
            ),
            (
                "!has(self.intervalSeconds) || !has(self.events)"
                " && !(has(self.dataIntervals) && self.dataIntervals)",
                "intervalSeconds is for trigger timetables (cron, crons, everySeconds without dataIntervals)",
            ),
            ("!has(self.timezone) || has(self.cron) || has(self.crons)", "timezone is for cron and crons"),
            ("!has(self.restrictToEvents) || has(self.events)", "restrictToEvents is for events"),
            ("!has(self.start) || !has(self.end) || self.start <= self.end", "end may not be before start"),
        )
    )

    cron: str | None = Field(
        default=None,
        max_length=256,
        description="Cron expression (5 fields or a preset such as @daily): a run at each tick.",
    )
    crons: list[Annotated[str, Field(max_length=256)]] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_CRONS,
        description="Cron expressions: a run at each tick of any of them (MultipleCronTriggerTimetable).",
    )
    every_seconds: int | None = Field(
        default=None,
        ge=MIN_EVERY_SECONDS,
        description="A run every this many seconds, the ticks aligned to start (else to the Unix epoch).",
    )
    events: list[datetime] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_EVENTS,
        description="A run at each of these times (RFC 3339), at most one per minute (EventsTimetable).",
    )
    data_intervals: bool | None = Field(
        default=None,
        description="cron, everySeconds: each run covers the interval between two ticks and starts when it"
        " ends, its logical date the interval's start (Airflow's *DataIntervalTimetable).",
    )
    interval_seconds: int | None = Field(
        default=None,
        ge=0,
        description="Trigger timetables: each run's data interval ends at its tick and lasts this long"
        " (default 0: the tick itself).",
    )
    timezone: str | None = Field(
        default=None,
        max_length=TIMEZONE_MAX,
        description="cron, crons: the IANA time zone the expressions are read in (default UTC).",
    )
    start: datetime | None = Field(
        default=None,
        description="No run before this time (Airflow's start_date); everySeconds ticks from it.",
    )
    end: datetime | None = Field(default=None, description="No run after this time (Airflow's end_date).")
    restrict_to_events: bool | None = Field(
        default=None,
        description="events: a manual run's data interval is the latest event before it (else its own time).",
    )


class DAGSpec(KubeModel):
    """A DAG: its tasks, their dependencies and XCom inputs, params and an optional schedule.

    The spec is atomic for server-side apply: whoever applies a DAG last owns all of its spec, so two field
    managers (`kdag apply`, kubectl, Argo CD, Flux) never leave a merge of their task lists or fields.
    """

    model_config = ConfigDict(
        json_schema_extra=ATOMIC
        | cel(
            (
                "has(self.pythonFile) || !self.tasks.exists(t, has(t.python) && has(t.python.fromDagFile)"
                " && t.python.fromDagFile)",
                "tasks with python.fromDagFile need spec.pythonFile",
                "'task ' + self.tasks.filter(t, has(t.python) && has(t.python.fromDagFile)"
                " && t.python.fromDagFile).map(t, t.id)[0] + ': python.fromDagFile needs spec.pythonFile'",
            ),
            (
                "!has(self.schedule) || !has(self.timetable)",
                "give schedule or timetable, not both",
                "'give schedule or timetable, not both (schedule is ' + self.schedule + ')'",
            ),
        )
    )

    dag_id: str | None = Field(
        default=None,
        max_length=DAG_ID_MAX,
        pattern=DAG_ID_PATTERN,
        description="The DAG id tasks see as dag_id (default: metadata.name): Airflow's rule, letters,"
        " digits, '_', '.', '-'; at most 250 characters.",
    )
    schedule: str | None = Field(
        default=None,
        max_length=256,
        description="Cron schedule in UTC (5 fields or a preset such as @daily), or @once: one run when the"
        " DAG is created. Without schedule or timetable the DAG runs only when triggered.",
    )
    timetable: Timetable | None = Field(
        default=None, description="When the DAG runs, as one of Airflow's timetables (instead of schedule)."
    )
    catchup: bool | None = Field(
        default=None,
        description="Airflow's catchup: after ticks were missed (the controller was away, a run could not be"
        " made), make a run for each of them, oldest first. Off (default): only the newest missed one.",
    )
    params: dict[str, Any] | None = Field(default=None, description="DAG params with their default values.")
    param_schemas: dict[str, dict[str, Any]] | None = Field(
        default=None,
        description="JSON schema of each param (Airflow's Param(**schema): type, enum, minimum, pattern,"
        " format, ...); every run's values are checked against it before any task starts. A param here"
        " without a default in params has none: every run must give it.",
    )
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


def default_trigger_rule(task: TaskSpec, defaults: TaskDefaults | None = None) -> TriggerRule:
    """The rule of a task that sets none: a teardown's is all_done_setup_success (Airflow's `as_teardown`
    sets it over default_args), any other task's the DAG's default, else all_success."""
    if task.is_teardown:
        return TriggerRule.ALL_DONE_SETUP_SUCCESS
    return (defaults.trigger_rule if defaults else None) or TriggerRule.ALL_SUCCESS


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
            "trigger_rule": task.trigger_rule or default_trigger_rule(task, d),
            "resources": task.resources or d.resources,
            "node_selector": task.node_selector if task.node_selector is not None else d.node_selector,
            "tolerations": task.tolerations if task.tolerations is not None else d.tolerations,
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


class DataInterval(KubeModel):
    """The period of data a run covers (Airflow's data_interval_start/end)."""

    model_config = ConfigDict(
        json_schema_extra=cel(("self.start <= self.end", "end may not be before start"))
    )

    start: datetime = Field(description="data_interval_start (RFC 3339).")
    end: datetime = Field(description="data_interval_end (RFC 3339).")


class DAGRunSpec(KubeModel):
    """One execution of a DAG."""

    model_config = ConfigDict(
        json_schema_extra=cel(("self == oldSelf", "a DAGRun's spec cannot change; create another run"))
    )

    dag_ref: DAGRef = Field(description="The DAG to run.")
    params: dict[str, Any] | None = Field(
        default=None,
        description="Param values of this run: they override the DAG's and tasks' defaults and conf keys of"
        " the same name, and are checked against the DAG's paramSchemas.",
    )
    conf: dict[str, Any] | None = Field(
        default=None,
        description="The run's conf (dag_run.conf); as in Airflow, its keys also override params.",
    )
    logical_date: datetime | None = Field(
        default=None, description="Logical date (gives ds, ts, ...); defaults to the creation time."
    )
    data_interval: DataInterval | None = Field(
        default=None,
        description="The data interval; scheduled runs get their timetable's. Default: what the DAG's"
        " timetable infers for a manual run at the logical date (Airflow's rule).",
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
    tasks: dict[str, TaskPhase] | None = Field(
        default=None,
        description="Phase of each task, by task id (a mapped task's: Running until every instance finished,"
        " then Failed, UpstreamFailed, Succeeded or Skipped, the first any instance has).",
    )
    mapped: dict[str, MappedTaskStatus] | None = Field(
        default=None, description="Each mapped task that expanded: its instance count and phases."
    )
    dag_version: str | None = Field(
        default=None,
        max_length=NAME_MAX,
        description="The DAGVersion the run follows: its DAG's spec when the run started, kept immutable,"
        " so later edits of the DAG do not apply.",
    )
    observed_generation: int | None = Field(default=None, description="The generation last reconciled.")


class MappedTaskStatus(StatusModel):
    """A mapped task's instances in a run: how many, and how many are in each phase."""

    length: int = Field(ge=0, description="Instances the task expanded into.")
    phases: dict[str, int] | None = Field(
        default=None, description="Instances by phase, e.g. {Succeeded: 9}."
    )


class DAGVersionSpec(KubeModel):
    """One version of a DAG's spec, as the runs that started with it follow it: made by the controller when
    a run starts, named by its content (`names.dag_version_name`), owned by the DAG and never changed."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            ("self == oldSelf", "a DAGVersion cannot change; a changed DAG gets a new version"),
            ("self.taskCount == size(self.dag.tasks)", "taskCount must be the number of tasks of dag"),
        )
    )

    dag_ref: DAGRef = Field(description="The DAG this is a version of.")
    task_count: int = Field(ge=1, le=MAX_TASKS, description="Number of tasks (a printer column).")
    dag: DAGSpec = Field(description="The DAG's spec, as the controller read it when a run started.")


class TaskRunSpec(KubeModel):
    """One task of one DAGRun; created by the controller."""

    model_config = ConfigDict(json_schema_extra=cel(("self == oldSelf", "a TaskRun's spec cannot change")))

    dag_run: str = Field(min_length=1, max_length=NAME_MAX, description="Name of the DAGRun.")
    task_id: str = Field(
        min_length=1, max_length=TASK_ID_MAX, pattern=TASK_ID_PATTERN, description="Id of the task."
    )
    task: TaskSpec = Field(description="The task spec as resolved at run start (DAG defaults applied).")
    map_index: int | None = Field(
        default=None,
        ge=0,
        le=MAX_MAP_LENGTH - 1,
        description="The instance of a mapped task (spec.task.map) this TaskRun runs; unset for a task that"
        " is not mapped, and for a mapped task marked as a whole (Skipped for an empty length, ...).",
    )


class TriggerState(StrEnum):
    """Where a TriggerDagRunOperator's request stands (docs/design.md, "Triggering another DAG")."""

    REQUESTED = "Requested"
    """Asked for by the task's attempt; the controller has not acted on it yet."""
    RESETTING = "Resetting"
    """`reset_dag_run`: the existing run is being deleted, to be made again with its own spec."""
    TRIGGERED = "Triggered"
    """This task made the run (or made it in an earlier try): its next attempt reads the run's phase."""
    EXISTS = "Exists"
    """A run of that name exists that this task did not make."""
    FAILED = "Failed"
    """No run could be made (no such DAG, refused params): `message` says why."""


class TriggeredRun(StatusModel):
    """A TriggerDagRunOperator's request, and what the controller made of it."""

    dag_id: str = Field(min_length=1, max_length=250, description="The dag_id the task asked to trigger.")
    run_id: str | None = Field(
        default=None, max_length=250, description="The trigger_run_id the task gave, if any."
    )
    run: str | None = Field(
        default=None, max_length=NAME_MAX, description="The DAGRun's name, once known (its run id)."
    )
    try_number: int = Field(ge=1, description="The task's try that asked (each try asks again).")
    state: TriggerState = Field(description="Requested, Resetting, Triggered, Exists or Failed.")
    message: str | None = Field(default=None, max_length=4096, description="Why no run was made.")
    reset: bool | None = Field(default=None, description="reset_dag_run: remake a run that exists.")
    conf: dict[str, Any] | None = Field(default=None, description="The conf of the run to make.")
    params: dict[str, Any] | None = Field(
        default=None, description="The params of the run to make (a reset run keeps its own)."
    )
    logical_date: datetime | None = Field(default=None, description="The logical date of the run to make.")


MAX_EXTERNAL_ITEMS = 256
"""The most tasks, and logical dates, an ExternalTaskSensor's question names (its report fits 4096 bytes)."""


class ExternalRunsQuery(StatusModel):
    """An ExternalTaskSensor's question: the runs of another DAG at some logical dates, and the states of
    the tasks (or task group) it waits for (docs/design.md, "Waiting for another DAG")."""

    dag_id: str = Field(min_length=1, max_length=DAG_ID_MAX, description="The dag_id of the other DAG.")
    task_ids: list[Annotated[str, Field(max_length=DAG_ID_MAX)]] | None = Field(
        default=None,
        max_length=MAX_EXTERNAL_ITEMS,
        description="The tasks waited for (external_task_id or external_task_ids).",
    )
    task_group_id: str | None = Field(
        default=None, max_length=DAG_ID_MAX, description="The task group waited for (external_task_group_id)."
    )
    logical_dates: list[datetime] = Field(
        min_length=1,
        max_length=MAX_EXTERNAL_ITEMS,
        description="The logical dates of the runs waited for (the run's own, or execution_delta's, ...).",
    )


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
        description=(
            "ConfigMap keys the task stored (escaped for keys with other characters), kdag's own __context"
            " included: what a pod downstream reads of it."
        ),
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    skip_tasks: list[TaskIdRef] | None = Field(
        default=None,
        max_length=MAX_SKIP_TASKS,
        description="Tasks of the run the successful attempt asked to skip (a branch's tasks not followed);"
        " the controller marks those not started yet Skipped.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    xcom_lengths: dict[str, int] | None = Field(
        default=None,
        description="Length of each pushed XCom that is a list or dict, by ConfigMap key (what a mapped task"
        " downstream expands over), as the successful attempt's termination report gives it.",
    )
    rendered_map_index: str | None = Field(
        default=None, max_length=250, description="A mapped instance's name: its map_index_template rendered."
    )
    start_time: datetime | None = Field(default=None, description="When the first attempt started.")
    finish_time: datetime | None = Field(default=None, description="When the task finished.")
    next_attempt_at: datetime | None = Field(
        default=None,
        description="When the next attempt starts: a retry, or the next poke of an UpForReschedule sensor.",
    )
    reschedules: int | None = Field(
        default=None,
        ge=0,
        description="Attempts that ended up for reschedule (a sensor not done yet); they use no retries.",
    )
    trigger: TriggeredRun | None = Field(
        default=None,
        description="A TriggerDagRunOperator's request of its latest try and what became of it.",
    )
    external_runs: ExternalRunsQuery | None = Field(
        default=None,
        description="An ExternalTaskSensor's question of its latest poke; the controller answers it when"
        " the next attempt starts (KDAG_EXTERNAL_RUNS).",
    )


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


class DAGVersion(StatusModel):
    """The DAGVersion resource: no status, its spec is all there is."""

    api_version: Literal["kdag.dev/v1alpha1"] = "kdag.dev/v1alpha1"
    kind: Literal["DAGVersion"] = "DAGVersion"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: DAGVersionSpec


class TaskRun(StatusModel):
    """The TaskRun resource."""

    api_version: Literal["kdag.dev/v1alpha1"] = "kdag.dev/v1alpha1"
    kind: Literal["TaskRun"] = "TaskRun"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: TaskRunSpec
    status: TaskRunStatus | None = None
