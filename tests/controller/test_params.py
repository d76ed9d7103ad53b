"""`kdag.params`: JSON-schema checks of param values (the table Airflow's `Param` docs use), the precedence
of defaults, conf and run params, the DAG validator's param rules, and what `kdag compile` writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kdag import compile as compiler
from kdag import params
from kdag.api.models import DAGSpec
from kdag.api.validation import check_dag_spec, dag_spec_problems
from kdag.params import NOTSET, Declared


def task(task_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": task_id, "command": ["true"], **fields}


def spec(**fields: Any) -> DAGSpec:
    return DAGSpec.model_validate({"tasks": [task("a")], **fields})


# -- values against schemas ------------------------------------------------------------------------------

GOOD: list[tuple[Any, dict[str, Any]]] = [
    (5, {"type": "integer"}),
    (5.0, {"type": "integer"}),  # JSON Schema: a number with no fraction is an integer
    (None, {"type": ["null", "integer"]}),
    ("x", {"type": ["null", "string"]}),
    (3, {"type": "integer", "minimum": 3, "maximum": 3}),
    (2.5, {"type": "number", "exclusiveMinimum": 2, "exclusiveMaximum": 3}),
    (0.75, {"multipleOf": 0.25}),
    ("abc", {"type": "string", "minLength": 3, "maxLength": 3}),
    ("é", {"maxLength": 1}),  # code points, not bytes
    ("2026-11-21", {"format": "date"}),
    ("2026-11-21T10:00:00Z", {"format": "date-time"}),
    ("10:30:00", {"format": "time"}),
    ("a@example.org", {"format": "email"}),
    ("10.0.0.1", {"format": "ipv4"}),
    ("free text", {"format": "multiline"}),  # a UI hint: never checked
    ("b", {"enum": ["a", "b"]}),
    ("x", {"const": "x"}),
    ("x9", {"pattern": "^[a-z][0-9]$"}),
    (["a", "b"], {"type": "array", "items": {"type": "string"}, "minItems": 2, "uniqueItems": True}),
    ({"k": 1}, {"type": "object", "properties": {"k": {"type": "integer"}}, "required": ["k"]}),
    (1, {"anyOf": [{"type": "string"}, {"type": "integer"}]}),
    (1, {"oneOf": [{"type": "string"}, {"type": "integer"}]}),
    ("v", {"type": "string", "title": "T", "section": "S", "values_display": {"v": "V"}, "examples": ["v"]}),
    ({"x": [1]}, {}),
]

BAD: list[tuple[Any, dict[str, Any], str]] = [
    ("5", {"type": "integer"}, "'5' is not of type 'integer' (rule 'type')"),
    (None, {"type": "string"}, "None is not of type 'string' (rule 'type')"),
    (2, {"minimum": 3}, "2 is less than the minimum of 3 (rule 'minimum')"),
    (4, {"maximum": 3}, "4 is greater than the maximum of 3 (rule 'maximum')"),
    (2, {"exclusiveMinimum": 2}, "2 is less than or equal to the minimum of 2 (rule 'exclusiveMinimum')"),
    (0.3, {"multipleOf": 0.25}, "0.3 is not a multiple of 0.25 (rule 'multipleOf')"),
    ("ab", {"minLength": 3}, "'ab' is too short (rule 'minLength')"),
    ("abcd", {"maxLength": 3}, "'abcd' is too long (rule 'maxLength')"),
    ("2026-13-01", {"format": "date"}, "'2026-13-01' is not a 'date' (rule 'format')"),
    ("yesterday", {"format": "date-time"}, "'yesterday' is not a 'date-time' (rule 'format')"),
    ("25:00:00", {"format": "time"}, "'25:00:00' is not a 'time' (rule 'format')"),
    ("nobody", {"format": "email"}, "'nobody' is not a 'email' (rule 'format')"),
    ("c", {"enum": ["a", "b"]}, "'c' is not one of ['a', 'b'] (rule 'enum')"),
    ("y", {"const": "x"}, "'x' was expected (rule 'const')"),
    ("A9", {"pattern": "^[a-z][0-9]$"}, "'A9' does not match '^[a-z][0-9]$' (rule 'pattern')"),
    ([1], {"items": {"type": "string"}}, "at [0]: 1 is not of type 'string' (rule 'type')"),
    (
        {"k": "1"},
        {"properties": {"k": {"type": "integer"}}},
        "at k: '1' is not of type 'integer' (rule 'type')",
    ),
    ({}, {"required": ["k"]}, "'k' is a required property (rule 'required')"),
    (
        1.5,
        {"anyOf": [{"type": "string"}, {"type": "integer"}]},
        "is not valid under any of the given schemas",
    ),
    ("x", {"oneOf": [{"type": "string"}, {"maxLength": 3}]}, "is valid under each of"),
]


@pytest.mark.parametrize(("value", "schema"), GOOD)
def test_values_that_satisfy_their_schema(value: Any, schema: dict[str, Any]) -> None:
    assert params.value_problem(value, schema) is None


@pytest.mark.parametrize(("value", "schema", "message"), BAD)
def test_values_that_break_their_schema_name_the_rule(
    value: Any, schema: dict[str, Any], message: str
) -> None:
    why = params.value_problem(value, schema)
    assert why is not None and message in why
    assert "\n" not in why


def test_every_format_kdag_names_is_checked() -> None:
    for name in params.FORMATS:
        assert name in params._format_checker.checkers, f"format {name!r} is not checked"


def test_a_missing_value_and_an_overlong_message() -> None:
    assert params.value_problem(NOTSET, {"type": "string"}) == (
        "has no value: it has no default, so the run must give one (-p, params or conf)"
    )
    assert params.value_problem(NOTSET, None) is not None
    long = params.value_problem(["x" * 1000], {"maxItems": 0})
    assert long is not None and len(long) <= 240 and long.endswith("...")


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        (
            {"type": "integr"},
            "not a valid JSON schema at type: 'integr' is not valid under any of the given schemas",
        ),
        ({"minimum": "1"}, "not a valid JSON schema at minimum: '1' is not of type 'number'"),
        ({"items": {"type": 3}}, "not a valid JSON schema at items.type"),
        ({"pattern": "("}, "not a valid JSON schema at pattern: '(' is not a 'regex'"),
        ([1], "a param's schema must be a JSON object, got list"),
    ],
)
def test_schemas_that_are_not_json_schemas(schema: Any, message: str) -> None:
    why = params.schema_problem(schema)
    assert why is not None and why.startswith(message), why


def test_a_schema_may_name_its_draft_and_refer_to_its_own_definitions() -> None:
    draft7 = {"$schema": "http://json-schema.org/draft-07/schema#", "type": "integer", "exclusiveMinimum": 1}
    assert params.schema_problem(draft7) is None
    assert params.value_problem(1, draft7) is not None
    local = {"$defs": {"small": {"maximum": 2}}, "$ref": "#/$defs/small"}
    assert params.value_problem(3, local) == "3 is greater than the maximum of 2 (rule 'maximum')"
    # A remote $ref is never fetched: the value cannot be checked, and says so.
    remote = params.value_problem(3, {"$ref": "https://example.org/schema.json"})
    assert remote is not None and remote.startswith("its schema cannot be checked")


# -- declarations and precedence -------------------------------------------------------------------------

DAG = DAGSpec.model_validate(
    {
        "params": {"n": 2, "name": "world", "plain": 7},
        "paramSchemas": {"n": {"type": "integer", "minimum": 1}, "who": {"type": "string"}},
        "tasks": [
            task("a"),
            task("b", params={"n": 5, "extra": 1.5}, paramSchemas={"extra": {"minimum": 1}}),
            task("c", paramSchemas={"n": {"type": "string"}}),
        ],
    }
)


def test_declared_params_follow_airflows_merge() -> None:
    assert params.declared_params(DAG) == {
        "n": Declared(2, {"type": "integer", "minimum": 1}),
        "name": Declared("world", None),
        "plain": Declared(7, None),
        "who": Declared(NOTSET, {"type": "string"}),
    }
    b = params.declared_params(DAG, DAG.task("b"))
    assert b["n"] == Declared(5, {"type": "integer", "minimum": 1})  # a plain task value keeps the schema
    assert b["extra"] == Declared(1.5, {"minimum": 1})
    c = params.declared_params(DAG, DAG.task("c"))
    assert c["n"] == Declared(NOTSET, {"type": "string"})  # a task's Param replaces the DAG's, default too


def test_defaults_then_conf_then_run_params() -> None:
    b = DAG.task("b")
    assert params.merged_params(DAG, b) == {"n": 5, "name": "world", "plain": 7, "extra": 1.5}
    conf = {"n": 3, "who": "conf", "free": True}
    merged = params.merged_params(DAG, b, {"who": "run"}, conf)
    assert merged == {"n": 3, "name": "world", "plain": 7, "extra": 1.5, "who": "run", "free": True}


def test_run_problems_name_the_param_the_rule_and_the_task() -> None:
    assert [str(p) for p in params.run_param_problems(DAG, {"who": "me"}, None)] == [
        "task 'c': param 'n': has no value: it has no default, so the run must give one (-p, params or conf)"
    ]
    problems = params.run_param_problems(DAG, {"n": 0}, {"extra": 0.5})
    assert [str(p) for p in problems] == [
        "param 'n': 0 is less than the minimum of 1 (rule 'minimum')",
        "param 'who': has no value: it has no default, so the run must give one (-p, params or conf)",
        "task 'b': param 'extra': 0.5 is less than the minimum of 1 (rule 'minimum')",
        "task 'c': param 'n': 0 is not of type 'string' (rule 'type')",
    ]  # the DAG's problems repeated by task b are given once
    assert params.describe(problems, limit=2).endswith("; and 2 more")
    assert params.run_param_problems(DAG, {"who": "me", "n": "x"}, None)[0].param == "n"
    assert params.run_param_problems(spec(), {"anything": [1]}, {"goes": None}) == []


def test_undeclared_names_and_the_schema_a_cli_value_is_read_with() -> None:
    assert params.undeclared(DAG, ["n", "extra", "who", "typo"]) == ["typo"]
    assert params.schema_for(DAG, "extra") == {"minimum": 1}
    assert params.schema_for(DAG, "plain") is None
    assert params.cli_value("5", {"type": "integer"}) == 5
    assert params.cli_value("007", {"type": "string"}) == "007"
    assert params.cli_value("1.10", {"type": "string"}) == "1.10"
    assert params.cli_value("123", {"type": "string", "pattern": "^[a-z]+$"}) == "123"
    assert params.cli_value("null", {"type": ["null", "string"]}) is None
    assert params.cli_value("[1]", None) == [1]
    assert params.cli_value("text", {"type": "integer"}) == "text"


# -- the DAG validator -----------------------------------------------------------------------------------


def problems_of(**fields: Any) -> list[str]:
    return dag_spec_problems({"tasks": [task("a")], **fields})


def test_schemas_must_be_json_schemas() -> None:
    assert problems_of(paramSchemas={"n": {"type": "integr"}}) == [
        "spec.paramSchemas.n: not a valid JSON schema at type: 'integr' is not valid under any of the given"
        " schemas"
    ]
    found = dag_spec_problems({"tasks": [task("a", paramSchemas={"x": {"minLength": -1}})]})
    assert found == [
        "task 'a' (spec.tasks[0].paramSchemas.x): not a valid JSON schema at minLength: -1 is less"
        " than the minimum of 0"
    ]


def test_a_task_value_must_satisfy_the_dags_schema() -> None:
    found = problems_of(
        params={"n": 2}, paramSchemas={"n": {"type": "integer"}}, tasks=[task("a", params={"n": "x"})]
    )
    assert found == [
        "task 'a' (spec.tasks[0].params.n): does not satisfy the DAG's schema: 'x' is not of type 'integer'"
        " (rule 'type')"
    ]
    # ... unless the task gives its own Param
    assert not problems_of(
        paramSchemas={"n": {"type": "integer"}},
        tasks=[task("a", params={"n": "x"}, paramSchemas={"n": {}})],
    )


def test_an_unscheduled_dag_may_leave_defaults_to_its_runs() -> None:
    assert not problems_of(params={"n": 0}, paramSchemas={"n": {"minimum": 1}, "who": {"type": "string"}})


@pytest.mark.parametrize(
    "when", [{"schedule": "@daily"}, {"schedule": "@once"}, {"timetable": {"everySeconds": 60}}]
)
def test_a_scheduled_dag_needs_valid_defaults(when: dict[str, Any]) -> None:
    found = problems_of(
        params={"n": 0},
        paramSchemas={"n": {"minimum": 1}, "who": {"type": "string"}},
        tasks=[task("a", paramSchemas={"t": {"type": "string"}})],
        **when,
    )
    why = "the DAG runs on a schedule, so every param needs a default that satisfies its schema"
    assert found == [
        f"spec.params.n: {why}: 0 is less than the minimum of 1 (rule 'minimum')",
        f"spec.params.who: {why}: has no value: it has no default, so the run must give one"
        " (-p, params or conf)",
        f"task 'a' (spec.tasks[0].params.t): {why}: has no value: it has no default, so the run must give one"
        " (-p, params or conf)",
    ]


def test_the_crd_fields_parse_strictly() -> None:
    model, problems = check_dag_spec({"tasks": [task("a")], "paramSchemas": {"n": "integer"}})
    assert model is None
    assert problems[0].path == "spec.paramSchemas.n"


# -- kdag compile ---------------------------------------------------------------------------------------

DAG_FILE = """
from datetime import datetime
from airflow.sdk import DAG, Param
from airflow.operators.python import PythonOperator

