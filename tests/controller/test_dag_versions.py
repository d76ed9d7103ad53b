"""DAG versions (docs/design.md, "DAG versions"): named by the DAG's uid and spec, owned by the DAG, made if
absent and never taken by their name alone, parsed once per process."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from kdag import dag_versions, names
from kdag.api.models import DAGSpec, DAGVersion

DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
UID = "8f14e45f-ceea-467f-a0e6-0123456789ab"


def spec(*task_ids: str, **fields: Any) -> DAGSpec:
    return DAGSpec.model_validate({"tasks": [{"id": t, "command": ["true"]} for t in task_ids], **fields})


def dag_object(name: str = "etl", uid: str = UID) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "uid": uid}, "spec": {}}


# --- names and manifests ---------------------------------------------------------------------------


def test_a_version_is_named_by_its_dags_uid_and_spec() -> None:
    first = dag_versions.manifest("etl", UID, spec("a", "b"))["metadata"]["name"]
    assert first == dag_versions.manifest("etl", UID, spec("a", "b"))["metadata"]["name"]
    assert re.fullmatch(r"etl-[0-9a-f]{16}", first)
    edited = dag_versions.manifest("etl", UID, spec("a", "b", "c"))["metadata"]["name"]
    scheduled = dag_versions.manifest("etl", UID, spec("a", "b", schedule="@daily"))["metadata"]["name"]
    # The DAG deleted and made again: another object, other versions (the old ones go with the old DAG).
    remade = dag_versions.manifest("etl", "another-uid", spec("a", "b"))["metadata"]["name"]
    assert len({first, edited, scheduled, remade}) == 4


@pytest.mark.parametrize("length", [1, 63, 200, 236, 237, 252, 253])
def test_a_long_dag_name_still_gives_a_valid_name(length: int) -> None:
    dag = ("a-b." * 64)[: length - 1] + "z"  # a DNS subdomain, with a '-' or '.' wherever the cut falls
    name = names.dag_version_name(dag, UID, spec("a").to_kube())
    assert len(name) <= 253 and DNS_SUBDOMAIN.fullmatch(name), name
    assert name.endswith("-" + names.dag_version_name("x", UID, spec("a").to_kube()).rsplit("-", 1)[1])
    # Two long names alike up to the cut are still told apart (the hash covers the uid).
    assert name != names.dag_version_name(dag, "other-uid", spec("a").to_kube())


def test_the_manifest_is_owned_by_the_dag_and_labelled_with_it() -> None:
    manifest = dag_versions.manifest("etl", UID, spec("a", "b"), "ns")
    assert manifest["apiVersion"] == "kdag.dev/v1alpha1" and manifest["kind"] == "DAGVersion"
    assert manifest["metadata"]["namespace"] == "ns"
    assert manifest["metadata"]["labels"] == names.labels("etl")
    assert manifest["metadata"]["ownerReferences"] == [
        {"apiVersion": "kdag.dev/v1alpha1", "kind": "DAG", "name": "etl", "uid": UID}
    ]
    assert manifest["spec"] == {"dagRef": {"name": "etl"}, "taskCount": 2, "dag": spec("a", "b").to_kube()}
    # It is a DAGVersion as the CRD's model reads it, and the spec reads back the same.
    assert DAGVersion.model_validate(manifest).spec.dag == spec("a", "b")
    assert dag_versions.spec_of(manifest) == spec("a", "b")


def test_what_a_run_follows() -> None:
    assert dag_versions.run_version({"status": {"dagVersion": "etl-0123"}}) == "etl-0123"
    assert dag_versions.run_version({"status": {"phase": "Pending"}}) is None
    assert dag_versions.run_version({}) is None


def test_an_object_of_the_name_is_the_version_only_with_the_dags_uid_and_the_same_spec() -> None:
    wanted = dag_versions.manifest("etl", UID, spec("a"), "ns")
    assert dag_versions.problem(wanted, wanted) == ""
    # Read back from the API server: numbers as it gives them back (1 for 1.0) are the same spec.
    floats = dag_versions.manifest("etl", UID, spec("a", params={"x": 1.0}), "ns")
    stored = {**floats, "spec": {**floats["spec"], "dag": {**floats["spec"]["dag"], "params": {"x": 1}}}}
    assert dag_versions.problem(stored, floats) == ""
    squatter = {**wanted, "metadata": {**wanted["metadata"], "ownerReferences": []}}
    assert "is not DAG etl's (uid " + UID + "): its owners are no owner" in dag_versions.problem(
        squatter, wanted
    )
    other = dag_versions.manifest("etl", UID, spec("b"), "ns")
    other["metadata"]["name"] = wanted["metadata"]["name"]
    assert "exists with another spec" in dag_versions.problem(other, wanted)


# --- the cache and the calls -----------------------------------------------------------------------


class Api:
    """The calls `ensure` and `read` make, over objects in memory, counted."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.gets = 0
        self.creates = 0

    async def get(self, kind: Any, namespace: str, name: str) -> dict[str, Any] | None:
        assert kind.kind == "DAGVersion"
        self.gets += 1
        await asyncio.sleep(0)  # other readers run meanwhile
        return self.objects.get(name)

    async def create_if_absent(self, obj: dict[str, Any], namespace: str) -> dict[str, Any] | None:
        self.creates += 1
        if obj["metadata"]["name"] in self.objects:
            return None
        self.objects[obj["metadata"]["name"]] = obj
        return obj


