"""The DAG pages: every DAG, one DAG (grid, graph, params, trigger form), and the trigger itself."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from kdag import topology
from kdag.kube import DAG, DAGRUN, JSONObject
from kdag.ui import drawing, layout, rows, trigger_form
from kdag.ui.context import PageError, dag_spec, find_object, link_run, render, state

CREATED_WAIT_SECONDS = 5.0
"""How long a trigger waits for the watch to deliver the run it created before showing its page."""
GRID_RUNS = 20
"""Runs the DAG page's grid shows, newest on the right."""


async def dags_page(request: web.Request) -> web.Response:
    ui = state(request)
    dags = sorted(ui.store.all(DAG), key=lambda d: (d["metadata"]["namespace"], d["metadata"]["name"]))
    found = [
        rows.dag_row(dag, ui.store.runs(dag["metadata"]["namespace"], dag["metadata"]["name"]))
        for dag in dags
    ]
    return render(request, "dags.html", dags=found, namespaces=ui.store.namespaces, link_run=link_run)


def find_dag(request: web.Request) -> JSONObject:
    """The DAG the path names; a clear 404 page when this UI cannot see it."""
    return find_object(request, DAG, "dag")


async def dag_page(request: web.Request) -> web.Response:
    return await _dag_page(request, find_dag(request))


async def _dag_page(
    request: web.Request,
    dag: JSONObject,
    *,
    submitted: dict[str, str] | None = None,
    problems: list[str] | None = None,
    status: int = 200,
) -> web.Response:
    ui = state(request)
    namespace, name = dag["metadata"]["namespace"], dag["metadata"]["name"]
    spec = dag_spec(dag)
    runs = ui.store.runs(namespace, name)
    order = topology.topological_order(spec.tasks) if spec is not None else []
    try:
        page = int(request.query.get("page", "1"))
    except ValueError:
        page = 1
    tasks_page, page, pages = rows.page_of(order, page)
    table = rows.grid(tasks_page, runs, GRID_RUNS)
    graph: Any = None
    if spec is not None and len(spec.tasks) <= layout.MAX_GRAPH_TASKS:
        graph = drawing.graph_svg(layout.layout(spec.tasks), {})
    declared = trigger_form.fields(spec, submitted) if spec is not None else []
    return render(
        request,
        "dag.html",
        status=status,
        dag=dag,
        row=rows.dag_row(dag, runs),
        spec=spec,
        grid=table,
        page=page,
        pages=pages,
        graph=graph,
        fields=declared,
        problems=problems or [],
        submitted=submitted or {},
        link_run=link_run,
        namespace=namespace,
        name=name,
        max_graph=layout.MAX_GRAPH_TASKS,
    )


def check_same_origin(request: web.Request, token: str) -> None:
    """Refuse a POST another site's page made (CSRF): the browser's Origin (or Sec-Fetch-Site) must be this
    server, and the form must carry this server's token (which a page of another origin cannot read)."""
    origin = request.headers.get("Origin")
    if origin is not None and origin.split("://", 1)[-1].rstrip("/") != request.host:
        raise PageError(403, f"refused: the form was posted from another origin ({origin})")
    if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        raise PageError(403, "refused: the form was posted from another site")
    if token != state(request).csrf_token:
        raise PageError(403, "refused: the form's token is stale or missing; reload the page")


async def trigger(request: web.Request) -> web.StreamResponse:
    """Create a DAGRun from the form (as `kdag trigger` does), then show it; a bad form is shown again with
    every problem and status 422."""
    ui = state(request)
    if not ui.settings.can_trigger:
        raise PageError(
            403, "triggering is disabled in this kdag ui (--read-only, or in-cluster without ui.allowTrigger)"
        )
    form = {key: str(value) for key, value in (await request.post()).items()}
    check_same_origin(request, form.get("csrf", ""))
    dag = find_dag(request)
    spec = dag_spec(dag)
    if spec is None:
        raise PageError(422, f"DAG '{dag['metadata']['name']}' does not parse: fix it first")
    namespace, name = dag["metadata"]["namespace"], dag["metadata"]["name"]
    submission = trigger_form.read_form(name, dag["metadata"]["uid"], spec, form)
    if submission.manifest is None:
        return await _dag_page(request, dag, submitted=form, problems=submission.problems, status=422)
    created = await ui.api.create(submission.manifest, namespace)
    run = created["metadata"]["name"]
    # The run page reads the shared watch: wait (briefly) until it has seen the new run.
    for _ in range(int(CREATED_WAIT_SECONDS / 0.05)):
        if ui.store.get(DAGRUN, namespace, run) is not None:
            break
        await asyncio.sleep(0.05)
    raise web.HTTPSeeOther(link_run(namespace, run))
