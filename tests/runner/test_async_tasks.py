"""Async tasks run to completion in the task's process, as Airflow 3.3 runs them on its worker: `@task async
def`, a PythonOperator over a coroutine function (branches and short-circuits too), `BaseAsyncOperator`
subclasses; and the task state store across a task's attempts through the runner itself."""

from __future__ import annotations

import asyncio
import functools
import textwrap
from pathlib import Path
from typing import Any

import pytest
from kdag_runner import store
from kdag_runner.airflow import (
    DAG,
    BaseAsyncOperator,
    BranchPythonOperator,
    EmptyOperator,
    PythonOperator,
    is_async_callable,
    task,
)
from kdag_runner.airflow.operators import BaseOperator
from kdag_runner.airflow.task_runner import SUCCESS, UP_FOR_RETRY, run_task
from kdag_runner.context import build_context
from kdag_runner.environment import TaskEnvironment
from kdag_runner.xcom import TaskInstance

from .runner_support import run_dag_file, task_env


def context_for(tmp_path: Path, op: BaseOperator) -> dict[str, Any]:
    env = TaskEnvironment.from_env(task_env(tmp_path, op.task_id))
    ti = TaskInstance.from_environment(env)
    ti.task = op
    return build_context(env, ti, op, op.dag)


async def double(x: int) -> int:
    await asyncio.sleep(0)
    return 2 * x


class AsyncCall:
    async def __call__(self) -> str:
        return "called"


def test_is_async_callable_sees_through_partials_wrappers_and_call() -> None:
    @functools.wraps(double)
    def wrapper(x: int) -> Any:
        return double(x)

    assert is_async_callable(double)
    assert is_async_callable(functools.partial(double, 1))
    assert is_async_callable(wrapper)  # `__wrapped__` is the coroutine function, as Airflow unwraps
    assert is_async_callable(AsyncCall())
    assert not is_async_callable(lambda: None)
    assert not is_async_callable(print)
    assert not is_async_callable("not callable")


def test_an_async_task_function_is_awaited_and_its_result_pushed(tmp_path: Path) -> None:
    with DAG("async_dag"):

        @task
        async def gather_pages(ti: Any = None) -> dict[str, Any]:
            rows = await asyncio.gather(*(double(page) for page in range(3)))
            ti.xcom_push(key="pages", value=len(rows))
            return {"rows": list(rows)}

        op = gather_pages().operator
    assert isinstance(op, PythonOperator) and op.is_async
    context = context_for(tmp_path, op)
    assert run_task(op, context).state == SUCCESS
    ti = context["ti"]
    # `-> dict[...]` makes multiple_outputs, as for a plain function
    rows = [0, 2, 4]
    assert store.decode(ti.store_data()) == {"pages": 3, "rows": rows, "return_value": {"rows": rows}}


def test_a_python_operator_over_a_coroutine_function_and_an_async_callable_object(tmp_path: Path) -> None:
    with DAG("async_dag"):
        op = PythonOperator(task_id="op", python_callable=double, op_args=[21])
        obj = PythonOperator(task_id="obj", python_callable=AsyncCall())
    for operator, value in ((op, 42), (obj, "called")):
        context = context_for(tmp_path, operator)
        assert run_task(operator, context).state == SUCCESS
        assert store.decode(context["ti"].store_data()) == {"return_value": value}


def test_an_async_failure_fails_the_task_with_its_exception(tmp_path: Path) -> None:
    async def lost() -> None:
        await asyncio.sleep(0)
        raise RuntimeError("worker lost")

    with DAG("async_dag"):
        op = PythonOperator(task_id="op", python_callable=lost, retries=1)
    context = context_for(tmp_path, op)
    context["ti"].max_tries = op.retries  # as the runner sets it
    outcome = run_task(op, context)
    assert outcome.state == UP_FOR_RETRY
    assert isinstance(outcome.error, RuntimeError) and str(outcome.error) == "worker lost"


def test_an_async_branch_follows_what_it_returns(tmp_path: Path) -> None:
    async def choose() -> str:
        return "left"

    with DAG("async_branch"):
        branch = BranchPythonOperator(task_id="branch", python_callable=choose)
        branch >> [EmptyOperator(task_id="left"), EmptyOperator(task_id="right")]
    outcome = run_task(branch, context_for(tmp_path, branch))
    assert outcome.state == SUCCESS and outcome.skip_tasks == ("right",)


