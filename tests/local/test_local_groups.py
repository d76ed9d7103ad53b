"""`kdag run --local` on DAGs with task groups, the rest of TaskFlow and templating gives the task states,
XCom rows and dependencies Apache Airflow gives for the same files (tests/local/dags/).

Reference: `airflow dags test DAG 2026-11-21 -f FILE` with Apache Airflow 3.3.2 (bench/airflow_reference.py's
venv and database reading), recorded 2026-11-30; the edges and setup/teardown marks are read from the DAG
objects Airflow built (`task.upstream_task_ids`, `is_setup`, `is_teardown`, `trigger_rule`,
`on_failure_fail_dagrun`). kdag's edges are those `kdag compile` writes into the DAG spec.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from local_support import kdag, run_local_json, user_rows

DAGS = Path(__file__).resolve().parent / "dags"


AIRFLOW_3_3_2_STATES: dict[str, str] = {
    "task_groups.py": "success",
    "setup_teardown.py": "success",
    "taskflow_templating.py": "success",
}


AIRFLOW_3_3_2_TASKS: dict[str, dict[str, str]] = {
    "task_groups.py": {
        "add": "success",
        "checks.first": "success",
        "checks.second": "success",
        "end_0": "success",
        "end_1": "success",
        "end_2": "success",
        "join_0": "success",
        "join_1": "success",
        "outer.head": "success",
        "outer.inner.deep": "success",
        "outer.inner.deeper": "success",
        "split": "success",
        "start": "success",
        "summarize.double": "success",
        "summarize.report": "success",
        "summarize__1.double": "success",
        "summarize__1.report": "success",
        "tail.after_deeper": "success",
        "unprefixed": "success",
    },
    "setup_teardown.py": {
        "after_scratch": "success",
        "create_cluster": "success",
        "delete_cluster": "success",
        "flaky_cleanup": "failed",
        "scratch.clean": "success",
        "scratch.fails": "failed",
        "scratch.make": "success",
        "strict_cleanup": "success",
        "work": "success",
    },
    "taskflow_templating.py": {
        "as_json": "success",
        "combined": "success",
        "echo_text": "success",
        "env_from_xcom": "success",
        "f_string": "success",
        "filtered": "success",
        "from_output": "success",
        "greet": "success",
        "included": "success",
        "jinja_text": "success",
        "pair": "success",
    },
}


AIRFLOW_3_3_2_ROWS: dict[str, list[dict[str, Any]]] = {
    "task_groups.py": [
        {"task_id": "outer.head", "key": "return_value", "value": 2},
        {"task_id": "outer.inner.deep", "key": "return_value", "value": 3},
        {"task_id": "outer.inner.deeper", "key": "return_value", "value": 2},
        {"task_id": "unprefixed", "key": "return_value", "value": 1},
        {"task_id": "split", "key": "x", "value": 2},
        {"task_id": "split", "key": "y", "value": 5},
        {"task_id": "split", "key": "return_value", "value": {"x": 2, "y": 5}},
        {"task_id": "add", "key": "return_value", "value": 7},
        {"task_id": "summarize__1.double", "key": "return_value", "value": 10},
        {"task_id": "summarize.double", "key": "return_value", "value": 14},
        {"task_id": "summarize__1.report", "key": "return_value", "value": "total 10"},
        {"task_id": "summarize.report", "key": "return_value", "value": "total 14"},
        {"task_id": "checks.first", "key": "return_value", "value": 4},
        {"task_id": "checks.second", "key": "return_value", "value": 4},
    ],
    "setup_teardown.py": [
        {"task_id": "create_cluster", "key": "return_value", "value": "cluster-1"},
        {"task_id": "scratch.make", "key": "return_value", "value": "made"},
        {"task_id": "work", "key": "return_value", "value": "worked on cluster-1"},
        {"task_id": "delete_cluster", "key": "return_value", "value": "deleted cluster-1"},
        {"task_id": "scratch.clean", "key": "return_value", "value": "cleaned"},
        {"task_id": "strict_cleanup", "key": "return_value", "value": "strictly cleaned cluster-1"},
        {"task_id": "after_scratch", "key": "return_value", "value": "after"},
    ],
    "taskflow_templating.py": [
        {"task_id": "jinja_text", "key": "return_value", "value": "{{ ds }} stays as it is"},
        {"task_id": "filtered", "key": "return_value", "value": "KDAG!"},
        {"task_id": "greet", "key": "return_value", "value": "hello world 2026-11-21 !"},
        {"task_id": "as_json", "key": "a", "value": 1},
        {"task_id": "as_json", "key": "b", "value": "two"},
        {"task_id": "as_json", "key": "return_value", "value": {"a": 1, "b": "two"}},
        {"task_id": "included", "key": "return_value", "value": "hello from kdag on 2026-11-21"},
        {"task_id": "pair", "key": "left", "value": "L"},
        {"task_id": "pair", "key": "right", "value": "R"},
        {"task_id": "pair", "key": "return_value", "value": {"left": "L", "right": "R"}},
        {"task_id": "env_from_xcom", "key": "return_value", "value": "L/R"},
        {"task_id": "combined", "key": "return_value", "value": "hello world 2026-11-21 !+two"},
        {"task_id": "f_string", "key": "return_value", "value": "{{ ds }} stays as it is"},
        {"task_id": "echo_text", "key": "return_value", "value": "{{ ds }} stays as it is"},
        {"task_id": "from_output", "key": "return_value", "value": "hello world 2026-11-21 !+two"},
    ],
}


# Each task's upstream task ids, sorted.
AIRFLOW_3_3_2_EDGES: dict[str, dict[str, list[str]]] = {
    "task_groups.py": {
        "start": [],
        "outer.head": ["start"],
        "outer.inner.deep": ["outer.head"],
        "outer.inner.deeper": ["outer.inner.deep"],
        "unprefixed": ["outer.inner.deeper"],
        "split": ["unprefixed"],
        "add": ["split"],
        "summarize.double": ["add"],
        "summarize.report": ["summarize.double"],
        "summarize__1.double": ["split"],
        "summarize__1.report": ["summarize__1.double"],
        "checks.first": ["summarize.report", "summarize__1.report"],
        "checks.second": ["checks.first"],
        "end_0": ["checks.second"],
        "end_1": ["checks.second"],
        "end_2": ["end_0", "end_1"],
        "join_0": ["end_0", "end_1", "end_2"],
        "join_1": ["end_0", "end_1", "end_2"],
        "tail.after_deeper": ["join_0", "join_1", "outer.inner.deeper"],
    },
    "setup_teardown.py": {
        "create_cluster": [],
        "work": ["create_cluster"],
        "delete_cluster": ["create_cluster", "work"],
        "flaky_cleanup": ["create_cluster", "work"],
        "strict_cleanup": ["create_cluster", "work"],
        "scratch.make": [],
        "scratch.fails": ["scratch.make"],
        "scratch.clean": ["scratch.fails", "scratch.make"],
        "after_scratch": ["scratch.fails"],
    },
    "taskflow_templating.py": {
        "greet": [],
        "as_json": [],
        "pair": [],
        "jinja_text": [],
        "echo_text": ["jinja_text"],
        "f_string": ["jinja_text"],
        "env_from_xcom": ["pair"],
        "included": [],
        "filtered": [],
        "combined": ["as_json", "greet"],
        "from_output": ["combined"],
    },
}


# The TaskSpec fields Airflow's marks give (setup, teardown, trigger rule, on_failure_fail_dagrun), for the
# tasks that have any.
AIRFLOW_3_3_2_MARKS: dict[str, dict[str, dict[str, Any]]] = {
    "task_groups.py": {},
    "setup_teardown.py": {
        "create_cluster": {"setup": True},
        "delete_cluster": {"teardown": True, "triggerRule": "all_done_setup_success"},
        "flaky_cleanup": {"teardown": True, "triggerRule": "all_done_setup_success"},
        "strict_cleanup": {
            "teardown": True,
            "triggerRule": "all_done_setup_success",
            "failRunOnFailure": True,
        },
        "scratch.make": {"setup": True},
        "scratch.clean": {"teardown": True, "triggerRule": "all_done_setup_success"},
        "after_scratch": {"triggerRule": "all_done"},
    },
    "taskflow_templating.py": {},
}


FILES = sorted(AIRFLOW_3_3_2_TASKS)


def compiled_tasks(file_name: str) -> list[dict[str, Any]]:
    """The tasks of the DAG manifest `kdag compile` prints for the file."""
    done = kdag("compile", str(DAGS / file_name))
    assert done.returncode == 0, done.stderr
    dag = next(doc for doc in yaml.safe_load_all(done.stdout) if doc and doc.get("kind") == "DAG")
    tasks: list[dict[str, Any]] = dag["spec"]["tasks"]
    return tasks


@pytest.mark.parametrize("file_name", FILES)
def test_states_and_rows_match_airflow(file_name: str) -> None:
    result = run_local_json(DAGS / file_name)
    assert result["state"] == AIRFLOW_3_3_2_STATES[file_name]
    assert result["tasks"] == AIRFLOW_3_3_2_TASKS[file_name]
    assert user_rows(result["xcoms"], result["run_id"]) == user_rows(
        AIRFLOW_3_3_2_ROWS[file_name], "<run_id>"
    )


@pytest.mark.parametrize("file_name", FILES)
def test_compiled_dependencies_and_marks_match_airflow(file_name: str) -> None:
    tasks = compiled_tasks(file_name)
    assert {t["id"]: sorted(t.get("upstream", [])) for t in tasks} == AIRFLOW_3_3_2_EDGES[file_name]
    marks = {
        t["id"]: {k: t[k] for k in ("setup", "teardown", "triggerRule", "failRunOnFailure") if k in t}
        for t in tasks
    }
    assert {tid: m for tid, m in marks.items() if m} == AIRFLOW_3_3_2_MARKS[file_name]


def test_group_ids_are_the_task_ids_of_the_run(tmp_path: Path) -> None:
    """Dotted ids name the run's files as any id does: logs and XCom directories `outer.inner.deep`."""
    result = run_local_json(DAGS / "task_groups.py", "--workdir", str(tmp_path))
    assert result["tasks"]["outer.inner.deep"] == "success"
    assert (tmp_path / "logs" / "outer.inner.deep.log").is_file()
    assert (tmp_path / "xcom" / "outer.inner.deep").is_dir()


def test_a_grouped_id_longer_than_a_label_value_is_refused_at_compile(tmp_path: Path) -> None:
    """Airflow allows 250 characters; a TaskSpec id is a Kubernetes label value (63), prefixes included."""
    path = tmp_path / "deep_groups.py"
    path.write_text(
        "from airflow.sdk import DAG, TaskGroup\n"
        "from airflow.providers.standard.operators.empty import EmptyOperator\n"
        "with DAG('deep_groups'):\n"
        "    with TaskGroup('a_rather_long_outer_group_name'):\n"
        "        with TaskGroup('an_even_longer_inner_group_name'):\n"
        "            EmptyOperator(task_id='the_task')\n"
    )
    done = kdag("compile", str(path))
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "error: task 'a_rather_long_outer_group_name.an_even_longer_inner_group_name.the_task': longer than"
        " 63 characters with its task group prefix (a Kubernetes label value)"
    )
    local = kdag("run", "--local", str(path))
    assert local.returncode == 1
    assert "longer than 63 characters with its task group prefix" in local.stderr
