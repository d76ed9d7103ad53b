"""The DAG a run follows (`dag_of`): once the run started, the DAGVersion its status names; before, the DAG
as it is now, with the run's params checked against its schemas, whose version (made if absent) the run
then records. A run without one stays Pending and Stalled (`InvalidDAG`, `InvalidParams`), with a Warning
Event saying why. A version that is not the DAG's, or is gone, fails the run (`dag_versions.VersionError`,
raised to the pass: `run_failures.fail_run`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kdag_runner import keys

from kdag import conditions, dag_versions, params
from kdag.api.models import DAGRunStatus, DAGSpec, RunPhase
from kdag.api.validation import parse_dag_spec
from kdag.handlers import events
from kdag.handlers.runtime import Runtime
from kdag.kube import DAG, DAGRUN, JSONObject, KubeApi


async def dag_of(runtime: Runtime, dagrun: JSONObject) -> DAGSpec | None:
    """The DAG spec the run follows; None when it has none, after stalling the run with the reason."""
    meta = dagrun["metadata"]
    namespace = meta["namespace"]
    dag_name = str(((dagrun.get("spec") or {}).get("dagRef") or {}).get("name") or "")
    version = dag_versions.run_version(dagrun)
    if version is not None:
        return await dag_versions.read(runtime.api, runtime.dag_versions, namespace, version, dag_name)
    dag, spec, problem = await _load_dag(runtime.api, dagrun)
    if dag is None or spec is None:
        await _stall(runtime, dagrun, "InvalidDAG", problem)
        return None
    # Not started: its params must satisfy the DAG's schemas (kdag trigger checked them; kubectl did not).
    run_spec = dagrun.get("spec") or {}
    wrong = params.run_param_problems(spec, run_spec.get("params"), run_spec.get("conf"))
    if wrong:
        await _stall(runtime, dagrun, "InvalidParams", params.describe(wrong))
        return None
    # Recorded before any task starts: a pass that fails after this one follows the same version.
    version = await dag_versions.ensure(runtime.api, runtime.dag_versions, dag, spec)
    started = DAGRunStatus(dag_version=version)
    await runtime.api.patch_status(DAGRUN, namespace, meta["name"], started.to_patch())
    return spec


async def _load_dag(api: KubeApi, dagrun: JSONObject) -> tuple[dict[str, Any] | None, DAGSpec | None, str]:
    """The run's DAG object as it is now and its parsed spec; else why there is none."""
    namespace = dagrun["metadata"]["namespace"]
    dag_name = str(((dagrun.get("spec") or {}).get("dagRef") or {}).get("name") or "")
    dag = await api.get(DAG, namespace, dag_name)
    if dag is None:
        return None, None, f"spec.dagRef.name: DAG {dag_name!r} does not exist in namespace {namespace!r}"
    model, problems = parse_dag_spec(dag.get("spec") or {})
    if model is None or problems:
        return None, None, f"DAG {dag_name!r} is invalid: " + "; ".join(problems)
    return dag, model, ""


async def _stall(runtime: Runtime, dagrun: JSONObject, reason: str, message: str) -> None:
    """The run Pending and Stalled with `reason` and `message`, and a Warning Event, when that is new."""
    status = dagrun.get("status") or {}
    meta = dagrun["metadata"]
    wanted = conditions.merge_conditions(
        status.get("conditions"),
        conditions.invalid_conditions(reason, message),
        meta.get("generation"),
        datetime.now(UTC).replace(microsecond=0),
    )
    stalled = DAGRunStatus(phase=RunPhase.PENDING, conditions=wanted)
    if stalled.to_patch()["conditions"] != status.get("conditions"):
        await runtime.api.patch_status(DAGRUN, meta["namespace"], meta["name"], stalled.to_patch())
        events.post(runtime, keys.DAGRUN_KIND, dagrun, "Warning", reason, message)
