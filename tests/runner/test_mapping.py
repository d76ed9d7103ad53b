"""Dynamic task mapping in the runner (kdag_runner.airflow.mapping, xcom_arg, xcom, report): authoring as
Airflow 3 accepts and refuses it, the length expression compile writes, an instance's own arguments (cross
product, dict pairs, expand_kwargs, zip/map/concat), pulls from a mapped ancestor laid out as its
projected volume, the checks an upstream task makes before pushing what a mapped task expands over, and
the termination report (`xcomLengths`, `renderedMapIndex`). Semantics from Apache Airflow 3.3.2's source
(airflow.sdk.definitions.mappedoperator, _internal.expandinput, xcom_arg; execution_time.task_runner,
lazy_sequence) and runs (tests/local/test_local_mapping.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from kdag_runner import store
from kdag_runner.airflow import (
    DAG,
    AirflowSkipException,
    BashOperator,
    DagDefinitionError,
    MappedOperator,
    PythonOperator,
    XComArg,
    task,
)
from kdag_runner.airflow.mapped_operator import render_map_index, unmap
from kdag_runner.airflow.mapping_checks import MAX_MAP_LENGTH
from kdag_runner.airflow.operators import BaseOperator
from kdag_runner.airflow.task_runner import run_task
from kdag_runner.context import build_context
from kdag_runner.environment import TaskEnvironment
from kdag_runner.report import LENGTHS_BUDGET, TERMINATION_MESSAGE_MAX, add_lengths, report_line
from kdag_runner.xcom import LazyXComSequence, TaskInstance

from .runner_support import instance_context, run_runner, task_env, write_mapped_store, write_store


def operator(arg: Any) -> MappedOperator:
    op = arg.operator if isinstance(arg, XComArg) else arg
    assert isinstance(op, MappedOperator)
    return op


# -- authoring ------------------------------------------------------------------------------------------


def test_partial_expand_makes_one_mapped_task_that_depends_on_what_it_maps_over() -> None:
    with DAG("d") as dag:

        @task
        def make() -> list[int]:
            return [1, 2]

        @task
        def add(x: int, y: int) -> int:
            return x + y

        made = make()
        added = add.partial(y=10).expand(x=made)
        echo = BashOperator.partial(task_id="echo", env={"A": "1"}).expand(bash_command=["echo a", "echo b"])
    op = operator(added)
    assert op.task_id == "add" and op.is_mapped and dag.task_dict["add"] is op
    assert op.upstream_task_ids == {"make"}
    assert op.length_expression() == {"xcom": {"task": "make", "key": "return_value"}}
    assert op.mapped_into == "op_kwargs" and op.partial_kwargs["op_kwargs"] == {"y": 10}
    assert isinstance(echo, MappedOperator) and echo.operator_class is BashOperator
    assert echo.length_expression() == {"literal": 2}
    assert echo.task_type == "BashOperator"


def test_length_expressions_of_products_zips_and_concats() -> None:
    with DAG("d"):

        @task
        def a() -> list[int]:
            return [1]

        @task
        def b() -> list[int]:
            return [2]

        @task
        def show(v: Any, w: Any = None) -> Any:
            return v

        xa, xb = a(), b()
        product = show.expand(v=[1, 2, 3], w=xa)
        zipped = show.override(task_id="z").expand(v=xa.zip(xb, fillvalue=None))
        concat = show.override(task_id="c").expand(v=xa.concat(xb).concat(xa.map(str)))
        kwargs = show.override(task_id="k").expand_kwargs(xb.map(lambda n: {"v": n}))
        literal_kwargs = show.override(task_id="l").expand_kwargs([{"v": 1}, {"v": 2}])
    a_ref = {"xcom": {"task": "a", "key": "return_value"}}
    b_ref = {"xcom": {"task": "b", "key": "return_value"}}
    assert operator(product).length_expression() == {"product": [{"literal": 3}, a_ref]}
    assert operator(zipped).length_expression() == {"zip": [a_ref, b_ref], "fill": True}
    assert operator(concat).length_expression() == {"concat": [a_ref, b_ref, a_ref]}
    assert operator(kwargs).length_expression() == b_ref
    assert operator(literal_kwargs).length_expression() == {"literal": 2}
    assert operator(zipped).upstream_task_ids == {"a", "b"}


def test_mapping_over_a_key_is_allowed_and_its_key_encoded_by_the_caller() -> None:
    with DAG("d"):

        @task(multiple_outputs=True)
        def make() -> dict[str, list[int]]:
            return {"a/b": [1, 2]}

        @task
        def show(v: int) -> int:
            return v

        shown = show.expand(v=make()["a/b"])
    assert operator(shown).length_expression(store.encode_key) == {"xcom": {"task": "make", "key": "-a.2fb"}}


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda f, up: f.expand(), "no arguments to expand against"),
        (lambda f, up: f.expand(x="abc"), "expand() got an unexpected type 'str' for keyword argument 'x'"),
        (lambda f, up: f.expand(x=3), "expand() got an unexpected type 'int' for keyword argument 'x'"),
        (lambda f, up: f.expand(nope=[1]), "expand() got an unexpected keyword argument 'nope'"),
        (lambda f, up: f.partial(x=1).expand(x=[1]), "mapping already partial argument: x"),
        (lambda f, up: f.partial(x=1).partial(x=2), "duplicate partial argument: x"),
        (lambda f, up: f.expand(ti=[1]), "cannot call expand() on task context variable 'ti'"),
        (lambda f, up: f.expand_kwargs("x"), "expected XComArg or list[dict], not str"),
        (lambda f, up: f.expand_kwargs([1]), "expected XComArg or list[dict], not list"),
        (
            lambda f, up: f.override(trigger_rule="always").expand(x=up),
            "Task-generated mapping within a task using 'expand' is not allowed with trigger rule 'always'.",
        ),
    ],
)
def test_task_function_mappings_airflow_refuses(build: Any, message: str) -> None:
    with DAG("d"):

        @task
        def up() -> list[int]:
            return [1]

        @task
        def f(x: int) -> int:
            return x

        with pytest.raises(DagDefinitionError) as raised:
            build(f, up())
    assert str(raised.value).endswith(message)


def test_classic_operator_mappings_airflow_refuses() -> None:
    with DAG("d"):
        with pytest.raises(DagDefinitionError, match=r"BashOperator.partial\(\) got an unexpected keyword"):
            BashOperator.partial(task_id="b", nope=1)
        partial = BashOperator.partial(task_id="b", env={})
        with pytest.raises(
            DagDefinitionError, match="unexpected type 'str' for keyword argument bash_command"
        ):
            partial.expand(bash_command="echo")
        with pytest.raises(DagDefinitionError, match="unmappable or already specified argument: env"):
            partial.expand(env=[{}])
        with pytest.raises(DagDefinitionError, match="needs task_id"):
            PythonOperator.partial(python_callable=print)


def test_map_zip_and_concat_refuse_other_keys_as_airflow() -> None:
    with DAG("d"):

        @task
        def up() -> dict[str, int]:
            return {}

        with pytest.raises(ValueError, match="cannot map against non-return XCom"):
            up()["k"].map(str)
        with pytest.raises(ValueError, match="cannot concatenate non-return XCom"):
            up()["k"].concat(up())
        with pytest.raises(ValueError, match="plain function, not a @task operator"):
            up().map(up)


# -- an instance's arguments ------------------------------------------------------------------------------


def test_several_arguments_map_to_their_cross_product_the_last_fastest(tmp_path: Path) -> None:
    with DAG("d"):

        @task
        def combine(letter: str, number: int) -> str:
            return f"{letter}{number}"

        op = operator(combine.expand(letter=["a", "b"], number=[1, 2, 3]))
    made = []
    for index in range(6):
        context = instance_context(tmp_path / str(index), op, index)
        instance = unmap(op, context)
        assert isinstance(instance, PythonOperator) and instance.task_id == "combine"
        made.append(instance.execute(context))
    assert made == ["a1", "a2", "a3", "b1", "b2", "b3"]


def test_a_dict_maps_to_its_pairs_and_a_classic_operator_gets_its_arguments(tmp_path: Path) -> None:
    with DAG("d") as dag:
        op = PythonOperator.partial(task_id="p", python_callable=lambda pair: pair, retries=2).expand(
            op_args=[[("k", 1)], [("j", 2)]]
        )
    context = instance_context(tmp_path, op, 1)
    instance = unmap(op, context)
    assert isinstance(instance, PythonOperator)
    assert instance.op_args == [("j", 2)] and instance.retries == 2 and instance.dag is dag
    assert instance.upstream_task_ids == op.upstream_task_ids

    with DAG("e"):

        @task
        def show(pair: Any) -> str:
            key, value = pair
            return f"{key}={value}"

        shown = operator(show.expand(pair={"a": 1, "b": 2}))
    context = instance_context(tmp_path / "e", shown, 1)
    assert unmap(shown, context).execute(context) == "b=2"


def test_expand_kwargs_over_a_literal_list_and_an_upstream_list(tmp_path: Path) -> None:
    with DAG("d"):

        @task
        def numbers() -> list[int]:
            return [3, 4]

        @task
        def pair(x: int, y: int) -> list[int]:
            return [x, y]

        literal = operator(pair.expand_kwargs([{"x": 1, "y": 2}, {"x": 5, "y": 6}]))
        over = operator(
            pair.override(task_id="over").expand_kwargs(numbers().map(lambda n: {"x": n, "y": n * n}))
        )
    context = instance_context(tmp_path / "a", literal, 1)
    assert unmap(literal, context).execute(context) == [5, 6]
    write_store(tmp_path / "b", "numbers", {"return_value": [3, 4]})
    context = instance_context(tmp_path / "b", over, 0, ancestors=("numbers",))
    assert unmap(over, context).execute(context) == [3, 9]


def test_arguments_from_xcoms_are_never_rendered_nor_read_as_files_literal_ones_are(tmp_path: Path) -> None:
    """As Airflow's ``resolved_oids``: an instance renders the DAG file's values, never an XCom's (a value
    naming a template file is not read either), nor an XComArg's given to ``partial``."""
    (tmp_path / "run.sh").write_text("echo {{ ds }} from a file")
    write_store(tmp_path, "commands", {"return_value": ["run.sh", "{{ ds }}"]})
    with DAG("d") as dag:

        @task
        def commands() -> list[str]:
            return []

        @task
        def pair(fixed: str, value: str) -> list[str]:
            return [fixed, value]

        made = commands()
        from_xcom = operator(BashOperator.partial(task_id="from_xcom").expand(bash_command=made))
        literal = operator(
            BashOperator.partial(task_id="literal").expand(bash_command=["run.sh", "echo {{ ds }}"])
        )
        paired = operator(pair.partial(fixed=made).expand(value=["{{ ds }}"]))
    dag.fileloc = str(tmp_path / "dag.py")

    def rendered(op: MappedOperator, index: int) -> Any:
        context = instance_context(tmp_path, op, index, ancestors=("commands",))
        instance = unmap(op, context)
        instance.resolve_template_files()
        instance.render_template_fields(context)
        return instance.bash_command if isinstance(instance, BashOperator) else vars(instance)["op_kwargs"]

    assert [rendered(from_xcom, i) for i in (0, 1)] == ["run.sh", "{{ ds }}"]
    assert [rendered(literal, i) for i in (0, 1)] == ["echo 2024-03-05 from a file", "echo 2024-03-05"]
    assert rendered(paired, 0) == {"fixed": ["run.sh", "{{ ds }}"], "value": "2024-03-05"}


