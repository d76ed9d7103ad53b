"""The one Kubernetes client of the controller, the CLI and the tests: plain dicts over kubernetes_asyncio.

`KubeApi` is async (the controller); `SyncKubeApi` runs the same calls on a private event loop in its own
thread (the CLI and the tests). Calls go through the generated methods of kubernetes_asyncio's public API
classes with `_preload_content=False`, so the answer is read as JSON and never turned into model objects.
Errors are the runner's vocabulary (kdag_runner.kube): `NotFound`, `Conflict`, ... told apart by status.
Every request is retried in one place (`KubeApi._retrying`) when the server may answer later.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from kdag_runner import keys
from kdag_runner.kube import (
    Conflict,
    Forbidden,
    Invalid,
    KubeApiError,
    NotFound,
    Unreachable,
    error_for,
    retryable,
)
from kubernetes_asyncio import client, config

from kdag import metrics

__all__ = [
    "CLUSTERROLE", "CONFIGMAP", "DAG", "DAGRUN", "DAGVERSION", "EVENT", "POD", "ROLE", "ROLEBINDING",
    "SERVICEACCOUNT", "TASKRUN", "VALIDATING_WEBHOOK_CONFIGURATION",
    "Conflict", "Forbidden", "Invalid", "JSONObject", "Kind", "KubeApi", "KubeApiError", "NotFound",
    "SyncKubeApi", "Unreachable", "kind_of", "method_name", "retry_delay",
]  # fmt: skip

T = TypeVar("T")
JSONObject = dict[str, Any]

ATTEMPTS = 4  # tries of a request whose answer may change later: no answer, 429 or 5xx
FIRST_BACKOFF = 0.2  # seconds before the second try, doubled before each later one
MAX_RETRY_AFTER = 10.0  # a server's Retry-After is honoured up to this many seconds
REQUEST_TIMEOUT = 60.0  # seconds one ordinary request (not a watch) may take in all
LIST_PAGE = 500  # objects per page of a list: 5,000 TaskRuns are read in 10 answers, never parsed at once
CONNECTION_POOL = 64  # concurrent connections to the API server: a fan-out writes concurrently
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


@dataclass(frozen=True)
class Kind:
    """A kind kdag reads or writes: its apiVersion, kind and plural (the REST resource name)."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool = True
    """False for a cluster-scoped kind: its calls take no namespace (pass "")."""

    @property
    def group(self) -> str:
        """`kdag.dev`, `rbac.authorization.k8s.io`, or "" for the core group."""
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]


RBAC_API_VERSION = "rbac.authorization.k8s.io/v1"
DAG = Kind(keys.API_VERSION, keys.DAG_KIND, keys.DAG_PLURAL)
DAGRUN = Kind(keys.API_VERSION, keys.DAGRUN_KIND, keys.DAGRUN_PLURAL)
TASKRUN = Kind(keys.API_VERSION, keys.TASKRUN_KIND, keys.TASKRUN_PLURAL)
DAGVERSION = Kind(keys.API_VERSION, keys.DAGVERSION_KIND, keys.DAGVERSION_PLURAL)
POD = Kind("v1", "Pod", "pods")
CONFIGMAP = Kind("v1", "ConfigMap", "configmaps")
SERVICEACCOUNT = Kind("v1", "ServiceAccount", "serviceaccounts")
EVENT = Kind("v1", "Event", "events")
ROLE = Kind(RBAC_API_VERSION, "Role", "roles")
ROLEBINDING = Kind(RBAC_API_VERSION, "RoleBinding", "rolebindings")
CLUSTERROLE = Kind(RBAC_API_VERSION, "ClusterRole", "clusterroles", namespaced=False)
VALIDATING_WEBHOOK_CONFIGURATION = Kind(
    "admissionregistration.k8s.io/v1",
    "ValidatingWebhookConfiguration",
    "validatingwebhookconfigurations",
    namespaced=False,
)

