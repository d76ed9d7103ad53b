"""Definition mistakes, failing tasks, retries and trigger rules in local runs."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from local_support import kdag, run_local_json

HEADER = """\
from datetime import datetime
from airflow import DAG
from airflow.operators.python import PythonOperator
dag = DAG(dag_id='mistakes', start_date=datetime(2024, 1, 1), schedule=None)
"""


def dag_file(tmp_path: Path, body: str, name: str = "dag.py") -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / name
    path.write_text(HEADER + textwrap.dedent(body), encoding="utf-8")
    return path


MISTAKES = {
    "not_callable": (
        "PythonOperator(task_id='sql_task', python_callable=dag, dag=dag)\n",
        "task 'sql_task': python_callable must be callable",
    ),
    "duplicate": (
        """\
        PythonOperator(task_id='twice', python_callable=print, dag=dag)
        PythonOperator(task_id='twice', python_callable=print, dag=dag)
        """,
        "task 'twice': duplicate task_id",
    ),
    "bad_characters": (
        "PythonOperator(task_id='no spaces!', python_callable=print, dag=dag)\n",
        "task 'no spaces!': may contain only letters, digits, dashes, dots and underscores",
    ),
    "cycle": (
        """\
        a = PythonOperator(task_id='a', python_callable=print, dag=dag)
        b = PythonOperator(task_id='b', python_callable=print, dag=dag)
        c = PythonOperator(task_id='c', python_callable=print, dag=dag)
        a >> b >> c >> a
        """,
        "task 'a': dependency creates a cycle: c -> a -> b -> c",
    ),
}


@pytest.mark.parametrize("command", [["run", "--local"], ["compile"]])
@pytest.mark.parametrize("mistake", sorted(MISTAKES))
def test_definition_mistake_is_one_line_naming_the_task(
    tmp_path: Path, mistake: str, command: list[str]
) -> None:
    body, expected = MISTAKES[mistake]
    done = kdag(*command, str(dag_file(tmp_path, body)))
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1, done.stderr
    assert expected in done.stderr
    assert "Traceback" not in done.stderr


def test_cycle_in_a_yaml_dag_is_refused_naming_the_tasks(tmp_path: Path) -> None:
    path = tmp_path / "cycle.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            apiVersion: kdag.dev/v1alpha1
            kind: DAG
            metadata: {name: loop}
            spec:
              tasks:
                - {id: a, upstream: [b], command: ["true"]}
                - {id: b, upstream: [a], command: ["true"]}
            """
        )
    )
    done = kdag("run", "--local", str(path), "-o", "json")
    assert done.returncode == 1
    assert done.stderr.strip() == "error: DAG 'loop': spec.tasks: tasks form a cycle: a -> b -> a"


def test_unknown_field_in_yaml_names_the_task(tmp_path: Path) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text(
        "apiVersion: kdag.dev/v1alpha1\nkind: DAG\nmetadata: {name: typo}\n"
        "spec:\n  tasks:\n    - {id: first, command: ['true'], retires: 2}\n"
    )
    done = kdag("run", "--local", str(path))
    assert done.returncode == 1
    assert "task 'first' (spec.tasks[0].retires): unknown field (check its spelling and case)" in done.stderr
    assert "Traceback" not in done.stderr


def test_non_json_return_fails_the_task_and_its_downstream_is_upstream_failed(tmp_path: Path) -> None:
    path = dag_file(
        tmp_path,
        """\
        def make_set():
            return {1, 2}
        produce = PythonOperator(task_id='produce', python_callable=make_set, dag=dag)
        consume = PythonOperator(task_id='consume', python_callable=print, dag=dag)
        produce >> consume
        """,
    )
    result = run_local_json(path, "--workdir", str(tmp_path / "work"))
    assert result["state"] == "failed"
    assert result["tasks"] == {"produce": "failed", "consume": "upstream_failed"}
    assert result["xcoms"] == []
    log = (tmp_path / "work" / "logs" / "produce.log").read_text()
    assert "XCom 'return_value' of task 'produce' is not JSON-serialisable: set" in log


def test_xcom_over_the_configmap_limit_fails_with_the_cluster_message(tmp_path: Path) -> None:
    from kdag import compile as compiler
    from kdag.local.run import LocalDag, run_local

    path = dag_file(
        tmp_path,
        """\
        big = PythonOperator(task_id='big', python_callable=lambda: 'x' * 1_100_000, dag=dag)
        after = PythonOperator(task_id='after', python_callable=print, dag=dag)
        big >> after
        """,
    )
    loaded = compiler.load(path)
    result = run_local(LocalDag(loaded.name, loaded.spec, loaded.python_file), tmp_path / "work")
    assert result.as_json()["tasks"] == {"big": "failed", "after": "upstream_failed"}
    assert result.tasks["big"].exit_code == 3
    assert result.tasks["big"].message.startswith("XComs of task 'big' take ")
    assert result.tasks["big"].message.endswith("a task's XComs must fit in 1032192 bytes (one ConfigMap)")


