"""Example tests: a namespace per test, served by the session's host-run controller."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from controller_support import ControllerProcess, kubectl


@pytest.fixture
def examples_namespace(kubeconfig: str, controller: ControllerProcess) -> Iterator[str]:
    # Another session on the same cluster may have taken over or removed the shared webhook configuration.
    controller.ensure_webhook()
    name = f"kdag-examples-{uuid.uuid4().hex[:8]}"
    kubectl(kubeconfig, "create", "namespace", name)
    try:
        yield name
    finally:
        kubectl(kubeconfig, "delete", "namespace", name, "--wait=false", check=False)
