"""Check `kdag.graph.decide` against Apache Airflow: the same DAGs must end in the same task and run states.

Every one of Airflow 3's 13 trigger rules is put after every pair of upstream outcomes (succeeded, failed,
skipped by a trigger rule, upstream-failed), with a task after it, as independent branches of one DAG. Small
DAGs compare the run's final state too: teardowns (their failures, `on_failure_fail_dagrun`, failed and
skipped setups, the setup constraint of work tasks) and the skip protocol (a branch, a short-circuit with and
without `ignore_downstream_trigger_rules`). Airflow runs them with `airflow dags test` in a virtual
environment of its own (`airflow_reference.airflow_venv()`, or `--airflow-venv`), never a kdag dependency:

    .venv/bin/python bench/trigger_rules_vs_airflow.py [--airflow-venv DIR]

kdag's side replays `decide` with each started task ending as the DAG says; a branch or short-circuit task
that succeeds reports the `skipTasks` the runner would compute (docs/design.md, "Delivery into a task pod").
Prints every difference and exits 1 when there is one.
"""

from __future__ import annotations

import argparse
import itertools
import sqlite3
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from airflow_reference import airflow_dags_test, airflow_venv, airflow_version, latest_run, migrate
from kdag import graph
from kdag.api.models import RunPhase, TaskPhase, TaskSpec, TriggerRule
from kdag.task_state import TaskState

LOGICAL_DATE = "2026-01-01"
AIRFLOW_STATES = {
    "success": TaskPhase.SUCCEEDED,
    "failed": TaskPhase.FAILED,
    "upstream_failed": TaskPhase.UPSTREAM_FAILED,
    "skipped": TaskPhase.SKIPPED,
}


@dataclass(frozen=True)
class Task:
    """A task of a scenario: its trigger rule, upstream ids, what it is and whether running it fails.

    `branch` names the one task a BranchPythonOperator follows; `short_circuit` is "all" or "direct" for a
    ShortCircuitOperator whose condition is false (ignore_downstream_trigger_rules True or False).
    """

    id: str
    upstream: tuple[str, ...] = ()
    rule: TriggerRule = TriggerRule.ALL_SUCCESS
    fails: bool = False
    setup: bool = False
    teardown: bool = False
    fail_run: bool = False
    branch: str | None = None
    short_circuit: str | None = None


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


TEARDOWN = TriggerRule.ALL_DONE_SETUP_SUCCESS


def cluster(*, query_fails: bool = False, create_fails: bool = False, **delete: Any) -> list[Task]:
    """create (setup) >> query >> delete (teardown of create)."""
    return [
        Task("create", setup=True, fails=create_fails),
        Task("query", ("create",), fails=query_fails),
        Task("delete", ("create", "query"), TEARDOWN, teardown=True, **delete),
    ]


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
    "always_after_failure": [Task("a", fails=True), Task("b", ("a",), TriggerRule.ALWAYS, fails=True)],
    # Setup and teardown tasks.
    "teardown_ok": cluster(),
    "teardown_after_failed_work": cluster(query_fails=True),
    "teardown_fails": cluster(fails=True),
    "teardown_fails_the_run": cluster(fails=True, fail_run=True),
    "teardown_fails_the_run_after_work_failed": cluster(query_fails=True, fail_run=True),
    "setup_fails": cluster(create_fails=True),
    "setup_skipped": [
        Task("start"),
        Task("create", ("start",), TriggerRule.ONE_FAILED, setup=True),
        Task("query", ("create",)),
        Task("delete", ("create", "query"), TEARDOWN, teardown=True),
    ],
    "setup_scope_beats_all_done": [
        Task("create", setup=True, fails=True),
        Task("w1", ("create",)),
        Task("w2", ("w1",), TriggerRule.ALL_DONE),
        Task("delete", ("create", "w2"), TEARDOWN, teardown=True),
        Task("outside", ("w1",), TriggerRule.ALL_DONE),
    ],
    "work_after_teardown": [*cluster(fails=True), Task("report", ("delete",), TriggerRule.ALL_DONE)],
    # The skip protocol.
    "branch": [
        Task("pick", branch="left"),
        Task("left", ("pick",)),
        Task("right", ("pick",)),
        Task("right_after", ("right",), TriggerRule.ALL_DONE),
        Task("join", ("left", "right"), TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS),
        Task("strict", ("left", "right")),
    ],
    "branch_to_join": [  # join is directly after pick too, but downstream of the followed task: not skipped
        Task("pick", branch="a"),
        Task("a", ("pick",)),
        Task("b", ("pick",)),
        Task("b_after", ("b",)),
        Task("join", ("pick", "a", "b"), TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS),
    ],
    "short_circuit_all": [
        Task("gate", short_circuit="all"),
        Task("x", ("gate",)),
        Task("y", ("x",), TriggerRule.ALL_DONE),
        Task("z", ("gate", "y"), TriggerRule.NONE_FAILED),
    ],
    "short_circuit_direct": [
        Task("gate", short_circuit="direct"),
        Task("x", ("gate",)),
        Task("y", ("x",), TriggerRule.ALL_DONE),
        Task("z", ("y",)),
    ],
}


