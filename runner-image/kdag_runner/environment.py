"""A task's ``KDAG_*`` environment, read and checked once (docs/design.md, "Delivery into a task pod")."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


class RunnerConfigError(Exception):
    """The task's environment is missing or malformed; names the variable."""


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
    xcom_in: Path | None = None
    xcom_dir: Path | None = None
    xcom_configmap: str = ""
    # The DAG object's name (the kdag.dev/dag label); it may differ from the dag_id.
    dag_name: str = ""

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
        xcom_in = env.get("KDAG_XCOM_IN")
        xcom_dir = env.get("KDAG_XCOM_DIR")
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
            xcom_in=Path(xcom_in) if xcom_in else None,
            xcom_dir=Path(xcom_dir) if xcom_dir else None,
            xcom_configmap=env.get("KDAG_XCOM_CONFIGMAP", ""),
            dag_name=env.get("KDAG_DAG_NAME", ""),
        )


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
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise RunnerConfigError(f"KDAG_LOGICAL_DATE is not an RFC 3339 time: {text!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
