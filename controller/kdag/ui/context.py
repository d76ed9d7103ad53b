"""What every page handler shares: the settings, the client, the watched objects, the open pages, the
templates (Jinja2 with autoescape: task ids, XCom values and logs are data, never template text)."""

from __future__ import annotations

import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from aiohttp import web

from kdag import dag_versions
from kdag.api.models import DAGSpec
from kdag.kube import DAG, DAGVERSION, JSONObject, Kind
from kdag.ui import rows
from kdag.ui.cache import Store
from kdag.ui.kube_reads import UiKubeApi
from kdag.ui.stream import Hub

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
MAX_VERSIONS = 64
"""Parsed DAG versions kept (a version never changes: parsed once, kept until pushed out)."""


@dataclass(frozen=True)
class UiSettings:
    """How `kdag ui` was started."""

    kubeconfig: str | None = None
    namespaces: tuple[str, ...] = ()
    """The namespaces to show; empty: every namespace the user may list (else the kubeconfig's)."""
    host: str = "127.0.0.1"
    port: int = 8080
    read_only: bool = False
    """No trigger form and no POST at all."""
    in_cluster: bool = False
    """Run by the chart: triggering only with `allow_trigger` (the chart's `ui.allowTrigger`)."""
    allow_trigger: bool = False

    @property
    def can_trigger(self) -> bool:
        return not self.read_only and (not self.in_cluster or self.allow_trigger)


@dataclass
class UiState:
    settings: UiSettings
    api: UiKubeApi
    store: Store
    hub: Hub = field(default_factory=Hub)
    csrf_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    notices: list[str] = field(default_factory=list)
    versions: OrderedDict[tuple[str, str], DAGSpec] = field(default_factory=OrderedDict)

    async def run_spec(self, dagrun: JSONObject) -> DAGSpec | None:
        """The DAG spec a run follows (its DAGVersion, read once), else its DAG's spec now (before the run
        started), None when neither can be read."""
        namespace = dagrun["metadata"]["namespace"]
        name = dag_versions.run_version(dagrun)
        if name:
            key = (namespace, name)
            if key in self.versions:
                self.versions.move_to_end(key)
                return self.versions[key]
            version = await self.api.get(DAGVERSION, namespace, name)
            if version is not None:
                spec = dag_versions.spec_of(version)
                self.versions[key] = spec
                if len(self.versions) > MAX_VERSIONS:
                    self.versions.popitem(last=False)
                return spec
        dag = self.store.get(DAG, namespace, str(dagrun["spec"]["dagRef"]["name"]))
        return dag_spec(dag) if dag is not None else None


def dag_spec(dag: JSONObject) -> DAGSpec | None:
    """A DAG object's spec; None when it does not parse (its Ready condition then says why)."""
    try:
        return DAGSpec.model_validate(dag.get("spec") or {})
    except ValueError:
        return None


class PageError(Exception):
    """A request this UI cannot answer, shown as a page with `status` and the message (never a traceback)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


STATE_KEY = web.AppKey("kdag_ui_state", UiState)


def state(request: web.Request) -> UiState:
    return request.app[STATE_KEY]


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.ChainableUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["q"] = lambda text: quote(str(text), safe="")
    env.filters["phase_class"] = rows.phase_class
    env.globals["AIRFLOW_STATE"] = rows.AIRFLOW_STATE
    env.globals["PHASES"] = rows.PHASES
    return env


ENV_KEY = web.AppKey("kdag_ui_templates", jinja2.Environment)


def render(request: web.Request, template: str, status: int = 200, **values: Any) -> web.Response:
    """A page: the template with the values, the server's notices (RBAC, watches), and the CSRF token."""
    ui = request.app.get(STATE_KEY)
    notices = [*(ui.notices if ui else []), *(ui.store.problems() if ui else [])]
    html = (
        request.app[ENV_KEY]
        .get_template(template)
        .render(
            notices=notices,
            csrf_token=ui.csrf_token if ui else "",
            can_trigger=bool(ui and ui.settings.can_trigger),
            **values,
        )
    )
    return web.Response(text=html, status=status, content_type="text/html")


def link_run(namespace: str, run: str) -> str:
    return f"/runs/{quote(namespace, safe='')}/{quote(run, safe='')}"


def link_task(
    namespace: str, run: str, task: str, map_index: int | None = None, attempt: int | None = None
) -> str:
    url = f"{link_run(namespace, run)}/tasks/{quote(task, safe='')}"
    query = [
        f"map_index={map_index}" if map_index is not None else "",
        f"attempt={attempt}" if attempt else "",
    ]
    joined = "&".join(q for q in query if q)
    return f"{url}?{joined}" if joined else url


def link_log(namespace: str, run: str, task: str, map_index: int | None, attempt: int) -> str:
    """The server-sent events of one attempt's log."""
    query = f"attempt={attempt}" + (f"&map_index={map_index}" if map_index is not None else "")
    return f"{link_run(namespace, run)}/tasks/{quote(task, safe='')}/log?{query}"


def find_object(request: web.Request, kind: Kind, path_key: str) -> JSONObject:
    """The object of `kind` the path names (`{ns}` and `path_key`); a clear 404 page when this UI cannot
    see it, saying why when the watch of that kind was refused."""
    ui = state(request)
    namespace, name = request.match_info["ns"], request.match_info[path_key]
    found = ui.store.get(kind, namespace, name)
    if found is None:
        why = ui.store.problem(kind, namespace)
        raise PageError(
            404, f"{kind.kind} '{name}' not found in namespace '{namespace}'" + (f" ({why})" if why else "")
        )
    return found
