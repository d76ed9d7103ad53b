"""Dynamic task mapping in the controller's pure parts: the `map` field, length expressions
(`mapping.map_length`, after Airflow 3's `get_task_map_length`), `graph.decide`'s expansion (Skipped for 0,
UpstreamFailed for an unknown length, Failed over maxLength, instances started and retried one by one,
trigger rules over every instance), names, manifests, the downstream pod's projected volume, and the
lengths a report carries through `attempts` and `settle` (docs/design.md, "Mapped tasks")."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kdag import graph, manifests, mapping, names, policy
from kdag.api.models import (
    MAX_MAP_LENGTH,
    DAGSpec,
    MapLength,
    RunPhase,
    TaskPhase,
    TaskRunStatus,
    TaskSpec,
)
from kdag.api.validation import check_dag_spec
from kdag.attempts import Termination, attempt_result
from kdag.render import RunInfo, render_task_pod
from kdag.settings import ControllerSettings
from kdag.settle import settle
from kdag.task_state import TaskState
from kdag_runner.airflow.mapping_checks import MAX_MAP_LENGTH as RUNNER_MAX_MAP_LENGTH

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
P = TaskPhase


def task(task_id: str, *upstream: str, **fields: Any) -> TaskSpec:
    return TaskSpec.model_validate({"id": task_id, "command": ["true"], "upstream": list(upstream), **fields})


def mapped(task_id: str, length: dict[str, Any], *upstream: str, **fields: Any) -> TaskSpec:
    return task(task_id, *upstream, map={"length": length}, **fields)


def xcom(task_id: str, key: str = "return_value") -> dict[str, Any]:
    return {"xcom": {"task": task_id, "key": key}}


def ok(**lengths: int) -> TaskState:
    """A Succeeded task that pushed lists or dicts of these lengths."""
    return TaskState(P.SUCCEEDED, 1, xcom_lengths=lengths, xcom_keys=frozenset(lengths))


def length_of(expression: dict[str, Any], **known: int) -> int | None:
    return mapping.map_length(MapLength.model_validate(expression), lambda t, k: known.get(f"{t}.{k}"))


# -- the model and its limits -------------------------------------------------------------------------


def test_the_cap_is_airflows_max_map_length_in_controller_and_runner() -> None:
    assert MAX_MAP_LENGTH == RUNNER_MAX_MAP_LENGTH == 1024


def test_a_length_names_exactly_one_kind() -> None:
    with pytest.raises(ValueError):
        MapLength.model_validate({})
    MapLength.model_validate({"literal": 3})
    spec = task("m", "a", map={"length": {"zip": [xcom("a"), {"literal": 2}], "fill": True}})
    assert spec.is_mapped and not task("a").is_mapped
    refs = MapLength.model_validate({"product": [xcom("a"), {"concat": [xcom("b", "k"), {"literal": 1}]}]})
    assert [(r.task, r.key) for r in refs.references()] == [("a", "return_value"), ("b", "k")]


def test_the_validator_wants_the_xcom_tasks_upstream() -> None:
    spec: dict[str, list[dict[str, Any]]] = {
        "tasks": [
            {"id": "a", "command": ["true"]},
            {"id": "m", "command": ["true"], "map": {"length": xcom("a")}},
        ]
    }
    model, problems = check_dag_spec(spec)
    assert [p.message for p in problems] == ["xcom task 'a' must be an upstream task of the mapped task"]
    spec["tasks"][1]["upstream"] = ["a"]
    model, problems = check_dag_spec(spec)
    assert problems == [] and model is not None and model.task("m").map is not None


# -- lengths --------------------------------------------------------------------------------------------


def test_lengths_as_airflow_computes_them() -> None:
    assert length_of({"literal": 4}) == 4
    assert length_of(xcom("a"), **{"a.return_value": 3}) == 3
    assert length_of(xcom("a")) is None
    assert length_of({"product": [{"literal": 2}, xcom("a")]}, **{"a.return_value": 3}) == 6
    assert length_of({"zip": [{"literal": 2}, xcom("a")]}, **{"a.return_value": 3}) == 2
    assert length_of({"zip": [{"literal": 2}, xcom("a")], "fill": True}, **{"a.return_value": 3}) == 3
    assert length_of({"concat": [{"literal": 2}, xcom("a")]}, **{"a.return_value": 3}) == 5
    nested = {
        "product": [{"zip": [{"literal": 2}, {"literal": 5}]}, {"concat": [{"literal": 1}, xcom("b", "k")]}]
    }
    assert length_of(nested, **{"b.k": 2}) == 6
    # One unknown part makes the whole unknown (Airflow: not fully populated).
    assert length_of({"concat": [{"literal": 2}, xcom("a")]}) is None


# -- decide: expansion ------------------------------------------------------------------------------------

DAG = [task("make"), mapped("m", xcom("make"), "make"), task("reduce", "m")]


def test_a_mapped_task_waits_for_its_upstream_then_expands_into_its_instances() -> None:
    waiting = graph.decide(DAG, {"make": TaskState(P.RUNNING, 1)}, NOW)
    assert waiting.start == () and waiting.start_instances == ()
    decision = graph.decide(DAG, {"make": ok(return_value=3)}, NOW)
    assert decision.start == ()
    assert decision.start_instances == (("m", 0), ("m", 1), ("m", 2))
    assert decision.lengths == {"m": 3}
    assert decision.phases["m"] == P.RUNNING
    assert decision.instance_phases == {"m": {P.RUNNING: 3}}
    assert decision.progress == "1/5"  # make, 3 instances, reduce


def test_instances_that_started_are_not_started_again_and_missing_ones_are() -> None:
    # A pass that stopped after making 2 of the 3 instances: the next one makes the third.
    instances = {"m": {0: TaskState(P.RUNNING, 1), 1: TaskState(P.SUCCEEDED, 1)}}
    decision = graph.decide(DAG, {"make": ok(return_value=3)}, NOW, instances=instances)
    assert decision.start_instances == (("m", 2),)
    assert decision.instance_phases == {"m": {P.RUNNING: 2, P.SUCCEEDED: 1}}
    assert decision.progress == "2/5"


def test_downstream_waits_for_every_instance_and_runs_after_all_succeeded() -> None:
    states = {"make": ok(return_value=2)}
    half = {"m": {0: TaskState(P.SUCCEEDED, 1), 1: TaskState(P.RUNNING, 1)}}
    assert graph.decide(DAG, states, NOW, instances=half).start == ()
    done = {"m": {0: TaskState(P.SUCCEEDED, 1), 1: TaskState(P.SUCCEEDED, 1)}}
    decision = graph.decide(DAG, states, NOW, instances=done)
    assert decision.start == ("reduce",)
    assert decision.phases["m"] == P.SUCCEEDED
    assert decision.progress == "3/4"


@pytest.mark.parametrize(
    ("rule", "outcome"),
    [
        ("all_success", "upstream_failed"),
        ("one_failed", "start"),
        ("all_done", "start"),
        ("none_failed", "upstream_failed"),
        ("one_success", "start"),
        ("all_failed", "skipped"),
    ],
)
def test_trigger_rules_count_every_instance(rule: str, outcome: str) -> None:
    tasks = [task("make"), mapped("m", xcom("make"), "make"), task("after", "m", triggerRule=rule)]
    instances = {"m": {0: TaskState(P.SUCCEEDED, 1), 1: TaskState(P.FAILED, 1), 2: TaskState(P.SUCCEEDED, 1)}}
    decision = graph.decide(tasks, {"make": ok(return_value=3)}, NOW, instances=instances)
    found = {
        "start": "after" in decision.start,
        "upstream_failed": "after" in decision.upstream_failed,
        "skipped": "after" in decision.skipped,
    }
    assert found[outcome], decision
    assert decision.phases["m"] == P.FAILED


def test_one_failed_instance_of_a_leaf_fails_the_run() -> None:
    tasks = [task("make"), mapped("m", xcom("make"), "make")]
    instances = {"m": {0: TaskState(P.SUCCEEDED, 1), 1: TaskState(P.FAILED, 1)}}
    decision = graph.decide(tasks, {"make": ok(return_value=2)}, NOW, instances=instances)
    assert decision.phase == RunPhase.FAILED
    instances = {"m": {0: TaskState(P.SUCCEEDED, 1), 1: TaskState(P.SKIPPED, 1)}}
    assert (
        graph.decide(tasks, {"make": ok(return_value=2)}, NOW, instances=instances).phase
        == RunPhase.SUCCEEDED
    )


def test_an_empty_list_skips_the_mapped_task_and_the_rule_skips_what_follows() -> None:
    decision = graph.decide(DAG, {"make": ok(return_value=0)}, NOW)
    assert decision.skipped == ("m", "reduce")
    assert decision.messages["m"] == "mapped over 0 elements"
    assert decision.lengths == {"m": 0}
    assert decision.phase == RunPhase.SUCCEEDED


def test_a_literal_empty_list_skips_at_once() -> None:
    decision = graph.decide([mapped("m", {"literal": 0})], {}, NOW)
    assert decision.skipped == ("m",) and decision.phase == RunPhase.SUCCEEDED


def test_an_unknown_length_is_upstream_failed_naming_the_xcom() -> None:
    # `make` pushed no list there (or its length was left out of the report), as Airflow's "missing upstream
    # values": the mapped task is upstream_failed.
    decision = graph.decide(DAG, {"make": ok(other=2)}, NOW)
    assert decision.upstream_failed == ("m", "reduce")
    assert "XCom 'return_value' of task 'make'" in decision.messages["m"]
    # all_done after a failed upstream: the rule holds, the length does not exist.
    tasks = [task("make"), mapped("m", xcom("make"), "make", triggerRule="all_done")]
    decision = graph.decide(tasks, {"make": TaskState(P.FAILED, 1)}, NOW)
    assert decision.upstream_failed == ("m",)


def test_more_instances_than_max_length_fail_the_mapped_task() -> None:
    decision = graph.decide(DAG, {"make": ok(return_value=1025)}, NOW)
    assert decision.failed == ("m",)
    assert decision.messages["m"] == "cannot expand into 1025 instances: more than max_map_length (1024)"
    assert decision.upstream_failed == ("reduce",)
    assert decision.phase == RunPhase.FAILED
    small = [task("m", map={"length": {"product": [{"literal": 5}, {"literal": 1}]}, "maxLength": 4})]
    assert graph.decide(small, {}, NOW).failed == ("m",)


def test_a_mapped_upstream_counts_the_instances_that_pushed_the_key() -> None:
    tasks = [task("make"), mapped("m", xcom("make"), "make"), mapped("again", xcom("m"), "m")]
    instances = {
        "m": {
            0: TaskState(P.SUCCEEDED, 1, xcom_keys=frozenset({"return_value"})),
            1: TaskState(P.SUCCEEDED, 1),  # pushed nothing: no value to map over
            2: TaskState(P.SUCCEEDED, 1, xcom_keys=frozenset({"return_value"})),
        }
    }
    decision = graph.decide(tasks, {"make": ok(return_value=3)}, NOW, instances=instances)
    assert decision.start_instances == (("again", 0), ("again", 1))
    assert decision.lengths == {"m": 3, "again": 2}


def test_instances_retry_on_their_own() -> None:
    later = NOW + timedelta(seconds=30)
    instances = {
        "m": {
            0: TaskState(P.RETRYING, 1, next_attempt_at=NOW - timedelta(seconds=1)),
            1: TaskState(P.RETRYING, 1, next_attempt_at=later),
            2: TaskState(P.SUCCEEDED, 1),
        }
    }
    decision = graph.decide(DAG, {"make": ok(return_value=3)}, NOW, instances=instances)
    assert decision.retry_instances == (("m", 0),)
    assert decision.retry == ()
    assert decision.wake_at == later


def test_a_mapped_task_marked_as_a_whole_stays_so() -> None:
    decision = graph.decide(DAG, {"make": ok(return_value=0), "m": TaskState(P.SKIPPED)}, NOW)
    assert decision.start_instances == () and decision.skipped == ("reduce",)


def test_a_branch_skip_request_skips_a_mapped_task_as_a_whole() -> None:
    tasks = [task("pick"), mapped("m", {"literal": 3}, "pick")]
    decision = graph.decide(tasks, {"pick": TaskState(P.SUCCEEDED, 1, skip_tasks=frozenset({"m"}))}, NOW)
    assert decision.skipped == ("m",) and decision.start_instances == ()


def test_instance_keys_round_trip() -> None:
    assert mapping.instance_key("grp.t", 12) == "grp.t[12]"
    assert mapping.split_instance_key("grp.t[12]") == ("grp.t", 12)
    assert mapping.split_instance_key("grp.t") == ("grp.t", None)
    plain, instances = mapping.split_states({"a": TaskState(P.RUNNING), "m[1]": TaskState(P.FAILED)})
    assert plain == {"a": TaskState(P.RUNNING)} and instances == {"m": {1: TaskState(P.FAILED)}}


# -- names, manifests, the guard ----------------------------------------------------------------------------


def test_instance_names_never_collide_with_another_tasks_and_keep_the_guard_shape() -> None:
    taskrun = names.taskrun_name("run-1", "t", 2)
    assert taskrun == f"run-1-t-2-{names.instance_hash('run-1', 't', 2)}"
    assert names.xcom_configmap_name("run-1", "t", 2) == taskrun
    uid = "8f14e45f-ceea-467f-a0e6-0123456789ab"
    assert names.pod_name("run-1", "t", 3, 2, run_uid=uid) == f"{taskrun}-8f14e45f-3"
    # Task "t-2" reads the same ("run-1-t-2-"), but the hash of (run, task, index) differs.
    assert names.taskrun_name("run-1", "t-2") != names.taskrun_name("run-1", "t", 2)
    assert names.labels("d", "run-1", "t", 2)[names.MAP_INDEX_LABEL] == "2"
    with pytest.raises(ValueError):
        names.taskrun_name("run-1", "t", -1)
    variables = {v["name"]: v["expression"] for v in policy.xcom_guard_policy()["spec"]["variables"]}
    assert 'startsWith(request.name + "-")' in variables["podSuffix"]  # `{configmap}-` starts the pod name


def test_an_instance_taskrun_carries_its_index() -> None:
    spec = task("m", map={"length": {"literal": 2}})
    manifest = manifests.taskrun_manifest("ns", "dag", "run-1", "uid", spec, 1)
    assert manifest["metadata"]["name"] == names.taskrun_name("run-1", "m", 1)
    assert manifest["metadata"]["labels"][names.MAP_INDEX_LABEL] == "1"
    assert manifest["spec"]["mapIndex"] == 1
    assert "mapIndex" not in manifests.taskrun_manifest("ns", "dag", "run-1", "uid", spec)["spec"]


# -- the pods ---------------------------------------------------------------------------------------------

SETTINGS = ControllerSettings(runner_image="localhost/kdag-runner:dev")
RUN_DAG = DAGSpec.model_validate(
    {
        "pythonFile": {"configMap": "d-source", "key": "d.py"},
        "tasks": [
            {"id": "make", "python": {"fromDagFile": True}},
            {
                "id": "m",
                "python": {"fromDagFile": True},
                "upstream": ["make"],
                "map": {"length": xcom("make")},
            },
            {"id": "reduce", "python": {"fromDagFile": True}, "upstream": ["m"]},
        ],
    }
)
RUN = RunInfo(namespace="ns", dag_name="d", name="d-run", uid="uid", logical_date=NOW, dag=RUN_DAG)


def pod(task_id: str, **kwargs: Any) -> dict[str, Any]:
    return render_task_pod(
        run=RUN,
        task=RUN_DAG.resolved_task(task_id, SETTINGS.runner_image),
        taskrun_name=names.taskrun_name(RUN.name, task_id, kwargs.get("map_index")),
        taskrun_uid="uid-tr",
        attempt=1,
        settings=SETTINGS,
        **kwargs,
    )


def env_of(manifest: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value") for e in manifest["spec"]["containers"][0]["env"]}


def test_an_instance_pod_knows_its_index_and_writes_its_own_configmap() -> None:
    manifest = pod("m", map_index=3)
    assert manifest["metadata"]["name"] == names.pod_name("d-run", "m", 1, 3, run_uid=RUN.uid)
    assert manifest["metadata"]["labels"][names.MAP_INDEX_LABEL] == "3"
    env = env_of(manifest)
    assert env["KDAG_MAP_INDEX"] == "3"
    assert env["KDAG_XCOM_CONFIGMAP"] == names.xcom_configmap_name("d-run", "m", 3)
    assert "KDAG_MAPPED" not in env
    # The guard: the pod name minus "-{run uid tag}-{attempt}" is the ConfigMap it writes.
    assert manifest["metadata"]["name"] == env["KDAG_XCOM_CONFIGMAP"] + f"-{names.run_uid_tag(RUN.uid)}-1"


def xcom_in_sources(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The sources of the pod's one XCom volume, mounted at /kdag/xcom/in."""
    (mount,) = [
        m for m in manifest["spec"]["containers"][0]["volumeMounts"] if m["mountPath"] == "/kdag/xcom/in"
    ]
    (volume,) = [v for v in manifest["spec"]["volumes"] if v["name"] == mount["name"]]
    return list(volume["projected"]["sources"])