# Which kubernetes_asyncio API class serves a kind, and the stem of its generated methods
# (`{verb}_namespaced_{stem}[_{subresource}]`, `{verb}_{stem}` when cluster-scoped). kdag's own kinds go
# through CustomObjectsApi.
_ROUTES: dict[Kind, tuple[type[Any], str]] = {
    DAG: (client.CustomObjectsApi, "custom_object"),
    DAGRUN: (client.CustomObjectsApi, "custom_object"),
    TASKRUN: (client.CustomObjectsApi, "custom_object"),
    DAGVERSION: (client.CustomObjectsApi, "custom_object"),
    POD: (client.CoreV1Api, "pod"),
    CONFIGMAP: (client.CoreV1Api, "config_map"),
    SERVICEACCOUNT: (client.CoreV1Api, "service_account"),
    EVENT: (client.CoreV1Api, "event"),
    ROLE: (client.RbacAuthorizationV1Api, "role"),
    ROLEBINDING: (client.RbacAuthorizationV1Api, "role_binding"),
    CLUSTERROLE: (client.RbacAuthorizationV1Api, "cluster_role"),
    VALIDATING_WEBHOOK_CONFIGURATION: (client.AdmissionregistrationV1Api, "validating_webhook_configuration"),
}
_KINDS_BY_API = {(kind.api_version, kind.kind): kind for kind in _ROUTES}


