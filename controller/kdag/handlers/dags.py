"""DAGs: validate, report status, start the initial run of an unscheduled DAG, run the cron schedule."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import kopf
from croniter import croniter

from kdag import names
from kdag.api.models import API_VERSION, GROUP, VERSION
from kdag.api.validation import parse_dag_spec
from kdag.client import DAGRUNS, DAGS, JSONObject, KubeApi
from kdag.handlers import conditions, events
from kdag.handlers.dagruns import request_reconcile
from kdag.handlers.runtime import RUNTIME
from kdag.render import format_time

logger = logging.getLogger("kdag.dags")


def dagrun_manifest(dag: kopf.Body, run_name: str, logical_date: datetime | None) -> JSONObject:
    """A DAGRun of `dag`, owned by it (deleting the DAG deletes its runs)."""
    meta = dag["metadata"]
    spec: JSONObject = {"dagRef": {"name": meta["name"]}}
    if logical_date is not None:
        spec["logicalDate"] = format_time(logical_date)
    ttl = (dag.get("spec") or {}).get("ttlSecondsAfterFinished")
    if ttl is not None:
        spec["ttlSecondsAfterFinished"] = ttl
    return {
        "apiVersion": API_VERSION,
        "kind": "DAGRun",
        "metadata": {
            "name": run_name,
            "namespace": meta["namespace"],
            "labels": names.labels(meta["name"]),
            "ownerReferences": [
                {"apiVersion": API_VERSION, "kind": "DAG", "name": meta["name"], "uid": meta["uid"]}
            ],
        },
        "spec": spec,
    }


async def _create_run(api: KubeApi, dag: kopf.Body, run_name: str, logical_date: datetime | None) -> bool:
    created = await api.create(dagrun_manifest(dag, run_name, logical_date), dag["metadata"]["namespace"])
    if created is not None:
        events.post(api, "DAG", dict(dag), "Normal", "RunCreated", f"created DAGRun {run_name}")
    return created is not None


@kopf.on.resume(GROUP, VERSION, "dags")
@kopf.on.create(GROUP, VERSION, "dags")
@kopf.on.update(GROUP, VERSION, "dags", field="spec")
async def dag_changed(
    body: kopf.Body, spec: kopf.Spec, meta: kopf.Meta, status: kopf.Status, patch: kopf.Patch, **_: Any
) -> None:
    """Validate the DAG and write its status once; an unscheduled DAG gets its one initial run."""
    api = RUNTIME.client()
    generation = meta.get("generation")
    now = format_time(datetime.now(UTC))
    model, problems = parse_dag_spec(spec)
    if model is None or problems:
        message = "; ".join(problems)
        patch.status["observedGeneration"] = generation
        patch.status["conditions"] = conditions.merge_conditions(
            status.get("conditions"), conditions.invalid_conditions("InvalidSpec", message), generation, now
        )
        events.post(api, "DAG", dict(body), "Warning", "InvalidSpec", message)
        return
    patch.status["observedGeneration"] = generation
    patch.status["taskCount"] = len(model.tasks)
    patch.status["conditions"] = conditions.merge_conditions(
        status.get("conditions"),
        [
            conditions.ConditionValue("Ready", True, "Valid", f"{len(model.tasks)} tasks"),
            conditions.ConditionValue("Reconciling", False, "Valid"),
            conditions.ConditionValue("Stalled", False, "Valid"),
        ],
        generation,
        now,
    )
    if model.schedule is None and not status.get("lastRun"):
        # Once per DAG object: a restarted controller must not bring back an initial run a user deleted.
        run_name = names.initial_run_name(meta["name"], meta["uid"])
        await _create_run(api, body, run_name, None)
        patch.status["lastRun"] = run_name
    await _resume_waiting_runs(api, meta["namespace"], meta["name"])


async def _resume_waiting_runs(api: KubeApi, namespace: str, dag_name: str) -> None:
    """Runs created before their DAG existed (or was valid) have no snapshot yet: start them now."""
    for run in await api.list(DAGRUNS, namespace, {}):
        waiting = not (run.get("status") or {}).get("dag")
        if waiting and (run.get("spec") or {}).get("dagRef", {}).get("name") == dag_name:
            await request_reconcile((namespace, run["metadata"]["name"]))


def next_schedule_time(schedule: str, after: datetime) -> datetime:
    """The first cron time strictly after `after` (UTC)."""
    value: datetime = croniter(schedule, after.astimezone(UTC)).get_next(datetime)
    return value.astimezone(UTC)


def _has_schedule(spec: kopf.Spec, **_: Any) -> bool:
    return bool(spec.get("schedule"))


@kopf.daemon(GROUP, VERSION, "dags", when=_has_schedule, cancellation_timeout=5)
async def run_schedule(body: kopf.Body, stopped: kopf.DaemonStopped, **_: Any) -> None:
    """At each cron time create the run `{dag}-{YYYYMMDDHHMM}` (AlreadyExists: another pass made it)."""
    api = RUNTIME.client()
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
            await _create_run(api, body, run_name, tick)
            await api.patch_status(
                DAGS,
                body["metadata"]["namespace"],
                body["metadata"]["name"],
                {"lastRun": run_name, "lastScheduleTime": format_time(tick)},
            )
        except Exception:
            logger.exception("scheduled run %s could not be created", run_name)