def test_downstream_sees_each_instance_that_pushed_in_the_one_projected_volume() -> None:
    manifest = pod(
        "reduce",
        mapped={"m": [["return_value"], [], ["return_value", "-a.2fb", "__context"]]},
        pushed={"make": {"return_value"}},
    )
    env = env_of(manifest)
    assert json.loads(env["KDAG_MAPPED"]) == {"m": 3}
    sources = xcom_in_sources(manifest)
    # make is no ancestor of reduce but through m; instance 1 pushed nothing, so it has no source.
    names_ = [names.xcom_configmap_name("d-run", "m", i) for i in (0, 2)]
    assert [s["configMap"]["name"] for s in sources] == [names.xcom_configmap_name("d-run", "make"), *names_]
    assert all(s["configMap"]["optional"] for s in sources)
    assert sources[2]["configMap"]["items"] == [
        {"key": "-a.2fb", "path": "m/2/-a.2fb"},
        {"key": "__context", "path": "m/2/__context"},
        {"key": "return_value", "path": "m/2/return_value"},
        {"key": ".types", "path": "m/2/.types"},
    ]
    assert sources[0]["configMap"]["items"] == [
        {"key": "return_value", "path": "make/return_value"},
        {"key": ".types", "path": "make/.types"},
        {"key": "__context", "path": "make/__context"},
    ]


