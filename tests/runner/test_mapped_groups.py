"""Mapped task groups in the runner (kdag_runner.airflow.mapping, groups, xcom_arg): authoring as Airflow 3's
`@task_group` `partial`/`expand`/`expand_kwargs` accepts and refuses it, the group's tasks and the edges it
adds, the length expression `kdag compile` writes on each task, what an instance of a group's task gets (its
own element of the group's arguments, the same map index of the group's other tasks, every value of them
outside the group) and the check a task makes before pushing what a group expands over. Semantics from
Apache Airflow 3.3.2's source (airflow.sdk.definitions.decorators.task_group, taskgroup.MappedTaskGroup,
_internal.expandinput.MappedArgument, xcom_arg.PlainXComArg.resolve) and runs
(tests/local/test_local_mapping.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kdag_runner.airflow import DAG, DagDefinitionError, TaskGroup, XComArg, task, task_group
from kdag_runner.airflow.expand_input import MappedArgument
from kdag_runner.airflow.group_decorator import TaskGroupFunction
from kdag_runner.airflow.groups import closest_mapped_group
from kdag_runner.airflow.mapping import MappedTaskGroup
from kdag_runner.airflow.mapping_checks import UnmappableXComTypePushed, XComForMappingNotPushed
from kdag_runner.airflow.task_runner import run_task
from kdag_runner.context import build_context
from kdag_runner.environment import TaskEnvironment
from kdag_runner.xcom import TaskInstance

from .runner_support import instance_context, run_dag_file, task_env, write_mapped_store, write_store


def example() -> tuple[DAG, Any]:
    """Airflow's example_task_group_mapping, with a partial argument and a task after the group."""
    with DAG("d") as dag:

        @task
        def make() -> list[int]:
            return [1, 2, 3]

        @task_group
        def op(num: int, base: int) -> Any:
            @task
            def add_1(num: int, base: int) -> int:
                return num + base

            @task
            def mul_2(num: int) -> int:
                return num * 2

            return mul_2(add_1(num, base))

        @task
        def total(values: Any) -> int:
            return sum(values)

        total(op.partial(base=1).expand(num=make()))
    return dag, op


def one_task_group() -> TaskGroupFunction:
    """A new group function `grp(x)` with one task, `grp.t`, that returns its argument."""

    @task_group
    def grp(x: int) -> None:
        @task
        def t(x: int) -> int:
            return x

        t(x)

    group: TaskGroupFunction = grp
    return group


def group_of(dag: DAG, group_id: str) -> MappedTaskGroup:
    group = dag.task_group_dict[group_id]
    assert isinstance(group, MappedTaskGroup)
    return group


# -- authoring ------------------------------------------------------------------------------------------


def test_expand_makes_a_mapped_group_whose_tasks_are_prefixed_and_wait_for_what_it_maps_over() -> None:
    dag, _ = example()
    assert dag.task_ids == ["make", "op.add_1", "op.mul_2", "total"]
    group = group_of(dag, "op")
    assert group.is_mapped and not dag.task_group.is_mapped
    assert dag.task_dict["op.add_1"].upstream_task_ids == {"make"}  # the group's root, as in Airflow
    assert dag.task_dict["op.mul_2"].upstream_task_ids == {"op.add_1"}
    assert dag.task_dict["total"].upstream_task_ids == {"op.mul_2"}
    assert closest_mapped_group(dag.task_dict["op.mul_2"]) is group
    assert closest_mapped_group(dag.task_dict["total"]) is None
    assert group.length_expression() == {"xcom": {"task": "make", "key": "return_value"}}
    # The group's own tasks are plain operators: the group maps them.
    assert not getattr(dag.task_dict["op.add_1"], "is_mapped", False)
    num, base = dag.task_dict["op.add_1"].op_args  # type: ignore[attr-defined]
    assert isinstance(num, MappedArgument) and num.key == "num" and base == 1


