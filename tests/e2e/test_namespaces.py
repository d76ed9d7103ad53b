"""A namespace deleted and made again under the same name gets its task RBAC again."""

from __future__ import annotations

import subprocess
import uuid

import pytest
from controller_support import ControllerProcess, kubectl
from e2e_helpers import apply, dag_manifest, python_task, wait_for_run, wait_until

pytestmark = pytest.mark.cluster


def _gone(kubeconfig: str, namespace: str) -> bool:
    result = subprocess.run(
        ["kubectl", "--kubeconfig", kubeconfig, "get", "namespace", namespace],
        capture_output=True, text=True, timeout=60,
    )
    return result.returncode != 0 and "NotFound" in result.stderr


def test_recreated_namespace_runs_tasks_again(kubeconfig: str, controller: ControllerProcess) -> None:
    namespace = f"kdag-e2e-again-{uuid.uuid4().hex[:6]}"
    manifest = dag_manifest(
        "again", [python_task("one", "def one(**_):\n    return 1\n", "one")], schedule="@once"
    )
    try:
        for _ in range(2):
            kubectl(kubeconfig, "create", "namespace", namespace)
            wait_until(
                lambda: kubectl(kubeconfig, "get", "serviceaccount", "default", "-n", namespace, check=False)
                .startswith("NAME"),
                "the default ServiceAccount",
            )
            apply(kubeconfig, namespace, manifest)
            run = wait_for_run(kubeconfig, namespace, "again")
            assert run["status"]["phase"] == "Succeeded", run["status"]
            kubectl(kubeconfig, "delete", "namespace", namespace, "--wait=false")
            wait_until(lambda: _gone(kubeconfig, namespace), "the namespace to be deleted", timeout=180)
        # Other controllers on a shared cluster may make the RBAC too; ours must not have needed them.
        log = controller.log_path.read_text(errors="replace")
        assert f"reconciling DAGRun {namespace}/" not in log, controller.log_tail()
    finally:
        kubectl(kubeconfig, "delete", "namespace", namespace, "--wait=false", "--ignore-not-found",
                check=False)