def test_a_mapped_ancestor_without_instances_shows_nothing() -> None:
    manifest = pod("reduce", mapped={"m": []}, pushed={"make": {"return_value"}})
    assert json.loads(env_of(manifest)["KDAG_MAPPED"]) == {"m": 0}
    assert [s["configMap"]["name"] for s in xcom_in_sources(manifest)] == [
        names.xcom_configmap_name("d-run", "make")
    ]


# -- reports: lengths and names through attempts and settle ------------------------------------------------


def test_a_success_report_gives_lengths_and_the_rendered_map_index() -> None:
    report = json.dumps(
        {
            "xcomKeys": ["return_value"],
            "bytes": 9,
            "xcomLengths": {"return_value": 3, "bad": "x", "neg": -1},
            "renderedMapIndex": "colour red",
        }
    )
    result = attempt_result(Termination(0, report))
    assert result.succeeded
    assert dict(result.xcom_lengths) == {"return_value": 3}
    assert result.rendered_map_index == "colour red"
    assert dict(attempt_result(Termination(0, json.dumps({"xcomKeys": [], "bytes": 0}))).xcom_lengths) == {}


def test_settle_keeps_lengths_in_the_status_and_the_state() -> None:
    task_spec = RUN_DAG.resolved_task("make", SETTINGS.runner_image)
    manifest = render_task_pod(
        run=RUN, task=task_spec, taskrun_name="d-run-make", taskrun_uid="u", attempt=1, settings=SETTINGS
    )
    report = json.dumps({"xcomKeys": ["return_value"], "bytes": 9, "xcomLengths": {"return_value": 4}})
    manifest["status"] = {
        "phase": "Succeeded",
        "containerStatuses": [{"name": "task", "state": {"terminated": {"exitCode": 0, "message": report}}}],
    }
    running = TaskRunStatus.model_validate({"phase": "Running", "attempts": 1, "podName": "d-run-make-1"})
    outcome = settle(running, {1: manifest}, task_spec, NOW, run_name=RUN.name)
    assert outcome.patch is not None and outcome.patch.xcom_lengths == {"return_value": 4}
    assert outcome.state is not None and dict(outcome.state.xcom_lengths) == {"return_value": 4}
    assert outcome.state.xcom_keys == frozenset({"return_value"})
    # Later passes read them back from the status.
    final = TaskRunStatus.model_validate(
        {
            "phase": "Succeeded",
            "attempts": 1,
            "xcomKeys": ["return_value"],
            "xcomLengths": {"return_value": 4},
        }
    )
    again = settle(final, {1: manifest}, task_spec, NOW, run_name=RUN.name)
    assert again.state is not None and dict(again.state.xcom_lengths) == {"return_value": 4}


def test_a_vanished_instance_pod_is_named_with_its_index() -> None:
    spec = RUN_DAG.resolved_task("m", SETTINGS.runner_image)
    running = TaskRunStatus.model_validate({"phase": "Running", "attempts": 1})
    outcome = settle(running, {}, spec, NOW, run_name=RUN.name, map_index=4)
    assert outcome.patch is not None and names.taskrun_name("d-run", "m", 4) in (outcome.patch.message or "")


def test_a_mapped_upstream_still_running_has_no_length_yet() -> None:
    # one_success may hold while some instances run: Airflow's length is then unknown (upstream_failed).
    tasks = [
        task("make"),
        mapped("m", xcom("make"), "make"),
        mapped("again", xcom("m"), "m", triggerRule="one_success"),
    ]
    instances = {
        "m": {0: TaskState(P.SUCCEEDED, 1, xcom_keys=frozenset({"return_value"})), 1: TaskState(P.RUNNING, 1)}
    }
    decision = graph.decide(tasks, {"make": ok(return_value=2)}, NOW, instances=instances)
    assert decision.upstream_failed == ("again",)