def dag_file(dag_id: str, tasks: list[Task]) -> str:
    lines = [
        "from datetime import datetime",
        "from airflow.sdk import DAG",
        "from airflow.providers.standard.operators.python import (",
        "    BranchPythonOperator, PythonOperator, ShortCircuitOperator,",
        ")",
        "def ok():\n    return None",
        "def bad():\n    raise RuntimeError('fails on purpose')",
        f"with DAG({dag_id!r}, schedule=None, start_date=datetime(2025, 1, 1), catchup=False) as dag:",
    ]
    for task in tasks:
        common = f"task_id={task.id!r}, trigger_rule={task.rule.value!r}, retries=0"
        if task.branch is not None:
            follow = f"python_callable=lambda: {task.branch!r}"
            lines.append(f"    t_{task.id} = BranchPythonOperator({common}, {follow})")
        elif task.short_circuit is not None:
            ignore = task.short_circuit == "all"
            lines.append(
                f"    t_{task.id} = ShortCircuitOperator({common}, python_callable=lambda: False,"
                f" ignore_downstream_trigger_rules={ignore})"
            )
        else:
            call = "bad" if task.fails else "ok"
            lines.append(f"    t_{task.id} = PythonOperator({common}, python_callable={call})")
    for task in tasks:
        if task.setup:
            lines.append(f"    t_{task.id}.as_setup()")
        if task.teardown:
            lines.append(f"    t_{task.id}.as_teardown(on_failure_fail_dagrun={task.fail_run})")
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


def skip_tasks(task: Task, tasks: list[Task]) -> frozenset[str]:
    """The `skipTasks` a successful branch or short-circuit attempt reports (the runner's computation)."""
    downstream: dict[str, list[str]] = {t.id: [] for t in tasks}
    for t in tasks:
        for up in t.upstream:
            downstream[up].append(t.id)

    def below(tid: str) -> set[str]:
        found: set[str] = set()
        stack = list(downstream[tid])
        while stack:
            child = stack.pop()
            if child not in found:
                found.add(child)
                stack.extend(downstream[child])
        return found

    teardowns = {t.id for t in tasks if t.teardown}
    if task.branch is not None:  # direct downstream tasks not followed (nor downstream of the followed one)
        followed = {task.branch} | below(task.branch)
        return frozenset(d for d in downstream[task.id] if d not in followed)
    if task.short_circuit == "all":
        return frozenset(below(task.id) - teardowns)
    if task.short_circuit == "direct":
        return frozenset(set(downstream[task.id]) - teardowns)
    return frozenset()


def run_kdag(tasks: list[Task]) -> tuple[str, dict[str, TaskPhase]]:
    """Replay `decide` until nothing changes; a started task ends failed if it `fails`, else succeeded."""
    specs = [
        TaskSpec.model_validate(
            {
                "id": t.id,
                "command": ["true"],
                "upstream": list(t.upstream),
                "triggerRule": t.rule.value,
                **({"setup": True} if t.setup else {}),
                **({"teardown": True, "failRunOnFailure": t.fail_run} if t.teardown else {}),
            }
        )
        for t in tasks
    ]
    by_id = {t.id: t for t in tasks}
    states: dict[str, TaskState] = {}
    now = datetime.now(UTC)
    while True:
        decision = graph.decide(specs, states, now)
        for tid in decision.upstream_failed:
            states[tid] = TaskState(TaskPhase.UPSTREAM_FAILED)
        for tid in decision.skipped:
            states[tid] = TaskState(TaskPhase.SKIPPED)
        for tid in decision.start:
            if by_id[tid].fails:
                states[tid] = TaskState(TaskPhase.FAILED, attempts=1)
            else:
                skip = skip_tasks(by_id[tid], tasks)
                states[tid] = TaskState(TaskPhase.SUCCEEDED, attempts=1, skip_tasks=skip)
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
    parser.add_argument("--airflow-venv", type=Path, help="default: airflow_reference.airflow_venv()")
    parser.add_argument("--only", help="run only the scenarios whose name contains this text")
    args = parser.parse_args()
    venv: Path = args.airflow_venv or airflow_venv()
    version = airflow_version(venv)
    scenarios = {"trigger_rules": branch_scenarios(), **RUN_SCENARIOS}
    if args.only:
        scenarios = {name: tasks for name, tasks in scenarios.items() if args.only in name}
    differences: list[str] = []
    compared = runs = 0
    with tempfile.TemporaryDirectory(prefix="kdag-rules-") as scratch:
        home = Path(scratch) / "airflow-home"
        dags = Path(scratch) / "dags"
        home.mkdir()
        dags.mkdir()
        migrate(venv, home)
        for name, tasks in scenarios.items():
            file = dags / f"{name}.py"
            file.write_text(dag_file(name, tasks))
            airflow = run_airflow(venv, home, name, file)
            kdag = run_kdag(tasks)
            compared += len(tasks)
            runs += name != "trigger_rules"
            differences += compare(name, airflow, kdag, check_run=name != "trigger_rules")
    print(f"Apache Airflow {version}: {compared} task states and {runs} run states compared")
    for line in differences:
        print(line)
    print("same" if not differences else f"{len(differences)} differences")
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