def test_zip_map_and_concat_give_each_instance_its_element(tmp_path: Path) -> None:
    with DAG("d"):

        @task
        def numbers() -> list[int]:
            return [1, 2, 3]

        @task
        def letters() -> list[str]:
            return ["x", "y"]

        @task
        def show(value: Any) -> Any:
            return value

        def skip_twos(n: int) -> int:
            if n == 2:
                raise AirflowSkipException("no twos")
            return n * 100

        nums, lets = numbers(), letters()
        zipped = operator(show.override(task_id="z").expand(value=nums.zip(lets, fillvalue="-")))
        concat = operator(show.override(task_id="c").expand(value=nums.concat(lets)))
        mapped = operator(show.override(task_id="m").expand(value=nums.map(skip_twos)))
    write_store(tmp_path, "numbers", {"return_value": [1, 2, 3]})
    write_store(tmp_path, "letters", {"return_value": ["x", "y"]})

    def value(op: MappedOperator, index: int) -> Any:
        context = instance_context(tmp_path, op, index, ancestors=("numbers", "letters"))
        return unmap(op, context).execute(context)

    assert [value(zipped, i) for i in range(3)] == [(1, "x"), (2, "y"), (3, "-")]
    assert [value(concat, i) for i in range(5)] == [1, 2, 3, "x", "y"]
    assert value(mapped, 2) == 300
    with pytest.raises(AirflowSkipException, match="no twos"):
        value(mapped, 1)


