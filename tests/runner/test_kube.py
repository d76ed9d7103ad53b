"""The stdlib client's retries and error messages, against a loopback HTTPS server playing the API server."""

from __future__ import annotations

import json
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from kdag_runner.kube import (
    ClusterConfig,
    Conflict,
    Forbidden,
    Invalid,
    KubeApiError,
    KubeClient,
    NotFound,
    Unreachable,
    error_for,
    retryable,
)


class FakeApiServer:
    """Answers each request with the next (status, body) of ``replies``; records what it was sent."""

    def __init__(self, directory: Path) -> None:
        key, cert = directory / "key.pem", directory / "ca.crt"
        request = "req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost"
        request += " -addext subjectAltName=IP:127.0.0.1"
        command = ["openssl", *request.split(), "-keyout", str(key), "-out", str(cert)]
        subprocess.run(command, check=True, capture_output=True)
        (directory / "token").write_text("token-1\n", encoding="utf-8")
        self.replies: list[tuple[int, Any]] = []
        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_PATCH(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                server.requests.append(
                    {
                        "path": self.path,
                        "headers": dict(self.headers),
                        "body": json.loads(self.rfile.read(length)) if length else None,
                    }
                )
                status, body = server.replies.pop(0)
                payload = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_PATCH

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(directory / "ca.crt", directory / "key.pem")
        self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.config = ClusterConfig(
            "127.0.0.1", self.httpd.server_address[1], directory / "token", directory / "ca.crt"
        )
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def api(tmp_path: Path) -> Iterator[FakeApiServer]:
    server = FakeApiServer(tmp_path)
    yield server
    server.stop()


def status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "status": "Failure", "reason": reason, "message": message, "code": code}


def test_apply_sends_one_server_side_apply(api: FakeApiServer) -> None:
    api.replies = [(200, {"kind": "ConfigMap"})]
    owner = {"apiVersion": "kdag.dev/v1alpha1", "kind": "DAGRun", "name": "r", "uid": "u"}
    KubeClient(api.config).apply_configmap("ns", "r-t", {".types": "{}"}, {"kdag.dev/task": "t"}, owner)
    [sent] = api.requests
    assert sent["path"] == "/api/v1/namespaces/ns/configmaps/r-t?fieldManager=kdag-runner&force=true"
    assert sent["headers"]["Content-Type"] == "application/apply-patch+yaml"
    assert sent["headers"]["Authorization"] == "Bearer token-1"
    assert sent["body"] == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "r-t",
            "namespace": "ns",
            "labels": {"kdag.dev/task": "t"},
            "ownerReferences": [owner],
        },
        "data": {".types": "{}"},
    }


def test_busy_answers_are_retried(api: FakeApiServer) -> None:
    api.replies = [
        (503, status(503, "ServiceUnavailable", "etcd leader changed")),
        (429, status(429, "TooManyRequests", "slow down")),
        (200, {"kind": "ConfigMap"}),
    ]
    assert KubeClient(api.config).request("PATCH", "/x", {}) == {"kind": "ConfigMap"}
    assert len(api.requests) == 3


def test_a_refusal_is_not_retried_and_carries_the_api_message(api: FakeApiServer) -> None:
    api.replies = [(422, status(422, "Invalid", 'ConfigMap "x" is invalid: data[a b]: Invalid value'))]
    with pytest.raises(Invalid) as caught:
        KubeClient(api.config).request("PATCH", "/x", {})
    assert caught.value.status == 422
    assert (
        str(caught.value) == 'PATCH /x: HTTP 422: Invalid: ConfigMap "x" is invalid: data[a b]: Invalid value'
    )
    assert len(api.requests) == 1


def test_a_reply_that_is_not_a_status_is_quoted(api: FakeApiServer) -> None:
    api.replies = [(500, "upstream broke")] * 4
    # Retried while the next wait ends within retry_seconds: 0.25 + 0.5 + 1 s of waits, then the 4th answer.
    with pytest.raises(KubeApiError, match=r"^GET /version: HTTP 500: upstream broke$"):
        KubeClient(api.config, retry_seconds=2.0).request("GET", "/version")
    assert len(api.requests) == 4


def test_the_token_file_is_read_for_each_request(api: FakeApiServer) -> None:
    api.replies = [(200, {}), (200, {})]
    client = KubeClient(api.config)
    client.request("GET", "/a")
    api.config.token_path.write_text("token-2\n", encoding="utf-8")
    client.request("GET", "/b")
    assert [r["headers"]["Authorization"] for r in api.requests] == ["Bearer token-1", "Bearer token-2"]


def test_in_cluster_config_needs_the_service_env() -> None:
    with pytest.raises(KubeApiError, match="KUBERNETES_SERVICE_HOST/PORT are not set"):
        ClusterConfig.in_cluster({})
    config = ClusterConfig.in_cluster(
        {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}
    )
    assert config.address == "https://[fd00::1]:443"
    assert str(config.token_path) == "/var/run/secrets/kubernetes.io/serviceaccount/token"


@pytest.mark.parametrize(
    ("status", "cls"),
    [(0, Unreachable), (403, Forbidden), (404, NotFound), (409, Conflict), (422, Invalid),
     (400, KubeApiError), (500, KubeApiError)],
)
def test_errors_are_told_apart_by_status(status: int, cls: type[KubeApiError]) -> None:
    error = error_for(status, "why")
    assert type(error) is cls and isinstance(error, KubeApiError)
    assert (error.status, error.message, str(error)) == (status, "why", "why")


def test_only_answers_that_may_change_are_retryable() -> None:
    assert [code for code in (0, 200, 400, 403, 404, 409, 422, 429, 500, 503) if retryable(code)] == [
        0, 429, 500, 503
    ]
