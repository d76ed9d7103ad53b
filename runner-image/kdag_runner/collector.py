"""``python -m kdag_runner collect``: the sidecar of a non-Python task, which pushes the XCom files it left.

The task writes ``{key}.json`` files (``return.json`` is ``return_value``) into ``KDAG_XCOM_DIR``; on SIGTERM
(or a ``.done`` file there, in local runs) the collector reads them, only regular files and as strict JSON
(it holds the pod's token), stores them through the task's sink and writes the report (``report.py``).
Imports are deferred so that starting the collector stays cheap.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

from kdag_runner.report import EXIT_OK, EXIT_XCOM_FAILED, add_lengths, write_termination_message

if TYPE_CHECKING:
    from pathlib import Path

    from kdag_runner.environment import TaskEnvironment


def collect() -> int:
    """The sidecar of a non-Python task: on SIGTERM (or ``.done``), push the JSON files it left."""
    from kdag_runner import store
    from kdag_runner.environment import RunnerConfigError, TaskEnvironment
    from kdag_runner.sinks import SinkError, sink_from_env

    try:
        env = TaskEnvironment.from_env()
        if env.xcom_dir is None:
            raise RunnerConfigError("KDAG_XCOM_DIR is not set; the collector reads the task's files there")
    except RunnerConfigError as err:
        print(f"kdag: {err}", file=sys.stderr)
        write_termination_message({"error": str(err)})
        return EXIT_XCOM_FAILED
    _wait_for_task(env.xcom_dir / ".done")
    try:
        values = read_xcom_files(env)
        data = store.encode(values, env.task_id)
    except store.XComError as err:
        print(f"kdag: {err}", file=sys.stderr)
        write_termination_message({"error": str(err)})
        try:
            sink_from_env(env).write(store.finish({}, {}, env.task_id))
        except SinkError as sink_err:
            print(f"kdag: {sink_err}", file=sys.stderr)
        return EXIT_XCOM_FAILED
    try:
        sink_from_env(env).write(data)
    except SinkError as err:
        print(f"kdag: {err}", file=sys.stderr)
        write_termination_message({"error": str(err)})
        return EXIT_XCOM_FAILED
    keys = store.stored_keys(data)
    print(f"kdag: pushed XComs {keys} of task '{env.task_id}'", file=sys.stderr)
    report: dict[str, Any] = {"xcomKeys": keys, "bytes": store.data_size(data)}
    lengths = {store.encode_key(k): len(v) for k, v in values.items() if isinstance(v, list | dict)}
    add_lengths(report, lengths)
    write_termination_message(report)
    return EXIT_OK


def read_xcom_files(env: TaskEnvironment) -> dict[str, object]:
    """Values of ``{key}.json`` files in KDAG_XCOM_DIR; ``return.json`` is ``return_value``."""
    from kdag_runner import store

    assert env.xcom_dir is not None
    values: dict[str, object] = {}
    sources: dict[str, str] = {}
    try:
        files = sorted(p for p in env.xcom_dir.iterdir() if p.name.endswith(".json"))
    except FileNotFoundError:
        return values
    for file in files:
        raw = _task_file_bytes(file, env.task_id)
        if raw is None:
            continue
        stem = file.name[: -len(".json")]
        key = store.RETURN_KEY if stem == "return" else stem
        try:
            store.validate_key(key, env.task_id)
        except store.XComError as err:
            raise store.XComError(f"XCom file '{file.name}': {err}") from None
        if key in sources:
            raise store.XComError(
                f"XCom files '{sources[key]}' and '{file.name}' of task '{env.task_id}' both set '{key}'"
            )
        try:
            values[key] = _strict_json(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as err:
            raise store.XComError(
                f"XCom file '{file.name}' of task '{env.task_id}' is not valid JSON: {err}"
            ) from None
        sources[key] = file.name
    return values


def _task_file_bytes(file: Path, task_id: str) -> bytes | None:
    """The bytes of a file the task left in KDAG_XCOM_DIR; None for a directory.

    The collector holds the pod's token, so it reads only regular files, never through a symbolic link (the
    task could point one at the token) and never a FIFO (which would block it).
    """
    import errno
    import stat

    from kdag_runner.store import XComError

    try:
        fd = os.open(file, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as err:
        why = "it is a symbolic link: write the file itself" if err.errno == errno.ELOOP else err.strerror
        raise XComError(f"XCom file '{file.name}' of task '{task_id}' cannot be read: {why}") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            return None
        if not stat.S_ISREG(mode):
            raise XComError(f"XCom file '{file.name}' of task '{task_id}' is not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read()
    finally:
        os.close(fd)


def _strict_json(text: str) -> object:
    """JSON as RFC 8259 has it: no NaN or Infinity, and no object naming a key twice (json.loads would
    keep the last one silently)."""
    import json

    def refuse_constant(name: str) -> object:
        raise ValueError(f"{name} is not JSON")

    def unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
        value: dict[str, object] = {}
        for key, item in pairs:
            if key in value:
                raise ValueError(f"an object has the key {key!r} twice")
            value[key] = item
        return value

    return json.loads(text, parse_constant=refuse_constant, object_pairs_hook=unique_keys)


def _wait_for_task(done_file: Any) -> None:
    """Block until SIGTERM or SIGINT arrives, or ``done_file`` appears (local runs)."""
    import signal

    signals = {signal.SIGTERM, signal.SIGINT}
    received: list[int] = []
    # As PID 1 of a container the collector only receives signals it handles. The handler catches one
    # that arrives before the signals are blocked; after that, sigtimedwait takes them.
    for number in signals:
        signal.signal(number, lambda signum, _frame: received.append(signum))
    signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        while not received and not done_file.exists():
            if signal.sigtimedwait(signals, 0.2) is not None:
                return
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, signals)