def test_retries_run_the_task_again_and_a_later_success_counts(tmp_path: Path) -> None:
    from kdag import compile as compiler
    from kdag.local.run import LocalDag, run_local

    marker = tmp_path / "first-attempt-done"
    path = dag_file(
        tmp_path,
        f"""\
        import os
        from datetime import timedelta
        def flaky(**context):
            if not os.path.exists({str(marker)!r}):
                open({str(marker)!r}, 'w').close()
                raise RuntimeError('first attempt fails')
            return context['ti'].try_number
        PythonOperator(task_id='flaky', python_callable=flaky, retries=2,
                       retry_delay=timedelta(seconds=0), dag=dag)
        """,
    )
    loaded = compiler.load(path)
    result = run_local(LocalDag(loaded.name, loaded.spec, loaded.python_file), tmp_path / "work")
    assert result.state == "success"
    assert result.tasks["flaky"].attempts == 2
    assert [row.as_json() for row in result.xcoms] == [
        {"task_id": "flaky", "key": "return_value", "value": 2}
    ]


def test_all_done_runs_after_a_failure_and_the_run_still_fails(tmp_path: Path) -> None:
    path = dag_file(
        tmp_path,
        """\
        def boom():
            raise ValueError('boom')
        fail = PythonOperator(task_id='fail', python_callable=boom, dag=dag)
        cleanup = PythonOperator(task_id='cleanup', python_callable=lambda: 'cleaned',
                                 trigger_rule='all_done', dag=dag)
        skipped_by_failure = PythonOperator(task_id='needs_success', python_callable=print, dag=dag)
        fail >> [cleanup, skipped_by_failure]
        """,
    )
    result = run_local_json(path)
    assert result["tasks"] == {"fail": "failed", "cleanup": "success", "needs_success": "upstream_failed"}
    assert result["state"] == "failed"
    assert result["xcoms"] == [{"task_id": "cleanup", "key": "return_value", "value": "cleaned"}]


SKIPPING_DAG = """\
from datetime import timedelta
from airflow.exceptions import AirflowSkipException
from airflow.operators.bash import BashOperator
def check(ti):
    ti.xcom_push(key='checked', value=3)
    raise AirflowSkipException('nothing new today')
check = PythonOperator(task_id='check', python_callable=check, retries=2,
                       retry_delay=timedelta(seconds=0), dag=dag)
load = PythonOperator(task_id='load', python_callable=lambda: 'loaded', dag=dag)
report = PythonOperator(task_id='report', python_callable=lambda: 'reported',
                        trigger_rule='none_failed', dag=dag)
check >> [load, report]
no_data = BashOperator(task_id='no_data', bash_command='echo empty; exit 99', dag=dag)
publish = PythonOperator(task_id='publish', python_callable=lambda: 'published', dag=dag)
no_data >> publish
"""


def test_tasks_that_skip_themselves_are_skipped_as_in_airflow(tmp_path: Path) -> None:
    # As Airflow 3: a skipped task is no failure; all_success downstream is skipped, none_failed runs,
    # XComs pushed before the skip stay, and a run whose leaves are success or skipped succeeds.
    done = kdag("run", "--local", str(dag_file(tmp_path, SKIPPING_DAG)), "-o", "json")
    assert done.returncode == 0, done.stderr
    result = done.json()
    assert result["tasks"] == {
        "check": "skipped",
        "load": "skipped",
        "report": "success",
        "no_data": "skipped",
        "publish": "skipped",
    }
    assert result["state"] == "success"
    assert result["xcoms"] == [
        {"task_id": "check", "key": "checked", "value": 3},
        {"task_id": "report", "key": "return_value", "value": "reported"},
    ]


def test_a_skip_is_not_retried_and_its_reason_is_the_message(tmp_path: Path) -> None:
    from kdag import compile as compiler
    from kdag.local.run import LocalDag, run_local

    loaded = compiler.load(dag_file(tmp_path, SKIPPING_DAG))
    result = run_local(LocalDag(loaded.name, loaded.spec, loaded.python_file), tmp_path / "work")
    check, no_data = result.tasks["check"], result.tasks["no_data"]
    assert (check.attempts, check.exit_code, check.message) == (1, 4, "nothing new today")
    assert (no_data.exit_code, no_data.message) == (4, "Bash command returned exit code 99. Skipping.")
    assert result.tasks["load"].attempts == 0


