"""The XCom write guard on a real cluster: a task token writes its own XCom ConfigMap and nothing else.

The CRDs are applied here too (server-side dry run first), so the API server's CEL cost check of every
`x-kubernetes-validations` rule is exercised against the generated files.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from kdag import names, policy
from kdag.api.models import DAGSpec
from kdag.render import RunInfo, render_task_pod
from kdag.settings import ControllerSettings
from kube_helpers import (
    IMAGE_PULL_POLICY,
    RUNNER_IMAGE,
    KubectlError,
    create_namespace,
    delete_namespace,
    kubectl,
    kubectl_json,
    wait_for,
)

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
RUN = "lesson-0a1b2c3d"

# Runs in the task pod: one server-side apply per ConfigMap, exactly as the runner writes XComs.
APPLY_SCRIPT = """
import json, os, ssl, sys, urllib.error, urllib.request
sa = "/var/run/secrets/kubernetes.io/serviceaccount"
base = "https://%s:%s" % (os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"])
token = open(sa + "/token").read()
namespace = open(sa + "/namespace").read()
context = ssl.create_default_context(cafile=sa + "/ca.crt")
def apply(name):
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace},
            "data": {"return_value": "hello world"}}
    request = urllib.request.Request(
        "%s/api/v1/namespaces/%s/configmaps/%s?fieldManager=kdag-runner&force=true" % (base, namespace, name),
        data=json.dumps(body).encode(), method="PATCH",
        headers={"Authorization": "Bearer " + token, "Content-Type": "application/apply-patch+yaml"})
    try:
        with urllib.request.urlopen(request, context=context, timeout=20) as response:
            return [response.status, ""]
    except urllib.error.HTTPError as error:
        return [error.code, json.loads(error.read().decode()).get("message", "")]
print(json.dumps({"own": apply(os.environ["KDAG_XCOM_CONFIGMAP"]), "other": apply(sys.argv[1])}))
"""


def apply_objects(kubeconfig: str, objects: list[dict[str, Any]], *extra: str) -> str:
    return kubectl("apply", "-f", "-", *extra, kubeconfig=kubeconfig, input=yaml.safe_dump_all(objects))


def configmap(namespace: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"return_value": "hello world"},
    }


def token_kubeconfig(admin: str, token: str, path: Path) -> str:
    """A kubeconfig for the same cluster that authenticates with `token` only."""
    view = kubectl_json("config", "view", "--raw", "--minify", "--flatten", kubeconfig=admin)
    cluster = view["clusters"][0]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": "task", "user": {"token": token}}],
        "contexts": [{"name": "task", "context": {"cluster": cluster["name"], "user": "task"}}],
        "current-context": "task",
    }
    path.write_text(yaml.safe_dump(config))
    return str(path)


def holder_pod(namespace: str, name: str) -> dict[str, Any]:
    """A pod that only exists so a token can be bound to it."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "serviceAccountName": names.TASK_SERVICE_ACCOUNT,
            "automountServiceAccountToken": False,
            "restartPolicy": "Never",
            "securityContext": {"runAsNonRoot": True, "runAsUser": 65532},
            "containers": [
                {
                    "name": "hold",
                    "image": RUNNER_IMAGE,
                    "imagePullPolicy": IMAGE_PULL_POLICY,
                    "command": ["python3", "-c", "import time; time.sleep(3600)"],
                }
            ],
        },
    }


def bound_token(kubeconfig: str, namespace: str, pod: str) -> str:
    """A kdag-task token bound to `pod`, as the kubelet projects it into that pod."""
    uid = kubectl("get", "pod", pod, "-n", namespace, "-o", "jsonpath={.metadata.uid}", kubeconfig=kubeconfig)
    return kubectl(
        "create",
        "token",
        names.TASK_SERVICE_ACCOUNT,
        "-n",
        namespace,
        "--bound-object-kind=Pod",
        f"--bound-object-name={pod}",
        f"--bound-object-uid={uid}",
        kubeconfig=kubeconfig,
    ).strip()


def server_side_apply(kubeconfig: str, namespace: str, name: str) -> str:
    return kubectl(
        "apply",
        "--server-side",
        "--field-manager=kdag-runner",
        "--force-conflicts",
        "-f",
        "-",
        kubeconfig=kubeconfig,
        input=yaml.safe_dump(configmap(namespace, name)),
    )


def denied(kubeconfig: str, namespace: str, name: str) -> str:
    """The refusal message of a write, or empty when it was allowed."""
    try:
        server_side_apply(kubeconfig, namespace, name)
    except KubectlError as error:
        return error.stderr
    return ""