def kind_of(obj: Mapping[str, Any]) -> Kind:
    """The Kind of a manifest, by its apiVersion and kind."""
    key = (str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
    if key not in _KINDS_BY_API:
        raise ValueError(f"kdag does not manage objects of apiVersion/kind {key[0]}/{key[1]}")
    return _KINDS_BY_API[key]


def method_name(kind: Kind, verb: str, subresource: str = "") -> str:
    """The generated method for a verb (read, list, create, delete, patch) on a kind or its subresource."""
    api, stem = _ROUTES[kind]
    if api is client.CustomObjectsApi and verb == "read":
        verb = "get"
    scope = "namespaced_" if kind.namespaced else ""
    return f"{verb}_{scope}{stem}" + (f"_{subresource}" if subresource else "")


def retry_delay(status: int, attempt: int, retry_after: str | None = None) -> float | None:
    """Seconds to wait before trying again after try `attempt` (from 1) got `status`; None: give up.

    0 (no answer), 429 and 5xx are tried again, up to ATTEMPTS tries; the wait doubles from FIRST_BACKOFF
    unless the server said how long in seconds (Retry-After), which is honoured up to MAX_RETRY_AFTER.
    """
    if attempt >= ATTEMPTS or not retryable(status):
        return None
    if retry_after:
        with contextlib.suppress(ValueError):
            return min(max(float(retry_after), 0.0), MAX_RETRY_AFTER)
    return float(FIRST_BACKOFF * 2 ** (attempt - 1))


def _status_message(body: bytes) -> str:
    """The API server's Status `message`, or the raw reply when it is not a Status."""
    with contextlib.suppress(ValueError):
        status = json.loads(body)
        if isinstance(status, dict) and isinstance(status.get("message"), str) and status["message"]:
            return str(status["message"])
    return body.decode("utf-8", errors="replace").strip()[:500] or "(empty reply)"


def _json(body: bytes) -> JSONObject:
    value = json.loads(body) if body else {}
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object from the API server, got {type(value).__name__}")
    return value


class _Refused(Exception):
    """A non-2xx answer, inside the retry loop."""

    def __init__(self, status: int, body: bytes, retry_after: str | None) -> None:
        super().__init__(status)
        self.status, self.body, self.retry_after = status, body, retry_after


async def _read(response: aiohttp.ClientResponse) -> bytes:
    """The whole body; a non-2xx answer raises _Refused."""
    try:
        body = await response.read()
    finally:
        response.release()
    if response.status >= 300:
        raise _Refused(response.status, body, response.headers.get("Retry-After"))
    return body


def _default_kubeconfig() -> str | None:
    default = Path.home() / ".kube" / "config"
    return str(default) if default.exists() else None


class KubeApi:
    """The API calls kdag makes, on plain dicts; every write is counted in the metrics."""

    def __init__(self, api_client: Any, namespace: str = "default", host: str = "") -> None:
        self._client = api_client
        self._apis: dict[type[Any], Any] = {}
        self.namespace = namespace
        self._host = host

    @classmethod
    async def connect(cls, kubeconfig: str | None = None) -> KubeApi:
        """A client of the kubeconfig file, else $KUBECONFIG or ~/.kube/config, else the in-cluster config."""
        configuration = client.Configuration()
        path = kubeconfig or os.environ.get("KUBECONFIG") or _default_kubeconfig()
        try:
            if path and not any(Path(p).expanduser().is_file() for p in path.split(os.pathsep) if p):
                raise FileNotFoundError("no such file")  # the loader would only log a warning
            if path:
                loader = await config.load_kube_config(
                    config_file=path, client_configuration=configuration, persist_config=False
                )
                context = (loader.current_context or {}).get("context") or {}
                namespace = str(context.get("namespace") or "default")
            else:
                config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
                namespace = "default"
                if SERVICE_ACCOUNT_NAMESPACE.exists():
                    namespace = SERVICE_ACCOUNT_NAMESPACE.read_text(encoding="utf-8").strip() or namespace
        except Exception as err:  # the loaders raise anything from ConfigException to KeyError
            if path:
                raise Unreachable(0, f"cannot load the kubeconfig {path}: {err}") from None
            raise Unreachable(
                0,
                "no kubeconfig (give --kubeconfig, set $KUBECONFIG or write ~/.kube/config) and not in a "
                f"pod: cannot load the in-cluster config: {err}",
            ) from None
        configuration.connection_pool_maxsize = max(configuration.connection_pool_maxsize, CONNECTION_POOL)
        return cls(client.ApiClient(configuration), namespace, str(configuration.host))

    async def close(self) -> None:
        await self._client.close()

    def _method(self, kind: Kind, verb: str, subresource: str) -> Callable[..., Awaitable[Any]]:
        api_class, _ = _ROUTES[kind]
        if api_class not in self._apis:
            self._apis[api_class] = api_class(self._client)
        method: Callable[..., Awaitable[Any]] | None = getattr(
            self._apis[api_class], method_name(kind, verb, subresource), None
        )
        if method is None:
            raise ValueError(f"{kind.kind} has no '{subresource}' subresource to {verb}")
        return method

    async def _retrying(
        self, http_method: str, what: str, resource: str, attempt: Callable[[], Awaitable[T]]
    ) -> T:
        """Run `attempt` until it succeeds or retry_delay says stop; raise the error class of the status."""
        for number in range(1, ATTEMPTS + 1):
            if http_method != "GET":
                metrics.API_WRITES.labels(verb=http_method, resource=resource).inc()
            try:
                return await attempt()
            except _Refused as refused:
                status, message = refused.status, _status_message(refused.body)
                retry_after = refused.retry_after
            except (aiohttp.ClientError, OSError) as err:  # TimeoutError is an OSError
                status, message, retry_after = 0, f"cannot reach {self._host}: {err!r}", None
            if status != 409:
                metrics.API_ERRORS.labels(verb=http_method, code=str(status)).inc()
            delay = retry_delay(status, number, retry_after)
            if delay is None:
                raise error_for(status, f"{what}: {message}")
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def _call(
        self, http_method: str, verb: str, kind: Kind, namespace: str, name: str = "", *,
        subresource: str = "", stream: bool = False, timeout: Any = REQUEST_TIMEOUT, **params: Any,
    ) -> Any:  # fmt: skip
        """One generated method, retried: the body's bytes, or with `stream` the open 2xx response."""
        method = self._method(kind, verb, subresource)
        args: dict[str, Any] = {"namespace": namespace, **params} if kind.namespaced else dict(params)
        if kind.group == keys.GROUP:
            args.update(group=kind.group, version=kind.version, plural=kind.plural)
        if verb in ("read", "delete", "patch"):
            args["name"] = name
        where = f"{namespace}/{name}" if kind.namespaced else name
        what = f"{http_method} {kind.kind} {where}"
        if not name:
            what = f"{http_method} {kind.plural} in {namespace}"
        resource = kind.plural + (f"/{subresource}" if subresource else "")

        async def attempt() -> Any:
            response = await method(**args, _preload_content=False, _request_timeout=timeout)
            if stream and response.status < 300:
                return response
            return await _read(response)

        return await self._retrying(http_method, what, resource, attempt)

    async def get(self, kind: Kind, namespace: str, name: str) -> JSONObject | None:
        """The object, or None when it does not exist."""
        try:
            return _json(await self._call("GET", "read", kind, namespace, name))
        except NotFound:
            return None

    async def pages(
        self,
        kind: Kind,
        namespace: str,
        labels: Mapping[str, str] | None = None,
        *,
        size: int = LIST_PAGE,
        fields: str = "",
    ) -> AsyncIterator[tuple[list[JSONObject], str]]:
        """`list` a page at a time (the API server's `limit` and `continue`: one consistent snapshot), so a
        caller that keeps less than the whole object never holds thousands of whole objects at once. Each
        page comes with the list's resourceVersion: the snapshot's revision, which a cache fed by watches
        needs to tell an object created after the snapshot from one deleted before it. `fields` is a field
        selector (`status.phase!=Succeeded`)."""
        selector = ",".join(f"{key}={value}" for key, value in (labels or {}).items())
        params: dict[str, Any] = {"label_selector": selector} if selector else {}
        if fields:
            params["field_selector"] = fields
        if size:
            params["limit"] = size
        while True:
            answer = _json(await self._call("GET", "list", kind, namespace, **params))
            yield answer.get("items") or [], str((answer.get("metadata") or {}).get("resourceVersion") or "")
            token = (answer.get("metadata") or {}).get("continue")
            if not token:
                return
            params["_continue"] = token

    async def list(
        self, kind: Kind, namespace: str, labels: Mapping[str, str] | None = None
    ) -> list[JSONObject]:
        """Objects of a kind in a namespace, those with all these labels when given."""
        items: list[JSONObject] = []
        async for page, _ in self.pages(kind, namespace, labels):
            items.extend(page)
        return items

    async def create(self, obj: JSONObject, namespace: str) -> JSONObject:
        """Create the object; Conflict when one of that name exists."""
        name = str((obj.get("metadata") or {}).get("name", ""))
        return _json(await self._call("POST", "create", kind_of(obj), namespace, name, body=obj))

    async def create_if_absent(self, obj: JSONObject, namespace: str) -> JSONObject | None:
        """Create the object; None when it already existed (kdag's names are deterministic: that is fine)."""
        try:
            return await self.create(obj, namespace)
        except Conflict:
            return None

    async def delete(self, kind: Kind, namespace: str, name: str, *, foreground: bool = False) -> bool:
        """Delete in the background (dependents go by garbage collection); False if it was already gone.

        `foreground`: the object stays (with a deletionTimestamp) until its dependents are gone, so one of
        the same name made afterwards never meets them (a TriggerDagRunOperator's reset).
        """
        policy = "Foreground" if foreground else "Background"
        try:
            await self._call("DELETE", "delete", kind, namespace, name, propagation_policy=policy)
        except NotFound:
            return False
        return True

    async def patch_status(self, kind: Kind, namespace: str, name: str, status: JSONObject) -> JSONObject:
        """One JSON merge patch `{"status": status}` of the status subresource."""
        answer = await self._call(
            "PATCH", "patch", kind, namespace, name, subresource="status", body={"status": status},
            _content_type="application/merge-patch+json",
        )  # fmt: skip
        return _json(answer)

    async def apply(self, obj: JSONObject, namespace: str, field_manager: str) -> JSONObject:
        """Server-side apply of the whole object (force: this manager takes over conflicting fields)."""
        kind = kind_of(obj)
        metadata = {**(obj.get("metadata") or {})}
        if kind.namespaced:
            metadata["namespace"] = namespace
        body = {**obj, "metadata": metadata}
        answer = await self._call(
            "PATCH", "patch", kind, namespace, str(body["metadata"].get("name", "")), body=body,
            field_manager=field_manager, force=True, _content_type="application/apply-patch+yaml",
        )  # fmt: skip
        return _json(answer)

    async def watch(
        self, kind: Kind, namespace: str, name: str, resource_version: str, timeout_seconds: int = 60
    ) -> AsyncGenerator[JSONObject, None]:
        """The object at each ADDED/MODIFIED event after `resource_version`, until the server ends the watch.

        An ERROR event (410 Gone: the version is too old) raises its error; read the object and watch again.
        """
        response: aiohttp.ClientResponse = await self._call(
            "GET", "list", kind, namespace, name, stream=True, timeout=(30, timeout_seconds + 30),
            watch=True, field_selector=f"metadata.name={name}", resource_version=resource_version,
            timeout_seconds=timeout_seconds,
        )  # fmt: skip
        try:
            async for line in response.content:
                if not line.strip():
                    continue
                event = json.loads(line)
                if event.get("type") == "ERROR":
                    status = event.get("object") or {}
                    message = f"WATCH {kind.kind} {namespace}/{name}: {status.get('message')}"
                    raise error_for(int(status.get("code") or 500), message)
                if event.get("type") in ("ADDED", "MODIFIED"):
                    yield event["object"]
        finally:
            response.close()

    async def pod_log(self, namespace: str, pod: str, container: str) -> str:
        """The log of one container of a pod."""
        body: bytes = await self._call(
            "GET", "read", POD, namespace, pod, subresource="log", container=container
        )
        return body.decode("utf-8", errors="replace")


class SyncKubeApi:
    """KubeApi's calls, synchronous: a private event loop runs them in its own thread.

    Being its own thread, it also works when the caller is inside a running event loop (an async test).
    """

    def __init__(self, kubeconfig: str | None = None) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="kdag-kube", daemon=True)
        self._thread.start()
        try:
            self._api = self._run(KubeApi.connect(kubeconfig))
        except BaseException:
            self._stop()
            raise
        self.namespace = self._api.namespace

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if not self._thread.is_alive():
            coroutine.close()
            raise RuntimeError("this SyncKubeApi is closed")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def _stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._api.close(), self._loop).result(timeout=10)
        self._stop()

    def __enter__(self) -> SyncKubeApi:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def get(self, kind: Kind, namespace: str, name: str) -> JSONObject | None:
        return self._run(self._api.get(kind, namespace, name))

    def list(self, kind: Kind, namespace: str, labels: Mapping[str, str] | None = None) -> list[JSONObject]:
        return self._run(self._api.list(kind, namespace, labels))

    def create(self, obj: JSONObject, namespace: str) -> JSONObject:
        return self._run(self._api.create(obj, namespace))

    def create_if_absent(self, obj: JSONObject, namespace: str) -> JSONObject | None:
        return self._run(self._api.create_if_absent(obj, namespace))

    def delete(self, kind: Kind, namespace: str, name: str) -> bool:
        return self._run(self._api.delete(kind, namespace, name))

    def patch_status(self, kind: Kind, namespace: str, name: str, status: JSONObject) -> JSONObject:
        return self._run(self._api.patch_status(kind, namespace, name, status))

    def apply(self, obj: JSONObject, namespace: str, field_manager: str) -> JSONObject:
        return self._run(self._api.apply(obj, namespace, field_manager))

    def pod_log(self, namespace: str, pod: str, container: str) -> str:
        return self._run(self._api.pod_log(namespace, pod, container))

    def watch(
        self, kind: Kind, namespace: str, name: str, resource_version: str, timeout_seconds: int = 60
    ) -> Iterator[JSONObject]:
        """KubeApi.watch, one event at a time; leaving the loop early closes the watch."""
        events = self._api.watch(kind, namespace, name, resource_version, timeout_seconds)

        async def following() -> JSONObject | None:
            try:
                return await anext(events)
            except StopAsyncIteration:
                return None

        try:
            while (obj := self._run(following())) is not None:
                yield obj
        finally:
            with contextlib.suppress(Exception):
                self._run(events.aclose())
