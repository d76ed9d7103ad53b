"""Python task attempts forked from a runner that is already loaded, instead of a new interpreter each.

Most of a short task's `python -m kdag_runner run` is Python starting and importing the runner. A local run
starts one *fork server* (`serve`, in a process of its own) that imports the runner once and, for each
attempt, forks a child that runs `kdag_runner` as `python -m kdag_runner run` does: as `__main__` through
`runpy`, with `sys.argv`, `sys.path[0]`, the attempt's environment, stdout and stderr on the task's log, the
exit status Python would end with (threads joined, `atexit` run). The DAG file is loaded in the child, as a
new runner loads it. The server imports nothing but the runner and the standard library, starts no thread,
and is never told anything but what to start.

A child is what a new interpreter would be only with the interpreter's own settings, so an attempt is
forked only on Linux, with the environment the server started with (the attempt's `KDAG_*` variables
aside: nothing reads them before the runner) and the same working directory; any other attempt, and every
attempt once the server is gone, starts `python -m kdag_runner run` as before (`ForkServer.start` returns
None).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

PRELOAD = (
    "kdag_runner.main",
    "kdag_runner.xcom_inputs",
    "kdag_runner.airflow",
    "kdag_runner.airflow.task_runner",
    "kdag_runner.airflow.mapped_operator",
    "kdag_runner.context",
    "kdag_runner.xcom",
    "kdag_runner.compat",
    "kdag_runner.sinks",
)
"""What `python -m kdag_runner run` imports for every task; the rest it imports itself, as it would."""
RUNNER_MODULE = "kdag_runner"
ENABLED = sys.platform == "linux"
"""Forking an interpreter that imported only the standard library is sound on Linux; elsewhere (macOS
frameworks are not fork-safe) every attempt starts a new interpreter."""
_SERVER = "__import__('kdag.local.forkserver', fromlist=['serve']).serve()"
"""The server's `python -c` program: it binds no name in `__main__`, which the runner's `__main__` becomes."""
STOP_TIMEOUT_SECONDS = 5.0


def host_env() -> dict[str, str]:
    """The environment of this process minus its `KDAG_*` variables: the base of every attempt's."""
    return {name: value for name, value in os.environ.items() if not name.startswith("KDAG_")}


# --- the kdag side ---------------------------------------------------------------------------------------


class ForkedAttempt:
    """A forked attempt, as much of `subprocess.Popen` as an attempt needs: `wait` and `kill`."""

    def __init__(self) -> None:
        self.pid: int | None = None
        self.returncode: int | None = None
        self.error = ""
        self.started = threading.Event()
        self.done = threading.Event()

    def wait(self, timeout: float | None = None) -> int:
        """The exit status (negative: the signal that ended it); `subprocess.TimeoutExpired` after
        `timeout` seconds, OSError when the server stopped before telling it."""
        if not self.done.wait(timeout):
            raise subprocess.TimeoutExpired([RUNNER_MODULE, "run"], timeout or 0.0)
        if self.returncode is None:
            raise OSError(self.error or "the fork server of the runner stopped")
        return self.returncode

    def kill(self) -> None:
        """SIGKILL, as `Popen.kill`; nothing once it has ended."""
        if self.pid is not None and not self.done.is_set():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)


class ForkServer:
    """The server process of one local run (or more), and what it said about the attempts it forked."""

    def __init__(self) -> None:
        self.env = host_env()
        self.cwd = os.getcwd()
        requests_in, self._requests = os.pipe()
        replies, replies_out = os.pipe()
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-c", _SERVER, str(requests_in), str(replies_out)],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                pass_fds=(requests_in, replies_out),
            )
        except BaseException:
            for fd in (self._requests, replies):
                os.close(fd)
            raise
        finally:
            os.close(requests_in)
            os.close(replies_out)
        self._lock = threading.Lock()  # the attempts and whether the server takes more
        self._send_lock = threading.Lock()  # the requests pipe (never held by the reader of the replies)
        self._attempts: dict[int, ForkedAttempt] = {}
        self._next_id = 0
        self._open = True
        self._requests_open = True
        threading.Thread(target=self._read_replies, args=(replies,), daemon=True).start()

    def accepts(self, env: Mapping[str, str]) -> bool:
        """Whether an attempt with this environment, started now, would see what a new runner sees."""
        own = {name: value for name, value in env.items() if not name.startswith("KDAG_")}
        return self._open and own == self.env and os.getcwd() == self.cwd

    def start(self, env: Mapping[str, str], log_path: Path) -> ForkedAttempt | None:
        """Fork an attempt whose stdout and stderr append to `log_path`; None when this server cannot
        (`accepts`, or it is gone before forking it): the caller starts a new interpreter instead."""
        if not self.accepts(env):
            return None
        attempt = ForkedAttempt()
        with self._lock:
            if not self._open:
                return None
            ident = self._next_id
            self._next_id += 1
            self._attempts[ident] = attempt
        request = json.dumps({"id": ident, "env": dict(env), "log": str(log_path)}).encode() + b"\n"
        with self._send_lock:
            try:
                if not self._requests_open:
                    raise BrokenPipeError
                _write_all(self._requests, request)
            except OSError:
                with self._lock:
                    self._attempts.pop(ident, None)
                    self._open = False
                return None
        attempt.started.wait()
        if attempt.pid is None:
            if attempt.error:
                raise OSError(attempt.error)
            return None  # the server stopped before it forked this one
        return attempt

    def close(self) -> None:
        """Stop the server (an attempt it forked runs on to its end, as a process it started would)."""
        with self._lock:
            self._open = False
        with self._send_lock:
            if not self._requests_open:
                return
            self._requests_open = False
            os.close(self._requests)
        try:
            self._process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def _read_replies(self, fd: int) -> None:
        """Hand each reply to its attempt; when the replies end (the server is gone), release every attempt
        still waiting: one not forked yet is started anew, one forked ends with an OSError."""
        try:
            with open(fd, "rb") as replies:
                for line in replies:
                    reply = json.loads(line)
                    with self._lock:
                        attempt = self._attempts.get(reply["id"])
                        if attempt is None:
                            continue
                        if "pid" in reply:
                            attempt.pid = int(reply["pid"])
                        else:
                            del self._attempts[reply["id"]]
                            attempt.returncode = reply.get("exit")
                            attempt.error = str(reply.get("error", ""))
                            attempt.done.set()
                        attempt.started.set()
        finally:
            with self._lock:
                self._open = False
                for attempt in self._attempts.values():
                    attempt.started.set()
                    attempt.done.set()
                self._attempts.clear()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


