"""The runner image in a real pod: ancestors' ConfigMaps in, one ConfigMap apply out, the termination message.

The pod is shaped as the controller renders a Python task's pod (non-root, read-only root, an emptyDir at
/tmp); a ServiceAccount with a Role for ConfigMaps stands in for ``kdag-task``.
"""

from __future__ import annotations

import json
import textwrap
from typing import Any

import pytest
from controller_support import RUNNER_IMAGE, apply_controller_prerequisites
from kdag_runner import store
from kube_helpers import KubectlError, kubectl, kubectl_json, wait_for

pytestmark = pytest.mark.cluster

ROLE = """
apiVersion: v1
kind: ServiceAccount
metadata: {name: xcom-writer}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: xcom-writer}
rules:
- apiGroups: [""]
  resources: [configmaps]
  verbs: [create, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: xcom-writer}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: xcom-writer}
subjects:
- {kind: ServiceAccount, name: xcom-writer}
"""

SOURCE = textwrap.dedent(
    """
    def transform(ti, ds, params):
        rows = ti.xcom_pull(task_ids="extract")
        ti.xcom_push(key="label", value=ti.xcom_pull(task_ids="extract", key="label"))
        return {"total": sum(rows), "ds": ds, "who": params["who"], "inherited": ti.context.get("stage")}
    """
)


def pod_logs(kubeconfig: str, namespace: str, pod: str, container: str) -> str:
    """A container's log for a failure message (the API server may not reach the kubelet)."""
    try:
        return kubectl("logs", pod, "-c", container, "-n", namespace, kubeconfig=kubeconfig)
    except KubectlError as err:
        return f"(no log: {err})"


def task_pod(namespace: str, run: dict[str, Any]) -> dict[str, Any]:
    env = {
        "KDAG_DAG_ID": "etl_dag",
        "KDAG_TASK_ID": "transform",
        "KDAG_RUN_ID": run["metadata"]["name"],
        "KDAG_RUN_UID": run["metadata"]["uid"],
        "KDAG_NAMESPACE": namespace,
        "KDAG_LOGICAL_DATE": "2024-03-05T06:07:08Z",
        "KDAG_ATTEMPT": "1",
        "KDAG_PARAMS": json.dumps({"who": "pod"}),
        "KDAG_CONF": "{}",
        "KDAG_ANCESTORS": json.dumps(["extract"]),
        "KDAG_XCOM_IN": "/kdag/xcom/in",
        "KDAG_XCOM_DIR": "/kdag/xcom/out",
        "KDAG_XCOM_CONFIGMAP": "run-1-transform",
        "KDAG_PYTHON_SOURCE": SOURCE,
        "KDAG_PYTHON_CALLABLE": "transform",
        "HOME": "/tmp",
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "run-1-transform-1", "namespace": namespace},
        "spec": {
            "serviceAccountName": "xcom-writer",
            "restartPolicy": "Never",
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 65532,
                "runAsGroup": 65532,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "task",
                    "image": RUNNER_IMAGE,
                    "imagePullPolicy": "Never",  # no registry: the image is only on the node
                    "command": ["python3", "-m", "kdag_runner", "run"],
                    "env": [{"name": k, "value": v} for k, v in env.items()],
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    "volumeMounts": [
                        {"name": "tmp", "mountPath": "/tmp"},
                        {"name": "out", "mountPath": "/kdag/xcom/out"},
                        {"name": "xcom-extract", "mountPath": "/kdag/xcom/in/extract", "readOnly": True},
                    ],
                }
            ],
            "volumes": [
                {"name": "tmp", "emptyDir": {}},
                {"name": "out", "emptyDir": {}},
                {"name": "xcom-extract", "configMap": {"name": "run-1-extract", "optional": True}},
            ],
        },
    }


