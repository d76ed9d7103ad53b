"""Session fixtures for tests that need a real Kubernetes cluster.

`kubeconfig` finds or makes one: `$KUBECONFIG` when the caller gives one; else a kind cluster through
pytest-kind when kind and a working Docker engine exist; else the local cluster of `tests/cluster/up`.
Tests marked `cluster` get it even without asking for the fixture.

Under pytest-xdist (`KDAG_TEST_WORKERS=2 bash tests/run` passes `-n 2 --dist loadgroup`), every test that
needs the cluster is in one group, `cluster`, so one worker runs them in order, with one cluster session and
one host controller, while the other worker runs the tests that need no cluster.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from kube_helpers import (
    CACHE_ROOT,
    CLUSTER_SCRIPTS,
    CLUSTER_STATE_DIR,
    CONTROLLER_IMAGE,
    REPO_ROOT,
    RUNNER_IMAGE,
    create_namespace,
    delete_namespace,
    live_sessions,
    process_alive,
)

# The shared host-run controller fixture, registered once for the whole session.
pytest_plugins = ["controller_support"]


def _add_kubernetes_binaries_to_path() -> None:
    """tests/cluster/build-k8s builds kubectl too when the machine has none; the machine's own comes first."""
    path = os.environ.get("PATH", "").split(os.pathsep)
    for bin_dir in sorted(CACHE_ROOT.glob("k8s/*/bin")):
        if str(bin_dir) not in path:
            path.append(str(bin_dir))
    os.environ["PATH"] = os.pathsep.join(path)


_add_kubernetes_binaries_to_path()


def _docker_engine_works() -> bool:
    if shutil.which("kind") is None or shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, check=False, timeout=30).returncode == 0


def _register_session() -> Path:
    """Mark this session as a user of the local cluster, so no other session's end stops it meanwhile."""
    sessions_dir = CLUSTER_STATE_DIR / "sessions"
    sessions_dir.mkdir(parents=True, exist_ok=True)
    session_file = sessions_dir / str(os.getpid())
    session_file.write_text(f"{os.getpid()}\n")
    return session_file


def _local_cluster() -> Iterator[str]:
    """tests/cluster/up, shared by concurrent sessions; the last session out stops what a session started."""
    started_marker = CLUSTER_STATE_DIR / "started-by-test-session"
    session_file = _register_session()
    try:
        was_running = process_alive(CLUSTER_STATE_DIR / "pids" / "kube-apiserver.pid")
        completed = subprocess.run(
            [str(CLUSTER_SCRIPTS / "up")], capture_output=True, text=True, check=False, timeout=3600
        )
        if completed.returncode != 0:
            raise RuntimeError(
                f"tests/cluster/up failed ({completed.returncode}):\n{completed.stderr[-4000:]}"
            )
        if not was_running:
            started_marker.touch()
        yield completed.stdout.strip().splitlines()[-1]
    finally:
        session_file.unlink(missing_ok=True)
        keep = os.environ.get("KDAG_KEEP_CLUSTER") == "1"
        if started_marker.exists() and not keep and not live_sessions(session_file.parent):
            started_marker.unlink(missing_ok=True)
            subprocess.run([str(CLUSTER_SCRIPTS / "down")], capture_output=True, check=False, timeout=300)


def _kind_cluster() -> Iterator[str]:
    """A kind cluster with the project's images built by Docker and loaded the usual way."""
    from pytest_kind import KindCluster

    subprocess.run(
        ["docker", "build", "-t", RUNNER_IMAGE, "-f", "runner-image/Dockerfile", "runner-image"],
        cwd=REPO_ROOT,
        check=True,
    )
    subprocess.run(
        ["docker", "build", "-t", CONTROLLER_IMAGE, "-f", "Dockerfile", "."], cwd=REPO_ROOT, check=True
    )
    cluster = KindCluster("kdag-test")
    cluster.create()
    cluster.load_docker_image(RUNNER_IMAGE)
    cluster.load_docker_image(CONTROLLER_IMAGE)
    try:
        yield str(cluster.kubeconfig_path)
    finally:
        if os.environ.get("KDAG_KEEP_CLUSTER") != "1":
            cluster.delete()


@pytest.fixture(scope="session")
def kubeconfig() -> Iterator[str]:
    """Path of an admin kubeconfig of a running cluster (see the module docstring for which one)."""
    given = os.environ.get("KUBECONFIG")
    if given:
        path = given.split(os.pathsep)[0]
        if Path(path).resolve() == (CLUSTER_STATE_DIR / "admin.kubeconfig").resolve():
            session_file = _register_session()  # the local cluster, given by path: still keep it up
            try:
                yield path
            finally:
                session_file.unlink(missing_ok=True)
        else:
            yield path
    elif _docker_engine_works():
        yield from _kind_cluster()
    else:
        yield from _local_cluster()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "cluster_lifecycle: stops and restarts the shared cluster; runs after every other test"
    )
    # `kdag run --local` keeps each DAG's last run under $XDG_STATE_HOME: the tests' runs go to a directory
    # of this session, removed at its end, not to the home directory of whoever runs them.
    if "KDAG_TEST_STATE_HOME" not in os.environ:
        os.environ["KDAG_TEST_STATE_HOME"] = os.environ["XDG_STATE_HOME"] = tempfile.mkdtemp(
            prefix="kdag-test-state-"
        )


def pytest_unconfigure(config: pytest.Config) -> None:
    state = os.environ.pop("KDAG_TEST_STATE_HOME", None)
    if state is not None and os.environ.get("XDG_STATE_HOME") == state:
        shutil.rmtree(state, ignore_errors=True)


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that restart the cluster go last, so no other test loses its cluster or session fixtures; under
    xdist the tests that need the cluster form one group, run by one worker in this order."""
    items.sort(key=lambda item: item.get_closest_marker("cluster_lifecycle") is not None)
    if config.pluginmanager.hasplugin("xdist"):
        for item in items:
            if _needs_cluster(item):
                item.add_marker(pytest.mark.xdist_group("cluster"))


def _needs_cluster(item: pytest.Item) -> bool:
    return item.get_closest_marker("cluster") is not None or "kubeconfig" in getattr(item, "fixturenames", ())


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build the Kubernetes binaries before the first test, outside its time limit: that takes minutes."""
    if session.config.option.collectonly or os.environ.get("KUBECONFIG"):
        return
    if not any(_needs_cluster(item) for item in session.items) or _docker_engine_works():
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(
            "test cluster: making sure the Kubernetes binaries are built (minutes the first time)"
        )
    # Each xdist worker collects every test: the first builds, the other waits and finds them built.
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    with (CACHE_ROOT / "build-k8s.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        completed = subprocess.run(
            [str(CLUSTER_SCRIPTS / "build-k8s")], capture_output=True, text=True, check=False, timeout=3600
        )
    if completed.returncode != 0:
        raise pytest.UsageError(f"tests/cluster/build-k8s failed:\n{completed.stderr[-4000:]}")
    _add_kubernetes_binaries_to_path()


@pytest.fixture(autouse=True)
def _cluster_for_marked_tests(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("cluster") is not None:
        request.getfixturevalue("kubeconfig")


@pytest.fixture
def namespace(kubeconfig: str) -> Iterator[str]:
    """A fresh namespace for one test, deleted after it."""
    name = create_namespace(kubeconfig)
    try:
        yield name
    finally:
        delete_namespace(kubeconfig, name)
