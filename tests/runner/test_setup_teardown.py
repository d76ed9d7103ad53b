"""Setup and teardown tasks as context managers (`kdag_runner/airflow/setup_teardown.py`): which edges each
form of `with` adds. Every expected edge set is what Apache Airflow 3.3.2 builds from the same
definitions (`task.upstream_task_ids` of the DAG objects it loaded, recorded 2026-11-30); the run itself is
compared in tests/local/test_local_setup_teardown.py."""

from __future__ import annotations

from typing import Any

import pytest
from kdag_runner.airflow import DAG, DagDefinitionError, EmptyOperator, setup, task, teardown
from kdag_runner.airflow import setup_teardown as scopes


def empty(task_id: str) -> EmptyOperator:
    return EmptyOperator(task_id=task_id)


def edges(dag: DAG) -> dict[str, list[str]]:
    return {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks}  # type: ignore[attr-defined]


def test_with_setup_rshift_teardown_puts_the_block_between_them() -> None:
    with DAG("d") as dag:
        s, t = empty("s").as_setup(), empty("t").as_teardown()
        with s >> t:
            a = empty("a")
            a >> empty("b")
            empty("c")
    assert edges(dag) == {"s": [], "t": ["b", "c", "s"], "a": ["s"], "b": ["a"], "c": ["s"]}


def test_nested_scopes_order_the_setups_and_the_teardowns() -> None:
    """The inner setup after the outer one, the outer teardown after the inner one; as in Airflow, a task
    made in the outer block after the inner block ended is not wired (`w3`)."""
    with DAG("d") as dag:
        s1, t1 = empty("s1").as_setup(), empty("t1").as_teardown()
        s2, t2 = empty("s2").as_setup(), empty("t2").as_teardown()
        with s1 >> t1:
            empty("w1")
            with s2 >> t2:
                empty("w2")
            empty("w3")
    assert edges(dag) == {
        "s1": [],
        "t1": ["s1", "t2", "w1"],
        "s2": ["s1"],
        "t2": ["s2", "w2"],
        "w1": ["s1"],
        "w2": ["s2"],
        "w3": [],
    }


def test_with_a_setup_finds_its_teardowns_downstream() -> None:
    with DAG("d") as dag:
        s = empty("s").as_setup()
        empty("t1").as_teardown(setups=s)
        empty("t2").as_teardown(setups=s)
        with s:
            empty("w")
    assert edges(dag) == {"s": [], "t1": ["s", "w"], "t2": ["s", "w"], "w": ["s"]}


def test_with_a_setup_whose_work_is_already_chained() -> None:
    with DAG("d") as dag:
        s = empty("s").as_setup()
        empty("t").as_teardown(setups=s)
        with s:
            empty("a") >> empty("b")
    assert edges(dag) == {"s": [], "t": ["b", "s"], "a": ["s"], "b": ["a"]}


def test_with_as_teardown_setups_and_with_a_teardown_alone() -> None:
    with DAG("d") as dag:
        s, t = empty("s"), empty("t")
        with t.as_teardown(setups=s):
            empty("w1") >> empty("w2")
        lone = empty("lone").as_teardown()
        with lone:
            empty("w")
    assert edges(dag) == {
        "s": [],
        "t": ["s", "w2"],
        "w1": ["s"],
        "w2": ["w1"],
        "lone": ["w"],
        "w": [],
    }


def test_a_list_of_setups_before_a_teardown() -> None:
    with DAG("d") as dag:
        sa, sb, t = empty("sa").as_setup(), empty("sb").as_setup(), empty("t").as_teardown()
        with [sa, sb] >> t:
            empty("w")
    assert edges(dag) == {"sa": [], "sb": [], "t": ["sa", "sb", "w"], "w": ["sa", "sb"]}


def test_taskflow_teardown_of_a_setup_xcom_arg() -> None:
    """The example_setup_teardown_taskflow form: `with teardown(setup()):`; setup and teardown tasks made
    inside the block are left as they are."""

    @setup
    def make() -> int:
        return 1

    @teardown
    def drop(x: Any) -> None:
        return None

    @task
    def work(x: Any) -> Any:
        return x

    @task
    def more() -> None:
        return None

    @setup
    def inner_setup() -> None:
        return None

    with DAG("d") as dag:
        made = make()
        with drop(made) as scope:
            work(made) >> more()
            empty("plain")
            inner_setup()
        assert scope.operator.task_id == "drop"
    assert edges(dag) == {
        "make": [],
        "drop": ["make", "more", "plain"],
        "work": ["make"],
        "more": ["work"],
        "plain": ["make"],
        "inner_setup": [],
    }


def test_only_setups_and_teardowns_are_context_managers() -> None:
    with DAG("d"):
        plain = empty("plain")
        refused = pytest.raises(DagDefinitionError, match="task 'plain': only setup and teardown tasks can")
        with refused, plain:
            pass
        s, t = empty("s").as_setup(), empty("t").as_teardown()
        with pytest.raises(DagDefinitionError, match="tasks 's', 't': a `with` of several tasks needs all"):
            scopes.enter([s, t])


def test_an_error_inside_the_block_leaves_no_scope_open() -> None:
    with DAG("d") as dag:
        s, t = empty("s").as_setup(), empty("t").as_teardown()
        with pytest.raises(RuntimeError, match="boom"), s >> t:
            empty("inside")
            raise RuntimeError("boom")
        empty("outside")
    assert edges(dag)["outside"] == [] and edges(dag)["inside"] == []
    assert edges(dag)["t"] == ["s"]