def fake_api() -> Any:
    """An `Api` where a `KubeApi` is expected."""
    return Api()


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The versions `dag_versions` parsed, in order."""
    seen: list[str] = []
    parse = dag_versions.spec_of

    def counted(version: dict[str, Any]) -> DAGSpec:
        seen.append(version["metadata"]["name"])
        return parse(version)

    monkeypatch.setattr(dag_versions, "spec_of", counted)
    return seen


async def test_a_version_is_made_once_and_read_from_memory_after(parses: list[str]) -> None:
    api, cache = fake_api(), dag_versions.VersionCache()
    name = await dag_versions.ensure(api, cache, dag_object(), spec("a", "b"))
    assert list(api.objects) == [name] and api.creates == 1
    # The process that made it never reads it back, nor makes it again.
    assert await dag_versions.ensure(api, cache, dag_object(), spec("a", "b")) == name
    assert await dag_versions.read(api, cache, "ns", name, "etl") == spec("a", "b")
    assert (api.creates, api.gets, parses) == (1, 0, [])


async def test_a_version_is_parsed_once_however_many_runs_read_it(parses: list[str]) -> None:
    api = fake_api()
    name = await dag_versions.ensure(api, dag_versions.VersionCache(), dag_object(), spec("a"))
    cache = dag_versions.VersionCache()  # a restarted controller: nothing in memory
    read = [dag_versions.read(api, cache, "ns", name, "etl") for _ in range(20)]
    specs = await asyncio.gather(*read)
    assert all(s is specs[0] for s in specs) and specs[0] == spec("a")
    assert (api.gets, parses) == (1, [name])
    await dag_versions.read(api, cache, "ns", name, "etl")
    assert (api.gets, parses) == (1, [name])


async def test_an_existing_version_is_taken_only_when_it_is_this_dags(parses: list[str]) -> None:
    api = fake_api()
    mine = await dag_versions.ensure(api, dag_versions.VersionCache(), dag_object(), spec("a"))
    # Another process (a replica, a restart) finds it made: it is the DAG's, so it is used.
    assert await dag_versions.ensure(api, dag_versions.VersionCache(), dag_object(), spec("a")) == mine
    # Something else under the name: refused, whatever its spec, and not remembered.
    api.objects[mine] = {**api.objects[mine], "metadata": {"name": mine, "ownerReferences": []}}
    cache = dag_versions.VersionCache()
    with pytest.raises(dag_versions.VersionConflict, match="never takes a DAG version by its name alone"):
        await dag_versions.ensure(api, cache, dag_object(), spec("a"))
    assert len(cache) == 0
    changed = dag_versions.manifest("etl", UID, spec("b"), "ns")
    api.objects[mine] = {**changed, "metadata": {**changed["metadata"], "name": mine}}
    with pytest.raises(dag_versions.VersionConflict, match="exists with another spec"):
        await dag_versions.ensure(api, cache, dag_object(), spec("a"))
    assert parses == []  # compared as stored, never parsed


async def test_a_missing_version_or_another_dags_is_an_error() -> None:
    api, cache = fake_api(), dag_versions.VersionCache()
    with pytest.raises(dag_versions.VersionMissing, match="etl-0123456789abcdef, the spec of DAG etl") as e:
        await dag_versions.read(api, cache, "ns", "etl-0123456789abcdef", "etl")
    assert e.value.reason == "DAGVersionMissing"
    name = await dag_versions.ensure(api, cache, dag_object(), spec("a"))
    with pytest.raises(dag_versions.VersionConflict, match="of DAG 'etl', not of this run's DAG 'x'"):
        await dag_versions.read(api, cache, "ns", name, "x")


def test_the_cache_keeps_the_most_recently_used_within_its_bounds() -> None:
    cache = dag_versions.VersionCache(max_versions=3, max_tasks=10)
    for n in range(4):
        cache.put(("ns", f"v{n}"), "etl", spec("a", "b"))
    assert len(cache) == 3 and cache.get(("ns", "v0")) is None
    assert cache.get(("ns", "v1")) is not None  # now the most recently used
    cache.put(("ns", "big"), "etl", spec(*(f"t{i}" for i in range(7))))  # 7 + 2 + 2 tasks fit in 10
    assert [k for k in (("ns", "v1"), ("ns", "v2"), ("ns", "v3"), ("ns", "big")) if cache.get(k)] == [
        ("ns", "v1"),
        ("ns", "big"),
    ]
    cache.put(("ns", "huge"), "etl", spec(*(f"t{i}" for i in range(20))))  # over the budget alone: kept
    assert len(cache) == 1 and cache.get(("ns", "huge")) is not None
