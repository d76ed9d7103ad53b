"""The test cluster does what kdag relies on: pods from local images, ConfigMaps as env and files,
ServiceAccount tokens checked by RBAC and bound to the pod, owner cascades; `down` leaves nothing behind."""

from __future__ import annotations

import http.server
import json
import os
import re
import ssl
import subprocess
import textwrap
import threading
from base64 import b64encode
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kube_helpers
import pytest
from kube_helpers import (
    CLUSTER_SCRIPTS,
    CLUSTER_STATE_DIR,
    IMAGE_PULL_POLICY,
    RUNNER_IMAGE,
    KubectlError,
    kubectl,
    kubectl_json,
    wait_for,
)

pytestmark = pytest.mark.cluster


def apply(kubeconfig: str, namespace: str, *manifests: dict[str, Any]) -> None:
    document = {"apiVersion": "v1", "kind": "List", "items": list(manifests)}
    kubectl("apply", "-n", namespace, "-f", "-", kubeconfig=kubeconfig, input=json.dumps(document))


def python_pod(name: str, script: str, **spec: Any) -> dict[str, Any]:
    """A pod that runs `script` with the runner image's python3 once."""
    container: dict[str, Any] = {
        "name": "main",
        "image": RUNNER_IMAGE,
        "imagePullPolicy": IMAGE_PULL_POLICY,
        "command": ["python3", "-c", textwrap.dedent(script)],
    }
    container.update(spec.pop("container", {}))
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"restartPolicy": "Never", "containers": [container], **spec},
    }


def finished_pod_logs(kubeconfig: str, namespace: str, name: str, timeout: float = 120) -> str:
    """Wait until the pod ends; return its logs, failing with them when it did not succeed."""

    def phase() -> str | None:
        value = kubectl(
            "get", "pod", name, "-n", namespace, "-o", "jsonpath={.status.phase}", kubeconfig=kubeconfig
        )
        return value if value in ("Succeeded", "Failed") else None

    final_phase = wait_for(phase, timeout=timeout, what=f"pod {namespace}/{name} to finish")
    logs = kubectl("logs", name, "-n", namespace, kubeconfig=kubeconfig)
    assert final_phase == "Succeeded", f"pod {name} ended {final_phase}; logs:\n{logs}"
    return logs


def test_node_is_ready(kubeconfig: str) -> None:
    # One real node; KWOK's fake ones (`up --kwok`, label type=kwok) may come and go beside it.
    nodes = kubectl_json("get", "nodes", "-l", "type!=kwok", kubeconfig=kubeconfig)["items"]
    assert len(nodes) == 1
    conditions = {condition["type"]: condition["status"] for condition in nodes[0]["status"]["conditions"]}
    assert conditions["Ready"] == "True"
    assert nodes[0]["status"]["nodeInfo"]["kubeletVersion"].startswith("v1.32.")


def test_runner_image_pod_runs_to_completion(kubeconfig: str, namespace: str) -> None:
    apply(
        kubeconfig,
        namespace,
        python_pod("hello", "import kdag_runner, sys; print('ran', sys.version_info[:2])"),
    )
    logs = finished_pod_logs(kubeconfig, namespace, "hello")
    assert logs.startswith("ran (3, ")


def test_pod_sees_configmap_as_env_and_file(kubeconfig: str, namespace: str) -> None:
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "greetings"},
        "data": {"greeting": "hello from a ConfigMap"},
    }
    script = """
        import os, pathlib
        print("env:", os.environ["GREETING"])
        print("file:", pathlib.Path("/etc/greetings/greeting").read_text())
    """
    pod = python_pod(
        "reader",
        script,
        container={
            "env": [
                {
                    "name": "GREETING",
                    "valueFrom": {"configMapKeyRef": {"name": "greetings", "key": "greeting"}},
                }
            ],
            "volumeMounts": [{"name": "greetings", "mountPath": "/etc/greetings"}],
        },
        volumes=[{"name": "greetings", "configMap": {"name": "greetings"}}],
    )
    apply(kubeconfig, namespace, config_map, pod)
    logs = finished_pod_logs(kubeconfig, namespace, "reader")
    assert "env: hello from a ConfigMap" in logs
    assert "file: hello from a ConfigMap" in logs


