"""End-to-end fixtures: the shared controller, a namespace per test, and the controller log on failure."""

from __future__ import annotations

import uuid
from collections.abc import Generator, Iterator
from typing import Any

import pytest
from controller_support import ControllerProcess, kubectl


@pytest.fixture
def e2e_namespace(kubeconfig: str, controller: ControllerProcess) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards (its runs, pods and ConfigMaps with it)."""
    name = f"kdag-e2e-{uuid.uuid4().hex[:8]}"
    kubectl(kubeconfig, "create", "namespace", name)
    try:
        yield name
    finally:
        kubectl(kubeconfig, "delete", "namespace", name, "--wait=false", check=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[Any]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failing test's report carries the tail of the controller log."""
    report: pytest.TestReport = yield
    if report.failed and "controller" in getattr(item, "fixturenames", ()):
        process = item.funcargs.get("controller") if hasattr(item, "funcargs") else None
        if isinstance(process, ControllerProcess):
            report.sections.append(("controller log (tail)", process.log_tail()))
    return report
