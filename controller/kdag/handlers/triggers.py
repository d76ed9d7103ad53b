"""TriggerDagRunOperator requests: make the DAGRun a task asked for. The decisions are `kdag.triggers`';
this module reads the DAGs and runs and writes.

The task's pod never gets a right to create DAGRuns: its report asks (`status.trigger`, Requested), the
controller acts here within the same pass, and `kdag.handlers.questions` gives the next attempt
`KDAG_TRIGGERED_RUN`.
"""

from __future__ import annotations

from kdag_runner import keys

from kdag import params, triggers
from kdag.api.models import TaskRunStatus, TriggeredRun, TriggerState
from kdag.api.validation import parse_dag_spec
from kdag.handlers import events
from kdag.handlers.runtime import Runtime
from kdag.kube import DAG, DAGRUN, TASKRUN, JSONObject, KubeApi

PENDING = (TriggerState.REQUESTED, TriggerState.RESETTING)
"""States the controller still has to act on (`triggers.for_attempt` holds the next attempt meanwhile)."""


async def advance(runtime: Runtime, taskrun: JSONObject, trigger: TriggeredRun) -> TriggeredRun:
    """Act on a Requested or Resetting request of `taskrun`; write and return where it stands now."""
    if trigger.state not in PENDING:
        return trigger
    meta = taskrun["metadata"]
    namespace = meta["namespace"]
    now = await _advance(runtime.api, namespace, meta["name"], meta["uid"], trigger)
    if now == trigger:
        return trigger
    written = await runtime.api.patch_status(
        TASKRUN, namespace, meta["name"], TaskRunStatus(trigger=now).to_patch()
    )
    runtime.objects.observe(written)
    task = f"task {taskrun['spec']['taskId']!r}"
    if now.state == TriggerState.TRIGGERED:
        message = f"{task} triggered DAG {now.dag_id!r}: DAGRun {now.run}"
        events.post(runtime, keys.TASKRUN_KIND, taskrun, "Normal", "Triggered", message)
    elif now.state == TriggerState.RESETTING and trigger.state != TriggerState.RESETTING:
        message = f"{task} resets DAGRun {now.run} of DAG {now.dag_id!r} (reset_dag_run): deleting it"
        events.post(runtime, keys.TASKRUN_KIND, taskrun, "Normal", "ResettingRun", message)
    elif now.state in (TriggerState.FAILED, TriggerState.EXISTS):
        why = now.message or f"DAGRun {now.run} of DAG {now.dag_id!r} already exists"
        events.post(runtime, keys.TASKRUN_KIND, taskrun, "Warning", "TriggerRefused", f"{task}: {why}")
    return now


async def _advance(
    api: KubeApi, namespace: str, taskrun_name: str, taskrun_uid: str, trigger: TriggeredRun
) -> TriggeredRun:
    def failed(message: str) -> TriggeredRun:
        return trigger.model_copy(update={"state": TriggerState.FAILED, "message": message})

    dag, problem = triggers.find_dag(await api.list(DAG, namespace), trigger.dag_id, namespace)
    if dag is None:
        return failed(problem)
    dag_name = str(dag["metadata"]["name"])
    spec, problems = parse_dag_spec(dag.get("spec") or {})
    if spec is None or problems:
        return failed(f"DAG '{trigger.dag_id}' is invalid: " + "; ".join(problems))
    if trigger.state == TriggerState.REQUESTED:
        # Checked as `kdag trigger` checks a run's params, before the run exists.
        wrong = params.run_param_problems(spec, trigger.params, trigger.conf)
        if wrong:
            return failed(f"DAG '{trigger.dag_id}': {params.describe(wrong)}")
    run = trigger.run or triggers.run_name(trigger, dag_name, taskrun_uid)
    trigger = trigger.model_copy(update={"run": run})
    for _ in range(2):  # a run of that name made between the read and the create: read it again
        existing = await api.get(DAGRUN, namespace, run)
        if existing is None:
            manifest = triggers.dagrun_to_make(trigger, dag, run, taskrun_name, taskrun_uid, namespace)
            if await api.create_if_absent(manifest, namespace) is None:
                continue
            return _done(trigger, TriggerState.TRIGGERED)
        what = triggers.on_existing(existing, trigger, taskrun_uid)
        if what == "ours":
            return _done(trigger, TriggerState.TRIGGERED)
        if what == "exists":
            return _done(trigger, TriggerState.EXISTS)
        if what == "deleting":
            return trigger  # still going: a later pass looks again
        await api.delete(DAGRUN, namespace, run, foreground=True)
        return triggers.resetting(trigger, existing)
    return trigger


def _done(trigger: TriggeredRun, state: TriggerState) -> TriggeredRun:
    return trigger.model_copy(update={"state": state, "message": None})
