"""What a pass reads of a run's TaskRuns and pods (`handlers.run_objects`): listed once, then kept current by
watch events and the controller's own writes; a stale event never replaces a newer object; a pod the current
attempt names but the cache has not seen is read before a pass could take it for deleted."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fake_api import phase_selected
from kdag.handlers.run_objects import ObjectCache, RunObjects, merge_listed, slim_pod
from kdag.kube import POD, TASKRUN

KEY = ("ns", "run")
SELECTOR = {"kdag.dev/dagrun": "run"}


class CountingApi:
    """Answers lists and gets from `objects`, counting the calls."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []
        self.revision = ""
        self.fields: list[str] = []

    async def list(self, kind: Any, namespace: str, labels: dict[str, str] | None = None) -> list[Any]:
        self.calls.append(("list", kind.kind))
        return [obj for (k, _), obj in self.objects.items() if k == kind.kind]

    async def pages(
        self, kind: Any, namespace: str, labels: dict[str, str] | None = None, *, fields: str = ""
    ) -> Any:
        self.fields.append(fields)
        yield phase_selected(await self.list(kind, namespace, labels), fields), self.revision

    async def get(self, kind: Any, namespace: str, name: str) -> Any:
        self.calls.append(("get", name))
        return self.objects.get((kind.kind, name))


def taskrun(name: str, version: int, **status: Any) -> dict[str, Any]:
    return {
        "kind": "TaskRun",
        "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}", "resourceVersion": str(version)},
        "spec": {"dagRun": "run", "taskId": name, "task": {"id": name, "command": ["true"]}},
        "status": status,
    }


def pod(name: str, version: int, phase: str = "Running") -> dict[str, Any]:
    return {
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "ns", "resourceVersion": str(version), "managedFields": [{}]},
        "spec": {
            "containers": [{"name": "task", "env": [{"name": "KDAG_RUN_ID", "value": "run"}]}],
            "volumes": [{"name": "big"}],
            "activeDeadlineSeconds": 60,
        },
        "status": {"phase": phase},
    }


def test_a_run_is_listed_once_then_kept_from_events_and_writes() -> None:
    api, cache = CountingApi(), ObjectCache()
    api.objects[("TaskRun", "a")] = taskrun("a", 1)
    taskruns, pods = asyncio.run(cache.read(api, KEY, SELECTOR))  # type: ignore[arg-type]
    assert [t["metadata"]["name"] for t in taskruns] == ["a"] and pods == []
    assert api.calls == [("list", TASKRUN.kind), ("list", POD.kind)]
    # A watch event and a write's answer: seen by the next read without listing again.
    cache.observe(taskrun("b", 2))
    cache.observe(pod("b-1", 3))
    cache.observe(taskrun("a", 5, phase="Succeeded"))
    cache.observe(taskrun("a", 4, phase="Running"))  # older than what is kept: ignored
    taskruns, pods = asyncio.run(cache.read(api, KEY, SELECTOR))  # type: ignore[arg-type]
    assert {t["metadata"]["name"]: t["status"].get("phase") for t in taskruns} == {
        "a": "Succeeded",
        "b": None,
    }
    assert [p["metadata"]["name"] for p in pods] == ["b-1"]
    assert len(api.calls) == 2
    cache.observe(pod("b-1", 6), deleted=True)
    assert asyncio.run(cache.read(api, KEY, SELECTOR))[1] == []  # type: ignore[arg-type]


def test_objects_of_runs_not_kept_are_ignored_and_a_finished_run_is_let_go() -> None:
    cache = ObjectCache()
    cache.observe(taskrun("a", 1))
    assert cache.runs == {}
    api = CountingApi()
    asyncio.run(cache.read(api, KEY, SELECTOR))  # type: ignore[arg-type]
    cache.observe(taskrun("a", 1))
    assert list(cache.runs[KEY].taskruns) == ["a"]
    cache.forget(KEY)
    assert cache.runs == {}


def test_the_current_attempts_pod_is_read_when_not_seen_yet() -> None:
    api, cache = CountingApi(), ObjectCache()
    asyncio.run(cache.read(api, KEY, SELECTOR))  # type: ignore[arg-type]
    cache.observe(taskrun("a", 2, phase="Running", podName="a-1"))
    api.objects[("Pod", "a-1")] = pod("a-1", 3)
    pods = asyncio.run(cache.read(api, KEY, SELECTOR))[1]  # type: ignore[arg-type]
    assert [p["metadata"]["name"] for p in pods] == ["a-1"]
    assert ("get", "a-1") in api.calls


def test_a_relist_replaces_what_is_kept() -> None:
    api, cache = CountingApi(), ObjectCache(relist_seconds=0)
    cache.runs[KEY] = RunObjects()
    cache.observe(pod("gone-1", 1))  # missed its DELETED event
    asyncio.run(cache.read(api, KEY, SELECTOR))  # type: ignore[arg-type]
    assert cache.runs[KEY].pods == {}


def test_a_kept_pod_is_slim() -> None:
    slim = slim_pod(pod("p", 1))
    assert slim == {
        "metadata": {"name": "p", "namespace": "ns", "resourceVersion": "1"},
        "spec": {"containers": [{"name": "task"}], "activeDeadlineSeconds": 60},
        "status": {"phase": "Running"},
    }


