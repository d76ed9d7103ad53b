"""Commands that talk to the API server: apply, trigger, status, xcom, logs.

A small synchronous HTTP client over lightkube's kubeconfig handling: the CLI makes a handful of calls
and prints, so plain dicts over REST paths (the same `Kind` paths as the controller's) are enough.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from kdag import names
from kdag.api.models import DAGSpec
from kdag.cli.app import DagIdOption, Output, ParamOption, app, parse_conf, parse_date, parse_params
from kdag.cli.errors import EXIT_FAILED, UserError, reported
from kdag.render import format_time

GROUP_PATH = "/apis/kdag.dev/v1alpha1"
FIELD_MANAGER = "kdag-cli"
FINISHED_RUN_PHASES = ("Succeeded", "Failed")
AIRFLOW_RUN_STATE = {"Succeeded": "success", "Failed": "failed", "Running": "running", "Pending": "queued"}
AIRFLOW_TASK_STATE = {
    "Succeeded": "success",
    "Failed": "failed",
    "UpstreamFailed": "upstream_failed",
    "Skipped": "skipped",
    "Running": "running",
    "Retrying": "up_for_retry",
    "Pending": "queued",
}

NamespaceOption = Annotated[
    str | None, typer.Option("--namespace", "-n", help="Namespace (default: the kubeconfig context's).")
]
KubeconfigOption = Annotated[
    str | None, typer.Option("--kubeconfig", envvar="KUBECONFIG", help="kubeconfig file.")
]


@dataclass(frozen=True)
class Kind:
    """Where a kind lives in the REST tree (kdag.client has the same for the controller)."""

    api: str
    plural: str

    def path(self, namespace: str, name: str | None = None, subresource: str | None = None) -> str:
        """`{api}/namespaces/{ns}/{plural}[/{name}[/{subresource}]]`."""
        path = f"{self.api}/namespaces/{namespace}/{self.plural}"
        if name is not None:
            path += f"/{name}"
        if subresource is not None:
            path += f"/{subresource}"
        return path


DAGS = Kind(GROUP_PATH, "dags")
DAGRUNS = Kind(GROUP_PATH, "dagruns")
TASKRUNS = Kind(GROUP_PATH, "taskruns")
PODS = Kind("/api/v1", "pods")
CONFIGMAPS = Kind("/api/v1", "configmaps")
KINDS = {
    ("v1", "ConfigMap"): CONFIGMAPS,
    ("kdag.dev/v1alpha1", "DAG"): DAGS,
    ("kdag.dev/v1alpha1", "DAGRun"): DAGRUNS,
}


class ClusterError(UserError):
    """An answer from the API server the command cannot use; the message says which call and why."""


class Cluster:
    """Synchronous access to one cluster and namespace."""

    def __init__(self, namespace: str | None, kubeconfig: str | None) -> None:
        from lightkube.config.client_adapter import Client, ConnectionParams
        from lightkube.config.kubeconfig import KubeConfig

        try:
            config = KubeConfig.from_file(kubeconfig) if kubeconfig else KubeConfig.from_env()
        except Exception as err:
            raise UserError(f"cannot read the kubeconfig: {err}") from None
        single = config.get()
        if single is None:
            raise UserError("the kubeconfig has no current context")
        self.namespace: str = namespace or single.namespace
        self._http = Client(single, ConnectionParams())

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        """One call; a 4xx/5xx answer raises ClusterError with the server's message."""
        import httpx2 as httpx

        headers = {"Content-Type": content_type} if body is not None else {}
        content = json.dumps(body).encode() if body is not None else None
        try:
            response = self._http.request(method, path, content=content, headers=headers, params=params)
        except httpx.HTTPError as err:
            raise ClusterError(f"{method} {path}: {err}") from None
        if response.status_code >= 400:
            try:
                message = str(response.json().get("message", response.text))
            except ValueError:
                message = response.text
            raise ClusterError(f"{method} {path}: HTTP {response.status_code}: {message}")
        if "json" in response.headers.get("content-type", ""):
            return response.json()
        return response.text

    def get(self, kind: Kind, name: str) -> dict[str, Any] | None:
        """The object, or None when there is none of that name."""
        try:
            result: dict[str, Any] = self.request("GET", kind.path(self.namespace, name))
        except ClusterError as err:
            if "HTTP 404" in str(err):
                return None
            raise
        return result

    def require(self, kind: Kind, name: str, what: str) -> dict[str, Any]:
        """The object; a missing one is the user's mistake, named."""
        found = self.get(kind, name)
        if found is None:
            raise UserError(f"{what} '{name}' not found in namespace '{self.namespace}'")
        return found

    def list(self, kind: Kind, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        """Objects of a kind with these labels."""
        selector = ",".join(f"{k}={v}" for k, v in labels.items())
        answer = self.request("GET", kind.path(self.namespace), params={"labelSelector": selector})
        items: list[dict[str, Any]] = answer.get("items", [])
        return items

    def apply(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply of a whole object (created or replaced field by field)."""
        kind = _kind_of(manifest)
        body = {**manifest, "metadata": {**manifest["metadata"], "namespace": self.namespace}}
        result: dict[str, Any] = self.request(
            "PATCH",
            kind.path(self.namespace, manifest["metadata"]["name"]),
            body=body,
            params={"fieldManager": FIELD_MANAGER, "force": "true"},
            content_type="application/apply-patch+yaml",
        )
        return result

    def create(self, kind: Kind, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Create an object."""
        result: dict[str, Any] = self.request("POST", kind.path(self.namespace), body=manifest)
        return result

    def watch(self, kind: Kind, name: str, resource_version: str) -> Iterator[dict[str, Any]]:
        """The object each time it changes, from `resource_version` on, until the server ends the watch."""
        params = {
            "watch": "true",
            "fieldSelector": f"metadata.name={name}",
            "resourceVersion": resource_version,
            "timeoutSeconds": "60",
        }
        with self._http.stream("GET", kind.path(self.namespace), params=params, timeout=None) as response:
            for line in response.iter_lines():
                if not line.strip():
                    continue
                event = json.loads(line)
                if event.get("type") in ("ADDED", "MODIFIED"):
                    yield event["object"]


def _kind_of(manifest: Mapping[str, Any]) -> Kind:
    key = (str(manifest.get("apiVersion", "")), str(manifest.get("kind", "")))
    if key not in KINDS:
        raise UserError(f"kdag apply does not handle objects of apiVersion/kind {key[0]}/{key[1]}")
    return KINDS[key]


def fetch_dag_spec(name: str, namespace: str | None, kubeconfig: str | None) -> tuple[str, DAGSpec]:
    """A DAG's id and spec as the cluster holds it."""
    dag = Cluster(namespace, kubeconfig).require(DAGS, name, "DAG")
    spec = DAGSpec.model_validate(dag["spec"])
    return spec.dag_id or name, spec


@app.command("apply")
def apply_command(
    dag_file: Annotated[Path, typer.Argument(help="A Python DAG file or a YAML DAG manifest.")],
    namespace: NamespaceOption = None,
    kubeconfig: KubeconfigOption = None,
    dag_id: DagIdOption = None,
) -> None:
    """Create or update a DAG on the cluster (a Python file is compiled first, its source included)."""
    from kdag import compile as compiler

    with reported():
        loaded = compiler.load(dag_file, dag_id=dag_id)
        cluster = Cluster(namespace, kubeconfig)
        for manifest in loaded.manifests:
            cluster.apply(manifest)
            print(f"{str(manifest['kind']).lower()}/{manifest['metadata']['name']} applied")


def dagrun_manifest(
    dag: str,
    run_name: str,
    params: Mapping[str, Any],
    conf: Mapping[str, Any],
    logical_date: datetime | None = None,
) -> dict[str, Any]:
    """The DAGRun `kdag trigger` creates."""
    spec: dict[str, Any] = {"dagRef": {"name": dag}}
    if logical_date is not None:
        spec["logicalDate"] = format_time(logical_date)
    if params:
        spec["params"] = dict(params)
    if conf:
        spec["conf"] = dict(conf)
    return {
        "apiVersion": "kdag.dev/v1alpha1",
        "kind": "DAGRun",
        "metadata": {"name": run_name, "labels": names.labels(dag, run_name)},
        "spec": spec,
    }


@app.command("trigger")
def trigger_command(
    dag: Annotated[str, typer.Argument(help="metadata.name of the DAG.")],
    param: ParamOption = None,
    conf: Annotated[str | None, typer.Option("--conf", help="The run's conf, a JSON object.")] = None,
    logical_date: Annotated[
        str | None, typer.Option("--logical-date", help="Logical date (ISO 8601); default now.")
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Show progress until the run finishes.")] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds --wait waits at most.")] = 600.0,
    namespace: NamespaceOption = None,
    kubeconfig: KubeconfigOption = None,
) -> None:
    """Start a run of a DAG; prints the run's name. With --wait, exit status 1 when the run fails."""
    with reported():
        cluster = Cluster(namespace, kubeconfig)
        cluster.require(DAGS, dag, "DAG")
        run_name = names.manual_run_name(dag)
        manifest = dagrun_manifest(
            dag, run_name, parse_params(param), parse_conf(conf), parse_date(logical_date)
        )
        created = cluster.create(DAGRUNS, manifest)
        print(run_name)
        if not wait:
            return
        final = wait_for_run(cluster, created, timeout)
    phase = (final.get("status") or {}).get("phase")
    if phase != "Succeeded":
        raise typer.Exit(EXIT_FAILED)


def wait_for_run(cluster: Cluster, dagrun: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Follow a DAGRun through watches, with a progress bar on stderr, until it succeeds or fails."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

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
                for current in cluster.watch(DAGRUNS, name, version):
                    _show(progress, bar, name, current)
                    if (current.get("status") or {}).get("phase") in FINISHED_RUN_PHASES:
                        return current
                    if time.monotonic() > deadline:
                        break
            except Exception:  # a dropped watch: read the object again and resume from there
                time.sleep(0.5)
            current = cluster.require(DAGRUNS, name, "DAGRun")


def _show(progress: Any, bar: Any, name: str, dagrun: Mapping[str, Any]) -> None:
    status = dagrun.get("status") or {}
    done, _, total = str(status.get("progress") or "0/0").partition("/")
    running = [tid for tid, phase in (status.get("tasks") or {}).items() if phase in ("Running", "Retrying")]
    description = f"{name} {status.get('phase') or 'Pending'}"
    if running:
        description += f" ({', '.join(running)})"
    progress.update(bar, completed=int(done or 0), total=int(total or 0) or None, description=description)


@app.command("status")
def status_command(
    run: Annotated[str, typer.Argument(help="metadata.name of the DAGRun.")],
    output: Annotated[Output, typer.Option("--output", "-o")] = Output.text,
    namespace: NamespaceOption = None,
    kubeconfig: KubeconfigOption = None,
) -> None:
    """A run's phase and every task's phase, attempts and message."""
    from rich.console import Console
    from rich.table import Table

    with reported():
        cluster = Cluster(namespace, kubeconfig)
        dagrun = cluster.require(DAGRUNS, run, "DAGRun")
        status = dagrun.get("status") or {}
        taskruns = {
            tr["spec"]["taskId"]: tr
            for tr in cluster.list(TASKRUNS, {names.DAGRUN_LABEL: names.label_value(run)})
        }
        order = _task_order(dagrun)
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
                    }
                )
            )
            return
        console = Console()
        console.print(f"[bold]{run}[/]: {status.get('phase') or 'Pending'} ({status.get('progress') or '-'})")
        table = Table()
        for column in ("task", "phase", "attempts", "message"):
            table.add_column(column, overflow="fold")
        for tid in order:
            tr_status = (taskruns.get(tid) or {}).get("status") or {}
            table.add_row(
                tid,
                tasks.get(tid) or "-",
                str(tr_status.get("attempts") or ""),
                tr_status.get("message") or "",
            )
        console.print(table)