def test_a_python_task_pod_pulls_ancestors_and_applies_its_configmap(kubeconfig: str, namespace: str) -> None:
    apply_controller_prerequisites(kubeconfig)
    kubectl("apply", "-n", namespace, "-f", "-", input=ROLE, kubeconfig=kubeconfig)
    run_manifest = {
        "apiVersion": "kdag.dev/v1alpha1",
        "kind": "DAGRun",
        "metadata": {"name": "run-1", "namespace": namespace},
        "spec": {"dagRef": {"name": "absent"}},
    }
    kubectl("create", "-f", "-", input=json.dumps(run_manifest), kubeconfig=kubeconfig)
    run = kubectl_json("get", "dagrun", "run-1", "-n", namespace, kubeconfig=kubeconfig)
    upstream = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "run-1-extract", "namespace": namespace},
        "data": store.encode(
            {"return_value": [1, 2, 3], "label": "rows", "__context": {"stage": "x"}}, "extract"
        ),
    }
    kubectl("create", "-f", "-", input=json.dumps(upstream), kubeconfig=kubeconfig)
    kubectl("create", "-f", "-", input=json.dumps(task_pod(namespace, run)), kubeconfig=kubeconfig)

    def finished() -> dict[str, Any] | None:
        pod: dict[str, Any] = kubectl_json(
            "get", "pod", "run-1-transform-1", "-n", namespace, kubeconfig=kubeconfig
        )
        return pod if pod.get("status", {}).get("phase") in ("Succeeded", "Failed") else None

    pod = wait_for(finished, timeout=180, what="the runner pod to finish")
    assert pod is not None
    if pod["status"]["phase"] != "Succeeded":
        pytest.fail(f"the runner pod failed: {pod_logs(kubeconfig, namespace, 'run-1-transform-1', 'task')}")
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    stored = kubectl_json("get", "configmap", "run-1-transform", "-n", namespace, kubeconfig=kubeconfig)
    assert store.decode(stored["data"]) == {
        "label": "rows",
        "return_value": {"total": 6, "ds": "2024-03-05", "who": "pod", "inherited": "x"},
        "__context": {"stage": "x"},
    }
    assert json.loads(terminated["message"]) == {
        "xcomKeys": ["label", "return_value", "__context"],  # all stored but .types: what is read downstream
        "bytes": store.data_size(stored["data"]),
        "xcomLengths": {"return_value": 4},  # a list's or a dict's length, for mapping over it
    }
    owner = stored["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("DAGRun", "run-1", run["metadata"]["uid"])
    assert stored["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "kdag",
        "kdag.dev/dag": "etl_dag",
        "kdag.dev/dagrun": "run-1",
        "kdag.dev/task": "transform",
    }


def test_the_collector_sidecar_pushes_a_command_tasks_files_on_sigterm(
    kubeconfig: str, namespace: str
) -> None:
    apply_controller_prerequisites(kubeconfig)
    kubectl("apply", "-n", namespace, "-f", "-", input=ROLE, kubeconfig=kubeconfig)
    run_manifest = {
        "apiVersion": "kdag.dev/v1alpha1",
        "kind": "DAGRun",
        "metadata": {"name": "run-2", "namespace": namespace},
        "spec": {"dagRef": {"name": "absent"}},
    }
    kubectl("create", "-f", "-", input=json.dumps(run_manifest), kubeconfig=kubeconfig)
    run = kubectl_json("get", "dagrun", "run-2", "-n", namespace, kubeconfig=kubeconfig)
    pod = task_pod(namespace, run)
    pod["metadata"]["name"] = "run-2-shell-1"
    spec = pod["spec"]
    [runner] = spec["containers"]
    env = [e for e in runner["env"] if not e["name"].startswith("KDAG_PYTHON_")]
    for var in env:
        if var["name"] == "KDAG_TASK_ID":
            var["value"] = "shell"
        if var["name"] == "KDAG_XCOM_CONFIGMAP":
            var["value"] = "run-2-shell"
    sidecar = {**runner, "name": "xcom", "env": env, "restartPolicy": "Always"}
    sidecar["command"] = ["python3", "-m", "kdag_runner", "collect"]
    command = {**runner, "name": "task", "env": env}
    command["command"] = [
        "sh",
        "-c",
        "sleep 2; echo 42 > /kdag/xcom/out/return.json; echo '[\"a\", 1]' > /kdag/xcom/out/pair.json",
    ]
    spec["initContainers"] = [sidecar]
    spec["containers"] = [command]
    kubectl("create", "-f", "-", input=json.dumps(pod), kubeconfig=kubeconfig)

    def finished() -> dict[str, Any] | None:
        found: dict[str, Any] = kubectl_json(
            "get", "pod", "run-2-shell-1", "-n", namespace, kubeconfig=kubeconfig
        )
        statuses = found.get("status", {}).get("initContainerStatuses") or []
        done = statuses and "terminated" in statuses[0].get("state", {})
        return found if done else None

    found = wait_for(finished, timeout=180, what="the collector sidecar to terminate")
    assert found is not None
    terminated = found["status"]["initContainerStatuses"][0]["state"]["terminated"]
    if terminated["exitCode"] != 0:
        pytest.fail(f"the collector failed: {pod_logs(kubeconfig, namespace, 'run-2-shell-1', 'xcom')}")
    stored = kubectl_json("get", "configmap", "run-2-shell", "-n", namespace, kubeconfig=kubeconfig)
    assert store.decode(stored["data"]) == {"pair": ["a", 1], "return_value": 42}
    assert json.loads(terminated["message"]) == {
        "xcomKeys": ["pair", "return_value"],
        "bytes": store.data_size(stored["data"]),
        "xcomLengths": {"pair": 2},
    }