def test_kept_taskruns_leave_their_managed_fields_out_whether_listed_or_seen() -> None:
    api, cache = CountingApi(), ObjectCache(relist_seconds=0)
    listed = taskrun("listed", 1, phase="Running")
    listed["metadata"]["managedFields"] = [{"manager": "kdag"}]
    api.objects[("TaskRun", "listed")] = listed
    asyncio.run(cache.read(api, KEY, SELECTOR))  # type: ignore[arg-type]
    seen = taskrun("seen", 2, phase="Pending")
    seen["metadata"]["managedFields"] = [{"manager": "kdag"}]
    cache.observe(seen)
    kept = cache.runs[KEY].taskruns
    assert set(kept) == {"listed", "seen"}
    assert all("managedFields" not in tr["metadata"] for tr in kept.values())
    assert kept["listed"]["status"] == {"phase": "Running"} and kept["seen"]["spec"] == seen["spec"]
    assert "managedFields" in listed["metadata"]  # the answer itself is not changed


def test_a_finished_taskrun_is_settled_again_only_when_it_or_its_pods_change(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pass over a run of thousands of tasks must not redo every finished task's settling: each pass
    would cost O(tasks), a run O(tasks^2 / width)."""
    from datetime import UTC, datetime

    from fake_api import FakeApi, runtime_over
    from kdag import settle
    from kdag.api.models import DAGSpec
    from kdag.handlers import taskruns
    from kdag.render import RunInfo

    calls: list[str] = []
    real = settle.settle

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs["run_name"])
        return real(*args, **kwargs)

    monkeypatch.setattr(settle, "settle", counted)
    runtime = runtime_over(FakeApi())
    dag = DAGSpec.model_validate({"tasks": [{"id": "a", "command": ["true"]}]})
    run = RunInfo("ns", "d", "run", "run-uid", datetime(2026, 1, 1, tzinfo=UTC), dag)
    skipped = taskrun("a", 5, phase="Skipped", attempts=0, message="skipped by task 'branch'")
    now = datetime(2026, 1, 1, 0, 1, tzinfo=UTC)

    def settle_once(tr: dict[str, Any]) -> Any:
        return asyncio.run(taskruns.settle_taskrun(runtime, run, tr, {}, now))

    first = settle_once(skipped)
    assert settle_once(skipped) == first and len(calls) == 1  # unchanged: kept
    assert settle_once(taskrun("a", 6, phase="Skipped", attempts=0)) == first and len(calls) == 2
    retrying = taskrun("b", 7, phase="Retrying", attempts=1, nextAttemptAt="2026-01-01T00:05:00Z")
    settle_once(retrying)
    settle_once(retrying)
    assert len(calls) == 4  # not finished: settled on every pass


def test_a_list_older_than_the_watch_never_takes_back_what_the_watch_showed() -> None:
    """A list may be served at a revision older than events already seen: the pod that finished stays
    finished, a TaskRun made after the list's snapshot stays, one deleted before it goes."""
    api, cache = CountingApi(), ObjectCache(relist_seconds=0)
    cache.runs[KEY] = RunObjects()
    cache.observe(pod("p", 12, phase="Succeeded"))  # the watch: finished at version 12
    cache.observe(taskrun("made-after", 15, phase="Pending"))  # our own write, after the list's snapshot
    cache.observe(taskrun("deleted-before", 8, phase="Running"))  # its DELETED event was missed
    api.objects[("Pod", "p")] = pod("p", 9)  # the list still shows it running
    api.revision = "10"
    asyncio.run(cache.read(api, KEY, SELECTOR))  # type: ignore[arg-type]
    kept = cache.runs[KEY]
    assert kept.pods["p"]["status"] == {"phase": "Succeeded"}
    assert set(kept.taskruns) == {"made-after"}


def test_merge_listed_without_a_list_revision_keeps_only_what_was_listed() -> None:
    kept = {"a": pod("a", 5), "b": pod("b", 7)}
    merged = merge_listed(kept, {"a": pod("a", 4)}, "")
    assert list(merged) == ["a"] and merged["a"]["metadata"]["resourceVersion"] == "5"


def test_a_relist_reads_only_the_pods_still_going_and_keeps_the_finished_ones() -> None:
    """A finished pod never changes again: relisting every pod of a run of thousands of tasks every minute
    was most of the controller's CPU late in the run. The first listing reads them all."""
    api, cache = CountingApi(), ObjectCache(relist_seconds=0)
    api.objects[("Pod", "done")] = pod("done", 3, phase="Succeeded")
    api.objects[("Pod", "going")] = pod("going", 4)
    api.revision = "5"
    asyncio.run(cache.read(api, KEY, SELECTOR))  # type: ignore[arg-type]
    assert set(cache.runs[KEY].pods) == {"done", "going"} and api.fields == ["", ""]
    cache.observe(pod("missed", 2))  # running when seen; its DELETED event was missed
    cache.observe(pod("going", 6, phase="Failed"))  # the watch saw it finish
    api.objects[("Pod", "going")] = pod("going", 6, phase="Failed")
    api.objects[("Pod", "new")] = pod("new", 7)
    api.revision = "8"
    asyncio.run(cache.read(api, KEY, SELECTOR))  # type: ignore[arg-type]
    assert api.fields[-1] == "status.phase!=Succeeded,status.phase!=Failed"
    kept = cache.runs[KEY].pods
    assert {name: p["status"]["phase"] for name, p in kept.items()} == {
        "done": "Succeeded", "going": "Failed", "new": "Running",
    }  # fmt: skip
