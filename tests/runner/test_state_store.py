"""The task state store (`context["task_state_store"]`): the accessor's Airflow 3.3.2 semantics, its stored
form (`.state`, one JSON object), where it lives (directory and ConfigMap sinks), what XCom readers see."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kdag_runner import compat, store
from kdag_runner.context import build_context
from kdag_runner.environment import TaskEnvironment
from kdag_runner.kube import KubeClient
from kdag_runner.sinks import ConfigMapSink, DirectorySink, SinkError, sink_from_env
from kdag_runner.state_store import (
    MAX_KEY_LENGTH,
    NEVER_EXPIRE,
    TaskStateError,
    TaskStateStoreAccessor,
    decode_state,
    encode_state,
)
from kdag_runner.xcom import TaskInstance

from .runner_support import task_env
from .test_kube import FakeApiServer, api  # noqa: F401  (the fixture)


class FakeHome:
    """A state home that records every read and write."""

    def __init__(self, text: str | None = None) -> None:
        self.text = text
        self.reads = 0
        self.writes: list[str | None] = []
        self.fail = False

    def read_state(self) -> str | None:
        self.reads += 1
        return self.text

    def write_state(self, text: str | None) -> None:
        if self.fail:
            raise SinkError("cannot write the task state to ConfigMap ns/cm: HTTP 500")
        self.writes.append(text)
        self.text = text


def accessor(home: FakeHome, map_index: int = -1) -> TaskStateStoreAccessor:
    return TaskStateStoreAccessor("run_job", map_index, lambda: home)


# -- the accessor ------------------------------------------------------------------------------------------


def test_get_gives_the_default_until_a_set_and_every_change_is_written_at_once() -> None:
    home = FakeHome()
    state = accessor(home)
    assert home.reads == 0  # nothing is read before the task uses the store
    assert state.get("job_id") is None
    assert state.get("job_id", "none yet") == "none yet"
    assert home.reads == 1 and home.writes == []

    state.set("job_id", "job-1", retention=NEVER_EXPIRE)
    assert home.writes == ['{"job_id":"job-1"}']
    state.set("progress", {"done": [1, 2], "rows": 300}, retention=timedelta(hours=6))
    state.set("job_id", "job-2")  # replaces, in place
    assert home.writes[-1] == '{"job_id":"job-2","progress":{"done":[1,2],"rows":300}}'
    assert state.get("job_id") == "job-2"
    assert state.get("progress") == {"done": [1, 2], "rows": 300}
    assert home.reads == 1


def test_a_later_attempt_reads_what_an_earlier_one_left() -> None:
    home = FakeHome()
    accessor(home).set("job_id", "job-abc")
    retry = accessor(home)  # a new process, the same instance's home
    assert retry.get("job_id") == "job-abc"


def test_get_gives_a_fresh_copy_that_changes_nothing_stored() -> None:
    home = FakeHome('{"done":[1]}')
    state = accessor(home)
    done = state.get("done")
    done.append(2)
    assert state.get("done") == [1]
    assert home.writes == []


def test_delete_and_clear_write_only_when_something_goes() -> None:
    home = FakeHome('{"a":1,"b":"two"}')
    state = accessor(home)
    state.delete("missing")
    assert home.writes == []
    state.delete("a")
    assert home.writes == ['{"b":"two"}'] and state.get("a") is None
    state.clear()
    assert home.writes[-1] is None and state.get("b") is None
    state.clear()
    state.delete("b")
    assert len(home.writes) == 2


def test_values_read_back_as_json_gives_them() -> None:
    state = accessor(FakeHome())
    state.set("tuple", (1, "a"))
    state.set("text", "ünïcode ✓")
    state.set("flags", {"ok": True, "none": None, "ratio": 0.5})
    assert state.get("tuple") == [1, "a"]
    assert state.get("text") == "ünïcode ✓"
    assert state.get("flags") == {"ok": True, "none": None, "ratio": 0.5}
    state.set("zero", 0)
    state.set("empty", "")
    assert state.get("zero", "default") == 0 and state.get("empty", "default") == ""


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (datetime(2026, 1, 1, tzinfo=UTC), "value is a datetime"),
        ({"when": {1, 2}}, "value['when'] is a set"),
        ([1, float("nan")], "value[1] is nan (NaN and infinities are not JSON)"),
        (float("inf"), "value is inf (NaN and infinities are not JSON)"),
        ({1: "a"}, "value has a int key 1 (JSON keys are strings)"),
        (b"bytes", "value is a bytes"),
    ],
)
def test_a_value_json_cannot_hold_is_refused_naming_where(value: object, problem: str) -> None:
    home = FakeHome()
    with pytest.raises(TaskStateError) as caught:
        accessor(home).set("checkpoint", value)
    assert str(caught.value) == (
        f"task state key 'checkpoint' of task 'run_job' is not JSON: {problem}; store str, int, float, bool, "
        "or lists and dicts of them (a datetime as .isoformat())"
    )
    assert isinstance(caught.value, ValueError) and home.writes == []


def test_none_is_refused_as_airflow_refuses_it() -> None:
    with pytest.raises(ValueError, match=r"cannot set None \(delete\('job_id'\) removes a key\)"):
        accessor(FakeHome(), map_index=2).set("job_id", None)


def test_retention_is_a_timedelta_never_expire_or_none() -> None:
    state = accessor(FakeHome())
    for retention in (None, NEVER_EXPIRE, timedelta(days=1), timedelta(seconds=-5)):
        state.set("k", 1, retention=retention)
    with pytest.raises(TypeError) as caught:
        state.set("k", 1, retention=30)  # type: ignore[arg-type]
    assert str(caught.value) == (
        "task state key 'k' of task 'run_job': retention must be a timedelta, NEVER_EXPIRE or None, got int"
    )
    assert timedelta.max == NEVER_EXPIRE


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("", "task state key of task 'run_job' must be a non-empty str, got an empty str"),
        (7, "task state key of task 'run_job' must be a non-empty str, got int"),
        ("k" * (MAX_KEY_LENGTH + 1), f"has {MAX_KEY_LENGTH + 1} characters; keys are at most 512"),
    ],
)
def test_keys_are_non_empty_strings_of_at_most_512_characters(key: Any, message: str) -> None:
    state = accessor(FakeHome())
    for call in (lambda: state.get(key), lambda: state.set(key, 1), lambda: state.delete(key)):
        with pytest.raises(TaskStateError) as caught:
            call()
        assert message in str(caught.value)
    state.set("k" * MAX_KEY_LENGTH, 1)
    state.set("any key: spaces/slashes ✓", 2)
    assert state.get("any key: spaces/slashes ✓") == 2


def test_state_over_the_limit_is_refused_and_what_was_stored_stays() -> None:
    home = FakeHome()
    state = accessor(home, map_index=3)
    state.set("small", "x")
    with pytest.raises(TaskStateError) as caught:
        state.set("big", "y" * store.STATE_SIZE_LIMIT)
    message = str(caught.value)
    assert message.startswith("task state of task 'run_job' (map index 3) would take ")
    limit = store.STATE_SIZE_LIMIT
    assert f"with key 'big'; the state of a task instance must fit in {limit} bytes" in message
    assert state.get("big") is None and state.get("small") == "x"
    assert home.writes == ['{"small":"x"}']
    # Just under the limit fits: the key `.state` and the JSON text count.
    room = store.STATE_SIZE_LIMIT - len(store.STATE_KEY) - len('{"small":"x","big":""}')
    state.set("big", "y" * room)
    assert home.writes[-1] is not None and len(home.writes[-1]) + len(store.STATE_KEY) == limit


def test_a_failed_write_fails_the_call_and_changes_nothing() -> None:
    home = FakeHome('{"a":1}')
    state = accessor(home)
    home.fail = True
    with pytest.raises(SinkError):
        state.set("a", 2)
    with pytest.raises(SinkError):
        state.clear()
    assert state.get("a") == 1


def test_a_copied_context_shares_the_one_state() -> None:
    home = FakeHome()
    state = accessor(home)
    assert copy.deepcopy({"task_state_store": state})["task_state_store"] is state
    assert repr(state) == "<TaskStateStoreAccessor task_id='run_job' map_index=-1>"


def test_airflow_3_3_2_has_no_async_forms() -> None:
    # Airflow 3.3.2's TaskStateStoreAccessor has none, and its example_task_state_store_async fails on them.
    state = accessor(FakeHome())
    for name in ("aget", "aset", "adelete", "aclear"):
        missing = f"'TaskStateStoreAccessor' object has no attribute '{name}'"
        with pytest.raises(AttributeError, match=missing):
            getattr(state, name)


# -- the stored form ---------------------------------------------------------------------------------------


def test_the_stored_form_is_one_json_object() -> None:
    texts = {"job_id": '"job-1"', "ключ": '{"a":[1,2]}'}
    text = encode_state(texts)
    assert text == '{"job_id":"job-1","ключ":{"a":[1,2]}}'
    assert json.loads(text) == {"job_id": "job-1", "ключ": {"a": [1, 2]}}
    assert decode_state(text) == texts
    assert encode_state({}) is None and decode_state(None) == {} and decode_state("") == {}


@pytest.mark.parametrize(("text", "problem"), [("{", "does not parse"), ("[1]", "is not a JSON object")])
def test_a_damaged_stored_state_is_named_and_clear_removes_it(text: str, problem: str) -> None:
    home = FakeHome(text)
    with pytest.raises(TaskStateError, match=f"the stored task state of task 'run_job' {problem}"):
        accessor(home).get("k")
    accessor(home).clear()
    assert home.writes == [None]


def test_clearing_a_state_never_stored_writes_nothing() -> None:
    home = FakeHome()
    accessor(home).clear()
    assert home.reads == 1 and home.writes == []


def test_the_state_key_is_no_xcom_key() -> None:
    assert not store.is_store_key(store.STATE_KEY)
    data = {**store.encode({"return_value": 1}, "t"), store.STATE_KEY: '{"job_id":"j"}'}
    assert store.decode(data) == {"return_value": 1}
    assert store.pushed_keys(data) == ["return_value"]
    assert store.SIZE_LIMIT + store.STATE_SIZE_LIMIT == 1_048_576


# -- where it lives ----------------------------------------------------------------------------------------


def test_a_directory_keeps_the_state_through_every_xcom_write(tmp_path: Path) -> None:
    sink = DirectorySink(tmp_path / "xcom" / "run_job")
    assert sink.read_state() is None
    sink.write_state('{"job_id":"j"}')  # before the attempt's XComs: the directory is made
    sink.write(store.encode({"return_value": 1}, "run_job"))
    sink.write(store.encode({"other": 2}, "run_job"))  # a later attempt: its XComs replace the old
    assert sink.read_state() == '{"job_id":"j"}'
    assert store.read_task_values(sink.path) == {"other": 2}
    assert sorted(p.name for p in sink.path.iterdir()) == [".state", ".types", "other"]
    sink.write_state(None)
    assert sink.read_state() is None and not (sink.path / store.STATE_KEY).exists()
    sink.write_state(None)  # nothing to remove: no error


def test_the_configmap_sink_applies_the_state_alone_under_its_own_manager(
    api: FakeApiServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    api.replies = [(200, {"kind": "ConfigMap"}), (200, {"kind": "ConfigMap"})]
    owner = {"apiVersion": "kdag.dev/v1alpha1", "kind": "DAGRun", "name": "r", "uid": "u"}
    sink = ConfigMapSink(KubeClient(api.config), "ns", "r-run-job", {"kdag.dev/task": "run_job"}, owner)
    sink.write_state('{"job_id":"j"}')
    sink.write_state(None)
    first, cleared = api.requests
    path = "/api/v1/namespaces/ns/configmaps/r-run-job?fieldManager=kdag-runner-state&force=true"
    assert first["path"] == cleared["path"] == path
    assert first["body"]["data"] == {".state": '{"job_id":"j"}'}
    assert first["body"]["metadata"] == {
        "name": "r-run-job",
        "namespace": "ns",
        "labels": {"kdag.dev/task": "run_job"},
        "ownerReferences": [owner],
    }
    assert cleared["body"]["data"] == {}  # the manager lets go of `.state`: the API server removes it


def test_the_configmap_sink_names_a_refused_state_write(api: FakeApiServer) -> None:  # noqa: F811
    api.replies = [(403, {"kind": "Status", "reason": "Forbidden", "message": "not your ConfigMap"})]
    sink = ConfigMapSink(KubeClient(api.config), "ns", "r-run-job", {}, None)
    with pytest.raises(SinkError) as caught:
        sink.write_state('{"a":1}')
    assert str(caught.value).startswith("cannot write the task state to ConfigMap ns/r-run-job: PATCH ")
    assert str(caught.value).endswith("HTTP 403: Forbidden: not your ConfigMap")


def test_a_pod_reads_the_state_its_own_configmap_volume_shows(tmp_path: Path) -> None:
    mounted = tmp_path / "state"
    sink = ConfigMapSink(KubeClient.__new__(KubeClient), "ns", "cm", {}, None, state_in=mounted)
    assert sink.read_state() is None  # attempt 2 of a task that stored nothing: the item is left out
    mounted.mkdir()
    (mounted / store.STATE_KEY).write_text('{"job_id":"j"}', encoding="utf-8")
    assert sink.read_state() == '{"job_id":"j"}'
    assert ConfigMapSink(KubeClient.__new__(KubeClient), "ns", "cm", {}, None).read_state() is None


def test_the_context_holds_the_instance_accessor_and_the_environment_names_the_mount(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    variables = task_env(
        tmp_path, "run_job", attempt=2, extra={"KDAG_MAP_INDEX": "1", "KDAG_STATE_IN": "/kdag/state"}
    )
    monkeypatch.setenv("KDAG_XCOM_SINK", variables["KDAG_XCOM_SINK"])
    env = TaskEnvironment.from_env(variables)
    assert env.state_in == Path("/kdag/state")
    context = build_context(env, TaskInstance.from_environment(env), None, None)
    state = context["task_state_store"]
    assert isinstance(state, TaskStateStoreAccessor)
    assert (state.task_id, state.map_index) == ("run_job", 1)
    state.set("k", "v")  # the environment's sink: a directory here
    assert DirectorySink(tmp_path / "xcom" / "run_job").read_state() == '{"k":"v"}'
    sink = sink_from_env(env, {"KDAG_XCOM_SINK": f"dir:{tmp_path / 'x'}"})
    assert isinstance(sink, DirectorySink)


def test_the_shim_serves_never_expire_where_airflow_has_it() -> None:
    import importlib

    assert compat.install()
    try:
        for module in ("airflow.sdk.execution_time.context", "airflow.sdk"):
            assert importlib.import_module(module).NEVER_EXPIRE is NEVER_EXPIRE
    finally:
        compat.uninstall()
