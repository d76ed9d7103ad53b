"""Text from upstream XComs, params and conf is data in a template, never a template; and a value a run's
trigger gives reaches a shell command inert only where the command keeps it quoted.

`tests/local/test_local_template_injection.py` runs it with `kdag run --local`, and
`tests/e2e/test_security_on_cluster.py` as task pods, with the param `x` and the conf key `c` set to
`PAYLOAD` and the param `cmd` to `SHELL_PAYLOAD` (docs/security.md, "Templates, params and conf").
"""

import shlex
from datetime import datetime

from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, task, task_group

PAYLOAD = "{{ cycler.__init__.__globals__.os.popen('id').read() }}"
"""Rendered as a template, it runs `id` where Jinja is not sandboxed (and fails the task where it is)."""
SHELL_PAYLOAD = "x; touch pwned"
"""Put into a command unquoted, it makes a file `pwned` in the command's folder."""
PULL = "{{ ti.xcom_pull(task_ids='up') }}"
# A BashOperator runs in a fresh temporary folder: a command says at its end whether it made `pwned` there.
CHECK = "; if [ -e pwned ]; then echo pwned; fi"


def heredoc(line: str) -> str:
    """A command printing the rendered `line` exactly as it is, whatever it holds."""
    return f"cat <<'EOF'\n{line}\nEOF"


def payload():
    return PAYLOAD


def payloads():
    return [PAYLOAD, "{{ ds }}"]


def bash_arguments():
    return [{"env": {"VALUE": PAYLOAD}}, {"env": {"VALUE": "{{ ds }}"}}]


def shown(value, listed, templates_dict=None):
    return {"value": value, "listed": listed, "templated": templates_dict["pulled"]}


with DAG(
    "template_injection",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    params={"x": "plain", "cmd": "plain"},
    user_defined_filters={"shell_quote": shlex.quote},
) as dag:
    up = PythonOperator(task_id="up", python_callable=payload)
    listed = PythonOperator(task_id="listed", python_callable=payloads)
    arguments = PythonOperator(task_id="arguments", python_callable=bash_arguments)

    # (1) An upstream XCom in a downstream task's template fields: pulled by a template, or an XComArg.
    PythonOperator(
        task_id="pulled",
        python_callable=shown,
        op_kwargs={"value": PULL, "listed": [up.output, PULL]},
        templates_dict={"pulled": PULL},
    )
    up >> BashOperator(task_id="pulled_by_bash", bash_command=heredoc(PULL))

    # (2) A param and a conf key (declared or not, both are params) in a command.
    BashOperator(task_id="param_x", bash_command=heredoc("{{ params.x }}"))
    BashOperator(task_id="conf_c", bash_command=heredoc("{{ params.c }} {{ dag_run.conf['c'] }}"))

    # A trigger's value in a shell command: in the environment and quoted by bash, quoted by a filter, or
    # pasted into the command (the pattern not to follow: the value is shell code).
    BashOperator(
        task_id="env_quoted",
        env={"CMD": "{{ params.cmd }}"},
        append_env=True,
        bash_command='echo "$CMD"' + CHECK,
    )
    BashOperator(task_id="filter_quoted", bash_command="echo {{ params.cmd | shell_quote }}" + CHECK)
    BashOperator(task_id="unquoted", bash_command="echo {{ params.cmd }}" + CHECK)

    # Arguments a mapped instance gets from XComs are never rendered; nor are the template fields that
    # @task.bash renders before its function runs (kdag renders only the command it returns again).
    @task
    def echo(value):
        return value

    @task
    def pair(fixed, value):
        return [fixed, value]

    @task_group
    def group(value):
        echo.override(task_id="echo_in_group")(value)

    @task.bash(env={"VALUE": PULL})
    def bash_function(value):
        return 'echo "$VALUE"'

    echo.expand(value=listed.output)
    pair.partial(fixed=up.output).expand(value=listed.output)
    group.expand(value=listed.output)
    BashOperator.partial(task_id="mapped_env", bash_command='echo "$VALUE"').expand_kwargs(arguments.output)
    bash_function(up.output)
