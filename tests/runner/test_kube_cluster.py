"""The runner's stdlib Kubernetes client and ConfigMap sink against the real API server.

A ServiceAccount with a Role for ConfigMaps in a fresh namespace stands in for ``kdag-task`` (whose
writes the XCom guard limits to task pods); its token and the cluster CA are what a pod would mount.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from kdag_runner import store
from kdag_runner.environment import TaskEnvironment
from kdag_runner.kube import FIELD_MANAGER, STATE_FIELD_MANAGER, ClusterConfig, KubeApiError, KubeClient
from kdag_runner.sinks import ConfigMapSink, SinkError, store_labels
from kdag_runner.xcom import TaskInstance
from kube_helpers import kubectl, kubectl_json

from .runner_support import task_env

pytestmark = pytest.mark.cluster

ROLE = """
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


@pytest.fixture
def pod_config(kubeconfig: str, namespace: str, tmp_path: Path) -> ClusterConfig:
    """What a pod of ``xcom-writer`` would see: the API server address, its token and the cluster CA."""
    kubectl("create", "serviceaccount", "xcom-writer", "-n", namespace, kubeconfig=kubeconfig)
    kubectl("apply", "-n", namespace, "-f", "-", input=ROLE, kubeconfig=kubeconfig)
    token = kubectl("create", "token", "xcom-writer", "-n", namespace, kubeconfig=kubeconfig).strip()
    raw = json.loads(kubectl("config", "view", "--raw", "--minify", "-o", "json", kubeconfig=kubeconfig))
    cluster = raw["clusters"][0]["cluster"]
    if "certificate-authority-data" in cluster:
        ca = base64.b64decode(cluster["certificate-authority-data"])
    else:
        ca = Path(cluster["certificate-authority"]).read_bytes()
    (tmp_path / "token").write_text(token, encoding="utf-8")
    (tmp_path / "ca.crt").write_bytes(ca)
    server = urlsplit(cluster["server"])
    assert server.hostname is not None and server.port is not None
    return ClusterConfig(server.hostname, server.port, tmp_path / "token", tmp_path / "ca.crt")


@pytest.fixture
def owner(kubeconfig: str, namespace: str) -> dict[str, Any]:
    """A live object to own the stores (a DAGRun in production; any object serves the garbage collector)."""
    kubectl("create", "configmap", "run-owner", "-n", namespace, kubeconfig=kubeconfig)
    uid = kubectl_json("get", "configmap", "run-owner", "-n", namespace, kubeconfig=kubeconfig)["metadata"][
        "uid"
    ]
    return {"apiVersion": "v1", "kind": "ConfigMap", "name": "run-owner", "uid": uid}


def read_configmap(kubeconfig: str, namespace: str, name: str) -> dict[str, Any]:
    result: dict[str, Any] = kubectl_json(
        "get", "configmap", name, "-n", namespace, "--show-managed-fields", kubeconfig=kubeconfig
    )
    return result


def test_apply_creates_then_replaces_the_whole_configmap(
    kubeconfig: str, namespace: str, pod_config: ClusterConfig, owner: dict[str, Any]
) -> None:
    client = KubeClient(pod_config)
    labels = {"app.kubernetes.io/managed-by": "kdag", "kdag.dev/task": "extract"}
    first = store.encode({"return_value": {"rows": 3}, "label": "x"}, "extract")
    client.apply_configmap(namespace, "run-1-extract", first, labels, owner)
    created = read_configmap(kubeconfig, namespace, "run-1-extract")
    assert created["data"] == first
    assert created["metadata"]["labels"] == labels
    assert created["metadata"]["ownerReferences"] == [owner]
    managers = {(f["manager"], f["operation"]) for f in created["metadata"]["managedFields"]}
    assert managers == {(FIELD_MANAGER, "Apply")}

    second = store.encode({"label": "y"}, "extract")  # a retry that pushes less: the old keys go
    client.apply_configmap(namespace, "run-1-extract", second, labels, owner)
    assert read_configmap(kubeconfig, namespace, "run-1-extract")["data"] == second

    empty = store.encode({}, "extract")
    client.apply_configmap(namespace, "run-1-extract", empty, labels, owner)
    assert read_configmap(kubeconfig, namespace, "run-1-extract")["data"] == {".types": "{}"}


