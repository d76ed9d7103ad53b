"""The registry of kdag's kopf handlers, built explicitly: `build_registry` makes what `kopf.operator` runs.

Importing this (or any handler module) registers nothing on kopf's default registry: the handlers are plain
functions that get their shared state from kopf's `memo` (a `Runtime`).
"""

from __future__ import annotations

import kopf
from kdag_runner.keys import DAG_PLURAL, DAGRUN_PLURAL

from kdag.api.models import GROUP, VERSION
from kdag.handlers import dagruns, dags, pods
from kdag.webhook import validate_dag

WEBHOOK_ID = "dags.kdag.dev"


def build_registry(*, webhook: bool) -> kopf.OperatorRegistry:
    """A registry with every kdag handler (and the DAG validating webhook when `webhook`).

    kopf logs in the way kdag's own client does (kubernetes_asyncio: $KUBECONFIG, else in-cluster).
    """
    registry = kopf.OperatorRegistry()
    kopf.on.login(registry=registry)(kopf.login_via_async_client)
    on_dags = (GROUP, VERSION, DAG_PLURAL)
    on_runs = (GROUP, VERSION, DAGRUN_PLURAL)

    kopf.on.resume(*on_dags, registry=registry)(dags.dag_changed)
    kopf.on.create(*on_dags, registry=registry)(dags.dag_changed)
    kopf.on.update(*on_dags, field="spec", registry=registry)(dags.dag_changed)
    kopf.daemon(*on_dags, when=dags.has_schedule, cancellation_timeout=5, registry=registry)(
        dags.run_schedule
    )

    kopf.on.resume(*on_runs, registry=registry)(dagruns.dagrun_created)
    kopf.on.create(*on_runs, registry=registry)(dagruns.dagrun_created)
    kopf.on.event(*on_runs, registry=registry)(dagruns.dagrun_deleted)

    kopf.on.event("", "v1", "pods", labels=pods.TASK_POD_LABELS, registry=registry)(pods.task_pod_changed)

    if webhook:
        kopf.on.validate(*on_dags, id=WEBHOOK_ID, operations=["CREATE", "UPDATE"], registry=registry)(
            validate_dag
        )
    return registry
