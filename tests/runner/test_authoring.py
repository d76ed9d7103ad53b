"""Airflow-compatible authoring: DAGs, operators, dependencies, definition errors, execute()."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from kdag_runner.airflow import (
    DAG,
    AirflowException,
    AirflowSkipException,
    BashOperator,
    DagDefinitionError,
    EmptyOperator,
    Param,
    PythonOperator,
    TriggerRule,
    chain,
)
from kdag_runner.airflow.python import callable_kwargs
from kdag_runner.context import build_context
from kdag_runner.environment import TaskEnvironment
from kdag_runner.xcom import TaskInstance

from .runner_support import task_env, write_store


def noop() -> None:
    return None


def test_dag_as_context_manager_collects_tasks_in_order() -> None:
    with DAG("d", schedule="@daily", params={"who": "dag"}) as dag:
        a = PythonOperator(task_id="a", python_callable=noop)
        b = EmptyOperator(task_id="b")
    outside = EmptyOperator(task_id="outside")
    assert dag.task_dict == {"a": a, "b": b}
    assert dag.tasks == [a, b] and a.dag is dag
    assert outside.dag is None
    assert dag.schedule == "@daily" == dag.schedule_interval
    assert dag.params == {"who": "dag"}


def test_dag_argument_wins_over_the_active_dag() -> None:
    other = DAG("other")
    with DAG("d") as dag:
        task = EmptyOperator(task_id="t", dag=other)
    assert task.dag is other and dag.tasks == []


def test_schedule_interval_is_accepted_as_in_airflow_2() -> None:
    assert DAG("d", schedule_interval="0 * * * *").schedule == "0 * * * *"
    with pytest.raises(DagDefinitionError, match="DAG 'd': give schedule or schedule_interval, not both"):
        DAG("d", schedule="@daily", schedule_interval="@daily")


def test_dependencies_with_shift_operators_and_lists() -> None:
    dag = DAG("d")
    a, b, c, d = (EmptyOperator(task_id=x, dag=dag) for x in "abcd")
    assert (a >> [b, c]) == [b, c]
    [b, c] >> d
    assert a.downstream_task_ids == {"b", "c"}
    assert d.upstream_task_ids == {"b", "c"}
    e = EmptyOperator(task_id="e", dag=dag)
    e << d
    assert e.upstream_task_ids == {"d"}
    f = EmptyOperator(task_id="f", dag=dag)
    [e] << f
    assert f.downstream_task_ids == {"e"}
    order = [t.task_id for t in dag.topological_order()]
    assert order.index("a") < order.index("b") < order.index("d") < order.index("e")
    assert order.index("f") < order.index("e")
    assert dag.ancestors_of("e") == [t for t in order if t in {"a", "b", "c", "d", "f"}]


def test_set_upstream_and_set_downstream_take_lists() -> None:
    dag = DAG("d")
    a, b, c = (EmptyOperator(task_id=x, dag=dag) for x in "abc")
    c.set_upstream([a, b])
    a.set_downstream(b)
    assert c.upstream_task_ids == {"a", "b"}
    assert b.upstream_task_ids == {"a"}


def test_a_task_without_a_dag_joins_the_dag_of_its_neighbour() -> None:
    dag = DAG("d")
    a = EmptyOperator(task_id="a", dag=dag)
    loose = EmptyOperator(task_id="loose")
    a >> loose
    assert loose.dag is dag and "loose" in dag.task_dict


def test_chain_links_in_sequence_and_pairs_lists() -> None:
    dag = DAG("d")
    a, b, c, d, e = (EmptyOperator(task_id=x, dag=dag) for x in "abcde")
    chain(a, [b, c], [d, e])
    assert a.downstream_task_ids == {"b", "c"}
    assert b.downstream_task_ids == {"d"} and c.downstream_task_ids == {"e"}


def test_default_args_fill_what_the_operator_does_not_set() -> None:
    dag = DAG(
        "d", default_args={"retries": 2, "retry_delay": timedelta(seconds=5), "owner": "x", "pool": "p"}
    )
    task = EmptyOperator(task_id="t", dag=dag, retries=4)
    assert task.retries == 4 and task.retry_delay == timedelta(seconds=5) and task.owner == "x"
    assert EmptyOperator(task_id="u", dag=dag, default_args={"retries": 1}).retries == 1


def test_airflow_arguments_are_kept() -> None:
    task = PythonOperator(
        task_id="t",
        python_callable=noop,
        retries=3,
        retry_delay=10,
        retry_exponential_backoff=True,
        max_retry_delay=timedelta(minutes=1),
        execution_timeout=timedelta(seconds=30),
        trigger_rule="all_done",
        provide_context=True,
        params={"p": Param(5, type="integer")},
    )
    assert task.retries == 3 and task.retry_delay == timedelta(seconds=10)
    assert task.retry_exponential_backoff and task.max_retry_delay == timedelta(minutes=1)
    assert task.execution_timeout == timedelta(seconds=30)
    assert task.trigger_rule is TriggerRule.ALL_DONE and str(task.trigger_rule) == "all_done"
    assert task.params == {"p": 5}


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: PythonOperator(task_id="sql_task", python_callable=DAG("etl_dag")),  # type: ignore[arg-type]
            "task 'sql_task': python_callable must be callable, got DAG",
        ),
        (
            lambda: PythonOperator(task_id="t", python_callable="f"),  # type: ignore[arg-type]
            "task 't': python_callable must be callable, got str",
        ),
        (
            lambda: EmptyOperator(task_id="bad id"),
            "task 'bad id': may contain only letters, digits, dashes, dots and underscores",
        ),
        (lambda: EmptyOperator(task_id="x" * 251), f"task '{'x' * 251}': longer than 250 characters"),
        (lambda: EmptyOperator(task_id=""), "task '': must be a non-empty string"),
        (
            lambda: DAG("my dag"),
            "DAG 'my dag': may contain only letters, digits, dashes, dots and underscores",
        ),
        (lambda: DAG("d", shedule="@daily"), "DAG 'd': unknown argument 'shedule'"),
        (
            lambda: EmptyOperator(task_id="t", retires=3),
            "task 't': unknown argument 'retires' for EmptyOperator",
        ),
        (
            lambda: EmptyOperator(task_id="t", retries=-1),
            "task 't': retries must be a non-negative integer, got -1",
        ),
        (
            lambda: EmptyOperator(task_id="t", retry_delay="soon"),
            "task 't': retry_delay must be a timedelta or seconds, got 'soon'",
        ),
        (
            lambda: EmptyOperator(task_id="t", trigger_rule="sometimes"),
            "task 't': trigger_rule 'sometimes' is not one of all_success",
        ),
        (
            lambda: BashOperator(task_id="t", bash_command=""),
            "task 't': bash_command must be a non-empty string",
        ),
        (
            lambda: PythonOperator(task_id="t", python_callable=noop, op_args="x"),
            "task 't': op_args must be a list, got str",
        ),
    ],
)
def test_definition_mistakes_name_the_task(make: Any, message: str) -> None:
    with pytest.raises(DagDefinitionError) as caught:
        make()
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_a_duplicate_task_id_is_refused() -> None:
    dag = DAG("d")
    EmptyOperator(task_id="push_task", dag=dag)
    with pytest.raises(DagDefinitionError, match=r"^task 'push_task': duplicate task_id in DAG 'd'$"):
        EmptyOperator(task_id="push_task", dag=dag)


def test_a_cycle_is_refused_naming_it() -> None:
    dag = DAG("d")
    a, b, c = (EmptyOperator(task_id=x, dag=dag) for x in "abc")
    a >> b >> c
    with pytest.raises(DagDefinitionError) as caught:
        c >> a
    assert str(caught.value) == "task 'a': dependency creates a cycle: c -> a -> b -> c"
    with pytest.raises(DagDefinitionError, match=r"cycle: a -> a$"):
        a >> a
    assert a.upstream_task_ids == set()


def test_tasks_of_two_dags_cannot_depend_on_each_other() -> None:
    a = EmptyOperator(task_id="a", dag=DAG("one"))
    b = EmptyOperator(task_id="b", dag=DAG("two"))
    with pytest.raises(DagDefinitionError, match="task 'b': cannot depend on 'a' of another DAG"):
        a >> b


def test_dependencies_only_between_tasks() -> None:
    a = EmptyOperator(task_id="a")
    with pytest.raises(DagDefinitionError, match="task 'a': can depend only on tasks, got str"):
        a >> "b"  # type: ignore[operator]


def with_context(a: int, ti: Any, ds: str) -> tuple[int, str, str]:
    return a, ti.task_id, ds


def test_callable_kwargs_passes_only_what_a_callable_names() -> None:
    context = {"ti": "TI", "ds": "2024-03-05", "params": {}}
    assert callable_kwargs(with_context, [1], context) == {"ti": "TI", "ds": "2024-03-05"}
    assert callable_kwargs(lambda **kw: kw, [], context) == context
    assert callable_kwargs(lambda: None, [], context) == {}
    reserved = r"^The key 'ds' in args is a part of kwargs and therefore reserved\.$"
    with pytest.raises(ValueError, match=reserved):
        callable_kwargs(lambda ds: ds, ["x"], context)


def context_for(tmp_path: Path, task: Any, ancestors: tuple[str, ...] = (), **params: Any) -> dict[str, Any]:
    env = TaskEnvironment.from_env(task_env(tmp_path, task.task_id, ancestors=ancestors, params=params))
    ti = TaskInstance.from_environment(env)
    ti.task = task
    return build_context(env, ti, task, task.dag)


def test_python_operator_calls_with_op_args_op_kwargs_and_context(tmp_path: Path) -> None:
    def func(a: int, b: int, ds: str, c: int = 0) -> list[Any]:
        return [a, b, ds, c]

    task = PythonOperator(task_id="t", python_callable=func, op_args=[1], op_kwargs={"b": 2, "c": 3})
    assert task.execute(context_for(tmp_path, task)) == [1, 2, "2024-03-05", 3]


def test_op_kwargs_and_templates_dict_are_rendered(tmp_path: Path) -> None:
    def func(day: str, templates_dict: dict[str, str], **kwargs: Any) -> str:
        return f"{day}|{templates_dict['run']}|{kwargs['params']['x']}"

    task = PythonOperator(
        task_id="t",
        python_callable=func,
        op_kwargs={"day": "{{ ds_nodash }}"},
        templates_dict={"run": "{{ run_id }}"},
    )
    assert task.execute(context_for(tmp_path, task, x="y")) == "20240305|etl-run-1|y"


def test_push_result_pushes_non_none_and_multiple_outputs(tmp_path: Path) -> None:
    task = PythonOperator(task_id="t", python_callable=noop, multiple_outputs=True)
    ti = context_for(tmp_path, task)["ti"]
    task.push_result(ti, {"a": 1, "b": "x"})
    assert ti.pushed_keys() == ["a", "b", "return_value"]
    with pytest.raises(TypeError, match="returned dictionary keys must be strings"):
        task.push_result(ti, {1: "x"})
    quiet = PythonOperator(task_id="q", python_callable=noop, do_xcom_push=False)
    quiet_ti = context_for(tmp_path, quiet)["ti"]
    quiet.push_result(quiet_ti, "x")
    assert quiet_ti.pushed_keys() == []


def test_bash_operator_renders_runs_and_returns_the_last_line(tmp_path: Path) -> None:
    write_store(tmp_path, "make_name", {"return_value": "kdag"})
    task = BashOperator(
        task_id="greet",
        bash_command=(
            "echo \"{{ params.greeting }}, {{ ti.xcom_pull(task_ids='make_name') }}!\" >&2; "
            'echo "$WHO {{ ds }}"'
        ),
        env={"WHO": "{{ params.who }}"},
    )
    context = context_for(tmp_path, task, ("make_name",), greeting="Hello", who="world")
    assert task.execute(context) == "world 2024-03-05"


def test_bash_stderr_counts_as_output_and_env_replaces_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OUTER", "outer")
    task = BashOperator(task_id="t", bash_command="echo out; echo err >&2")
    assert task.execute(context_for(tmp_path, task)) == "err"
    task = BashOperator(task_id="u", bash_command='echo "[$A][$AIRFLOW_CTX_TASK_ID][$OUTER]"', env={"A": "1"})
    assert task.execute(context_for(tmp_path, task)) == "[1][u][]"
    task = BashOperator(task_id="v", bash_command='echo "[$A][$OUTER]"', env={"A": "1"}, append_env=True)
    assert task.execute(context_for(tmp_path, task)) == "[1][outer]"
    task = BashOperator(task_id="w", bash_command='echo "[$OUTER]"')
    assert task.execute(context_for(tmp_path, task)) == "[outer]"


def test_bash_failure_and_skip_exit_codes(tmp_path: Path) -> None:
    task = BashOperator(task_id="t", bash_command="exit 4")
    with pytest.raises(
        AirflowException, match=r"^Bash command failed. The command returned a non-zero exit code 4.$"
    ):
        task.execute(context_for(tmp_path, task))
    task = BashOperator(task_id="s", bash_command="exit 99")
    with pytest.raises(AirflowSkipException, match="exit code 99"):
        task.execute(context_for(tmp_path, task))


def test_a_template_error_names_task_and_field(tmp_path: Path) -> None:
    task = BashOperator(task_id="t", bash_command="echo {{ no_such_name }}")
    with pytest.raises(
        AirflowException, match=r"task 't': rendering bash_command failed: 'no_such_name' is undefined"
    ):
        task.execute(context_for(tmp_path, task))


def test_templates_have_airflow_macros(tmp_path: Path) -> None:
    task = BashOperator(
        task_id="t",
        bash_command="echo {{ macros.ds_add(ds, 1) }} {{ macros.ds_format(ds, '%Y-%m-%d', '%d/%m') }}",
    )
    assert task.execute(context_for(tmp_path, task)) == "2024-03-06 05/03"


def test_task_decorator_builds_operators_and_dependencies_from_xcom_args() -> None:
    from kdag_runner.airflow import XComArg, dag, task

    @task
    def extract() -> dict[str, int]:
        return {"a": 1}

    @task(retries=2)
    def load(value: int) -> None:
        return None

    @dag(schedule=None)
    def pipeline() -> None:
        data = extract()
        first = load(data["a"])
        second = load.override(task_id="load_again")(data)
        third = load(1)
        first >> third
        assert isinstance(second, XComArg) and second.key == "return_value"

    built = pipeline()
    assert built.dag_id == "pipeline"
    assert built.task_ids == ["extract", "load", "load_again", "load__1"]
    tasks = built.task_dict
    assert isinstance(tasks["extract"], PythonOperator) and tasks["extract"].multiple_outputs
    assert tasks["load"].upstream_task_ids == {"extract"} and tasks["load"].retries == 2
    assert tasks["load_again"].upstream_task_ids == {"extract"}
    assert tasks["load__1"].upstream_task_ids == {"load"}
    assert not tasks["load"].multiple_outputs


def test_dag_decorator_takes_an_id_and_dag_arguments() -> None:
    from kdag_runner.airflow import dag

    @dag("named", params={"p": 1})
    def builder() -> None:
        EmptyOperator(task_id="only")

    built = builder()
    assert (built.dag_id, built.params, built.task_ids) == ("named", {"p": 1}, ["only"])


def test_starting_the_runner_loads_neither_the_airflow_layer_nor_jinja2() -> None:
    code = (
        "import sys, kdag_runner.main\n"
        "assert 'kdag_runner.airflow' not in sys.modules, 'kdag_runner.main loaded the airflow layer'\n"
        "import kdag_runner.airflow, kdag_runner.compat\n"
        "assert 'jinja2' not in sys.modules, 'defining DAGs loaded jinja2'\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert completed.returncode == 0, completed.stderr
