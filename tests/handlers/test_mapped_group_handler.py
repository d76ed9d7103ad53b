"""The DAGRun handler runs a mapped task group against the in-memory API server whose "kubelet" runs each
pod's runner for real (`fake_api`, as tests/handlers/test_mapping_handler.py): every task of the group is
mapped with the group's length, instance i of a task is started once instance i of its upstream task in the
group succeeded, a failed instance makes only the same instance downstream UpstreamFailed (its TaskRun
marked, with no pod), XComArgs in the group read the same map index through the projected volume, and the
task after the group reads every instance. tests/e2e/test_mapping_on_cluster.py is the real one, with the
same DAG file."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from fake_api import LOCAL_DAGS, FakeApi, dagrun_manifest, run_pod, runtime_over
from kdag import compile as compiler
from kdag import names
from kdag.handlers import dagruns

NS = "team"
RUN = "group-run"

DAG_FILE = LOCAL_DAGS / "mapping_group_upstream_failed.py"


def instance(pod: dict[str, Any]) -> tuple[str, str]:
    """A pod's task id and map index ("" for a task that is not mapped), from its labels."""
    labels = pod["metadata"]["labels"]
    return labels[names.TASK_LABEL], labels.get(names.MAP_INDEX_LABEL, "")


def test_the_handler_runs_a_mapped_group_index_by_index(tmp_path: Path) -> None:
    loaded = compiler.load(DAG_FILE)
    cluster = FakeApi()
    runtime = runtime_over(cluster)
    work = tmp_path / "pods"
    # The (task, map index) of the pods waiting when op.mul_2's first pod was made.
    seen_at_first_mul_2: list[set[tuple[str, str]]] = []

    async def main() -> None:
        await cluster.create(compiler.dag_manifest(loaded.name, loaded.spec), NS)
        await cluster.create(dagrun_manifest(RUN, loaded.name), NS)
        for _ in range(40):
            await dagruns._reconcile(runtime, (NS, RUN))
            if (cluster.objects[("DAGRun", RUN)].get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                break
            pods = cluster.unstarted_pods()
            waiting = {instance(p) for p in pods}
            if not seen_at_first_mul_2 and any(task_id == "op.mul_2" for task_id, _ in waiting):
                seen_at_first_mul_2.append(waiting)
            # One pod a pass, op.add_1's in map order: op.mul_2[0] can start before op.add_1[2] has run.
            for pod in sorted(pods, key=lambda p: p["metadata"]["name"])[:1]:
                run_pod(cluster, pod, work, DAG_FILE, set())
        else:
            raise AssertionError("the run did not finish")
        await asyncio.gather(*runtime.background, return_exceptions=True)

    asyncio.run(main())
    run = cluster.objects[("DAGRun", RUN)]["status"]
    assert run["phase"] == "Succeeded", run  # total (all_done), the leaf, succeeded
    assert run["tasks"] == {
        "numbers": "Succeeded",
        "op.add_1": "Failed",
        "op.mul_2": "UpstreamFailed",
        "total": "Succeeded",
        "lit.add_one": "Succeeded",
        "lit.times_two": "Succeeded",
    }
    assert run["mapped"] == {
        "op.add_1": {"length": 3, "phases": {"Failed": 1, "Succeeded": 2}},
        "op.mul_2": {"length": 3, "phases": {"Succeeded": 2, "UpstreamFailed": 1}},
        "lit.add_one": {"length": 3, "phases": {"Succeeded": 3}},
        "lit.times_two": {"length": 3, "phases": {"Succeeded": 3}},
    }
    assert run["progress"] == "14/14"
    # op.mul_2[0] was started while op.add_1[2] had not run yet (its pod was still waiting).
    assert seen_at_first_mul_2
    assert ("op.add_1", "2") in seen_at_first_mul_2[0]

    marked = cluster.taskrun(RUN, "op.mul_2", 1)
    assert marked["spec"]["mapIndex"] == 1
    assert marked["status"]["phase"] == "UpstreamFailed" and "podName" not in marked["status"]
    pods = {instance(obj): obj for (kind, _), obj in cluster.objects.items() if kind == "Pod"}
    assert ("op.mul_2", "1") not in pods and ("op.mul_2", "2") in pods
    for index, expected in ((0, {"value": 4, "mine": 2}), (2, {"value": 8, "mine": 4})):
        data = cluster.objects[("ConfigMap", names.xcom_configmap_name(RUN, "op.mul_2", index))]["data"]
        assert json.loads(data["return_value"]) == expected
    total = cluster.objects[("ConfigMap", names.xcom_configmap_name(RUN, "total"))]["data"]
    assert json.loads(total["return_value"]) == [4, 8]
    env = {v["name"]: v.get("value") for v in pods[("op.mul_2", "2")]["spec"]["containers"][0]["env"]}
    assert env["KDAG_MAP_INDEX"] == "2"
    assert json.loads(env["KDAG_MAPPED"]) == {"op.add_1": 3}
