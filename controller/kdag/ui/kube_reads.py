"""The reads the UI needs beyond `kdag.kube.KubeApi`'s: collections across namespaces, pages of a list, a
watch of a whole collection, a followed log. A subclass, so every call still goes through KubeApi's retries
and typed errors (`Forbidden`, `NotFound`, ...); they could move into `kdag.kube` when another needs them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from kdag_runner import keys
from kdag_runner.kube import error_for

from kdag.kube import POD, JSONObject, Kind, KubeApi

# The generated method that lists a namespaced kind in every namespace (kubernetes_asyncio's names).
_ALL_NAMESPACES_METHOD = {
    "custom_object": "list_cluster_custom_object",
    "pod": "list_pod_for_all_namespaces",
    "event": "list_event_for_all_namespaces",
    "config_map": "list_config_map_for_all_namespaces",
}
WATCH_SECONDS = 290
"""How long one watch request lasts before the server ends it and the cache watches again."""


@dataclass(frozen=True)
class ListPage:
    """One page of a list: its items, the list's resourceVersion (to watch from) and the continue token."""

    items: list[JSONObject]
    resource_version: str
    next_token: str


@dataclass(frozen=True)
class WatchEvent:
    """ADDED, MODIFIED, DELETED or BOOKMARK, and the object (a bookmark's carries only a resourceVersion)."""

    type: str
    object: JSONObject


def selector(labels: Mapping[str, str] | None) -> str:
    """A label selector `k=v,k2=v2` (an empty string selects everything)."""
    return ",".join(f"{key}={value}" for key, value in (labels or {}).items())


class UiKubeApi(KubeApi):
    """KubeApi with collection reads; `namespace` "" means every namespace."""

    def _collection_method(self, kind: Kind, namespace: str) -> tuple[Any, dict[str, Any]]:
        """The generated list method for one namespace or all, and the arguments it always takes."""
        args: dict[str, Any] = {}
        if kind.group == keys.GROUP:
            args.update(group=kind.group, version=kind.version, plural=kind.plural)
        if namespace:
            args["namespace"] = namespace
            return self._method(kind, "list", ""), args
        bound: Any = self._method(kind, "list", "")  # a bound method of the API class serving the kind
        stem, api = bound.__name__.removeprefix("list_namespaced_"), bound.__self__
        return getattr(api, _ALL_NAMESPACES_METHOD[stem]), args

    async def list_page(
        self,
        kind: Kind,
        namespace: str,
        *,
        labels: Mapping[str, str] | None = None,
        fields: str = "",
        limit: int = 500,
        token: str = "",
    ) -> ListPage:
        """One page of at most `limit` objects (Kubernetes' `limit`/`continue` pagination)."""
        method, args = self._collection_method(kind, namespace)
        params: dict[str, Any] = {"limit": limit}
        if labels:
            params["label_selector"] = selector(labels)
        if fields:
            params["field_selector"] = fields
        if token:
            params["_continue"] = token

        async def attempt() -> bytes:
            response = await method(**args, **params, _preload_content=False, _request_timeout=60)
            try:
                body = await response.read()
            finally:
                response.release()
            if response.status >= 300:
                raise error_for(
                    response.status,
                    f"LIST {kind.plural} in {namespace or 'all namespaces'}: "
                    + body.decode("utf-8", errors="replace")[:300],
                )
            return bytes(body)

        where = namespace or "all namespaces"
        answer = json.loads(
            await self._retrying("GET", f"LIST {kind.plural} in {where}", kind.plural, attempt)
        )
        metadata = answer.get("metadata") or {}
        return ListPage(
            answer.get("items") or [],
            str(metadata.get("resourceVersion") or ""),
            str(metadata.get("continue") or ""),
        )

    async def list_all(
        self, kind: Kind, namespace: str, *, labels: Mapping[str, str] | None = None, fields: str = ""
    ) -> ListPage:
        """Every object, page by page (500 a request), and the resourceVersion to watch from."""
        items: list[JSONObject] = []
        token, version = "", ""
        while True:
            page = await self.list_page(kind, namespace, labels=labels, fields=fields, token=token)
            items.extend(page.items)
            version = page.resource_version or version
            token = page.next_token
            if not token:
                return ListPage(items, version, "")

    async def watch_collection(
        self, kind: Kind, namespace: str, resource_version: str, labels: Mapping[str, str] | None = None
    ) -> AsyncGenerator[WatchEvent, None]:
        """Each event after `resource_version` until the server ends the watch (WATCH_SECONDS); an ERROR
        event (410 Gone: the version is too old) raises its typed error: list again and watch from there."""
        method, args = self._collection_method(kind, namespace)
        params: dict[str, Any] = {
            "watch": True,
            "resource_version": resource_version,
            "allow_watch_bookmarks": True,
            "timeout_seconds": WATCH_SECONDS,
        }
        if labels:
            params["label_selector"] = selector(labels)
        response: aiohttp.ClientResponse = await method(
            **args, **params, _preload_content=False, _request_timeout=(30, WATCH_SECONDS + 30)
        )
        try:
            if response.status >= 300:
                body = await response.read()
                raise error_for(
                    response.status, f"WATCH {kind.plural}: {body.decode(errors='replace')[:300]}"
                )
            async for line in response.content:
                if not line.strip():
                    continue
                event = json.loads(line)
                if event.get("type") == "ERROR":
                    status = event.get("object") or {}
                    raise error_for(
                        int(status.get("code") or 500), f"WATCH {kind.plural}: {status.get('message')}"
                    )
                yield WatchEvent(str(event.get("type")), event.get("object") or {})
        finally:
            response.close()

    async def follow_log(
        self, namespace: str, pod: str, container: str, *, follow: bool, limit_bytes: int
    ) -> AsyncGenerator[bytes, None]:
        """A container's log in chunks as the kubelet sends them; with `follow`, until the container ends."""
        response: aiohttp.ClientResponse = await self._call(
            "GET",
            "read",
            POD,
            namespace,
            pod,
            subresource="log",
            stream=True,
            timeout=(30, None),
            container=container,
            follow=follow,
            limit_bytes=limit_bytes,
        )
        try:
            async for chunk in response.content.iter_any():
                yield chunk
        finally:
            response.close()
