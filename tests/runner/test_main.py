"""``python -m kdag_runner run|collect`` as a subprocess, with a directory sink and ancestor stores."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from kdag_runner import report as runner_report
from kdag_runner import store

from .runner_support import finished, run_dag_file, run_runner, task_env, write_store

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "python"


def inline(tmp_path: Path, task_id: str, source: str, callable_name: str = "task", **kwargs: object):  # type: ignore[no-untyped-def]
    extra = {"KDAG_PYTHON_SOURCE": textwrap.dedent(source), "KDAG_PYTHON_CALLABLE": callable_name}
    return run_runner(tmp_path, task_id, extra=extra, **kwargs)  # type: ignore[arg-type]


def test_inline_task_pushes_its_return_value_and_pulls_ancestors(tmp_path: Path) -> None:
    write_store(tmp_path, "extract", {"return_value": {"rows": 3}, "label": "x"})
    result = inline(
        tmp_path,
        "transform",
        """
        def task(ti, ds, params, dag_run):
            seen = [ti.xcom_pull(task_ids="extract"), ti.xcom_pull("extract", key="label")]
            ti.xcom_push(key="seen", value=seen)
            return {"ds": ds, "p": params["p"], "conf": dag_run.conf}
        """,
        ancestors=["extract"],
        params={"p": 1},
        conf={"c": True},
    )
    assert result.returncode == 0, result.stderr
    assert result.xcoms == {
        "seen": [{"rows": 3}, "x"],
        "return_value": {"ds": "2024-03-05", "p": 1, "conf": {"c": True}},
    }
    assert result.termination == {
        "xcomKeys": ["seen", "return_value"],
        "bytes": store.data_size(result.data),
        "xcomLengths": {"return_value": 3, "seen": 2},  # what a mapped task downstream would expand over
    }
    assert "Done. Returned value was: {'ds': '2024-03-05'" in result.stdout


def test_a_task_that_pushes_nothing_still_writes_an_empty_store(tmp_path: Path) -> None:
    result = inline(tmp_path, "quiet", "def task():\n    print('nothing')\n")
    assert result.returncode == 0
    assert result.data == {".types": "{}"}
    assert result.termination == {"xcomKeys": [], "bytes": len(".types{}")}


def test_every_attempt_replaces_the_store(tmp_path: Path) -> None:
    first = inline(
        tmp_path, "t", "def task(ti):\n    ti.xcom_push(key='old', value=1)\n    return 'first'\n", attempt=1
    )
    assert first.xcoms == {"old": 1, "return_value": "first"}
    second = inline(tmp_path, "t", "def task(ti):\n    return ti.try_number\n", attempt=2)
    assert second.xcoms == {"return_value": 2}


def test_a_failing_task_exits_1_with_traceback_and_keeps_earlier_pushes(tmp_path: Path) -> None:
    result = inline(
        tmp_path,
        "fails",
        """
        def task(ti):
            ti.xcom_push(key="progress", value=50)
            ti.context["stage"] = "half"
            raise ValueError("boom")
        """,
    )
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert 'raise ValueError("boom")' in result.stderr and "ValueError: boom" in result.stderr
    assert result.xcoms == {"progress": 50, "__context": {"stage": "half"}}
    # Every key stored but .types, __context too: what the controller mounts downstream.
    assert result.termination == {
        "xcomKeys": ["progress", "__context"],
        "bytes": store.data_size(result.data),
        "error": "ValueError: boom",
    }


def test_sys_exit_fails_the_task_as_in_airflow_3(tmp_path: Path) -> None:
    result = inline(tmp_path, "exits", "import sys\ndef task():\n    sys.exit(0)\n")
    assert result.returncode == 1
    assert result.termination is not None and result.termination["error"] == "Task exited with exit code 0"


def test_a_value_json_refuses_exits_3_naming_key_task_and_type(tmp_path: Path) -> None:
    result = inline(
        tmp_path, "sets", "def task(ti):\n    ti.xcom_push(key='ok', value=1)\n    return {1, 2}\n"
    )
    assert result.returncode == 3
    message = "XCom 'return_value' of task 'sets' is not JSON-serialisable: set"
    assert message in result.stderr
    assert result.termination == {"error": message}
    assert result.xcoms == {"ok": 1}


def test_xcoms_over_the_limit_exit_3_and_leave_an_empty_store(tmp_path: Path) -> None:
    inline(tmp_path, "big", "def task(ti):\n    ti.xcom_push(key='stale', value=1)\n")
    result = inline(tmp_path, "big", "def task():\n    return 'x' * 1032192\n", attempt=2)
    assert result.returncode == 3
    size = len("return_value") + 1032192 + len('.types{"return_value":"str"}')
    message = (
        f"XComs of task 'big' take {size} bytes; a task's XComs must fit in 1032192 bytes (one ConfigMap)"
    )
    assert result.termination == {"error": message}
    assert result.data == {".types": "{}"}


def test_the_context_of_ancestors_reaches_the_task(tmp_path: Path) -> None:
    write_store(tmp_path, "setter", {"__context": {"value": "some value"}})
    result = inline(
        tmp_path, "getter", "def task(ti):\n    return ti.context['value']\n", ancestors=["setter"]
    )
    assert result.xcoms == {"return_value": "some value", "__context": {"value": "some value"}}


def test_config_errors_exit_1_naming_the_variable(tmp_path: Path) -> None:
    result = run_runner(tmp_path, "t", extra={"KDAG_RUN_ID": ""})
    assert result.returncode == 1
    assert "KDAG_RUN_ID is not set" in result.stderr
    assert result.termination is not None and "KDAG_RUN_ID is not set" in result.termination["error"]
    result = run_runner(tmp_path, "t")
    assert result.returncode == 1
    assert "task 't': set KDAG_DAG_FILE, or KDAG_PYTHON_SOURCE and KDAG_PYTHON_CALLABLE" in result.stderr
    result = inline(tmp_path, "t", "def other():\n    pass\n")
    assert "task 't': the source defines no callable 'task'" in result.stderr


def test_an_unknown_sink_is_an_xcom_failure(tmp_path: Path) -> None:
    extra = {
        "KDAG_PYTHON_SOURCE": "def task():\n    return 1\n",
        "KDAG_PYTHON_CALLABLE": "task",
        "KDAG_XCOM_SINK": "s3://bucket",
    }
    result = run_runner(tmp_path, "t", extra=extra)
    assert result.returncode == 3
    assert result.termination == {
        "error": "KDAG_XCOM_SINK must be 'dir:PATH' or 'configmap', got 's3://bucket'"
    }


def test_usage_error_exits_2() -> None:
    completed = subprocess.run([sys.executable, "-m", "kdag_runner", "fly"], capture_output=True, text=True)
    assert completed.returncode == 2
    assert "usage: python -m kdag_runner run|collect" in completed.stderr


def test_the_xcom_lesson_runs_task_by_task(tmp_path: Path) -> None:
    results = run_dag_file(
        tmp_path,
        EXAMPLES / "xcom_lesson.py",
        [("sql_task", []), ("hello_task", []), ("goodbye_task", ["hello_task"])],
        dag_id="etl_dag",
    )
    assert {t: r.returncode for t, r in results.items()} == {
        "sql_task": 0,
        "hello_task": 0,
        "goodbye_task": 0,
    }
    assert results["sql_task"].xcoms == {"return_value": "hello world"}
    assert results["hello_task"].xcoms == {"execution_time": "2024-03-05", "return_value": "hello world"}
    assert results["goodbye_task"].xcoms == {"return_value": ["2024-03-05"]}


def test_the_three_ways_lesson_passes_pushes_context_and_params(tmp_path: Path) -> None:
    results = run_dag_file(
        tmp_path,
        EXAMPLES / "xcom_three_ways.py",
        [
            ("push_task", []),
            ("pull_task", ["push_task"]),
            ("set_context_task", []),
            ("get_context_task", ["set_context_task"]),
            ("use_value_task", []),
        ],
        dag_id="xcom_three_ways",
    )
    assert all(r.returncode == 0 for r in results.values()), {t: r.stderr for t, r in results.items()}
    assert "Value: some value" in results["pull_task"].stdout
    assert "Value: some value" in results["get_context_task"].stdout
    assert "Value: some value" in results["use_value_task"].stdout
    assert results["set_context_task"].xcoms == {"__context": {"value": "some value"}}


@pytest.mark.parametrize(("run_params", "who"), [({}, "task"), ({"who": "run"}, "run")])
def test_every_xcom_semantic_of_the_example(tmp_path: Path, run_params: dict[str, str], who: str) -> None:
    producers = ["produce_mapping", "produce_text", "produce_number", "produce_nothing"]
    results = run_dag_file(
        tmp_path,
        EXAMPLES / "xcom_semantics.py",
        [*[(p, []) for p in producers], ("consume", producers)],
        dag_id="xcom_semantics",
        params=run_params,
    )
    assert results["produce_mapping"].xcoms == {
        "count": 3,
        "label": "second",
        "nested": [1, [2, 3], {"four": 4.5}, None, True],
        "return_value": {"rows": [1, 2, 3], "ok": True, "ratio": 0.5},
    }
    assert results["produce_nothing"].data == {".types": "{}"}
    assert results["consume"].xcoms["return_value"] == {
        "one": {"rows": [1, 2, 3], "ok": True, "ratio": 0.5},
        "by_key": "second",
        "many": ["plain text", 42],
        "missing_key": None,
        "from_none": None,
        "own": "mine",
        "who": who,
        "greeting": "hello",
    }


def test_bash_operators_of_the_example(tmp_path: Path) -> None:
    results = run_dag_file(
        tmp_path,
        EXAMPLES / "bash_templates.py",
        [
            ("make_name", []),
            ("greet", ["make_name"]),
            ("last_line", ["make_name", "greet"]),
            ("dated", []),
            ("which_run", ["dated"]),
        ],
        dag_id="bash_templates",
    )
    returned = {t: r.xcoms.get("return_value") for t, r in results.items()}
    assert returned == {
        "make_name": "kdag",
        "greet": "Hello, kdag!",
        "last_line": "Hello, kdag! (last)",
        "dated": "world on 20240305",
        "which_run": "run etl-run-1",
    }


def test_a_failing_bash_command_exits_1(tmp_path: Path) -> None:
    dag_file = tmp_path / "dag.py"
    dag_file.write_text(
        "from airflow import DAG\nfrom airflow.operators.bash import BashOperator\n"
        "with DAG('d'):\n    BashOperator(task_id='b', bash_command='echo partial; exit 7')\n",
        encoding="utf-8",
    )
    result = run_dag_file(tmp_path, dag_file, [("b", [])], dag_id="d")["b"]
    assert result.returncode == 1
    assert "partial" in result.stdout
    assert result.termination is not None
    assert result.termination["error"] == (
        "AirflowException: Bash command failed. The command returned a non-zero exit code 7."
    )
    missing = run_dag_file(tmp_path, dag_file, [("nope", [])], dag_id="d")["nope"]
    assert missing.returncode == 1
    assert f"task 'nope': not in DAG 'd' of '{dag_file}'" in missing.stderr


def test_airflow_skip_exception_exits_4_and_keeps_earlier_pushes(tmp_path: Path) -> None:
    result = inline(
        tmp_path,
        "skips",
        """
        from airflow.exceptions import AirflowSkipException

        def task(ti):
            ti.xcom_push(key="seen", value=[1, 2])
            ti.context["stage"] = "checked"
            raise AirflowSkipException("nothing new today")
        """,
    )
    assert result.returncode == runner_report.EXIT_SKIPPED == 4
    assert "Skipping task. reason: nothing new today" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.xcoms == {"seen": [1, 2], "__context": {"stage": "checked"}}
    assert result.termination == {
        "xcomKeys": ["seen", "__context"],
        "bytes": store.data_size(result.data),
        "skipped": "nothing new today",
    }


def test_a_skip_without_a_reason_still_says_skipped(tmp_path: Path) -> None:
    # airflow.sdk.exceptions: where Airflow 3 wants AirflowSkipException imported from.
    source = (
        "from airflow.sdk.exceptions import AirflowSkipException\n"
        "def task():\n    raise AirflowSkipException\n"
    )
    result = inline(tmp_path, "quiet_skip", source)
    assert result.returncode == 4
    assert result.termination == {"xcomKeys": [], "bytes": len(".types{}"), "skipped": "Task skipped"}


def test_a_skip_with_an_unstorable_xcom_is_an_xcom_failure(tmp_path: Path) -> None:
    result = inline(
        tmp_path,
        "skips",
        """
        from airflow.exceptions import AirflowSkipException

        def task(ti):
            ti.context["bad"] = {1, 2}
            raise AirflowSkipException("later")
        """,
    )
    assert result.returncode == 3
    assert result.termination is not None and set(result.termination) == {"error"}
    assert result.data == {".types": "{}"}


def test_a_bash_command_exiting_99_skips_the_task(tmp_path: Path) -> None:
    dag_file = tmp_path / "dag.py"
    dag_file.write_text(
        "from airflow import DAG\nfrom airflow.operators.bash import BashOperator\n"
        "with DAG('d'):\n"
        "    BashOperator(task_id='b', bash_command='echo no data; exit 99')\n"
        "    BashOperator(task_id='c', bash_command='exit 3', skip_on_exit_code=[3])\n"
        "    BashOperator(task_id='e', bash_command='exit 99', skip_on_exit_code=None)\n",
        encoding="utf-8",
    )
    results = run_dag_file(tmp_path, dag_file, [("b", []), ("c", []), ("e", [])], dag_id="d")
    assert results["b"].returncode == 4
    assert "no data" in results["b"].stdout
    assert results["b"].termination == {
        "xcomKeys": [],
        "bytes": len(".types{}"),
        "skipped": "Bash command returned exit code 99. Skipping.",
    }
    assert results["c"].returncode == 4
    assert results["c"].termination is not None
    assert results["c"].termination["skipped"] == "Bash command returned exit code 3. Skipping."
    assert results["e"].returncode == 1
    assert results["e"].termination is not None
    assert results["e"].termination["error"] == (
        "AirflowException: Bash command failed. The command returned a non-zero exit code 99."
    )


def write_outputs(out: Path, files: dict[str, str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (out / name).write_text(text, encoding="utf-8")


def test_collect_pushes_json_files_when_done_appears(tmp_path: Path) -> None:
    env = task_env(tmp_path, "shell")
    collector = subprocess.Popen(
        [sys.executable, "-m", "kdag_runner", "collect"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    time.sleep(0.3)
    assert collector.poll() is None  # waits for the task
    out = tmp_path / "out" / "shell"
    write_outputs(
        out, {"return.json": '"done"', "count.json": "3", "rows.json": '[1, {"a": null}]', "x.txt": "no"}
    )
    (out / ".done").touch()
    _, stderr = collector.communicate(timeout=30)
    result = finished(tmp_path, "shell", collector.returncode, "", stderr.decode())
    assert result.returncode == 0, result.stderr
    assert result.xcoms == {"count": 3, "return_value": "done", "rows": [1, {"a": None}]}
    assert result.data["return_value"] == "done"
    assert result.termination == {
        "xcomKeys": ["count", "return_value", "rows"],
        "bytes": store.data_size(result.data),
        "xcomLengths": {"rows": 2},
    }


def test_collect_pushes_on_sigterm(tmp_path: Path) -> None:
    env = task_env(tmp_path, "shell")
    collector = subprocess.Popen([sys.executable, "-m", "kdag_runner", "collect"], env=env)
    write_outputs(tmp_path / "out" / "shell", {"return.json": '{"ok": true}'})
    wait_until_caught(collector.pid, signal.SIGTERM)
    collector.send_signal(signal.SIGTERM)
    assert collector.wait(timeout=30) == 0
    assert finished(tmp_path, "shell", 0, "", "").xcoms == {"return_value": {"ok": True}}


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            {"return.json": "not json"},
            "XCom file 'return.json' of task 'shell' is not valid JSON: Expecting value",
        ),
        ({"__own.json": "1"}, "XCom file '__own.json': XCom key '__own' of task 'shell' is reserved"),
        (
            {"return.json": "1", "return_value.json": "2"},
            "XCom files 'return.json' and 'return_value.json' of task 'shell' both set 'return_value'",
        ),
        # What json.loads takes but is no JSON (RFC 8259): NaN, an object naming a key twice (one is lost).
        (
            {"return.json": "[1, NaN]"},
            "XCom file 'return.json' of task 'shell' is not valid JSON: NaN is not JSON",
        ),
        (
            {"stats.json": '{"n": 1, "n": 2}'},
            "XCom file 'stats.json' of task 'shell' is not valid JSON: an object has the key 'n' twice",
        ),
    ],
)
def test_collect_refuses_bad_files_with_exit_3(tmp_path: Path, files: dict[str, str], message: str) -> None:
    out = tmp_path / "out" / "shell"
    write_outputs(out, files)
    (out / ".done").touch()
    result = run_runner(tmp_path, "shell", command="collect")
    assert result.returncode == 3
    assert message in result.stderr
    assert result.termination is not None and message in result.termination["error"]
    assert result.data == {".types": "{}"}


def test_collect_reads_only_regular_files_never_through_a_symbolic_link(tmp_path: Path) -> None:
    # The collector holds the pod's token: a task must not make it read (and push) another file.
    token = tmp_path / "token"
    token.write_text('"secret"', encoding="utf-8")
    out = tmp_path / "out" / "shell"
    write_outputs(out, {"ok.json": "1"})
    (out / "return.json").symlink_to(token)
    (out / ".done").touch()
    result = run_runner(tmp_path, "shell", command="collect")
    message = (
        "XCom file 'return.json' of task 'shell' cannot be read: it is a symbolic link: write the file itself"
    )
    assert (result.returncode, result.termination) == (3, {"error": message})
    assert result.data == {".types": "{}"}
    (out / "return.json").unlink()
    os.mkfifo(out / "return.json")  # would block a reader that opened it waiting for a writer
    result = run_runner(tmp_path, "shell", command="collect", timeout=20)
    assert result.termination == {"error": "XCom file 'return.json' of task 'shell' is not a regular file"}
    (out / "return.json").unlink()
    (out / "dir.json").mkdir()  # a directory is no XCom file, as before
    result = run_runner(tmp_path, "shell", command="collect")
    assert (result.returncode, result.xcoms) == (0, {"ok": 1}), result.stderr


def test_termination_message_goes_only_where_kubernetes_made_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KDAG_TERMINATION_LOG", raising=False)
    absent = tmp_path / "termination-log"
    monkeypatch.setattr(runner_report, "DEFAULT_TERMINATION_LOG", str(absent))
    runner_report.write_termination_message({"xcomKeys": [], "bytes": 9})
    assert not absent.exists()
    absent.write_text("", encoding="utf-8")
    runner_report.write_termination_message({"xcomKeys": ["a"], "bytes": 9})
    assert json.loads(absent.read_text(encoding="utf-8")) == {"xcomKeys": ["a"], "bytes": 9}


def test_collect_as_pid_1_gets_sigterm(tmp_path: Path) -> None:
    """In a container the collector is PID 1, which the kernel sends only signals it handles."""
    write_outputs(tmp_path / "out" / "shell", {"return.json": '"from pid 1"'})
    unshare = ["unshare", "--pid", "--fork", "--mount-proc"]
    wrapper = subprocess.Popen(
        [*unshare, sys.executable, "-m", "kdag_runner", "collect"], env=task_env(tmp_path, "shell")
    )
    children = Path(f"/proc/{wrapper.pid}/task/{wrapper.pid}/children")
    deadline = time.monotonic() + 30
    while not children.read_text().split() and time.monotonic() < deadline:
        time.sleep(0.05)
    collector = int(children.read_text().split()[0])
    namespace_pids = next(
        line.split()[1:]
        for line in Path(f"/proc/{collector}/status").read_text().splitlines()
        if line.startswith("NSpid")
    )
    assert namespace_pids[-1] == "1"
    wait_until_caught(collector, signal.SIGTERM)
    os.kill(collector, signal.SIGTERM)
    assert wrapper.wait(timeout=30) == 0
    assert finished(tmp_path, "shell", 0, "", "").xcoms == {"return_value": "from pid 1"}


def wait_until_caught(pid: int, signum: int, timeout: float = 30) -> None:
    """Wait until the process handles ``signum`` (SigCgt in /proc), so a signal now is not lost."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = Path(f"/proc/{pid}/status").read_text()
        caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt")), 16)
        if caught & (1 << (signum - 1)):
            return
        time.sleep(0.02)
    raise TimeoutError(f"process {pid} never handled signal {signum}")


