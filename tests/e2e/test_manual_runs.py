"""Runs made by users: a DAGRun with its own params, conf and logical date; one naming a missing DAG.

These DAGs have no schedule, so (as Airflow's `schedule=None`) only the runs the tests create run."""

from __future__ import annotations

import json

import pytest
from controller_support import ControllerProcess, kubectl
from e2e_helpers import apply, dag_manifest, get, python_task, runs_of, wait_for_run, wait_until, xcoms

pytestmark = pytest.mark.cluster


def _dagrun(name: str, dag: str, **spec: object) -> dict[str, object]:
    return {
        "apiVersion": "kdag.dev/v1alpha1",
        "kind": "DAGRun",
        "metadata": {"name": name, "labels": {"kdag.dev/dag": dag}},
        "spec": {"dagRef": {"name": dag}, **spec},
    }


def test_a_created_dagrun_runs_with_its_params_conf_and_logical_date(
    kubeconfig: str, controller: ControllerProcess, e2e_namespace: str
) -> None:
    source = (
        "def report(params, ds, dag_run, **_):\n"
        "    return {'who': params['who'], 'where': params['where'], 'ds': ds, 'conf': dag_run.conf}\n"
    )
    apply(kubeconfig, e2e_namespace, dag_manifest(
        "manual", [python_task("report", source, "report", params={"where": "task"})],
        params={"who": "dag", "where": "dag"},
    ))
    _wait_observed(kubeconfig, e2e_namespace, "manual")
    assert runs_of(kubeconfig, e2e_namespace, "manual") == [], "a DAG without a schedule ran by itself"
    apply(kubeconfig, e2e_namespace, _dagrun(
        "manual-by-hand", "manual", params={"who": "run"}, conf={"source": "test"},
        logicalDate="2024-01-02T03:04:05Z",
    ))
    run = wait_until(
        lambda: next((r for r in runs_of(kubeconfig, e2e_namespace, "manual")
                      if r["metadata"]["name"] == "manual-by-hand"
                      and r.get("status", {}).get("phase") in ("Succeeded", "Failed")), None),
        "the created run to finish",
    )
    assert run["status"]["phase"] == "Succeeded", run["status"]
    value = json.loads(xcoms(kubeconfig, e2e_namespace, "manual-by-hand", "report")["return_value"])
    assert value == {"who": "run", "where": "task", "ds": "2024-01-02", "conf": {"source": "test"}}
    assert [r["metadata"]["name"] for r in runs_of(kubeconfig, e2e_namespace, "manual")] == ["manual-by-hand"]


def _wait_observed(kubeconfig: str, namespace: str, dag: str) -> None:
    """Until the controller has seen the DAG (and so would have started any run of its own)."""

    def observed() -> bool:
        obj = get(kubeconfig, namespace, "dag", dag)
        return obj.get("status", {}).get("observedGeneration") == obj["metadata"]["generation"]

    wait_until(observed, f"the controller to observe DAG {dag}")


def test_a_dagrun_of_a_missing_dag_is_stalled_with_the_field_named(
    kubeconfig: str, controller: ControllerProcess, e2e_namespace: str
) -> None:
    apply(kubeconfig, e2e_namespace, _dagrun("orphan", "no-such-dag"))

    def stalled() -> dict[str, object] | None:
        run = get(kubeconfig, e2e_namespace, "dagrun", "orphan")
        conditions = {c["type"]: c for c in run.get("status", {}).get("conditions", [])}
        return conditions["Stalled"] if conditions.get("Stalled", {}).get("status") == "True" else None

    condition = wait_until(stalled, "the run to be Stalled")
    assert condition["reason"] == "InvalidDAG"
    assert "spec.dagRef.name: DAG 'no-such-dag' does not exist" in condition["message"]
    events = json.loads(kubectl(kubeconfig, "get", "events", "-n", e2e_namespace,
                                "--field-selector", "involvedObject.name=orphan", "-o", "json"))["items"]
    assert any(e["reason"] == "InvalidDAG" and "no-such-dag" in e["message"] for e in events), events

    # The DAG arrives: the waiting run starts (the DAG has no schedule, so it is the only run).
    apply(kubeconfig, e2e_namespace, dag_manifest(
        "no-such-dag", [python_task("late", "def late(**_):\n    return 'late'\n", "late")]
    ))
    run = wait_until(
        lambda: (lambda r: r if r.get("status", {}).get("phase") in ("Succeeded", "Failed") else None)(
            get(kubeconfig, e2e_namespace, "dagrun", "orphan")
        ),
        "the orphan run to finish once its DAG exists",
    )
    assert run["status"]["phase"] == "Succeeded", run["status"]
    assert xcoms(kubeconfig, e2e_namespace, "orphan", "late")["return_value"] == "late"
    assert [r["metadata"]["name"] for r in runs_of(kubeconfig, e2e_namespace, "no-such-dag")] == ["orphan"]


