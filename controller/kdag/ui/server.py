"""The aiohttp application of `kdag ui`: routes, the error pages, and start-up (the client, which
namespaces to watch, the shared watches). `serve` runs it until interrupted."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware
from kdag_runner.kube import Forbidden, KubeApiError, NotFound, Unreachable

from kdag.kube import DAG
from kdag.ui import pages, run_pages
from kdag.ui.cache import Store
from kdag.ui.context import ENV_KEY, STATE_KEY, STATIC, PageError, UiSettings, UiState, environment, render
from kdag.ui.kube_reads import UiKubeApi

log = logging.getLogger("kdag.ui")
SYNC_SECONDS = 20.0
"""How long start-up waits for the first lists before serving pages anyway (with what has arrived)."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_status(err: BaseException) -> tuple[int, str]:
    """The status and the one-line message of an error a handler raised (pure: tested)."""
    if isinstance(err, PageError):
        return err.status, err.message
    if isinstance(err, web.HTTPException):
        return err.status, err.reason or err.text or ""
    if isinstance(err, Forbidden):
        return 403, f"Kubernetes refused this to your account (RBAC): {err}"
    if isinstance(err, NotFound):
        return 404, str(err)
    if isinstance(err, Unreachable):
        return 502, f"the API server did not answer: {err}"
    if isinstance(err, KubeApiError):
        return 502, f"the API server refused the request: {err}"
    return 500, f"internal error ({type(err).__name__}); the server's log has the details"


@web.middleware
async def error_pages(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error as a page saying what was wrong, with its status; never a traceback in the browser."""
    try:
        return await handler(request)
    except web.HTTPRedirection:
        raise
    except (PageError, web.HTTPException, KubeApiError) as err:
        status, message = error_status(err)
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception as err:
        log.exception("error serving %s", request.path)
        status, message = error_status(err)
    if request.headers.get("Accept", "") == "text/event-stream":
        return web.Response(status=status, text=message)
    return render(request, "error.html", status=status, status_code=status, message=message)


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """No inline script or foreign content may run (a second line behind escaping), no framing."""
    response = await handler(request)
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "frame-ancestors 'none'",
    )
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    return response


def is_loopback(name: str) -> bool:
    """`localhost` or a loopback address (127.0.0.0/8, ::1)."""
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_allowed(bound_to: str, host_header: str) -> bool:
    """Whether a request naming `host_header` may be served by a UI listening on `bound_to` (pure: tested).

    A UI on loopback acts with its user's kubeconfig: a page of another site whose name is made to resolve
    to 127.0.0.1 (DNS rebinding) would otherwise read it, and post its forms, as the same origin. So it
    answers only requests addressed to a loopback name. Served for others (the chart's pod on 0.0.0.0, behind
    a port-forward or an Ingress and the user's auth proxy), any name is the proxy's business."""
    if not is_loopback(bound_to.strip("[]").lower()):
        return True
    name = host_header.strip().lower()
    if name.startswith("["):
        name = name[1 : name.find("]")] if "]" in name else ""
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    return is_loopback(name)


def loopback_names_only(bound_to: str) -> Middleware:
    """Refuse requests `host_allowed` refuses with a bare text: no page, so no notices or names leak."""

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        host = request.headers.get("Host", "")
        if host_allowed(bound_to, host):
            return await handler(request)
        log.warning("refused a request for Host %r: this UI listens on %s", host, bound_to)
        return web.Response(
            status=403,
            text=f"refused: this kdag ui listens on {bound_to} and answers only requests addressed to "
            f"127.0.0.1, localhost or [::1], not {host!r} (another site's page: DNS rebinding)\n",
        )

    return check


async def choose_namespaces(api: UiKubeApi, wanted: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """The namespaces to watch and notices: those asked for; else all, when the user may list DAGs in every
    namespace; else the kubeconfig's own namespace, saying why."""
    if wanted:
        return list(wanted), []
    try:
        await api.list_page(DAG, "", limit=1)
        return [""], []
    except Forbidden:
        notice = (
            f"your account may not list DAGs in every namespace: showing namespace '{api.namespace}' "
            "(start kdag ui with --namespace to choose)"
        )
        return [api.namespace], [notice]


def build_app(settings: UiSettings, ready: UiState | None = None) -> web.Application:
    """The application; `ready` (tests) is a state already made, with no watches started."""
    app = web.Application(middlewares=[security_headers, loopback_names_only(settings.host), error_pages])
    app[ENV_KEY] = environment()
    app.router.add_get("/", pages.dags_page)
    app.router.add_get("/dags/{ns}/{dag}", pages.dag_page)
    app.router.add_post("/dags/{ns}/{dag}/runs", pages.trigger)
    app.router.add_get("/runs/{ns}/{run}", run_pages.run_page)
    app.router.add_get("/runs/{ns}/{run}/tasks/{task}", run_pages.task_page)
    app.router.add_get("/runs/{ns}/{run}/tasks/{task}/log", run_pages.log_stream)
    app.router.add_get("/events", run_pages.events_stream)
    app.router.add_get("/healthz", healthz)
    app.router.add_static("/static", STATIC)
    if ready is not None:
        app[STATE_KEY] = ready
    else:
        app.cleanup_ctx.append(lambda app: _running(app, settings))
    return app


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _running(app: web.Application, settings: UiSettings) -> AsyncIterator[None]:
    """Connect, choose the namespaces, start the watches; on shutdown stop them and close the client."""
    api = await UiKubeApi.connect(settings.kubeconfig)
    assert isinstance(api, UiKubeApi)  # connect builds `cls`
    try:
        namespaces, notices = await choose_namespaces(api, settings.namespaces)
    except KubeApiError:
        await api.close()
        raise
    store = Store(namespaces)
    ui = UiState(settings, api, store, notices=notices)
    store.listeners.append(ui.hub.changed)
    app[STATE_KEY] = ui
    tasks = store.start(api)
    await store.wait_synced(SYNC_SECONDS)
    try:
        yield
    finally:
        for subscriber in list(ui.hub.subscribers):
            subscriber.queue.put_nowait(None)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await api.close()


def serve(settings: UiSettings) -> None:
    """Run the UI until interrupted; print where it listens."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    app = build_app(settings)
    where = f"http://{settings.host}:{settings.port}"
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        print=lambda _: print(f"kdag ui on {where}", flush=True),
        shutdown_timeout=2.0,
    )
