"""Deterministic object names and labels (docs/design.md, "Names").

The same inputs always give the same name, so a restarted controller finds what it made before and a second
create of the same thing fails with AlreadyExists instead of making a duplicate. Distinct inputs never give
the same name (a hash of the exact run, task and map index ends it), and what the controller finds under a
name is still adopted only when its owner is the same run (by uid: `manifests.owned_by`).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import Any

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
from kdag_runner.keys import (
    TRIGGERED_BY_LABEL as TRIGGERED_BY_LABEL,
)
from kdag_runner.keys import (
    TRIGGERED_BY_UID_LABEL as TRIGGERED_BY_UID_LABEL,
)
from kdag_runner.keys import (
    TRIGGERED_TRY_LABEL as TRIGGERED_TRY_LABEL,
)

# The runner labels its XCom ConfigMaps with the same function, so both live in the runner library.
from kdag_runner.sinks import LABEL_VALUE_MAX as LABEL_VALUE_MAX
from kdag_runner.sinks import label_value as label_value

TASK_SERVICE_ACCOUNT = "kdag-task"
# The ClusterRole task RoleBindings refer to; the chart's is `{fullname}-task` (`kdag-task` for release kdag).
TASK_CLUSTER_ROLE = "kdag-task"
XCOM_GUARD = "kdag-xcom-guard"

NAME_MAX = 253
_SLUG_INVALID = re.compile(r"[^a-z0-9-]")


def _short_hash(text: str, length: int = 5) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


TASK_PART_MAX = 43
"""Characters of a task id's readable form kept in the names of its objects (the hash names the whole id)."""
INSTANCE_HASH_LENGTH = 16
"""Hex digits (64 bits) of the hash of (run, task id, map index) that ends a TaskRun's and an XCom
ConfigMap's name: two instances never share a name unless they share the hash."""
RUN_UID_TAG_LENGTH = 8
"""Characters of the run's uid in its pods' names: a UUID's first 8 hex digits (see `run_uid_tag`)."""


def task_slug(task_id: str) -> str:
    """The readable DNS-1123 form of a task id in names: lower-case, anything but letters and digits as
    `-`, at most `TASK_PART_MAX` characters. Not unique (`a_b` and `a.b` share it): names add a hash."""
    slug = re.sub(r"-+", "-", _SLUG_INVALID.sub("-", task_id.lower())).strip("-")
    return slug[:TASK_PART_MAX].rstrip("-") or "task"


def instance_hash(dagrun: str, task_id: str, map_index: int | None = None) -> str:
    """64 bits of sha256 over the exact (run name, task id, map index): what makes names unique."""
    key = json.dumps([dagrun, task_id, map_index], separators=(",", ":"))
    return hashlib.sha256(key.encode()).hexdigest()[:INSTANCE_HASH_LENGTH]


def taskrun_name(dagrun: str, task_id: str, map_index: int | None = None) -> str:
    """Name of the TaskRun of one task of one run: `{dagrun}-{task_slug}-{hash}`, and for instance i of a
    mapped task `{dagrun}-{task_slug}-{i}-{hash}`, where the hash is `instance_hash` of the exact run
    name, task id and map index. The readable part alone is ambiguous (run `a` with task `b-c` and run `a-b`
    with task `c`); the hash is not, so no two (run, task, index) share a name (docs/design.md, "Names")."""
    if map_index is not None and map_index < 0:
        raise ValueError(f"map indexes start at 0, got {map_index}")
    index = "" if map_index is None else f"-{map_index}"
    return _checked(f"{dagrun}-{task_slug(task_id)}{index}-{instance_hash(dagrun, task_id, map_index)}")


def xcom_configmap_name(dagrun: str, task_id: str, map_index: int | None = None) -> str:
    """Name of the ConfigMap holding one task's (or one mapped instance's) XComs: its TaskRun's name."""
    return taskrun_name(dagrun, task_id, map_index)


def run_uid_tag(run_uid: str) -> str:
    """The part of a run's uid its pods' names carry: its first 8 characters (of a UUID, 8 hex digits).
    The XCom guard lets a pod write only a ConfigMap owned by a DAGRun whose uid starts with them, so a
    ConfigMap made before the run (or for an earlier run of the same name) is never the pod's."""
    return _SLUG_INVALID.sub("-", run_uid[:RUN_UID_TAG_LENGTH].lower())


