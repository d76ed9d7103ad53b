"""A minimal Kubernetes API client: in-cluster config and the server-side applies a task makes."""

from __future__ import annotations

import http.client
import json
import os
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdag_runner.keys import RUNNER_FIELD_MANAGER, RUNNER_STATE_FIELD_MANAGER

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
FIELD_MANAGER = RUNNER_FIELD_MANAGER
STATE_FIELD_MANAGER = RUNNER_STATE_FIELD_MANAGER
# How long a request the API server may answer later (connection errors, 429, 5xx) is retried: long enough
# to outlast an API server restart or a kube-proxy that has not yet caught up with it, so a task's finished
# work is not thrown away and redone by a retry (its pod is still there to send it).
RETRY_SECONDS = 60.0
MAX_RETRY_DELAY = 5.0


class KubeApiError(Exception):
    """A request the API server refused (``status`` is its HTTP status) or that never reached it (0).

    The controller's client (kdag.kube) raises the same classes, so code tells errors apart by class or
    ``status``, never by matching message text.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class NotFound(KubeApiError):
    """404: no object of that name."""


class Conflict(KubeApiError):
    """409: the object already exists, or a write lost a race on its resourceVersion."""


class Forbidden(KubeApiError):
    """403: RBAC (or an admission policy) refused the request."""


class Invalid(KubeApiError):
    """422: the object failed validation."""


class Unreachable(KubeApiError):
    """Status 0: the request never reached the API server (connection refused, TLS, timeout)."""


_ERRORS_BY_STATUS: dict[int, type[KubeApiError]] = {
    0: Unreachable,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: Invalid,
}


def error_for(status: int, message: str) -> KubeApiError:
    """The exception for an answer with this HTTP status (0: no answer at all)."""
    return _ERRORS_BY_STATUS.get(status, KubeApiError)(status, message)


def retryable(status: int) -> bool:
    """Whether a later attempt may succeed: no answer (0), 429 Too Many Requests, or a 5xx."""
    return status == 0 or status == 429 or status >= 500


@dataclass(frozen=True)
class ClusterConfig:
    """Where the API server is and how to authenticate: a bearer token file and a CA bundle."""

    host: str
    port: int
    token_path: Path
    ca_path: Path

    @classmethod
    def in_cluster(cls, env: Mapping[str, str] | None = None) -> ClusterConfig:
        """The config a pod gets: KUBERNETES_SERVICE_HOST/PORT and the mounted service account."""
        env = os.environ if env is None else env
        host = env.get("KUBERNETES_SERVICE_HOST", "")
        port = env.get("KUBERNETES_SERVICE_PORT", "")
        if not host or not port:
            raise Unreachable(0, "KUBERNETES_SERVICE_HOST/PORT are not set: not running in a pod")
        return cls(host, int(port), SERVICE_ACCOUNT_DIR / "token", SERVICE_ACCOUNT_DIR / "ca.crt")

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"


class KubeClient:
    """HTTPS requests to the API server; the token is read for every request (kubelet rotates it)."""

    def __init__(
        self, config: ClusterConfig, timeout: float = 30.0, retry_seconds: float = RETRY_SECONDS
    ) -> None:
        self.config = config
        self.timeout = timeout
        self.retry_seconds = retry_seconds
        self._tls = ssl.create_default_context(cafile=str(config.ca_path))

    def request(
        self, method: str, path: str, body: object = None, content_type: str = "application/json"
    ) -> dict[str, Any]:
        """Send one request (retrying what the server may answer later); return the JSON reply."""
        payload = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        delay = 0.25
        deadline = time.monotonic() + self.retry_seconds
        while True:
            last_chance = time.monotonic() + delay > deadline
            try:
                status, reply = self._send(method, path, payload, content_type)
            except OSError as err:
                if last_chance:
                    where = self.config.address
                    raise error_for(0, f"{method} {path}: cannot reach {where}: {err}") from None
            else:
                if status < 300:
                    return _json_or_empty(reply)
                if last_chance or not retryable(status):
                    raise error_for(status, f"{method} {path}: HTTP {status}: {_status_message(reply)}")
            time.sleep(delay)
            delay = min(delay * 2, MAX_RETRY_DELAY)

    def _send(self, method: str, path: str, payload: bytes | None, content_type: str) -> tuple[int, bytes]:
        token = self.config.token_path.read_text(encoding="utf-8").strip()
        connection = http.client.HTTPSConnection(
            self.config.host, self.config.port, timeout=self.timeout, context=self._tls
        )
        try:
            headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
            if payload is not None:
                headers["Content-Type"] = content_type
            connection.request(method, path, body=payload, headers=headers)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def apply_configmap(
        self,
        namespace: str,
        name: str,
        data: Mapping[str, str],
        labels: Mapping[str, str],
        owner: Mapping[str, Any] | None,
        *,
        field_manager: str = FIELD_MANAGER,
    ) -> dict[str, Any]:
        """Create or replace the whole ConfigMap with one server-side apply (docs/design.md).

        "Whole" is what ``field_manager`` owns: data keys another manager applied stay (the task state
        store's ``.state`` under ``STATE_FIELD_MANAGER`` outlives the XCom writes of every attempt).
        """
        metadata: dict[str, Any] = {"name": name, "namespace": namespace, "labels": dict(labels)}
        if owner is not None:
            metadata["ownerReferences"] = [dict(owner)]
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": dict(data)}
        path = f"/api/v1/namespaces/{namespace}/configmaps/{name}?fieldManager={field_manager}&force=true"
        return self.request("PATCH", path, body, content_type="application/apply-patch+yaml")


def apply_configmap(
    namespace: str,
    name: str,
    data: Mapping[str, str],
    labels: Mapping[str, str],
    owner: Mapping[str, Any] | None,
    config: ClusterConfig | None = None,
) -> dict[str, Any]:
    """``KubeClient.apply_configmap`` with the in-cluster config unless one is given."""
    client = KubeClient(config or ClusterConfig.in_cluster())
    return client.apply_configmap(namespace, name, data, labels, owner)


def _json_or_empty(reply: bytes) -> dict[str, Any]:
    try:
        value = json.loads(reply) if reply else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _status_message(reply: bytes) -> str:
    """The API's ``Status.message`` (with its reason), or the raw reply when it is not a Status."""
    status = _json_or_empty(reply)
    message = status.get("message")
    if isinstance(message, str) and message:
        reason = status.get("reason")
        return f"{reason}: {message}" if isinstance(reason, str) and reason else message
    return reply.decode("utf-8", errors="replace").strip()[:500] or "(empty reply)"
