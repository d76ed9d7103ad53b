"""Task groups (kdag_runner.airflow.groups), edge labels and the dependency helpers (edges.py).

The expected dependencies of the `*_like_airflow` tests were read from the DAGs Apache Airflow 3.3.2 builds
from the same code (`task.upstream_task_ids`), on 2026-11-30.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from kdag_runner.airflow import (
    DAG,
    DagDefinitionError,
    EmptyOperator,
    Label,
    TaskGroup,
    chain,
    chain_linear,
    cross_downstream,
    task,
    task_group,
)
from kdag_runner.airflow.operators import BaseOperator


def upstream(dag: DAG) -> dict[str, list[str]]:
    return {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks}


def E(task_id: str, **kwargs: Any) -> EmptyOperator:
    return EmptyOperator(task_id=task_id, **kwargs)


@task
def produce() -> int:
    return 1


# -- ids --------------------------------------------------------------------------------------------


def test_groups_prefix_the_ids_of_their_tasks_and_groups() -> None:
    with DAG("d") as dag:
        top = E("top")
        with TaskGroup("outer") as outer:
            a = E("a")
            with TaskGroup("inner") as inner:
                b = E("b")
            with TaskGroup("plain", prefix_group_id=False) as plain:
                c = E("c")
                with TaskGroup("below") as below:
                    d = E("d")
    assert dag.task_ids == ["top", "outer.a", "outer.inner.b", "c", "below.d"]
    assert (inner.group_id, plain.group_id, below.group_id) == ("outer.inner", "outer.plain", "below")
    assert (inner.label, outer.child_id("x"), plain.child_id("x")) == ("inner", "outer.x", "x")
    assert a.task_group is outer and b.task_group is inner and top.task_group is dag.task_group
    assert c.task_group is plain and d.task_group is below
    assert dag.task_group.is_root and dag.task_group.group_id is None and not outer.is_root
    assert list(outer) == [a, b, c, d]
    assert outer["a"] is a and outer["inner"] is inner
    with pytest.raises(KeyError, match="Task 'nope' not found"):
        outer["nope"]


def test_task_group_argument_and_dag_argument_outside_with_blocks() -> None:
    dag = DAG("d")
    group = TaskGroup("g", dag=dag)
    inner = TaskGroup("i", parent_group=group)
    first = E("first", task_group=group)
    second = E("second", task_group=inner)
    third = E("third", dag=dag)
    with group:
        fourth = E("fourth", dag=dag)
    assert dag.task_ids == ["g.first", "g.i.second", "third", "g.fourth"]
    assert first.dag is dag and second.dag is dag and third.task_group is dag.task_group
    assert fourth.task_group is group


def test_group_default_args_sit_between_the_dags_and_the_tasks_like_airflow() -> None:
    with DAG("G", default_args={"retries": 1, "owner": "dag"}) as dag:
        with (
            TaskGroup("o", default_args={"retries": 2, "owner": "o"}),
            TaskGroup("i", default_args={"retries": 3}),
        ):
            E("t1")
            E("t2", default_args={"retries": 4})
            E("t3", retries=5, default_args={"retries": 4})
        E("t4")
    seen = {t.task_id: [t.retries, t.owner] for t in dag.tasks if isinstance(t, BaseOperator)}
    assert seen == {
        "o.i.t1": [3, "o"],
        "o.i.t2": [4, "o"],
        "o.i.t3": [5, "o"],
        "t4": [1, "dag"],
    }


def test_group_default_args_reach_an_operator_subclass_own_parameters() -> None:
    class Greeter(BaseOperator):
        def __init__(self, *, greeting: str = "hello", **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.greeting = greeting

    with DAG("d", default_args={"greeting": "dag"}):
        with TaskGroup("g", default_args={"greeting": "group"}):
            grouped = Greeter(task_id="t")
        outside = Greeter(task_id="u")
    assert (grouped.greeting, outside.greeting) == ("group", "dag")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: TaskGroup("a.b"), "TaskGroup 'a.b': group_id may contain only letters, digits, dashes"),
        (lambda: TaskGroup(""), "TaskGroup '': group_id must be a non-empty string"),
        (lambda: TaskGroup("x" * 201), "longer than 200 characters"),
        (lambda: TaskGroup("g", default_args=[1]), "TaskGroup 'g': default_args must be a dict"),
    ],
)
def test_bad_group_arguments_are_refused(make: Any, message: str) -> None:
    with DAG("d"), pytest.raises(DagDefinitionError, match=message):
        make()


def test_a_group_needs_a_dag() -> None:
    with pytest.raises(DagDefinitionError, match=r"TaskGroup 'g': must be created in a DAG"):
        TaskGroup("g")


def test_group_and_task_ids_may_not_collide() -> None:
    with DAG("d"):
        TaskGroup("g")
        E("t")
        with pytest.raises(DagDefinitionError, match="TaskGroup 'g': group_id already used in DAG 'd'"):
            TaskGroup("g")
        with pytest.raises(DagDefinitionError, match="TaskGroup 't': group_id already used in DAG 'd'"):
            TaskGroup("t")
        with pytest.raises(DagDefinitionError, match="task 'g': a task group of DAG 'd' has this id"):
            E("g")
        assert TaskGroup("g", add_suffix_on_collision=True).group_id == "g__1"
        assert TaskGroup("g", add_suffix_on_collision=True).group_id == "g__2"


def test_a_task_cannot_join_a_group_of_another_dag() -> None:
    other = DAG("other")
    group = TaskGroup("g", dag=other)
    with DAG("d"), pytest.raises(DagDefinitionError, match="task 't': its task group belongs to another DAG"):
        E("t", task_group=group)
    with pytest.raises(DagDefinitionError, match="task 'u': task_group must be a TaskGroup, got str"):
        E("u", dag=other, task_group="g")


# -- the DAG's view: task_group_dict for branching ----------------------------------------------------


def test_task_group_dict_finds_groups_by_full_id_and_their_roots() -> None:
    with DAG("d") as dag, TaskGroup("outer") as outer:
        a = E("a")
        with TaskGroup("inner") as inner:
            b = E("b")
            c = E("c")
        a >> b
    assert dag.task_group_dict == {"outer": outer, "outer.inner": inner}
    assert dag.has_task_group("outer.inner") and not dag.has_task_group("inner")
    assert [t.task_id for t in dag.task_group_dict["outer"].roots] == ["outer.a", "outer.inner.c"]
    assert [t.task_id for t in inner.roots] == ["outer.inner.b", "outer.inner.c"]
    assert [t.task_id for t in outer.leaves] == ["outer.inner.b", "outer.inner.c"]
    assert outer.has_task(c) and not inner.has_task(a)
    assert [t.task_id for t in dag.roots] == ["outer.a", "outer.inner.c"]


# -- dependencies on whole groups ---------------------------------------------------------------------


def test_lists_around_a_group_connect_its_roots_and_leaves_like_airflow() -> None:
    with DAG("A") as dag:
        a, b = E("a"), E("b")
        with TaskGroup("g") as g:
            r1, l1 = E("r1"), E("l1")
            E("r2")
            r1 >> l1
        [a, b] >> g >> [E("x"), E("y")]
    assert upstream(dag) == {
        "a": [],
        "b": [],
        "g.l1": ["g.r1"],
        "g.r1": ["a", "b"],
        "g.r2": ["a", "b"],
        "x": ["g.l1", "g.r2"],
        "y": ["g.l1", "g.r2"],
    }
    assert g.upstream_task_ids == {"a", "b"} and g.downstream_task_ids == {"x", "y"}


def test_nested_groups_and_group_to_group_like_airflow() -> None:
    with DAG("B") as dag:
        t = E("t")
        with TaskGroup("outer") as outer:
            o = E("o")
            with TaskGroup("inner") as inner:
                E("i1")
            o >> inner
        with TaskGroup("other") as other:
            E("z")
        t >> outer >> other
        inner >> E("after_inner")
    assert upstream(dag) == {
        "after_inner": ["outer.inner.i1"],
        "other.z": ["outer.inner.i1"],
        "outer.inner.i1": ["outer.o"],
        "outer.o": ["t"],
        "t": [],
    }
    assert outer.downstream_group_ids == {"other"} and other.upstream_group_ids == {"outer"}


def test_a_teardown_at_the_end_of_a_group_is_not_its_leaf_like_airflow() -> None:
    with DAG("C") as dag:
        with TaskGroup("g") as g:
            s = E("s").as_setup()
            w, w2, td = E("w"), E("w2"), E("td")
            s >> w >> w2 >> td.as_teardown(setups=s)
        after, before = E("after"), E("before")
        g >> after
        before >> g
    assert upstream(dag) == {
        "after": ["g.w2"],
        "before": [],
        "g.s": ["before"],
        "g.td": ["g.s", "g.w2"],
        "g.w": ["g.s"],
        "g.w2": ["g.w"],
    }


def test_chain_takes_groups_xcom_args_and_lists_like_airflow() -> None:
    with DAG("D") as dag:
        t = E("t")
        with TaskGroup("g") as g:
            E("a")
        with TaskGroup("g2") as g2:
            E("b") >> E("c")
        chain(t, g, g2, produce(), [E("l1"), E("l2")], [E("m1"), E("m2")])
    assert upstream(dag) == {
        "g.a": ["t"],
        "g2.b": ["g.a"],
        "g2.c": ["g2.b"],
        "l1": ["produce"],
        "l2": ["produce"],
        "m1": ["l1"],
        "m2": ["l2"],
        "produce": ["g2.c"],
        "t": [],
    }
    with DAG("bad"), pytest.raises(DagDefinitionError, match="lists of different lengths"):
        chain([E("p")], [E("q"), E("r")])


def test_an_empty_group_passes_on_what_was_set_upstream_of_it_like_airflow() -> None:
    with DAG("E") as dag:
        a = E("a")
        with TaskGroup("empty") as empty:
            pass
        a >> empty
        b = E("b")
        empty >> b
    assert upstream(dag) == {"a": [], "b": ["a"]}


def test_xcom_args_on_either_side_of_a_group_like_airflow() -> None:
    with DAG("F") as dag:
        with TaskGroup("g") as g:
            E("only")
        up = produce()
        up >> g
        g >> produce()
    assert upstream(dag) == {"g.only": ["produce"], "produce": [], "produce__1": ["g.only"]}


def test_group_shift_operators_return_the_other_side() -> None:
    with DAG("d"):
        with TaskGroup("g") as g:
            E("a")
        x, y = E("x"), E("y")
        assert (g >> x) is x and (g << y) is y
        assert ([E("l")] >> g) is g and ([E("r")] << g) is g


# -- @task_group ---------------------------------------------------------------------------------------


def test_task_group_decorator_returns_the_functions_result_or_the_group() -> None:
    @task
    def double(value: int) -> int:
        return value * 2

    @task_group
    def twice(value: Any) -> Any:
        """Doubles twice."""
        return double(double(value))

    @task_group(group_id="checks", default_args={"retries": 4}, tooltip="given")
    def checks() -> None:
        E("first")

    with DAG("d") as dag:
        start = produce()
        first = twice(start)
        second = twice(first)
        group = checks()
        first >> group
        end = E("end")
        group >> end
    assert dag.task_ids == [
        "produce",
        "twice.double",
        "twice.double__1",
        "twice__1.double",
        "twice__1.double__1",
        "checks.first",
        "end",
    ]
    assert first.operator.task_id == "twice.double__1" and second.operator.task_id == "twice__1.double__1"
    assert isinstance(group, TaskGroup) and group.group_id == "checks"
    assert dag.get_task("checks.first").upstream_task_ids == {"twice.double__1"}
    assert dag.get_task("end").upstream_task_ids == {"checks.first"}
    assert dag.get_task("checks.first").retries == 4
    assert dag.task_group_dict["twice"].tooltip == "Doubles twice." and group.tooltip == "given"


def test_task_group_decorator_override_and_positional_name() -> None:
    @task_group
    def grp() -> None:
        E("x")

    named = task_group("ignored")(grp.function)  # Airflow too ignores a positional group id
    with DAG("d") as dag:
        grp.override(group_id="renamed", prefix_group_id=False)()
        named()
    assert dag.task_ids == ["x", "grp.x"]
    assert set(dag.task_group_dict) == {"renamed", "grp"}


def test_task_group_decorator_refuses_unknown_arguments() -> None:
    @task_group
    def grp(value: Any) -> None:
        E("x")

    with pytest.raises(DagDefinitionError, match="@task_group 'grp': unknown argument 'colour'"):
        task_group(colour="red")(grp.function)


# -- edge labels, chain_linear, cross_downstream ----------------------------------------------------


def test_labels_connect_their_sides_and_are_recorded() -> None:
    with DAG("d") as dag:
        a, b, c, d = E("a"), E("b"), E("c"), E("d")
        a >> Label("first") >> b
        [a, b] >> Label("to c") >> c
        d << Label("back") << c
        produce() >> Label("from xcom") >> d
    assert upstream(dag) == {"a": [], "b": ["a"], "c": ["a", "b"], "d": ["c", "produce"], "produce": []}
    assert dag.get_edge_info("a", "b") == {"label": "first"}
    assert dag.get_edge_info("b", "c") == {"label": "to c"}
    assert dag.get_edge_info("c", "d") == {"label": "back"}
    assert dag.get_edge_info("produce", "d") == {"label": "from xcom"}
    assert dag.get_edge_info("a", "d") == {}


def test_a_label_across_groups_connects_the_groups_like_airflow() -> None:
    with DAG("q3") as dag:
        with TaskGroup("g"):
            a, a2 = E("a"), E("a2")
            a >> a2
        b = E("b")
        a >> Label("x") >> b
        c = E("c")
        with TaskGroup("h"):
            h1, h2 = E("h1"), E("h2")
            h1 >> h2
        c >> Label("y") >> h2
    # Airflow makes `b` downstream of group g's leaf, not of `a`; the other side is not converted.
    assert upstream(dag) == {
        "g.a": [],
        "g.a2": ["g.a"],
        "b": ["g.a2"],
        "c": [],
        "h.h1": [],
        "h.h2": ["c", "h.h1"],
    }
    assert dag.get_edge_info("g", "b") == {"label": "x"}


def test_set_downstream_takes_an_edge_modifier() -> None:
    with DAG("d") as dag:
        a, b = E("a"), E("b")
        a.set_downstream(b, edge_modifier=Label("direct"))
    assert dag.get_edge_info("a", "b") == {"label": "direct"}


def test_labels_refuse_what_is_not_a_task() -> None:
    with pytest.raises(DagDefinitionError, match=r"Label\('x'\): cannot label an edge to int"):
        Label("x") >> 3


def test_chain_linear_connects_every_task_of_one_element_to_the_next() -> None:
    with DAG("d") as dag:
        op1, op2, op3, op4, op5, op6, op7 = (E(f"op{n}") for n in range(1, 8))
        chain_linear(op1, [op2, op3], [op4, op5, op6], op7)
    assert upstream(dag) == {
        "op1": [],
        "op2": ["op1"],
        "op3": ["op1"],
        "op4": ["op2", "op3"],
        "op5": ["op2", "op3"],
        "op6": ["op2", "op3"],
        "op7": ["op4", "op5", "op6"],
    }


@pytest.mark.parametrize(
    ("elements", "message"),
    [
        ((), "chain_linear: no tasks given"),
        (("one",), "chain_linear: no dependencies were set. Did you forget to expand with `\\*`\\?"),
        (("label",), "chain_linear: labels are not supported"),
    ],
)
def test_chain_linear_mistakes(elements: tuple[str, ...], message: str) -> None:
    with DAG("d"):
        things = {"one": [E("a"), E("b")], "label": Label("x")}
        with pytest.raises(DagDefinitionError, match=message):
            chain_linear(*(things[e] for e in elements))


def test_cross_downstream_connects_every_pair() -> None:
    with DAG("d") as dag:
        t1, t2 = E("t1"), E("t2")
        with TaskGroup("g"):
            E("in_g")
        cross_downstream([t1, produce()], [E("t4"), TaskGroup("g2") and E("t5")])
        cross_downstream([t2], dag.task_group_dict["g"])
    assert upstream(dag) == {
        "g.in_g": ["t2"],
        "produce": [],
        "t1": [],
        "t2": [],
        "t4": ["produce", "t1"],
        "t5": ["produce", "t1"],
    }


def test_the_airflow_import_paths_of_groups_edges_and_decorators(tmp_path: Path) -> None:
    """Airflow 2 and 3 paths a DAG file imports these from, served by compat's shim."""
    path = tmp_path / "paths.py"
    path.write_text(
        "from airflow.utils.task_group import TaskGroup\n"
        "from airflow.utils.edgemodifier import Label, EdgeModifier\n"
        "from airflow.decorators import task, task_group, setup, teardown\n"
        "from airflow.models.baseoperator import chain, chain_linear, cross_downstream\n"
        "from airflow.utils.helpers import cross_downstream as helpers_cross\n"
        "from airflow.sdk import DAG, TaskGroup as SdkGroup, Label as SdkLabel, chain_linear as sdk_linear\n"
        "from airflow.sdk import setup as sdk_setup, teardown as sdk_teardown, task_group as sdk_group\n"
        "from airflow.sdk.definitions.taskgroup import TaskGroup as DefGroup\n"
        "from airflow.sdk.definitions.edges import Label as DefLabel\n"
        "from airflow.sdk.definitions.decorators import task_group as def_group\n"
        "assert TaskGroup is SdkGroup is DefGroup and Label is SdkLabel is DefLabel\n"
        "assert task_group is sdk_group is def_group and setup is sdk_setup and teardown is sdk_teardown\n"
        "assert chain_linear is sdk_linear and cross_downstream is helpers_cross\n"
        "assert isinstance(Label('x'), EdgeModifier)\n"
        "with DAG('paths') as dag:\n"
        "    with TaskGroup('g'):\n"
        "        task(lambda: 1, task_id='one')()\n"
    )
    code = (
        "import sys\n"
        "from kdag_runner import compat\n"
        f"dags = compat.load_dags({str(path)!r})\n"
        "print(dags['paths'].task_ids)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['g.one']"
