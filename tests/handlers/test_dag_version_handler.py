"""A run follows the DAGVersion it started with (docs/design.md, "DAG versions"): the controller makes the
version of its DAG's spec when the run starts, records it in `status.dagVersion` before any task starts,
reads it (once per process) on every later pass, and never takes an object of that name that is not the
DAG's. The in-memory API server of `fake_api` stands in for the cluster.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fake_api import FakeApi, dagrun_manifest, runtime_over
from kdag import dag_versions, names
from kdag.api.models import DAGSpec
from kdag.handlers import dagruns
from kdag.handlers.runtime import Runtime
from kdag.kube import Kind

NS = "team"
SPEC: dict[str, Any] = {
    "tasks": [
        {"id": "first", "command": ["true"]},
        {"id": "second", "command": ["true"], "upstream": ["first"]},
    ]
}


async def cluster_with_dag(spec: dict[str, Any] = SPEC) -> FakeApi:
    cluster = FakeApi()
    dag = {"apiVersion": "kdag.dev/v1alpha1", "kind": "DAG", "metadata": {"name": "etl"}, "spec": spec}
    await cluster.create(dag, NS)
    return cluster


async def start(cluster: FakeApi, runtime: Runtime, run: str) -> dict[str, Any]:
    """Make the run, give it one pass; the run as it is then."""
    await cluster.create(dagrun_manifest(run, "etl"), NS)
    await dagruns.reconcile_run(runtime, (NS, run))
    return cluster.objects[("DAGRun", run)]


def versions(cluster: FakeApi) -> dict[str, dict[str, Any]]:
    return {name: obj for (kind, name), obj in cluster.objects.items() if kind == "DAGVersion"}


def edit_dag(cluster: FakeApi, **fields: Any) -> None:
    dag = cluster.objects[("DAG", "etl")]
    dag["spec"] = {**dag["spec"], **fields}


async def test_a_run_starts_with_a_version_of_its_dag_owned_by_the_dag() -> None:
    cluster = await cluster_with_dag()
    run = await start(cluster, runtime_over(cluster), "etl-1")
    (name,) = versions(cluster)
    assert run["status"]["dagVersion"] == name and "dag" not in run["status"]
    version = versions(cluster)[name]
    dag = cluster.objects[("DAG", "etl")]
    assert version["metadata"]["ownerReferences"] == [
        {"apiVersion": "kdag.dev/v1alpha1", "kind": "DAG", "name": "etl", "uid": dag["metadata"]["uid"]}
    ]
    assert version["metadata"]["labels"] == names.labels("etl")
    assert version["spec"]["taskCount"] == 2
    assert DAGSpec.model_validate(version["spec"]["dag"]) == DAGSpec.model_validate(SPEC)
    assert cluster.pods_of("first")  # the first task started


async def test_runs_of_one_spec_share_a_version_and_an_edit_makes_the_next() -> None:
    cluster = await cluster_with_dag()
    runtime = runtime_over(cluster)
    first = await start(cluster, runtime, "etl-1")
    second = await start(cluster, runtime, "etl-2")
    assert first["status"]["dagVersion"] == second["status"]["dagVersion"]
    edit_dag(cluster, tasks=[*SPEC["tasks"], {"id": "third", "command": ["true"]}])
    third = await start(cluster, runtime, "etl-3")
    assert third["status"]["dagVersion"] != first["status"]["dagVersion"]
    assert len(versions(cluster)) == 2
    # The runs under way keep to theirs: the task added since never starts in them.
    await dagruns.reconcile_run(runtime, (NS, "etl-1"))
    assert set(cluster.objects[("DAGRun", "etl-1")]["status"]["tasks"]) == {"first"}
    assert set(third["status"]["tasks"]) == {"first", "third"}  # both roots start at once
    assert len(cluster.pods_of("third")) == 1


async def test_a_version_is_read_once_per_process_however_many_passes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cluster = await cluster_with_dag()
    await start(cluster, runtime_over(cluster), "etl-1")
    await start(cluster, runtime_over(cluster), "etl-2")
    reads: list[str] = []
    get = cluster.get

    async def counted(kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        if kind.kind == "DAGVersion":
            reads.append(name)
        return await get(kind, namespace, name)

    monkeypatch.setattr(cluster, "get", counted)
    restarted = runtime_over(cluster)  # nothing in memory
    for _ in range(3):
        for run in ("etl-1", "etl-2"):
            await dagruns.reconcile_run(restarted, (NS, run))
    assert reads == [cluster.objects[("DAGRun", "etl-1")]["status"]["dagVersion"]]


async def test_an_object_under_the_versions_name_that_is_not_the_dags_fails_the_run() -> None:
    cluster = await cluster_with_dag()
    dag = cluster.objects[("DAG", "etl")]
    wanted = dag_versions.manifest("etl", dag["metadata"]["uid"], DAGSpec.model_validate(SPEC), NS)
    squatter = {**wanted, "metadata": {**wanted["metadata"], "ownerReferences": []}}
    await cluster.create(squatter, NS)
    run = await start(cluster, runtime_over(cluster), "etl-1")
    assert run["status"]["phase"] == "Failed" and "dagVersion" not in run["status"]
    stalled = next(c for c in run["status"]["conditions"] if c["type"] == "Stalled")
    assert stalled["reason"] == "DAGVersionConflict"
    assert f"DAGVersion {wanted['metadata']['name']} exists but is not DAG etl's" in stalled["message"]
    assert not cluster.pods_of("first")
    await asyncio.sleep(0)  # the Event's background task
    (event,) = [e for e in cluster.events if e["reason"] == "RunFailed"]
    assert "never takes a DAG version by its name alone" in event["message"]


async def test_a_started_run_whose_version_is_gone_fails_saying_so() -> None:
    cluster = await cluster_with_dag()
    await start(cluster, runtime_over(cluster), "etl-1")
    (name,) = versions(cluster)
    del cluster.objects[("DAGVersion", name)]
    await dagruns.reconcile_run(runtime_over(cluster), (NS, "etl-1"))
    status = cluster.objects[("DAGRun", "etl-1")]["status"]
    stalled = next(c for c in status["conditions"] if c["type"] == "Stalled")
    assert (status["phase"], stalled["reason"]) == ("Failed", "DAGVersionMissing")
    gone = f"DAGVersion {name}, the spec of DAG etl this run started with, does not exist any more"
    assert gone in stalled["message"]
