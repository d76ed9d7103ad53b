"""Operators a DAG file defines, run as Airflow 3's task runner runs them: template fields rendered once in
a sandbox (template files too), pre/post execute, callbacks, default_args, XComArg dependencies."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from kdag_runner import context
from kdag_runner.airflow import (
    DAG,
    AirflowException,
    AirflowFailException,
    AirflowSkipException,
    BaseOperator,
    BashOperator,
    DagDefinitionError,
    PythonOperator,
    task,
)
from kdag_runner.airflow.task_runner import FAILED, SKIPPED, SUCCESS, UP_FOR_RETRY, TaskOutcome, run_task
from kdag_runner.environment import TaskEnvironment
from kdag_runner.xcom import TaskInstance

from .runner_support import run_dag_file, task_env, write_store


def prepared(
    tmp_path: Path, operator: BaseOperator, *, attempt: int = 1, ancestors: Sequence[str] = ()
) -> tuple[dict[str, Any], TaskInstance]:
    environment = TaskEnvironment.from_env(
        task_env(tmp_path, operator.task_id, attempt=attempt, ancestors=ancestors)
    )
    ti = TaskInstance.from_environment(environment)
    ti.task = operator
    ti.max_tries = operator.retries
    ti.params = {**(operator.dag.params if operator.dag else {}), **operator.params}
    return context.build_context(environment, ti, operator, operator.dag), ti


def pushed(ti: TaskInstance) -> dict[str, Any]:
    return {key: ti.xcom_pull(key=key) for key in ti.pushed_keys()}


class Recorder:
    """Callbacks and hooks that note what ran, in order."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, name: str) -> Any:
        def note(context: Any, *rest: Any) -> None:
            self.calls.append(name if not rest else f"{name}:{rest[0]!r}")

        return note


