"""Operators defined in DAG files under `kdag run --local` and `kdag compile`: Airflow 3.3.2's task states
and XCom rows for `airflow_dags/custom_operators.py` (templates, template files, multiple_outputs,
do_xcom_push=False, pre/post_execute, every callback, a retry), and what compile refuses, naming the file
and line."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from local_support import kdag, run_local_json
from test_local_branching import AIRFLOW, DAGS, comparable


def test_custom_operators_give_airflows_states_and_rows(tmp_path: Path) -> None:
    expected = AIRFLOW["custom_operators"]
    result = run_local_json(DAGS / expected["file"], "--workdir", str(tmp_path))
    assert result["state"] == expected["state"] == "failed"
    assert result["tasks"] == expected["tasks"]
    assert comparable(result["xcoms"]) == comparable(expected["xcoms"])
    # The one row kdag leaves out: post_execute pushed None (Airflow 3 passes it no result).
    assert [r for r in expected["xcoms"] if r["value"] is None] == [
        {"task_id": "greet", "key": "post", "value": None}
    ]
    log = (tmp_path / "logs" / "flaky.log").read_text()
    assert "--- attempt 2" in log and "ValueError: first try fails" in log


REFUSED = {
    "no_execute": (
        """\
        class NoExecute(BaseOperator):
            template_fields = ("x",)

        with DAG("refused"):
            NoExecute(task_id="nothing")
        """,
        "DAG file '{file}', line 8: task 'nothing': NoExecute defines no execute(context),"
        " the method kdag runs",
    ),
    "deferrable": (
        """\
        class Waits(BaseOperator):
            def __init__(self, *, deferrable=True, **kwargs):
                super().__init__(**kwargs)
                self.deferrable = deferrable

            def execute(self, context):
                self.defer(trigger=None, method_name="done")

        with DAG("refused"):
            Waits(
                task_id="waits",
            )
        """,
        "DAG file '{file}', line 13: task 'waits': Waits is deferrable (deferrable=True needs Airflow's"
        " triggerer): pass deferrable=False",
    ),
    "async": (
        """\
        class Async(BaseOperator):
            async def execute(self, context):
                return 1

        with DAG("refused"):
            Async(task_id="async_op")
        """,
        "DAG file '{file}', line 9: task 'async_op': Async.execute is a coroutine: async operators need"
        " Airflow's triggerer",
    ),
}
HEADER = "from airflow.sdk import DAG, BaseOperator\n\n\n"


@pytest.mark.parametrize("command", [["compile"], ["run", "--local"]])
@pytest.mark.parametrize("case", sorted(REFUSED))
def test_operators_kdag_cannot_run_are_refused_with_file_and_line(
    tmp_path: Path, case: str, command: list[str]
) -> None:
    body, message = REFUSED[case]
    dag_file = tmp_path / "dag.py"
    dag_file.write_text(HEADER + textwrap.dedent(body), encoding="utf-8")
    done = kdag(*command, str(dag_file))
    assert done.returncode == 1
    assert done.stderr.strip() == "error: " + message.format(file=dag_file)


def test_a_custom_operator_compiles_to_a_from_dag_file_task(tmp_path: Path) -> None:
    done = kdag("compile", str(DAGS / "custom_operators.py"))
    assert done.returncode == 0, done.stderr
    items: list[dict[str, Any]] = [m for m in yaml.safe_load_all(done.stdout) if m]
    dag = next(m for m in items if m["kind"] == "DAG")
    tasks = {t["id"]: t for t in dag["spec"]["tasks"]}
    assert set(tasks) == {"produce", "greet", "quiet", "flaky", "skipping", "failing"}
    assert all(t["python"] == {"fromDagFile": True} for t in tasks.values())
    assert tasks["flaky"]["retries"] == 1


def test_a_bash_script_template_runs_from_the_dag_folder(tmp_path: Path) -> None:
    (tmp_path / "hello.sh").write_text('echo "hello {{ params.who }} on {{ ds }}"\n')
    dag_file = tmp_path / "dag.py"
    dag_file.write_text(
        textwrap.dedent(
            """\
            from airflow.sdk import DAG
            from airflow.providers.standard.operators.bash import BashOperator

            with DAG("scripts", params={"who": "kdag"}):
                BashOperator(task_id="script", bash_command="hello.sh")
                BashOperator(task_id="as_is", bash_command="echo plain.sh ")
            """
        )
    )
    result = run_local_json(dag_file, "--workdir", str(tmp_path / "work"))
    assert result["state"] == "success", result
    rows = {r["task_id"]: r["value"] for r in result["xcoms"] if r["key"] == "return_value"}
    assert rows == {"script": "hello kdag on 2026-11-21", "as_is": "plain.sh"}