# Runs in the pod: PATCHes two ConfigMaps with its own token, and asks who it is (SelfSubjectReview).
IN_CLUSTER_CLIENT = """
    import json, os, ssl, urllib.request, urllib.error
    account = "/var/run/secrets/kubernetes.io/serviceaccount"
    token = open(f"{account}/token").read()
    namespace = open(f"{account}/namespace").read()
    context = ssl.create_default_context(cafile=f"{account}/ca.crt")
    server = f"https://{os.environ['KUBERNETES_SERVICE_HOST']}:{os.environ['KUBERNETES_SERVICE_PORT']}"

    def call(method, path, body, content_type):
        headers = {"Authorization": f"Bearer {token}", "Content-Type": content_type}
        request = urllib.request.Request(server + path, json.dumps(body).encode(), headers, method=method)
        try:
            with urllib.request.urlopen(request, context=context, timeout=10) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            return error.code, json.load(error)

    for name in ("allowed", "forbidden"):
        status, _ = call("PATCH", f"/api/v1/namespaces/{namespace}/configmaps/{name}",
                         {"data": {"written": "by-pod"}}, "application/merge-patch+json")
        print(f"patch {name}: {status}")
    status, review = call("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                          {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
                          "application/json")
    print("review:", status, json.dumps(review["status"]["userInfo"]))
"""


def test_pod_token_is_checked_by_rbac_and_names_the_pod(kubeconfig: str, namespace: str) -> None:
    manifests: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "writer"}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "writer"},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["configmaps"],
                    "resourceNames": ["allowed"],
                    "verbs": ["get", "patch"],
                }
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "writer"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "writer"},
            "subjects": [{"kind": "ServiceAccount", "name": "writer", "namespace": namespace}],
        },
        *(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"written": "no"}}
            for name in ("allowed", "forbidden")
        ),
        python_pod("writer", IN_CLUSTER_CLIENT, serviceAccountName="writer"),
    ]
    apply(kubeconfig, namespace, *manifests)
    logs = finished_pod_logs(kubeconfig, namespace, "writer")
    assert "patch allowed: 200" in logs
    assert "patch forbidden: 403" in logs

    def written(name: str) -> str:
        return str(
            kubectl_json("get", "configmap", name, "-n", namespace, kubeconfig=kubeconfig)["data"]["written"]
        )

    assert written("allowed") == "by-pod"
    assert written("forbidden") == "no"
    review = re.search(r"^review: 201 (.*)$", logs, re.MULTILINE)
    assert review is not None, logs
    user_info = json.loads(review.group(1))
    assert user_info["username"] == f"system:serviceaccount:{namespace}:writer"
    assert user_info["extra"]["authentication.kubernetes.io/pod-name"] == ["writer"]


def test_pods_have_no_route_off_the_machine(kubeconfig: str, namespace: str) -> None:
    """Pods route only to the Service range: an outside address (TEST-NET-1) is unreachable in the pod."""
    script = """
        import errno, socket
        try:
            socket.create_connection(("192.0.2.1", 80), timeout=5)
            print("outside: connected")
        except OSError as error:
            print("outside:", errno.errorcode.get(error.errno, error))
    """
    apply(kubeconfig, namespace, python_pod("isolated", script))
    logs = finished_pod_logs(kubeconfig, namespace, "isolated")
    assert "outside: ENETUNREACH" in logs


def test_deleting_an_owner_deletes_the_pods_it_owns(kubeconfig: str, namespace: str) -> None:
    apply(kubeconfig, namespace, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner"}})
    owner_uid = kubectl(
        "get", "configmap", "owner", "-n", namespace, "-o", "jsonpath={.metadata.uid}", kubeconfig=kubeconfig
    )
    pod = python_pod("owned", "import time; time.sleep(3600)")
    pod["metadata"]["ownerReferences"] = [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner_uid}
    ]
    apply(kubeconfig, namespace, pod)
    kubectl("delete", "configmap", "owner", "-n", namespace, "--wait=false", kubeconfig=kubeconfig)

    def pod_gone() -> bool:
        try:
            kubectl("get", "pod", "owned", "-n", namespace, kubeconfig=kubeconfig)
        except KubectlError as error:
            return "NotFound" in error.stderr
        return False

    wait_for(pod_gone, timeout=90, what="the garbage collector to delete the owned pod")


