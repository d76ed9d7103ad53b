"""YAML DAGs run locally: inline Python through the runner, commands with the XCom collector."""

from __future__ import annotations

import textwrap
from pathlib import Path

from local_support import REPO, run_local_json

MIXED = """\
apiVersion: kdag.dev/v1alpha1
kind: DAG
metadata: {name: mixed}
spec:
  dagId: mixed_dag
  params: {greeting: hello}
  tasks:
    - id: shell
      command: [sh, -c]
      args:
        - |
          echo '"from sh"' > "$KDAG_XCOM_DIR/return.json"
          echo '{"n": 42}' > "$KDAG_XCOM_DIR/answer.json"
          echo "task $KDAG_TASK_ID of $KDAG_DAG_ID"
    - id: python
      upstream: [shell]
      xcomInputs:
        - {env: ANSWER, task: shell, key: answer}
      env:
        - {name: EXTRA, value: extra-value}
      python:
        callable: consume
        source: |
          import os
          def consume(ti, params, **_):
              return {'env': os.environ['ANSWER'], 'extra': os.environ['EXTRA'],
                      'pulled': ti.xcom_pull(task_ids='shell', key='answer'),
                      'greeting': params['greeting']}
    - id: shell_reads_input
      upstream: [python]
      command: [sh, -c, 'cat "$KDAG_XCOM_IN/shell/answer" > "$KDAG_XCOM_DIR/copied.json"']
"""


def test_command_and_inline_python_tasks_exchange_xcoms(tmp_path: Path) -> None:
    path = tmp_path / "mixed.yaml"
    path.write_text(MIXED)
    result = run_local_json(path)
    assert result["dag_id"] == "mixed_dag"
    assert result["state"] == "success", result
    assert result["xcoms"] == [
        {"task_id": "shell", "key": "answer", "value": {"n": 42}},
        {"task_id": "shell", "key": "return_value", "value": "from sh"},
        {
            "task_id": "python",
            "key": "return_value",
            "value": {"env": '{"n":42}', "extra": "extra-value", "pulled": {"n": 42}, "greeting": "hello"},
        },
        {"task_id": "shell_reads_input", "key": "copied", "value": {"n": 42}},
    ]