def test_a_reduce_gets_the_instances_values_in_map_order_as_a_lazy_sequence(tmp_path: Path) -> None:
    with DAG("d"):

        @task
        def add(x: int) -> int:
            return x + 1

        @task
        def total(values: Any) -> Any:
            return {"sum": sum(values), "repr": repr(values)}

        result = total(add.expand(x=[1, 2, 3]))
    write_mapped_store(tmp_path, "add", [{"return_value": 2}, {}, {"return_value": 4}])
    op = result.operator
    assert isinstance(op, BaseOperator)
    env = TaskEnvironment.from_env(
        task_env(tmp_path, "total", ancestors=["add"], extra={"KDAG_MAPPED": json.dumps({"add": 3})})
    )
    ti = TaskInstance.from_environment(env)
    context = build_context(env, ti, op, op.dag)
    outcome = run_task(op, context)
    assert outcome.state == "success", outcome.error
    assert store.decode(ti.store_data())["return_value"] == {"sum": 6, "repr": "LazyXComSequence([2 items])"}
    assert repr(LazyXComSequence([1])) == "LazyXComSequence([1 item])"


# -- pulling from a mapped ancestor -------------------------------------------------------------------------


def test_xcom_pull_from_a_mapped_task_as_airflow_3_3(tmp_path: Path) -> None:
    write_store(tmp_path, "make", {"return_value": [1, 2, 3]})
    write_mapped_store(
        tmp_path,
        "m",
        [{"return_value": 10, "seen": "a"}, {"seen": "b"}, {"return_value": 30, "seen": "c"}],
    )
    write_mapped_store(tmp_path, "single", [{"return_value": 42}])
    write_mapped_store(tmp_path, "nothing", [{}, {}])
    env = TaskEnvironment.from_env(
        task_env(
            tmp_path,
            "pull",
            ancestors=["make", "m", "single", "nothing"],
            extra={"KDAG_MAPPED": json.dumps({"m": 3, "single": 1, "nothing": 2, "empty": 0})},
        )
    )
    ti = TaskInstance.from_environment(env)
    assert ti.xcom_pull(task_ids="m") == [10, 30]  # map order, the instance without a value left out
    assert ti.xcom_pull(task_ids="m", key="seen") == ["a", "b", "c"]
    assert ti.xcom_pull(task_ids="single") == 42  # one value: the value itself
    assert ti.xcom_pull(task_ids="nothing") is None
    assert ti.xcom_pull(task_ids=["make", "m"]) == [[1, 2, 3], 10, 30]
    assert ti.xcom_pull(task_ids="m", map_indexes=2) == 30
    assert ti.xcom_pull(task_ids="m", map_indexes=1) is None
    assert ti.xcom_pull(task_ids="m", map_indexes=1, default="d") == "d"
    assert ti.xcom_pull(task_ids="m", map_indexes=[0, 1, 2]) == [10, None, 30]
    assert ti.xcom_pull(task_ids="m", map_indexes=None, default="d") == "d"
    assert ti.xcom_pull(task_ids="m", map_indexes=7, default="d") == "d"
    assert ti.xcom_pull(task_ids="make", map_indexes=0, default="d") == "d"
    assert ti.xcom_pull_mapped("m") == [10, 30]
    assert ti.xcom_pull_mapped("make") == [[1, 2, 3]]


