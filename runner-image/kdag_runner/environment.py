"""A task's ``KDAG_*`` environment, read and checked once (docs/design.md, "Delivery into a task pod")."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple


class RunnerConfigError(Exception):
    """The task's environment is missing or malformed; names the variable."""


class XComInput(NamedTuple):
    """One of the task's ``xcomInputs``: the variable ``env`` gets XCom ``key`` (its ConfigMap key) of the
    ancestor ``task``."""

    env: str
    task: str
    key: str


@dataclass(frozen=True)
class TaskEnvironment:
    """What the controller (or a local run) tells a task through ``KDAG_*`` variables."""

    dag_id: str
    task_id: str
    run_id: str
    logical_date: datetime
    run_uid: str = ""
    namespace: str = ""
    attempt: int = 1
    params: dict[str, Any] = field(default_factory=dict)
    conf: dict[str, Any] = field(default_factory=dict)
    ancestors: tuple[str, ...] = ()
    ancestors_cut: bool = False
    """More ancestors exist than the pod mounts (`KDAG_ANCESTORS_CUT`, the controller's max_xcom_sources)."""
    xcom_in: Path | None = None
    xcom_dir: Path | None = None
    xcom_configmap: str = ""
    # The DAG object's name (the kdag.dev/dag label); it may differ from the dag_id.
    dag_name: str = ""
    data_interval_start: datetime | None = None
    """The run's data interval; None (an older controller, a bare test) means the logical date."""
    data_interval_end: datetime | None = None
    run_type: str = "manual"
    """Airflow's run type: `scheduled` (made by the controller for the DAG's schedule), `operator_triggered`
    (asked for by a TriggerDagRunOperator) or `manual`."""
    task_start: datetime | None = None
    """When the task's first attempt started (`KDAG_TASK_START`, the TaskRun's status.startTime): a
    reschedule-mode sensor measures its timeout from it. None: this attempt is the first."""
    reschedules: int = 0
    """Attempts before this one that ended up for reschedule (`KDAG_RESCHEDULES`); they are no tries."""
    map_index: int = -1
    """The instance of a mapped task this attempt runs (`KDAG_MAP_INDEX`); -1: the task is not mapped."""
    mapped: dict[str, int] = field(default_factory=dict)
    """Mapped ancestors and their instance counts (`KDAG_MAPPED`): their XComs are in `{task}/{index}/`."""
    triggered_run: dict[str, Any] = field(default_factory=dict)
    """What became of the run a TriggerDagRunOperator asked for in this try (`KDAG_TRIGGERED_RUN`):
    `{"runId", "state"}`, `{"runId", "exists": true}` or `{"error"}`; empty: nothing asked yet."""
    external_runs: dict[str, Any] = field(default_factory=dict)
    """The answer to an ExternalTaskSensor's latest question (`KDAG_EXTERNAL_RUNS`): the other DAG's runs at
    the logical dates it asked about and its tasks' states; empty: nothing asked yet."""
    state_in: Path | None = None
    """Where the pod sees the task state earlier attempts left (`KDAG_STATE_IN`: its own ConfigMap's
    `.state`, mounted for attempts after the first); None: no earlier attempt."""
    xcom_inputs: tuple[XComInput, ...] = ()
    """The task's `xcomInputs` (`KDAG_XCOM_INPUTS`): a Python task's runner sets them in its environment
    (`kdag_runner.xcom_inputs`)."""

    @property
    def try_number(self) -> int:
        """Airflow's try number: the attempts that were not reschedules, this one included."""
        return max(self.attempt - self.reschedules, 1)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TaskEnvironment:
        """Read the task's environment; a missing or malformed variable raises naming it."""
        env = os.environ if env is None else env
        ancestors = _json_env(env, "KDAG_ANCESTORS", [])
        if not isinstance(ancestors, list) or not all(isinstance(a, str) for a in ancestors):
            raise RunnerConfigError("KDAG_ANCESTORS must be a JSON list of task ids")
        attempt_text = env.get("KDAG_ATTEMPT", "1") or "1"
        try:
            attempt = int(attempt_text)
        except ValueError:
            raise RunnerConfigError(f"KDAG_ATTEMPT must be an integer, got {attempt_text!r}") from None
        reschedules_text = env.get("KDAG_RESCHEDULES", "0") or "0"
        if not reschedules_text.isdigit():
            raise RunnerConfigError(f"KDAG_RESCHEDULES must be an integer, got {reschedules_text!r}")
        mapped = _json_object_env(env, "KDAG_MAPPED")
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in mapped.values()):
            raise RunnerConfigError("KDAG_MAPPED must be a JSON object of task ids to instance counts")
        xcom_in = env.get("KDAG_XCOM_IN")
        xcom_dir = env.get("KDAG_XCOM_DIR")
        state_in = env.get("KDAG_STATE_IN")
        return cls(
            dag_id=_required(env, "KDAG_DAG_ID"),
            task_id=_required(env, "KDAG_TASK_ID"),
            run_id=_required(env, "KDAG_RUN_ID"),
            logical_date=parse_logical_date(env.get("KDAG_LOGICAL_DATE", "")),
            run_uid=env.get("KDAG_RUN_UID", ""),
            namespace=env.get("KDAG_NAMESPACE", ""),
            attempt=attempt,
            params=_json_object_env(env, "KDAG_PARAMS"),
            conf=_json_object_env(env, "KDAG_CONF"),
            ancestors=tuple(ancestors),
            ancestors_cut=bool(env.get("KDAG_ANCESTORS_CUT")),
            xcom_in=Path(xcom_in) if xcom_in else None,
            xcom_dir=Path(xcom_dir) if xcom_dir else None,
            xcom_configmap=env.get("KDAG_XCOM_CONFIGMAP", ""),
            dag_name=env.get("KDAG_DAG_NAME", ""),
            data_interval_start=_optional_time(env, "KDAG_DATA_INTERVAL_START"),
            data_interval_end=_optional_time(env, "KDAG_DATA_INTERVAL_END"),
            run_type=env.get("KDAG_RUN_TYPE", "") or "manual",
            task_start=_optional_time(env, "KDAG_TASK_START"),
            reschedules=int(reschedules_text),
            map_index=_int_env(env, "KDAG_MAP_INDEX", -1),
            mapped=mapped,
            triggered_run=_json_object_env(env, "KDAG_TRIGGERED_RUN"),
            external_runs=_json_object_env(env, "KDAG_EXTERNAL_RUNS"),
            state_in=Path(state_in) if state_in else None,
            xcom_inputs=_xcom_inputs(env),
        )


