"""Every example manifest applies with server-side apply, runs, and stays the user's: the controller
never takes ownership of a DAG's spec, so re-applying never conflicts."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from controller_support import ControllerProcess, kubectl
from kdag import names
from kube_helpers import wait_for

pytestmark = pytest.mark.cluster

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MANIFESTS = sorted(p for p in EXAMPLES.glob("*.yaml") if p.name != "kustomization.yaml")


def dags_in(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc and doc["kind"] == "DAG"]


def apply(kubeconfig: str, namespace: str, manifest: str) -> str:
    """Server-side apply as kubectl's field manager, without forcing conflicts."""
    return kubectl(kubeconfig, "apply", "--server-side", "-n", namespace, "-f", "-", stdin=manifest)


def kubectl_json(kubeconfig: str, *args: str) -> Any:
    return json.loads(kubectl(kubeconfig, *args, "-o", "json"))


def runs_of(kubeconfig: str, namespace: str, dag: str) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = kubectl_json(kubeconfig, "get", "dagruns", "-n", namespace)["items"]
    return [r for r in runs if r["spec"]["dagRef"]["name"] == dag]


def finished(kubeconfig: str, namespace: str, dag: str) -> dict[str, Any] | None:
    for run in runs_of(kubeconfig, namespace, dag):
        if run.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            return run
    return None


def spec_owners(obj: dict[str, Any]) -> set[str]:
    """Field managers that own any field under spec."""
    return {
        entry["manager"]
        for entry in obj["metadata"].get("managedFields", [])
        if "f:spec" in entry.get("fieldsV1", {})
    }


def test_examples_are_there() -> None:
    assert len(MANIFESTS) >= 6, [p.name for p in MANIFESTS]


@pytest.mark.parametrize("manifest", MANIFESTS, ids=[p.stem for p in MANIFESTS])
def test_example_applies_server_side_runs_and_reapplies_without_conflict(
    kubeconfig: str, controller: ControllerProcess, examples_namespace: str, manifest: Path
) -> None:
    text = manifest.read_text()
    apply(kubeconfig, examples_namespace, text)
    for dag in dags_in(manifest):
        name = dag["metadata"]["name"]

        def observed(name: str = name) -> dict[str, Any] | None:
            obj: dict[str, Any] = kubectl_json(kubeconfig, "get", "dag", name, "-n", examples_namespace)
            status = obj.get("status", {})
            return obj if status.get("observedGeneration") == obj["metadata"]["generation"] else None

        obj = wait_for(observed, timeout=60, what=f"the controller to observe DAG {name}")
        assert obj is not None
        ready = {c["type"]: c for c in obj["status"]["conditions"]}["Ready"]
        assert ready["status"] == "True", ready
        if dag["spec"].get("schedule") == "@once":
            run = wait_for(
                lambda: finished(kubeconfig, examples_namespace, name),  # noqa: B023 (used at once)
                timeout=240,
                what=f"the one run of the @once DAG {name} to finish",
            )
            assert run is not None
            assert run["status"]["phase"] == "Succeeded", run["status"]
            assert len(runs_of(kubeconfig, examples_namespace, name)) == 1
        # The controller wrote status; the spec is still kubectl's alone, so re-applying cannot conflict.
        apply(kubeconfig, examples_namespace, text)
        obj = kubectl_json(kubeconfig, "get", "dag", name, "-n", examples_namespace, "--show-managed-fields")
        assert spec_owners(obj) == {"kubectl"}, obj["metadata"]["managedFields"]


def test_scheduled_example_runs_on_its_schedule(
    kubeconfig: str, controller: ControllerProcess, examples_namespace: str
) -> None:
    """The scheduled example with its cron made every minute, so a tick comes within the test."""
    dag = dags_in(EXAMPLES / "scheduled-report.yaml")[0]
    dag["spec"]["schedule"] = "* * * * *"
    apply(kubeconfig, examples_namespace, yaml.safe_dump(dag))
    name = dag["metadata"]["name"]
    run = wait_for(
        lambda: finished(kubeconfig, examples_namespace, name), timeout=200, what="the first scheduled run"
    )
    assert run is not None
    assert run["status"]["phase"] == "Succeeded", run["status"]
    logical = datetime.datetime.fromisoformat(run["spec"]["logicalDate"])
    assert (logical.second, logical.microsecond) == (0, 0), "a scheduled run's logical date is its cron tick"
    assert run["metadata"]["name"] == names.scheduled_run_name(name, logical)
    configmap = names.xcom_configmap_name(run["metadata"]["name"], "report")
    data: dict[str, str] = kubectl_json(kubeconfig, "get", "configmap", configmap, "-n", examples_namespace)[
        "data"
    ]
    ds = logical.astimezone(datetime.UTC).strftime("%Y-%m-%d")
    assert data["return_value"] == f"{ds}: 120 rows from orders"
    assert json.loads(data["rows"]) == 120
