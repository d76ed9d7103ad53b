"""`Param` and `ParamsDict` of the runner library, as Airflow 3's (`airflow.sdk.definitions.param`), less the
schema check, which kdag makes before a task starts (`kdag.params`, tests/controller/test_params.py)."""

from __future__ import annotations

import copy
from datetime import datetime
from pathlib import Path

import pytest
from kdag_runner.airflow import DAG, Param, ParamsDict, ParamValidationError, PythonOperator
from kdag_runner.airflow.params import NOTSET, params_dict, resolve_params


def test_a_param_holds_its_default_description_and_schema() -> None:
    param = Param(5, description="How many", type="integer", minimum=1)
    assert param.value == 5
    assert param.description == "How many"
    assert param.schema == {"type": "integer", "minimum": 1}
    assert param.full_schema() == {"type": "integer", "minimum": 1, "description": "How many"}
    assert param.has_value
    assert param.resolve() == 5
    assert repr(param) == "Param(5)"


def test_schema_gives_the_whole_schema() -> None:
    param = Param("a", schema={"type": "string", "enum": ["a", "b"]})
    assert param.schema == {"type": "string", "enum": ["a", "b"]}
    # A schema's own description wins over the argument in what kdag compile writes.
    assert Param(1, "arg", schema={"description": "own"}).full_schema() == {"description": "own"}


def test_a_param_without_a_default_has_no_value() -> None:
    param = Param(type="string")
    assert param.value is NOTSET
    assert not param.has_value
    with pytest.raises(ParamValidationError, match="No value passed and Param has no default value"):
        param.resolve()
    assert param.resolve(suppress_exception=True) is None
    assert param.resolve("given") == "given"
    assert param.value == "given"


def test_none_is_a_value_not_a_missing_default() -> None:
    param = Param(None, type=["null", "string"])
    assert param.value is None
    assert param.resolve() is None
    assert not param.has_value  # as Airflow's: None counts as no value here only


@pytest.mark.parametrize("value", [datetime(2026, 1, 1), {1, 2}, object()])
def test_a_value_must_be_json(value: object) -> None:
    with pytest.raises(ParamValidationError, match="must be json-serializable"):
        Param(value)
    with pytest.raises(ParamValidationError, match="must be json-serializable"):
        Param(1).resolve(value)


def test_params_dict_reads_values_and_holds_params() -> None:
    params = ParamsDict({"n": Param(3, type="integer"), "plain": "x"})
    assert params["n"] == 3
    assert params["plain"] == "x"
    assert dict(params) == {"n": 3, "plain": "x"}
    assert {**params} == {"n": 3, "plain": "x"}
    assert isinstance(params.get_param("n"), Param)
    assert [k for k, v in params.items() if isinstance(v, Param)] == ["n", "plain"]  # Params, as Airflow's
    assert params == {"n": 3, "plain": "x"}
    assert repr(params) == "{'n': 3, 'plain': 'x'}"
    assert "n" in params and len(params) == 2


def test_setting_a_plain_value_keeps_the_schema_and_a_param_replaces_it() -> None:
    params = ParamsDict({"n": Param(3, type="integer", minimum=1)})
    params["n"] = 7
    assert params.get_param("n").schema == {"type": "integer", "minimum": 1}
    assert params["n"] == 7
    assert params.given_as_param("n")
    params["n"] = Param(1, type="number")
    assert params.get_param("n").schema == {"type": "number"}
    params["new"] = 2
    assert not params.given_as_param("new")
    del params["n"]
    assert "n" not in params


def test_a_param_without_a_value_raises_when_read_and_dumps_as_none() -> None:
    params = ParamsDict({"who": Param(type="string"), "n": 1})
    with pytest.raises(ParamValidationError, match="No value passed"):
        params["who"]
    assert params.dump() == {"who": None, "n": 1}
    with pytest.raises(ParamValidationError, match="Invalid input for param who: No value passed"):
        params.validate()
    assert ParamsDict({"who": Param(type="string")}, suppress_exception=True).validate() == {"who": None}


def test_copies_and_updates_keep_params_and_which_were_given_as_params() -> None:
    base = ParamsDict({"n": Param(3, type="integer"), "plain": 1})
    for other in (copy.copy(base), copy.deepcopy(base), params_dict(base)):
        assert other == base
        assert other.given_as_param("n") and not other.given_as_param("plain")
        assert other.get_param("n").schema == {"type": "integer"}
    merged = ParamsDict({"n": 0})
    merged.update(base)
    assert merged.given_as_param("n") and merged["n"] == 3
    deep = copy.deepcopy(base)
    deep.get_param("n").schema["minimum"] = 1
    assert base.get_param("n").schema == {"type": "integer"}


def test_resolve_params_gives_plain_defaults_without_the_required_ones() -> None:
    declared = ParamsDict({"who": Param(type="string"), "n": Param(2), "plain": [1]})
    assert resolve_params(declared) == {"n": 2, "plain": [1]}
    assert resolve_params({"a": Param(1), "b": 2, "c": Param()}) == {"a": 1, "b": 2}
    assert resolve_params(None) == {}


def test_dag_and_task_params_are_params_dicts_and_default_args_params_are_the_dags() -> None:
    with DAG(
        "p",
        params={"n": Param(2, type="integer")},
        default_args={"params": {"from_default_args": 1}, "retries": 1},
    ) as dag:
        task = PythonOperator(task_id="t", python_callable=lambda: None, params={"x": Param(type="string")})
        other = PythonOperator(task_id="u", python_callable=lambda: None)
    assert isinstance(dag.params, ParamsDict)
    assert dag.params == {"n": 2, "from_default_args": 1}
    assert "params" not in dag.default_args and dag.default_args["retries"] == 1  # as Airflow's
    assert isinstance(task.params, ParamsDict)
    assert task.params.get_param("x").value is NOTSET
    assert len(other.params) == 0  # default_args' params went to the DAG, not to every task


def test_params_that_are_not_a_mapping_are_refused() -> None:
    with pytest.raises(TypeError, match="params must be a mapping"):
        params_dict(["n"])  # type: ignore[arg-type]


def test_the_shim_serves_param_params_dict_and_param_validation_error(tmp_path: Path) -> None:
    from kdag_runner.compat import load_dags

    path = tmp_path / "p.py"
    path.write_text(
        "from airflow.models.param import Param, ParamsDict\n"
        "from airflow.sdk.definitions.param import ParamsDict as SdkParamsDict\n"
        "from airflow.exceptions import ParamValidationError\n"
        "from airflow.sdk import DAG\n"
        "from airflow.operators.empty import EmptyOperator\n"
        "assert ParamsDict is SdkParamsDict\n"
        "try:\n"
        "    Param(object())\n"
        "except ParamValidationError:\n"
        "    pass\n"
        "with DAG('p', params=ParamsDict({'n': Param(1, type='integer')})) as dag:\n"
        "    EmptyOperator(task_id='t')\n",
        encoding="utf-8",
    )
    dag = load_dags(path)["p"]
    assert dag.params.get_param("n").schema == {"type": "integer"}
