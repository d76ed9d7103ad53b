"""Manifests of the objects kdag creates through the API, built from plain values (no API calls here)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from kdag_runner import keys

from kdag import names
from kdag.api.models import TaskSpec
from kdag.render import format_time

SCHEDULED = "scheduled"
"""The run type (`kdag.dev/run-type`) of the runs the controller makes for a DAG's schedule or `@once`."""
MANUAL = "manual"
"""The run type of `kdag trigger`'s runs."""


def dagrun_manifest(
    dag_name: str,
    run_name: str,
    *,
    logical_date: datetime | None = None,
    params: Mapping[str, Any] | None = None,
    conf: Mapping[str, Any] | None = None,
    ttl_seconds_after_finished: int | None = None,
    owner_uid: str | None = None,
    namespace: str | None = None,
    extra_labels: Mapping[str, str] | None = None,
    run_type: str | None = None,
) -> dict[str, Any]:
    """A DAGRun of the DAG `dag_name` (the schedule's, the initial one, `kdag trigger`'s, or a
    TriggerDagRunOperator's, whose `extra_labels` name the TaskRun that asked).

    With `owner_uid` the run is owned by the DAG, so deleting the DAG deletes its runs. `run_type`
    (`SCHEDULED`, `MANUAL`) labels it with Airflow's run type. Empty params and conf are left out, as is a
    logical date of None (the controller then takes the creation time).
    """
    spec: dict[str, Any] = {"dagRef": {"name": dag_name}}
    if logical_date is not None:
        spec["logicalDate"] = format_time(logical_date)
    if params:
        spec["params"] = dict(params)
    if conf:
        spec["conf"] = dict(conf)
    if ttl_seconds_after_finished is not None:
        spec["ttlSecondsAfterFinished"] = ttl_seconds_after_finished
    metadata: dict[str, Any] = {"name": run_name}
    if namespace is not None:
        metadata["namespace"] = namespace
    metadata["labels"] = {**names.labels(dag_name, run_name), **(extra_labels or {})}
    if run_type is not None:
        metadata["labels"][keys.RUN_TYPE_LABEL] = run_type
    if owner_uid is not None:
        metadata["ownerReferences"] = [dag_owner_reference(dag_name, owner_uid)]
    return {"apiVersion": keys.API_VERSION, "kind": keys.DAGRUN_KIND, "metadata": metadata, "spec": spec}


def dag_owner_reference(dag_name: str, dag_uid: str) -> dict[str, str]:
    """An ownerReference to a DAG: what it owns (its runs, its source ConfigMaps) goes when it is deleted."""
    return {"apiVersion": keys.API_VERSION, "kind": keys.DAG_KIND, "name": dag_name, "uid": dag_uid}


def taskrun_manifest(
    namespace: str, dag_name: str, run_name: str, run_uid: str, task: TaskSpec, map_index: int | None = None
) -> dict[str, Any]:
    """The TaskRun of `task` in the run `run_name` (of its instance `map_index`, for a mapped task that
    expanded), owned (and garbage-collected) by that DAGRun."""
    spec: dict[str, Any] = {"dagRun": run_name, "taskId": task.id, "task": task.to_kube()}
    if map_index is not None:
        spec["mapIndex"] = map_index
    return {
        "apiVersion": keys.API_VERSION,
        "kind": keys.TASKRUN_KIND,
        "metadata": {
            "name": names.taskrun_name(run_name, task.id, map_index),
            "namespace": namespace,
            "labels": names.labels(dag_name, run_name, task.id, map_index),
            "ownerReferences": [
                {
                    "apiVersion": keys.API_VERSION,
                    "kind": keys.DAGRUN_KIND,
                    "name": run_name,
                    "uid": run_uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": spec,
    }


def owned_by(obj: Mapping[str, Any], owner_uid: str) -> bool:
    """Whether `obj` names `owner_uid` among its ownerReferences: how kdag tells its own objects from others
    of the same name or labels (a label can be set by anyone who can write the object; a uid cannot be
    chosen)."""
    owners = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(owner.get("uid") == owner_uid for owner in owners)


def owner_names(obj: Mapping[str, Any]) -> str:
    """The ownerReferences of `obj` as `Kind name (uid ...)`, for messages; `no owner` when it has none."""
    owners = (obj.get("metadata") or {}).get("ownerReferences") or []
    listed = [f"{o.get('kind')} {o.get('name')} (uid {o.get('uid')})" for o in owners]
    return ", ".join(listed) or "no owner"
