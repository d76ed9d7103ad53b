"""One attempt of a task on this machine, as in its pod: its environment (the pod's, with local directories
for its mounts), the runner (a Python task) or the command and the collector beside it, and its result read
from the termination files as the cluster reads a pod's."""

from __future__ import annotations

import queue
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kdag_runner import xcom_inputs
from kdag_runner.environment import XComInput
from kdag_runner.report import EXIT_XCOM_FAILED

from kdag import mapping, render
from kdag.api.models import TaskSpec
from kdag.attempts import AttemptResult, Termination, attempt_result
from kdag.local.forkserver import ForkedAttempt, ForkServer, host_env

RUNNER = (sys.executable, "-m", "kdag_runner")
# The collector, isolated as in a pod (render.ISOLATED_RUNNER_COMMAND): nothing a command writes is imported.
ISOLATED_RUNNER = (sys.executable, "-I", "-m", "kdag_runner")
COLLECTOR_STOP_TIMEOUT_SECONDS = 30.0


class LocalRunError(Exception):
    """The run could not start (a bad source, a task kdag cannot run here); names the task."""


@dataclass(frozen=True)
class AttemptDone:
    """An attempt that ended, as `run_attempt` reports it."""

    task_id: str
    """The task id, or `task_id[i]` for an instance of a mapped task (`instance_key`)."""
    attempt: int
    result: AttemptResult
    finished_at: datetime


def attempt_env(
    run: render.RunInfo,
    task: TaskSpec,
    attempt: int,
    workdir: Path,
    python_file: Path | None,
    *,
    task_start: datetime | None = None,
    reschedules: int = 0,
    map_index: int | None = None,
    mapped: Mapping[str, int] | None = None,
    answers: Mapping[str, Mapping[str, Any]] | None = None,
    ancestor_ids: Sequence[str] | None = None,
) -> dict[str, str]:
    """The pod's environment, with the local directories in place of the pod's mounts (`python_file`: the
    DAG file, for `fromDagFile` tasks)."""
    # The host's environment (PATH, locale) minus any KDAG_* of its own, which would steer the runner.
    env = host_env()
    task_env = render.task_env(
        run,
        task,
        attempt,
        task_start=task_start,
        reschedules=reschedules,
        map_index=map_index,
        mapped=mapped,
        answers=answers,
        ancestor_ids=ancestor_ids,
    )
    key = task.id if map_index is None else mapping.instance_key(task.id, map_index)
    for var in task_env:
        if var["name"] != "HOME":  # the pod's HOME is its /tmp; locally the user's own stays
            env[var["name"]] = var["value"]
    out_dir = workdir / "out" / key
    shutil.rmtree(out_dir, ignore_errors=True)  # each attempt's pod gets a fresh emptyDir
    out_dir.mkdir(parents=True)
    sink = workdir / "xcom" / task.id
    env["KDAG_XCOM_IN"] = str(workdir / "xcom")
    env["KDAG_XCOM_DIR"] = str(out_dir)
    env["KDAG_XCOM_SINK"] = f"dir:{sink if map_index is None else sink / str(map_index)}"
    env["KDAG_TERMINATION_LOG"] = str(workdir / "logs" / f"{key}.termination")
    if "KDAG_DAG_FILE" in env:
        assert python_file is not None  # checked before the run starts
        env["KDAG_DAG_FILE"] = str(python_file)
    for extra in task.env or []:
        if extra.value_from is not None:
            raise LocalRunError(
                f"task {task.id!r}: env {extra.name!r} uses valueFrom, which only a cluster can resolve"
            )
        env[extra.name] = extra.value or ""
    if task.python is None:
        # A command gets its xcomInputs in its environment, as from the kubelet (a missing XCom leaves the
        # variable unset: optional: true); a Python task's runner sets them itself (KDAG_XCOM_INPUTS).
        env.update(xcom_inputs.read(_xcom_inputs(task), workdir / "xcom"))
    return env


def _xcom_inputs(task: TaskSpec) -> list[XComInput]:
    return [XComInput(inp.env, inp.task, inp.key) for inp in task.xcom_inputs or []]


