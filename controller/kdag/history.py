"""Pure choice of finished runs to delete: beyond a DAG's run history limit, or past their TTL."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from kdag.render import parse_time

DEFAULT_RUN_HISTORY_LIMIT = 10
FINISHED_RUN_PHASES = ("Succeeded", "Failed")


def _finish_time(run: Mapping[str, Any]) -> datetime | None:
    status = run.get("status") or {}
    if status.get("phase") not in FINISHED_RUN_PHASES or not status.get("finishTime"):
        return None
    return parse_time(status["finishTime"])


def runs_beyond_history(runs: Sequence[Mapping[str, Any]], limit: int) -> list[str]:
    """Names of the oldest finished runs beyond `limit` of them; runs under way are never chosen."""
    finished = [(t, str(r["metadata"]["name"])) for r in runs if (t := _finish_time(r)) is not None]
    finished.sort()
    excess = len(finished) - max(limit, 0)
    return [name for _, name in finished[:excess]] if excess > 0 else []


def ttl_expiry(run: Mapping[str, Any]) -> datetime | None:
    """When a finished run with spec.ttlSecondsAfterFinished is to be deleted; None if never."""
    ttl = (run.get("spec") or {}).get("ttlSecondsAfterFinished")
    finished_at = _finish_time(run)
    if ttl is None or finished_at is None:
        return None
    return finished_at + timedelta(seconds=int(ttl))


def run_history_limit(dag_spec: Mapping[str, Any]) -> int:
    """spec.runHistoryLimit of a DAG, 10 when unset."""
    value = dag_spec.get("runHistoryLimit")
    return DEFAULT_RUN_HISTORY_LIMIT if value is None else int(value)
