"""Controller settings: one dataclass, read from `KDAG_*` environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

DEFAULT_RUNNER_IMAGE = "ghcr.io/kdag-dev/kdag-runner:0.1.0"


@dataclass(frozen=True)
class ControllerSettings:
    """What the controller needs to know that is not in the resources it watches."""

    runner_image: str = DEFAULT_RUNNER_IMAGE
    """Image of Python tasks and of the `xcom` sidecar (env KDAG_RUNNER_IMAGE)."""

    image_pull_policy: str = "IfNotPresent"
    """imagePullPolicy of task containers (env KDAG_IMAGE_PULL_POLICY)."""

    task_service_account: str = "kdag-task"
    """ServiceAccount task pods run as; the XCom guard is keyed on it (env KDAG_TASK_SERVICE_ACCOUNT)."""

    task_cluster_role: str = "kdag-task"
    """ClusterRole (configmaps create/patch) the controller binds to the task ServiceAccount in each
    namespace; it owns what the controller makes there, so deleting it removes them
    (env KDAG_TASK_CLUSTER_ROLE)."""

    namespaces: tuple[str, ...] = ()
    """Namespaces to watch; empty means the whole cluster (env KDAG_NAMESPACES, comma-separated)."""

    webhook_host: str = "127.0.0.1"
    """Address the validating webhook listens on (env KDAG_WEBHOOK_HOST)."""

    webhook_port: int = 9443
    """Port of the validating webhook (env KDAG_WEBHOOK_PORT); 0 disables the webhook."""

    webhook_url: str | None = None
    """URL the API server calls the webhook at, when it differs from host:port (env KDAG_WEBHOOK_URL)."""

    metrics_port: int = 8080
    """Port of the Prometheus metrics endpoint (env KDAG_METRICS_PORT); 0 disables it."""

    metrics_host: str = "127.0.0.1"
    """Address the metrics endpoint listens on (env KDAG_METRICS_HOST); the chart sets 0.0.0.0 for scrapes."""

    task_tmp_size_limit: str = "64Mi"
    """sizeLimit of the emptyDir mounted at /tmp in task pods (env KDAG_TASK_TMP_SIZE_LIMIT)."""

    xcom_out_size_limit: str = "8Mi"
    """sizeLimit of the emptyDir at /kdag/xcom/out (env KDAG_XCOM_OUT_SIZE_LIMIT)."""

    run_status_interval_seconds: int = 3
    """At most one write of a running DAGRun's progress (its task phases, progress and message) per this many
    seconds (env KDAG_RUN_STATUS_INTERVAL_SECONDS; 0: every change at once). The run's phase, its start and
    end are written at once; the TaskRuns carry each task's phase live. A DAG of thousands of tasks would
    otherwise rewrite its run's status (every task's phase) once per finished task."""

    max_xcom_sources: int = 128
    """The most ancestors whose XCom ConfigMaps one task pod mounts, nearest first
    (env KDAG_MAX_XCOM_SOURCES): a task deep in a DAG of thousands has thousands of ancestors, and a pod
    naming them all would approach etcd's object limit and take the kubelet minutes to mount. Direct
    upstream tasks and xcomInputs come first (`topology.nearest_ancestors`); an ancestor left out is
    reported by the runner, never read as None silently."""

    list_chunk_size: int = 200
    """Objects per page when kopf lists a kind to start watching it (env KDAG_LIST_CHUNK_SIZE; 0: one
    answer; kdag's own lists page by `kube.LIST_PAGE`). The controller lists every TaskRun and task pod of
    the cluster at start and after each watch expires; as one answer, 10,000 of each are parsed at once and
    the process keeps that peak (about 1 GiB, bench/controller_memory.py); in pages it stays under 200 MiB."""

    event_worker_idle_ms: int = 500
    """How long the worker kopf keeps per object waits for that object's next event before it ends
    (env KDAG_EVENT_WORKER_IDLE_MS; kopf's `queueing.idle_timeout`, 5 s by default). Every TaskRun and task
    pod listed at start gets a worker; kept 5 s each, tens of thousands of them live at once."""

    sidecar_resources: Mapping[str, Mapping[str, str]] = field(
        default_factory=lambda: {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}}
    )
    """Resources of the `xcom` sidecar of non-Python tasks."""

    peering: str | None = None
    """kopf peering name for several controller replicas; None runs standalone (env KDAG_PEERING)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ControllerSettings:
        """Settings from `KDAG_<FIELD>` variables; a bad number names the variable."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in fields(cls):
            name = f"KDAG_{f.name.upper()}"
            if name not in env or f.name == "sidecar_resources":
                continue
            raw = env[name]
            if f.name == "namespaces":
                values[f.name] = tuple(ns.strip() for ns in raw.split(",") if ns.strip())
            elif f.type in ("int", int):
                try:
                    values[f.name] = int(raw)
                except ValueError:
                    raise ValueError(f"{name} must be an integer, got {raw!r}") from None
            elif f.name in ("webhook_url", "peering"):
                values[f.name] = raw or None
            else:
                values[f.name] = raw
        return cls(**values)  # type: ignore[arg-type]