def test_a_command_task_exiting_4_fails(tmp_path: Path) -> None:
    path = tmp_path / "four.yaml"
    path.write_text(
        "apiVersion: kdag.dev/v1alpha1\nkind: DAG\nmetadata: {name: four}\n"
        "spec:\n  tasks:\n    - {id: cmd, command: ['sh', '-c', 'exit 4']}\n"
    )
    assert run_local_json(path)["tasks"] == {"cmd": "failed"}


def test_failed_run_exits_1(tmp_path: Path) -> None:
    path = dag_file(tmp_path, "PythonOperator(task_id='fail', python_callable=lambda: 1 / 0, dag=dag)\n")
    done = kdag("run", "--local", str(path), "-o", "json")
    assert done.returncode == 1
    assert done.json()["tasks"] == {"fail": "failed"}


def test_independent_tasks_run_at_the_same_time(tmp_path: Path) -> None:
    from kdag import compile as compiler
    from kdag.local.run import LocalDag, run_local

    path = dag_file(
        tmp_path,
        """\
        import time
        for name in ('left', 'right'):
            PythonOperator(task_id=name, python_callable=lambda: time.sleep(1.0), dag=dag)
        """,
    )
    loaded = compiler.load(path)
    result = run_local(LocalDag(loaded.name, loaded.spec, loaded.python_file), tmp_path / "work")
    left, right = result.tasks["left"], result.tasks["right"]
    assert left.started_at and right.started_at and left.finished_at and right.finished_at
    assert right.started_at < left.finished_at and left.started_at < right.finished_at


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-p", "novalue"], "error: param 'novalue': expected KEY=VALUE"),
        (["--conf", "[1]"], "error: --conf: must be a JSON object"),
        (
            ["--logical-date", "yesterday"],
            "error: --logical-date: 'yesterday' is not an ISO 8601 date or time",
        ),
    ],
)
def test_bad_run_options_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    path = dag_file(tmp_path, "PythonOperator(task_id='t', python_callable=print, dag=dag)\n")
    done = kdag("run", "--local", str(path), *args)
    assert done.returncode == 1
    assert done.stderr.strip() == message


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    done = kdag("run", "--local", str(tmp_path / "absent.py"))
    assert done.returncode == 1
    assert done.stderr.strip() == f"error: DAG file '{tmp_path / 'absent.py'}': not found"


def test_a_task_past_its_timeout_is_killed_with_the_cluster_message(tmp_path: Path) -> None:
    from kdag import compile as compiler
    from kdag.local.run import LocalDag, run_local

    path = dag_file(
        tmp_path,
        """\
        import time
        from datetime import timedelta
        slow = PythonOperator(task_id='slow', python_callable=lambda: time.sleep(30),
                              execution_timeout=timedelta(seconds=1), dag=dag)
        after = PythonOperator(task_id='after', python_callable=print, dag=dag)
        slow >> after
        """,
    )
    loaded = compiler.load(path)
    result = run_local(LocalDag(loaded.name, loaded.spec, loaded.python_file), tmp_path / "work")
    assert result.as_json()["tasks"] == {"slow": "failed", "after": "upstream_failed"}
    assert result.tasks["slow"].message == "timed out after 1 s"


def test_kdag_variables_of_the_calling_shell_do_not_reach_tasks(tmp_path: Path) -> None:
    import json as json_module
    import os
    import subprocess

    from local_support import KDAG, LOGICAL_DATE

    # An inline task: a KDAG_DAG_FILE leaking from the shell would make the runner load that file instead.
    path = tmp_path / "inline.yaml"
    path.write_text(
        "apiVersion: kdag.dev/v1alpha1\nkind: DAG\nmetadata: {name: inline}\nspec:\n  tasks:\n"
        "    - id: t\n      python: {callable: f, source: \"def f():\\n    return 'ran'\\n\"}\n"
    )
    env = {**os.environ, "KDAG_DAG_FILE": "/nonexistent/other.py"}
    done = subprocess.run(
        [KDAG, "run", "--local", str(path), "-o", "json", "--logical-date", LOGICAL_DATE],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert json_module.loads(done.stdout)["xcoms"] == [
        {"task_id": "t", "key": "return_value", "value": "ran"}
    ]


def test_a_workdir_with_files_in_it_is_refused(tmp_path: Path) -> None:
    path = dag_file(tmp_path / "dag", "PythonOperator(task_id='t', python_callable=print, dag=dag)\n")
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "left-over").write_text("")
    done = kdag("run", "--local", str(path), "--workdir", str(tmp_path / "used"))
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"error: --workdir '{tmp_path / 'used'}' is not empty; give a new or empty directory"
    )
