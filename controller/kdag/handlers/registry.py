"""The registry of kdag's kopf handlers, built explicitly: `build_registry` makes what `kopf.operator` runs.

Importing this (or any handler module) registers nothing on kopf's default registry: the handlers are plain
functions that get their shared state from kopf's `memo` (a `Runtime`).
"""

from __future__ import annotations

from collections.abc import Iterable

import kopf
from kdag_runner.keys import DAG_PLURAL, DAGRUN_KIND, DAGRUN_PLURAL, TASKRUN_PLURAL

from kdag.api.models import GROUP, VERSION
from kdag.handlers import dagruns, dags, pods, taskruns
from kdag.webhook import DAG_WEBHOOK, DAGRUN_WEBHOOK, validate_dag, validate_dagrun


def build_registry(*, webhook: bool) -> kopf.OperatorRegistry:
    """A registry with every kdag handler (and the DAG and DAGRun validating webhooks when `webhook`).

    No handler needs a finalizer: a DAG's schedule follows its watch events (`dags.dag_event`) rather than
    being a kopf daemon, so DAGs, like runs, can be deleted whether or not a controller runs.

    kopf logs in the way kdag's own client does (kubernetes_asyncio: $KUBECONFIG, else in-cluster).
    """
    registry = kopf.OperatorRegistry()
    kopf.on.login(registry=registry)(kopf.login_via_async_client)
    on_dags = (GROUP, VERSION, DAG_PLURAL)
    on_runs = (GROUP, VERSION, DAGRUN_PLURAL)

    # Validation and status of a DAG follow its watch events too (`dags.dag_event`): kopf's create/update
    # handlers would keep the whole spec in an annotation, too large for a DAG of thousands of tasks.
    kopf.on.event(*on_dags, registry=registry)(dags.dag_event)

    kopf.on.resume(*on_runs, registry=registry)(dagruns.dagrun_created)
    kopf.on.create(*on_runs, registry=registry)(dagruns.dagrun_created)
    kopf.on.event(*on_runs, registry=registry)(dagruns.dagrun_deleted)

    kopf.on.event("", "v1", "pods", labels=pods.TASK_POD_LABELS, registry=registry)(pods.task_pod_changed)
    kopf.on.event(GROUP, VERSION, TASKRUN_PLURAL, registry=registry)(taskruns.taskrun_changed)

    if webhook:
        kopf.on.validate(*on_dags, id=DAG_WEBHOOK, operations=["CREATE", "UPDATE"], registry=registry)(
            validate_dag
        )
        kopf.on.validate(*on_runs, id=DAGRUN_WEBHOOK, operations=["CREATE"], registry=registry)(
            validate_dagrun
        )
    return registry


class RunsDiffBaseStorage(kopf.AnnotationsDiffBaseStorage):
    """kopf's last-handled-configuration, built only for DAGRuns: the one kind with change-detecting
    handlers (`on.create`, `on.resume`).

    kopf builds an object's essence (a deep copy of the body) on every watch event of every kind, handlers
    or not. A task pod's body is tens of kB (its XCom volumes, their managedFields), so on a run of
    thousands of tasks those copies were a third of the controller's CPU, for a diff that only change
    handlers read. Other kinds get an empty essence; nothing is ever stored on them.
    """

    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[kopf.FieldSpec] | None = None
    ) -> kopf.BodyEssence:
        if body.get("kind") != DAGRUN_KIND:
            return kopf.BodyEssence()
        return super().build(body=body, extra_fields=extra_fields)
