"""The names every part of kdag shares: API group and version, kinds, label, annotation and manager keys.

The runner labels the ConfigMaps it writes and the controller labels everything else with these, so they
live in the runner library (standard library only), which the controller imports; nothing else spells them.
"""

from __future__ import annotations

GROUP = "kdag.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

DAG_KIND = "DAG"
DAGRUN_KIND = "DAGRun"
TASKRUN_KIND = "TaskRun"
DAG_PLURAL = "dags"
DAGRUN_PLURAL = "dagruns"
TASKRUN_PLURAL = "taskruns"

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "kdag"
DAG_LABEL = f"{GROUP}/dag"
DAGRUN_LABEL = f"{GROUP}/dagrun"
TASK_LABEL = f"{GROUP}/task"
ATTEMPT_LABEL = f"{GROUP}/attempt"
MAP_INDEX_LABEL = f"{GROUP}/map-index"
"""On the TaskRun and pods of one instance of a mapped task: its map index."""

ANNOTATION_PREFIX = GROUP
"""Prefix of the annotations kopf keeps its progress and diff base under."""
FINALIZER = f"{GROUP}/finalizer"

RUNNER_FIELD_MANAGER = "kdag-runner"
"""Field manager of the runner's server-side apply of an XCom ConfigMap."""
CLI_FIELD_MANAGER = "kdag-cli"
"""Field manager of `kdag apply`."""