def run_attempt(
    task: TaskSpec,
    attempt: int,
    env: dict[str, str],
    workdir: Path,
    done: queue.Queue[AttemptDone],
    key: str | None = None,
    forkserver: ForkServer | None = None,
) -> None:
    """Run one attempt to the end in this (worker) thread and report it on `done` (under `key`: the task
    id, or a mapped instance's `instance_key`). A Python task's runner is forked from `forkserver` when it
    takes the attempt (`kdag.local.forkserver`), else started as `python -m kdag_runner run`."""
    key = key or task.id
    log_path = workdir / "logs" / f"{key}.log"
    # As a command task's xcom-inputs container does: fail, never retried, before the command cannot start.
    problem = "" if task.python is not None else xcom_inputs.problem(task.id, _xcom_inputs(task), env)
    if problem:
        with log_path.open("a", encoding="utf-8") as log:
            log.write(f"--- attempt {attempt}\nkdag: {problem}\n")
        refused = AttemptResult(finished=True, exit_code=EXIT_XCOM_FAILED, message=problem, retry=False)
        done.put(AttemptDone(key, attempt, refused, datetime.now(UTC)))
        return
    termination = Path(env["KDAG_TERMINATION_LOG"])
    for path in (termination, _task_termination(termination)):
        path.unlink(missing_ok=True)
    try:
        with log_path.open("a", encoding="utf-8") as log:
            log.write(f"--- attempt {attempt}\n")
            log.flush()
            if task.python is not None:
                forked = forkserver.start(env, log_path) if forkserver is not None else None
                runner = forked or subprocess.Popen([*RUNNER, "run"], env=env, stdout=log, stderr=log)
                task_exit = _wait(runner, task)
                collector_exit = None
            else:
                task_exit, collector_exit = _run_command_with_collector(task, env, log)
        result = _attempt_result(task_exit, collector_exit, termination, log_path)
    except _TimedOut:
        message = f"timed out after {task.timeout_seconds} s"
        result = AttemptResult(finished=True, exit_code=-int(signal.SIGKILL), message=message)
    except OSError as err:
        message = f"could not start task {task.id!r}: {err}"
        result = AttemptResult(finished=True, exit_code=127, message=message)
    done.put(AttemptDone(key, attempt, result, datetime.now(UTC)))


class _TimedOut(Exception):
    """The attempt ran past the task's timeoutSeconds and was killed."""


def _wait(proc: subprocess.Popen[bytes] | ForkedAttempt, task: TaskSpec) -> int:
    """Wait for the attempt's process; past the task's timeout kill it, as activeDeadlineSeconds does."""
    try:
        return proc.wait(timeout=task.timeout_seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise _TimedOut from None


def _run_command_with_collector(task: TaskSpec, env: dict[str, str], log: Any) -> tuple[int, int]:
    """A non-Python task as in its pod: the collector runs beside the command and pushes once it exits.

    Returns the exit codes of the command and of the collector.

    In a pod the kubelet sends the sidecar SIGTERM; here the collector is told through `.done` in the
    XCom directory, which cannot arrive before it is listening, however fast the command is.
    """
    collector = subprocess.Popen([*ISOLATED_RUNNER, "collect"], env=env, stdout=log, stderr=log)
    command = [*(task.command or []), *(task.args or [])]
    task_env = {**env, "KDAG_TERMINATION_LOG": str(_task_termination(Path(env["KDAG_TERMINATION_LOG"])))}
    try:
        task_exit = _wait(subprocess.Popen(command, env=task_env, stdout=log, stderr=log), task)
    except OSError as err:  # as a container whose command is missing: exit code 127
        log.write(f"could not start {command[0]!r}: {err}\n")
        task_exit = 127
    finally:
        (Path(env["KDAG_XCOM_DIR"]) / ".done").touch()
    try:
        collector_exit = collector.wait(timeout=COLLECTOR_STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        collector.kill()
        collector_exit = collector.wait()
    return task_exit, collector_exit


def _task_termination(termination: Path) -> Path:
    """Where a command task's own container writes its termination message (beside the collector's)."""
    return termination.with_name(termination.name + ".task")


def _attempt_result(
    task_exit: int, collector_exit: int | None, termination: Path, log_path: Path
) -> AttemptResult:
    """The attempt's result from its termination files, read as the cluster reads a pod's.

    `collector_exit` is None for a Python task (the runner pushed and reported itself); for a command task
    `termination` is the collector's report and the command's own is beside it. A failure without a
    report takes the log's last line, where a pod's FallbackToLogsOnError would take its log tail.
    """
    failed = task_exit != 0 or collector_exit not in (None, 0)
    fallback = _last_log_line(log_path) if failed else ""
    if collector_exit is None:
        return attempt_result(Termination(task_exit, _read(termination)), fallback=fallback)
    return attempt_result(
        Termination(task_exit, _read(_task_termination(termination))),
        Termination(collector_exit, _read(termination)),
        fallback=fallback,
    )


def _read(path: Path) -> str:
    """A termination file's text; empty when the container left none."""
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def _last_log_line(log_path: Path) -> str:
    """The last non-blank line of the task's log."""
    lines = [
        line for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()
    ]
    return lines[-1] if lines else ""
