"""Run ``python -m kdag_runner`` as a task pod would, with a directory sink under a temp dir."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdag_runner import context, store
from kdag_runner.airflow.operators import BaseOperator
from kdag_runner.environment import TaskEnvironment
from kdag_runner.xcom import TaskInstance

LOGICAL_DATE = "2024-03-05T06:07:08Z"
RUN_ID = "etl-run-1"


@dataclass
class RunnerResult:
    returncode: int
    stdout: str
    stderr: str
    termination: dict[str, Any] | None
    data: dict[str, str]

    @property
    def xcoms(self) -> dict[str, object]:
        return store.decode(self.data)


def task_env(
    workdir: Path,
    task_id: str,
    *,
    dag_id: str = "test_dag",
    ancestors: Sequence[str] = (),
    params: Mapping[str, Any] | None = None,
    conf: Mapping[str, Any] | None = None,
    attempt: int = 1,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment the controller gives a task, with local directories for the mounts."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KDAG_")}
    env.update(
        {
            "KDAG_DAG_ID": dag_id,
            "KDAG_TASK_ID": task_id,
            "KDAG_RUN_ID": RUN_ID,
            "KDAG_RUN_UID": "0b9f3a52-6f1e-4c1e-9d7b-3d2f1a7c5e11",
            "KDAG_NAMESPACE": "default",
            "KDAG_LOGICAL_DATE": LOGICAL_DATE,
            "KDAG_ATTEMPT": str(attempt),
            "KDAG_PARAMS": json.dumps(dict(params or {})),
            "KDAG_CONF": json.dumps(dict(conf or {})),
            "KDAG_ANCESTORS": json.dumps(list(ancestors)),
            "KDAG_XCOM_IN": str(workdir / "xcom"),
            "KDAG_XCOM_DIR": str(workdir / "out" / task_id),
            "KDAG_XCOM_SINK": f"dir:{workdir / 'xcom' / task_id}",
            "KDAG_TERMINATION_LOG": str(workdir / f"{task_id}.termination"),
        }
    )
    env.update(extra or {})
    return env


def run_runner(
    workdir: Path, task_id: str, command: str = "run", timeout: float = 60, **kwargs: Any
) -> RunnerResult:
    """Run one task through the runner's entry point and read back what it stored."""
    env = task_env(workdir, task_id, **kwargs)
    completed = subprocess.run(
        [sys.executable, "-m", "kdag_runner", command],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return finished(workdir, task_id, completed.returncode, completed.stdout, completed.stderr)


def finished(workdir: Path, task_id: str, returncode: int, stdout: str, stderr: str) -> RunnerResult:
    termination_file = workdir / f"{task_id}.termination"
    termination = None
    if termination_file.exists():
        termination = json.loads(termination_file.read_text(encoding="utf-8"))
    data = store.read_task_dir(workdir / "xcom" / task_id)
    return RunnerResult(returncode, stdout, stderr, termination, data)


def run_dag_file(
    workdir: Path, dag_file: Path, order: Sequence[tuple[str, Sequence[str]]], **kwargs: Any
) -> dict[str, RunnerResult]:
    """Run the given tasks of a DAG file one after another (task id, ancestors), as a local run does."""
    results: dict[str, RunnerResult] = {}
    extra = {"KDAG_DAG_FILE": str(dag_file), **kwargs.pop("extra", {})}
    for task_id, ancestors in order:
        results[task_id] = run_runner(workdir, task_id, ancestors=ancestors, extra=extra, **kwargs)
    return results


def write_store(workdir: Path, task_id: str, xcoms: Mapping[str, object]) -> None:
    """Lay out an ancestor's XComs as its ConfigMap volume shows them (``..data`` symlinks included)."""
    data = store.encode(xcoms, task_id)
    task_dir = workdir / "xcom" / task_id
    real = task_dir / "..2024_03_05_06_07_08.000000001"
    real.mkdir(parents=True)
    for key, value in data.items():
        (real / key).write_text(value, encoding="utf-8")
    (task_dir / "..data").symlink_to(real.name)
    for key in data:
        (task_dir / key).symlink_to(Path("..data") / key)


def write_mapped_store(workdir: Path, task_id: str, instances: list[dict[str, object]]) -> None:
    """Lay out a mapped ancestor's instances as its projected volume shows them: `{i}/{key}` under the
    atomic writer's `..data` symlink (an instance that pushed nothing still has `.types`)."""
    task_dir = workdir / "xcom" / task_id
    real = task_dir / "..2024_03_05_06_07_08.000000001"
    for index, xcoms in enumerate(instances):
        folder = real / str(index)
        folder.mkdir(parents=True)
        for key, value in store.encode(xcoms, task_id).items():
            (folder / key).write_text(value, encoding="utf-8")
    (task_dir / "..data").symlink_to(real.name)
    for index in range(len(instances)):
        (task_dir / str(index)).symlink_to(Path("..data") / str(index))


def instance_context(
    workdir: Path,
    op: BaseOperator,
    map_index: int,
    ancestors: tuple[str, ...] = (),
    mapped: dict[str, int] | None = None,
) -> dict[str, Any]:
    """The context of instance `map_index` of a mapped task (or of a task in a mapped group)."""
    extra = {"KDAG_MAP_INDEX": str(map_index), "KDAG_MAPPED": json.dumps(mapped or {})}
    env = TaskEnvironment.from_env(task_env(workdir, op.task_id, ancestors=ancestors, extra=extra))
    ti = TaskInstance.from_environment(env)
    ti.task = op
    return context.build_context(env, ti, op, op.dag)


def prepared(
    workdir: Path, operator: BaseOperator, *, attempt: int = 1, extra: Mapping[str, str] | None = None
) -> tuple[dict[str, Any], TaskInstance]:
    """The context and task instance of one attempt of `operator`, its `max_tries` from its retries."""
    environment = TaskEnvironment.from_env(task_env(workdir, operator.task_id, attempt=attempt, extra=extra))
    ti = TaskInstance.from_environment(environment)
    ti.task = operator
    ti.max_tries = operator.retries
    return context.build_context(environment, ti, operator, operator.dag), ti


def pushed(ti: TaskInstance) -> dict[str, Any]:
    """What the task instance pushed, by key."""
    return {key: ti.xcom_pull(key=key) for key in ti.pushed_keys()}
