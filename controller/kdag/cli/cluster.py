"""Commands that talk to the API server: apply, trigger, status, xcom, logs (registered by `kdag.cli.app`).

They go through kdag's one Kubernetes client (`kdag.kube.SyncKubeApi`), imported when a command runs so
that the local commands start without loading it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from kdag_runner import keys

from kdag import external_runs, manifests, names
from kdag.api.models import DAGSpec
from kdag.cli import run_params
from kdag.cli.errors import EXIT_FAILED, UserError, reported, to_stderr, warn
from kdag.cli.options import (
    ConfOption,
    DagIdOption,
    KubeconfigOption,
    LogicalDateOption,
    NamespaceOption,
    Output,
    ParamOption,
    parse_conf,
    parse_date,
)

if TYPE_CHECKING:
    from kdag.kube import Kind, SyncKubeApi

FINISHED_RUN_PHASES = ("Succeeded", "Failed")
AIRFLOW_RUN_STATE = {"Succeeded": "success", "Failed": "failed", "Running": "running", "Pending": "queued"}
AIRFLOW_TASK_STATE = {phase.value: state for phase, state in external_runs.AIRFLOW_TASK_STATE.items()}
APPLIED_KINDS = {("v1", "ConfigMap"), (keys.API_VERSION, keys.DAG_KIND), (keys.API_VERSION, keys.DAGRUN_KIND)}
"""What `kdag apply` writes: a DAG, its source ConfigMap, and DAGRuns in a YAML manifest."""


def connect(kubeconfig: str | None) -> SyncKubeApi:
    """A client of the kubeconfig (else $KUBECONFIG, ~/.kube/config or the in-cluster config)."""
    from kdag.kube import SyncKubeApi

    return SyncKubeApi(kubeconfig)


def require(api: SyncKubeApi, kind: Kind, namespace: str, name: str) -> dict[str, Any]:
    """The object; a missing one is the user's mistake, named."""
    found = api.get(kind, namespace, name)
    if found is None:
        raise UserError(f"{kind.kind} '{name}' not found in namespace '{namespace}'")
    return found


def fetch_dag_spec(name: str, namespace: str | None, kubeconfig: str | None) -> tuple[str, DAGSpec]:
    """A DAG's id and spec as the cluster holds it."""
    from kdag.kube import DAG

    with connect(kubeconfig) as api:
        dag = require(api, DAG, namespace or api.namespace, name)
    spec = DAGSpec.model_validate(dag["spec"])
    return spec.dag_id or name, spec


def apply_command(
    dag_file: Annotated[Path, typer.Argument(help="A Python DAG file or a YAML DAG manifest.")],
    namespace: NamespaceOption = None,
    kubeconfig: KubeconfigOption = None,
    dag_id: DagIdOption = None,
) -> None:
    """Create or update a DAG on the cluster (a Python file is compiled first, its source included).

    Then delete the DAG's earlier source ConfigMaps that no run under way reads."""
    from kdag import compile as compiler

    with reported():
        loaded = compiler.load(dag_file, dag_id=dag_id)
        for manifest in loaded.manifests:
            key = (str(manifest.get("apiVersion", "")), str(manifest.get("kind", "")))
            if key not in APPLIED_KINDS:
                raise UserError(f"kdag apply does not handle objects of apiVersion/kind {key[0]}/{key[1]}")
        with connect(kubeconfig) as api:
            apply_dag(api, namespace or api.namespace, loaded.name, loaded.manifests)
            prune_sources(api, namespace or api.namespace, loaded.name, loaded.spec)


def apply_dag(api: SyncKubeApi, namespace: str, dag: str, objects: list[dict[str, Any]]) -> None:
    """Server-side apply of each manifest, as kubectl's field manager (so a later `kubectl apply
    --server-side` of the same DAG takes it over); the DAG's source ConfigMaps owned by the DAG."""
    from kdag.kube import DAG

    existing = api.get(DAG, namespace, dag)
    uid = existing["metadata"]["uid"] if existing else None
    for manifest in objects:
        applied = api.apply(_owned_source(manifest, dag, uid), namespace, keys.CLI_FIELD_MANAGER)
        print(f"{str(manifest['kind']).lower()}/{manifest['metadata']['name']} applied")
        if manifest["kind"] == keys.DAG_KIND and manifest["metadata"]["name"] == dag:
            uid = applied["metadata"]["uid"]
    if existing is None and uid is not None:
        # A new DAG: its uid is known only now, so its source ConfigMaps (applied first, for its first
        # run's pods to find) get their owner in a second apply of their metadata.
        for manifest in objects:
            if _is_source(manifest, dag):
                api.apply(_owned_source(manifest, dag, uid), namespace, keys.CLI_FIELD_MANAGER)


