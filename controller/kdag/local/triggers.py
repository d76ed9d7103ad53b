"""TriggerDagRunOperator under `kdag run --local`: the request and answers of a cluster (`kdag.triggers`),
with the DAGs on this machine; and what an ExternalTaskSensor learns of them (`kdag.external_runs`).

The DAG to trigger is looked up by dag id in the DAG file of the run, then in the other DAG files of its
folder, then in the folders given with `--dag-folder` (only files whose text names the dag id are
loaded). With `wait_for_completion` the triggered run runs here, to its end, before the task's next
attempt reads its state; without, it is only recorded (and printed): the task succeeds as on a cluster
once the run exists, and nothing runs it. The runs this session made are the only other runs there are:
a sensor's question is answered from them (a run only recorded is queued, its tasks not started).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kdag import external_runs, names, params, triggers
from kdag.api.models import ExternalRunsQuery
from kdag.external_runs import NOT_STARTED, RunFacts
from kdag.local.run import LocalDag, LocalRunResult, local_run_id, run_local

DAG_FILE_SUFFIXES = (".py", ".yaml", ".yml")


@dataclass
class _Made:
    task: str
    try_number: int
    state: str


@dataclass
class LocalTriggers:
    """Answers the TriggerDagRunOperator requests of one local run (and of the runs it triggers)."""

    dag_file: Path | None
    """The DAG file of the run: its folder is searched after it."""
    workdir: Path
    """Triggered runs that run here keep their files under `{workdir}/triggered/{run}/`."""
    folders: Sequence[Path] = ()
    """More folders to search (`--dag-folder`)."""
    log: Callable[[str], None] = field(default=lambda line: print(line, file=sys.stderr, flush=True))
    _made: dict[str, _Made] = field(default_factory=dict)
    _found: dict[str, LocalDag] = field(default_factory=dict)
    _runs: dict[str, list[RunFacts]] = field(default_factory=dict)
    """The runs made here, by dag id: what sensors see of them."""

    def answer(self, request: triggers.TriggerRequest, task: str, try_number: int) -> dict[str, Any]:
        """`KDAG_TRIGGERED_RUN` for the next attempt of `task` (a task id, or `task[i]`), whose try
        `try_number` asked."""
        dag, problem = self.find(request.dag_id)
        if dag is None:
            return {"error": problem}
        wrong = params.run_param_problems(dag.spec, None, request.conf)
        if wrong:
            return {"error": f"DAG '{request.dag_id}': {params.describe(wrong)}"}
        run = names.run_name_of(request.run_id) if request.run_id else local_run_id(dag.name)
        made = self._made.get(run)
        if made is not None and not request.reset:
            if made.task != task:
                return {"runId": run, "exists": True}
            return {"runId": run, "state": made.state}  # a retry finds the run its earlier try made
        state = "queued"
        if request.wait:
            self.log(f"kdag: task '{task}' triggered DAG '{request.dag_id}': running {run} here")
            result = run_local(
                dag,
                self.workdir / "triggered" / run,
                conf=request.conf,
                logical_date=request.logical_date,
                run_id=run,
                triggers=self,
            )
            state = triggers.AIRFLOW_RUN_STATE[result.phase]
            self.log(f"kdag: triggered run {run} of DAG '{request.dag_id}' finished: {state}")
            facts = _facts(dag, run, result.logical_date or datetime.now(UTC), state, result)
        else:
            self.log(
                f"kdag: task '{task}' triggered DAG '{request.dag_id}': run {run} recorded, not run"
                " (kdag run --local runs a triggered DAG only with wait_for_completion)"
            )
            facts = _facts(dag, run, request.logical_date or datetime.now(UTC), state)
        self._made[run] = _Made(task, try_number, state)
        runs = self._runs.setdefault(request.dag_id, [])
        runs[:] = [*(r for r in runs if r.run_id != run), facts]
        return {"runId": run, "state": state}

    def external_runs(self, query: ExternalRunsQuery) -> dict[str, Any]:
        """`KDAG_EXTERNAL_RUNS`: the DAG as the DAG files define it, the runs made here of it."""
        dag, _ = self.find(query.dag_id)
        tasks = [task.id for task in dag.spec.tasks] if dag is not None else None
        return external_runs.answer(query, tasks, self._runs.get(query.dag_id, []))

    def find(self, dag_id: str) -> tuple[LocalDag | None, str]:
        """The DAG with this dag id among the DAG files searched, or why there is none."""
        if dag_id in self._found:
            return self._found[dag_id], ""
        from kdag import compile as compiler

        failures: list[str] = []
        for path in self._candidates(dag_id):
            try:
                loaded = compiler.load(path, dag_id=dag_id)
            except compiler.DefinitionError as err:
                if f"defines no DAG '{dag_id}'" not in str(err):  # it only names the id
                    failures.append(f"{path.name}: {err}")
                continue
            if loaded.dag_id != dag_id:
                continue
            dag = LocalDag(loaded.name, loaded.spec, loaded.python_file)
            self._found[dag_id] = dag
            return dag, ""
        searched = ", ".join(f"'{folder}'" for folder in self._folders()) or "no folder"
        problem = f"DAG '{dag_id}' not found: no DAG file in {searched} defines it"
        if failures:
            problem += f" (files naming it that did not load: {'; '.join(failures[:3])})"
        return None, problem

    def _folders(self) -> list[Path]:
        found = [self.dag_file.resolve().parent] if self.dag_file is not None else []
        return list(dict.fromkeys([*found, *(Path(f).resolve() for f in self.folders)]))

    def _candidates(self, dag_id: str) -> list[Path]:
        files = [self.dag_file.resolve()] if self.dag_file is not None else []
        for folder in self._folders():
            files += sorted(p.resolve() for p in folder.iterdir() if p.suffix in DAG_FILE_SUFFIXES)
        return [path for path in dict.fromkeys(files) if _names(path, dag_id)]


def _names(path: Path, dag_id: str) -> bool:
    """Whether the file's text holds the dag id (a file that defines a DAG spells its id, as a rule)."""
    try:
        return dag_id in path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


def _facts(
    dag: LocalDag, run: str, logical_date: datetime, state: str, result: LocalRunResult | None = None
) -> RunFacts:
    """What a sensor sees of a run made here: its tasks' instances by state (none yet: not started)."""
    tasks: dict[str, dict[str, int]] = {task.id: {} for task in dag.spec.tasks}
    for report in (result.tasks if result is not None else {}).values():
        counts = tasks.setdefault(report.task_id, {})
        counts[report.state] = counts.get(report.state, 0) + 1
    for counts in tasks.values():
        if not counts:
            counts[NOT_STARTED] = 1
    return RunFacts(run, logical_date, state, tasks, created=datetime.now(UTC).isoformat())
