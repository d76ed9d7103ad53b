"""A run's pages: the run (graph, Gantt, conditions, Events, task table), a task attempt (log, XComs,
inputs), and the two streams pages follow (state changes, a running attempt's log)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from kdag_runner.kube import Forbidden, KubeApiError

from kdag import manifests, names, topology
from kdag.kube import CONFIGMAP, DAG, DAGRUN, EVENT, POD, TASKRUN, JSONObject
from kdag.render import TASK_CONTAINER
from kdag.ui import drawing, layout, rows, stream, timeline
from kdag.ui.context import PageError, UiState, find_object, link_log, link_run, link_task, render, state
from kdag.ui.pages import GRID_RUNS

EVENTS_SHOWN = 50


def _int(text: str | None, default: int | None = None) -> int | None:
    try:
        return int(text) if text not in (None, "") else default
    except ValueError:
        raise PageError(400, f"not a number: {text!r}") from None


def find_run(request: web.Request) -> JSONObject:
    return find_object(request, DAGRUN, "run")


def owned_taskruns(ui: UiState, dagrun: JSONObject) -> list[JSONObject]:
    """The run's TaskRuns: labelled with it and owned by its uid (a label alone can be anyone's)."""
    namespace, name, uid = (
        dagrun["metadata"]["namespace"],
        dagrun["metadata"]["name"],
        dagrun["metadata"]["uid"],
    )
    return [tr for tr in ui.store.taskruns(namespace, name) if manifests.owned_by(tr, uid)]


async def events_of(ui: UiState, namespace: str, name: str) -> tuple[list[JSONObject], str]:
    """The newest Events about an object, and why there are none when they cannot be read."""
    try:
        page = await ui.api.list_page(EVENT, namespace, fields=f"involvedObject.name={name}", limit=500)
    except KubeApiError as err:
        return [], str(err)
    newest = sorted(
        page.items, key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""), reverse=True
    )
    return newest[:EVENTS_SHOWN], ""


async def run_page(request: web.Request) -> web.Response:
    ui = state(request)
    dagrun = find_run(request)
    namespace, name = dagrun["metadata"]["namespace"], dagrun["metadata"]["name"]
    status = dagrun.get("status") or {}
    spec = await ui.run_spec(dagrun)
    order = topology.topological_order(spec.tasks) if spec is not None else list(status.get("tasks") or {})
    phases: dict[str, str] = status.get("tasks") or {}
    taskruns = owned_taskruns(ui, dagrun)
    now = datetime.now(UTC)
    all_rows = rows.task_rows(order, phases, taskruns, now)
    wanted = request.query.get("state", "")
    shown = [row for row in all_rows if row.phase == wanted] if wanted else all_rows
    page_rows, page, pages = rows.page_of(shown, _int(request.query.get("page"), 1) or 1)
    graph: Any = None
    if spec is not None and len(spec.tasks) <= layout.MAX_GRAPH_TASKS:
        graph = drawing.graph_svg(
            layout.layout(spec.tasks), phases, lambda tid: link_task(namespace, name, tid)
        )
    by_name = {tr["metadata"]["name"]: tr for tr in taskruns}
    gantt_tasks = []
    pushed: list[tuple[str, int | None]] = []
    for row in page_rows:
        taskrun = by_name.get(names.taskrun_name(name, row.task_id, row.map_index))
        if taskrun is not None:
            gantt_tasks.append(
                (row.task_id, row.map_index, ui.store.pods(namespace, taskrun["metadata"]["name"]))
            )
            if (taskrun.get("status") or {}).get("xcomKeys"):  # only tasks that pushed: one read each
                pushed.append((row.task_id, row.map_index))
    read = await asyncio.gather(*(read_xcoms(ui, dagrun, tid, index) for tid, index in pushed))
    xcoms = [(tid, row) for (tid, _), (found, _) in zip(pushed, read, strict=True) for row in found]
    xcom_problems = sorted({problem for _, problem in read if problem})
    chart = drawing.gantt_svg(
        timeline.gantt(gantt_tasks, now), lambda t, i, a: link_task(namespace, name, t, i, a)
    )
    events, events_problem = await events_of(ui, namespace, name)
    done, _, total = str(status.get("progress") or "0/0").partition("/")
    counts: dict[str, int] = {}
    for phase in phases.values():
        counts[phase] = counts.get(phase, 0) + 1
    return render(
        request,
        "run.html",
        run=dagrun,
        run_status=status,
        namespace=namespace,
        name=name,
        graph=graph,
        gantt=chart,
        rows=page_rows,
        page=page,
        pages=pages,
        wanted=wanted,
        total_rows=len(shown),
        events=events,
        xcoms=xcoms,
        xcom_problems=xcom_problems,
        events_problem=events_problem,
        done=int(done or 0),
        total=int(total or 0) or len(order),
        counts=counts,
        link_task=link_task,
        dag=dagrun["spec"]["dagRef"]["name"],
        max_graph=layout.MAX_GRAPH_TASKS,
        pods_problem=ui.store.problem(POD, namespace),
    )


async def read_xcoms(
    ui: UiState, dagrun: JSONObject, task: str, map_index: int | None
) -> tuple[list[rows.XComRow], str]:
    """The task's XCom rows from its ConfigMap (owned by the run), and why there are none if unreadable."""
    namespace, name = dagrun["metadata"]["namespace"], dagrun["metadata"]["name"]
    try:
        configmap = await ui.api.get(CONFIGMAP, namespace, names.xcom_configmap_name(name, task, map_index))
    except Forbidden as err:
        return [], f"not allowed to read this task's XCom ConfigMap: {err}"
    if configmap is None or not manifests.owned_by(configmap, dagrun["metadata"]["uid"]):
        return [], ""
    try:
        return rows.xcom_rows(configmap.get("data") or {}, map_index), ""
    except ValueError as err:  # XComError is not one; a malformed store is shown, not raised
        return [], f"the XCom ConfigMap cannot be read: {err}"
    except Exception as err:
        return [], f"the XCom ConfigMap cannot be read: {err}"