def test_native_sidecar_runs_beside_the_main_container(kubeconfig: str, namespace: str) -> None:
    """An init container with restartPolicy Always starts first, keeps running, and does not hold the pod."""
    sidecar = {
        "name": "sidecar",
        "image": RUNNER_IMAGE,
        "imagePullPolicy": IMAGE_PULL_POLICY,
        "restartPolicy": "Always",
        "command": [
            "python3",
            "-c",
            # As PID 1 it must handle SIGTERM itself, or the kubelet waits out the grace period to stop it.
            "import pathlib, signal, sys, time; signal.signal(signal.SIGTERM, lambda *_: sys.exit(0)); "
            "pathlib.Path('/shared/ready').write_text('yes'); time.sleep(3600)",
        ],
        "volumeMounts": [{"name": "shared", "mountPath": "/shared"}],
    }
    pod = python_pod(
        "with-sidecar",
        "import pathlib; print('sidecar wrote', pathlib.Path('/shared/ready').read_text())",
        container={"volumeMounts": [{"name": "shared", "mountPath": "/shared"}]},
        initContainers=[sidecar],
        volumes=[{"name": "shared", "emptyDir": {}}],
    )
    apply(kubeconfig, namespace, pod)
    logs = finished_pod_logs(kubeconfig, namespace, "with-sidecar")
    assert "sidecar wrote yes" in logs


def test_validating_admission_policy_refuses(kubeconfig: str, namespace: str) -> None:
    policy_name = f"{namespace}-no-forbidden"
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": policy_name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["configmaps"],
                    }
                ]
            },
            "validations": [
                {"expression": "object.metadata.name != 'forbidden'", "message": "name is forbidden"}
            ],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": policy_name},
        "spec": {
            "policyName": policy_name,
            "validationActions": ["Deny"],
            "matchResources": {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
            },
        },
    }
    kubectl(
        "apply",
        "-f",
        "-",
        kubeconfig=kubeconfig,
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [policy, binding]}),
    )
    try:

        def refused() -> bool:
            try:
                kubectl("create", "configmap", "forbidden", "-n", namespace, kubeconfig=kubeconfig)
            except KubectlError as error:
                return "name is forbidden" in error.stderr
            kubectl("delete", "configmap", "forbidden", "-n", namespace, kubeconfig=kubeconfig)
            return False

        # The policy takes effect once the API server's informer has seen it and its binding.
        wait_for(refused, timeout=60, what="the ValidatingAdmissionPolicy to refuse a ConfigMap")
        kubectl("create", "configmap", "allowed", "-n", namespace, kubeconfig=kubeconfig)
    finally:
        kubectl(
            "delete",
            "validatingadmissionpolicybinding,validatingadmissionpolicy",
            policy_name,
            "--ignore-not-found",
            kubeconfig=kubeconfig,
        )


class _RefusingWebhook(http.server.BaseHTTPRequestHandler):
    """Answers every AdmissionReview with a refusal that names this webhook."""

    def do_POST(self) -> None:
        review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        answer = {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": {
                "uid": review["request"]["uid"],
                "allowed": False,
                "status": {"code": 403, "message": "refused by the webhook on 127.0.0.1"},
            },
        }
        body = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def webhook_on_loopback(tmp_path: Path) -> Iterator[tuple[int, bytes]]:
    """An HTTPS admission webhook served by this process on 127.0.0.1; yields its port and CA bundle."""
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(tmp_path / "tls.key"),
            "-out",
            str(tmp_path / "tls.crt"),
        ],
        check=True,
        capture_output=True,
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RefusingWebhook)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], (tmp_path / "tls.crt").read_bytes()
    finally:
        server.shutdown()
        server.server_close()


