"""The DAG handlers without a cluster: `@once` and unscheduled DAGs on creation, and the schedule daemon on a
fake clock (kdag.schedules decides the ticks; these tests check which runs the daemon creates, and when)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf
import pytest
from kdag.handlers import dags
from kdag.kube import Unreachable


def t(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


class FakeApi:
    """The calls the DAG handlers make, recorded."""

    def __init__(self) -> None:
        self.runs: dict[str, dict[str, Any]] = {}
        self.status_patches: list[dict[str, Any]] = []

    async def create_if_absent(self, manifest: dict[str, Any], namespace: str) -> dict[str, Any] | None:
        name = manifest["metadata"]["name"]
        if name in self.runs:
            return None
        self.runs[name] = manifest
        return manifest

    async def patch_status(self, kind: object, namespace: str, name: str, patch: dict[str, Any]) -> None:
        self.status_patches.append(patch)

    async def create(self, manifest: dict[str, Any], namespace: str) -> dict[str, Any]:
        return manifest  # Events

    async def list(self, kind: object, namespace: str) -> list[dict[str, Any]]:
        return []


class Memo:
    def __init__(self) -> None:
        self.api = FakeApi()
        self.background: set[asyncio.Task[None]] = set()


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now


class Stopped:
    """kopf's DaemonStopped on the fake clock: waiting moves the clock; set once the clock reaches `until`."""

    def __init__(
        self, clock: Clock, until: datetime, on_wait: Callable[[datetime], None] | None = None
    ) -> None:
        self.clock, self.until, self.on_wait = clock, until, on_wait
        self.waits: list[float] = []

    def __bool__(self) -> bool:
        return self.clock.now >= self.until

    async def wait(self, timeout: float) -> Stopped:
        self.waits.append(timeout)
        self.clock.now = min(self.clock.now + timedelta(seconds=timeout), self.until)
        if self.on_wait is not None:
            self.on_wait(self.clock.now)
        return self


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock(t(2024, 1, 1, 10, 0, 30))

    class FakeDatetime(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> FakeDatetime:  # type: ignore[override]
            return fake.now  # type: ignore[return-value]

    monkeypatch.setattr(dags, "datetime", FakeDatetime)
    return fake


def dag_body(status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kdag.dev/v1alpha1",
        "kind": "DAG",
        "metadata": {"name": "report", "namespace": "ns", "uid": "0123abcd-0000", "generation": 1},
        "spec": {"tasks": [{"id": "a", "command": ["true"]}], **spec},
        "status": status or {},
    }


async def run_daemon(body: dict[str, Any], stopped: Stopped) -> FakeApi:
    memo = Memo()
    await dags.run_schedule(body, stopped, memo)  # type: ignore[arg-type]
    await asyncio.sleep(0)  # let the Events' background tasks finish
    return memo.api


def made(api: FakeApi) -> list[tuple[str, str, dict[str, str] | None]]:
    return [
        (name, run["spec"]["logicalDate"], run["spec"].get("dataInterval")) for name, run in api.runs.items()
    ]


def between(start: str, end: str | None = None) -> dict[str, str]:
    return {"start": start, "end": end or start}


def test_only_a_time_schedule_starts_the_daemon() -> None:
    def spec(**fields: Any) -> kopf.Spec:
        return kopf.Spec({"spec": fields})  # a view of the body's spec

    assert not dags.has_schedule(spec())
    assert not dags.has_schedule(spec(schedule="@once"))
    assert dags.has_schedule(spec(schedule="@daily"))
    assert dags.has_schedule(spec(timetable={"everySeconds": 60}))


async def test_cron_ticks_make_runs_named_by_their_tick(clock: Clock) -> None:
    api = await run_daemon(dag_body(schedule="* * * * *"), Stopped(clock, t(2024, 1, 1, 10, 3, 10)))
    assert made(api) == [
        (f"report-2024010110{m}", f"2024-01-01T10:{m}:00Z", between(f"2024-01-01T10:{m}:00Z"))
        for m in ("01", "02", "03")
    ]
    assert api.status_patches[-1] == {
        "lastRun": "report-202401011003",
        "lastScheduleTime": "2024-01-01T10:03:00Z",
    }


async def test_a_data_interval_run_is_due_at_its_end_with_its_start_as_logical_date(clock: Clock) -> None:
    clock.now = t(2024, 2, 1, 1, 5)
    body = dag_body(timetable={"cron": "*/30 * * * *", "dataIntervals": True})
    api = await run_daemon(body, Stopped(clock, t(2024, 2, 1, 2, 1)))
    first, second, third = "2024-02-01T01:00:00Z", "2024-02-01T01:30:00Z", "2024-02-01T02:00:00Z"
    assert made(api) == [
        ("report-202402010130", first, between(first, second)),
        ("report-202402010200", second, between(second, third)),
    ]


async def test_no_run_for_ticks_before_the_dag_was_seen(clock: Clock) -> None:
    """Catchup off: a past start makes no run; the first is the next tick."""
    body = dag_body(timetable={"everySeconds": 3600, "start": "2020-01-01T00:30:00Z"})
    api = await run_daemon(body, Stopped(clock, t(2024, 1, 1, 11, 0)))
    assert [name for name, *_ in made(api)] == ["report-202401011030"]


async def test_a_restarted_daemon_makes_the_newest_missed_run_only(clock: Clock) -> None:
    body = dag_body({"lastScheduleTime": "2024-01-01T07:00:00Z"}, schedule="@hourly")
    api = await run_daemon(body, Stopped(clock, t(2024, 1, 1, 11, 0, 5)))
    assert [name for name, *_ in made(api)] == ["report-202401011000", "report-202401011100"]


async def test_an_edited_schedule_starts_from_the_edit(clock: Clock) -> None:
    """*/5 ticked at 10:00, before the edit at 10:03: no run for it; the first is 10:05."""
    body = dag_body(schedule="@daily")

    def edit(now: datetime) -> None:
        if now >= t(2024, 1, 1, 10, 3):
            body["spec"]["schedule"] = "*/5 * * * *"

    stopped = Stopped(clock, t(2024, 1, 1, 10, 12), on_wait=edit)
    api = await run_daemon(body, stopped)
    assert [name for name, *_ in made(api)] == ["report-202401011005", "report-202401011010"]
    assert max(stopped.waits) <= dags.POLL_SECONDS


async def test_a_dag_made_valid_runs_from_then_on(clock: Clock) -> None:
    """Ticks while the DAG was invalid make no run once it is fixed."""
    body = dag_body(schedule="@hourly")
    body["spec"]["tasks"] = [{"id": "a"}]  # neither python nor command

    def fix(now: datetime) -> None:
        if now >= t(2024, 1, 1, 12, 30):
            body["spec"]["tasks"] = [{"id": "a", "command": ["true"]}]

    api = await run_daemon(body, Stopped(clock, t(2024, 1, 1, 13, 0, 5), on_wait=fix))
    assert [name for name, *_ in made(api)] == ["report-202401011300"]


async def test_the_daemon_waits_without_a_valid_schedule_and_never_returns_early(clock: Clock) -> None:
    stopped = Stopped(clock, t(2024, 1, 1, 10, 10))
    api = await run_daemon(dag_body(schedule="every day"), stopped)
    assert api.runs == {}
    assert clock.now == t(2024, 1, 1, 10, 10)
    events = dag_body(timetable={"events": ["2024-01-01T10:05:00Z"]})
    clock.now = t(2024, 1, 1, 10)
    api = await run_daemon(events, Stopped(clock, t(2024, 1, 1, 10, 30)))
    assert [name for name, *_ in made(api)] == ["report-202401011005"]


async def changed(body: dict[str, Any]) -> tuple[FakeApi, dict[str, Any]]:
    memo = Memo()
    patch = kopf.Patch()
    await dags.dag_changed(  # type: ignore[arg-type]
        body=body,
        spec=body["spec"],
        meta=body["metadata"],
        status=body["status"],
        patch=patch,
        memo=memo,
    )
    await asyncio.sleep(0)
    return memo.api, dict(patch.get("status") or {})


async def test_an_unscheduled_dag_gets_no_run_when_created() -> None:
    """Airflow's schedule=None: the DAG runs only when triggered."""
    api, status = await changed(dag_body())
    assert api.runs == {}
    assert "lastRun" not in status
    assert status["taskCount"] == 1


async def test_an_once_dag_gets_one_run_when_created() -> None:
    api, status = await changed(dag_body(schedule="@once"))
    assert list(api.runs) == ["report-0123abcd"]
    assert status["lastRun"] == "report-0123abcd"
    api, _ = await changed(dag_body({"lastRun": "report-0123abcd"}, schedule="@once"))
    assert api.runs == {}, "a restarted controller must not bring back a run a user deleted"


async def test_a_scheduled_dag_gets_no_run_when_created() -> None:
    api, _ = await changed(dag_body(timetable={"cron": "@daily", "timezone": "Europe/Amsterdam"}))
    assert api.runs == {}


class FlakyApi(FakeApi):
    """Refuses to create the runs named in `refused` (each as often as it says; -1: always)."""

    def __init__(self, refused: dict[str, int]) -> None:
        super().__init__()
        self.refused = refused
        self.events: list[dict[str, Any]] = []

    async def create_if_absent(self, manifest: dict[str, Any], namespace: str) -> dict[str, Any] | None:
        name = manifest["metadata"]["name"]
        if self.refused.get(name, 0) != 0:
            self.refused[name] -= 1
            raise Unreachable(0, f"POST DAGRun ns/{name}: cannot reach the API server")
        return await super().create_if_absent(manifest, namespace)

    async def create(self, manifest: dict[str, Any], namespace: str) -> dict[str, Any]:
        self.events.append(manifest)
        return manifest


async def run_daemon_over(api: FakeApi, body: dict[str, Any], stopped: Stopped) -> None:
    memo = Memo()
    memo.api = api
    await dags.run_schedule(body, stopped, memo)  # type: ignore[arg-type]
    await asyncio.sleep(0)


async def test_a_tick_whose_run_could_not_be_made_is_tried_again(clock: Clock) -> None:
    """It was dropped: the next run was the next tick. Now it is asked for again (5 s, then 10 s later),
    after one Warning Event naming the run and the API server's answer."""
    api = FlakyApi({"report-202401011001": 2})
    stopped = Stopped(clock, t(2024, 1, 1, 10, 2, 10))
    await run_daemon_over(api, dag_body(schedule="* * * * *"), stopped)
    assert [name for name, *_ in made(api)] == ["report-202401011001", "report-202401011002"]
    assert stopped.waits[1:3] == [dags.RETRY_SECONDS, 2 * dags.RETRY_SECONDS]
    failures = [e["message"] for e in api.events if e["reason"] == "ScheduleFailed"]
    assert len(failures) == 1
    assert failures[0].startswith("scheduled run report-202401011001 could not be made (it is tried again):")
    assert "cannot reach the API server" in failures[0]


async def test_a_tick_that_stays_unmade_gives_way_to_the_next_without_catchup(clock: Clock) -> None:
    api = FlakyApi({"report-202401011001": -1})
    await run_daemon_over(api, dag_body(schedule="* * * * *"), Stopped(clock, t(2024, 1, 1, 10, 3, 10)))
    assert [name for name, *_ in made(api)] == ["report-202401011002", "report-202401011003"]


async def test_with_catchup_a_restarted_daemon_makes_each_missed_run_oldest_first(clock: Clock) -> None:
    body = dag_body({"lastScheduleTime": "2024-01-01T07:00:00Z"}, schedule="@hourly", catchup=True)
    api = await run_daemon(body, Stopped(clock, t(2024, 1, 1, 11, 0, 5)))
    assert [name for name, *_ in made(api)] == [
        "report-202401010800",
        "report-202401010900",
        "report-202401011000",
        "report-202401011100",
    ]


async def test_with_catchup_a_dag_never_scheduled_runs_from_its_start(clock: Clock) -> None:
    body = dag_body(timetable={"cron": "0 6 * * *", "start": "2023-12-30T00:00:00Z"}, catchup=True)
    api = await run_daemon(body, Stopped(clock, t(2024, 1, 1, 10, 1)))
    assert [name for name, *_ in made(api)] == [
        "report-202312300600",
        "report-202312310600",
        "report-202401010600",
    ]


class Runtime:
    """The memo `dag_event` uses: the API client, Events' tasks and the schedules it keeps."""

    def __init__(self) -> None:
        self.api = FakeApi()
        self.background: set[asyncio.Task[None]] = set()
        self.schedules: dict[tuple[str, str], Any] = {}
        self.dags_seen: dict[tuple[str, str], Any] = {}


async def test_a_dags_schedule_follows_its_watch_events_and_needs_no_finalizer() -> None:
    memo = Runtime()
    key = ("ns", "report")

    async def event(type_: str | None, body: dict[str, Any]) -> None:
        await dags.dag_event(type_, kopf.Body(body), "ns", "report", memo)  # type: ignore[arg-type]

    await event(None, dag_body())  # no schedule: nothing runs
    assert memo.schedules == {}
    await event("ADDED", dag_body(schedule="@daily"))
    schedule = memo.schedules[key]
    assert not schedule.task.done()
    await event("MODIFIED", dag_body(schedule="@hourly"))
    assert memo.schedules[key] is schedule and schedule.body["spec"]["schedule"] == "@hourly"
    await event("MODIFIED", {**dag_body(schedule="@hourly"), "metadata": {"deletionTimestamp": "now"}})
    assert key not in memo.schedules and schedule.task.done()
    await event("ADDED", dag_body(schedule="@daily"))
    again = memo.schedules[key]
    await event("DELETED", dag_body(schedule="@daily"))
    assert key not in memo.schedules and again.task.done()
    await event("MODIFIED", dag_body(schedule="@daily"))
    await dags.stop_schedules(memo)  # type: ignore[arg-type]
    assert memo.schedules == {}


async def test_a_dag_is_validated_from_its_watch_events_once_per_generation() -> None:
    """No kopf create/update handler on DAGs (they would keep the whole spec in an annotation, too big for
    a DAG of thousands of tasks): the watch event validates each generation once per process."""
    from kdag.handlers.registry import build_registry

    memo = Runtime()
    body = dag_body()
    await dags.dag_event(None, kopf.Body(body), "ns", "report", memo)  # type: ignore[arg-type]
    await dags.dag_event("MODIFIED", kopf.Body(body), "ns", "report", memo)  # type: ignore[arg-type]
    assert [p["taskCount"] for p in memo.api.status_patches] == [1]
    body["metadata"]["generation"] = 2
    body["spec"]["tasks"].append({"id": "b", "command": ["true"]})
    await dags.dag_event("MODIFIED", kopf.Body(body), "ns", "report", memo)  # type: ignore[arg-type]
    assert [p["taskCount"] for p in memo.api.status_patches] == [1, 2]
    await dags.dag_event("DELETED", kopf.Body(body), "ns", "report", memo)  # type: ignore[arg-type]
    assert memo.dags_seen == {}
    registry = build_registry(webhook=False)
    changing = [h.selector for h in registry._changing.get_all_handlers()]
    assert changing and not [s for s in changing if getattr(s, "any_name", None) == "dags"]


async def test_a_restarted_controller_writes_no_dag_status_it_finds_as_it_would_write_it() -> None:
    """Every DAG is validated again when a controller starts: a DAG whose status is already what the
    validation makes costs no write, one whose status lags behind gets only what differs."""
    first = Runtime()
    body = dag_body()
    await dags.dag_event(None, kopf.Body(body), "ns", "report", first)  # type: ignore[arg-type]
    [written] = first.api.status_patches
    body["status"] = dict(written)
    restarted = Runtime()
    await dags.dag_event(None, kopf.Body(body), "ns", "report", restarted)  # type: ignore[arg-type]
    assert restarted.api.status_patches == []
    body["status"]["taskCount"] = 7
    again = Runtime()
    await dags.dag_event(None, kopf.Body(body), "ns", "report", again)  # type: ignore[arg-type]
    assert again.api.status_patches == [{"taskCount": 1}]
