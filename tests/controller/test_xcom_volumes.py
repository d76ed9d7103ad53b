"""`xcom_volumes`: what a task pod is given to read its ancestors' XComs (pure; the runner's side of the
same layout is in tests/handlers, which lay the volumes out as the kubelet does and run the runner)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from kdag import names
from kdag.api.models import DAGSpec
from kdag.render import RunInfo, render_task_pod
from kdag.settings import ControllerSettings
from kdag.xcom_volumes import MAX_PROJECTED_ITEMS, XCOM_IN_DIR, xcom_in_volumes


def test_only_what_was_pushed_is_projected_and_a_task_that_pushed_nothing_costs_nothing() -> None:
    volumes, mounts = xcom_in_volumes("r", ["a", "quiet", "b"], {"a": {"x", "return_value"}, "b": ["y"]}, {})
    assert mounts == [{"name": "xcom-in", "mountPath": XCOM_IN_DIR, "readOnly": True}]
    (volume,) = volumes
    assert volume["name"] == "xcom-in"
    sources = volume["projected"]["sources"]
    assert [s["configMap"]["name"] for s in sources] == [names.xcom_configmap_name("r", t) for t in "ab"]
    assert sources[0]["configMap"] == {
        "name": names.xcom_configmap_name("r", "a"),
        "optional": True,  # deleted meanwhile: files left out, the pod still starts
        "items": [
            {"key": "return_value", "path": "a/return_value"},
            {"key": "x", "path": "a/x"},
            {"key": ".types", "path": "a/.types"},
            {"key": "__context", "path": "a/__context"},
        ],
    }
    # No ancestor pushed anything: no volume, no mount (readers find no directory, as for one that pushed
    # nothing).
    assert xcom_in_volumes("r", ["quiet"], {}, {"quiet": []}) == ([], [])


def test_more_keys_than_a_pod_should_list_fall_back_to_one_whole_configmap_per_ancestor() -> None:
    many = {f"k{i}" for i in range(MAX_PROJECTED_ITEMS)}
    volumes, mounts = xcom_in_volumes(
        "r", ["a", "m", "none", "quiet"], {"a": many}, {"m": [["v"]], "none": []}
    )
    assert [m["mountPath"] for m in mounts] == [
        f"{XCOM_IN_DIR}/a",
        f"{XCOM_IN_DIR}/m",
        f"{XCOM_IN_DIR}/quiet",
    ]
    assert all(m["readOnly"] for m in mounts)
    by_name = {v["name"]: v for v in volumes}
    assert by_name[mounts[0]["name"]]["configMap"] == {
        "name": names.xcom_configmap_name("r", "a"),
        "optional": True,
    }
    (instance,) = by_name[mounts[1]["name"]]["projected"]["sources"]
    assert instance["configMap"]["items"][0] == {"key": "v", "path": "0/v"}
    # An ancestor that pushed nothing keeps its (optional, absent) ConfigMap volume in this layout, and a
    # mapped task that expanded into no instance has none.
    assert by_name[mounts[2]["name"]]["configMap"]["name"] == names.xcom_configmap_name("r", "quiet")


def test_a_deep_task_whose_ancestors_pushed_nothing_renders_a_small_pod() -> None:
    """A layer of 50 tasks after 8 of the layer before, deep in a DAG: its 128 nearest ancestors are named in
    KDAG_ANCESTORS, but only the ones that pushed are in its volume. Before, each was a volume and a mount."""
    tasks: list[dict[str, Any]] = []
    for layer in range(9):
        for i in range(50):
            task: dict[str, Any] = {"id": f"l{layer}t{i}", "command": ["true"]}
            if layer:
                task["upstream"] = [f"l{layer - 1}t{(i + j) % 50}" for j in range(8)]
            tasks.append(task)
    dag = DAGSpec.model_validate({"tasks": tasks})
    run = RunInfo("ns", "d", "d-1", "uid-run", datetime(2026, 1, 1, tzinfo=UTC), dag)

    def render(pushed: dict[str, set[str]]) -> dict[str, Any]:
        return render_task_pod(
            run=run,
            task=dag.resolved_task("l8t0", "runner"),
            taskrun_name="t",
            taskrun_uid="u",
            attempt=1,
            settings=ControllerSettings(),
            pushed=pushed,
        )

    quiet = render({})
    env = {e["name"]: e.get("value") for e in quiet["spec"]["containers"][0]["env"]}
    assert len(json.loads(str(env["KDAG_ANCESTORS"]))) == 128
    assert all(not v["name"].startswith("xcom-in") for v in quiet["spec"]["volumes"])
    one = render({"l7t3": {"return_value"}, "l0t0": {"return_value"}})  # l0t0 is beyond the 128 nearest
    (xcom_in,) = [v for v in one["spec"]["volumes"] if v["name"] == "xcom-in"]
    assert [s["configMap"]["name"] for s in xcom_in["projected"]["sources"]] == [
        names.xcom_configmap_name("d-1", "l7t3")
    ]
    size = len(json.dumps(quiet, separators=(",", ":")))
    assert size < 8_000, size  # 128 ConfigMap volumes and mounts took about 25 kB of it