_prestarted: ForkServer | None = None


def prestart() -> None:
    """Start this process's fork server now, so that it loads the runner while kdag loads the rest;
    `run_local` takes it (`take`)."""
    global _prestarted
    if ENABLED and _prestarted is None:
        try:
            _prestarted = ForkServer()
        except OSError:
            _prestarted = None


def take() -> ForkServer | None:
    """The server `prestart` started, once; else a new one (None where forking is not used or fails)."""
    global _prestarted
    server, _prestarted = _prestarted, None
    if server is not None and server.env == host_env():
        return server
    if server is not None:
        server.close()
    if not ENABLED:
        return None
    try:
        return ForkServer()
    except OSError:
        return None


# --- the server side -------------------------------------------------------------------------------------


def serve() -> NoReturn:
    """The fork server's loop (its pipes' ends are its arguments): fork a child per request, report its pid
    and its exit status; exit when the requests end (the run is over, or kdag is gone)."""
    import gc
    import importlib
    import select

    requests_fd, replies_fd = int(sys.argv[1]), int(sys.argv[2])
    gc.disable()
    for module in PRELOAD:
        with contextlib.suppress(Exception):  # a child imports it again and fails as a new runner would
            importlib.import_module(module)
    # What the children share is never collected: their collections skip it and leave its pages shared.
    gc.freeze()
    gc.enable()
    wake_in, wake_out = os.pipe()
    os.set_blocking(wake_in, False)
    os.set_blocking(wake_out, False)
    signal.set_wakeup_fd(wake_out)
    signal.signal(signal.SIGCHLD, lambda _signum, _frame: None)
    children: dict[int, int] = {}  # pid -> request id
    pending = b""
    try:
        while True:
            ready, _, _ = select.select([requests_fd, wake_in], [], [])
            if wake_in in ready:
                _drain(wake_in)
            if requests_fd in ready:
                chunk = os.read(requests_fd, 1 << 16)
                if not chunk:
                    os._exit(0)  # nothing to flush or clean up: no interpreter teardown to wait for
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    request = json.loads(line)
                    reply = _fork(request)
                    if "pid" in reply:
                        children[reply["pid"]] = request["id"]
                    _write_all(replies_fd, json.dumps(reply).encode() + b"\n")
            _reap(children, replies_fd)
    except KeyboardInterrupt:  # Ctrl-C reached the whole process group; kdag reports it
        os._exit(1)


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def _reap(children: dict[int, int], replies_fd: int) -> None:
    while children:
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            return
        ident = children.pop(pid, None)
        if ident is not None:
            reply = {"id": ident, "exit": os.waitstatus_to_exitcode(status)}
            _write_all(replies_fd, json.dumps(reply).encode() + b"\n")


def _fork(request: dict[str, Any]) -> dict[str, Any]:
    """Fork the child a request asks for: the reply that names its pid, or why there is none."""
    try:
        pid = os.fork()
    except OSError as err:
        return {"id": request["id"], "error": f"could not fork the runner: {err}"}
    if pid == 0:
        try:
            _child(request["env"], request["log"])
        finally:
            os._exit(1)
    return {"id": request["id"], "pid": pid}


def _child(env: dict[str, str], log: str) -> NoReturn:
    """Become `python -m kdag_runner run` with `env`, writing to `log`; never returns."""
    import runpy

    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    out = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))  # as Popen's close_fds
    os.environ.clear()
    os.environ.update(env)
    sys.argv[:] = ["-m", "run"]  # runpy puts the module's path first, as `-m` does
    sys.orig_argv[:] = [sys.executable, "-m", RUNNER_MODULE, "run"]
    if sys.path[:1] == [""]:  # `-c` put '' first where `-m` puts the working directory (unless -P)
        sys.path[0] = os.getcwd()
    for name in ("kdag.local.forkserver", "kdag.local", "kdag"):  # a runner process has none of kdag
        sys.modules.pop(name, None)
    interrupted = False
    try:
        runpy._run_module_as_main(RUNNER_MODULE)  # type: ignore[attr-defined]
        code = 0
    except SystemExit as exit_:
        code = _exit_status(exit_.code)
    except BaseException as err:
        # Printed as Python prints it: from the module's frames on (this function's left out).
        sys.excepthook(type(err), err, err.__traceback__.tb_next if err.__traceback__ else None)
        interrupted = isinstance(err, KeyboardInterrupt)
        code = 1
    _finish()
    if interrupted:  # as Python ends on an uncaught Ctrl-C: killed by SIGINT
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    os._exit(code)


def _exit_status(code: object) -> int:
    """The exit status `sys.exit(code)` ends an interpreter with."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _finish() -> None:
    """What an interpreter does at exit: wait for its other threads, run `atexit`, flush stdout/stderr."""
    import atexit

    threading._shutdown()  # type: ignore[attr-defined]
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
