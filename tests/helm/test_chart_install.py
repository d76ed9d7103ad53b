"""The chart on the real cluster: install with local images, run the seed lesson in-cluster, uninstall.

The in-cluster controller watches only this test's namespace (rbac.scope=namespace) and its webhook only
intercepts that namespace. The shared host-run controller watches every namespace, so it is stopped meanwhile.
The chart makes no task ServiceAccount here (taskRbac.create=false): the controller makes it, as in any
namespace the chart was not told of, and the uninstall must remove it all the same.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chart_support import CHART, EXAMPLES, Kube, host_controllers_stopped, wait_for
from kdag import names
from test_argocd_health import health
from test_rbac import (
    effective_permissions,
    namespace_scope_cluster_rules,
    namespace_scope_role_rules,
    service_account,
)

NAMESPACE = "kdag-chart-e2e"
RELEASE = "kdag-e2e"

pytestmark = pytest.mark.cluster
SEED_DAG = "etl-dag"


@pytest.fixture(scope="module")
def installed(kubeconfig: Path, helm: Path) -> Iterator[Kube]:
    """The chart installed in its own namespace; uninstalled (and the namespace deleted) afterwards."""
    kube = Kube(Path(kubeconfig), helm)
    with host_controllers_stopped(kube):
        kube.fresh_namespace(NAMESPACE)
        kube.install_chart(RELEASE, NAMESPACE, ["rbac.scope=namespace", "taskRbac.create=false"])
        yield kube
        if RELEASE in kube.helm("list", "--namespace", NAMESPACE, "-q").split():
            kube.uninstall_chart(RELEASE, NAMESPACE)
        kube.kubectl("delete", "namespace", NAMESPACE, "--wait=true", "--timeout=180s", check=False)


def run_of(kube: Kube, dag: str) -> dict[str, Any] | None:
    runs = [r for r in kube.items("dagruns", NAMESPACE) if r["spec"]["dagRef"]["name"] == dag]
    return runs[0] if runs else None


def finished_run(kube: Kube, dag: str, timeout: float = 240) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        run = run_of(kube, dag)
        if run and run.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            return run
        return None

    return wait_for(f"a finished run of DAG {dag}", finished, timeout)


def xcoms(kube: Kube, run: str, task_id: str) -> dict[str, Any]:
    """A task's XComs decoded per the store's `.types` (docs/design.md, "The XCom store")."""
    data: dict[str, str] = kube.get("configmap", names.xcom_configmap_name(run, task_id), NAMESPACE)["data"]
    types = json.loads(data.pop(".types", "{}"))
    return {key: value if types.get(key) == "str" else json.loads(value) for key, value in data.items()}


def test_controller_runs_as_the_chart_says(installed: Kube) -> None:
    pods = installed.items("pods", NAMESPACE, "app.kubernetes.io/name=kdag")
    assert len(pods) == 1
    pod = pods[0]
    assert pod["spec"]["containers"][0]["image"] == "localhost/kdag-controller:dev"
    assert all(c["ready"] for c in pod["status"]["containerStatuses"])
    assert installed.exists("clusterrole", f"{RELEASE}-task")
    assert installed.exists("kopfpeering", "kdag", NAMESPACE)


def test_seed_lesson_runs_in_cluster_and_passes_its_xcoms(installed: Kube) -> None:
    installed.apply(NAMESPACE, (EXAMPLES / "xcom-lesson.yaml").read_text())
    run = finished_run(installed, SEED_DAG)
    name = run["metadata"]["name"]
    assert run["status"]["phase"] == "Succeeded", run["status"]
    assert run["status"]["tasks"] == {
        "sql_task": "Succeeded",
        "hello_task": "Succeeded",
        "goodbye_task": "Succeeded",
    }
    # ds is the run's logical date: spec.logicalDate, which defaults to the run's creation.
    logical = run["spec"].get("logicalDate") or run["metadata"]["creationTimestamp"]
    ds = datetime.datetime.fromisoformat(logical).astimezone(datetime.UTC).strftime("%Y-%m-%d")
    assert xcoms(installed, name, "sql_task")["return_value"] == "hello world"
    hello = xcoms(installed, name, "hello_task")
    assert hello["return_value"] == "hello world"
    assert hello["execution_time"] == ds
    assert xcoms(installed, name, "goodbye_task")["return_value"] == [ds]
    taskrun = installed.get("taskrun", names.taskrun_name(name, "hello_task"), NAMESPACE)
    assert sorted(taskrun["status"]["xcomKeys"]) == ["execution_time", "return_value"]


def test_metrics_through_the_service(installed: Kube) -> None:
    """Prometheus scrapes the controller through the chart's Service: the run's handoffs and pods show."""
    finished_run(installed, SEED_DAG)
    text = installed.kubectl(
        "get", "--raw", f"/api/v1/namespaces/{NAMESPACE}/services/{RELEASE}-controller:metrics/proxy/metrics"
    )
    samples = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("kdag_") and " " in line
    }
    # goodbye_task waited for hello_task: one handoff at least.
    assert samples["kdag_handoff_seconds_count"] >= 1
    assert samples['kdag_api_writes_total{resource="pods",verb="POST"}'] >= 3


def test_argocd_health_of_the_live_objects(installed: Kube) -> None:
    """The Lua health checks read what this controller really wrote."""
    run = finished_run(installed, SEED_DAG)
    dag = installed.get("dag", SEED_DAG, NAMESPACE)
    assert health("DAG", dag)["status"] == "Healthy", dag.get("status")
    assert health("DAGRun", run)["status"] == "Healthy", run["status"]
    for taskrun in installed.items("taskruns", NAMESPACE):
        assert health("TaskRun", taskrun)["status"] == "Healthy", taskrun["status"]


def test_deleting_a_run_removes_its_taskruns_pods_and_xcoms(installed: Kube) -> None:
    run = finished_run(installed, SEED_DAG)["metadata"]["name"]
    selector = f"{names.DAGRUN_LABEL}={run}"
    assert installed.items("configmaps", NAMESPACE, selector), "the run made no XCom ConfigMaps"
    assert installed.items("pods", NAMESPACE, selector), "the run's pods are already gone"
    installed.kubectl("delete", "dagrun", run, "-n", NAMESPACE, "--wait=true", "--timeout=60s")

    def all_gone() -> bool:
        left = [
            o["metadata"]["name"]
            for kind in ("taskruns", "pods", "configmaps")
            for o in installed.items(kind, NAMESPACE, selector)
        ]
        return not left

    wait_for(f"the TaskRuns, pods and ConfigMaps of {run} to be garbage-collected", all_gone, 90)


def test_upgrade_keeps_the_webhook_certificate(installed: Kube) -> None:
    secret = f"{RELEASE}-webhook-tls"
    before = installed.get("secret", secret, NAMESPACE)["data"]
    installed.helm(
        "upgrade",
        RELEASE,
        str(CHART),
        "--namespace",
        NAMESPACE,
        "--reuse-values",
        "--wait",
        "--timeout",
        "240s",
    )
    assert installed.get("secret", secret, NAMESPACE)["data"] == before
    config = installed.get("validatingwebhookconfiguration", f"{RELEASE}-{NAMESPACE}")
    assert config["webhooks"][0]["clientConfig"]["caBundle"] == before["ca.crt"]


def test_the_controller_may_do_exactly_the_reviewed_things(installed: Kube) -> None:
    """The API server's answer for the controller's ServiceAccount (`kubectl auth can-i --list`): in the
    namespace it serves, the reviewed Role and read-only cluster rules; anywhere else, only the latter."""
    account = service_account(NAMESPACE, RELEASE)
    cluster = namespace_scope_cluster_rules(f"{RELEASE}-task")
    assert effective_permissions(installed, account, NAMESPACE) == cluster | namespace_scope_role_rules(
        f"{RELEASE}-task"
    )
    assert effective_permissions(installed, account, "default") == cluster
    for args in (
        ("create", "configmaps", "-n", NAMESPACE),
        ("patch", "configmaps", "-n", NAMESPACE),
        ("get", "secrets", "-n", NAMESPACE),
        ("create", "pods", "-n", "default"),
    ):
        answer = installed.kubectl("auth", "can-i", *args, f"--as={account}", check=False).strip()
        assert answer == "no", args


def test_the_controller_made_task_rbac_is_owned_by_the_task_cluster_role(installed: Kube) -> None:
    """The seed lesson's first pod needed kdag-task: the controller made its ServiceAccount and RoleBinding
    (they outlive the run, deleted above), owned by the release's task ClusterRole, and no Role."""
    role = installed.get("clusterrole", f"{RELEASE}-task")
    owner = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "name": f"{RELEASE}-task",
        "uid": role["metadata"]["uid"],
    }
    for kind in ("serviceaccount", "rolebinding"):
        made = installed.get(kind, "kdag-task", NAMESPACE)
        assert made["metadata"]["ownerReferences"] == [owner], kind
    binding = installed.get("rolebinding", "kdag-task", NAMESPACE)
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": f"{RELEASE}-task",
    }
    assert not installed.exists("role", "kdag-task", NAMESPACE)


