"""Operators defined in the DAG file, run as Airflow 3 runs them: template_fields rendered once (an XCom's
value never), template_ext files, render_template, multiple_outputs, do_xcom_push=False, pre/post_execute,
and the callbacks (tests/local/test_local_custom_operators.py)."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, BaseOperator, task
from airflow.sdk.exceptions import AirflowSkipException


def remember(kind):
    """A callback that leaves an XCom naming itself, so the rows show which callbacks ran."""

    def callback(context):
        context["ti"].xcom_push(key=f"callback_{kind}", value=context["ti"].try_number)

    return callback


class GreetOperator(BaseOperator):
    template_fields = ("greeting", "name", "query")
    template_ext = (".sql",)

    def __init__(self, *, greeting, name, query="", **kwargs):
        super().__init__(**kwargs)
        self.greeting = greeting
        self.name = name
        self.query = query

    def pre_execute(self, context):
        context["ti"].xcom_push(key="pre", value=self.greeting)

    def execute(self, context):
        stamp = self.render_template("{{ ds_nodash }}/{{ task.task_id }}", context)
        return {"message": f"{self.greeting}, {self.name}!", "query": self.query.strip(), "stamp": stamp}

    def post_execute(self, context, result=None):
        context["ti"].xcom_push(key="post", value=result)


class QuietOperator(BaseOperator):
    def execute(self, context):
        return "not pushed"


class FlakyOperator(BaseOperator):
    def execute(self, context):
        if context["ti"].try_number == 1:
            raise ValueError("first try fails")
        return f"try {context['ti'].try_number}"


class SkippingOperator(BaseOperator):
    def execute(self, context):
        raise AirflowSkipException("nothing to do")


class FailingOperator(BaseOperator):
    def execute(self, context):
        context["ti"].xcom_push(key="before", value="pushed before failing")
        raise RuntimeError("always fails")


with DAG(
    "custom_operators",
    start_date=datetime(2024, 1, 1),
    schedule=None,
    params={"who": "kdag"},
    default_args={"on_success_callback": remember("success")},
) as dag:

    @task
    def produce():
        return "{{ not_rendered }}"

    greet = GreetOperator(
        task_id="greet",
        greeting="Hello {{ params.who }}",
        name=produce(),
        query="greeting.sql",
        multiple_outputs=True,
        on_execute_callback=remember("execute"),
        pre_execute=lambda context: context["ti"].xcom_push(key="pre_hook", value="hook"),
        post_execute=lambda context, result: context["ti"].xcom_push(key="post_hook", value=result),
    )
    quiet = QuietOperator(task_id="quiet", do_xcom_push=False)
    flaky = FlakyOperator(
        task_id="flaky",
        retries=1,
        retry_delay=timedelta(seconds=1),
        on_retry_callback=remember("retry"),
        on_failure_callback=remember("failure"),
    )
    skipping = SkippingOperator(task_id="skipping", on_skipped_callback=remember("skipped"))
    failing = FailingOperator(
        task_id="failing", on_failure_callback=[remember("failure"), remember("failure_again")]
    )
    greet >> [quiet, flaky, skipping, failing]