def prune_sources(api: SyncKubeApi, namespace: str, dag: str, spec: DAGSpec) -> None:
    """Delete the DAG's source ConfigMaps that its spec no longer names and no run under way reads
    (`dag_sources.unused_versions`); a refusal is a warning: the DAG itself was applied."""
    from kdag_runner.kube import KubeApiError

    from kdag import dag_sources
    from kdag.kube import CONFIGMAP, DAGRUN, DAGVERSION

    current = spec.python_file.config_map if spec.python_file else None
    try:
        configmaps = api.list(CONFIGMAP, namespace, {names.DAG_LABEL: names.label_value(dag)})
        runs = api.list(DAGRUN, namespace)
        # The DAGVersions the runs under way follow name the source versions their pods mount.
        read = (api.get(DAGVERSION, namespace, name) for name in dag_sources.versions_read(dag, runs))
        versions = [version for version in read if version is not None]
        unused = dag_sources.unused_versions(dag, current, configmaps, runs, versions)
        for name in unused:
            api.delete(CONFIGMAP, namespace, name)
            print(f"configmap/{name} deleted (an earlier version of the DAG's source)")
    except KubeApiError as err:
        warn(f"earlier source ConfigMaps of DAG '{dag}' were not deleted: {err}")


def _is_source(manifest: Mapping[str, Any], dag: str) -> bool:
    return manifest.get("kind") == "ConfigMap" and names.is_source_configmap_of(
        dag, str(manifest["metadata"]["name"])
    )


def _owned_source(manifest: dict[str, Any], dag: str, uid: str | None) -> dict[str, Any]:
    """The manifest; a source ConfigMap of the DAG with an ownerReference to it, when its uid is known."""
    if uid is None or not _is_source(manifest, dag):
        return manifest
    metadata = {**manifest["metadata"], "ownerReferences": [manifests.dag_owner_reference(dag, uid)]}
    return {**manifest, "metadata": metadata}


def trigger_command(
    dag: Annotated[str, typer.Argument(help="metadata.name of the DAG.")],
    param: ParamOption = None,
    conf: ConfOption = None,
    logical_date: LogicalDateOption = None,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait", help="Show progress until the run finishes; if it fails, which tasks failed and why."
        ),
    ] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds --wait waits at most.")] = 600.0,
    namespace: NamespaceOption = None,
    kubeconfig: KubeconfigOption = None,
) -> None:
    """Start a run of a DAG and print its name.

    With --wait, follow it to the end: exit status 1 when it fails, with its failed tasks and their messages
    on stderr."""
    from kdag.kube import DAG

    with reported(), connect(kubeconfig) as api:
        namespace = namespace or api.namespace
        dag_object = require(api, DAG, namespace, dag)
        spec = run_params.dag_spec_of(dag_object)
        values, run_conf = run_params.typed_params(param, spec), parse_conf(conf)
        if spec is not None:  # refused here, before the DAGRun exists (the controller would stall it)
            run_params.check_run_params(dag, spec, values, run_conf)
        run_name = names.manual_run_name(dag)
        manifest = manifests.dagrun_manifest(
            dag,
            run_name,
            logical_date=parse_date(logical_date),
            params=values,
            conf=run_conf,
            # Owned by its DAG: deleting the DAG deletes its runs, as it does its scheduled ones.
            owner_uid=dag_object["metadata"]["uid"],
            run_type=manifests.MANUAL,
        )
        created = api.create(manifest, namespace)
        print(run_name)
        if not wait:
            return
        final = wait_for_run(api, namespace, created, timeout)
        if (final.get("status") or {}).get("phase") == "Succeeded":
            return
        explain_failure(api, namespace, final)
    raise typer.Exit(EXIT_FAILED)


def explain_failure(api: SyncKubeApi, namespace: str, dagrun: dict[str, Any]) -> None:
    """Print on stderr which tasks of a failed run failed and why, and how to read a log."""
    from kdag.cli.run_view import failure_lines
    from kdag.kube import TASKRUN

    run = dagrun["metadata"]["name"]
    taskruns = _owned(dagrun, api.list(TASKRUN, namespace, {names.DAGRUN_LABEL: names.label_value(run)}))
    to_stderr(
        "\n".join(failure_lines(dagrun, taskruns, _task_order(dagrun, _run_spec(api, dagrun)), namespace))
    )