def test_failing_command_fails_and_bad_xcom_file_fails_with_the_collector_message(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            apiVersion: kdag.dev/v1alpha1
            kind: DAG
            metadata: {name: bad}
            spec:
              tasks:
                - {id: exits, command: [sh, -c, 'exit 7']}
                - {id: bad_json, command: [sh, -c, 'echo "not json" > "$KDAG_XCOM_DIR/return.json"']}
                - {id: after, upstream: [bad_json], command: ['true']}
            """
        )
    )
    from kdag import compile as compiler
    from kdag.local.run import LocalDag, run_local

    loaded = compiler.load(path)
    result = run_local(LocalDag(loaded.name, loaded.spec, loaded.python_file), tmp_path / "work")
    assert result.as_json()["tasks"] == {"exits": "failed", "bad_json": "failed", "after": "upstream_failed"}
    assert result.tasks["exits"].exit_code == 7
    assert result.tasks["bad_json"].exit_code == 3
    assert result.tasks["bad_json"].message.startswith(
        "XCom file 'return.json' of task 'bad_json' is not valid JSON"
    )


def test_the_yaml_example_of_the_first_lesson_gives_the_lesson_rows() -> None:
    result = run_local_json(REPO / "examples" / "xcom-lesson.yaml")
    assert result["state"] == "success"
    assert result["xcoms"] == [
        {"task_id": "sql_task", "key": "return_value", "value": "hello world"},
        {"task_id": "hello_task", "key": "execution_time", "value": "2026-11-21"},
        {"task_id": "hello_task", "key": "return_value", "value": "hello world"},
        {"task_id": "goodbye_task", "key": "return_value", "value": ["2026-11-21"]},
    ]


def test_a_command_that_does_not_exist_fails_with_exit_code_127(tmp_path: Path) -> None:
    path = tmp_path / "missing.yaml"
    path.write_text(
        "apiVersion: kdag.dev/v1alpha1\nkind: DAG\nmetadata: {name: missing}\n"
        "spec:\n  tasks:\n    - {id: nothing, command: [/no/such/program]}\n"
    )
    from kdag import compile as compiler
    from kdag.local.run import LocalDag, run_local

    loaded = compiler.load(path)
    result = run_local(LocalDag(loaded.name, loaded.spec, loaded.python_file), tmp_path / "work")
    assert result.tasks["nothing"].state == "failed"
    assert result.tasks["nothing"].exit_code == 127
    assert "could not start '/no/such/program'" in result.tasks["nothing"].message


def test_compiled_manifests_run_locally_from_a_directory_and_from_one_file(tmp_path: Path) -> None:
    from local_support import AIRFLOW_3_3_2_ROWS, EXAMPLES, kdag, user_rows

    lesson = EXAMPLES / "xcom_lesson.py"
    assert kdag("compile", str(lesson), "-o", str(tmp_path / "gitops")).returncode == 0
    one_file = tmp_path / "all.yaml"
    one_file.write_text(kdag("compile", str(lesson)).stdout)
    for manifest in (tmp_path / "gitops" / "dag-etl-dag.yaml", one_file):
        result = run_local_json(manifest)
        assert result["state"] == "success", manifest
        expected = user_rows(AIRFLOW_3_3_2_ROWS["xcom_lesson.py"], "<run_id>")
        assert user_rows(result["xcoms"], result["run_id"]) == expected


def test_the_shell_example_runs_locally_as_on_the_cluster() -> None:
    result = run_local_json(REPO / "examples" / "shell-task.yaml")
    assert result["state"] == "success", result
    consumed = next(r["value"] for r in result["xcoms"] if r["task_id"] == "consume")
    assert consumed == {"env": "from sh", "answer_env": '{"n":42}', "file": '{"n":42}', "pulled": {"n": 42}}
    reported = next(r["value"] for r in result["xcoms"] if r["task_id"] == "report")
    assert reported == {"greeting": "from sh", "answer": {"n": 42}}


def test_an_xcom_input_over_the_environment_limit_reaches_python_and_fails_a_command_naming_it(
    tmp_path: Path,
) -> None:
    # 1 MB fits a ConfigMap but no environment string Linux starts a program with (128 KiB): a Python
    # task's runner sets it itself; a command fails at once, never retried, naming the input and the limit.
    path = tmp_path / "big.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            apiVersion: kdag.dev/v1alpha1
            kind: DAG
            metadata: {name: big-env}
            spec:
              tasks:
                - id: big
                  python: {callable: big, source: "def big(**_):\\n    return 'x' * 1000000\\n"}
                - id: python
                  upstream: [big]
                  xcomInputs: [{env: BIG, task: big}]
                  python:
                    callable: f
                    source: "import os\\ndef f(**_):\\n    return len(os.environ['BIG'])\\n"
                - id: command
                  upstream: [big]
                  retries: 2
                  xcomInputs: [{env: BIG, task: big}]
                  command: [sh, -c, 'echo "${#BIG}" > "$KDAG_XCOM_DIR/return.json"']
            """
        )
    )
    from kdag import compile as compiler
    from kdag.local.run import LocalDag, run_local

    loaded = compiler.load(path)
    result = run_local(LocalDag(loaded.name, loaded.spec, loaded.python_file), tmp_path / "work")
    assert result.as_json()["tasks"] == {"big": "success", "python": "success", "command": "failed"}
    assert {(x["task_id"], x["value"]) for x in result.as_json()["xcoms"] if x["task_id"] != "big"} == {
        ("python", 1_000_000)
    }
    command = result.tasks["command"]
    assert (command.attempts, command.exit_code) == (1, 3)
    assert command.message.startswith(
        "xcomInputs of task 'command': XCom 'return_value' of task 'big' takes 1000005 bytes as the"
        " environment variable BIG, over Linux's limit of 131072 bytes for one variable"
    )
