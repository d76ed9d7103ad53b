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
DAGVERSION_KIND = "DAGVersion"
DAG_PLURAL = "dags"
DAGRUN_PLURAL = "dagruns"
TASKRUN_PLURAL = "taskruns"
DAGVERSION_PLURAL = "dagversions"

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "kdag"
DAG_LABEL = f"{GROUP}/dag"
DAGRUN_LABEL = f"{GROUP}/dagrun"
TASK_LABEL = f"{GROUP}/task"
ATTEMPT_LABEL = f"{GROUP}/attempt"
MAP_INDEX_LABEL = f"{GROUP}/map-index"
"""On the TaskRun and pods of one instance of a mapped task: its map index."""
TRIGGERED_BY_LABEL = f"{GROUP}/triggered-by"
"""On a DAGRun a TriggerDagRunOperator asked for: the TaskRun that asked (a label value of its name)."""
TRIGGERED_BY_UID_LABEL = f"{GROUP}/triggered-by-uid"
"""On the same DAGRun: that TaskRun's uid (how the controller knows the run is the task's own)."""
TRIGGERED_TRY_LABEL = f"{GROUP}/triggered-try"
"""On the same DAGRun: the task's try that made it."""
RUN_TYPE_LABEL = f"{GROUP}/run-type"
"""On a DAGRun kdag makes: `scheduled` (the controller's, for the DAG's schedule or `@once`) or `manual`
(`kdag trigger`'s); both are owned by their DAG, so the owner no longer says which."""

ANNOTATION_PREFIX = GROUP
"""Prefix of the annotations kopf keeps its progress and diff base under."""
FINALIZER = f"{GROUP}/finalizer"
"""kopf's finalizer: kdag's handlers need none, so kopf removes it from DAGs that still carry it."""

RUNNER_FIELD_MANAGER = "kdag-runner"
"""Field manager of the runner's server-side apply of an XCom ConfigMap."""
RUNNER_STATE_FIELD_MANAGER = "kdag-runner-state"
"""Field manager of the task state store's key (``.state``) in the same ConfigMap: the XCom apply of a later
attempt, under the other manager, leaves it in place."""
CLI_FIELD_MANAGER = "kubectl"
"""Field manager of `kdag apply`: kubectl's own for `kubectl apply --server-side`, so `kdag apply` and
`kdag compile | kubectl apply --server-side` are one manager, and either takes over what the other applied
(fields the later apply leaves out are removed) instead of conflicting with it."""
