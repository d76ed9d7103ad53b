"""Which finished runs the controller deletes: beyond the history limit, past their TTL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kdag.history import run_history_limit, runs_beyond_history, ttl_expiry


def _run(name: str, phase: str, finish: str | None = None, ttl: int | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase}
    if finish:
        status["finishTime"] = finish
    spec: dict[str, Any] = {"dagRef": {"name": "d"}}
    if ttl is not None:
        spec["ttlSecondsAfterFinished"] = ttl
    return {"metadata": {"name": name}, "spec": spec, "status": status}


def test_oldest_finished_runs_beyond_the_limit_go_first() -> None:
    runs = [
        _run("new", "Succeeded", "2026-01-03T00:00:00Z"),
        _run("old", "Failed", "2026-01-01T00:00:00Z"),
        _run("mid", "Succeeded", "2026-01-02T00:00:00Z"),
        _run("running", "Running"),
    ]
    assert runs_beyond_history(runs, 1) == ["old", "mid"]
    assert runs_beyond_history(runs, 3) == []
    assert runs_beyond_history(runs, 0) == ["old", "mid", "new"]


def test_ttl_counts_from_the_finish_time() -> None:
    assert ttl_expiry(_run("r", "Succeeded", "2026-01-01T00:00:00Z", ttl=90)) == datetime(
        2026, 1, 1, 0, 1, 30, tzinfo=UTC
    )
    assert ttl_expiry(_run("r", "Running", ttl=90)) is None
    assert ttl_expiry(_run("r", "Succeeded", "2026-01-01T00:00:00Z")) is None


def test_history_limit_defaults_to_ten() -> None:
    assert run_history_limit({}) == 10
    assert run_history_limit({"runHistoryLimit": 0}) == 0
