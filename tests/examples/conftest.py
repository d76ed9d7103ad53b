"""Example tests share the session's host-run controller (tests/controller_support.py)."""

from __future__ import annotations

import gc
import uuid
from collections.abc import Iterator

import pytest
from controller_support import ControllerProcess, controller, kubectl

__all__ = ["controller", "examples_namespace", "host_controller"]


@pytest.fixture(scope="session")
def host_controller(request: pytest.FixtureRequest) -> ControllerProcess:
    """The running host controller of this session if another test directory started one, else ours.

    Every conftest that imports `controller` gets its own session instance; two would both act on every
    namespace, so an instance already running is reused.
    """
    for candidate in gc.get_objects():
        if (
            isinstance(candidate, ControllerProcess)
            and candidate.process
            and candidate.process.poll() is None
        ):
            return candidate
    started: ControllerProcess = request.getfixturevalue("controller")
    return started


@pytest.fixture
def examples_namespace(kubeconfig: str, host_controller: ControllerProcess) -> Iterator[str]:
    # Another session on the same cluster may have taken over or removed the shared webhook configuration.
    host_controller.ensure_webhook()
    name = f"kdag-examples-{uuid.uuid4().hex[:8]}"
    kubectl(kubeconfig, "create", "namespace", name)
    try:
        yield name
    finally:
        kubectl(kubeconfig, "delete", "namespace", name, "--wait=false", check=False)
