"""DAGs: validate, report status, start the one run of an `@once` DAG, make the runs of a time schedule.

A DAG without `schedule` or `timetable` runs only when triggered (a DAGRun, `kdag trigger`), as Airflow's
`schedule=None`. `kdag.schedules` decides when each scheduled run is due; this module only creates them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import kopf
from kdag_runner import keys

from kdag import conditions, manifests, names, schedules
from kdag.api.models import DAGStatus
from kdag.api.validation import check_dag_spec, parse_dag_spec
from kdag.handlers import events
from kdag.handlers.dagruns import request_reconcile
from kdag.handlers.runtime import Runtime
from kdag.kube import DAG, DAGRUN
from kdag.render import format_time, parse_time

logger = logging.getLogger("kdag.dags")

RUN_ONCE_SCHEDULE = schedules.ONCE
"""The schedule under which a DAG gets exactly one run, when it is created (Airflow's `@once`)."""
POLL_SECONDS = 60.0
"""The schedule daemon's longest sleep: an edited schedule takes effect within this long."""


async def _create_run(
    runtime: Runtime,
    dag: kopf.Body,
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
    """Runs created before their DAG existed (or was valid) have no snapshot yet: start them now."""
    for run in await runtime.api.list(DAGRUN, namespace):
        waiting = not (run.get("status") or {}).get("dag")
        if waiting and (run.get("spec") or {}).get("dagRef", {}).get("name") == dag_name:
            await request_reconcile(runtime, (namespace, run["metadata"]["name"]))


def has_schedule(spec: kopf.Spec, **_: Any) -> bool:
    """Whether a DAG runs on a time schedule (the daemon's filter): a timetable, or a schedule but `@once`."""
    return spec.get("timetable") is not None or spec.get("schedule") not in (None, RUN_ONCE_SCHEDULE)


def _timetable(spec: Mapping[str, Any]) -> schedules.Timetable | None:
    """The timetable of a valid DAG spec; None for an invalid one (`dag_changed` reports it) or none."""
    model, problems = check_dag_spec(spec)
    if model is None or problems:
        return None
    return schedules.timetable_of(model)


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


async def _create_scheduled_run(runtime: Runtime, body: kopf.Body, run: schedules.ScheduledRun) -> None:
    """The run `{dag}-{YYYYMMDDHHMM}` of the tick `run.run_after` (AlreadyExists: another pass made it)."""
    meta = body["metadata"]
    run_name = names.scheduled_run_name(meta["name"], run.run_after)
    try:
        await _create_run(runtime, body, run_name, run.logical_date, run.data_interval)
        ticked = DAGStatus(last_run=run_name, last_schedule_time=run.logical_date)
        await runtime.api.patch_status(DAG, meta["namespace"], meta["name"], ticked.to_patch())
    except Exception:
        logger.exception("scheduled run %s could not be created", run_name)


async def run_schedule(body: kopf.Body, stopped: kopf.DaemonStopped, memo: Runtime, **_: Any) -> None:
    """Make each run of the DAG's timetable when it is due (catchup off).

    Ticks before the daemon started, or before the schedule was last edited, make no run, except that a
    daemon starting again after missed ticks makes the newest one (`schedules.missed_run`). The daemon
    re-reads the (live) spec at least every POLL_SECONDS and never returns while the DAG has a schedule,
    so kopf need not restart it.
    """
    cursor = datetime.now(UTC)  # runs due at or before the cursor are made or skipped
    spec_key: str | None = None
    schedule_key: str | None = None
    timetable: schedules.Timetable | None = None
    while not stopped:
        spec = dict(body.get("spec") or {})
        now = datetime.now(UTC)
        if _key(spec) != spec_key:
            spec_key = _key(spec)
            valid_before, timetable = timetable is not None, _timetable(spec)
            edited = _key([spec.get("schedule"), spec.get("timetable")])
            if schedule_key is None:  # the first pass
                last = (body.get("status") or {}).get("lastScheduleTime")
                missed = None
                if timetable is not None:
                    missed = schedules.missed_run(timetable, parse_time(last) if last else None, now)
                if missed is not None:
                    await _create_scheduled_run(memo, body, missed)
            elif edited != schedule_key or not valid_before:
                cursor = max(cursor, now)  # an edited (or just fixed) schedule starts now
            schedule_key = edited
        run = schedules.next_run(timetable, cursor) if timetable is not None else None
        delay = POLL_SECONDS if run is None else (run.run_after - now).total_seconds()
        if run is None or delay > 0:
            await stopped.wait(min(delay, POLL_SECONDS))
            continue
        await _create_scheduled_run(memo, body, run)
        cursor = run.run_after
