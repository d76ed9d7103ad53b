"""Run the `kdag` command as users do, and the rows Apache Airflow gave for the example DAGs."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "python"
KDAG = str(Path(sys.executable).parent / "kdag")
LOGICAL_DATE = "2026-11-21"


@dataclass
class Completed:
    """What one `kdag` invocation printed and returned."""

    returncode: int
    stdout: str
    stderr: str

    def json(self) -> dict[str, Any]:
        """stdout as the one JSON object `-o json` prints (fails when there is anything else)."""
        value: dict[str, Any] = json.loads(self.stdout)
        return value


def kdag(*args: str, cwd: Path | None = None, timeout: float = 120) -> Completed:
    """Run the installed `kdag` console script."""
    done = subprocess.run(
        [KDAG, *args], capture_output=True, text=True, cwd=cwd, timeout=timeout, check=False
    )
    return Completed(done.returncode, done.stdout, done.stderr)


def run_local_json(path: Path, *extra: str) -> dict[str, Any]:
    """`kdag run --local PATH -o json --logical-date 2026-11-21`; returns the object whatever the state."""
    done = kdag("run", "--local", str(path), "-o", "json", "--logical-date", LOGICAL_DATE, *extra)
    assert done.stdout.count("\n") == 1, f"expected one line of JSON, got:\n{done.stdout}\n{done.stderr}"
    return done.json()


def run_dag(path: Path, dag_id: str, workdir: Path, *extra: str) -> tuple[dict[str, Any], str]:
    """`kdag run --local PATH --dag-id DAG_ID -o json --logical-date 2026-11-21 --workdir WORKDIR`: the
    result and what it printed on stderr."""
    done = kdag(
        "run",
        "--local",
        str(path),
        "--dag-id",
        dag_id,
        "-o",
        "json",
        "--logical-date",
        LOGICAL_DATE,
        "--workdir",
        str(workdir),
        *extra,
    )
    return done.json(), done.stderr


def termination(workdir: Path, task_id: str) -> dict[str, Any]:
    """The report a task of a local run left in its termination file."""
    value: dict[str, Any] = json.loads((workdir / "logs" / f"{task_id}.termination").read_text("utf-8"))
    return value


def user_rows(rows: list[dict[str, Any]], run_id: str) -> list[str]:
    """Rows under user keys (not kdag's `__` keys), run id replaced by `<run_id>`, sorted: comparable."""
    return sorted(
        json.dumps(row, sort_keys=True).replace(run_id, "<run_id>")
        for row in rows
        if not row["key"].startswith("__")
    )


# Reference rows: `airflow dags test DAG 2026-11-21 -f FILE` with Apache Airflow 3.3.2 (pip-installed in a
# throwaway venv, bench/local_vs_airflow.py), read from its SQLite xcom table. For the lessons, the copy
# Airflow ran had `provide_context=True` and the `python_operator` module path taken out (Airflow 3 refuses
# both). Airflow's run id (`manual__...`) appears as `<run_id>`.
AIRFLOW_3_3_2_ROWS: dict[str, list[dict[str, Any]]] = {
    "xcom_lesson.py": [
        {"task_id": "sql_task", "key": "return_value", "value": "hello world"},
        {"task_id": "hello_task", "key": "execution_time", "value": "2026-11-21"},
        {"task_id": "hello_task", "key": "return_value", "value": "hello world"},
        {"task_id": "goodbye_task", "key": "return_value", "value": ["2026-11-21"]},
    ],
    # Airflow 3.3.2 failed set_context_task and use_value_task (AttributeError: no `context` / `params` on
    # the task instance) and marked get_context_task upstream_failed; kdag runs all three.
    "xcom_three_ways.py": [
        {"task_id": "push_task", "key": "key", "value": "some value"},
    ],
    "xcom_semantics.py": [
        {"task_id": "produce_text", "key": "return_value", "value": "plain text"},
        {"task_id": "produce_number", "key": "return_value", "value": 42},
        {"task_id": "produce_mapping", "key": "count", "value": 3},
        {"task_id": "produce_mapping", "key": "label", "value": "second"},
        {"task_id": "produce_mapping", "key": "nested", "value": [1, [2, 3], {"four": 4.5}, None, True]},
        {
            "task_id": "produce_mapping",
            "key": "return_value",
            "value": {"rows": [1, 2, 3], "ok": True, "ratio": 0.5},
        },
        {"task_id": "consume", "key": "own", "value": "mine"},
        {
            "task_id": "consume",
            "key": "return_value",
            "value": {
                "one": {"rows": [1, 2, 3], "ok": True, "ratio": 0.5},
                "by_key": "second",
                "many": ["plain text", 42],
                "missing_key": None,
                "from_none": None,
                "own": "mine",
                "who": "task",
                "greeting": "hello",
            },
        },
    ],
    "bash_templates.py": [
        {"task_id": "dated", "key": "return_value", "value": "world on 20261121"},
        {"task_id": "make_name", "key": "return_value", "value": "kdag"},
        {"task_id": "greet", "key": "return_value", "value": "Hello, kdag!"},
        {"task_id": "which_run", "key": "return_value", "value": "run <run_id>"},
        {"task_id": "last_line", "key": "return_value", "value": "Hello, kdag! (last)"},
    ],
}
AIRFLOW_3_3_2_TASKS: dict[str, dict[str, str]] = {
    "xcom_lesson.py": {"sql_task": "success", "hello_task": "success", "goodbye_task": "success"},
    "xcom_three_ways.py": {
        "push_task": "success",
        "pull_task": "success",
        "set_context_task": "failed",
        "get_context_task": "upstream_failed",
        "use_value_task": "failed",
    },
    "xcom_semantics.py": dict.fromkeys(
        ["produce_mapping", "produce_text", "produce_number", "produce_nothing", "consume"], "success"
    ),
    "bash_templates.py": dict.fromkeys(["make_name", "greet", "dated", "last_line", "which_run"], "success"),
}