def test_a_group_of_literals_and_nested_groups_and_a_task_given_the_argument_deeper() -> None:
    with DAG("d") as dag:

        @task
        def make() -> list[int]:
            return [1]

        @task_group
        def grid(letter: str, number: int) -> None:
            @task
            def first() -> int:
                return 1

            @task
            def combine(value: int, letter: str, number: int) -> str:
                return f"{letter}{number}{value}"

            value = first()
            with TaskGroup("inner"):
                combine(value, letter, number)

        grid.expand(letter=["a", "b"], number=make())
    assert dag.task_ids == ["make", "grid.first", "grid.inner.combine"]
    group = group_of(dag, "grid")
    assert closest_mapped_group(dag.task_dict["grid.inner.combine"]) is group
    assert group.length_expression() == {
        "product": [{"literal": 2}, {"xcom": {"task": "make", "key": "return_value"}}]
    }
    # The root waits for make (the group's edge); combine too, as its arguments name the group's XCom.
    assert dag.task_dict["grid.first"].upstream_task_ids == {"make"}
    assert dag.task_dict["grid.inner.combine"].upstream_task_ids == {"grid.first", "make"}


def test_expand_kwargs_maps_every_parameter_not_given_to_partial() -> None:
    with DAG("d") as dag:

        @task_group
        def pair(a: int, b: str, c: int = 0) -> None:
            @task
            def show(a: int, b: str, c: int) -> str:
                return f"{a}{b}{c}"

            show(a, b, c)

        pair.partial(c=5).expand_kwargs([{"a": 1, "b": "x"}, {"a": 2, "b": "y"}])
    a, b, c = dag.task_dict["pair.show"].op_args  # type: ignore[attr-defined]
    assert isinstance(a, MappedArgument) and isinstance(b, MappedArgument) and (a.key, b.key) == ("a", "b")
    assert c == 5
    assert group_of(dag, "pair").length_expression() == {"literal": 2}


def test_a_group_function_called_again_gets_a_new_id_and_override_renames_it() -> None:
    with DAG("d") as dag:
        grp = one_task_group()
        grp.expand(x=[1])
        grp.expand(x=[2])
        grp.override(group_id="named").expand(x=[3])
    assert dag.task_ids == ["grp.t", "grp__1.t", "named.t"]
    assert all(group_of(dag, g).is_mapped for g in ("grp", "grp__1", "named"))


def test_what_airflow_refuses_when_it_parses_the_file() -> None:
    grp = one_task_group()

    @task_group
    def anything(**kwargs: Any) -> None:
        return None

    with DAG("d"):
        with pytest.raises(DagDefinitionError, match="no arguments to expand against"):
            grp.expand()
        with pytest.raises(DagDefinitionError, match="expand\\(\\) got an unexpected type 'int' for keyword"):
            grp.expand(x=1)
        with pytest.raises(DagDefinitionError, match="unexpected keyword argument 'y'"):
            grp.expand(y=[1])
        with pytest.raises(DagDefinitionError, match="unexpected keyword argument 'y'"):
            grp.partial(y=1)
        with pytest.raises(DagDefinitionError, match="duplicate partial argument: x"):
            grp.partial(x=1).partial(x=2)
        with pytest.raises(DagDefinitionError, match="mapping already partial argument: x"):
            grp.partial(x=1).expand(x=[1])
        with pytest.raises(DagDefinitionError, match="expected XComArg or list\\[dict\\], not int"):
            grp.expand_kwargs(3)
        with pytest.raises(DagDefinitionError, match="with \\* or \\*\\* is not supported"):
            anything.expand_kwargs([{"a": 1}])
        # The DAG file's line is named, as for the other mapping errors.
        with pytest.raises(DagDefinitionError, match=r"DAG file '.*test_mapped_groups.py', line \d+:"):
            grp.expand(x="text")