def _task_order(dagrun: Mapping[str, Any]) -> list[str]:
    """The run's task ids in topological order, from its DAG snapshot (or as the status lists them)."""
    from kdag import graph

    status = dagrun.get("status") or {}
    if status.get("dag"):
        return graph.topological_order(DAGSpec.model_validate(status["dag"]).tasks)
    return list(status.get("tasks") or {})


def run_xcoms(cluster: Cluster, run: str) -> dict[str, Any]:
    """The run as `kdag run --local -o json` prints it: state, task states and every pushed XCom."""
    from kdag_runner import store

    dagrun = cluster.require(DAGRUNS, run, "DAGRun")
    status = dagrun.get("status") or {}
    order = _task_order(dagrun)
    rows: list[dict[str, Any]] = []
    for tid in order:
        configmap = cluster.get(CONFIGMAPS, names.xcom_configmap_name(run, tid))
        if configmap is None:
            continue
        for key, value in store.decode(configmap.get("data") or {}).items():
            rows.append({"task_id": tid, "key": key, "value": value})
    dag_spec = status.get("dag") or {}
    phases = status.get("tasks") or {}
    return {
        "dag_id": dag_spec.get("dagId") or dagrun["spec"]["dagRef"]["name"],
        "run_id": run,
        "state": AIRFLOW_RUN_STATE.get(status.get("phase") or "Pending", "queued"),
        "tasks": {tid: AIRFLOW_TASK_STATE.get(phases.get(tid, ""), "none") for tid in order},
        "xcoms": rows,
    }


