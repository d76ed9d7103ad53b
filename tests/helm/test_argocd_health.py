"""Argo CD health checks (Lua) of DAG, DAGRun and TaskRun, run in Lua 5.1 like Argo CD's gopher-lua."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from lupa import lua51  # type: ignore[import-untyped]

REPO = Path(__file__).resolve().parents[2]
HEALTH = REPO / "docs" / "gitops" / "argocd" / "health" / "kdag.dev"
STATUS_EXAMPLES = Path(__file__).parent / "status-examples"


def to_lua(runtime: Any, value: Any) -> Any:
    if isinstance(value, dict):
        return runtime.table_from({k: to_lua(runtime, v) for k, v in value.items()})
    if isinstance(value, list):
        return runtime.table_from([to_lua(runtime, v) for v in value])
    return value


def health(kind: str, obj: dict[str, Any]) -> dict[str, str]:
    """Run the kind's health.lua with `obj` as Argo CD does: a global `obj`, the script's return value."""
    runtime = lua51.LuaRuntime()
    runtime.globals().obj = to_lua(runtime, obj)
    script = (HEALTH / kind / "health.lua").read_text()
    result = runtime.execute(script)
    return {"status": str(result["status"]), "message": str(result["message"])}


def examples() -> list[tuple[str, str, dict[str, Any]]]:
    """Objects as the API server returned them, each with the health Argo CD should report."""
    found = []
    for path in sorted(STATUS_EXAMPLES.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            expected = doc["metadata"]["annotations"]["test.kdag.dev/expected-health"]
            found.append((path.stem, expected, doc))
    return found


@pytest.mark.parametrize(
    ("source", "expected", "obj"), examples(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_health_of_real_objects(source: str, expected: str, obj: dict[str, Any]) -> None:
    assert health(obj["kind"], obj)["status"] == expected, (source, obj["metadata"]["name"])


def test_examples_cover_every_kind_and_outcome() -> None:
    seen = {(obj["kind"], expected) for _, expected, obj in examples()}
    for kind in ("DAG", "DAGRun", "TaskRun"):
        assert (kind, "Healthy") in seen
    for kind in ("DAGRun", "TaskRun"):
        assert (kind, "Progressing") in seen
        assert (kind, "Degraded") in seen
    # A DAG is Progressing only between an edit and the controller's next status write: see
    # test_dag_whose_generation_is_not_observed_yet_is_progressing.


def test_dag_whose_generation_is_not_observed_yet_is_progressing() -> None:
    dag = {
        "kind": "DAG",
        "metadata": {"name": "etl-dag", "generation": 3},
        "status": {
            "observedGeneration": 2,
            "conditions": [{"type": "Ready", "status": "True", "reason": "Valid", "observedGeneration": 2}],
        },
    }
    result = health("DAG", dag)
    assert result["status"] == "Progressing"
    assert "generation 3" in result["message"]


def test_dag_refused_by_the_controller_is_degraded_with_its_reason() -> None:
    dag = {
        "kind": "DAG",
        "metadata": {"name": "loop", "generation": 1},
        "status": {
            "observedGeneration": 1,
            "conditions": [
                {"type": "Ready", "status": "False", "reason": "Invalid", "message": "cycle: a -> b -> a"}
            ],
        },
    }
    assert health("DAG", dag) == {"status": "Degraded", "message": "cycle: a -> b -> a"}


def test_stalled_run_is_degraded_even_while_running() -> None:
    run = {
        "kind": "DAGRun",
        "metadata": {"name": "r"},
        "status": {
            "phase": "Running",
            "progress": "1/3",
            "conditions": [
                {"type": "Stalled", "status": "True", "reason": "DAGMissing", "message": "DAG x is gone"}
            ],
        },
    }
    assert health("DAGRun", run) == {"status": "Degraded", "message": "DAG x is gone"}


def test_objects_without_status_wait_for_the_controller() -> None:
    for kind in ("DAG", "DAGRun", "TaskRun"):
        assert (
            health(kind, {"kind": kind, "metadata": {"name": "new", "generation": 1}})["status"]
            == "Progressing"
        )


def test_argocd_cm_snippet_carries_the_scripts_unchanged() -> None:
    config = yaml.safe_load((REPO / "docs" / "gitops" / "argocd-cm.yaml").read_text())
    for kind in ("DAG", "DAGRun", "TaskRun"):
        script = config["data"][f"resource.customizations.health.kdag.dev_{kind}"]
        assert script == (HEALTH / kind / "health.lua").read_text()