def test_finished_runs_beyond_the_history_limit_are_deleted(
    kubeconfig: str, controller: ControllerProcess, e2e_namespace: str
) -> None:
    apply(kubeconfig, e2e_namespace, dag_manifest(
        "history", [python_task("quick", "def quick(**_):\n    return 1\n", "quick")]
    ))
    extra = {"apiVersion": "v1", "kind": "List",
             "items": [_dagrun(f"history-{i}", "history") for i in range(11)]}
    kubectl(kubeconfig, "apply", "-n", e2e_namespace, "-f", "-", stdin=json.dumps(extra))

    def settled() -> list[dict[str, object]] | None:
        runs = runs_of(kubeconfig, e2e_namespace, "history")
        done = all(r.get("status", {}).get("phase") == "Succeeded" for r in runs)
        return runs if done and len(runs) == 10 else None

    runs = wait_until(settled, "ten finished runs of eleven (the default run history limit)", timeout=300)
    assert len(runs) == 10


def test_a_dags_run_history_limit_keeps_that_many_finished_runs(
    kubeconfig: str, controller: ControllerProcess, e2e_namespace: str
) -> None:
    apply(kubeconfig, e2e_namespace, dag_manifest(
        "short-history", [python_task("quick", "def quick(**_):\n    return 1\n", "quick")], runHistoryLimit=2
    ))
    apply(kubeconfig, e2e_namespace, _dagrun("short-history-first", "short-history"))
    wait_for_run(kubeconfig, e2e_namespace, "short-history")  # it finishes first, so it goes first
    extra = {"apiVersion": "v1", "kind": "List",
             "items": [_dagrun(f"short-history-{i}", "short-history") for i in range(3)]}
    kubectl(kubeconfig, "apply", "-n", e2e_namespace, "-f", "-", stdin=json.dumps(extra))

    def settled() -> list[dict[str, object]] | None:
        runs = runs_of(kubeconfig, e2e_namespace, "short-history")
        done = all(r.get("status", {}).get("phase") == "Succeeded" for r in runs)
        return runs if done and len(runs) == 2 else None

    runs = wait_until(settled, "two finished runs of four (runHistoryLimit: 2)", timeout=300)
    assert {r["metadata"]["name"] for r in runs} <= {f"short-history-{i}" for i in range(3)}


def test_a_run_past_its_ttl_is_deleted_with_its_taskruns_pods_and_xcoms(
    kubeconfig: str, controller: ControllerProcess, e2e_namespace: str
) -> None:
    apply(kubeconfig, e2e_namespace, dag_manifest(
        "short-lived", [python_task("quick", "def quick(**_):\n    return 1\n", "quick")],
        ttlSecondsAfterFinished=5, schedule="@once",  # the controller's run gets the DAG's TTL
    ))
    run = wait_for_run(kubeconfig, e2e_namespace, "short-lived")
    name = run["metadata"]["name"]
    assert run["spec"]["ttlSecondsAfterFinished"] == 5

    def gone() -> bool | None:
        left = kubectl(kubeconfig, "get", "dagruns,taskruns,pods,configmaps", "-n", e2e_namespace,
                       "-l", f"kdag.dev/dagrun={name}", "-o", "name")
        return True if not left.strip() else None

    wait_until(gone, "the run and everything it owns to be deleted after its TTL", timeout=120)