class Greet(BaseOperator):
    template_fields: Sequence[str] = ("greeting", "names")

    def __init__(self, *, greeting: str, names: Any = None, recorder: Recorder | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.greeting = greeting
        self.names = names
        self.recorder = recorder

    def pre_execute(self, context: Any) -> None:
        if self.recorder:
            self.recorder.calls.append(f"pre_execute:{self.greeting}")

    def execute(self, context: Any) -> Any:
        if self.recorder:
            self.recorder.calls.append("execute")
        return f"{self.greeting} {self.names}"

    def post_execute(self, context: Any, result: Any = None) -> None:
        if self.recorder:
            self.recorder.calls.append(f"post_execute:{result!r}")


def test_the_protocol_runs_in_airflow_order(tmp_path: Path) -> None:
    recorder = Recorder()
    with DAG("d", params={"who": "you"}):
        greet = Greet(
            task_id="greet",
            greeting="hi {{ params.who }}",
            recorder=recorder,
            pre_execute=recorder("pre_hook"),
            post_execute=recorder("post_hook"),
            on_execute_callback=recorder("on_execute"),
            on_success_callback=[recorder("on_success"), recorder("on_success_2")],
            on_failure_callback=recorder("on_failure"),
        )
    ctx, ti = prepared(tmp_path, greet)
    assert run_task(greet, ctx) == TaskOutcome(SUCCESS)
    # Airflow 3 calls an overridden post_execute with the context only: its result is None.
    assert recorder.calls == [
        "pre_hook",
        "pre_execute:hi you",
        "on_execute",
        "execute",
        "post_hook:'hi you None'",
        "post_execute:None",
        "on_success",
        "on_success_2",
    ]
    assert pushed(ti) == {"return_value": "hi you None"}


def test_failure_retry_and_skip_callbacks(tmp_path: Path) -> None:
    class Fails(BaseOperator):
        def execute(self, context: Any) -> Any:
            context["ti"].xcom_push(key="before", value=1)
            raise ValueError("boom")

    class Skips(BaseOperator):
        def execute(self, context: Any) -> Any:
            raise AirflowSkipException("later")

    recorder = Recorder()
    seen: list[Any] = []
    callbacks = {
        "on_failure_callback": [recorder("failure"), lambda c: seen.append(c["exception"])],
        "on_retry_callback": recorder("retry"),
        "on_skipped_callback": recorder("skipped"),
        "on_success_callback": recorder("success"),
    }
    with DAG("d"):
        fails = Fails(task_id="fails", retries=1, **callbacks)
        skips = Skips(task_id="skips", **callbacks)
    ctx, ti = prepared(tmp_path, fails, attempt=1)
    assert run_task(fails, ctx).state == UP_FOR_RETRY  # try 1 of 2: a retry remains
    ctx, ti = prepared(tmp_path, fails, attempt=2)
    outcome = run_task(fails, ctx)
    assert outcome.state == FAILED and isinstance(outcome.error, ValueError)
    assert pushed(ti) == {"before": 1}
    ctx, _ = prepared(tmp_path, skips)
    assert run_task(skips, ctx).state == SKIPPED
    assert recorder.calls == ["retry", "failure", "skipped"]
    assert [str(e) for e in seen] == ["boom"]


def test_a_failing_callback_is_logged_and_the_others_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recorder = Recorder()

    def broken(context: Any) -> None:
        raise RuntimeError("callback broke")

    with DAG("d"):
        greet = Greet(task_id="greet", greeting="x", on_success_callback=[broken, recorder("after")])
    ctx, _ = prepared(tmp_path, greet)
    assert run_task(greet, ctx).state == SUCCESS
    assert recorder.calls == ["after"]
    err = capsys.readouterr().err
    assert "Failed to run task callback kind=on_success_callback index=0" in err
    assert "RuntimeError: callback broke" in err


def test_a_fail_exception_is_never_retried(tmp_path: Path) -> None:
    class FailsHard(BaseOperator):
        def execute(self, context: Any) -> Any:
            raise AirflowFailException("no retry in Airflow")

    with DAG("d"):
        hard = FailsHard(task_id="hard", retries=2)
    ctx, _ = prepared(tmp_path, hard)
    # As in Airflow: failed at once, so on_failure_callback runs, not on_retry_callback.
    assert run_task(hard, ctx).state == FAILED


def test_template_fields_render_once_and_xcom_values_never(tmp_path: Path) -> None:
    write_store(tmp_path, "upstream", {"return_value": "{{ ds }} stays"})
    with DAG("d"):
        source = PythonOperator(task_id="upstream", python_callable=lambda: None)
        greet = Greet(task_id="greet", greeting="{{ '{{ ds }}' }}", names=[source.output, "{{ ds }}"])
    assert greet.upstream_task_ids == {"upstream"}  # an XComArg in a template field: upstream task
    ctx, ti = prepared(tmp_path, greet, ancestors=["upstream"])
    assert run_task(greet, ctx).state == SUCCESS
    # Rendered once: the output of the first rendering is not rendered again.
    assert greet.greeting == "{{ ds }}"
    assert greet.names == ["{{ ds }} stays", "2024-03-05"]
    assert pushed(ti) == {"return_value": "{{ ds }} ['{{ ds }} stays', '2024-03-05']"}


def test_templates_render_in_a_sandbox(tmp_path: Path) -> None:
    with DAG("d"):
        greet = Greet(task_id="greet", greeting="{{ ''.__class__.__mro__ }}")
        private = Greet(task_id="private", greeting="{{ task._private }}")
    private._private = "underscore attributes are allowed"  # type: ignore[attr-defined]
    ctx, _ = prepared(tmp_path, greet)
    outcome = run_task(greet, ctx)
    assert outcome.state == FAILED
    assert "rendering greeting failed: access to attribute '__class__' of 'str' object is unsafe" in str(
        outcome.error
    )
    ctx, _ = prepared(tmp_path, private)
    assert run_task(private, ctx).state == SUCCESS
    assert private.greeting == "underscore attributes are allowed"


def test_render_template_and_airflow_filters(tmp_path: Path) -> None:
    with DAG("d", user_defined_macros={"team": "data"}, user_defined_filters={"shout": str.upper}):
        greet = Greet(task_id="greet", greeting="x")
    ctx, _ = prepared(tmp_path, greet)
    rendered = greet.render_template(
        {"k": ("{{ logical_date | ds_nodash }}", ["{{ team | shout }}", 3])}, ctx
    )
    assert rendered == {"k": ("20240305", ["DATA", 3])}
    assert greet.render_template("plain\r\ntext\n", ctx) == "plain\ntext"  # what Jinja makes of it


def test_native_rendering_when_the_dag_asks(tmp_path: Path) -> None:
    with DAG("d", render_template_as_native_obj=True):
        greet = Greet(task_id="greet", greeting="{{ [1, 2] }}", names="{{ 40 + 2 }}")
        escape = Greet(task_id="escape", greeting="{{ cycler.__init__.__globals__.os.popen('id').read() }}")
    ctx, _ = prepared(tmp_path, greet)
    greet.render_template_fields(ctx)
    assert greet.greeting == [1, 2] and greet.names == 42
    # Sandboxed too (Airflow's native environment is not): a template cannot reach `os`.
    ctx, _ = prepared(tmp_path, escape)
    outcome = run_task(escape, ctx)
    assert outcome.state == FAILED
    assert "rendering greeting failed: access to attribute '__init__' of 'type' object is unsafe" in str(
        outcome.error
    )


def test_template_ext_reads_files_from_the_dag_folder_and_searchpath(tmp_path: Path) -> None:
    class Query(BaseOperator):
        template_fields: Sequence[str] = ("sql",)
        template_ext: Sequence[str] = (".sql",)

        def __init__(self, *, sql: str, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.sql = sql

        def execute(self, context: Any) -> Any:
            return self.sql

    (tmp_path / "here.sql").write_text("select '{{ ds }}'\n")
    extra = tmp_path / "more"
    extra.mkdir()
    (extra / "there.sql").write_text("select {{ params.n }}")
    with DAG("d", template_searchpath=str(extra), params={"n": 5}) as dag:
        here = Query(task_id="here", sql="here.sql")
        there = Query(task_id="there", sql="there.sql")
        missing = Query(task_id="missing", sql="missing.sql")
        inline = Query(task_id="inline", sql="select 1 -- not a file")
    dag.fileloc = str(tmp_path / "dag.py")
    results = {}
    for operator in (here, there, missing, inline):
        ctx, ti = prepared(tmp_path, operator)
        outcome = run_task(operator, ctx)
        results[operator.task_id] = (
            pushed(ti).get("return_value") if outcome.state == SUCCESS else outcome.error
        )
    assert results["here"] == "select '2024-03-05'"
    assert results["there"] == "select 5"
    assert results["inline"] == "select 1 -- not a file"
    assert isinstance(results["missing"], AirflowException)
    assert f"template file 'missing.sql' not found in {tmp_path}, {extra}" in str(results["missing"])


def test_a_bash_script_file_is_a_template(tmp_path: Path) -> None:
    (tmp_path / "script.sh").write_text('echo "day {{ ds }} in $(basename "$PWD" | cut -c1-10)"\n')
    with DAG("d") as dag:
        script = BashOperator(task_id="script", bash_command="script.sh")
    dag.fileloc = str(tmp_path / "dag.py")
    ctx, ti = prepared(tmp_path, script)
    assert run_task(script, ctx).state == SUCCESS
    assert pushed(ti) == {"return_value": "day 2024-03-05 in kdag-bash-"}


def test_subclass_arguments_come_from_default_args(tmp_path: Path) -> None:
    with DAG("d", default_args={"greeting": "from the dag", "retries": 2}):
        greet = Greet(task_id="greet")
        own = Greet(task_id="own", greeting="mine", default_args={"greeting": "task default"})
        task_default = Greet(task_id="task_default", default_args={"greeting": "task default"})
    assert (greet.greeting, greet.retries) == ("from the dag", 2)
    assert own.greeting == "mine"
    assert task_default.greeting == "task default"
    with DAG("e"), pytest.raises(DagDefinitionError, match="Greet takes keyword arguments only"):
        Greet("positional")  # type: ignore[misc]


def test_callbacks_must_be_callables() -> None:
    with DAG("d"), pytest.raises(DagDefinitionError, match="on_success_callback must be a callable"):
        Greet(task_id="g", greeting="x", on_success_callback=["not callable"])


def test_log_output_and_xcom_helpers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    class Chatty(BaseOperator):
        def execute(self, context: Any) -> Any:
            self.log.info("working on %s", self.task_id)
            self.xcom_push(context, key="note", value="n")
            return self.xcom_pull(context, task_ids=self.task_id, key="note")

    with DAG("d"):
        chatty = Chatty(task_id="chatty")
    ctx, ti = prepared(tmp_path, chatty)
    assert run_task(chatty, ctx).state == SUCCESS
    assert pushed(ti) == {"note": "n", "return_value": "n"}
    assert "INFO - working on chatty" in capsys.readouterr().err


def test_deferral_fails_with_a_reason(tmp_path: Path) -> None:
    class Defers(BaseOperator):
        def execute(self, context: Any) -> Any:
            self.defer(trigger=None, method_name="done")

    with DAG("d"):
        defers = Defers(task_id="defers")
    ctx, _ = prepared(tmp_path, defers)
    outcome = run_task(defers, ctx)
    assert "kdag does not run deferrable operators" in str(outcome.error)


def test_the_definition_site_is_where_the_operator_was_made() -> None:
    with DAG("d"):
        greet = Greet(task_id="greet", greeting="x")  # this line
        decorated = task(lambda: None).override(task_id="t")()
    site = greet.definition_site
    assert site is not None and site[0] == __file__
    assert "this line" in Path(__file__).read_text().splitlines()[site[1] - 1]
    assert decorated.operator.definition_site is not None  # type: ignore[attr-defined]
    assert decorated.operator.definition_site[0] == __file__  # type: ignore[attr-defined]


CUSTOM_FILE = """\
from datetime import datetime
from airflow.sdk import DAG, BaseOperator

class Shout(BaseOperator):
    template_fields = ("text",)

    def __init__(self, *, text, **kwargs):
        super().__init__(**kwargs)
        self.text = text

    def execute(self, context):
        return self.text.upper()

def noted(context):
    context["ti"].xcom_push(key="noted", value=context["ti"].task_id)

with DAG("custom", start_date=datetime(2024, 1, 1), schedule=None, params={"who": "kdag"}):
    Shout(task_id="shout", text="hello {{ params.who }}", on_success_callback=noted)
"""


def test_a_custom_operator_runs_from_its_dag_file(tmp_path: Path) -> None:
    dag_file = tmp_path / "dag.py"
    dag_file.write_text(CUSTOM_FILE)
    result = run_dag_file(tmp_path, dag_file, [("shout", [])])["shout"]
    assert result.returncode == 0, result.stderr
    assert result.xcoms == {"return_value": "HELLO KDAG", "noted": "shout"}
    assert result.termination is not None and "skipTasks" not in result.termination


def test_a_custom_operator_from_a_module_next_to_the_dag_file(tmp_path: Path) -> None:
    (tmp_path / "my_operators.py").write_text(
        textwrap.dedent(
            """\
            from airflow.models.baseoperator import BaseOperator

            class Twice(BaseOperator):
                template_fields = ("value",)

                def __init__(self, *, value, **kwargs):
                    super().__init__(**kwargs)
                    self.value = value

                def execute(self, context):
                    return self.value * 2
            """
        )
    )
    dag_file = tmp_path / "dag.py"
    dag_file.write_text(
        "from airflow.sdk import DAG\nfrom my_operators import Twice\n"
        "with DAG('custom'):\n    Twice(task_id='twice', value='{{ ds_nodash }}')\n"
    )
    result = run_dag_file(tmp_path, dag_file, [("twice", [])])["twice"]
    assert result.returncode == 0, result.stderr
    assert result.xcoms == {"return_value": "2024030520240305"}
