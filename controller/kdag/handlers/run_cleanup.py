"""Deleting finished runs (docs/design.md, "Cleaning up finished runs"): a DAGRun past its
`spec.ttlSecondsAfterFinished`, and a DAG's oldest finished runs beyond its `spec.runHistoryLimit`.

`kdag.history` chooses which (pure); this module only reads, deletes and logs. A run's TaskRuns, pods and
XCom ConfigMaps go with it through owner references, with no controller involvement.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from kdag import history
from kdag.handlers.runtime import Reconcile, RunKey, Runtime, wake_later
from kdag.kube import DAG, DAGRUN, JSONObject, KubeApi

logger = logging.getLogger("kdag.run_cleanup")

WAKE_AFTER_EXPIRY_SECONDS = 0.5
"""How long after its expiry a run is looked at again: a little late, never early."""


async def expire(runtime: Runtime, key: RunKey, dagrun: JSONObject, reconcile: Reconcile) -> None:
    """Delete a finished run past spec.ttlSecondsAfterFinished, or have `reconcile` look at it again then.

    A run that has not finished, or has no TTL, is left alone.
    """
    expiry = history.ttl_expiry(dagrun)
    if expiry is None:
        return
    wait = (expiry - datetime.now(UTC)).total_seconds()
    if wait > 0:
        wake_later(runtime, key, wait + WAKE_AFTER_EXPIRY_SECONDS, reconcile)
    elif await runtime.api.delete(DAGRUN, *key):
        logger.info("deleted DAGRun %s/%s: its ttlSecondsAfterFinished has passed", *key)


async def prune_history(api: KubeApi, namespace: str, dag_name: str) -> None:
    """Delete the DAG's oldest finished runs beyond its spec.runHistoryLimit."""
    dag = await api.get(DAG, namespace, dag_name)
    if dag is None:
        return
    limit = history.run_history_limit(dag.get("spec") or {})
    runs = [
        r
        for r in await api.list(DAGRUN, namespace)
        if ((r.get("spec") or {}).get("dagRef") or {}).get("name") == dag_name
    ]
    for old in history.runs_beyond_history(runs, limit):
        if await api.delete(DAGRUN, namespace, old):
            logger.info(
                "deleted DAGRun %s/%s: beyond the run history limit %d of DAG %s",
                namespace,
                old,
                limit,
                dag_name,
            )
