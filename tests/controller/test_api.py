"""The resource models, the CRDs generated from them, and manifest validation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kdag.api import DAG, DAGRun, DAGSpec, TaskRun, TriggerRule
from kdag.api.crd import crds, structural_schema
from kdag.api.generate import main as generate_main
from kdag.api.generate import rendered_files
from kdag.api.models import DAGStatus, TaskDefaults, resolve_task
from kdag.api.validation import check_dag_spec, dag_spec_problems, manifest_problems

ROOT = Path(__file__).resolve().parents[2]

LESSON: dict[str, Any] = {
    "apiVersion": "kdag.dev/v1alpha1",
    "kind": "DAG",
    "metadata": {"name": "etl-dag"},
    "spec": {
        "dagId": "etl_dag",
        "params": {"value": "some value"},
        "defaults": {"retries": 2, "retryDelaySeconds": 5},
        "tasks": [
            {
                "id": "hello_task",
                "python": {
                    "source": "def hello_everyone(**kwargs):\n"
                    "    kwargs['ti'].xcom_push(key='execution_time', value=kwargs['ds'])\n"
                    "    return 'hello world'\n",
                    "callable": "hello_everyone",
                },
            },
            {
                "id": "goodbye_task",
                "upstream": ["hello_task"],
                "retries": 0,
                "triggerRule": "all_done",
                "python": {"source": "def f(**k):\n    return 1\n", "callable": "f"},
                "xcomInputs": [{"env": "EXEC_TIME", "task": "hello_task", "key": "execution_time"}],
            },
        ],
    },
}


def spec_with(*tasks: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"tasks": list(tasks), **fields}


def cmd(task_id: str, *upstream: str, **fields: Any) -> dict[str, Any]:
    return {"id": task_id, "command": ["true"], "upstream": list(upstream), **fields}


def test_round_trip_keeps_the_yaml_form() -> None:
    dag = DAG.model_validate(LESSON)
    assert dag.spec.tasks[1].trigger_rule == TriggerRule.ALL_DONE
    assert dag.spec.tasks[1].xcom_inputs is not None
    assert dag.spec.tasks[1].xcom_inputs[0].key == "execution_time"
    assert dag.spec.to_kube() == LESSON["spec"] | {
        "tasks": [
            LESSON["spec"]["tasks"][0],
            {
                **LESSON["spec"]["tasks"][1],
                "xcomInputs": [{"env": "EXEC_TIME", "task": "hello_task", "key": "execution_time"}],
            },
        ]
    }
    assert DAGSpec.model_validate(dag.spec.to_kube()) == dag.spec


def test_resolved_task_applies_defaults_then_builtins() -> None:
    spec = DAG.model_validate(LESSON).spec
    hello = spec.resolved_task("hello_task", "runner:1")
    assert (hello.image, hello.retries, hello.retry_delay_seconds, hello.max_retry_delay_seconds) == (
        "runner:1",
        2,
        5,
        300,
    )
    assert hello.trigger_rule == TriggerRule.ALL_SUCCESS
    goodbye = spec.resolved_task("goodbye_task", "runner:1")
    assert goodbye.retries == 0  # an explicit 0 beats the default
    assert goodbye.trigger_rule == TriggerRule.ALL_DONE
    bare = resolve_task(spec.tasks[0], TaskDefaults(env=[{"name": "A", "value": "1"}]), "img")  # type: ignore[list-item]
    assert bare.retries == 0
    assert bare.retry_delay_seconds == 1
    assert [e.name for e in bare.env or []] == ["A"]
    with pytest.raises(KeyError, match="'nope'"):
        spec.task("nope")


def test_status_models_ignore_fields_others_write() -> None:
    status = DAGStatus.model_validate({"observedGeneration": 2, "kopf": {"progress": {}}})
    assert status.observed_generation == 2


def test_dagrun_and_taskrun_models() -> None:
    run = DAGRun.model_validate(
        {
            "metadata": {"name": "r"},
            "spec": {"dagRef": {"name": "etl-dag"}, "logicalDate": "2026-01-01T00:00:00Z"},
        }
    )
    assert run.spec.logical_date is not None and run.spec.logical_date.year == 2026
    taskrun = TaskRun.model_validate(
        {
            "metadata": {"name": "r-t"},
            "spec": {"dagRun": "r", "taskId": "t", "task": {"id": "t", "command": ["true"]}},
            "status": {"phase": "UpstreamFailed", "attempts": 0, "xcomKeys": []},
        }
    )
    assert taskrun.status is not None and taskrun.status.phase == "UpstreamFailed"


# --- CRDs ------------------------------------------------------------------------------------------


def test_generated_files_on_disk_are_up_to_date() -> None:
    for relative, content in rendered_files().items():
        path = ROOT / relative
        assert path.exists(), f"{relative} missing: run python -m kdag.api.generate"
        assert path.read_text() == content, f"{relative} is stale: run python -m kdag.api.generate"
    assert generate_main(["--check", "--root", str(ROOT)]) == 0


def test_generate_writes_and_check_detects_drift(tmp_path: Path) -> None:
    assert generate_main(["--check", "--root", str(tmp_path)]) == 1
    assert generate_main(["--root", str(tmp_path)]) == 0
    assert generate_main(["--check", "--root", str(tmp_path)]) == 0
    (tmp_path / "crds" / "kdag.dev_dags.yaml").write_text("stale")
    assert generate_main(["--check", "--root", str(tmp_path)]) == 1


def walk(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, schema
    for name, prop in schema.get("properties", {}).items():
        yield from walk(prop, f"{path}.{name}")
    if "items" in schema:
        yield from walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from walk(schema["additionalProperties"], f"{path}{{}}")


@pytest.mark.parametrize("crd", crds(), ids=lambda c: c["metadata"]["name"])
def test_crd_schemas_are_structural_and_described(crd: dict[str, Any]) -> None:
    version = crd["spec"]["versions"][0]
    schema = version["schema"]["openAPIV3Schema"]
    parts = [part for part in ("spec", "status") if part in schema["properties"]]
    for part in parts:
        for path, node in walk(schema["properties"][part], part):
            assert "$ref" not in node and "anyOf" not in node and "oneOf" not in node, path
            assert (
                "type" in node
                or node.get("x-kubernetes-preserve-unknown-fields")
                or node.get("x-kubernetes-int-or-string")
            ), path
            if path.count(".") and not path.endswith(("[]", "}")):
                assert node.get("description"), f"{path} has no description"
            if node.get("type") == "array":
                assert "maxItems" in node, f"{path} is an unbounded list"
            if node.get("type") == "string" and "enum" not in node and node.get("format") != "date-time":
                assert "maxLength" in node, f"{path} is an unbounded string"
    # A DAGVersion has no status: its spec is all there is.
    assert version.get("subresources") == ({"status": {}} if "status" in parts else None)
    assert crd["spec"]["names"]["categories"] == ["kdag"]


def test_crd_names_columns_and_rules() -> None:
    by_kind = {c["spec"]["names"]["kind"]: c for c in crds()}
    assert {k: c["spec"]["names"]["shortNames"] for k, c in by_kind.items()} == {
        "DAG": ["dag"],
        "DAGRun": ["dr"],
        "TaskRun": ["tr"],
        "DAGVersion": ["dagv"],
    }

    def columns(kind: str) -> list[str]:
        return [
            c["name"]
            for c in by_kind[kind]["spec"]["versions"][0]["additionalPrinterColumns"]
            if not c.get("priority")
        ]

    assert columns("DAG") == ["Tasks", "Schedule", "Ready", "Age"]
    assert columns("DAGRun") == ["DAG", "Phase", "Progress", "Age"]
    assert columns("TaskRun") == ["Task", "Index", "Phase", "Attempts", "Pod", "Age"]
    assert columns("DAGVersion") == ["DAG", "Tasks", "Age"]
    spec = by_kind["DAG"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    messages = [rule["message"] for rule in spec["x-kubernetes-validations"]]
    # Whoever applies a DAG last owns its whole spec: server-side apply never merges two managers' task lists.
    assert spec["x-kubernetes-map-type"] == "atomic"
    # Unique task ids: the API server enforces the keys of a map-type list (and names the duplicate).
    assert spec["properties"]["tasks"]["x-kubernetes-list-type"] == "map"
    assert spec["properties"]["tasks"]["x-kubernetes-list-map-keys"] == ["id"]
    # The CRD holds DAGs of thousands of tasks: whole-graph rules are the webhook's, not CEL's (O(n^2)).
    assert spec["properties"]["tasks"]["maxItems"] == 10000
    assert "every upstream id must name a task of this DAG" not in messages
    assert "tasks with python.fromDagFile need spec.pythonFile" in messages
    task = spec["properties"]["tasks"]["items"]
    assert task["properties"]["id"]["maxLength"] == 63
    assert task["properties"]["id"]["pattern"] == "^[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?$"
    assert any("exactly one of python or command" in r["message"] for r in task["x-kubernetes-validations"])
    assert spec["properties"]["params"]["x-kubernetes-preserve-unknown-fields"] is True
    limits = task["properties"]["resources"]["properties"]["limits"]
    assert limits["additionalProperties"] == {"x-kubernetes-int-or-string": True}
    status = by_kind["DAGRun"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    assert "x-kubernetes-validations" not in yaml.safe_dump(status)
    assert task["properties"]["triggerRule"]["enum"] == [rule.value for rule in TriggerRule]
    assert len(TriggerRule) == 13
    assert {task["properties"][f]["type"] for f in ("setup", "teardown", "failRunOnFailure")} == {"boolean"}
    task_rules = [r["message"] for r in task["x-kubernetes-validations"]]
    assert "a task may be a setup or a teardown, not both" in task_rules
    assert "failRunOnFailure is for teardown tasks only" in task_rules
    # A DAGVersion never changes; its DAG spec was validated as a DAG, so only the version's own rules run.
    version = by_kind["DAGVersion"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert "status" not in version["properties"]
    version_rules = [rule["rule"] for rule in version["properties"]["spec"]["x-kubernetes-validations"]]
    assert version_rules == ["self == oldSelf", "self.taskCount == size(self.dag.tasks)"]
    assert yaml.safe_dump(version).count("x-kubernetes-validations") == 1
    assert version["properties"]["spec"]["properties"]["dag"]["x-kubernetes-map-type"] == "atomic"
    taskrun = by_kind["TaskRun"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    skip = taskrun["properties"]["skipTasks"]
    assert (skip["x-kubernetes-list-type"], skip["maxItems"], skip["items"]["maxLength"]) == ("set", 2048, 63)


def test_structural_schema_keeps_non_null_defaults() -> None:
    schema = structural_schema(DAGSpec)
    xcom_input = schema["properties"]["tasks"]["items"]["properties"]["xcomInputs"]["items"]
    assert xcom_input["properties"]["key"]["default"] == "return_value"
    assert "default" not in schema["properties"]["schedule"]


# --- validation ------------------------------------------------------------------------------------


def test_valid_lesson_has_no_problems() -> None:
    assert dag_spec_problems(LESSON["spec"]) == []
    assert manifest_problems(LESSON) == []


def test_cycle_is_named() -> None:
    problems = dag_spec_problems(spec_with(cmd("a", "c"), cmd("b", "a"), cmd("c", "b")))
    assert problems == ["spec.tasks: tasks form a cycle: a -> b -> c -> a"]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (spec_with(cmd("a"), cmd("a")), "task 'a' (spec.tasks[1].id): task id is used by more than one task"),
        (spec_with(cmd("a", "zz")), "task 'a' (spec.tasks[0].upstream[0]): 'zz' is not a task of this DAG"),
        (spec_with(cmd("a", "a")), "task 'a' (spec.tasks[0].upstream[0]): a task may not list itself"),
        (
            spec_with({"id": "a"}),
            "task 'a' (spec.tasks[0]): a task needs exactly one of python or command",
        ),
        (
            spec_with({"id": "a", "command": ["x"], "python": {"fromDagFile": True}}),
            "task 'a' (spec.tasks[0]): a task needs exactly one of python or command",
        ),
        (
            spec_with({"id": "a", "python": {"source": "x"}}),
            "task 'a' (spec.tasks[0].python): python needs either source and callable, or fromDagFile: true",
        ),
        (
            spec_with({"id": "a", "python": {"fromDagFile": True}}),
            "task 'a' (spec.tasks[0].python.fromDagFile): tasks with python.fromDagFile need spec.pythonFile",
        ),
        (
            spec_with(cmd("a"), cmd("b"), cmd("c", "a", xcomInputs=[{"env": "X", "task": "b"}])),
            "task 'c' (spec.tasks[2].xcomInputs[0].task): 'b' is not an upstream ancestor of this task"
            " (add it to upstream)",
        ),
        (
            spec_with(cmd("a"), cmd("b", "a", xcomInputs=[{"env": "KDAG_X", "task": "a"}])),
            "task 'b' (spec.tasks[1].xcomInputs[0].env):"
            " 'KDAG_X' may not start with KDAG_ (kdag's own variables)",
        ),
        (
            spec_with(cmd("bad id")),
            "task 'bad id' (spec.tasks[0].id): 'bad id' is not valid: a task id has letters, digits, '_',"
            " '.', '-', and starts and ends with a letter or digit (it is a label value)",
        ),
        (
            spec_with(cmd("a", upstrem=["b"])),
            "task 'a' (spec.tasks[0].upstrem): unknown field (check its spelling and case)",
        ),
        (
            spec_with(cmd("a", retries=-1)),
            "task 'a' (spec.tasks[0].retries): Input should be greater than or equal to 0 (got -1)",
        ),
        (
            spec_with(cmd("a", triggerRule="sometimes")),
            "task 'a' (spec.tasks[0].triggerRule): Input should be 'all_success', 'all_failed', 'all_done',"
            " 'all_done_min_one_success', 'all_done_setup_success', 'all_skipped', 'one_success',"
            " 'one_failed', 'one_done', 'none_failed', 'none_failed_min_one_success', 'none_skipped'"
            " or 'always' (got 'sometimes')",
        ),
        (
            spec_with(cmd("a", setup=True, teardown=True)),
            "task 'a' (spec.tasks[0].teardown): a task may be a setup or a teardown, not both",
        ),
        (
            spec_with(cmd("a", failRunOnFailure=True)),
            "task 'a' (spec.tasks[0].failRunOnFailure): failRunOnFailure is for teardown tasks only",
        ),
        (
            spec_with(cmd("s", setup=True), cmd("w", "s", triggerRule="all_done")),
            "task 'w' (spec.tasks[1].triggerRule): a task directly after a setup task ('s') must be a"
            " teardown or use the trigger rule all_success, not all_done",
        ),
        (
            spec_with(cmd("s", setup=True), cmd("w", "s"), defaults={"triggerRule": "none_failed"}),
            "task 'w' (spec.tasks[1].triggerRule): a task directly after a setup task ('s') must be a"
            " teardown or use the trigger rule all_success, not none_failed",
        ),
        (
            spec_with(cmd("a"), cmd("b", "a", "a")),
            "task 'b' (spec.tasks[1].upstream[1]): 'a' is listed more than once",
        ),
        (
            spec_with(cmd("a", env=[{"name": "X", "value": "1"}, {"name": "X"}])),
            "task 'a' (spec.tasks[0].env[1].name): 'X' is set more than once",
        ),
        (
            spec_with(cmd("a"), schedule="every day"),
            "spec.schedule: 'every day' is not a cron expression: give 5 fields (minute hour day month"
            " weekday) or a preset such as '@daily' or '@once'",
        ),
        (
            spec_with(cmd("a"), schedule="0 0 * * * 30"),
            "spec.schedule: '0 0 * * * 30' is not a cron expression: give 5 fields (minute hour day month"
            " weekday) or a preset such as '@daily' or '@once'",
        ),
        (
            spec_with(cmd("a"), cmd("b", "a", xcomInputs=[{"env": "X", "task": "b"}])),
            "task 'b' (spec.tasks[1].xcomInputs[0].task):"
            " a task may not read its own XComs (name an upstream task)",
        ),
        (
            spec_with(cmd("a"), cmd("b", "a", xcomInputs=[{"env": "X", "task": "zz"}])),
            "task 'b' (spec.tasks[1].xcomInputs[0].task): 'zz' is not a task of this DAG",
        ),
        (
            spec_with(cmd("a"), defaults={"env": [{"name": "KDAG_DAG_ID", "value": "x"}]}),
            "spec.defaults.env[0].name: 'KDAG_DAG_ID' may not start with KDAG_ (kdag's own variables)",
        ),
        (
            spec_with(cmd("a"), defaults={"env": [{"name": "X", "value": "1"}, {"name": "X", "value": "2"}]}),
            "spec.defaults.env[1].name: 'X' is set more than once",
        ),
        (
            spec_with(
                {"id": "a", "python": {"fromDagFile": True}, "args": []},
                pythonFile={"configMap": "c", "key": "k"},
            ),
            "task 'a' (spec.tasks[0].args): args need a command",
        ),
        # Strict JSON types, as the API server reads them: no "3" for an integer, no "true" for a boolean.
        (
            spec_with(cmd("a", retries="3")),
            "task 'a' (spec.tasks[0].retries): Input should be a valid integer (got '3')",
        ),
        (
            spec_with(
                {"id": "a", "python": {"fromDagFile": "true"}}, pythonFile={"configMap": "c", "key": "k"}
            ),
            "task 'a' (spec.tasks[0].python.fromDagFile): Input should be a valid boolean (got 'true')",
        ),
        (
            spec_with(cmd("..")),
            "task '..' (spec.tasks[0].id): '..' is not valid: a task id has letters, digits, '_', '.', '-',"
            " and starts and ends with a letter or digit (it is a label value)",
        ),
        (
            spec_with(cmd("a", env=[{"name": "KDAG_TASK_ID", "value": "x"}])),
            "task 'a' (spec.tasks[0].env[0].name):"
            " 'KDAG_TASK_ID' may not start with KDAG_ (kdag's own variables)",
        ),
        ({"tasks": []}, "spec.tasks: List should have at least 1 item after validation, not 0"),
    ],
)
def test_problems_name_field_and_task(spec: dict[str, Any], expected: str) -> None:
    assert expected in dag_spec_problems(spec)


@pytest.mark.parametrize("rule", list(TriggerRule))
def test_every_airflow_trigger_rule_is_accepted(rule: TriggerRule) -> None:
    assert dag_spec_problems(spec_with(cmd("a"), cmd("b", "a", triggerRule=rule.value))) == []


def test_setup_and_teardown_dags_are_accepted() -> None:
    spec = spec_with(
        cmd("create", setup=True),
        cmd("query", "create"),
        cmd("delete", "create", "query", teardown=True, failRunOnFailure=True),
        cmd("other", "delete", triggerRule="all_done"),
        defaults={"triggerRule": "all_done"},  # not a teardown's, and query sets its own
    )
    assert dag_spec_problems({**spec, "defaults": {}}) == []
    assert dag_spec_problems(spec) == [
        "task 'query' (spec.tasks[1].triggerRule): a task directly after a setup task ('create') must be a"
        " teardown or use the trigger rule all_success, not all_done"
    ]
    model, _ = check_dag_spec({**spec, "defaults": {}})
    assert model is not None
    assert [t.to_kube().get("setup") for t in model.tasks] == [True, None, None, None]
    assert model.tasks[2].to_kube()["failRunOnFailure"] is True


def test_every_problem_is_reported_not_only_the_first() -> None:
    problems = dag_spec_problems(
        spec_with(
            {
                "id": "a",
                "command": ["x"],
                "python": {"source": "s", "callable": "f"},
                "env": [{"name": "KDAG_X"}],
            },
            cmd("b", "zz"),
            cmd("a"),
        )
    )
    assert problems == [
        "task 'a' (spec.tasks[0]): a task needs exactly one of python or command",
        "task 'a' (spec.tasks[0].env[0].name): 'KDAG_X' may not start with KDAG_ (kdag's own variables)",
        "task 'a' (spec.tasks[2].id): task id is used by more than one task",
        "task 'b' (spec.tasks[1].upstream[0]): 'zz' is not a task of this DAG",
    ]


@pytest.mark.parametrize(
    "schedule",
    [
        "@once",
        "@daily",
        "@hourly",
        "@weekly",
        "@monthly",
        "@yearly",
        "@annually",
        "@midnight",
        "*/15 * * * *",
        "0 6 * * MON-FRI",
    ],
)
def test_schedules_kdag_runs_are_accepted(schedule: str) -> None:
    assert dag_spec_problems(spec_with(cmd("a"), schedule=schedule)) == []


def test_yaml_values_are_read_as_kubectl_sends_them() -> None:
    """Dates in params become text and 2.0 an integer, as in the JSON kubectl sends (no refusal)."""
    import datetime

    model, problems = check_dag_spec(
        spec_with(cmd("a", retries=2.0), params={"start": datetime.date(2024, 1, 2)})
    )
    assert problems == []
    assert model is not None and model.params == {"start": "2024-01-02"} and model.tasks[0].retries == 2


def test_check_dag_spec_returns_the_model() -> None:
    model, problems = check_dag_spec(spec_with(cmd("a"), schedule="@daily"))
    assert model is not None and model.schedule == "@daily"
    assert problems == []
    model, problems = check_dag_spec({"tasks": "nope"})
    assert model is None and problems


def test_manifest_problems() -> None:
    assert [str(p) for p in manifest_problems({**LESSON, "metadata": {"name": "Bad_Name"}})] == [
        "metadata.name: 'Bad_Name' is not a valid name (lower-case letters, digits, '-')"
    ]
    run = {"apiVersion": "kdag.dev/v1alpha1", "kind": "DAGRun", "metadata": {"name": "r"}, "spec": {}}
    assert [str(p) for p in manifest_problems(run)] == ["spec.dagRef: Field required"]
    assert [str(p) for p in manifest_problems({**run, "kind": "Job"})] == [
        "kind: expected DAG or DAGRun, got 'Job'"
    ]


def test_crds_use_only_openapi_v3_0_keywords_the_api_server_takes() -> None:
    """pydantic's `lt`/`gt` give JSON Schema 2020's numeric exclusiveMaximum, which a CRD refuses."""
    for path in (Path(__file__).resolve().parents[2] / "crds").glob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        assert "exclusiveMaximum: " not in text.replace("exclusiveMaximum: true", ""), path.name
        assert "exclusiveMinimum: " not in text.replace("exclusiveMinimum: true", ""), path.name
