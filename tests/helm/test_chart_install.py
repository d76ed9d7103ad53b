"""The chart on the real cluster: install with local images, run the seed lesson in-cluster, upgrade it to add
the web UI (reached through `kubectl port-forward`, as docs/ui.md says), uninstall.

The in-cluster controller watches only this test's namespace (rbac.scope=namespace) and its webhook only
intercepts that namespace. The shared host-run controller watches every namespace, so it is stopped meanwhile.
The chart makes no task ServiceAccount here (taskRbac.create=false): the controller makes it, as in any
namespace the chart was not told of, and the uninstall must remove it all the same.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chart_support import CHART, EXAMPLES, Kube, host_controllers_stopped, port_forwarded, wait_for
from controller_support import fetch
from kdag import manifests, names
from test_argocd_health import health
from test_rbac import (
    can_i,
    effective_permissions,
    namespace_scope_cluster_rules,
    namespace_scope_role_rules,
    service_account,
)

NAMESPACE = "kdag-chart-e2e"
RELEASE = "kdag-e2e"
UI = f"{RELEASE}-ui"
UI_PORT = 8080
UI_SELECTOR = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=ui"

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


def finished_phase(kube: Kube, run: str) -> str | None:
    phase = kube.get("dagrun", run, NAMESPACE).get("status", {}).get("phase")
    return phase if phase in ("Succeeded", "Failed") else None


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


def upgrade(kube: Kube, *settings: str) -> None:
    """helm upgrade of the release, keeping its values but `settings`, waiting until it is ready."""
    args = ["upgrade", RELEASE, str(CHART), "--namespace", NAMESPACE, "--reuse-values"]
    args += ["--wait", "--timeout", "120s"]
    for setting in settings:
        args += ["--set", setting]
    try:
        kube.helm(*args)
    except AssertionError as error:
        raise AssertionError(f"{error}\n{ui_pods_report(kube)}") from None


def ui_pods_report(kube: Kube) -> str:
    """What the UI's pods are doing, and the end of their logs: why a rollout did not become ready."""
    report = []
    for pod in kube.items("pods", NAMESPACE, UI_SELECTOR):
        name = pod["metadata"]["name"]
        states = [c.get("state") for c in pod["status"].get("containerStatuses", [])]
        log = kube.kubectl("logs", name, "-n", NAMESPACE, "--tail=20", check=False)
        report.append(f"pod {name}: {json.dumps(states)}\n{log}")
    return "\n".join(report) or "no UI pod"


def test_upgrade_keeps_the_webhook_certificate(installed: Kube) -> None:
    """The upgrade also turns on the UI, which the tests below use (one upgrade, not two)."""
    secret = f"{RELEASE}-webhook-tls"
    before = installed.get("secret", secret, NAMESPACE)["data"]
    upgrade(installed, "ui.enabled=true", f"ui.namespaces={{{NAMESPACE}}}")
    assert installed.get("secret", secret, NAMESPACE)["data"] == before
    config = installed.get("validatingwebhookconfiguration", f"{RELEASE}-{NAMESPACE}")
    assert config["webhooks"][0]["clientConfig"]["caBundle"] == before["ca.crt"]


def ready_ui_pod(kube: Kube) -> str:
    """The name of the UI's pod once it is the only one and Ready (an upgrade's old pod gone)."""

    def only_ready_pod() -> str | None:
        pods = kube.items("pods", NAMESPACE, UI_SELECTOR)
        ready = [
            p
            for p in pods
            if any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
        ]
        return ready[0]["metadata"]["name"] if len(pods) == 1 and ready else None

    try:
        return wait_for("the UI's pod, alone and Ready", only_ready_pod, 60)
    except AssertionError as error:
        raise AssertionError(f"{error}\n{ui_pods_report(kube)}") from None


def page(url: str) -> str:
    status, _, body = fetch(url)
    assert status == 200, f"GET {url}: {status}\n{body[-2000:]}"
    return body