def test_the_context_of_a_mapped_ancestor_merges_its_instances_in_order(tmp_path: Path) -> None:
    write_mapped_store(tmp_path, "m", [{"__context": {"a": 1, "who": 0}}, {"__context": {"who": 1}}])
    env = TaskEnvironment.from_env(
        task_env(tmp_path, "after", ancestors=["m"], extra={"KDAG_MAPPED": json.dumps({"m": 2})})
    )
    assert TaskInstance.from_environment(env).context == {"a": 1, "who": 1}


def test_environment_checks_map_variables(tmp_path: Path) -> None:
    from kdag_runner.environment import RunnerConfigError

    env = TaskEnvironment.from_env(task_env(tmp_path, "t", extra={"KDAG_MAP_INDEX": "4"}))
    assert env.map_index == 4 and env.mapped == {}
    assert TaskEnvironment.from_env(task_env(tmp_path, "t")).map_index == -1
    with pytest.raises(RunnerConfigError, match="KDAG_MAP_INDEX must be an integer"):
        TaskEnvironment.from_env(task_env(tmp_path, "t", extra={"KDAG_MAP_INDEX": "x"}))
    with pytest.raises(RunnerConfigError, match="KDAG_MAPPED must be a JSON object of task ids"):
        TaskEnvironment.from_env(task_env(tmp_path, "t", extra={"KDAG_MAPPED": '{"m": "3"}'}))


