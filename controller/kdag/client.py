"""Thin async access to the Kubernetes API: plain dicts over REST paths.

The controller only creates objects, patches status and lists by label, so a typed client buys little;
lightkube's config loader gives us kubeconfig / in-cluster auth and an httpx client.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lightkube.config.client_adapter import AsyncClient, ConnectionParams
from lightkube.config.kubeconfig import KubeConfig

from kdag import metrics

GROUP = "kdag.dev"
VERSION = "v1alpha1"

JSONObject = dict[str, Any]


@dataclass(frozen=True)
class Kind:
    """Where a kind lives in the REST tree."""

    group: str
    version: str
    plural: str

    def path(self, namespace: str, name: str | None = None, subresource: str | None = None) -> str:
        base = f"/api/{self.version}" if not self.group else f"/apis/{self.group}/{self.version}"
        path = f"{base}/namespaces/{namespace}/{self.plural}"
        if name is not None:
            path += f"/{name}"
        if subresource is not None:
            path += f"/{subresource}"
        return path


DAGS = Kind(GROUP, VERSION, "dags")
DAGRUNS = Kind(GROUP, VERSION, "dagruns")
TASKRUNS = Kind(GROUP, VERSION, "taskruns")
PODS = Kind("", "v1", "pods")
CONFIGMAPS = Kind("", "v1", "configmaps")
SERVICEACCOUNTS = Kind("", "v1", "serviceaccounts")
ROLES = Kind("rbac.authorization.k8s.io", "v1", "roles")
ROLEBINDINGS = Kind("rbac.authorization.k8s.io", "v1", "rolebindings")
EVENTS = Kind("", "v1", "events")

KINDS_BY_API: dict[tuple[str, str], Kind] = {
    ("v1", "Pod"): PODS,
    ("v1", "ConfigMap"): CONFIGMAPS,
    ("v1", "ServiceAccount"): SERVICEACCOUNTS,
    ("v1", "Event"): EVENTS,
    ("rbac.authorization.k8s.io/v1", "Role"): ROLES,
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): ROLEBINDINGS,
    (f"{GROUP}/{VERSION}", "DAG"): DAGS,
    (f"{GROUP}/{VERSION}", "DAGRun"): DAGRUNS,
    (f"{GROUP}/{VERSION}", "TaskRun"): TASKRUNS,
}


class ApiError(Exception):
    """A non-2xx answer from the API server, with its status code and message."""

    def __init__(self, status: int, method: str, path: str, message: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {message}")
        self.status = status
        self.message = message


def _resource_of(path: str) -> str:
    """`pods`, `taskruns/status`, ...: the resource part of a REST path, for the write counters."""
    parts = path.strip("/").split("/")
    if "namespaces" in parts:
        rest = parts[parts.index("namespaces") + 2 :]
        return rest[0] + ("/" + rest[2] if len(rest) > 2 else "") if rest else "namespaces"
    return parts[-1]


def kind_of(obj: Mapping[str, Any]) -> Kind:
    """The REST location of a manifest, by its apiVersion and kind."""
    key = (str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
    if key not in KINDS_BY_API:
        raise ValueError(f"kdag does not manage objects of apiVersion/kind {key[0]}/{key[1]}")
    return KINDS_BY_API[key]


class KubeApi:
    """The few API calls the controller makes. Every write is counted in the metrics."""

    def __init__(self, kubeconfig: str | None = None) -> None:
        config = KubeConfig.from_file(kubeconfig) if kubeconfig else KubeConfig.from_env()
        single = config.get()
        if single is None:
            raise RuntimeError("no current context in the kubeconfig")
        self._http = AsyncClient(single, ConnectionParams())

    async def close(self) -> None:
        await self._http.aclose()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> JSONObject:
        headers = {"Content-Type": content_type} if body is not None else {}
        content = json.dumps(body).encode() if body is not None else None
        response = await self._http.request(method, path, content=content, headers=headers, params=params)
        if method != "GET":
            metrics.API_WRITES.labels(verb=method, resource=_resource_of(path)).inc()
        if response.status_code >= 400:
            try:
                message = str(response.json().get("message", response.text))
            except ValueError:
                message = response.text
            if response.status_code != 409:
                metrics.API_ERRORS.labels(verb=method, code=str(response.status_code)).inc()
            raise ApiError(response.status_code, method, path, message)
        result: JSONObject = response.json()
        return result

    async def get(self, kind: Kind, namespace: str, name: str) -> JSONObject | None:
        """The object, or None when it does not exist."""
        try:
            return await self._request("GET", kind.path(namespace, name))
        except ApiError as error:
            if error.status == 404:
                return None
            raise

    async def list(self, kind: Kind, namespace: str, labels: Mapping[str, str]) -> list[JSONObject]:
        selector = ",".join(f"{key}={value}" for key, value in labels.items())
        answer = await self._request("GET", kind.path(namespace), params={"labelSelector": selector})
        items: list[JSONObject] = answer.get("items", [])
        return items

    async def create(self, obj: JSONObject, namespace: str) -> JSONObject | None:
        """Create the object; None when it already existed (names are deterministic, so that is fine)."""
        try:
            return await self._request("POST", kind_of(obj).path(namespace), body=obj)
        except ApiError as error:
            if error.status == 409:
                return None
            raise

    async def delete(self, kind: Kind, namespace: str, name: str) -> bool:
        """Delete in the background (dependents go by garbage collection); False if it was already gone."""
        try:
            await self._request(
                "DELETE", kind.path(namespace, name), body={"propagationPolicy": "Background"}
            )
        except ApiError as error:
            if error.status == 404:
                return False
            raise
        return True

    async def patch_status(self, kind: Kind, namespace: str, name: str, status: JSONObject) -> JSONObject:
        """One merge patch of the status subresource."""
        return await self._request(
            "PATCH",
            kind.path(namespace, name, "status"),
            body={"status": status},
            content_type="application/merge-patch+json",
        )