def _attempt_pod(
    ui: UiState, namespace: str, taskrun: JSONObject | None, number: int | None
) -> tuple[list[timeline.Attempt], timeline.Attempt | None, JSONObject | None]:
    pods = ui.store.pods(namespace, taskrun["metadata"]["name"]) if taskrun else []
    attempts = timeline.attempts(pods)
    chosen = (
        next((a for a in attempts if a.number == number), None)
        if number
        else (attempts[-1] if attempts else None)
    )
    pod = next((p for p in pods if chosen and p["metadata"]["name"] == chosen.pod), None)
    return attempts, chosen, pod


async def task_page(request: web.Request) -> web.Response:
    ui = state(request)
    dagrun = find_run(request)
    namespace, name, task = (
        dagrun["metadata"]["namespace"],
        dagrun["metadata"]["name"],
        request.match_info["task"],
    )
    map_index = _int(request.query.get("map_index"))
    spec = await ui.run_spec(dagrun)
    phases = (dagrun.get("status") or {}).get("tasks") or {}
    known = {t.id for t in spec.tasks} if spec is not None else set(phases)
    if task not in known:
        raise PageError(404, f"run '{name}' has no task '{task}'")
    taskrun = ui.store.get(TASKRUN, namespace, names.taskrun_name(name, task, map_index))
    if taskrun is not None and not manifests.owned_by(taskrun, dagrun["metadata"]["uid"]):
        taskrun = None
    instances = (
        sorted(
            (rows.map_index_of(tr), (tr.get("status") or {}).get("phase") or "Pending")
            for tr in owned_taskruns(ui, dagrun)
            if tr["spec"]["taskId"] == task and rows.map_index_of(tr) is not None
        )
        if map_index is None
        else []
    )
    attempts, chosen, pod = _attempt_pod(ui, namespace, taskrun, _int(request.query.get("attempt")))
    log_text, log_problem = "", ""
    if chosen is not None and not chosen.running:
        try:
            chunks = [
                c
                async for c in ui.api.follow_log(
                    namespace, chosen.pod, TASK_CONTAINER, follow=False, limit_bytes=stream.LOG_LIMIT_BYTES
                )
            ]
            log_text = b"".join(chunks).decode("utf-8", errors="replace")
        except KubeApiError as err:
            log_problem = str(err)
    elif chosen is None:
        phase = ((taskrun or {}).get("status") or {}).get("phase") or phases.get(task) or "Pending"
        log_problem = f"task '{task}' has no pod ({phase}): it never started, so it has no log"
    xcoms, xcom_problem = await read_xcoms(ui, dagrun, task, map_index)
    task_spec = (taskrun or {}).get("spec", {}).get("task") or {}
    return render(
        request,
        "task.html",
        run=dagrun,
        namespace=namespace,
        name=name,
        task=task,
        map_index=map_index,
        taskrun=taskrun,
        tr_status=(taskrun or {}).get("status") or {},
        phase=phases.get(task, ""),
        attempts=attempts,
        chosen=chosen,
        log_text=log_text,
        log_problem=log_problem,
        xcoms=xcoms,
        xcom_problem=xcom_problem,
        inputs=rows.received_inputs(task_spec, pod),
        instances=instances,
        link_task=link_task,
        link_run=link_run,
        dag=dagrun["spec"]["dagRef"]["name"],
        task_json=_task_json(task_spec),
        log_url=link_log(namespace, name, task, map_index, chosen.number)
        if chosen and chosen.running
        else "",
    )