def test_the_task_state_outlives_every_xcom_apply_of_later_attempts(
    kubeconfig: str, namespace: str, pod_config: ClusterConfig, owner: dict[str, Any]
) -> None:
    """`.state` is applied under its own field manager, so the XCom apply of any attempt (which replaces the
    keys its manager owns) leaves it, and the state manager's apply without it removes it."""
    sink = ConfigMapSink(KubeClient(pod_config), namespace, "run-1-job", {"kdag.dev/task": "job"}, owner)
    sink.write_state('{"job_id":"job-1"}')  # the first try, before it has any XComs: this creates the map
    first = store.encode({"return_value": "partial"}, "job")
    sink.write(first)
    stored = read_configmap(kubeconfig, namespace, "run-1-job")
    assert stored["data"] == {**first, ".state": '{"job_id":"job-1"}'}
    managers = {(f["manager"], f["operation"]) for f in stored["metadata"]["managedFields"]}
    assert managers == {(FIELD_MANAGER, "Apply"), (STATE_FIELD_MANAGER, "Apply")}

    retry = store.encode({"done": True}, "job")  # the retry pushes other keys: the old go, the state stays
    sink.write(retry)
    kept = read_configmap(kubeconfig, namespace, "run-1-job")["data"]
    assert kept == {**retry, ".state": '{"job_id":"job-1"}'}
    assert store.decode(read_configmap(kubeconfig, namespace, "run-1-job")["data"]) == {"done": True}

    sink.write_state(None)  # clear(): the state manager lets go of `.state`
    assert read_configmap(kubeconfig, namespace, "run-1-job")["data"] == retry


def test_the_sink_writes_a_task_store_with_kdag_labels(
    kubeconfig: str, namespace: str, pod_config: ClusterConfig, owner: dict[str, Any], tmp_path: Path
) -> None:
    long_run = "r" * 70
    env = TaskEnvironment.from_env(
        task_env(tmp_path, "hello_task", dag_id="etl_dag", extra={"KDAG_RUN_ID": long_run})
    )
    ti = TaskInstance.from_environment(env)
    ti.xcom_push("execution_time", "2024-03-05")
    ti.push_return_value("hello world")
    ti.context["value"] = "some value"
    ConfigMapSink(KubeClient(pod_config), namespace, "run-hello-task", store_labels(env), owner).write(
        ti.store_data()
    )
    stored = read_configmap(kubeconfig, namespace, "run-hello-task")
    assert store.decode(stored["data"]) == {
        "execution_time": "2024-03-05",
        "return_value": "hello world",
        "__context": {"value": "some value"},
    }
    labels = stored["metadata"]["labels"]
    assert labels["kdag.dev/dag"] == "etl_dag" and labels["kdag.dev/task"] == "hello_task"
    assert len(labels["kdag.dev/dagrun"]) == 63 and labels["kdag.dev/dagrun"].startswith("r" * 57 + "-")


def test_a_refused_write_names_status_and_the_api_message(
    namespace: str, pod_config: ClusterConfig, owner: dict[str, Any]
) -> None:
    with pytest.raises(KubeApiError) as caught:
        KubeClient(pod_config).apply_configmap("default", "not-mine", {".types": "{}"}, {}, None)
    assert caught.value.status == 403
    assert "HTTP 403: Forbidden:" in str(caught.value)
    assert f'User "system:serviceaccount:{namespace}:xcom-writer" cannot patch resource "configmaps"' in str(
        caught.value
    )
    sink = ConfigMapSink(KubeClient(pod_config), "default", "not-mine", {}, None)
    with pytest.raises(
        SinkError, match=r"^cannot write XComs to ConfigMap default/not-mine: PATCH .* HTTP 403"
    ):
        sink.write({".types": "{}"})


def test_the_token_is_read_for_every_request(
    kubeconfig: str, namespace: str, pod_config: ClusterConfig, owner: dict[str, Any]
) -> None:
    good = pod_config.token_path.read_text(encoding="utf-8")
    client = KubeClient(pod_config)
    pod_config.token_path.write_text("not-a-token", encoding="utf-8")
    with pytest.raises(KubeApiError) as caught:
        client.apply_configmap(namespace, "rotated", {".types": "{}"}, {}, owner)
    assert caught.value.status == 401
    pod_config.token_path.write_text(good, encoding="utf-8")  # the kubelet rotated it
    client.apply_configmap(namespace, "rotated", {".types": "{}"}, {}, owner)
    assert read_configmap(kubeconfig, namespace, "rotated")["data"] == {".types": "{}"}


def test_an_unreachable_server_is_status_0(pod_config: ClusterConfig) -> None:
    closed = ClusterConfig("127.0.0.1", 9, pod_config.token_path, pod_config.ca_path)
    with pytest.raises(KubeApiError) as caught:
        KubeClient(closed, timeout=2, retry_seconds=1).request("GET", "/version")
    assert caught.value.status == 0
    assert "cannot reach https://127.0.0.1:9" in str(caught.value)