@app.command("xcom")
def xcom_command(
    run: Annotated[str, typer.Argument(help="metadata.name of the DAGRun.")],
    output: Annotated[
        Output, typer.Option("--output", "-o", help="json: one object, as run --local.")
    ] = Output.text,
    namespace: NamespaceOption = None,
    kubeconfig: KubeconfigOption = None,
) -> None:
    """Every XCom a run's tasks pushed, read from their ConfigMaps."""
    with reported():
        result = run_xcoms(Cluster(namespace, kubeconfig), run)
    if output == Output.json:
        print(json.dumps(result))
        return
    from rich.console import Console

    from kdag.cli.local_view import xcom_table
    from kdag.local.run import XComRow

    Console().print(xcom_table(XComRow(r["task_id"], r["key"], r["value"]) for r in result["xcoms"]))


@app.command("logs")
def logs_command(
    run: Annotated[str, typer.Argument(help="metadata.name of the DAGRun.")],
    task_id: Annotated[str, typer.Argument(help="The task id.")],
    container: Annotated[
        str, typer.Option("--container", "-c", help="task, or xcom (the sidecar).")
    ] = "task",
    namespace: NamespaceOption = None,
    kubeconfig: KubeconfigOption = None,
) -> None:
    """The log of a task's latest attempt (its pod's `task` container)."""
    with reported():
        cluster = Cluster(namespace, kubeconfig)
        taskrun = cluster.require(TASKRUNS, names.taskrun_name(run, task_id), "TaskRun")
        pod = (taskrun.get("status") or {}).get("podName")
        if not pod:
            raise UserError(f"task '{task_id}' of run '{run}' has no pod yet")
        text = cluster.request(
            "GET", PODS.path(cluster.namespace, pod, "log"), params={"container": container}
        )
    sys.stdout.write(text if isinstance(text, str) else json.dumps(text))