def _xcom_inputs(env: Mapping[str, str]) -> tuple[XComInput, ...]:
    """`KDAG_XCOM_INPUTS`: a JSON list of `{"env", "task", "key"}` objects of non-empty strings."""
    value = _json_env(env, "KDAG_XCOM_INPUTS", [])
    fields = XComInput._fields
    if not isinstance(value, list) or not all(
        isinstance(item, dict)
        and set(item) == set(fields)
        and all(isinstance(item[f], str) and item[f] for f in fields)
        for item in value
    ):
        raise RunnerConfigError('KDAG_XCOM_INPUTS must be a JSON list of {"env", "task", "key"} objects')
    return tuple(XComInput(item["env"], item["task"], item["key"]) for item in value)


def _optional_time(env: Mapping[str, str], name: str) -> datetime | None:
    text = env.get(name, "")
    return parse_time(name, text) if text else None


def _int_env(env: Mapping[str, str], name: str, default: int) -> int:
    """An integer variable (-1 or more); `default` when unset."""
    text = env.get(name, "")
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise RunnerConfigError(f"{name} must be an integer, got {text!r}") from None
    if value < -1:
        raise RunnerConfigError(f"{name} must be -1 or more, got {value}")
    return value


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "")
    if not value:
        raise RunnerConfigError(f"{name} is not set; the controller sets it on every task container")
    return value


def _json_env(env: Mapping[str, str], name: str, default: object) -> object:
    text = env.get(name, "")
    if not text:
        return default
    try:
        return json.loads(text)
    except ValueError as err:
        raise RunnerConfigError(f"{name} is not valid JSON: {err}") from None


def _json_object_env(env: Mapping[str, str], name: str) -> dict[str, Any]:
    value = _json_env(env, name, {})
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RunnerConfigError(f"{name} must be a JSON object, got {type(value).__name__}")
    return value


def parse_logical_date(text: str) -> datetime:
    """Parse an RFC 3339 time as an aware UTC datetime; empty means now (a run without one)."""
    if not text:
        return datetime.now(UTC)
    return parse_time("KDAG_LOGICAL_DATE", text)


def parse_time(name: str, text: str) -> datetime:
    """The RFC 3339 time in variable `name` as an aware UTC datetime (no zone means UTC)."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise RunnerConfigError(f"{name} is not an RFC 3339 time: {text!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