def pod_name(dagrun: str, task_id: str, attempt: int, map_index: int | None = None, *, run_uid: str) -> str:
    """Name of the pod of attempt `attempt` (1-based): `{configmap}-{run_uid_tag}-{attempt}`, where
    `{configmap}` is the instance's XCom ConfigMap; the XCom guard reads both from the pod's token."""
    if attempt < 1:
        raise ValueError(f"attempt numbers start at 1, got {attempt}")
    configmap = xcom_configmap_name(dagrun, task_id, map_index)
    return _checked(f"{configmap}-{run_uid_tag(run_uid)}-{attempt}")


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


RUN_NAME_MAX = 63
"""A DAGRun name kdag makes fits a label value, so `kdag.dev/dagrun` names it exactly."""
_RUN_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def triggered_run_name(dag: str, taskrun_uid: str) -> str:
    """Name of the run a TriggerDagRunOperator without `trigger_run_id` starts: one per TaskRun, whatever
    its attempts and tries, so asking again never makes a second run."""
    return _checked(f"{dag[: RUN_NAME_MAX - 21].rstrip('-')}-triggered-{_short_hash(taskrun_uid, 10)}")


def run_name_of(run_id: str) -> str:
    """The DAGRun name of a `trigger_run_id`: itself when it is a DNS-1123 label, else lower-cased, other
    characters as `-`, cut to fit, plus `-` and 5 hex of sha256(run id) (`manual__2026-01-01T00:00:00+00:00`
    -> `manual-2026-01-01t00-00-00-00-00-1b2c3`)."""
    if len(run_id) <= RUN_NAME_MAX and _RUN_NAME.fullmatch(run_id):
        return run_id
    slug = re.sub(r"-+", "-", _SLUG_INVALID.sub("-", run_id.lower())).strip("-")
    return f"{slug[: RUN_NAME_MAX - 6].rstrip('-') or 'run'}-{_short_hash(run_id)}"


SOURCE_HASH_LENGTH = 10
"""Hex digits of the hash of a source ConfigMap's data that end its name."""


def source_configmap_name(dag: str, data: Mapping[str, str]) -> str:
    """Name of the ConfigMap holding one version of a compiled DAG's Python file (and the files beside it):
    `{dag}-source-{hash of the data}`. A new version is a new ConfigMap, never a rewrite of one a run under
    way mounts, and the same files always give the same name."""
    text = json.dumps(dict(data), sort_keys=True, separators=(",", ":"))
    return _checked(f"{dag}-source-{hashlib.sha256(text.encode()).hexdigest()[:SOURCE_HASH_LENGTH]}")


def is_source_configmap_of(dag: str, name: str) -> bool:
    """Whether `name` is a version of the DAG's source ConfigMap (or the `{dag}-source` older kdag wrote)."""
    return re.fullmatch(re.escape(dag) + rf"-source(-[0-9a-f]{{{SOURCE_HASH_LENGTH}}})?", name) is not None


VERSION_HASH_LENGTH = 16
"""Hex digits (64 bits) of the hash of a DAG version's content that end its name."""


def dag_version_name(dag: str, dag_uid: str, spec: Mapping[str, Any]) -> str:
    """Name of the DAGVersion of one spec of one DAG object: `{dag}-{hash}`, the hash over the DAG's uid and
    its spec (as the API server stores it, keys sorted). The same spec of the same DAG always gives the same
    name, an edited spec (or a DAG deleted and made again) a new one. A DAG name too long to leave room for
    the hash is cut (the hash, which covers the uid, still tells DAGs apart), so the name is a DNS subdomain
    of at most 253 characters whatever the DAG's name."""
    text = json.dumps([dag_uid, spec], sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(text.encode()).hexdigest()[:VERSION_HASH_LENGTH]
    readable = dag[: NAME_MAX - 1 - VERSION_HASH_LENGTH].rstrip("-.") or "dag"
    return _checked(f"{readable}-{digest}")


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