def test_uninstall_leaves_nothing_but_crds(installed: Kube) -> None:
    # The user's objects go first, while the controller still runs to release its finalizers.
    installed.kubectl(
        "delete", "dags,dagruns,taskruns", "--all", "-n", NAMESPACE, "--wait=true", "--timeout=90s"
    )
    installed.uninstall_chart(RELEASE, NAMESPACE)
    wait_for(
        "the release's objects to be deleted", lambda: not installed.release_leftovers(RELEASE, NAMESPACE), 90
    )

    def task_objects_gone() -> bool:
        # The controller made them: the garbage collector removes them once their owner, the task
        # ClusterRole, is gone with the release.
        left = installed.kubectl("get", "serviceaccounts,roles,rolebindings", "-n", NAMESPACE, "-o", "name")
        return "kdag-task" not in left

    wait_for("the controller-made task ServiceAccount and RoleBinding to be collected", task_objects_gone, 90)
    assert not installed.exists("clusterrole", f"{RELEASE}-task")
    assert not installed.exists("validatingwebhookconfiguration", f"{RELEASE}-{NAMESPACE}")
    crds = ("dags.kdag.dev", "dagruns.kdag.dev", "taskruns.kdag.dev", "dagversions.kdag.dev")
    for crd in (*crds, "kopfpeerings.kopf.dev"):
        assert installed.exists("crd", crd), f"Helm keeps CRDs by design; {crd} is gone"
