"""Check `kdag.graph.decide` against Apache Airflow: the same DAGs must end in the same task and run states.

Every trigger rule is put after every pair of upstream outcomes (succeeded, failed, skipped by a trigger rule,
upstream-failed), with a task after it, as independent branches of one DAG; a few small DAGs compare the
run's final state. Airflow runs them with `airflow dags test` in a throwaway virtual environment (never a
kdag dependency):

    python3 -m venv /tmp/airflow-venv && /tmp/airflow-venv/bin/pip install "apache-airflow==3.*"
    .venv/bin/python bench/trigger_rules_vs_airflow.py --airflow-venv /tmp/airflow-venv

kdag's side replays `decide` with each started task ending as the DAG says. Prints every difference and
exits 1 when there is one.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sqlite3
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from airflow_reference import airflow_dags_test, latest_run
from kdag import graph
from kdag.api.models import RunPhase, TaskPhase, TaskSpec, TriggerRule

LOGICAL_DATE = "2026-01-01"
AIRFLOW_STATES = {
    "success": TaskPhase.SUCCEEDED,
    "failed": TaskPhase.FAILED,
    "upstream_failed": TaskPhase.UPSTREAM_FAILED,
    "skipped": TaskPhase.SKIPPED,
}


@dataclass(frozen=True)
class Task:
    """A task of a scenario: its trigger rule, upstream ids, and whether running it fails."""

    id: str
    upstream: tuple[str, ...] = ()
    rule: TriggerRule = TriggerRule.ALL_SUCCESS
    fails: bool = False


def upstream_kind(kind: str, prefix: str) -> list[Task]:
    """Tasks whose last one (`{prefix}`) ends as `kind` in both systems."""
    if kind == "ok":
        return [Task(prefix)]
    if kind == "bad":
        return [Task(prefix, fails=True)]
    if kind == "skip":  # one_failed after a success: skipped by its rule
        return [Task(f"{prefix}_src"), Task(prefix, (f"{prefix}_src",), TriggerRule.ONE_FAILED)]
    if kind == "uf":  # all_success after a failure
        return [Task(f"{prefix}_src", fails=True), Task(prefix, (f"{prefix}_src",))]
    raise ValueError(kind)


def branch_scenarios() -> list[Task]:
    """Every rule after every pair of upstream outcomes, then one all_success task; as one task list."""
    tasks: list[Task] = []
    kinds = ["ok", "bad", "skip", "uf"]
    for rule in TriggerRule:
        for a, b in itertools.combinations_with_replacement(kinds, 2):
            name = f"{rule.value}__{a}_{b}"
            tasks += upstream_kind(a, f"{name}__u1") + upstream_kind(b, f"{name}__u2")
            tasks.append(Task(f"{name}__t", (f"{name}__u1", f"{name}__u2"), rule))
            tasks.append(Task(f"{name}__after", (f"{name}__t",)))
    return tasks


RUN_SCENARIOS: dict[str, list[Task]] = {
    "all_ok": [Task("a"), Task("b", ("a",))],
    "failure_propagates": [Task("a", fails=True), Task("b", ("a",)), Task("c")],
    "cleanup_leaf_succeeds": [Task("a", fails=True), Task("cleanup", ("a",), TriggerRule.ALL_DONE)],
    "cleanup_leaf_fails": [Task("a", fails=True), Task("cleanup", ("a",), TriggerRule.ALL_DONE, fails=True)],
    "failed_middle_one_failed_leaf": [
        Task("a", fails=True),
        Task("b", ("a",)),
        Task("alert", ("a",), TriggerRule.ONE_FAILED),
    ],
    "skips_only": [Task("a"), Task("b", ("a",), TriggerRule.ONE_FAILED), Task("c", ("b",))],
}


def dag_file(dag_id: str, tasks: list[Task]) -> str:
    lines = [
        "from datetime import datetime",
        "from airflow.sdk import DAG",
        "from airflow.providers.standard.operators.python import PythonOperator",
        "def ok():\n    return None",
        "def bad():\n    raise RuntimeError('fails on purpose')",
        f"with DAG({dag_id!r}, schedule=None, start_date=datetime(2025, 1, 1), catchup=False) as dag:",
    ]
    for task in tasks:
        call = "bad" if task.fails else "ok"
        lines.append(
            f"    t_{task.id} = PythonOperator(task_id={task.id!r}, python_callable={call},"
            f" trigger_rule={task.rule.value!r}, retries=0)"
        )
    for task in tasks:
        for up in task.upstream:
            lines.append(f"    t_{up} >> t_{task.id}")
    return "\n".join(lines) + "\n"


def run_airflow(venv: Path, home: Path, dag_id: str, file: Path) -> tuple[str, dict[str, TaskPhase]]:
    airflow_dags_test(venv, home, dag_id, LOGICAL_DATE, file)
    with sqlite3.connect(home / "airflow.db") as db:
        run_id, state = latest_run(db, dag_id)
        rows = db.execute("select task_id, state from task_instance where run_id = ?", (run_id,)).fetchall()
    return state, {task_id: AIRFLOW_STATES[str(s)] for task_id, s in rows}


def run_kdag(tasks: list[Task]) -> tuple[str, dict[str, TaskPhase]]:
    """Replay `decide` until nothing changes; a started task ends failed if it `fails`, else succeeded."""
    specs = [
        TaskSpec.model_validate(
            {"id": t.id, "command": ["true"], "upstream": list(t.upstream), "triggerRule": t.rule.value}
        )
        for t in tasks
    ]
    fails = {t.id: t.fails for t in tasks}
    states: dict[str, graph.TaskState] = {}
    now = datetime.now(UTC)
    while True:
        decision = graph.decide(specs, states, now)
        for tid in decision.upstream_failed:
            states[tid] = graph.TaskState(TaskPhase.UPSTREAM_FAILED)
        for tid in decision.skipped:
            states[tid] = graph.TaskState(TaskPhase.SKIPPED)
        for tid in decision.start:
            states[tid] = graph.TaskState(TaskPhase.FAILED if fails[tid] else TaskPhase.SUCCEEDED, attempts=1)
        if not (decision.start or decision.upstream_failed or decision.skipped):
            phase = {RunPhase.SUCCEEDED: "success", RunPhase.FAILED: "failed"}.get(decision.phase, "running")
            return phase, dict(decision.phases)


def compare(
    name: str,
    airflow: tuple[str, dict[str, TaskPhase]],
    kdag: tuple[str, dict[str, TaskPhase]],
    check_run: bool,
) -> list[str]:
    differences = [
        f"{name}: task {tid}: airflow {airflow[1].get(tid)}, kdag {kdag[1].get(tid)}"
        for tid in sorted(set(airflow[1]) | set(kdag[1]))
        if airflow[1].get(tid) != kdag[1].get(tid)
    ]
    if check_run and airflow[0] != kdag[0]:
        differences.append(f"{name}: run: airflow {airflow[0]}, kdag {kdag[0]}")
    return differences


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--airflow-venv", type=Path, default=Path("/tmp/airflow-venv"))
    args = parser.parse_args()
    venv: Path = args.airflow_venv
    version = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import airflow; print(airflow.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    scenarios = {"trigger_rules": branch_scenarios(), **RUN_SCENARIOS}
    differences: list[str] = []
    compared = 0
    with tempfile.TemporaryDirectory(prefix="kdag-rules-") as scratch:
        home = Path(scratch) / "airflow-home"
        dags = Path(scratch) / "dags"
        home.mkdir()
        dags.mkdir()
        env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
        subprocess.run(
            [str(venv / "bin" / "airflow"), "db", "migrate"], env=env, capture_output=True, check=True
        )
        for name, tasks in scenarios.items():
            file = dags / f"{name}.py"
            file.write_text(dag_file(name, tasks))
            airflow = run_airflow(venv, home, name, file)
            kdag = run_kdag(tasks)
            compared += len(tasks)
            differences += compare(name, airflow, kdag, check_run=name != "trigger_rules")
    print(f"Apache Airflow {version}: {compared} task states and {len(RUN_SCENARIOS)} run states compared")
    for line in differences:
        print(line)
    print("same" if not differences else f"{len(differences)} differences")
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
