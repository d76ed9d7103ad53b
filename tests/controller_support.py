"""The session fixture `controller`: CRDs and the XCom guard applied, the controller running on the host.

The controller is a subprocess (`python -m kdag.controller`) logging to a file; its webhook listens on
https://127.0.0.1:PORT with a self-signed certificate and it manages the ValidatingWebhookConfiguration.
Tests that restart it use `ControllerProcess.kill()` / `.start()` on the same fixture object.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest

REPO = Path(__file__).resolve().parent.parent
RUNNER_IMAGE = os.environ.get("KDAG_TEST_RUNNER_IMAGE", "localhost/kdag-runner:dev")
SHELL_IMAGE = os.environ.get("KDAG_TEST_SHELL_IMAGE", "busybox:1.35")
WEBHOOK_CONFIGURATION = "kdag.dev"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fetch(
    url: str, form: dict[str, str] | None = None, headers: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """GET `url`, or POST `form` to it, without following a redirect: the status, Location and body."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        if form is None:
            connection.request("GET", path, headers=headers or {})
        else:
            sent = {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
            connection.request("POST", path, body=urlencode(form), headers=sent)
        answer = connection.getresponse()
        return answer.status, answer.getheader("Location") or "", answer.read().decode()
    finally:
        connection.close()


def kubectl(kubeconfig: str, *args: str, stdin: str | None = None, check: bool = True) -> str:
    """Run kubectl against the test cluster; its stdout, or an error with stderr when it fails."""
    result = subprocess.run(
        ["kubectl", "--kubeconfig", kubeconfig, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check and result.returncode != 0:
        command = " ".join(args)
        raise AssertionError(f"kubectl {command} failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout if result.returncode == 0 else result.stderr


def kubectl_json(kubeconfig: str, *args: str) -> dict[str, object]:
    value: dict[str, object] = json.loads(kubectl(kubeconfig, *args, "-o", "json"))
    return value


@dataclass
class ControllerProcess:
    """One controller subprocess on the host; `start` again after `kill` to test restarts."""

    kubeconfig: str
    log_path: Path
    webhook_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    pids: list[int] = field(default_factory=list)

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            KUBECONFIG=self.kubeconfig,
            KDAG_RUNNER_IMAGE=RUNNER_IMAGE,
            KDAG_IMAGE_PULL_POLICY="Never",
            KDAG_WEBHOOK_HOST="127.0.0.1",
            KDAG_WEBHOOK_PORT=str(self.webhook_port),
            KDAG_METRICS_PORT=str(self.metrics_port),
            PYTHONUNBUFFERED="1",
        )
        for name in ("KDAG_WEBHOOK_CERTFILE", "KDAG_WEBHOOK_KEYFILE", "KDAG_PEERING"):
            env.pop(name, None)
        return env

    def start(self, timeout: float = 60.0) -> None:
        """Start the controller and wait until its webhook is registered and its metrics answer."""
        assert self.process is None or self.process.poll() is not None, "the controller is already running"
        log = self.log_path.open("ab")
        log.write(f"\n===== controller start {time.strftime('%H:%M:%S')} =====\n".encode())
        log.flush()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "kdag.controller"],
            env=self.environment(),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            start_new_session=True,
        )
        self.pids.append(self.process.pid)
        if not any(c is self for c in _STARTED):
            _STARTED.append(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                code = self.process.returncode
                raise AssertionError(f"the controller exited with {code}:\n{self.log_tail()}")
            if self.webhook_registered() and self.metrics_ready() and self.webhook_answers():
                return
            time.sleep(0.3)
        raise AssertionError(f"the controller did not become ready in {timeout} s:\n{self.log_tail()}")

    def webhook_registered(self) -> bool:
        url = kubectl(
            self.kubeconfig, "get", "validatingwebhookconfiguration", WEBHOOK_CONFIGURATION,
            "-o", "jsonpath={.webhooks[*].clientConfig.url}", check=False,
        )
        return f"127.0.0.1:{self.webhook_port}" in url

    def webhook_answers(self) -> bool:
        """Whether the API server reaches this process's webhook with its certificate: a restarted controller
        registers a new self-signed CA under the same URL, and until the API server's copy of the
        configuration catches up its calls fail (`x509: certificate signed by unknown authority`)."""
        probe = {
            "apiVersion": "kdag.dev/v1alpha1",
            "kind": "DAG",
            "metadata": {"generateName": "webhook-probe-", "namespace": "default"},
            "spec": {"tasks": [{"id": "probe", "command": ["true"]}]},
        }
        result = subprocess.run(
            ["kubectl", "--kubeconfig", self.kubeconfig, "create", "--dry-run=server", "-f", "-"],
            input=json.dumps(probe), capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        return result.returncode == 0

    def ensure_webhook(self) -> None:
        """Register our webhook again when something else removed or replaced the shared configuration.

        Test sessions on one cluster share the configuration name; a session's teardown (or a chart test
        that makes room for an in-cluster controller) deletes it. A restarted controller registers anew.
        """
        if not self.webhook_registered():
            self.stop()
            self.start()

    def metrics_ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.metrics_url, timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def metrics(self) -> str:
        with urllib.request.urlopen(self.metrics_url, timeout=5) as response:
            text: str = response.read().decode()
            return text

    def kill(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """Signal the controller (by its PID) and wait for it to exit."""
        if self.process is None or self.process.poll() is not None:
            return
        os.kill(self.process.pid, sig)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)

    def log_tail(self, lines: int = 120) -> str:
        if not self.log_path.exists():
            return "(no controller log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def stop_process(process: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """Stop a process a test started (SIGTERM, then SIGKILL after `timeout` seconds) and reap it."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


_STARTED: list[ControllerProcess] = []


def running_controllers() -> list[ControllerProcess]:
    """Every host controller this pytest process started that still runs."""
    return [c for c in _STARTED if c.process is not None and c.process.poll() is None]


def apply_controller_prerequisites(kubeconfig: str) -> None:
    """CRDs (crds/, or $KDAG_TEST_CRDS_DIR), the cluster-wide XCom guard and the task ClusterRole `kdag-task`
    the controller binds in each namespace: the generated files the chart installs too."""
    crds = os.environ.get("KDAG_TEST_CRDS_DIR") or str(REPO / "crds")
    kubectl(kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", crds)
    for generated in ("xcom-guard.yaml", "task-clusterrole.yaml"):
        path = REPO / "deploy" / generated
        if path.exists():
            kubectl(kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", str(path))
    kubectl(
        kubeconfig, "wait", "--for=condition=Established", "--timeout=60s",
        "crd/dags.kdag.dev", "crd/dagruns.kdag.dev", "crd/taskruns.kdag.dev",
    )


@pytest.fixture(scope="session")
def controller(kubeconfig: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControllerProcess]:
    """The controller of this test session, running on the host against the test cluster.

    Registered once, in tests/conftest.py (`pytest_plugins`), so a session never runs two host controllers.
    """
    apply_controller_prerequisites(kubeconfig)
    process = ControllerProcess(
        kubeconfig=kubeconfig, log_path=tmp_path_factory.mktemp("controller") / "controller.log"
    )
    process.start()
    try:
        yield process
    finally:
        _stop_and_unregister(kubeconfig, process)


def _stop_and_unregister(kubeconfig: str, process: ControllerProcess) -> None:
    process.stop()
    # Leave no webhook behind that points at a port nobody serves: it would refuse every DAG.
    url = kubectl(
        kubeconfig, "get", "validatingwebhookconfiguration", WEBHOOK_CONFIGURATION,
        "-o", "jsonpath={.webhooks[*].clientConfig.url}", check=False,
    )
    if f"127.0.0.1:{process.webhook_port}" in url:
        for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
            kubectl(kubeconfig, "delete", kind, WEBHOOK_CONFIGURATION, "--ignore-not-found", check=False)
