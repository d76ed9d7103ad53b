"""The XCom store encoding: text forms, .types, key rules, the size limit, task directories."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from kdag_runner import store
from kdag_runner.store import XComError

from .runner_support import write_store


def test_str_is_stored_as_itself_and_the_rest_as_compact_json() -> None:
    data = store.encode(
        {"text": "hello world", "number": 42, "mapping": {"b": 1, "a": [1, 2]}, "flag": True, "ratio": 0.5},
        "t",
    )
    assert data["text"] == "hello world"
    assert data["number"] == "42"
    assert data["mapping"] == '{"b":1,"a":[1,2]}'  # key order kept, no spaces
    assert data["flag"] == "true"
    assert json.loads(data[".types"]) == {
        "text": "str",
        "number": "json",
        "mapping": "json",
        "flag": "json",
        "ratio": "json",
    }


def test_decode_gives_back_the_exact_types() -> None:
    values = {"s": "42", "i": 42, "f": 1.5, "l": [1, "x", None], "d": {"k": {"n": False}}, "empty": ""}
    assert store.decode(store.encode(values, "t")) == values
    assert type(store.decode(store.encode({"s": "42"}, "t"))["s"]) is str


def test_a_string_that_looks_like_json_stays_a_string() -> None:
    decoded = store.decode(store.encode({"k": '{"a": 1}'}, "t"))
    assert decoded == {"k": '{"a": 1}'}


def test_none_is_never_stored() -> None:
    data = store.encode({"gone": None, "kept": 0}, "t")
    assert "gone" not in data
    assert json.loads(data[".types"]) == {"kept": "json"}


def test_an_empty_store_still_has_types() -> None:
    assert store.encode({}, "t") == {".types": "{}"}


def test_a_key_missing_from_types_reads_as_str() -> None:
    assert store.decode({"k": "1", ".types": "{}"}) == {"k": "1"}
    assert store.decode({"k": "1"}) == {"k": "1"}


def test_decode_keeps_push_order_of_types() -> None:
    data = {"a": "1", "b": "2", ".types": '{"b":"json","a":"json"}'}
    assert list(store.decode(data)) == ["b", "a"]


@pytest.mark.parametrize("key", ["return_value", "execution_time", "a", "_x", "0", "a-b.c_d", "K" * 253])
def test_valid_user_keys(key: str) -> None:
    assert store.validate_key(key, "t") == key


@pytest.mark.parametrize("key", ["", "-a", ".types", "a b", "a/b", "ключ", "K" * 254])
def test_invalid_keys_are_refused_naming_key_task_and_rule(key: str) -> None:
    with pytest.raises(XComError) as caught:
        store.validate_key(key, "hello_task")
    assert str(caught.value) == (
        f"XCom key {key!r} of task 'hello_task' is invalid: keys match ^[A-Za-z0-9_][-._A-Za-z0-9]*$ "
        "and are at most 253 characters"
    )


def test_keys_beginning_with_two_underscores_are_kdags() -> None:
    with pytest.raises(XComError, match=r"XCom key '__context' of task 't' is reserved"):
        store.validate_key("__context", "t")
    assert store.validate_key("__context", "t", internal=True) == "__context"


def test_a_non_string_key_is_refused() -> None:
    with pytest.raises(XComError, match=r"XCom key of task 't' must be a str, not int"):
        store.validate_key(1, "t")


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        ({1, 2}, "set"),
        (datetime(2024, 1, 1), "datetime"),
        ({"when": [datetime(2024, 1, 1)]}, "datetime"),
        (object(), "object"),
        (b"bytes", "bytes"),
    ],
)
def test_a_value_json_refuses_fails_naming_the_type(value: object, type_name: str) -> None:
    with pytest.raises(XComError) as caught:
        store.encode({"result": value}, "load")
    assert str(caught.value) == f"XCom 'result' of task 'load' is not JSON-serialisable: {type_name}"


def test_size_limit_counts_keys_values_and_types() -> None:
    # One value that fills the ConfigMap to the byte: key + value + ".types" + its text.
    types_bytes = len(".types") + len('{"big":"str"}')
    exact = "x" * (store.SIZE_LIMIT - len("big") - types_bytes)
    data = store.encode({"big": exact}, "t")
    assert store.data_size(data) == store.SIZE_LIMIT == 1_032_192
    with pytest.raises(XComError) as caught:
        store.encode({"big": exact + "é"}, "fat_task")  # é is two bytes in UTF-8
    assert str(caught.value) == (
        "XComs of task 'fat_task' take 1032194 bytes; "
        "a task's XComs must fit in 1032192 bytes (one ConfigMap)"
    )


def test_read_task_dir_reads_a_configmap_volume(tmp_path: Path) -> None:
    write_store(
        tmp_path, "hello_task", {"return_value": "hello world", "execution_time": "2024-03-05", "n": 3}
    )
    data = store.read_task_dir(tmp_path / "xcom" / "hello_task")
    assert set(data) == {"return_value", "execution_time", "n", ".types"}
    assert store.read_task_values(tmp_path / "xcom" / "hello_task") == {
        "return_value": "hello world",
        "execution_time": "2024-03-05",
        "n": 3,
    }


def test_read_task_dir_of_a_missing_store_is_empty(tmp_path: Path) -> None:
    assert store.read_task_dir(tmp_path / "nothing") == {}
    assert store.read_task_values(tmp_path / "nothing") == {}


def test_malformed_types_is_an_error() -> None:
    with pytest.raises(XComError, match=r"malformed \.types"):
        store.decode({"k": "v", ".types": "[1"})
    with pytest.raises(XComError, match="not a JSON object"):
        store.decode({"k": "v", ".types": "[]"})
    with pytest.raises(XComError, match="'k' is marked json but does not parse"):
        store.decode({"k": "{", ".types": '{"k":"json"}'})


def test_text_that_is_not_utf8_is_refused() -> None:
    with pytest.raises(
        XComError, match=r"^XCom 'name' of task 't' is not valid UTF-8 text: surrogates not allowed at 1$"
    ):
        store.encode({"name": "a\udc80"}, "t")


def test_cycles_and_unwritable_keys_are_refused_naming_the_container() -> None:
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(
        XComError, match=r"^XCom 'loop' of task 't' is not JSON-serialisable: list \(Circular"
    ):
        store.encode({"loop": loop}, "t")
    with pytest.raises(
        XComError, match=r"^XCom 'keys' of task 't' is not JSON-serialisable: dict with a key"
    ):
        store.encode({"keys": {(1, 2): "x"}}, "t")