def test_api_server_calls_a_webhook_on_the_host_loopback(
    kubeconfig: str, namespace: str, webhook_on_loopback: tuple[int, bytes]
) -> None:
    port, ca_bundle = webhook_on_loopback
    name = f"{namespace}-loopback"
    webhook_configuration = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": "loopback.kdag.dev",
                "clientConfig": {
                    "url": f"https://127.0.0.1:{port}/validate",
                    "caBundle": b64encode(ca_bundle).decode(),
                },
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["configmaps"],
                    }
                ],
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "failurePolicy": "Fail",
                "timeoutSeconds": 5,
            }
        ],
    }
    kubectl("apply", "-f", "-", kubeconfig=kubeconfig, input=json.dumps(webhook_configuration))
    try:

        def refused() -> bool:
            try:
                kubectl("create", "configmap", "refused", "-n", namespace, kubeconfig=kubeconfig)
            except KubectlError as error:
                return "refused by the webhook on 127.0.0.1" in error.stderr
            kubectl("delete", "configmap", "refused", "-n", namespace, kubeconfig=kubeconfig)
            return False

        wait_for(refused, timeout=60, what="the API server to call the webhook on 127.0.0.1")
    finally:
        kubectl("delete", "validatingwebhookconfiguration", name, "--ignore-not-found", kubeconfig=kubeconfig)


def test_up_is_idempotent_and_prints_kubeconfig_last(kubeconfig: str) -> None:
    if Path(kubeconfig).resolve() != (CLUSTER_STATE_DIR / "admin.kubeconfig").resolve():
        pytest.skip("the session's cluster is not the one tests/cluster/up makes")
    completed = subprocess.run(
        [str(CLUSTER_SCRIPTS / "up")], capture_output=True, text=True, check=True, timeout=600
    )
    lines = completed.stdout.strip().splitlines()
    assert lines[-1] == kubeconfig
    assert any(re.match(r"up: cluster ready in \d+ s \((cold|warm) start", line) for line in lines), lines


def _cluster_pids() -> dict[str, int]:
    pids = {}
    for pid_file in (CLUSTER_STATE_DIR / "pids").glob("*.pid"):
        pids[pid_file.stem] = int(pid_file.read_text())
    return pids


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _processes_naming(text: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            command = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in command:
            found.append(f"{cmdline.parent.name}: {command}")
    return found


def _listening_ports() -> set[int]:
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


@pytest.fixture
def sole_user_of_cluster() -> Iterator[None]:
    """Wait until no other test session uses the local cluster: down wipes it (`kube_helpers`' queue)."""
    with kube_helpers.sole_user_of_cluster():
        yield


@pytest.mark.cluster_lifecycle
@pytest.mark.timeout(2400)
def test_down_stops_everything_then_up_starts_again(kubeconfig: str, sole_user_of_cluster: None) -> None:
    """Runs last in the session (see conftest): it stops the shared cluster and starts it again."""
    if Path(kubeconfig).resolve() != (CLUSTER_STATE_DIR / "admin.kubeconfig").resolve():
        pytest.skip("the session's cluster is not the one tests/cluster/up makes")
    pids = _cluster_pids()
    assert {"etcd", "kube-apiserver", "kubelet", "containerd", "kube-proxy"} <= set(pids)
    assert 6443 in _listening_ports()

    subprocess.run([str(CLUSTER_SCRIPTS / "down")], capture_output=True, text=True, check=True, timeout=300)

    assert [name for name, pid in pids.items() if _alive(pid)] == []
    containerd_socket = str(CLUSTER_STATE_DIR / "containerd" / "containerd.sock")
    assert _processes_naming(containerd_socket) == []  # no shim outlived containerd
    assert _listening_ports() & {6443, 2379, 2380, 10250, 10256, 10257, 10259} == set()
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    assert "kdag0" not in links
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=True).stdout
    assert "kdag_guard" not in tables
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    assert "KUBE-" not in rules

    completed = subprocess.run(
        [str(CLUSTER_SCRIPTS / "up")], capture_output=True, text=True, check=True, timeout=900
    )
    print(*completed.stdout.strip().splitlines()[:-1], sep="\n")
    assert completed.stdout.strip().splitlines()[-1] == kubeconfig
    nodes = kubectl_json("get", "nodes", kubeconfig=kubeconfig)["items"]
    assert [node["metadata"]["name"] for node in nodes] == ["kdag-node"]