def test_trigger_rule_always_in_a_mapped_group_is_refused_as_airflow_does() -> None:
    @task_group
    def grp(x: int) -> None:
        @task(trigger_rule="always")
        def t(x: int) -> int:
            return x

        t(x)

    with DAG("d"), pytest.raises(DagDefinitionError, match="not allowed with trigger rule 'always'"):
        grp.expand(x=[1, 2])


def test_mapping_inside_a_mapped_group_is_refused_by_kdag() -> None:
    @task
    def t(x: int) -> int:
        return x

    @task_group
    def inner(y: int) -> None:
        t(y)

    @task_group
    def with_group(x: int) -> None:
        inner.expand(y=[x])

    @task_group
    def with_task(x: int) -> None:
        t.expand(x=[1, 2])

    with DAG("d"):
        with pytest.raises(
            DagDefinitionError, match=r"mapped task group 'with_group\.inner' inside mapped task"
        ):
            with_group.expand(x=[1])
        with pytest.raises(DagDefinitionError, match="a mapped task inside mapped task group 'with_task'"):
            with_task.expand(x=[1])


# -- an instance's arguments ------------------------------------------------------------------------------


def test_an_instance_gets_its_own_element_the_last_argument_fastest(tmp_path: Path) -> None:
    def grid_dag() -> DAG:
        # Each instance loads the DAG file afresh (rendering fills the operator's fields in place).
        with DAG("d") as dag:

            @task_group
            def grid(letter: str, number: int, extra: str) -> None:
                @task
                def combine(letter: str, number: int, extra: str) -> str:
                    return f"{letter}{number}{extra}"

                combine(letter, number, extra)

            grid.partial(extra="!").expand(letter=["a", "b"], number=[1, 2, 3])
        return dag

    got = []
    for index in range(6):
        combine = grid_dag().task_dict["grid.combine"]
        context = instance_context(tmp_path / str(index), combine, index)
        outcome = run_task(combine, context)
        assert outcome.state == "success", outcome.error
        got.append(context["ti"].xcom_pull(task_ids="grid.combine"))
    assert got == ["a1!", "a2!", "a3!", "b1!", "b2!", "b3!"]


def test_an_instance_of_an_expand_kwargs_group_over_an_upstream_xcom(tmp_path: Path) -> None:
    with DAG("d") as dag:

        @task
        def records() -> list[dict[str, Any]]:
            return []

        @task_group
        def describe(name: str, size: int) -> None:
            @task
            def text(name: str, size: int) -> str:
                return f"{name}:{size}"

            text(name, size)

        describe.expand_kwargs(records())
    write_store(tmp_path, "records", {"return_value": [{"name": "a", "size": 1}, {"name": "b", "size": 2}]})
    text = dag.task_dict["describe.text"]
    context = instance_context(tmp_path, text, 1, ancestors=("records",))
    assert run_task(text, context).state == "success"
    assert context["ti"].xcom_pull(task_ids="describe.text") == "b:2"


def test_a_mapped_argument_outside_an_instance_cannot_resolve() -> None:
    with DAG("d") as dag:
        grp = one_task_group()
        grp.expand(x=[1])
    (argument,) = dag.task_dict["grp.t"].op_args  # type: ignore[attr-defined]
    ti = TaskInstance(task_id="grp.t", dag_id="d", run_id="r")
    with pytest.raises(RuntimeError, match="can't resolve task-mapping argument without expanding"):
        argument.resolve({"ti": ti})


# -- XComs of the group's tasks -------------------------------------------------------------------------


def test_inside_the_group_an_xcomarg_pulls_the_same_map_index_and_xcom_pull_every_value(
    tmp_path: Path,
) -> None:
    with DAG("d") as dag:

        @task_group
        def op(num: int) -> Any:
            @task
            def add_1(num: int) -> int:
                return num + 1

            @task
            def show(value: int, ti: Any = None) -> dict[str, Any]:
                return {
                    "value": value,
                    "all": ti.xcom_pull(task_ids="op.add_1"),
                    "mine": ti.xcom_pull(task_ids="op.add_1", map_indexes=ti.map_index),
                }

            return show(add_1(num))

        op.expand(num=[1, 2, 3])
    write_mapped_store(tmp_path, "op.add_1", [{"return_value": 2}, {"return_value": 3}, {"return_value": 4}])
    show = dag.task_dict["op.show"]
    context = instance_context(tmp_path, show, 1, ancestors=("op.add_1",), mapped={"op.add_1": 3})
    assert run_task(show, context).state == "success"
    assert context["ti"].xcom_pull(task_ids="op.show") == {"value": 3, "all": [2, 3, 4], "mine": 3}