def test_the_ui_pod_shows_dags_runs_and_xcoms_and_may_not_trigger(installed: Kube) -> None:
    """The UI's Deployment runs `kdag ui` from the controller image with its own ServiceAccount: its pages
    show what the controller did, and without ui.allowTrigger neither the UI nor the API server lets that
    account create a run."""
    run = finished_run(installed, SEED_DAG)["metadata"]["name"]
    pod = installed.get("pod", ready_ui_pod(installed), NAMESPACE)
    assert pod["spec"]["serviceAccountName"] == UI
    with port_forwarded(installed, NAMESPACE, f"svc/{UI}", UI_PORT) as url:
        dags = page(f"{url}/")
        assert f'href="/dags/{NAMESPACE}/{SEED_DAG}"' in dags, dags
        # The pod listens on 0.0.0.0: any name a proxy or Ingress gives it is served (only a UI listening
        # on loopback refuses names that are not loopback's, against DNS rebinding).
        status, _, named = fetch(f"{url}/", headers={"Host": f"{UI}.{NAMESPACE}.svc:{UI_PORT}"})
        assert status == 200 and f'href="/dags/{NAMESPACE}/{SEED_DAG}"' in named, (status, named)
        assert f'href="/runs/{NAMESPACE}/{run}"' in dags  # the run's square
        run_page = page(f"{url}/runs/{NAMESPACE}/{run}")
        assert re.search(r'id="run-phase">\s*<span class="phase st-Succeeded"', run_page), run_page
        # XComs: read with the account's `get` on the run's ConfigMap.
        hello = page(f"{url}/runs/{NAMESPACE}/{run}/tasks/hello_task")
        xcom = re.search(r'data-key="return_value">.*?<pre class="value">(.*?)</pre>', hello, re.S)
        assert xcom and xcom.group(1) == "hello world", hello
        dag = page(f"{url}/dags/{NAMESPACE}/{SEED_DAG}")
        assert 'id="trigger-form"' not in dag and "Triggering is disabled in this kdag ui." in dag
        status, _, refused = fetch(f"{url}/dags/{NAMESPACE}/{SEED_DAG}/runs", {"csrf": ""})
        assert status == 403 and "triggering is disabled" in refused, (status, refused)
    # Nor could the UI's account create one itself: the API server refuses it.
    owner = installed.get("dag", SEED_DAG, NAMESPACE)["metadata"]["uid"]
    manifest = manifests.dagrun_manifest(SEED_DAG, names.manual_run_name(SEED_DAG), owner_uid=owner)
    account = service_account(NAMESPACE, UI)
    with pytest.raises(AssertionError, match="forbidden"):
        installed.kubectl("create", "-n", NAMESPACE, "-f", "-", f"--as={account}", stdin=json.dumps(manifest))


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


def test_the_ui_pod_triggers_a_run_with_allow_trigger(installed: Kube) -> None:
    """ui.allowTrigger=true: the form is there, and its POST creates a run as the UI's account."""
    upgrade(installed, "ui.allowTrigger=true")
    ready_ui_pod(installed)
    with port_forwarded(installed, NAMESPACE, f"svc/{UI}", UI_PORT) as url:
        dag = page(f"{url}/dags/{NAMESPACE}/{SEED_DAG}")
        token = re.search(r'name="csrf" value="([^"]+)"', dag)
        assert token, dag
        status, location, body = fetch(f"{url}/dags/{NAMESPACE}/{SEED_DAG}/runs", {"csrf": token.group(1)})
        assert status == 303 and location.startswith(f"/runs/{NAMESPACE}/{SEED_DAG}-manual-"), (status, body)
        run = location.rsplit("/", 1)[1]
        assert run in page(f"{url}{location}")
    created = installed.get("dagrun", run, NAMESPACE)
    assert created["metadata"]["ownerReferences"][0]["name"] == SEED_DAG
    # It runs as any run does (and leaves the controller idle for the uninstall below).
    finished = wait_for(f"run {run} to finish", lambda: finished_phase(installed, run), 120)
    assert finished == "Succeeded"
    assert can_i(installed, service_account(NAMESPACE, UI), "create", "dagruns.kdag.dev", "-n", NAMESPACE)


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
