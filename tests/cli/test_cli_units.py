"""Pure parts of the command: option parsing, object names, graph layers, the DAGRun it creates."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from kdag.api.models import DAGSpec
from kdag.cli.app import parse_conf, parse_date, parse_params
from kdag.cli.errors import UserError
from kdag.cli.graph_view import layers, svg
from kdag.compile import DefinitionError, dag_name
from kdag.local.run import read_xcoms
from kdag.manifests import dagrun_manifest
from kdag_runner import store


def test_param_values_are_json_when_they_parse_and_text_otherwise() -> None:
    assert parse_params(["n=3", "flag=true", "name=plain", "list=[1,2]", "eq=a=b", "empty="]) == {
        "n": 3,
        "flag": True,
        "name": "plain",
        "list": [1, 2],
        "eq": "a=b",
        "empty": "",
    }
    with pytest.raises(UserError, match="param '=3': expected KEY=VALUE"):
        parse_params(["=3"])


def test_conf_must_be_an_object_and_dates_are_utc() -> None:
    assert parse_conf('{"a": 1}') == {"a": 1}
    with pytest.raises(UserError, match="--conf: not JSON"):
        parse_conf("{")
    assert parse_date("2026-11-21") == datetime(2026, 11, 21, tzinfo=UTC)
    assert parse_date("2026-11-21T10:00:00+02:00") == datetime(2026, 11, 21, 8, tzinfo=UTC)


@pytest.mark.parametrize(
    ("dag_id", "name"),
    [("etl_dag", "etl-dag"), ("Options.DAG", "options-dag"), ("__x__", "x"), ("a" * 80, "a" * 63)],
)
def test_dag_object_names_are_dns_labels(dag_id: str, name: str) -> None:
    assert dag_name(dag_id) == name


def test_a_dag_id_without_letters_or_digits_needs_a_name() -> None:
    with pytest.raises(DefinitionError, match="pass --name"):
        dag_name("___")


DIAMOND = DAGSpec.model_validate(
    {
        "tasks": [
            {"id": "start", "command": ["true"]},
            {"id": "left", "command": ["true"], "upstream": ["start"]},
            {"id": "right", "command": ["true"], "upstream": ["start"]},
            {"id": "join", "command": ["true"], "upstream": ["left", "right"], "triggerRule": "all_done"},
            {"id": "late", "command": ["true"], "upstream": ["join", "start"]},
        ]
    }
)


def test_layers_put_each_task_below_its_deepest_upstream() -> None:
    assert layers(DIAMOND) == [["start"], ["left", "right"], ["join"], ["late"]]


def test_svg_draws_one_box_per_task_and_one_arrow_per_dependency() -> None:
    drawn = svg("diamond <&>", DIAMOND)
    assert drawn.count('class="task"') == 5
    assert drawn.count("<line ") == 6
    assert "diamond &lt;&amp;&gt;" in drawn


def test_trigger_creates_a_dagrun_with_params_conf_and_logical_date() -> None:
    manifest = dagrun_manifest(
        "etl-dag",
        "etl-dag-manual-abcde",
        params={"n": 1},
        conf={"c": 2},
        logical_date=datetime(2026, 11, 21, tzinfo=UTC),
    )
    assert manifest == {
        "apiVersion": "kdag.dev/v1alpha1",
        "kind": "DAGRun",
        "metadata": {
            "name": "etl-dag-manual-abcde",
            "labels": {
                "app.kubernetes.io/managed-by": "kdag",
                "kdag.dev/dag": "etl-dag",
                "kdag.dev/dagrun": "etl-dag-manual-abcde",
            },
        },
        "spec": {
            "dagRef": {"name": "etl-dag"},
            "logicalDate": "2026-11-21T00:00:00Z",
            "params": {"n": 1},
            "conf": {"c": 2},
        },
    }


def test_xcom_rows_follow_task_order_and_keep_types(tmp_path: Path) -> None:
    for task_id, values in {"second": {"n": 1}, "first": {"text": "1", "return_value": [1]}}.items():
        folder = tmp_path / task_id
        folder.mkdir()
        for key, text in store.encode(values, task_id).items():
            (folder / key).write_text(text)
    rows = [row.as_json() for row in read_xcoms(tmp_path, ["first", "second", "absent"])]
    assert rows == [
        {"task_id": "first", "key": "text", "value": "1"},
        {"task_id": "first", "key": "return_value", "value": [1]},
        {"task_id": "second", "key": "n", "value": 1},
    ]
