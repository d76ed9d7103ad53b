"""The local test cluster's daemons, for tests that restart them: whether this session may, the restart
itself (tests/cluster/restart), and the cluster made whole and healthy again afterwards."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from kube_helpers import (
    CLUSTER_SCRIPTS,
    CLUSTER_STATE_DIR,
    kubectl,
    kubectl_json,
    wait_for,
)


def why_daemons_cannot_restart(kubeconfig: str) -> str | None:
    """Why this session may not restart the cluster's daemons (a reason to skip), or None when it may."""
    if Path(kubeconfig).resolve() != (CLUSTER_STATE_DIR / "admin.kubeconfig").resolve():
        return "the session's cluster is not the one tests/cluster/up makes: no daemons of ours to restart"
    if os.geteuid() != 0:
        return "restarting the cluster's daemons needs root, as tests/cluster/up does"
    return None


def restart_daemon(name: str) -> tuple[float, float]:
    """Restart one daemon `up` started (tests/cluster/restart) and wait until it serves again; when it went
    down and when it served again, in epoch seconds."""
    went_down = time.time()
    completed = subprocess.run(
        [str(CLUSTER_SCRIPTS / "restart"), name], capture_output=True, text=True, check=False, timeout=300
    )
    if completed.returncode != 0:
        code = completed.returncode
        raise AssertionError(f"tests/cluster/restart {name} failed ({code}):\n{completed.stderr}")
    return went_down, time.time()


def stopped_daemons() -> list[str]:
    """The daemons `up` started that no longer run (a PID file whose process is gone or is another one)."""
    stopped = []
    for pid_file in sorted((CLUSTER_STATE_DIR / "pids").glob("*.pid")):
        try:
            command = Path(f"/proc/{int(pid_file.read_text())}/cmdline").read_bytes()
        except (OSError, ValueError):
            command = b""
        if f"{pid_file.stem} ".encode() not in command.replace(b"\0", b" "):
            stopped.append(pid_file.stem)
    return stopped


def make_cluster_healthy(kubeconfig: str) -> None:
    """Start whatever daemon is down (tests/cluster/up starts only what does not run), then wait until the
    API server is ready and the node Ready, so the tests after this one find the cluster as `up` left it."""
    if stopped_daemons():
        completed = subprocess.run(
            [str(CLUSTER_SCRIPTS / "up")], capture_output=True, text=True, check=False, timeout=900
        )
        if completed.returncode != 0:
            code = completed.returncode
            raise AssertionError(f"tests/cluster/up failed ({code}):\n{completed.stderr[-4000:]}")
    wait_for(
        lambda: kubectl("get", "--raw", "/readyz", kubeconfig=kubeconfig, timeout=10).strip() == "ok",
        timeout=120,
        what="the API server's /readyz",
    )
    wait_for(lambda: node_ready(kubeconfig), timeout=120, what="the node to be Ready")
    assert stopped_daemons() == [], f"cluster daemons still down: {stopped_daemons()}"


def node_ready(kubeconfig: str) -> bool:
    nodes = kubectl_json("get", "nodes", kubeconfig=kubeconfig)["items"]
    return bool(nodes) and all(
        condition["status"] == "True"
        for node in nodes
        for condition in node["status"].get("conditions", [])
        if condition["type"] == "Ready"
    )
