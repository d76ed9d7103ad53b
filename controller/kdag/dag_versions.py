"""The DAG versions runs follow (docs/design.md, "DAG versions"): one immutable `DAGVersion` per spec of a
DAG that a run started with, where each run once kept a copy of the whole spec in its status.

When a run starts, the controller makes the version of its DAG's spec if there is none (`ensure`: named by
the DAG's uid and spec, owned by the DAG, so it goes with it) and records its name in the run's
`status.dagVersion`; every later pass reads that version (`read`). A version never changes, so its parsed
spec is kept in memory for good (`VersionCache`, bounded): a DAG of thousands of tasks is parsed once per
process, not on every event of each of its runs. An object found under a version's name is used only when
it is this DAG's (its uid) with this spec (`problem`): never by its name alone.

`manifest`, `problem`, `run_version` and `spec_of` are pure (the CLI reads a run's version with the last
two); `ensure` and `read` make their calls through the `KubeApi` they are given.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kdag_runner import keys

from kdag import manifests, names
from kdag.api.models import DAGSpec

if TYPE_CHECKING:  # the client is imported where it is used: `kdag compile` reads run_version, no API
    from kdag.kube import KubeApi

MAX_CACHED_VERSIONS = 256
"""Parsed versions kept in memory, the least recently used going first."""
MAX_CACHED_TASKS = 50_000
"""Tasks of all the parsed versions kept (a parsed task takes about 1.5 kB): the newest is kept whatever its
size, older ones go while the sum is over this."""

VersionKey = tuple[str, str]
"""(namespace, DAGVersion name)."""


class VersionError(ValueError):
    """A run's DAG version cannot be used; the run fails with `reason` and the message (a ValueError: the
    same pass would meet it again)."""

    reason = "DAGVersionConflict"


class VersionConflict(VersionError):
    """What exists under a version's name is not that version: another DAG's, or another spec."""


class VersionMissing(VersionError):
    """The version a run recorded no longer exists."""

    reason = "DAGVersionMissing"


def manifest(dag_name: str, dag_uid: str, spec: DAGSpec, namespace: str | None = None) -> dict[str, Any]:
    """The DAGVersion of `spec` of the DAG `dag_name` (uid `dag_uid`): named by both
    (`names.dag_version_name`), labelled with the DAG, owned by it (deleted with it)."""
    stored = spec.to_kube()
    metadata: dict[str, Any] = {"name": names.dag_version_name(dag_name, dag_uid, stored)}
    if namespace is not None:
        metadata["namespace"] = namespace
    metadata["labels"] = names.labels(dag_name)
    metadata["ownerReferences"] = [manifests.dag_owner_reference(dag_name, dag_uid)]
    return {
        "apiVersion": keys.API_VERSION,
        "kind": keys.DAGVERSION_KIND,
        "metadata": metadata,
        "spec": {"dagRef": {"name": dag_name}, "taskCount": len(spec.tasks), "dag": stored},
    }


def problem(existing: Mapping[str, Any], wanted: Mapping[str, Any]) -> str:
    """Why the object `existing`, found under the name of the version `wanted` (a `manifest`), is not that
    version; "" when it is: owned by the same DAG (uid) and holding the same spec."""
    name = wanted["metadata"]["name"]
    dag = wanted["spec"]["dagRef"]["name"]
    uid = wanted["metadata"]["ownerReferences"][0]["uid"]
    if not manifests.owned_by(existing, uid):
        return (
            f"DAGVersion {name} exists but is not DAG {dag}'s (uid {uid}): its owners are "
            f"{manifests.owner_names(existing)}; kdag never takes a DAG version by its name alone"
        )
    # Compared as values: the API server gives back 1 for a 1.0 it was sent, which is the same spec.
    if (existing.get("spec") or {}) != wanted["spec"]:
        return (
            f"DAGVersion {name} of DAG {dag} exists with another spec than the DAG's now (versions never "
            "change); kdag never takes a DAG version by its name alone"
        )
    return ""


def run_version(dagrun: Mapping[str, Any]) -> str | None:
    """The name of the DAGVersion a run follows (`status.dagVersion`); None before the run started."""
    name = (dagrun.get("status") or {}).get("dagVersion")
    return str(name) if name else None


def spec_of(version: Mapping[str, Any]) -> DAGSpec:
    """The DAG spec a DAGVersion object holds."""
    return DAGSpec.model_validate((version.get("spec") or {}).get("dag") or {})


@dataclass(frozen=True)
class _Entry:
    dag: str
    """The DAG it is a version of (`spec.dagRef.name`)."""
    spec: DAGSpec


@dataclass
class VersionCache:
    """Parsed DAG versions by (namespace, name), least recently used first. Versions never change, so an
    entry is never stale: it only goes to bound memory (`max_versions`, `max_tasks`)."""

    max_versions: int = MAX_CACHED_VERSIONS
    max_tasks: int = MAX_CACHED_TASKS
    _entries: OrderedDict[VersionKey, _Entry] = field(default_factory=OrderedDict)
    _tasks: int = 0
    _locks: dict[VersionKey, asyncio.Lock] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: VersionKey) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def put(self, key: VersionKey, dag: str, spec: DAGSpec) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self._tasks -= len(old.spec.tasks)
        self._entries[key] = _Entry(dag, spec)
        self._tasks += len(spec.tasks)
        while len(self._entries) > 1 and (
            len(self._entries) > self.max_versions or self._tasks > self.max_tasks
        ):
            _, gone = self._entries.popitem(last=False)
            self._tasks -= len(gone.spec.tasks)

    def lock(self, key: VersionKey) -> asyncio.Lock:
        """The lock one version is read under: runs of one DAG that start their passes together (after a
        restart) read and parse its version once, not once each."""
        return self._locks.setdefault(key, asyncio.Lock())

    def unlock(self, key: VersionKey) -> None:
        lock = self._locks.get(key)
        if lock is not None and not lock.locked():
            del self._locks[key]


async def read(api: KubeApi, cache: VersionCache, namespace: str, name: str, dag_name: str) -> DAGSpec:
    """The spec of the DAGVersion `name` that a run of DAG `dag_name` follows: parsed once, then from
    `cache`. VersionMissing when it does not exist, VersionConflict when it is another DAG's."""
    from kdag.kube import DAGVERSION

    key = (namespace, name)
    entry = cache.get(key)
    if entry is None:
        try:
            async with cache.lock(key):
                entry = cache.get(key)
                if entry is None:
                    version = await api.get(DAGVERSION, namespace, name)
                    if version is None:
                        raise VersionMissing(
                            f"DAGVersion {name}, the spec of DAG {dag_name} this run started with, does not"
                            " exist any more (a version goes when its DAG is deleted)"
                        )
                    owner = str(((version.get("spec") or {}).get("dagRef") or {}).get("name") or "")
                    entry = _Entry(owner, spec_of(version))
                    cache.put(key, entry.dag, entry.spec)
        finally:
            cache.unlock(key)
    if entry.dag != dag_name:
        raise VersionConflict(
            f"DAGVersion {name} is a version of DAG {entry.dag!r}, not of this run's DAG {dag_name!r}"
        )
    return entry.spec


async def ensure(api: KubeApi, cache: VersionCache, dag: Mapping[str, Any], spec: DAGSpec) -> str:
    """The name of the DAGVersion of `spec`, the spec of the DAG object `dag` now: made if absent. One
    that exists is taken only when it is that version (`problem`), else VersionConflict names what is
    there. A version this process made or read is known to exist (versions never change, and go only with
    their DAG, whose next incarnation has another uid and so other version names)."""
    from kdag.kube import DAGVERSION

    meta = dag["metadata"]
    namespace = str(meta["namespace"])
    wanted = manifest(str(meta["name"]), str(meta["uid"]), spec, namespace)
    name = str(wanted["metadata"]["name"])
    if cache.get((namespace, name)) is None:
        if await api.create_if_absent(wanted, namespace) is None:
            existing = await api.get(DAGVERSION, namespace, name)
            if existing is None:  # deleted between the two calls: the next pass makes it
                raise RuntimeError(f"DAGVersion {name} went while it was being read; trying again")
            wrong = problem(existing, wanted)
            if wrong:
                raise VersionConflict(wrong)
        cache.put((namespace, name), str(meta["name"]), spec)
    return name