def test_get_current_context_and_retries_inside_a_running_task(tmp_path: Path) -> None:
    dag_file = tmp_path / "dag.py"
    dag_file.write_text(
        textwrap.dedent(
            """
            from airflow import DAG
            from airflow.operators.python import PythonOperator, get_current_context

            def report():
                context = get_current_context()
                ti, task, dag = context["ti"], context["task"], context["dag"]
                return [context["ds"], ti.max_tries, task.task_id, dag.dag_id]

            with DAG("ctx"):
                PythonOperator(task_id="report", python_callable=report, retries=2)
            """
        ),
        encoding="utf-8",
    )
    result = run_dag_file(tmp_path, dag_file, [("report", [])], dag_id="ctx")["report"]
    assert result.returncode == 0, result.stderr
    assert result.xcoms == {"return_value": ["2024-03-05", 2, "report", "ctx"]}


def test_a_taskflow_dag_passes_values_through_xcom_args(tmp_path: Path) -> None:
    dag_file = tmp_path / "taskflow.py"
    dag_file.write_text(
        textwrap.dedent(
            """
            from __future__ import annotations
            from datetime import datetime
            from airflow.decorators import dag, task

            @dag(start_date=datetime(2024, 1, 1), schedule=None)
            def taskflow_etl():
                @task
                def extract() -> dict[str, int]:
                    return {"a": 1, "b": 2}

                @task
                def total(a: int, b: int) -> int:
                    return a + b

                @task
                def report(value, ds=None):
                    return f"{value} on {ds}"

                data = extract()
                report(total(data["a"], data["b"]))

            taskflow_etl()
            """
        ),
        encoding="utf-8",
    )
    results = run_dag_file(
        tmp_path,
        dag_file,
        [("extract", []), ("total", ["extract"]), ("report", ["extract", "total"])],
        dag_id="taskflow_etl",
    )
    assert {t: r.returncode for t, r in results.items()} == {"extract": 0, "total": 0, "report": 0}
    assert results["extract"].xcoms == {"a": 1, "b": 2, "return_value": {"a": 1, "b": 2}}
    assert results["total"].xcoms == {"return_value": 3}
    assert results["report"].xcoms == {"return_value": "3 on 2024-03-05"}


def test_sigterm_fails_the_task_at_once_and_keeps_earlier_pushes(tmp_path: Path) -> None:
    """A deleted pod's runner (PID 1 of its container) must not wait out the grace period."""
    started = tmp_path / "started"
    source = f"""
        import pathlib, time
        def task(ti):
            ti.xcom_push(key="progress", value=50)
            pathlib.Path({str(started)!r}).touch()
            time.sleep(60)
        """
    env = task_env(
        tmp_path,
        "slow",
        extra={"KDAG_PYTHON_SOURCE": textwrap.dedent(source), "KDAG_PYTHON_CALLABLE": "task"},
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "kdag_runner", "run"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=10)
    result = finished(tmp_path, "slow", process.returncode, stdout, stderr)
    assert result.returncode == 1, stderr
    assert result.xcoms == {"progress": 50}
    assert result.termination is not None
    assert result.termination["error"] == "TaskTerminated: Task received signal SIGTERM; terminating"
