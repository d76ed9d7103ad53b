"""Deterministic object names and labels (docs/design.md, "Names").

The same inputs always give the same name, so a restarted controller finds what it made before and a second
create of the same thing fails with AlreadyExists instead of making a duplicate.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime

from kdag_runner.keys import (
    ATTEMPT_LABEL as ATTEMPT_LABEL,
)
from kdag_runner.keys import (
    DAG_LABEL as DAG_LABEL,
)
from kdag_runner.keys import (
    DAGRUN_LABEL as DAGRUN_LABEL,
)
from kdag_runner.keys import (
    MANAGED_BY as MANAGED_BY,
)
from kdag_runner.keys import (
    MANAGED_BY_LABEL as MANAGED_BY_LABEL,
)
from kdag_runner.keys import (
    MAP_INDEX_LABEL as MAP_INDEX_LABEL,
)
from kdag_runner.keys import (
    TASK_LABEL as TASK_LABEL,
)

# The runner labels its XCom ConfigMaps with the same function, so both live in the runner library.
from kdag_runner.sinks import LABEL_VALUE_MAX as LABEL_VALUE_MAX
from kdag_runner.sinks import label_value as label_value

TASK_SERVICE_ACCOUNT = "kdag-task"
XCOM_GUARD = "kdag-xcom-guard"

NAME_MAX = 253
_SLUG_INVALID = re.compile(r"[^a-z0-9-]")


def _short_hash(text: str, length: int = 5) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def task_slug(task_id: str) -> str:
    """DNS-1123 form of a task id: lower-case, `_`/`.` -> `-`, plus a hash when that changed the id."""
    slug = _SLUG_INVALID.sub("-", task_id.lower().replace("_", "-").replace(".", "-"))
    # An id ending in '-' is unchanged but would end a name in '-': the hash makes it end in a hex digit.
    if slug != task_id or slug.endswith("-"):
        slug = f"{slug}-{_short_hash(task_id)}"
    return slug


def taskrun_name(dagrun: str, task_id: str, map_index: int | None = None) -> str:
    """Name of the TaskRun of one task of one run: `{dagrun}-{task_slug}`, and for instance i of a mapped
    task `{dagrun}-{task_slug}.{i}`. No task slug holds a `.`, so an instance's name is never another
    task's (a `-{i}` suffix could be: task `t-2`); the XCom guard's `{name}-{digits}` rule holds for it."""
    base = f"{dagrun}-{task_slug(task_id)}"
    if map_index is None:
        return _checked(base)
    if map_index < 0:
        raise ValueError(f"map indexes start at 0, got {map_index}")
    return _checked(f"{base}.{map_index}")


def xcom_configmap_name(dagrun: str, task_id: str, map_index: int | None = None) -> str:
    """Name of the ConfigMap holding one task's (or one mapped instance's) XComs: its TaskRun's name."""
    return taskrun_name(dagrun, task_id, map_index)


def pod_name(dagrun: str, task_id: str, attempt: int, map_index: int | None = None) -> str:
    """Name of the pod of attempt `attempt` (1-based); the XCom guard relies on this exact shape."""
    if attempt < 1:
        raise ValueError(f"attempt numbers start at 1, got {attempt}")
    return _checked(f"{taskrun_name(dagrun, task_id, map_index)}-{attempt}")


def initial_run_name(dag: str, dag_uid: str) -> str:
    """Name of the run an unscheduled DAG starts when it is created (one per DAG object)."""
    return _checked(f"{dag}-{dag_uid.replace('-', '')[:8].lower()}")


def scheduled_run_name(dag: str, logical_date: datetime) -> str:
    """Name of the scheduled run of one logical date (minute precision, UTC)."""
    return _checked(f"{dag}-{logical_date.strftime('%Y%m%d%H%M')}")


def manual_run_name(dag: str, suffix: str | None = None) -> str:
    """Name of a run triggered from the CLI: a random 5-character suffix unless one is given."""
    suffix = suffix or "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(5))
    return _checked(f"{dag}-manual-{suffix}")


def source_configmap_name(dag: str) -> str:
    """Name of the ConfigMap holding a compiled DAG's Python file."""
    return _checked(f"{dag}-source")


def labels(
    dag: str, dagrun: str | None = None, task_id: str | None = None, map_index: int | None = None
) -> dict[str, str]:
    """The labels on everything kdag makes for a DAG, a run and a task (and a mapped task's instance)."""
    result = {MANAGED_BY_LABEL: MANAGED_BY, DAG_LABEL: label_value(dag)}
    if dagrun is not None:
        result[DAGRUN_LABEL] = label_value(dagrun)
    if task_id is not None:
        result[TASK_LABEL] = task_id
    if map_index is not None:
        result[MAP_INDEX_LABEL] = str(map_index)
    return result


def _checked(name: str) -> str:
    if len(name) > NAME_MAX:
        raise ValueError(f"name {name[:40]}... is {len(name)} characters; Kubernetes allows {NAME_MAX}")
    return name
