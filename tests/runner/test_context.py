"""The Airflow context built from the KDAG_* environment."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kdag_runner.context import build_context, get_current_context, set_current_context
from kdag_runner.environment import RunnerConfigError, TaskEnvironment
from kdag_runner.xcom import TaskInstance

from .runner_support import task_env


def test_environment_is_read_in_full(tmp_path: Path) -> None:
    env = TaskEnvironment.from_env(
        task_env(tmp_path, "t", dag_id="d", ancestors=["a", "b"], params={"p": 1}, conf={"c": 2}, attempt=3)
    )
    assert env.dag_id == "d" and env.task_id == "t" and env.run_id == "etl-run-1"
    assert env.logical_date == datetime(2024, 3, 5, 6, 7, 8, tzinfo=UTC)
    assert env.attempt == 3
    assert env.params == {"p": 1} and env.conf == {"c": 2}
    assert env.ancestors == ("a", "b")
    assert env.xcom_in == tmp_path / "xcom"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("KDAG_TASK_ID", "", "KDAG_TASK_ID is not set"),
        ("KDAG_PARAMS", "{", "KDAG_PARAMS is not valid JSON"),
        ("KDAG_PARAMS", "[1]", "KDAG_PARAMS must be a JSON object, got list"),
        ("KDAG_CONF", "3", "KDAG_CONF must be a JSON object, got int"),
        ("KDAG_ANCESTORS", '"a"', "KDAG_ANCESTORS must be a JSON list of task ids"),
        ("KDAG_ATTEMPT", "two", "KDAG_ATTEMPT must be an integer, got 'two'"),
        ("KDAG_LOGICAL_DATE", "yesterday", "KDAG_LOGICAL_DATE is not an RFC 3339 time: 'yesterday'"),
    ],
)
def test_a_bad_variable_is_named(tmp_path: Path, name: str, value: str, message: str) -> None:
    env = task_env(tmp_path, "t")
    env[name] = value
    with pytest.raises(RunnerConfigError) as caught:
        TaskEnvironment.from_env(env)
    assert message in str(caught.value)


def test_dates_are_formatted_as_airflow_formats_them(tmp_path: Path) -> None:
    env = TaskEnvironment.from_env(task_env(tmp_path, "t"))
    ti = TaskInstance.from_environment(env)
    context = build_context(env, ti, None, None)
    assert context["ds"] == "2024-03-05"
    assert context["ds_nodash"] == "20240305"
    assert context["ts"] == "2024-03-05T06:07:08+00:00"
    assert context["ts_nodash"] == "20240305T060708"
    assert context["ts_nodash_with_tz"] == "20240305T060708+0000"
    assert context["logical_date"] == datetime(2024, 3, 5, 6, 7, 8, tzinfo=UTC)
    assert context["logical_date"].tzinfo is not None


def test_an_offset_logical_date_becomes_utc(tmp_path: Path) -> None:
    env = task_env(tmp_path, "t")
    env["KDAG_LOGICAL_DATE"] = "2024-03-05T01:30:00+02:00"
    assert TaskEnvironment.from_env(env).logical_date == datetime(2024, 3, 4, 23, 30, tzinfo=UTC)


def test_context_has_every_documented_key(tmp_path: Path) -> None:
    env = TaskEnvironment.from_env(task_env(tmp_path, "t", dag_id="d", params={"p": 1}, conf={"c": 2}))
    ti = TaskInstance.from_environment(env)
    context = build_context(env, ti, None, None)
    documented = {
        "ti",
        "task_instance",
        "ds",
        "ds_nodash",
        "ts",
        "ts_nodash",
        "logical_date",
        "run_id",
        "dag_id",
        "task_id",
        "params",
        "dag_run",
        "conf",
        "task",
        "dag",
    }
    assert documented <= set(context)
    assert context["ti"] is ti and context["task_instance"] is ti
    assert context["params"] == {"p": 1} and context["params"] is ti.params
    assert context["dag_run"].conf == {"c": 2} and context["conf"] == {"c": 2}
    assert context["dag_run"].run_id == "etl-run-1" == context["run_id"]
    assert context["dag_run"].logical_date == context["logical_date"]
    json.dumps(context["params"])


def test_get_current_context_only_while_a_task_runs() -> None:
    with pytest.raises(RuntimeError, match="only while a task runs"):
        get_current_context()
    set_current_context({"ds": "x"})
    try:
        assert get_current_context() == {"ds": "x"}
    finally:
        set_current_context(None)


def test_data_interval_and_run_type_come_from_the_environment(tmp_path: Path) -> None:
    extra = {
        "KDAG_DATA_INTERVAL_START": "2026-01-01T00:00:00Z",
        "KDAG_DATA_INTERVAL_END": "2026-01-02T00:00:00Z",
        "KDAG_RUN_TYPE": "scheduled",
    }
    env = TaskEnvironment.from_env(task_env(tmp_path, "t", extra=extra))
    context = build_context(env, TaskInstance.from_environment(env), None, None)
    assert context["data_interval_start"] == datetime(2026, 1, 1, tzinfo=UTC)
    assert context["data_interval_end"] == datetime(2026, 1, 2, tzinfo=UTC)
    assert context["dag_run"].data_interval_end == datetime(2026, 1, 2, tzinfo=UTC)
    assert context["dag_run"].run_type == "scheduled"


def test_without_a_data_interval_the_run_covers_its_logical_date(tmp_path: Path) -> None:
    env = TaskEnvironment.from_env(task_env(tmp_path, "t"))
    context = build_context(env, TaskInstance.from_environment(env), None, None)
    assert context["data_interval_start"] == context["data_interval_end"] == context["logical_date"]
    assert context["dag_run"].run_type == "manual"
    with pytest.raises(RunnerConfigError, match="KDAG_DATA_INTERVAL_END"):
        TaskEnvironment.from_env(task_env(tmp_path, "t", extra={"KDAG_DATA_INTERVAL_END": "soon"}))
