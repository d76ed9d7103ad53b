"""The XCom store encoding: text forms, .types, key rules, the size limit, task directories."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import pytest
from kdag_runner import store
from kdag_runner.store import XComError
from kdag_runner.xcom import TaskInstance

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


@pytest.mark.parametrize(
    ("key", "stored"),
    [
        ("value from pusher 1", "-value.20from.20pusher.201"),
        ("a/b", "-a.2fb"),
        ("ключ", "-.d0.ba.d0.bb.d1.8e.d1.87"),
        ("-a", "--a"),
        (".types", "-.2etypes"),
        ("..data", "-.2e.2edata"),
        ("a.b c", "-a.2eb.20c"),
        ("_", "_"),
        ("a-b.c_d", "a-b.c_d"),
        ("日本 🙂", "-.e6.97.a5.e6.9c.ac.20.f0.9f.99.82"),
        ("tab\there\n", "-tab.09here.0a"),
    ],
)
def test_keys_of_any_string_are_stored_under_a_configmap_key_and_read_back(key: str, stored: str) -> None:
    assert store.validate_key(key, "t") == key
    assert store.encode_key(key) == stored
    assert re.fullmatch(r"[-._a-zA-Z0-9]+", stored) and len(stored) <= 253
    assert re.fullmatch(store.STORE_KEY_PATTERN, stored)
    assert store.decode_key(stored) == key
    data = store.encode({key: {"v": 1}, "plain": "x"}, "t")
    assert set(data) == {stored, "plain", ".types"}
    assert json.loads(data[".types"]) == {stored: "json", "plain": "str"}
    assert store.decode(data) == {key: {"v": 1}, "plain": "x"}  # the keys as written
    assert store.value_of(data, key, "t") == {"v": 1}
    assert store.pushed_keys(data) == [key, "plain"]


def test_escaped_keys_never_collide_with_plain_or_kdags_keys() -> None:
    keys = ["a b", "a.20b", "-a.20b", "a_20b", "__context", "return_value", ".types", "-", "--", ".", "x"]
    stored = [store.encode_key(k) for k in keys]
    assert len(set(stored)) == len(keys)
    escaped = [s for k, s in zip(keys, stored, strict=True) if s != k]
    assert escaped and all(s.startswith("-") for s in escaped)  # plain keys never begin with '-'
    assert store.encode_key("__context") == "__context" and store.encode_key(".types") != ".types"


@pytest.mark.parametrize(
    "stored", ["-a.2", "-A.2F", "-a.zz", "-abc", "-.ff", "a b", ".types", "..data", "-a.2eb"]
)
def test_names_that_are_no_stored_key_are_refused(stored: str) -> None:
    # "-abc" is the plain key "abc" escaped, which encode_key never writes; ".ff" is not UTF-8;
    # "-a.2eb" would be "a.b", a plain key.
    assert not store.is_store_key(stored)
    with pytest.raises(XComError, match="is not a ConfigMap key kdag stores an XCom under"):
        store.decode_key(stored)


def test_a_key_whose_stored_form_is_too_long_is_refused_naming_the_length() -> None:
    assert store.validate_key("K" * 253, "t") == "K" * 253
    with pytest.raises(XComError) as caught:
        store.validate_key("K" * 254, "hello_task")
    assert str(caught.value) == (
        f"XCom key {'K' * 254!r} of task 'hello_task' is too long: it is stored as a ConfigMap key of 254 "
        "characters, and ConfigMap keys are at most 253 (characters other than letters, digits, '_', '-' "
        "and '.' take 3 each)"
    )
    assert store.validate_key("é" * 42, "t")  # '-' + 42 * 6 = 253 characters
    with pytest.raises(XComError, match="stored as a ConfigMap key of 259 characters"):
        store.validate_key("é" * 43, "t")


def test_empty_and_non_utf8_keys_are_refused() -> None:
    with pytest.raises(XComError, match=r"^XCom key of task 't' is empty: a key is a non-empty string$"):
        store.validate_key("", "t")
    with pytest.raises(XComError, match=r"is not valid UTF-8 text: surrogates not allowed at 1$"):
        store.validate_key("a\udc80", "t")


def test_size_limit_counts_the_stored_keys() -> None:
    key = "k" * 10 + " "  # stored as '-kkkkkkkkkk.20' (14 characters)
    types_bytes = len(".types") + len('{"-kkkkkkkkkk.20":"str"}')
    exact = "x" * (store.SIZE_LIMIT - 14 - types_bytes)
    assert store.data_size(store.encode({key: exact}, "t")) == store.SIZE_LIMIT
    with pytest.raises(XComError, match="take 1032193 bytes"):
        store.encode({key: exact + "x"}, "t")


def test_task_directories_with_escaped_keys_read_back_as_written(tmp_path: Path) -> None:
    write_store(tmp_path, "pusher", {"value from pusher 1": [1, 2, 3], "a/b": "x", "return_value": 1})
    data = store.read_task_dir(tmp_path / "xcom" / "pusher")
    assert set(data) == {"-value.20from.20pusher.201", "-a.2fb", "return_value", ".types"}
    assert store.read_task_values(tmp_path / "xcom" / "pusher") == {
        "value from pusher 1": [1, 2, 3],
        "a/b": "x",
        "return_value": 1,
    }


def test_xcom_push_and_pull_use_keys_as_written(tmp_path: Path) -> None:
    write_store(tmp_path, "pusher", {"value from pusher 1": [1, 2, 3], "ключ": "значение"})
    ti = TaskInstance(
        task_id="puller", dag_id="d", run_id="r", ancestors=["pusher"], xcom_in=tmp_path / "xcom"
    )
    assert ti.xcom_pull(task_ids="pusher", key="value from pusher 1") == [1, 2, 3]
    assert ti.xcom_pull(task_ids=["pusher"], key="ключ") == ["значение"]
    assert ti.xcom_pull(task_ids="pusher", key=None) == "значение"  # the key pushed last
    assert ti.xcom_pull(task_ids="pusher", key="-value.20from.20pusher.201") is None  # not an alias
    ti.xcom_push("a b/c", {"n": 1})
    ti.xcom_push(".types", "mine")
    assert ti.xcom_pull(key="a b/c") == {"n": 1} and ti.xcom_pull(key=".types") == "mine"
    data = ti.store_data()
    assert set(data) == {"-a.20b.2fc", "-.2etypes", ".types"}
    assert store.decode(data) == {"a b/c": {"n": 1}, ".types": "mine"}


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


@pytest.mark.parametrize(
    ("value", "found"),
    [
        (float("nan"), "nan"),
        ({"rows": [1.5, float("inf")]}, "inf"),
        ((1, {"ratio": -float("inf")}), "-inf"),
        ({float("nan"): "a key"}, "nan"),
    ],
)
def test_nan_and_infinity_are_refused_as_airflow_refuses_them(value: object, found: str) -> None:
    # json.dumps writes them as NaN/Infinity, which no JSON reader but Python's takes; Airflow 3's API
    # client dumps XComs with allow_nan=False and the push fails.
    with pytest.raises(XComError) as caught:
        store.encode({"stats": value}, "load")
    assert str(caught.value) == (
        f"XCom 'stats' of task 'load' is not JSON-serialisable: float {found}"
        " (NaN and Infinity are not JSON; push None or a string instead)"
    )


@pytest.mark.parametrize(
    ("value", "first", "second", "written"),
    [
        ({1: "x", "1": "y"}, "1", "'1'", "1"),
        ({"outer": [{"true": 1, True: 2}]}, "'true'", "True", "true"),
        ({None: 0, "null": 1}, "None", "'null'", "null"),
        ({"a": ({2.5: 0, "2.5": 1},)}, "2.5", "'2.5'", "2.5"),
    ],
)
def test_dict_keys_that_json_writes_alike_are_refused_naming_both(
    value: object, first: str, second: str, written: str
) -> None:
    # json.dumps would write the key twice and readers keep one; Airflow's serde (str(k)) keeps the last.
    with pytest.raises(XComError) as caught:
        store.encode({"counts": value}, "load")
    assert str(caught.value) == (
        f"XCom 'counts' of task 'load' is not JSON-serialisable: a dict has the keys {first} and {second},"
        f' both written as the JSON key "{written}", so one would be lost; give it distinct string keys'
    )


def test_non_string_keys_that_do_not_collide_are_written_as_json_writes_them() -> None:
    data = store.encode({"counts": {1: "a", 2: "b", "x": {True: [None], 1.5: 0}}}, "t")
    assert data["counts"] == '{"1":"a","2":"b","x":{"true":[null],"1.5":0}}'
    assert store.decode(data)["counts"] == {"1": "a", "2": "b", "x": {"true": [None], "1.5": 0}}
