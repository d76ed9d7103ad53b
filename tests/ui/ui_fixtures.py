"""Objects as the API server holds them, for the UI's tests without a cluster: a run of three tasks whose
ids, XComs and log carry `<script>` (they must render as text), and a fake client that serves them."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Mapping
from typing import Any

from kdag import names
from kdag.ui.kube_reads import ListPage

NS = "team"
DAG_NAME = "etl-dag"
RUN = "etl-dag-manual-abcde"
RUN_UID = "uid-run"
DAG_UID = "uid-dag"
EVIL = "<script>alert(1)</script>"
EVIL_TASK = "x<script>alert(1)</script>"  # not a valid task id for the API, but the UI must not trust that


def dag(tasks: list[dict[str, Any]] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kdag.dev/v1alpha1",
        "kind": "DAG",
        "metadata": {"name": DAG_NAME, "namespace": NS, "uid": DAG_UID, "resourceVersion": "1"},
        "spec": {
            "dagId": "etl_dag",
            "tasks": tasks
            or [
                {"id": "hello_task", "command": ["true"]},
                {
                    "id": "goodbye_task",
                    "command": ["true"],
                    "upstream": ["hello_task"],
                    "xcomInputs": [{"env": "WHEN", "task": "hello_task", "key": "execution_time"}],
                },
            ],
            **spec,
        },
        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Valid", "message": ""}]},
    }


def dagrun(tasks: Mapping[str, str], phase: str = "Running") -> dict[str, Any]:
    return {
        "apiVersion": "kdag.dev/v1alpha1",
        "kind": "DAGRun",
        "metadata": {
            "name": RUN,
            "namespace": NS,
            "uid": RUN_UID,
            "resourceVersion": "2",
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": names.labels(DAG_NAME, RUN),
        },
        "spec": {"dagRef": {"name": DAG_NAME}},
        "status": {
            "phase": phase,
            "progress": f"{sum(p == 'Succeeded' for p in tasks.values())}/{len(tasks)}",
            "tasks": dict(tasks),
        },
    }


def taskrun(task: str, phase: str, *, exit_code: int | None = 0, message: str = "") -> dict[str, Any]:
    name = names.taskrun_name(RUN, task)
    status: dict[str, Any] = {
        "phase": phase,
        "attempts": 1,
        "podName": f"{name}-1",
        "startTime": "2026-01-01T00:00:01Z",
        "finishTime": "2026-01-01T00:00:09Z",
    }
    if exit_code is not None:
        status["exitCode"] = exit_code
    if message:
        status["message"] = message
    if task in ("goodbye_task", "hello_task"):
        status["xcomKeys"] = ["return_value"]
    return {
        "apiVersion": "kdag.dev/v1alpha1",
        "kind": "TaskRun",
        "metadata": {
            "name": name,
            "namespace": NS,
            "resourceVersion": "3",
            "labels": names.labels(DAG_NAME, RUN, task),
            "ownerReferences": [{"kind": "DAGRun", "name": RUN, "uid": RUN_UID}],
        },
        "spec": {"dagRun": RUN, "taskId": task, "task": {"id": task, "command": ["true"]}},
        "status": status,
    }


def pod(task: str, *, exit_code: int | None = 0, running: bool = False) -> dict[str, Any]:
    name = names.taskrun_name(RUN, task)
    state: dict[str, Any] = (
        {"running": {"startedAt": "2026-01-01T00:00:03Z"}}
        if running
        else {
            "terminated": {
                "startedAt": "2026-01-01T00:00:03Z",
                "finishedAt": "2026-01-01T00:00:08Z",
                "exitCode": exit_code,
                "reason": "Completed" if exit_code == 0 else "Error",
            }
        }
    )
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{name}-1",
            "namespace": NS,
            "resourceVersion": "4",
            "creationTimestamp": "2026-01-01T00:00:01Z",
            "labels": {**names.labels(DAG_NAME, RUN, task), "kdag.dev/attempt": "1"},
            "ownerReferences": [{"kind": "TaskRun", "name": name, "uid": "tr"}],
        },
        "spec": {
            "containers": [
                {
                    "name": "task",
                    "volumeMounts": [{"name": "xcom-in", "mountPath": "/kdag/xcom/in", "readOnly": True}],
                }
            ],
            "volumes": [
                {
                    "name": "xcom-in",
                    "projected": {
                        "sources": [
                            {
                                "configMap": {
                                    "name": names.xcom_configmap_name(RUN, "hello_task"),
                                    "optional": True,
                                    "items": [
                                        {"key": key, "path": f"hello_task/{key}"}
                                        for key in ("execution_time", "return_value", ".types", "__context")
                                    ],
                                }
                            }
                        ]
                    },
                }
            ],
        },
        "status": {
            "phase": "Running" if running else ("Succeeded" if exit_code == 0 else "Failed"),
            "containerStatuses": [{"name": "task", "state": state}],
        },
    }


def xcom_configmap(task: str, data: Mapping[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": names.xcom_configmap_name(RUN, task),
            "namespace": NS,
            "ownerReferences": [{"kind": "DAGRun", "name": RUN, "uid": RUN_UID}],
        },
        "data": dict(data),
    }


class FakeApi:
    """What the pages call on UiKubeApi, answered from dicts; `created` keeps what was created."""

    namespace = NS

    def __init__(self, objects: dict[tuple[str, str], dict[str, Any]], log: str = "") -> None:
        self.objects = objects
        self.log = log
        self.created: list[dict[str, Any]] = []
        self.forbid_create = False

    async def get(self, kind: Any, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((kind.kind, name))

    async def list_page(self, kind: Any, namespace: str, **_: Any) -> ListPage:
        return ListPage([], "1", "")

    async def follow_log(self, *_: Any, **__: Any) -> AsyncGenerator[bytes, None]:
        for line in self.log.splitlines(keepends=True):
            yield line.encode()

    async def create(self, obj: dict[str, Any], namespace: str) -> dict[str, Any]:
        if self.forbid_create:
            from kdag_runner.kube import Forbidden

            raise Forbidden(403, 'dagruns.kdag.dev is forbidden: User "ada" cannot create resource "dagruns"')
        self.created.append(obj)
        return obj


def types(**kinds: str) -> str:
    return json.dumps(kinds)
