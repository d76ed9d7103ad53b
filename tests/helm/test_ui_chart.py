"""The web UI in the chart (`ui.enabled`): off by default; a non-root, read-only Deployment of `kdag ui`;
its own ServiceAccount whose ClusterRole is exactly the reviewed read-only list (plus `create` on dagruns
only with `ui.allowTrigger`); on the cluster, what the API server then lets that account do."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from chart_support import CHART, Kube
from test_chart_render import RELEASE, one, render, render_error
from test_rbac import Grant, can_i, granted, grants, service_account

UI_READS: set[Grant] = (
    grants("kdag.dev", ["dags", "dagruns", "taskruns"], ["get", "list", "watch"])
    | grants("kdag.dev", ["dagversions"], ["get"])  # the DAG version a run follows, by name
    | grants("", ["pods"], ["get", "list", "watch"])  # attempts: times, exit codes (one shared watch)
    | grants("", ["pods/log"], ["get"])  # a task's log, followed while it runs
    | grants("", ["events"], ["list"])  # a run's Events
    | grants("", ["configmaps"], ["get"])  # a task's XCom ConfigMap, by name: never list or watch
)
"""The reviewed allow-list of the UI's ClusterRole (docs/security.md, "The web UI")."""


def test_no_ui_by_default(helm: Path) -> None:
    assert not [o for o in render(helm) if "-ui" in o["metadata"]["name"]]


def test_the_ui_role_is_the_reviewed_read_only_list(helm: Path) -> None:
    role = one(render(helm, "ui.enabled=true"), "ClusterRole", f"{RELEASE}-ui")
    assert granted(role["rules"]) == UI_READS
    allowed = one(render(helm, "ui.enabled=true", "ui.allowTrigger=true"), "ClusterRole", f"{RELEASE}-ui")
    assert granted(allowed["rules"]) == UI_READS | grants("kdag.dev", ["dagruns"], ["create"])


def test_the_ui_deployment_runs_kdag_ui_locked_down(helm: Path) -> None:
    objects = render(helm, "ui.enabled=true", "ui.namespaces={team-a}")
    deployment = one(objects, "Deployment", f"{RELEASE}-ui")
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert pod["serviceAccountName"] == f"{RELEASE}-ui"
    # Not the image's entry point (`kdag controller`), which would take `ui ...` as its own arguments.
    assert container["command"] == ["kdag"]
    assert container["args"][:3] == ["ui", "--in-cluster", "--host=0.0.0.0"]
    assert "--namespace=team-a" in container["args"] and "--allow-trigger" not in container["args"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    service = one(objects, "Service", f"{RELEASE}-ui")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    # The controller's Service and NetworkPolicy do not select the UI's pods.
    assert deployment["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "ui"
    triggering = one(render(helm, "ui.enabled=true", "ui.allowTrigger=true"), "Deployment", f"{RELEASE}-ui")
    assert "--allow-trigger" in triggering["spec"]["template"]["spec"]["containers"][0]["args"]


@pytest.mark.parametrize(
    ("setting", "refusal"),
    [
        ("ui.enabled=yes", "at '/ui/enabled': got string, want boolean"),
        ("ui.allowTrigger=1", "at '/ui/allowTrigger': got number, want boolean"),
        ("ui.port=http", "at '/ui/port': got string, want integer"),
        ("ui.namespaces={Team_A}", "at '/ui/namespaces/0'"),
        # No NodePort or LoadBalancer: the UI has no login, so the chart never exposes it outside the cluster.
        ("ui.serviceType=NodePort", "additional properties 'serviceType' not allowed"),
        ("ui.allowTriger=true", "additional properties 'allowTriger' not allowed"),  # a typo is not ignored
    ],
)
def test_bad_ui_values_are_refused_naming_the_field(helm: Path, setting: str, refusal: str) -> None:
    assert refusal in render_error(helm, setting)
    linted = subprocess.run([str(helm), "lint", str(CHART), "--set", setting], capture_output=True, text=True)
    assert linted.returncode != 0 and refusal in linted.stdout + linted.stderr, linted.stdout


PROBE_RELEASE = "kdag-ui-probe"
PROBE_NAMESPACE = "kdag-ui-probe"


@pytest.fixture(scope="module")
def ui_rbac(kubeconfig: str, helm: Path) -> Iterator[Kube]:
    kube = Kube(Path(kubeconfig), helm)
    kube.fresh_namespace(PROBE_NAMESPACE)
    args = [str(helm), "template", PROBE_RELEASE, str(CHART), "--namespace", PROBE_NAMESPACE,
            "--set", "ui.enabled=true", "--show-only", "templates/ui-rbac.yaml"]  # fmt: skip
    manifests = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    kube.kubectl("apply", "-f", "-", stdin=manifests)
    try:
        yield kube
    finally:
        kube.kubectl("delete", "-f", "-", "--ignore-not-found", stdin=manifests, check=False)
        kube.kubectl("delete", "namespace", PROBE_NAMESPACE, "--wait=false", check=False)


@pytest.mark.cluster
def test_the_ui_account_reads_and_writes_nothing(ui_rbac: Kube) -> None:
    account = service_account(PROBE_NAMESPACE, f"{PROBE_RELEASE}-ui")
    for resource in ("dags.kdag.dev", "dagruns.kdag.dev", "taskruns.kdag.dev", "pods"):
        assert can_i(ui_rbac, account, "watch", resource, "--all-namespaces"), resource
    assert can_i(ui_rbac, account, "get", "pods/log", "-n", "default")
    assert can_i(ui_rbac, account, "get", "configmaps", "-n", "default")
    assert not can_i(ui_rbac, account, "list", "configmaps", "--all-namespaces")
    assert not can_i(ui_rbac, account, "get", "secrets", "--all-namespaces")
    for verb in ("create", "patch", "delete", "update"):
        for resource in ("dagruns.kdag.dev", "dags.kdag.dev", "pods", "configmaps"):
            assert not can_i(ui_rbac, account, verb, resource, "--all-namespaces"), (verb, resource)
