"""DAGs: validate, report status, start the one run of an `@once` DAG, make the runs of a time schedule.

A DAG without `schedule` or `timetable` runs only when triggered (a DAGRun, `kdag trigger`), as Airflow's
`schedule=None`. `kdag.schedules` decides when each scheduled run is due; this module only creates them.

The schedule of a DAG runs in a task of this process (`follow_schedule`), started and stopped from the
DAG's watch events, not in a kopf daemon: kopf puts a finalizer on every object with a daemon, and a DAG
with a finalizer cannot be deleted while no controller runs. Nothing needs to happen when a DAG goes (its
runs are owned by it and go through garbage collection), so DAGs carry no finalizer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import kopf
from kdag_runner import keys

from kdag import conditions, dag_versions, manifests, names, schedules
from kdag.api.models import DAGStatus
from kdag.api.validation import check_dag_spec, name_problems, parse_dag_spec
from kdag.handlers import events
from kdag.handlers.dagruns import request_reconcile
from kdag.handlers.runtime import Runtime, Schedule, StopFlag
from kdag.kube import DAG, DAGRUN, KubeApiError
from kdag.render import format_time, parse_time

logger = logging.getLogger("kdag.dags")

RUN_ONCE_SCHEDULE = schedules.ONCE
"""The schedule under which a DAG gets exactly one run, when it is created (Airflow's `@once`)."""
POLL_SECONDS = 60.0
"""The schedule loop's longest sleep: an edited schedule takes effect within this long."""
RETRY_SECONDS = 5.0
"""How soon a scheduled run that could not be made is tried again (doubling, up to POLL_SECONDS)."""
RESTART_SECONDS = 5.0
"""How soon a schedule that stopped on an error starts again."""


async def _create_run(
    runtime: Runtime,
    dag: Mapping[str, Any],
    run_name: str,
    logical_date: datetime | None,
    data_interval: schedules.DataInterval | None = None,
) -> bool:
    """Create the DAGRun `run_name` of `dag`, owned by it; False when it already existed."""
    meta = dag["metadata"]
    manifest = manifests.dagrun_manifest(
        meta["name"],
        run_name,
        logical_date=logical_date,
        ttl_seconds_after_finished=(dag.get("spec") or {}).get("ttlSecondsAfterFinished"),
        owner_uid=meta["uid"],
        namespace=meta["namespace"],
        run_type=manifests.SCHEDULED,
    )
    if data_interval is not None:
        manifest["spec"]["dataInterval"] = {
            "start": format_time(data_interval.start),
            "end": format_time(data_interval.end),
        }
    created = await runtime.api.create_if_absent(manifest, meta["namespace"])
    if created is not None:
        events.post(runtime, keys.DAG_KIND, dict(dag), "Normal", "RunCreated", f"created DAGRun {run_name}")
    return created is not None


async def dag_changed(
    body: kopf.Body,
    spec: kopf.Spec,
    meta: kopf.Meta,
    status: kopf.Status,
    patch: kopf.Patch,
    memo: Runtime,
    **_: Any,
) -> None:
    """Validate the DAG and write its status once; an `@once` DAG gets its one run."""
    generation = meta.get("generation")
    now = datetime.now(UTC).replace(microsecond=0)
    model, problems = parse_dag_spec(spec)
    # A name too long for its runs' pods (the webhook refuses it; a DAG made without the webhook says so).
    problems = [*(str(p) for p in name_problems(keys.DAG_KIND, str(meta.get("name") or ""))), *problems]
    if model is None or problems:
        message = "; ".join(problems)
        invalid = DAGStatus(
            observed_generation=generation,
            conditions=conditions.merge_conditions(
                status.get("conditions"),
                conditions.invalid_conditions("InvalidSpec", message),
                generation,
                now,
            ),
        )
        patch.status.update(invalid.to_patch())
        events.post(memo, keys.DAG_KIND, dict(body), "Warning", "InvalidSpec", message)
        return
    valid = DAGStatus(
        observed_generation=generation,
        task_count=len(model.tasks),
        conditions=conditions.merge_conditions(
            status.get("conditions"),
            [
                conditions.ConditionValue("Ready", True, "Valid", f"{len(model.tasks)} tasks"),
                conditions.ConditionValue("Reconciling", False, "Valid"),
                conditions.ConditionValue("Stalled", False, "Valid"),
            ],
            generation,
            now,
        ),
    )
    if model.schedule == RUN_ONCE_SCHEDULE and not status.get("lastRun"):
        # Once per DAG object: a restarted controller must not bring back an initial run a user deleted.
        run_name = names.initial_run_name(meta["name"], meta["uid"])
        await _create_run(memo, body, run_name, None)
        valid.last_run = run_name
    patch.status.update(valid.to_patch())
    await _resume_waiting_runs(memo, meta["namespace"], meta["name"])


async def _resume_waiting_runs(runtime: Runtime, namespace: str, dag_name: str) -> None:
    """Runs created before their DAG existed (or was valid) follow no DAG version yet: start them now."""
    for run in await runtime.api.list(DAGRUN, namespace):
        waiting = dag_versions.run_version(run) is None
        if waiting and (run.get("spec") or {}).get("dagRef", {}).get("name") == dag_name:
            await request_reconcile(runtime, (namespace, run["metadata"]["name"]))


def has_schedule(spec: kopf.Spec, **_: Any) -> bool:
    """Whether a DAG runs on a time schedule (a timetable, or a schedule but `@once`): its loop runs."""
    return spec.get("timetable") is not None or spec.get("schedule") not in (None, RUN_ONCE_SCHEDULE)


def _timetable(spec: Mapping[str, Any]) -> schedules.Timetable | None:
    """The timetable of a valid DAG spec; None for an invalid one (`dag_changed` reports it) or none."""
    model, problems = check_dag_spec(spec)
    if model is None or problems:
        return None
    return schedules.timetable_of(model)


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


async def _create_scheduled_run(
    runtime: Runtime, body: Mapping[str, Any], run: schedules.ScheduledRun, report: bool = True
) -> bool:
    """The run `{dag}-{YYYYMMDDHHMM}` of the tick `run.run_after` (AlreadyExists: another pass made it), and
    the DAG's lastScheduleTime; False when it could not be made (the tick stays due and is tried again),
    after a Warning Event quoting the API server when `report` (the first failure of a tick)."""
    meta = body["metadata"]
    run_name = names.scheduled_run_name(meta["name"], run.run_after)
    try:
        await _create_run(runtime, body, run_name, run.logical_date, run.data_interval)
        ticked = DAGStatus(last_run=run_name, last_schedule_time=run.logical_date)
        await runtime.api.patch_status(DAG, meta["namespace"], meta["name"], ticked.to_patch())
    except (KubeApiError, ValueError) as error:
        logger.warning("scheduled run %s could not be made: %s", run_name, error)
        if report:
            message = f"scheduled run {run_name} could not be made (it is tried again): {error}"
            events.post(runtime, keys.DAG_KIND, dict(body), "Warning", "ScheduleFailed", message)
        return False
    return True


async def run_schedule(
    body: Mapping[str, Any], stopped: StopFlag | kopf.DaemonStopped, memo: Runtime, **_: Any
) -> None:
    """Make each run of the DAG's timetable when it is due, and those missed as `spec.catchup` says.

    Ticks before the schedule started, or before it was last edited, make no run (with catchup and a
    timetable `start`, a DAG never scheduled runs from its start). After ticks were missed (the controller
    was away: `status.lastScheduleTime` is older; a run could not be made) `schedules.due_run` says which
    run: only the newest (catchup off) or each, oldest first (catchup on). A run that could not be made is
    tried again, after a Warning Event, until it is made or a newer tick replaces it (catchup off). The
    loop re-reads the (live) spec at least every POLL_SECONDS and returns only when stopped.
    """
    cursor = datetime.now(UTC)  # runs due at or before the cursor are made or passed over
    spec_key: str | None = None
    schedule_key: str | None = None
    timetable: schedules.Timetable | None = None
    failures = 0  # of the run due now, in a row
    failed: schedules.ScheduledRun | None = None
    while not stopped:
        spec = dict(body.get("spec") or {})
        now = datetime.now(UTC)
        catchup = bool(spec.get("catchup"))
        if _key(spec) != spec_key:
            spec_key = _key(spec)
            valid_before, timetable = timetable is not None, _timetable(spec)
            edited = _key([spec.get("schedule"), spec.get("timetable")])
            if schedule_key is None:  # the first pass
                if timetable is not None:
                    last = (body.get("status") or {}).get("lastScheduleTime")
                    previous = parse_time(last) if last else None
                    cursor = schedules.resume_cursor(timetable, previous, now, catchup)
            elif edited != schedule_key or not valid_before:
                cursor = max(cursor, now)  # an edited (or just fixed) schedule starts now
            schedule_key = edited
        due = schedules.due_run(timetable, cursor, now, catchup) if timetable is not None else None
        if due is not None:
            if await _create_scheduled_run(memo, body, due, report=due != failed):
                cursor, failures, failed = due.run_after, 0, None
            else:
                failures = failures + 1 if due == failed else 1
                failed = due
                await stopped.wait(min(RETRY_SECONDS * 2 ** (failures - 1), POLL_SECONDS))
            continue
        upcoming = schedules.next_run(timetable, cursor) if timetable is not None else None
        delay = POLL_SECONDS if upcoming is None else (upcoming.run_after - now).total_seconds()
        await stopped.wait(min(max(delay, 0.001), POLL_SECONDS))


async def dag_event(
    type: str | None, body: kopf.Body, namespace: str | None, name: str | None, memo: Runtime, **_: Any
) -> None:
    """Follow the DAG's watch events: keep its schedule running while it has one and exists; stop it when
    it goes, is being deleted or loses its schedule (a watch event handler needs no finalizer)."""
    if not namespace or not name:
        return
    key = (namespace, name)
    gone = type == "DELETED" or bool(body.get("metadata", {}).get("deletionTimestamp"))
    if gone:
        memo.dags_seen.pop(key, None)
    else:
        await _validate_once(memo, body, key)
    if gone or not has_schedule(kopf.Spec(body)):
        await stop_schedule(memo, key)
        return
    current = memo.schedules.get(key)
    if current is not None and not current.task.done():
        current.body.clear()
        current.body.update(dict(body))  # the running loop reads its spec and status from here
        return
    live = dict(body)
    stop = StopFlag()
    task = asyncio.get_running_loop().create_task(follow_schedule(live, stop, memo))
    memo.schedules[key] = Schedule(body=live, stop=stop, task=task)


async def _validate_once(runtime: Runtime, body: kopf.Body, key: tuple[str, str]) -> None:
    """`dag_changed` once per generation of the DAG in this process (at start-up, for every DAG: what
    kopf's resume was), its status written directly. From watch events rather than kopf's create/update
    handlers, which keep a copy of the whole spec in an annotation: a DAG of thousands of tasks is larger
    than the 256 KiB Kubernetes allows all of an object's annotations."""
    meta = body.get("metadata") or {}
    marker = (str(meta.get("uid")), meta.get("generation"))
    if runtime.dags_seen.get(key) == marker:
        return
    patch = kopf.Patch()
    await dag_changed(
        body=body,
        spec=kopf.Spec(body),
        meta=kopf.Meta(body),
        status=kopf.Status(body),
        patch=patch,
        memo=runtime,
    )
    # Only what differs: a restarted controller validates every DAG again and finds most as it left them.
    stored = body.get("status") or {}
    changed = {k: v for k, v in (patch.get("status") or {}).items() if stored.get(k) != v}
    if changed:
        await runtime.api.patch_status(DAG, key[0], key[1], changed)
    runtime.dags_seen[key] = marker


async def follow_schedule(body: dict[str, Any], stop: StopFlag, memo: Runtime) -> None:
    """`run_schedule` until stopped; started again after an error, as kopf restarted its daemons."""
    while not stop:
        try:
            await run_schedule(body, stop, memo)
        except Exception:
            meta = body.get("metadata") or {}
            logger.exception("the schedule of DAG %s/%s failed", meta.get("namespace"), meta.get("name"))
            await stop.wait(RESTART_SECONDS)


async def stop_schedule(runtime: Runtime, key: tuple[str, str]) -> None:
    """Stop the DAG's schedule, if it runs, and wait for it to end."""
    schedule = runtime.schedules.pop(key, None)
    if schedule is None:
        return
    schedule.stop.set()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await asyncio.wait_for(schedule.task, timeout=5)


async def stop_schedules(runtime: Runtime) -> None:
    """Stop every schedule (the controller is stopping)."""
    for key in list(runtime.schedules):
        await stop_schedule(runtime, key)
