"""Small helpers for tests that drive a real cluster: kubectl with a given kubeconfig, kdag's own client
(`kube_api`, `get_object`, `list_objects`: the one the controller and the CLI use), and polling.

Tests drive the cluster with kubectl where a user would; reading objects as JSON goes through the client.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from kdag.kube import Kind, SyncKubeApi

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parent.parent
CLUSTER_SCRIPTS = REPO_ROOT / "tests" / "cluster"
CACHE_ROOT = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kdag"
CLUSTER_STATE_DIR = Path(os.environ.get("KDAG_CLUSTER_DIR") or CACHE_ROOT / "cluster")


RUNNER_IMAGE = "localhost/kdag-runner:dev"
"""The runner image (runner-image/Dockerfile), only on the cluster's node: pods use imagePullPolicy Never."""
CONTROLLER_IMAGE = "localhost/kdag-controller:dev"
"""The controller image (Dockerfile), present on the cluster's node."""
IMAGE_PULL_POLICY = "Never"
"""No registry exists: the images above are only on the node."""


def process_alive(pid_file: Path) -> bool:
    try:
        os.kill(int(pid_file.read_text().strip()), 0)
    except (OSError, ValueError):
        return False
    return True


def live_sessions(sessions_dir: Path) -> list[Path]:
    return [path for path in sessions_dir.glob("*") if process_alive(path)]


def other_cluster_sessions() -> list[Path]:
    """Test sessions other than this one that registered as users of the local cluster and still run."""
    own = str(os.getpid())
    return [path for path in live_sessions(CLUSTER_STATE_DIR / "sessions") if path.name != own]


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


_CLIENTS: dict[tuple[str, int], SyncKubeApi] = {}


def kube_api(kubeconfig: str) -> SyncKubeApi:
    """kdag's client of `kubeconfig`, shared by every caller (do not close it; it closes at exit).

    A kubeconfig rewritten since (a rebuilt cluster) gets a new client.
    """
    from kdag.kube import SyncKubeApi

    key = (str(Path(kubeconfig).resolve()), Path(kubeconfig).stat().st_mtime_ns)
    if key not in _CLIENTS:
        if not _CLIENTS:
            atexit.register(_close_clients)
        _CLIENTS[key] = SyncKubeApi(kubeconfig)
    return _CLIENTS[key]


def _close_clients() -> None:
    while _CLIENTS:
        _CLIENTS.popitem()[1].close()


def get_object(kubeconfig: str, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
    """The object as the API server returns it, or None when there is none of that name."""
    return kube_api(kubeconfig).get(kind, namespace, name)


def list_objects(
    kubeconfig: str, kind: Kind, namespace: str, labels: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """The objects of a kind in a namespace (with all of `labels`, when given)."""
    return kube_api(kubeconfig).list(kind, namespace, labels)


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


@contextlib.contextmanager
def sole_user_of_cluster(timeout: float = 1800) -> Iterator[None]:
    """Wait until no other test session uses the local cluster (a restart or `down` would break what they
    run meanwhile). Sessions waiting at the same time go one after the other, lowest PID first, in the
    `sessions-restarting` directory, instead of waiting for each other forever."""
    waiting_dir = CLUSTER_STATE_DIR / "sessions-restarting"
    waiting_dir.mkdir(parents=True, exist_ok=True)
    own = waiting_dir / str(os.getpid())
    own.write_text(f"{os.getpid()}\n")

    def no_one_else() -> bool:
        waiting_after_me = {path.name for path in live_sessions(waiting_dir) if int(path.name) > os.getpid()}
        return not [path for path in other_cluster_sessions() if path.name not in waiting_after_me]

    try:
        wait_for(
            no_one_else, timeout=timeout, interval=5, what="other test sessions to stop using the cluster"
        )
        yield
    finally:
        own.unlink(missing_ok=True)


def create_namespace(kubeconfig: str, prefix: str = "kdag-test") -> str:
    """A new namespace whose `default` ServiceAccount exists, so pods can be created in it at once."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name, kubeconfig=kubeconfig)
    wait_for(
        lambda: kubectl("get", "serviceaccount", "default", "-n", name, "-o", "name", kubeconfig=kubeconfig),
        timeout=60,
        what=f"ServiceAccount default in namespace {name}",
    )
    return name


def delete_namespace(kubeconfig: str, name: str) -> None:
    """Delete without waiting: the cluster finishes it in the background."""
    with contextlib.suppress(KubectlError):
        kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", kubeconfig=kubeconfig)