# -- what an upstream task checks before pushing -----------------------------------------------------------


@pytest.mark.parametrize(
    ("returned", "error"),
    [
        (None, "XComForMappingNotPushed: did not push XCom for task mapping"),
        (5, "UnmappableXComTypePushed: unmappable return type 'int'"),
        ("abc", "UnmappableXComTypePushed: unmappable return type 'str'"),
        (
            list(range(MAX_MAP_LENGTH + 1)),
            "UnmappableXComLengthPushed: pushed value is too large to map as a downstream's dependency:"
            " 1025 items, max_map_length is 1024",
        ),
    ],
)
def test_an_upstream_of_a_mapped_task_fails_on_what_cannot_be_mapped(
    tmp_path: Path, returned: Any, error: str
) -> None:
    dag_file = tmp_path / "dag.py"
    dag_file.write_text(
        "from airflow.sdk import DAG, task\n"
        "with DAG('d'):\n"
        "    @task\n"
        "    def make():\n"
        f"        return {returned!r}\n"
        "    @task\n"
        "    def each(x):\n"
        "        return x\n"
        "    each.expand(x=make())\n"
    )
    result = run_runner(tmp_path, "make", dag_id="d", extra={"KDAG_DAG_FILE": str(dag_file)})
    assert result.returncode == 1
    assert result.termination is not None and result.termination["error"] == error
    assert "return_value" not in result.data  # refused before it was pushed, as Airflow's push is


def test_a_list_within_the_cap_is_pushed_and_its_length_reported(tmp_path: Path) -> None:
    dag_file = tmp_path / "dag.py"
    dag_file.write_text(
        "from airflow.sdk import DAG, task\n"
        "with DAG('d'):\n"
        "    @task\n"
        "    def make(ti=None):\n"
        "        ti.xcom_push(key='odd key', value={'a': 1, 'b': 2})\n"
        "        ti.xcom_push(key='text', value='not mapped over')\n"
        "        return [1, 2, 3]\n"
        "    @task\n"
        "    def each(x):\n"
        "        return x\n"
        "    each.expand(x=make())\n"
    )
    result = run_runner(tmp_path, "make", dag_id="d", extra={"KDAG_DAG_FILE": str(dag_file)})
    assert result.returncode == 0, result.stderr
    assert result.termination is not None
    assert result.termination["xcomLengths"] == {"return_value": 3, "-odd.20key": 2}


