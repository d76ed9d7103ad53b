"""TaskInstance: Airflow 3's xcom_push/xcom_pull semantics over kdag's per-task stores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kdag_runner import store
from kdag_runner.store import XComError
from kdag_runner.xcom import TaskInstance

from .runner_support import write_store


def make_ti(tmp_path: Path, task_id: str = "me", ancestors: tuple[str, ...] = ()) -> TaskInstance:
    return TaskInstance(
        task_id=task_id, dag_id="d", run_id="r", ancestors=ancestors, xcom_in=tmp_path / "xcom"
    )


@pytest.fixture
def upstream(tmp_path: Path) -> TaskInstance:
    write_store(tmp_path, "a", {"return_value": "from a", "count": 3, "data": {"rows": [1, 2]}})
    write_store(tmp_path, "b", {"return_value": 42})
    write_store(tmp_path, "not_upstream", {"return_value": "hidden"})
    return make_ti(tmp_path, ancestors=("a", "b", "silent"))


def test_a_str_task_id_gives_one_value(upstream: TaskInstance) -> None:
    assert upstream.xcom_pull(task_ids="a") == "from a"
    assert upstream.xcom_pull(task_ids="a", key="count") == 3
    assert upstream.xcom_pull("a", key="data") == {"rows": [1, 2]}


def test_a_missing_value_is_none(upstream: TaskInstance) -> None:
    assert upstream.xcom_pull(task_ids="a", key="no_such_key") is None
    assert upstream.xcom_pull(task_ids="silent") is None  # an ancestor that pushed nothing


def test_a_list_gives_a_positional_list_with_none_where_missing(upstream: TaskInstance) -> None:
    assert upstream.xcom_pull(task_ids=["b", "a"]) == [42, "from a"]
    assert upstream.xcom_pull(task_ids=["a", "silent", "b"]) == ["from a", None, 42]
    assert upstream.xcom_pull(task_ids=["a"], key="count") == [3]
    assert upstream.xcom_pull(task_ids=("b",)) == [42]


def test_only_ancestors_are_visible(upstream: TaskInstance, capsys: pytest.CaptureFixture[str]) -> None:
    assert upstream.xcom_pull(task_ids="not_upstream") is None
    assert upstream.xcom_pull(task_ids="not_upstream") is None
    warnings = capsys.readouterr().err.splitlines()
    assert warnings == [
        "kdag: xcom_pull from task 'not_upstream' returns None: "
        "it is not upstream of 'me' and only ancestors' XComs are visible"
    ]


def test_task_ids_none_means_the_current_task(tmp_path: Path) -> None:
    ti = make_ti(tmp_path)
    assert ti.xcom_pull() is None
    ti.xcom_push("return_value", "mine")
    ti.xcom_push("k", [1])
    assert ti.xcom_pull() == "mine"
    assert ti.xcom_pull(key="k") == [1]
    assert ti.xcom_pull(task_ids="me", key="k") == [1]


def test_a_pushed_value_is_a_snapshot(tmp_path: Path) -> None:
    ti = make_ti(tmp_path)
    rows = [1, 2]
    ti.xcom_push("rows", rows)
    rows.append(3)
    assert ti.xcom_pull(key="rows") == [1, 2]
    ti.xcom_pull(key="rows").append(4)
    assert ti.xcom_pull(key="rows") == [1, 2]


def test_pushing_a_key_again_replaces_it(tmp_path: Path) -> None:
    ti = make_ti(tmp_path)
    ti.xcom_push("label", "first")
    ti.xcom_push("label", "second")
    assert ti.xcom_pull(key="label") == "second"
    assert store.decode(ti.store_data()) == {"label": "second"}


def test_pushing_none_leaves_nothing_stored_and_pulls_none(tmp_path: Path) -> None:
    ti = make_ti(tmp_path)
    ti.xcom_push("k", 1)
    ti.xcom_push("k", None)
    assert ti.xcom_pull(key="k") is None
    assert ti.store_data() == {".types": "{}"}


def test_a_none_return_value_is_not_pushed(tmp_path: Path) -> None:
    ti = make_ti(tmp_path)
    ti.push_return_value(None)
    assert ti.pushed_keys() == []
    ti.push_return_value(0)
    assert ti.pushed_keys() == ["return_value"]


def test_push_checks_key_and_value_at_once(tmp_path: Path) -> None:
    ti = make_ti(tmp_path, task_id="pusher")
    with pytest.raises(XComError, match=r"XCom key of task 'pusher' is empty"):
        ti.xcom_push("", 1)
    with pytest.raises(XComError, match=r"^XCom 'when' of task 'pusher' is not JSON-serialisable: set$"):
        ti.xcom_push("when", {1})
    with pytest.raises(XComError, match=r"XCom key '__context' of task 'pusher' is reserved"):
        ti.xcom_push("__context", {})


def test_key_none_pulls_the_latest_pushed_key(upstream: TaskInstance, tmp_path: Path) -> None:
    ti = make_ti(tmp_path, task_id="x")
    ti.xcom_push("first", 1)
    ti.xcom_push("second", 2)
    assert ti.xcom_pull(key=None) == 2
    ti.xcom_push("first", 3)
    assert ti.xcom_pull(key=None) == 3
    assert upstream.xcom_pull(task_ids="a", key=None) == {"rows": [1, 2]}


def test_map_indexes_and_default_as_in_airflow_3(upstream: TaskInstance) -> None:
    assert upstream.xcom_pull(task_ids="a", map_indexes=-1) == "from a"
    assert upstream.xcom_pull(task_ids="a", map_indexes=None) == "from a"
    # kdag tasks are never mapped, so index 0 finds nothing and gives the default.
    assert upstream.xcom_pull(task_ids="a", map_indexes=0, default="dflt") == "dflt"
    assert upstream.xcom_pull(task_ids="silent", map_indexes=-1, default="dflt") == "dflt"
    assert upstream.xcom_pull(task_ids="a", map_indexes=[-1, 0]) == ["from a", None]
    assert upstream.xcom_pull(task_ids=["a", "b"], map_indexes=-1) == ["from a", 42]
    # Without map_indexes Airflow 3.3 ignores `default` (its code appends None; its docstring says otherwise).
    assert upstream.xcom_pull(task_ids="silent", default="dflt") is None


def test_airflow_keyword_arguments_are_accepted(
    upstream: TaskInstance, capsys: pytest.CaptureFixture[str]
) -> None:
    assert upstream.xcom_pull(task_ids="a", dag_id="d", include_prior_dates=True) == "from a"
    assert upstream.xcom_pull(task_ids="a", run_id="r") == "from a"
    assert upstream.xcom_pull(task_ids="a", dag_id="other_dag") is None
    assert upstream.xcom_pull(task_ids=["a"], run_id="older_run") == [None]
    assert "kdag tasks see only XComs of their own run" in capsys.readouterr().err


def test_context_merges_ancestors_in_topological_order(tmp_path: Path) -> None:
    write_store(tmp_path, "first", {"__context": {"value": "first", "only_first": 1}})
    write_store(tmp_path, "second", {"__context": {"value": "second"}, "return_value": "x"})
    ti = make_ti(tmp_path, ancestors=("first", "second", "no_store"))
    assert ti.context == {"value": "second", "only_first": 1}
    assert make_ti(tmp_path, ancestors=("second", "first")).context == {"value": "first", "only_first": 1}


def test_context_is_pushed_when_not_empty(tmp_path: Path) -> None:
    ti = make_ti(tmp_path)
    assert "__context" not in ti.store_data()
    ti.context["value"] = "some value"
    data = ti.store_data()
    assert json.loads(data["__context"]) == {"value": "some value"}
    assert json.loads(data[".types"]) == {"__context": "json"}


def test_a_context_value_json_refuses_is_an_xcom_error(tmp_path: Path) -> None:
    ti = make_ti(tmp_path, task_id="ctx")
    ti.context["when"] = {1, 2}
    with pytest.raises(XComError, match=r"^XCom '__context' of task 'ctx' is not JSON-serialisable: set$"):
        ti.store_data()


def test_identity_fields(tmp_path: Path) -> None:
    ti = TaskInstance(task_id="t", dag_id="d", run_id="r", try_number=2, params={"p": 1})
    assert (ti.task_id, ti.dag_id, ti.run_id, ti.try_number, ti.map_index, ti.params) == (
        "t",
        "d",
        "r",
        2,
        -1,
        {"p": 1},
    )


def test_a_push_json_cannot_write_faithfully_fails_at_once_naming_task_and_key(tmp_path: Path) -> None:
    ti = make_ti(tmp_path, task_id="pusher")
    with pytest.raises(XComError, match=r"^XCom 'mean' of task 'pusher' is not JSON-serialisable: float nan"):
        ti.xcom_push("mean", float("nan"))
    with pytest.raises(XComError, match=r"^XCom 'return_value' of task 'pusher' .* keys 1 and '1'"):
        ti.push_return_value({1: "x", "1": "y"})
    assert ti.pushed_keys() == []
    assert store.decode(ti.store_data()) == {}
