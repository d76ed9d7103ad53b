"""TaskFlow beyond @task: multiple_outputs, @task.bash, @setup/@teardown, as_setup/as_teardown, XComArg
(`.output`, keys, `str()` in templates, resolution) and `.override`; and the TaskSpec fields compile makes
of them. Behaviour checked against Apache Airflow 3.3.2's source (airflow.sdk.bases.decorator,
airflow.sdk.definitions.xcom_arg, airflow.providers.standard.decorators.bash) and runs
(tests/local/test_local_groups.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional, TypedDict

import pytest
from kdag_runner.airflow import (
    DAG,
    AirflowSkipException,
    BashOperator,
    DagDefinitionError,
    EmptyOperator,
    PythonOperator,
    TaskGroup,
    TriggerRule,
    XComArg,
    setup,
    task,
    task_group,
    teardown,
)
from kdag_runner.airflow.operators import BaseOperator
from kdag_runner.airflow.task_runner import run_task
from kdag_runner.airflow.taskflow import BashTaskOperator
from kdag_runner.airflow.xcom_arg import XComNotFound
from kdag_runner.context import build_context
from kdag_runner.environment import TaskEnvironment
from kdag_runner.xcom import TaskInstance

from .runner_support import task_env, write_store


def context_for(tmp_path: Path, task: Any, ancestors: tuple[str, ...] = (), **params: Any) -> dict[str, Any]:
    env = TaskEnvironment.from_env(task_env(tmp_path, task.task_id, ancestors=ancestors, params=params))
    ti = TaskInstance.from_environment(env)
    ti.task = task
    return build_context(env, ti, task, task.dag)


def operator(arg: XComArg) -> BaseOperator:
    op = arg.operator
    assert isinstance(op, BaseOperator)
    return op


# -- multiple_outputs ---------------------------------------------------------------------------------


class Shape(TypedDict):
    side: int


def annotated_dict() -> dict[str, int]:
    return {}


def annotated_text() -> "dict":  # noqa: UP037 - a string annotation, as `from __future__ import annotations` makes
    return {}


def annotated_typed_dict() -> Shape:
    return {"side": 1}


def annotated_optional() -> Optional[dict[str, int]]:  # noqa: UP045 - Airflow reads Optional as not a mapping
    return None


def annotated_unknown() -> NoSuchType:  # type: ignore[name-defined]  # noqa: F821
    return None


def not_annotated():  # type: ignore[no-untyped-def]
    return {}


@pytest.mark.parametrize(
    ("function", "inferred"),
    [
        (annotated_dict, True),
        (annotated_text, True),
        (annotated_typed_dict, True),
        (annotated_optional, False),
        (annotated_unknown, False),
        (not_annotated, False),
    ],
)
def test_multiple_outputs_is_inferred_from_a_mapping_return_annotation(function: Any, inferred: bool) -> None:
    assert task(function).multiple_outputs is inferred
    with DAG("d"):
        assert operator(task(function)()).multiple_outputs is inferred
        assert operator(task(multiple_outputs=not inferred)(function)()).multiple_outputs is (not inferred)


def test_multiple_outputs_pushes_each_key_and_the_whole_value(tmp_path: Path) -> None:
    @task(multiple_outputs=True)
    def pair() -> Any:
        return {"left": "L", "right": 2}

    with DAG("d"):
        arg = pair()
    op = operator(arg)
    context = context_for(tmp_path, op)
    assert run_task(op, context).state == "success"
    assert context["ti"].pushed_keys() == ["left", "right", "return_value"]


# -- ids and override ---------------------------------------------------------------------------------


def test_repeated_calls_number_the_id_after_the_highest_taken_like_airflow() -> None:
    @task
    def t() -> None:
        return None

    with DAG("d") as dag:
        EmptyOperator(task_id="t__4")
        with TaskGroup("g"):
            t()
            t()
        t()
        t()
        t.override(task_id="other")()
        t.override(task_id="other")()
    assert dag.task_ids == ["t__4", "g.t", "g.t__1", "t", "t__5", "other", "other__1"]


def test_override_keeps_the_function_and_changes_operator_arguments() -> None:
    @task(retries=1)
    def t() -> None:
        return None

    with DAG("d"):
        first = operator(t())
        second = operator(t.override(task_id="renamed", retries=3)())
    assert (first.task_id, first.retries) == ("t", 1)
    assert (second.task_id, second.retries) == ("renamed", 3)
    assert isinstance(second, PythonOperator) and second.python_callable is t.function


def test_unsupported_task_decorators_say_so() -> None:
    with pytest.raises(DagDefinitionError, match=r"@task\.docker: not supported by kdag"):
        task.docker  # noqa: B018
    assert not hasattr(task, "virtualenv")  # an AttributeError too, so hasattr works
    assert task.python is not None and task.bash is not None


# -- @task.bash ---------------------------------------------------------------------------------------


def test_task_bash_runs_the_rendered_command_the_function_returns(tmp_path: Path) -> None:
    @task.bash
    def greet(name: str, ds: str | None = None) -> str:
        return f"echo hello {name} {ds} {{{{ params.suffix }}}}"

    with DAG("d"):
        arg = greet("world")
    op = operator(arg)
    assert isinstance(op, BashTaskOperator) and isinstance(op, BashOperator)
    context = context_for(tmp_path, op, suffix="!")
    assert run_task(op, context).state == "success"
    assert context["ti"].xcom_pull(key="return_value") == "hello world 2024-03-05 !"


def test_task_bash_with_an_xcom_argument_output_processor_and_multiple_outputs(tmp_path: Path) -> None:
    write_store(tmp_path, "make", {"return_value": "{{ ds }}"})

    @task.bash(multiple_outputs=True, output_processor=json.loads)
    def as_json(value: str) -> str:
        return f"""echo '{{"value": "{value}", "n": 1}}'"""

    with DAG("d"):
        made = PythonOperator(task_id="make", python_callable=lambda: None)
        arg = as_json(made.output)
    op = operator(arg)
    assert op.upstream_task_ids == {"make"}
    context = context_for(tmp_path, op, ("make",))
    assert run_task(op, context).state == "success"
    # The XCom's text is put in the command as it is, and the command is rendered once more, as in Airflow.
    assert context["ti"].xcom_pull(key="value") == "2024-03-05"
    assert context["ti"].pushed_keys() == ["value", "n", "return_value"]


@pytest.mark.parametrize("returned", ["", "   ", None, 3])
def test_task_bash_needs_a_non_empty_command(tmp_path: Path, returned: Any) -> None:
    @task.bash
    def nothing() -> Any:
        return returned

    with DAG("d"):
        op = operator(nothing())
    outcome = run_task(op, context_for(tmp_path, op))
    assert outcome.state == "failed"
    assert str(outcome.error) == "The returned value from the TaskFlow callable must be a non-empty string."


def test_task_bash_skips_on_exit_code_99(tmp_path: Path) -> None:
    @task.bash
    def skip() -> str:
        return "exit 99"

    with DAG("d"):
        op = operator(skip())
    outcome = run_task(op, context_for(tmp_path, op))
    assert outcome.state == "skipped" and isinstance(outcome.error, AirflowSkipException)


def test_bash_operator_output_processor(tmp_path: Path) -> None:
    op = BashOperator(task_id="t", bash_command="echo 3; echo 4", output_processor=lambda out: int(out) * 10)
    assert op.execute(context_for(tmp_path, op)) == 40
    with pytest.raises(DagDefinitionError, match="task 'u': output_processor must be callable"):
        BashOperator(task_id="u", bash_command="true", output_processor="upper")


# -- setup and teardown -------------------------------------------------------------------------------


def test_setup_and_teardown_decorators_mark_their_tasks() -> None:
    @setup
    def create() -> str:
        return "cluster"

    @teardown
    def delete(name: str) -> None:
        return None

    @teardown(on_failure_fail_dagrun=True)
    @task(retries=2)
    def strict(name: str) -> None:
        return None

    with DAG("d"):
        made = create()
        deleted = operator(delete(made))
        strictly = operator(strict(made))
        renamed = operator(delete.override(task_id="delete_again")(made))
    assert operator(made).is_setup and not operator(made).is_teardown
    assert deleted.is_teardown and deleted.trigger_rule == TriggerRule.ALL_DONE_SETUP_SUCCESS
    assert deleted.upstream_task_ids == {"create"} and not deleted.on_failure_fail_dagrun
    assert strictly.is_teardown and strictly.on_failure_fail_dagrun and strictly.retries == 2
    assert renamed.is_teardown and renamed.task_id == "delete_again"


def test_a_teardowns_trigger_rule_cannot_be_set() -> None:
    @teardown
    def delete() -> None:
        return None

    with DAG("d"), pytest.raises(DagDefinitionError, match="trigger rule not configurable for teardown"):
        delete.override(trigger_rule="all_done")()


def test_task_groups_cannot_be_setups_or_teardowns() -> None:
    @task_group
    def grp() -> None:
        return None

    with pytest.raises(DagDefinitionError, match="task groups cannot be marked as setup or teardown"):
        setup(grp)
    with pytest.raises(DagDefinitionError, match="task groups cannot be marked as setup or teardown"):
        teardown(grp)


def test_as_setup_and_as_teardown_on_operators_and_xcom_args() -> None:
    @task
    def make() -> str:
        return "x"

    with DAG("d"):
        s1 = EmptyOperator(task_id="s1")
        s2 = make()
        work = EmptyOperator(task_id="work")
        td = EmptyOperator(task_id="td")
        assert td.as_teardown(setups=[s1, s2], on_failure_fail_dagrun=True) is td
        other = make()
        assert other.as_setup() is other
        td2 = make().as_teardown(setups=s1)
        s1 >> work >> td
    assert s1.is_setup and operator(s2).is_setup and s2.is_setup and operator(other).is_setup
    assert td.is_teardown and td.on_failure_fail_dagrun
    assert td.trigger_rule == TriggerRule.ALL_DONE_SETUP_SUCCESS
    assert td.upstream_task_ids == {"s1", "make", "work"}
    assert td2.is_teardown and operator(td2).upstream_task_ids == {"s1"}
    with pytest.raises(DagDefinitionError, match="task 's1': cannot be a teardown, it is already a setup"):
        s1.as_teardown()
    with pytest.raises(DagDefinitionError, match="task 'td': cannot be a setup, it is already a teardown"):
        td.as_setup()


# `with setup >> teardown:` and the other context managers: tests/runner/test_setup_teardown.py.


# -- XComArg ------------------------------------------------------------------------------------------


def test_xcom_arg_forms() -> None:
    with DAG("d") as dag:
        op = EmptyOperator(task_id="producer")
    output = op.output
    assert isinstance(output, XComArg) and output.operator is op and output.key == "return_value"
    keyed = XComArg(op, key="count")
    assert output["count"].key == keyed.key == "count"
    assert repr(output) == "XComArg(<Task(EmptyOperator): producer>)"
    assert repr(keyed) == "XComArg(<Task(EmptyOperator): producer>, 'count')"
    assert str(keyed) == (
        "{{ task_instance.xcom_pull(task_ids='producer', dag_id='d', key='count') }}"
    )
    assert dag.dag_id == "d"
    with pytest.raises(TypeError, match="'XComArg' object is not iterable"):
        list(output)
    with pytest.raises(ValueError, match="XComArg only supports str lookup, received int"):
        output[0]  # type: ignore[index]


def test_xcom_arg_resolution_follows_airflow(tmp_path: Path) -> None:
    write_store(tmp_path, "producer", {"return_value": "{{ ds }}", "count": 3})
    with DAG("test_dag"):
        producer = EmptyOperator(task_id="producer")
        splitter = PythonOperator(task_id="splitter", python_callable=lambda: None, multiple_outputs=True)
        consumer = EmptyOperator(task_id="consumer")
    context = context_for(tmp_path, consumer, ("producer", "splitter"))
    assert producer.output.resolve(context) == "{{ ds }}"  # never rendered
    assert XComArg(producer, "count").resolve(context) == 3
    assert XComArg(producer, "count").resolve(context["ti"]) == 3
    assert splitter.output.resolve(context) is None
    assert XComArg(splitter, "missing").resolve(context) is None  # multiple_outputs: None
    missing = 'XComArg result from producer at test_dag with key="missing" is not found!'
    with pytest.raises(XComNotFound, match=missing):
        XComArg(producer, "missing").resolve(context)


def test_xcom_args_in_templated_fields_render_as_in_airflow(tmp_path: Path) -> None:
    write_store(tmp_path, "producer", {"return_value": "{{ ds }} literally", "n": 7})
    with DAG("test_dag"):  # the run's dag id (runner_support's), which str(XComArg) names
        producer = EmptyOperator(task_id="producer")
        command = f"echo '{producer.output}' {XComArg(producer, 'n')}"
        quoted = BashOperator(task_id="quoted", bash_command=command)
        env = BashOperator(
            task_id="env", bash_command='echo "$V $N"', env={"V": producer.output, "N": producer.output["n"]}
        )
    # An f-string makes no dependency (Airflow cannot see it); an XComArg in a field does.
    assert quoted.upstream_task_ids == set() and env.upstream_task_ids == {"producer"}
    assert quoted.execute(context_for(tmp_path, quoted, ("producer",))) == "{{ ds }} literally 7"
    assert env.execute(context_for(tmp_path, env, ("producer",))) == "{{ ds }} literally 7"


def test_xcom_arg_shift_operators_act_on_its_task() -> None:
    @task
    def make() -> int:
        return 1

    with DAG("d") as dag:
        first = make()
        last = EmptyOperator(task_id="last")
        assert (first >> last) is last
        second = make()
        assert (second << first) is first
        [EmptyOperator(task_id="a")] >> second
    assert dag.get_task("last").upstream_task_ids == {"make"}
    assert dag.get_task("make__1").upstream_task_ids == {"make", "a"}


def test_a_plain_operator_as_a_context_manager_is_refused() -> None:
    with DAG("d"):
        s = EmptyOperator(task_id="s").as_setup()
        t = EmptyOperator(task_id="t")
        with pytest.raises(DagDefinitionError, match="task 't': only setup and teardown tasks can be used"):  # noqa: SIM117
            with s >> t:
                pass