def _task_json(task_spec: dict[str, Any]) -> str:
    import json

    return json.dumps(task_spec, indent=2, sort_keys=True) if task_spec else ""


async def log_stream(request: web.Request) -> web.StreamResponse:
    """A running attempt's log as server-sent events (pods/log with follow), until its container ends."""
    ui = state(request)
    dagrun = find_run(request)
    namespace, name, task = (
        dagrun["metadata"]["namespace"],
        dagrun["metadata"]["name"],
        request.match_info["task"],
    )
    taskrun = ui.store.get(
        TASKRUN, namespace, names.taskrun_name(name, task, _int(request.query.get("map_index")))
    )
    _, chosen, _ = _attempt_pod(ui, namespace, taskrun, _int(request.query.get("attempt")))
    if chosen is None:
        raise PageError(404, f"task '{task}' of run '{name}' has no pod for that attempt")
    response = await stream.open_stream(request)
    chunks = ui.api.follow_log(
        namespace, chosen.pod, TASK_CONTAINER, follow=True, limit_bytes=stream.LOG_LIMIT_BYTES
    )
    return await stream.stream_log(response, chunks)


async def events_stream(request: web.Request) -> web.StreamResponse:
    """State changes for one page: `?ns=&run=` (a run's tasks), `?ns=&dag=` (a DAG's runs and tasks), or
    nothing (every run, for the DAG list); first a snapshot of what the page may have missed."""
    ui = state(request)
    interest = stream.Interest(
        request.query.get("ns", ""), request.query.get("dag", ""), request.query.get("run", "")
    )
    snapshot = page_snapshot(ui, interest)
    response = await stream.open_stream(request)
    return await stream.follow(response, ui.hub, interest, snapshot)


def page_snapshot(ui: UiState, interest: stream.Interest) -> list[dict[str, Any]]:
    """The state now of what a page shows, sent before any change: a change between the page's render and
    its stream's (re)connection would otherwise be lost, and the page stale until reloaded. A run page: the
    run and its tasks; a DAG page: the runs its grid shows and their tasks; the DAG list: each DAG's newest
    run (any run message makes that page fetch itself again)."""
    if interest.run:
        dagrun = ui.store.get(DAGRUN, interest.namespace, interest.run)
        runs = [] if dagrun is None else [dagrun]
    elif interest.dag:
        runs = ui.store.runs(interest.namespace, interest.dag)[:GRID_RUNS]
    else:
        dags = ui.store.all(DAG)
        newest = (ui.store.runs(d["metadata"]["namespace"], d["metadata"]["name"])[:1] for d in dags)
        return [m for found in newest for run in found if (m := stream.message_of(DAGRUN, "MODIFIED", run))]
    snapshot: list[dict[str, Any]] = []
    for dagrun in runs:
        snapshot.extend(
            m for tr in owned_taskruns(ui, dagrun) if (m := stream.message_of(TASKRUN, "MODIFIED", tr))
        )
        snapshot.append(stream.message_of(DAGRUN, "MODIFIED", dagrun) or {})
    return snapshot


__all__ = ["events_stream", "link_run", "log_stream", "run_page", "task_page"]