with DAG("params_compiled", start_date=datetime(2026, 1, 1), schedule=None, params={
    "count": Param(2, type="integer", minimum=1, description="How many"),
    "who": Param(type="string", title="Who", section="People"),
    "nothing": Param(None, type=["null", "string"]),
    "plain": [1, 2],
}) as dag:
    PythonOperator(task_id="a", python_callable=print)
    own = Param("x", enum=["x", "y"])
    PythonOperator(task_id="b", python_callable=print, params={"count": 5, "own": own})
"""


def test_compile_writes_defaults_and_schemas(tmp_path: Path) -> None:
    path = tmp_path / "dag.py"
    path.write_text(DAG_FILE, encoding="utf-8")
    loaded = compiler.load(path)
    dag = loaded.spec.to_kube()
    assert dag["params"] == {"count": 2, "nothing": None, "plain": [1, 2]}
    assert dag["paramSchemas"] == {
        "count": {"type": "integer", "minimum": 1, "description": "How many"},
        "who": {"type": "string", "title": "Who", "section": "People"},
        "nothing": {"type": ["null", "string"]},
    }
    a, b = dag["tasks"]
    assert "params" not in a and "paramSchemas" not in a
    assert b["params"] == {"count": 5, "own": "x"}
    assert b["paramSchemas"] == {"own": {"enum": ["x", "y"]}}  # count is a plain value: the DAG's schema
    yaml_text = compiler.manifests_yaml(loaded.manifests)
    assert "paramSchemas:" in yaml_text


def test_compile_refuses_a_task_value_the_dags_schema_refuses(tmp_path: Path) -> None:
    path = tmp_path / "dag.py"
    path.write_text(DAG_FILE.replace('"count": 5', '"count": 0'), encoding="utf-8")
    with pytest.raises(compiler.DefinitionError, match=r"spec.tasks\[1\].params.count\): does not satisfy"):
        compiler.load(path)