def test_an_instance_runs_with_its_index_and_reports_its_name(tmp_path: Path) -> None:
    dag_file = tmp_path / "dag.py"
    dag_file.write_text(
        "from airflow.sdk import DAG, task, get_current_context\n"
        "with DAG('d'):\n"
        "    @task(map_index_template='{{ colour_name }}')\n"
        "    def paint(colour, ti=None):\n"
        "        get_current_context()['colour_name'] = 'the ' + colour\n"
        "        ti.xcom_push(key='index', value=ti.map_index)\n"
        "        return colour.upper()\n"
        "    paint.expand(colour=['red', 'green', 'blue'])\n"
    )
    result = run_runner(
        tmp_path, "paint", dag_id="d", extra={"KDAG_DAG_FILE": str(dag_file), "KDAG_MAP_INDEX": "1"}
    )
    assert result.returncode == 0, result.stderr
    assert result.xcoms == {"index": 1, "return_value": "GREEN"}
    assert result.termination is not None and result.termination["renderedMapIndex"] == "the green"


def test_a_map_function_that_skips_skips_the_instance(tmp_path: Path) -> None:
    dag_file = tmp_path / "dag.py"
    dag_file.write_text(
        "from airflow.sdk import DAG, task\n"
        "from airflow.exceptions import AirflowSkipException\n"
        "def no_twos(n):\n"
        "    if n == 2:\n"
        "        raise AirflowSkipException('no twos')\n"
        "    return n\n"
        "with DAG('d'):\n"
        "    @task\n"
        "    def make():\n"
        "        return [1, 2]\n"
        "    @task\n"
        "    def show(v):\n"
        "        return v\n"
        "    show.expand(v=make().map(no_twos))\n"
    )
    write_store(tmp_path, "make", {"return_value": [1, 2]})
    result = run_runner(
        tmp_path,
        "show",
        dag_id="d",
        ancestors=["make"],
        extra={"KDAG_DAG_FILE": str(dag_file), "KDAG_MAP_INDEX": "1"},
    )
    assert result.returncode == 4, result.stderr
    assert result.termination is not None and result.termination["skipped"] == "no twos"


def test_a_mapped_task_run_without_an_index_fails_as_airflow(tmp_path: Path) -> None:
    with DAG("d"):
        op = PythonOperator.partial(task_id="p", python_callable=print).expand(op_args=[[1]])
    context = instance_context(tmp_path, op, 0)
    context["ti"].map_index = -1
    with pytest.raises(RuntimeError, match="can't resolve task-mapping argument without expanding"):
        op.unmap(context)


def test_render_map_index_without_a_template_is_none(tmp_path: Path) -> None:
    with DAG("d"):
        op = PythonOperator.partial(task_id="p", python_callable=print).expand(op_args=[[1]])
    context = instance_context(tmp_path, op, 0)
    assert render_map_index(op, context) is None
    context["map_index_template"] = "n{{ ti.map_index }}" + "x" * 300
    rendered = render_map_index(op, context)
    assert rendered is not None and rendered.startswith("n0x") and len(rendered) == 250


# -- the report's lengths -------------------------------------------------------------------------------


def test_lengths_fill_the_report_up_to_the_budget_return_value_first() -> None:
    message: dict[str, Any] = {"xcomKeys": ["k"], "bytes": 1}
    lengths = {f"key{i:04d}" + "x" * 40: i for i in range(200)}
    lengths["return_value"] = 7
    add_lengths(message, lengths)
    kept = message["xcomLengths"]
    assert next(iter(kept)) == "return_value"
    assert 10 < len(kept) < 200
    assert len(report_line(message).encode()) <= LENGTHS_BUDGET < TERMINATION_MESSAGE_MAX
    empty: dict[str, Any] = {}
    add_lengths(empty, {})
    assert empty == {}
