"""kdag.kube: the kind table, errors by status, the retry decision, and every call against a fake API server.

The fake is a loopback HTTP server answering from a list, so the requests the generated kubernetes_asyncio
methods send (method, path, query, content type, body) are checked without a cluster; the last test does
the same calls against the real one.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from kdag import kube
from kdag.kube import (
    CLUSTERROLE,
    CONFIGMAP,
    DAG,
    DAGRUN,
    DAGVERSION,
    EVENT,
    POD,
    ROLE,
    ROLEBINDING,
    SERVICEACCOUNT,
    TASKRUN,
    Conflict,
    Forbidden,
    Invalid,
    Kind,
    KubeApi,
    KubeApiError,
    NotFound,
    SyncKubeApi,
    Unreachable,
    kind_of,
    method_name,
    retry_delay,
)
from kdag_runner import kube as runner_kube
from prometheus_client import REGISTRY

ALL_KINDS = (DAG, DAGRUN, TASKRUN, DAGVERSION, POD, CONFIGMAP, SERVICEACCOUNT, ROLE, ROLEBINDING, EVENT)


def test_every_kind_is_found_by_its_api_version_and_kind() -> None:
    for kind in ALL_KINDS:
        assert kind_of({"apiVersion": kind.api_version, "kind": kind.kind}) is kind
    assert (TASKRUN.group, TASKRUN.version, TASKRUN.plural) == ("kdag.dev", "v1alpha1", "taskruns")
    assert (DAGVERSION.kind, DAGVERSION.plural) == ("DAGVersion", "dagversions")
    assert (POD.group, POD.version) == ("", "v1")
    assert ROLEBINDING.api_version == "rbac.authorization.k8s.io/v1" and ROLEBINDING.plural == "rolebindings"
    with pytest.raises(ValueError, match="apps/v1/Deployment"):
        kind_of({"apiVersion": "apps/v1", "kind": "Deployment"})


def test_each_kind_has_its_generated_methods() -> None:
    assert method_name(POD, "read") == "read_namespaced_pod"
    assert method_name(POD, "read", "log") == "read_namespaced_pod_log"
    assert method_name(CONFIGMAP, "create") == "create_namespaced_config_map"
    assert method_name(ROLEBINDING, "delete") == "delete_namespaced_role_binding"
    assert method_name(DAGRUN, "read") == "get_namespaced_custom_object"
    assert method_name(TASKRUN, "patch", "status") == "patch_namespaced_custom_object_status"
    from kubernetes_asyncio import client

    apis = (client.CoreV1Api, client.RbacAuthorizationV1Api, client.CustomObjectsApi)
    for kind in ALL_KINDS:
        for verb in ("read", "list", "create", "delete", "patch"):
            assert any(hasattr(api, method_name(kind, verb)) for api in apis), (kind, verb)


@pytest.mark.parametrize(
    ("status", "cls"),
    [(0, Unreachable), (403, Forbidden), (404, NotFound), (409, Conflict), (422, Invalid),
     (500, KubeApiError)],
)
def test_errors_are_the_runners_classes(status: int, cls: type[KubeApiError]) -> None:
    assert kube.KubeApiError is runner_kube.KubeApiError and kube.NotFound is runner_kube.NotFound
    assert type(runner_kube.error_for(status, "m")) is cls


def test_retry_decision() -> None:
    assert [retry_delay(503, attempt) for attempt in (1, 2, 3, 4)] == [0.2, 0.4, 0.8, None]
    assert retry_delay(0, 1) == 0.2 and retry_delay(429, 2) == 0.4
    assert retry_delay(429, 1, "3") == 3.0
    assert retry_delay(503, 1, "3600") == kube.MAX_RETRY_AFTER
    assert retry_delay(503, 1, "Wed, 21 Oct 2026 07:28:00 GMT") == 0.2  # a date: the usual back-off
    for status in (200, 400, 403, 404, 409, 422):
        assert retry_delay(status, 1) is None


class FakeApiServer:
    """Answers each request with the next reply (status, body, headers); records what it was sent."""

    def __init__(self) -> None:
        self.replies: list[tuple[int, Any, dict[str, str]]] = []
        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                url = urlsplit(self.path)
                server.requests.append(
                    {
                        "method": self.command,
                        "path": url.path,
                        "query": {k: v[0] for k, v in parse_qs(url.query).items()},
                        "content_type": self.headers.get("Content-Type"),
                        "body": json.loads(self.rfile.read(length)) if length else None,
                    }
                )
                status, body, headers = server.replies.pop(0)
                if isinstance(body, list):  # a watch: one JSON event a line, then the end of the stream
                    payload = "".join(json.dumps(event) + "\n" for event in body).encode()
                else:
                    payload = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_POST = do_PATCH = do_DELETE = do_GET

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def reply(self, status: int, body: Any = None, **headers: str) -> None:
        self.replies.append((status, {} if body is None else body, headers))

    def kubeconfig(self, directory: Path, namespace: str | None = "team-a") -> str:
        context: dict[str, str] = {"cluster": "fake", "user": "u"}
        if namespace:
            context["namespace"] = namespace
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": f"http://127.0.0.1:{self.httpd.server_port}"}}],
            "users": [{"name": "u", "user": {"token": "t"}}],
            "contexts": [{"name": "c", "context": context}],
            "current-context": "c",
        }
        path = directory / "kubeconfig"
        path.write_text(json.dumps(config), encoding="utf-8")
        return str(path)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def status(code: int, message: str) -> dict[str, Any]:
    return {"kind": "Status", "status": "Failure", "message": message, "code": code}


@pytest.fixture
def fake() -> Iterator[FakeApiServer]:
    server = FakeApiServer()
    yield server
    server.stop()


@pytest.fixture
def api(fake: FakeApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SyncKubeApi]:
    monkeypatch.setattr(kube, "FIRST_BACKOFF", 0.001)
    with SyncKubeApi(fake.kubeconfig(tmp_path)) as client:
        yield client


def counted(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_list_follows_the_api_servers_pages(fake: FakeApiServer, api: SyncKubeApi) -> None:
    fake.reply(200, {"metadata": {"continue": "page-2"}, "items": [{"metadata": {"name": "a"}}]})
    fake.reply(200, {"metadata": {"continue": ""}, "items": [{"metadata": {"name": "b"}}]})
    assert [p["metadata"]["name"] for p in api.list(POD, "ns")] == ["a", "b"]
    assert [r["query"] for r in fake.requests] == [{"limit": "500"}, {"limit": "500", "continue": "page-2"}]


def test_namespace_comes_from_the_context(fake: FakeApiServer, tmp_path: Path) -> None:
    with SyncKubeApi(fake.kubeconfig(tmp_path)) as api:
        assert api.namespace == "team-a"
    with SyncKubeApi(fake.kubeconfig(tmp_path, namespace=None)) as api:
        assert api.namespace == "default"
    with pytest.raises(Unreachable, match="cannot load the kubeconfig"):
        SyncKubeApi(str(tmp_path / "absent"))


def test_reads_go_to_the_kinds_paths(fake: FakeApiServer, api: SyncKubeApi) -> None:
    fake.reply(200, {"kind": "DAGRun", "metadata": {"name": "r"}})
    fake.reply(404, status(404, 'dagruns.kdag.dev "gone" not found'))
    fake.reply(200, {"items": [{"metadata": {"name": "p"}}]})
    fake.reply(200, {"items": []})
    fake.reply(200, "line 1\nline 2\n", **{"Content-Type": "text/plain"})
    assert api.get(DAGRUN, "ns", "r") == {"kind": "DAGRun", "metadata": {"name": "r"}}
    assert api.get(DAGRUN, "ns", "gone") is None
    assert api.list(POD, "ns", {"kdag.dev/dag": "d", "kdag.dev/task": "t"}) == [{"metadata": {"name": "p"}}]
    assert api.list(ROLE, "ns") == []
    assert api.pod_log("ns", "p", "xcom") == "line 1\nline 2\n"
    assert [(r["method"], r["path"], r["query"]) for r in fake.requests] == [
        ("GET", "/apis/kdag.dev/v1alpha1/namespaces/ns/dagruns/r", {}),
        ("GET", "/apis/kdag.dev/v1alpha1/namespaces/ns/dagruns/gone", {}),
        ("GET", "/api/v1/namespaces/ns/pods", {"labelSelector": "kdag.dev/dag=d,kdag.dev/task=t", "limit": "500"}),  # noqa: E501
        ("GET", "/apis/rbac.authorization.k8s.io/v1/namespaces/ns/roles", {"limit": "500"}),
        ("GET", "/api/v1/namespaces/ns/pods/p/log", {"container": "xcom"}),
    ]


def test_a_cluster_scoped_kind_is_read_without_a_namespace(fake: FakeApiServer, api: SyncKubeApi) -> None:
    """The task ClusterRole, read for its uid (it owns the task RBAC the controller makes)."""
    fake.reply(200, {"kind": "ClusterRole", "metadata": {"name": "kdag-task", "uid": "u"}})
    fake.reply(403, status(403, 'clusterroles "other" is forbidden'))
    assert method_name(CLUSTERROLE, "read") == "read_cluster_role"
    role = api.get(CLUSTERROLE, "", "kdag-task")
    assert role == {"kind": "ClusterRole", "metadata": {"name": "kdag-task", "uid": "u"}}
    with pytest.raises(Forbidden, match="GET ClusterRole other: clusterroles"):
        api.get(CLUSTERROLE, "", "other")
    assert [r["path"] for r in fake.requests] == [
        "/apis/rbac.authorization.k8s.io/v1/clusterroles/kdag-task",
        "/apis/rbac.authorization.k8s.io/v1/clusterroles/other",
    ]


def test_writes_send_the_right_verb_content_type_and_body(fake: FakeApiServer, api: SyncKubeApi) -> None:
    configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}}
    before = counted("kdag_api_writes_total", verb="PATCH", resource="taskruns/status")
    fake.reply(201, {**configmap, "metadata": {"name": "c", "uid": "u1"}})
    fake.reply(409, status(409, 'configmaps "c" already exists'))
    fake.reply(409, status(409, 'configmaps "c" already exists'))
    fake.reply(200, {"kind": "Status"})
    fake.reply(404, status(404, "not found"))
    fake.reply(200, {"status": {"phase": "Running"}})
    fake.reply(200, configmap)
    assert api.create(configmap, "ns")["metadata"]["uid"] == "u1"
    with pytest.raises(Conflict, match=r'^POST ConfigMap ns/c: configmaps "c" already exists$'):
        api.create(configmap, "ns")
    assert api.create_if_absent(configmap, "ns") is None
    assert api.delete(ROLEBINDING, "ns", "rb") is True
    assert api.delete(SERVICEACCOUNT, "ns", "sa") is False
    assert api.patch_status(TASKRUN, "ns", "t", {"phase": "Running"}) == {"status": {"phase": "Running"}}
    assert api.apply(configmap, "ns", "kdag-cli") == configmap
    sent = [(r["method"], r["path"], r["query"], r["content_type"]) for r in fake.requests]
    assert sent == [
        ("POST", "/api/v1/namespaces/ns/configmaps", {}, "application/json"),
        ("POST", "/api/v1/namespaces/ns/configmaps", {}, "application/json"),
        ("POST", "/api/v1/namespaces/ns/configmaps", {}, "application/json"),
        ("DELETE", "/apis/rbac.authorization.k8s.io/v1/namespaces/ns/rolebindings/rb",
         {"propagationPolicy": "Background"}, "application/json"),
        ("DELETE", "/api/v1/namespaces/ns/serviceaccounts/sa", {"propagationPolicy": "Background"},
         "application/json"),
        ("PATCH", "/apis/kdag.dev/v1alpha1/namespaces/ns/taskruns/t/status", {},
         "application/merge-patch+json"),
        ("PATCH", "/api/v1/namespaces/ns/configmaps/c", {"fieldManager": "kdag-cli", "force": "True"},
         "application/apply-patch+yaml"),
    ]  # fmt: skip
    assert fake.requests[0]["body"] == configmap
    assert fake.requests[5]["body"] == {"status": {"phase": "Running"}}
    assert fake.requests[6]["body"]["metadata"] == {"name": "c", "namespace": "ns"}
    assert counted("kdag_api_writes_total", verb="PATCH", resource="taskruns/status") == before + 1


def test_busy_answers_are_retried_and_refusals_are_not(fake: FakeApiServer, api: SyncKubeApi) -> None:
    errors_before = counted("kdag_api_errors_total", verb="POST", code="503")
    fake.reply(503, status(503, "etcd leader changed"))
    fake.reply(429, status(429, "slow down"), **{"Retry-After": "0"})
    fake.reply(201, {"metadata": {"name": "d"}})
    manifest = {"apiVersion": "kdag.dev/v1alpha1", "kind": "DAG", "metadata": {"name": "d"}}
    assert api.create(manifest, "ns") == {"metadata": {"name": "d"}}
    assert len(fake.requests) == 3
    assert counted("kdag_api_errors_total", verb="POST", code="503") == errors_before + 1

    fake.reply(422, status(422, 'DAG "d" is invalid: spec.tasks: Required value'))
    with pytest.raises(Invalid) as caught:
        api.create(manifest, "ns")
    assert caught.value.status == 422
    assert str(caught.value) == 'POST DAG ns/d: DAG "d" is invalid: spec.tasks: Required value'
    fake.reply(403, "not a Status")
    with pytest.raises(Forbidden, match=r"^GET DAG ns/d: not a Status$"):
        api.get(DAG, "ns", "d")
    fake.replies.extend([(500, status(500, "boom"), {})] * kube.ATTEMPTS)
    with pytest.raises(KubeApiError, match="boom") as failed:
        api.list(DAG, "ns")
    assert failed.value.status == 500
    assert len(fake.requests) == 5 + kube.ATTEMPTS


def test_a_server_that_never_answers_is_unreachable(fake: FakeApiServer, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kube, "FIRST_BACKOFF", 0.001)
    path = fake.kubeconfig(tmp_path)
    fake.stop()
    with SyncKubeApi(path) as api, pytest.raises(Unreachable, match=r"^GET Pod ns/p: cannot reach http"):
        api.get(POD, "ns", "p")


def test_watch_yields_the_object_of_each_change(fake: FakeApiServer, api: SyncKubeApi) -> None:
    fake.reply(200, [
        {"type": "ADDED", "object": {"metadata": {"name": "r", "resourceVersion": "2"}}},
        {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "3"}}},
        {"type": "MODIFIED", "object": {"metadata": {"name": "r", "resourceVersion": "4"}}},
    ])  # fmt: skip
    assert [o["metadata"]["resourceVersion"] for o in api.watch(DAGRUN, "ns", "r", "1", 5)] == ["2", "4"]
    [sent] = fake.requests
    assert sent["path"] == "/apis/kdag.dev/v1alpha1/namespaces/ns/dagruns"
    assert sent["query"] == {
        "watch": "True", "fieldSelector": "metadata.name=r", "resourceVersion": "1", "timeoutSeconds": "5",
    }  # fmt: skip

    fake.reply(200, [{"type": "ERROR", "object": status(410, "too old resource version: 1 (9)")}])
    with pytest.raises(KubeApiError, match="too old resource version") as gone:
        list(api.watch(DAGRUN, "ns", "r", "1"))
    assert gone.value.status == 410


async def test_the_async_client_is_the_same_calls(fake: FakeApiServer, tmp_path: Path) -> None:
    api = await KubeApi.connect(fake.kubeconfig(tmp_path))
    try:
        fake.reply(200, {"metadata": {"name": "d"}})
        fake.reply(200, [{"type": "MODIFIED", "object": {"metadata": {"name": "d"}}}])
        assert await api.get(DAG, "ns", "d") == {"metadata": {"name": "d"}}
        assert [obj async for obj in api.watch(DAG, "ns", "d", "1")] == [{"metadata": {"name": "d"}}]
    finally:
        await api.close()


def test_the_test_helpers_share_one_client(fake: FakeApiServer, tmp_path: Path) -> None:
    from kube_helpers import get_object, kube_api, list_objects

    path = fake.kubeconfig(tmp_path)
    fake.reply(200, {"metadata": {"name": "d"}})
    fake.reply(200, {"items": [{"metadata": {"name": "d"}}]})
    assert get_object(path, DAG, "ns", "d") == {"metadata": {"name": "d"}}
    assert list_objects(path, DAG, "ns", {"kdag.dev/dag": "d"}) == [{"metadata": {"name": "d"}}]
    assert kube_api(path) is kube_api(path)


@pytest.mark.cluster
def test_calls_against_the_cluster(kubeconfig: str, namespace: str) -> None:
    configmap: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "kube-client", "labels": {"kdag.dev/test": "kube-client"}},
        "data": {"a": "1"},
    }
    with SyncKubeApi(kubeconfig) as api:
        assert api.get(CONFIGMAP, namespace, "kube-client") is None
        created = api.create(configmap, namespace)
        assert created["metadata"]["namespace"] == namespace and created["data"] == {"a": "1"}
        with pytest.raises(Conflict):
            api.create(configmap, namespace)
        assert api.create_if_absent(configmap, namespace) is None
        [listed] = api.list(CONFIGMAP, namespace, {"kdag.dev/test": "kube-client"})
        assert listed["metadata"]["uid"] == created["metadata"]["uid"]
        applied = api.apply({**configmap, "data": {"a": "2", "b": "3"}}, namespace, "kdag-test")
        assert applied["data"] == {"a": "2", "b": "3"}
        assert api.get(CONFIGMAP, namespace, "kube-client") == applied
        version = created["metadata"]["resourceVersion"]
        changed = next(iter(api.watch(CONFIGMAP, namespace, "kube-client", version, timeout_seconds=10)))
        assert changed["data"] == {"a": "2", "b": "3"}

        role: dict[str, Any] = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "reader"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}],
        }
        assert api.create_if_absent(role, namespace) is not None
        with pytest.raises(Invalid):  # a ConfigMap name must be a DNS subdomain (a Role's need not be)
            api.create({**configmap, "metadata": {"name": "Not_A_Name"}}, namespace)
        with pytest.raises(ValueError, match="no 'status' subresource"):
            api.patch_status(CONFIGMAP, namespace, "kube-client", {})
        assert api.delete(ROLE, namespace, "reader") is True
        assert api.delete(ROLE, namespace, "reader") is False
        assert api.delete(CONFIGMAP, namespace, "kube-client") is True


def test_kind_is_a_plain_value() -> None:
    assert Kind("v1", "Pod", "pods") == POD and hash(Kind("v1", "Pod", "pods")) == hash(POD)