@pytest.fixture(scope="module")
def guard(kubeconfig: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The guard applied and enforced (probed with a bound token in a scratch namespace)."""
    kubectl("apply", "-f", str(ROOT / "deploy" / "xcom-guard.yaml"), kubeconfig=kubeconfig)
    scratch = create_namespace(kubeconfig, "kdag-guard-probe")
    try:
        apply_objects(kubeconfig, policy.task_rbac(scratch))
        apply_objects(kubeconfig, [holder_pod(scratch, "probe-1")])
        token = bound_token(kubeconfig, scratch, "probe-1")
        config = token_kubeconfig(kubeconfig, token, tmp_path_factory.mktemp("probe") / "kubeconfig")
        wait_for(lambda: denied(config, scratch, "not-the-probe"), timeout=60, what="the XCom guard to deny")
        yield
    finally:
        delete_namespace(kubeconfig, scratch)


def test_crds_pass_the_api_servers_schema_and_cel_cost_checks(kubeconfig: str) -> None:
    kubectl("apply", "--dry-run=server", "-f", str(ROOT / "crds"), kubeconfig=kubeconfig)
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"), kubeconfig=kubeconfig)
    for plural in ("dags", "dagruns", "taskruns"):
        kubectl("wait", "--for=condition=Established", f"crd/{plural}.kdag.dev", kubeconfig=kubeconfig)


def test_bound_token_writes_only_its_own_configmap(
    kubeconfig: str, namespace: str, guard: None, tmp_path: Path
) -> None:
    apply_objects(kubeconfig, policy.task_rbac(namespace))
    pod = names.pod_name(RUN, "push_task", 1)
    apply_objects(kubeconfig, [holder_pod(namespace, pod)])
    config = token_kubeconfig(kubeconfig, bound_token(kubeconfig, namespace, pod), tmp_path / "kubeconfig")

    own = names.xcom_configmap_name(RUN, "push_task")
    server_side_apply(config, namespace, own)
    server_side_apply(config, namespace, own)  # a retry replaces its own XComs
    data = kubectl_json("get", "configmap", own, "-n", namespace, kubeconfig=kubeconfig)["data"]
    assert data == {"return_value": "hello world"}

    other = names.xcom_configmap_name(RUN, "pull_task")
    message = denied(config, namespace, other)
    assert "Forbidden" in message
    assert f"pod {pod} may not write ConfigMap {other}" in message
    # A name that only starts like the pod's ConfigMap is refused too.
    assert "Forbidden" in denied(config, namespace, f"{own}-1")
    # The admin is not a task: the guard leaves other writers alone.
    server_side_apply(kubeconfig, namespace, other)


def test_token_bound_to_no_pod_writes_nothing(
    kubeconfig: str, namespace: str, guard: None, tmp_path: Path
) -> None:
    apply_objects(kubeconfig, policy.task_rbac(namespace))
    token = kubectl(
        "create", "token", names.TASK_SERVICE_ACCOUNT, "-n", namespace, kubeconfig=kubeconfig
    ).strip()
    config = token_kubeconfig(kubeconfig, token, tmp_path / "kubeconfig")
    message = denied(config, namespace, names.xcom_configmap_name(RUN, "push_task"))
    assert "Forbidden" in message
    assert "pod (none) may not write" in message


def test_task_pod_token_gets_403_for_another_tasks_configmap(
    kubeconfig: str, namespace: str, guard: None
) -> None:
    apply_objects(kubeconfig, policy.task_rbac(namespace))
    dag = DAGSpec.model_validate(
        {
            "tasks": [
                {"id": "push_task", "python": {"source": "def f(**k):\n    pass\n", "callable": "f"}},
                {"id": "pull_task", "upstream": ["push_task"], "command": ["true"]},
            ]
        }
    )
    run = RunInfo(
        namespace=namespace,
        dag_name="lesson",
        name=RUN,
        uid="0",
        logical_date=datetime(2026, 1, 1, tzinfo=UTC),
        dag=dag,
    )
    settings = ControllerSettings(runner_image=RUNNER_IMAGE, image_pull_policy=IMAGE_PULL_POLICY)
    pod = render_task_pod(
        run=run,
        task=dag.resolved_task("push_task", RUNNER_IMAGE),
        taskrun_name=names.taskrun_name(RUN, "push_task"),
        taskrun_uid="0",
        attempt=1,
        settings=settings,
    )
    # No TaskRun exists here to own the pod; the rendered pod is otherwise unchanged.
    del pod["metadata"]["ownerReferences"]
    other = names.xcom_configmap_name(RUN, "pull_task")
    pod["spec"]["containers"][0]["command"] = ["python3", "-c", APPLY_SCRIPT, other]
    apply_objects(kubeconfig, [pod])
    name = pod["metadata"]["name"]

    def finished() -> str:
        phase = kubectl(
            "get", "pod", name, "-n", namespace, "-o", "jsonpath={.status.phase}", kubeconfig=kubeconfig
        )
        return phase if phase in ("Succeeded", "Failed") else ""

    try:
        phase = wait_for(finished, timeout=180, what=f"pod {name} to finish")
    except TimeoutError:
        described = kubectl("describe", "pod", name, "-n", namespace, kubeconfig=kubeconfig)
        raise AssertionError(f"pod {name} did not finish:\n{described[-3000:]}") from None
    logs = kubectl("logs", name, "-n", namespace, kubeconfig=kubeconfig)
    assert phase == "Succeeded", logs
    result = json.loads(logs.strip().splitlines()[-1])
    assert result["own"][0] in (200, 201), result
    assert result["other"][0] == 403, result
    assert f"pod {name} may not write ConfigMap {other}" in result["other"][1]