def test_a_base_async_operator_runs_aexecute(tmp_path: Path) -> None:
    class Fetch(BaseAsyncOperator):
        async def aexecute(self, context: dict[str, Any]) -> Any:
            return await double(context["params"]["n"])

    class Unfinished(BaseAsyncOperator):
        pass

    with DAG("async_dag", params={"n": 5}):
        fetch = Fetch(task_id="fetch")
        unfinished = Unfinished(task_id="unfinished")
    assert fetch.is_async
    context = context_for(tmp_path, fetch)
    context["params"] = {"n": 5}
    assert run_task(fetch, context).state == SUCCESS
    assert store.decode(context["ti"].store_data()) == {"return_value": 10}
    outcome = run_task(unfinished, context_for(tmp_path, unfinished))
    assert isinstance(outcome.error, NotImplementedError)
    assert str(outcome.error) == "Unfinished does not define aexecute()"


DAG_FILE = """
import asyncio
from datetime import datetime, timedelta

from airflow.sdk import DAG, task
from airflow.sdk.execution_time.context import NEVER_EXPIRE

with DAG("state_attempts", schedule=None, start_date=datetime(2026, 1, 1)):

    @task(retries=2)
    def submit(task_state_store=None, ti=None):
        job = task_state_store.get("job")
        if job is None:
            task_state_store.set("job", {"id": "job-1", "try": ti.try_number}, retention=NEVER_EXPIRE)
            raise RuntimeError("worker lost after submitting")
        return {"job": job, "reattached_on": ti.try_number}

    @task(retries=2)
    async def pages(task_state_store=None, ti=None):
        done = task_state_store.get("done", [])
        for page in range(len(done), 4):
            await asyncio.sleep(0)
            done.append(page)
            task_state_store.set("done", done)
            if page == 1 and ti.try_number == 1:
                raise RuntimeError("worker lost at page 1")
        task_state_store.delete("done")
        return {"done": done, "try": ti.try_number}

    submit() >> pages()
"""


def test_a_retry_reattaches_to_the_state_its_failed_try_left(tmp_path: Path) -> None:
    dag_file = tmp_path / "state_attempts.py"
    dag_file.write_text(textwrap.dedent(DAG_FILE), encoding="utf-8")
    state_file = tmp_path / "xcom" / "submit" / store.STATE_KEY

    first = run_dag_file(tmp_path, dag_file, [("submit", [])], attempt=1)["submit"]
    assert first.returncode == 1, first.stderr
    assert first.termination == {
        "xcomKeys": [],
        "bytes": len(".types{}"),
        "error": "RuntimeError: worker lost after submitting",
    }
    assert state_file.read_text(encoding="utf-8") == '{"job":{"id":"job-1","try":1}}'

    second = run_dag_file(tmp_path, dag_file, [("submit", [])], attempt=2)["submit"]
    assert second.returncode == 0, second.stderr
    assert second.xcoms == {"return_value": {"job": {"id": "job-1", "try": 1}, "reattached_on": 2}}
    assert second.termination is not None and ".state" not in second.termination["xcomKeys"]
    assert state_file.exists()  # kept after success, as Airflow's clear_on_success=False

    async_first = run_dag_file(tmp_path, dag_file, [("pages", ["submit"])], attempt=1)["pages"]
    assert async_first.returncode == 1, async_first.stderr
    async_second = run_dag_file(tmp_path, dag_file, [("pages", ["submit"])], attempt=2)["pages"]
    assert async_second.returncode == 0, async_second.stderr
    assert async_second.xcoms["return_value"] == {"done": [0, 1, 2, 3], "try": 2}
    assert not (tmp_path / "xcom" / "pages" / store.STATE_KEY).exists()  # deleted its only key


@pytest.mark.parametrize("value", ["set()", "float('nan')"])
def test_a_value_the_store_refuses_fails_the_task_naming_key_and_task(tmp_path: Path, value: str) -> None:
    dag_file = tmp_path / "refused.py"
    dag_file.write_text(
        textwrap.dedent(f"""
        from airflow.sdk import DAG, task

        with DAG("refused", schedule=None):

            @task
            def keep(task_state_store=None):
                task_state_store.set("checkpoint", {value})

            keep()
        """),
        encoding="utf-8",
    )
    result = run_dag_file(tmp_path, dag_file, [("keep", [])])["keep"]
    assert result.returncode == 1
    assert result.termination is not None
    error = result.termination["error"]
    assert error.startswith("TaskStateError: task state key 'checkpoint' of task 'keep'")
