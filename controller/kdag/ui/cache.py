"""One shared list+watch per kind (and namespace) in the server, kept in memory and fanned out to browsers.

Browsers never make the server ask the API server again: every page reads `Store`, and every open page gets
the changes it cares about from `Hub` (through `stream`). A kind the user may not list is recorded as a
notice (`KindCache.problem`), never raised into a page.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kdag_runner import keys
from kdag_runner.kube import Forbidden, KubeApiError

from kdag.kube import DAG, DAGRUN, POD, TASKRUN, JSONObject, Kind
from kdag.ui.kube_reads import UiKubeApi

log = logging.getLogger("kdag.ui")

RETRY_SECONDS = 5.0
"""Wait before listing again after an error (a Forbidden answer is retried too: RBAC may change)."""
KINDS: tuple[Kind, ...] = (DAG, DAGRUN, TASKRUN, POD)
"""What the UI watches. Pods only those kdag made (`MANAGED_BY_LABEL`): their times and exit codes."""
WATCH_LABELS: dict[Kind, dict[str, str]] = {POD: {keys.MANAGED_BY_LABEL: keys.MANAGED_BY}}

Key = tuple[str, str]
"""(namespace, name)."""
Listener = Callable[[Kind, str, JSONObject], None]


def key_of(obj: Mapping[str, Any]) -> Key:
    metadata = obj.get("metadata") or {}
    return (str(metadata.get("namespace") or ""), str(metadata.get("name") or ""))


def label(obj: Mapping[str, Any], name: str) -> str:
    return str(((obj.get("metadata") or {}).get("labels") or {}).get(name) or "")


@dataclass
class KindCache:
    """The objects of one kind in one namespace ("" for all), as the last list and the watch since say."""

    kind: Kind
    namespace: str
    objects: dict[Key, JSONObject] = field(default_factory=dict)
    synced: asyncio.Event = field(default_factory=asyncio.Event)
    problem: str = ""
    """Why the objects cannot be read now (the API server's answer), "" when they can."""

    async def run(self, api: UiKubeApi, changed: Listener) -> None:
        """List, then watch from the list's version; again after an error or when the watch ends."""
        labels = WATCH_LABELS.get(self.kind)
        while True:
            try:
                page = await api.list_all(self.kind, self.namespace, labels=labels)
                self._replace(page.items, changed)
                self.problem = ""
                self.synced.set()
                version = page.resource_version
                while True:
                    async for event in api.watch_collection(self.kind, self.namespace, version, labels):
                        version = str((event.object.get("metadata") or {}).get("resourceVersion") or version)
                        if event.type != "BOOKMARK":
                            self.apply(event.type, event.object, changed)
            except asyncio.CancelledError:
                raise
            except Forbidden as err:
                self.problem = f"not allowed to list {self.kind.plural}: {err}"
            except KubeApiError as err:  # 410 Gone, no answer, ...: list again
                self.problem = "" if getattr(err, "status", 0) == 410 else str(err)
            except Exception as err:  # a broken stream: never let the loop die
                self.problem = f"reading {self.kind.plural} failed: {err!r}"
            if self.problem:
                log.warning("%s", self.problem)
                self.synced.set()  # pages render with the notice instead of waiting
            await asyncio.sleep(RETRY_SECONDS if self.problem else 0.1)

    def _replace(self, items: Iterable[JSONObject], changed: Listener) -> None:
        fresh = {key_of(obj): obj for obj in items}
        for key, obj in list(self.objects.items()):
            if key not in fresh:
                self.apply("DELETED", obj, changed)
        for obj in fresh.values():
            self.apply("MODIFIED", obj, changed)

    def apply(self, event_type: str, obj: JSONObject, changed: Listener) -> None:
        key = key_of(obj)
        if event_type == "DELETED":
            self.objects.pop(key, None)
        else:
            old = self.objects.get(key)
            same = old is not None and _version(old) == _version(obj)
            self.objects[key] = obj
            if same:
                return
        changed(self.kind, event_type, obj)


def _version(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


class Store:
    """Every watched object, with the indexes pages look things up by (a run's TaskRuns, a task's pods)."""

    def __init__(self, namespaces: list[str]) -> None:
        self.namespaces = namespaces
        """The namespaces watched; [""] means all of them."""
        self.caches = {(kind, ns): KindCache(kind, ns) for kind in KINDS for ns in namespaces}
        self.runs_of_dag: dict[Key, set[str]] = {}
        self.taskruns_of_run: dict[Key, set[str]] = {}
        self.pods_of_taskrun: dict[Key, set[str]] = {}
        self.listeners: list[Listener] = []

    def start(self, api: UiKubeApi) -> list[asyncio.Task[None]]:
        return [asyncio.create_task(cache.run(api, self._changed)) for cache in self.caches.values()]

    async def wait_synced(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(c.synced.wait() for c in self.caches.values())), timeout)

    def problems(self) -> list[str]:
        return [cache.problem for cache in self.caches.values() if cache.problem]

    def record(self, kind: Kind, event_type: str, obj: JSONObject) -> None:
        """Apply one event as a watch would (the watches call this through their caches; so can tests)."""
        cache = self._cache_for(kind, key_of(obj)[0])
        if cache is not None:
            cache.apply(event_type, obj, self._changed)

    def _changed(self, kind: Kind, event_type: str, obj: JSONObject) -> None:
        namespace, name = key_of(obj)
        index, parent = self._index_of(kind, obj)
        if index is not None:
            members = index.setdefault((namespace, parent), set())
            if event_type == "DELETED":
                members.discard(name)
            else:
                members.add(name)
        for listener in self.listeners:
            listener(kind, event_type, obj)

    def _index_of(self, kind: Kind, obj: JSONObject) -> tuple[dict[Key, set[str]] | None, str]:
        if kind == DAGRUN:
            return self.runs_of_dag, str(((obj.get("spec") or {}).get("dagRef") or {}).get("name") or "")
        if kind == TASKRUN:
            return self.taskruns_of_run, str((obj.get("spec") or {}).get("dagRun") or "")
        if kind == POD:
            owners = (obj.get("metadata") or {}).get("ownerReferences") or []
            owner = next((o for o in owners if o.get("kind") == keys.TASKRUN_KIND), None)
            return (self.pods_of_taskrun, str(owner["name"])) if owner else (None, "")
        return None, ""

    def _cache_for(self, kind: Kind, namespace: str) -> KindCache | None:
        return self.caches.get((kind, namespace)) or self.caches.get((kind, ""))

    def get(self, kind: Kind, namespace: str, name: str) -> JSONObject | None:
        cache = self._cache_for(kind, namespace)
        return cache.objects.get((namespace, name)) if cache else None

    def all(self, kind: Kind) -> list[JSONObject]:
        return [obj for (k, _), cache in self.caches.items() if k == kind for obj in cache.objects.values()]

    def watched(self, namespace: str) -> bool:
        return "" in self.namespaces or namespace in self.namespaces

    def problem(self, kind: Kind, namespace: str) -> str:
        cache = self._cache_for(kind, namespace)
        return cache.problem if cache else f"namespace '{namespace}' is not watched by this kdag ui"

    def _members(
        self, kind: Kind, index: dict[Key, set[str]], namespace: str, parent: str
    ) -> list[JSONObject]:
        found = (self.get(kind, namespace, name) for name in index.get((namespace, parent), ()))
        return [obj for obj in found if obj is not None]

    def runs(self, namespace: str, dag: str) -> list[JSONObject]:
        """The DAG's runs, newest first."""
        runs = self._members(DAGRUN, self.runs_of_dag, namespace, dag)
        return sorted(runs, key=lambda r: str(r["metadata"].get("creationTimestamp") or ""), reverse=True)

    def taskruns(self, namespace: str, run: str) -> list[JSONObject]:
        return self._members(TASKRUN, self.taskruns_of_run, namespace, run)

    def pods(self, namespace: str, taskrun: str) -> list[JSONObject]:
        return self._members(POD, self.pods_of_taskrun, namespace, taskrun)
