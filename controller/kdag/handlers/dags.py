"""DAGs: validate, report status, start the initial run of an unscheduled DAG, run the cron schedule."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import kopf
from croniter import croniter
from kdag_runner import keys

from kdag import conditions, manifests, names
from kdag.api.models import DAGStatus
from kdag.api.validation import parse_dag_spec
from kdag.handlers import events
from kdag.handlers.dagruns import request_reconcile
from kdag.handlers.runtime import Runtime
from kdag.kube import DAG, DAGRUN

logger = logging.getLogger("kdag.dags")

RUN_ONCE_SCHEDULES = (None, "@once")
"""Schedules under which a DAG gets exactly one run, when it is created (Airflow's `@once`)."""


async def _create_run(runtime: Runtime, dag: kopf.Body, run_name: str, logical_date: datetime | None) -> bool:
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
    """Validate the DAG and write its status once; an unscheduled (or `@once`) DAG gets its one run."""
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
    if model.schedule in RUN_ONCE_SCHEDULES and not status.get("lastRun"):
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


def next_schedule_time(schedule: str, after: datetime) -> datetime:
    """The first cron time strictly after `after` (UTC)."""
    value: datetime = croniter(schedule, after.astimezone(UTC)).get_next(datetime)
    return value.astimezone(UTC)


def has_schedule(spec: kopf.Spec, **_: Any) -> bool:
    """Whether a DAG runs on a cron schedule (the daemon's filter)."""
    return spec.get("schedule") not in RUN_ONCE_SCHEDULES


async def run_schedule(body: kopf.Body, stopped: kopf.DaemonStopped, memo: Runtime, **_: Any) -> None:
    """At each cron time create the run `{dag}-{YYYYMMDDHHMM}` (AlreadyExists: another pass made it)."""
    while not stopped:
        schedule = str(body.get("spec", {}).get("schedule") or "")
        if not schedule or not croniter.is_valid(schedule):
            return
        tick = next_schedule_time(schedule, datetime.now(UTC))
        delay = (tick - datetime.now(UTC)).total_seconds()
        await stopped.wait(max(delay, 0.0))
        if stopped:
            return
        if body.get("spec", {}).get("schedule") != schedule:
            continue
        run_name = names.scheduled_run_name(body["metadata"]["name"], tick)
        try:
            await _create_run(memo, body, run_name, tick)
            ticked = DAGStatus(last_run=run_name, last_schedule_time=tick)
            meta = body["metadata"]
            await memo.api.patch_status(DAG, meta["namespace"], meta["name"], ticked.to_patch())
        except Exception:
            logger.exception("scheduled run %s could not be created", run_name)
