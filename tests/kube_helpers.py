"""Small helpers for tests that drive a real cluster: kubectl with a given kubeconfig, and polling."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class KubectlError(RuntimeError):
    """kubectl exited non-zero; the message carries the command and its stderr."""

    def __init__(self, args: list[str], returncode: int, stderr: str) -> None:
        super().__init__(f"kubectl {' '.join(args)} exited {returncode}: {stderr.strip()}")
        self.returncode = returncode
        self.stderr = stderr


def kubectl(*args: str, kubeconfig: str, input: str | None = None, timeout: float = 120) -> str:
    """Run kubectl against `kubeconfig` and return its stdout; raise KubectlError with stderr on failure."""
    command = ["kubectl", f"--kubeconfig={kubeconfig}", *args]
    completed = subprocess.run(
        command, input=input, capture_output=True, text=True, timeout=timeout, check=False
    )
    if completed.returncode != 0:
        raise KubectlError(list(args), completed.returncode, completed.stderr)
    return completed.stdout


def kubectl_json(*args: str, kubeconfig: str) -> Any:
    """kubectl ... -o json, parsed."""
    return json.loads(kubectl(*args, "-o", "json", kubeconfig=kubeconfig))


def wait_for(predicate: Callable[[], T], timeout: float = 60, interval: float = 0.25, what: str = "") -> T:
    """Poll `predicate` until it returns a truthy value, and return that value.

    Exceptions from the predicate count as "not yet"; on timeout the last one is chained to the TimeoutError,
    so a test failing here says what it was waiting for and why it never came.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = predicate()
            if result:
                return result
        except Exception as error:
            last_error = error
        if time.monotonic() >= deadline:
            description = what or getattr(predicate, "__name__", "condition")
            raise TimeoutError(f"{description} not reached within {timeout} s") from last_error
        time.sleep(interval)