def wait_for_run(api: SyncKubeApi, namespace: str, dagrun: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Follow a DAGRun through watches, with a progress bar on stderr, until it succeeds or fails."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from kdag.kube import DAGRUN

    name = dagrun["metadata"]["name"]
    deadline = time.monotonic() + timeout
    console = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        bar = progress.add_task(name, total=None)
        current = dagrun
        while True:
            _show(progress, bar, name, current)
            if (current.get("status") or {}).get("phase") in FINISHED_RUN_PHASES:
                return current
            if time.monotonic() > deadline:
                raise UserError(f"DAGRun '{name}' did not finish within {timeout:g} s")
            version = current["metadata"]["resourceVersion"]
            try:
                for current in api.watch(DAGRUN, namespace, name, version):
                    _show(progress, bar, name, current)
                    if (current.get("status") or {}).get("phase") in FINISHED_RUN_PHASES:
                        return current
                    if time.monotonic() > deadline:
                        break
            except Exception:  # a dropped watch: read the object again and resume from there
                time.sleep(0.5)
            current = require(api, DAGRUN, namespace, name)


def _show(progress: Any, bar: Any, name: str, dagrun: Mapping[str, Any]) -> None:
    status = dagrun.get("status") or {}
    done, _, total = str(status.get("progress") or "0/0").partition("/")
    waiting = ("Running", "Retrying", "UpForReschedule")
    running = [tid for tid, phase in (status.get("tasks") or {}).items() if phase in waiting]
    description = f"{name} {status.get('phase') or 'Pending'}"
    if running:
        description += f" ({', '.join(running)})"
    progress.update(bar, completed=int(done or 0), total=int(total or 0) or None, description=description)


def status_command(
    run: Annotated[str, typer.Argument(help="metadata.name of the DAGRun.")],
    output: Annotated[
        Output, typer.Option("--output", "-o", help="text: a table; json: one object, messages by task.")
    ] = Output.text,
    namespace: NamespaceOption = None,
    kubeconfig: KubeconfigOption = None,
) -> None:
    """A run's phase and every task's phase, attempts and message."""
    from kdag.kube import DAGRUN, TASKRUN

    with reported(), connect(kubeconfig) as api:
        namespace = namespace or api.namespace
        dagrun = require(api, DAGRUN, namespace, run)
        status = dagrun.get("status") or {}
        listed = _owned(dagrun, api.list(TASKRUN, namespace, {names.DAGRUN_LABEL: names.label_value(run)}))
        taskruns = {tr["spec"]["taskId"]: tr for tr in listed if tr["spec"].get("mapIndex") is None}
        instances = _instances(listed)
        order = _task_order(dagrun, _run_spec(api, dagrun))
        tasks = status.get("tasks") or {}
        if output == Output.json:
            print(
                json.dumps(
                    {
                        "run_id": run,
                        "phase": status.get("phase"),
                        "progress": status.get("progress"),
                        "tasks": {tid: tasks.get(tid) for tid in order},
                        "messages": {
                            tid: message
                            for tid in order
                            if (message := ((taskruns.get(tid) or {}).get("status") or {}).get("message"))
                        },
                        # A mapped task that expanded: its instance count and phases (status.mapped), and
                        # each instance's phase by map index.
                        "mapped": status.get("mapped") or {},
                        "instances": {
                            tid: {
                                str(i): (tr.get("status") or {}).get("phase")
                                for i, tr in sorted(instances[tid].items())
                            }
                            for tid in order
                            if tid in instances
                        },
                    }
                )
            )
            return
        from kdag.cli.run_view import print_status

        print_status(run, status, order, taskruns, instances)


def _instances(taskruns: list[dict[str, Any]]) -> dict[str, dict[int, dict[str, Any]]]:
    """The TaskRuns of mapped tasks' instances, by task id and map index."""
    found: dict[str, dict[int, dict[str, Any]]] = {}
    for taskrun in taskruns:
        index = taskrun["spec"].get("mapIndex")
        if index is not None:
            found.setdefault(taskrun["spec"]["taskId"], {})[int(index)] = taskrun
    return found


def _run_spec(api: SyncKubeApi, dagrun: Mapping[str, Any]) -> DAGSpec | None:
    """The DAG spec the run follows (its DAGVersion), None before it started or when that is gone."""
    from kdag import dag_versions
    from kdag.kube import DAGVERSION

    name = dag_versions.run_version(dagrun)
    version = api.get(DAGVERSION, dagrun["metadata"]["namespace"], name) if name else None
    return dag_versions.spec_of(version) if version is not None else None


def _task_order(dagrun: Mapping[str, Any], spec: DAGSpec | None) -> list[str]:
    """The run's task ids in topological order, from the DAG version it follows (or as its status lists
    them)."""
    from kdag import topology

    if spec is not None:
        return topology.topological_order(spec.tasks)
    return list((dagrun.get("status") or {}).get("tasks") or {})


def _owned(dagrun: Mapping[str, Any], listed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The objects the run owns: a label value may be another run's too (docs/design.md, "Names")."""
    return [obj for obj in listed if manifests.owned_by(obj, dagrun["metadata"]["uid"])]


def run_xcoms(api: SyncKubeApi, namespace: str, run: str) -> dict[str, Any]:
    """The run as `kdag run --local -o json` prints it: state, task states and every pushed XCom."""
    from kdag_runner import store

    from kdag.kube import CONFIGMAP, DAGRUN, TASKRUN

    dagrun = require(api, DAGRUN, namespace, run)
    status = dagrun.get("status") or {}
    spec = _run_spec(api, dagrun)
    order = _task_order(dagrun, spec)
    selector = {names.DAGRUN_LABEL: names.label_value(run)}
    # One list each: a mapped task's instances have a ConfigMap (and a TaskRun) apiece.
    owned_configmaps = _owned(dagrun, api.list(CONFIGMAP, namespace, selector))
    configmaps = {cm["metadata"]["name"]: cm for cm in owned_configmaps}
    instances = _instances(_owned(dagrun, api.list(TASKRUN, namespace, selector)))
    rows: list[dict[str, Any]] = []
    tasks: dict[str, str] = {}
    phases = status.get("tasks") or {}
    for tid in order:
        # A mapped instance is `task[i]` with its rows' `map_index`, as `kdag run --local -o json` says.
        for index, taskrun in sorted(instances.get(tid, {}).items()):
            phase = (taskrun.get("status") or {}).get("phase") or ""
            tasks[f"{tid}[{index}]"] = AIRFLOW_TASK_STATE.get(phase, "none")
            configmap = configmaps.get(names.xcom_configmap_name(run, tid, index)) or {}
            for key, value in store.decode(configmap.get("data") or {}).items():
                rows.append({"task_id": tid, "key": key, "value": value, "map_index": index})
        if tid in instances:
            continue
        tasks[tid] = AIRFLOW_TASK_STATE.get(phases.get(tid, ""), "none")
        configmap = configmaps.get(names.xcom_configmap_name(run, tid)) or {}
        for key, value in store.decode(configmap.get("data") or {}).items():
            rows.append({"task_id": tid, "key": key, "value": value})
    return {
        "dag_id": (spec.dag_id if spec is not None else None) or dagrun["spec"]["dagRef"]["name"],
        "run_id": run,
        "state": AIRFLOW_RUN_STATE.get(status.get("phase") or "Pending", "queued"),
        "tasks": tasks,
        "xcoms": rows,
    }


def xcom_command(
    run: Annotated[str, typer.Argument(help="metadata.name of the DAGRun.")],
    output: Annotated[
        Output, typer.Option("--output", "-o", help="json: one object, as run --local.")
    ] = Output.text,
    namespace: NamespaceOption = None,
    kubeconfig: KubeconfigOption = None,
) -> None:
    """Every XCom a run's tasks pushed, read from their ConfigMaps.

    Keys kdag writes for itself (beginning with `__`: `__context` carries `ti.context` downstream) are shown
    dimmed and marked (internal); -o json lists them as they are."""
    with reported(), connect(kubeconfig) as api:
        result = run_xcoms(api, namespace or api.namespace, run)
    if output == Output.json:
        print(json.dumps(result))
        return
    from kdag.cli.local_view import xcom_table
    from kdag.cli.terminal_view import console_for
    from kdag.local.run import XComRow

    rows = (XComRow(r["task_id"], r["key"], r["value"], r.get("map_index", -1)) for r in result["xcoms"])
    console_for().print(xcom_table(rows))