def test_outside_the_group_an_xcomarg_gives_every_value_one_alone_as_itself(tmp_path: Path) -> None:
    with DAG("d") as dag:

        @task_group
        def op(num: int) -> Any:
            @task
            def add_1(num: int) -> int:
                return num + 1

            return add_1(num)

        added = op.expand(num=[1, 2])
    assert isinstance(added, XComArg)
    ti = TaskInstance(
        task_id="after",
        dag_id="d",
        run_id="r",
        ancestors=["op.add_1"],
        xcom_in=tmp_path / "xcom",
        mapped={"op.add_1": 2},
    )
    write_mapped_store(tmp_path, "op.add_1", [{"return_value": 2}, {"return_value": 3}])
    assert added.resolve({"ti": ti}) == [2, 3]
    # Airflow 3.3's pull of every map index gives a single value as itself (XCom.get_all, one task).
    one = tmp_path / "one"
    write_mapped_store(one, "op.add_1", [{"return_value": 2}, {}])
    ti_one = TaskInstance(
        task_id="after",
        dag_id="d",
        run_id="r",
        ancestors=["op.add_1"],
        xcom_in=one / "xcom",
        mapped={"op.add_1": 2},
    )
    assert added.resolve({"ti": ti_one}) == 2
    assert dag.task_dict["op.add_1"].task_id == "op.add_1"


def test_the_task_a_group_expands_over_checks_its_value_before_pushing_it(tmp_path: Path) -> None:
    with DAG("d") as dag:

        @task
        def make() -> Any:
            return None

        grp = one_task_group()
        grp.expand(x=make())
    make = dag.task_dict["make"]
    env = TaskEnvironment.from_env(task_env(tmp_path, "make"))
    ti = TaskInstance.from_environment(env)
    context = build_context(env, ti, make, dag)
    with pytest.raises(XComForMappingNotPushed):
        make.push_result(ti, None)
    with pytest.raises(UnmappableXComTypePushed, match="unmappable return type 'int'"):
        make.push_result(ti, 5)
    make.push_result(ti, [1, 2])
    assert context["ti"].xcom_pull(task_ids="make") == [1, 2]


def test_an_instance_runs_through_the_runner_from_the_dag_file(tmp_path: Path) -> None:
    dag_file = tmp_path / "groups.py"
    dag_file.write_text(
        "from datetime import datetime\n"
        "from airflow.sdk import DAG, task, task_group\n"
        "with DAG('test_dag', start_date=datetime(2024, 1, 1), schedule=None):\n"
        "    @task_group\n"
        "    def op(num):\n"
        "        @task\n"
        "        def add_1(num):\n"
        "            return num + 1\n"
        "        @task\n"
        "        def mul_2(num):\n"
        "            return num * 2\n"
        "        return mul_2(add_1(num))\n"
        "    op.expand(num=[1, 2, 3])\n"
    )
    write_mapped_store(tmp_path, "op.add_1", [{"return_value": 2}, {"return_value": 3}, {"return_value": 4}])
    results = run_dag_file(
        tmp_path,
        dag_file,
        [("op.mul_2", ["op.add_1"])],
        extra={"KDAG_MAP_INDEX": "2", "KDAG_MAPPED": '{"op.add_1": 3}'},
    )
    result = results["op.mul_2"]
    assert result.returncode == 0, result.stderr
    assert result.xcoms == {"return_value": 8}
