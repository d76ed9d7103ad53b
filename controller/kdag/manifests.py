"""Manifests of the objects kdag creates through the API, built from plain values (no API calls here)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from kdag_runner import keys

from kdag import names
from kdag.api.models import TaskSpec
from kdag.render import format_time


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
) -> dict[str, Any]:
    """A DAGRun of the DAG `dag_name` (the schedule's, the initial one, or `kdag trigger`'s).

    With `owner_uid` the run is owned by the DAG, so deleting the DAG deletes its runs. Empty params and
    conf are left out, as is a logical date of None (the controller then takes the creation time).
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
    metadata["labels"] = names.labels(dag_name, run_name)
    if owner_uid is not None:
        metadata["ownerReferences"] = [
            {"apiVersion": keys.API_VERSION, "kind": keys.DAG_KIND, "name": dag_name, "uid": owner_uid}
        ]
    return {"apiVersion": keys.API_VERSION, "kind": keys.DAGRUN_KIND, "metadata": metadata, "spec": spec}


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
