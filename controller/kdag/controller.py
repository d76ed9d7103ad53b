"""The controller process: kopf run programmatically with kdag's handlers, webhook and metrics.

`python -m kdag.controller` and `kdag controller` both end in `main()`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import socket
import tempfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kopf
from kdag_runner import keys

from kdag import metrics
from kdag.handlers import dags
from kdag.handlers.registry import RunsDiffBaseStorage, build_registry
from kdag.handlers.runtime import Runtime
from kdag.kube import VALIDATING_WEBHOOK_CONFIGURATION, KubeApi, KubeApiError
from kdag.settings import ControllerSettings
from kdag.webhook import self_signed_certificate, webhook_configuration

logger = logging.getLogger("kdag.controller")

WEBHOOK_CONFIGURATION = "kdag.dev"
"""Name of the ValidatingWebhookConfiguration the controller manages when it runs on the host."""
WEBHOOK_READY_SECONDS = 60.0
"""How long the host controller waits for its webhook server to listen before registering it anyway."""


@dataclass(frozen=True)
class HostWebhook:
    """The webhook server of a controller on the host: its self-signed certificate, and where it listens."""

    host: str
    port: int
    certfile: Path
    pkeyfile: Path

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    @classmethod
    def make(cls, settings: ControllerSettings) -> HostWebhook:
        """A certificate for the address the API server calls (loopback for a wildcard address)."""
        host = settings.webhook_host if settings.webhook_host not in ("0.0.0.0", "::") else "127.0.0.1"
        certfile, pkeyfile = self_signed_certificate(Path(tempfile.mkdtemp(prefix="kdag-webhook-")), host)
        return cls(host, settings.webhook_port, certfile, pkeyfile)


@dataclass(frozen=True)
class ProcessOptions:
    """Deployment choices beyond ControllerSettings (docs/design.md, "The chart and the controller")."""

    kubeconfig: str | None = None
    webhook_certfile: str | None = None
    webhook_keyfile: str | None = None
    liveness_endpoint: str | None = None
    peering_priority: int | None = None
    peering_lifetime: int | None = None
    standalone: bool = True

    @classmethod
    def from_env(cls, settings: ControllerSettings) -> ProcessOptions:
        env = os.environ
        priority = env.get("KDAG_PEERING_PRIORITY")
        lifetime = env.get("KDAG_PEERING_LIFETIME")
        if settings.peering and not priority:
            priority = str(zlib.crc32(socket.gethostname().encode()) % 1_000_000 + 1)
        return cls(
            kubeconfig=env.get("KUBECONFIG") or None,
            webhook_certfile=env.get("KDAG_WEBHOOK_CERTFILE") or None,
            webhook_keyfile=env.get("KDAG_WEBHOOK_KEYFILE") or None,
            liveness_endpoint=env.get("KDAG_LIVENESS_ENDPOINT") or None,
            peering_priority=_int_env("KDAG_PEERING_PRIORITY", priority),
            peering_lifetime=_int_env("KDAG_PEERING_LIFETIME", lifetime),
            standalone=not settings.peering,
        )


def _int_env(name: str, raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None


def _configure(
    settings: ControllerSettings,
    options: ProcessOptions,
    kopf_settings: kopf.OperatorSettings,
    host_webhook: HostWebhook | None = None,
) -> None:
    kopf_settings.posting.enabled = False  # kdag posts its own Events; kopf's would double them
    kopf_settings.watching.server_timeout = 300
    kopf_settings.watching.chunk_size = settings.list_chunk_size or None
    kopf_settings.queueing.idle_timeout = settings.event_worker_idle_ms / 1000
    kopf_settings.persistence.finalizer = keys.FINALIZER
    kopf_settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=keys.ANNOTATION_PREFIX
    )
    kopf_settings.persistence.diffbase_storage = RunsDiffBaseStorage(
        prefix=keys.ANNOTATION_PREFIX, key="last-handled-configuration"
    )
    if settings.peering:
        kopf_settings.peering.name = settings.peering
        kopf_settings.peering.clusterwide = not settings.namespaces
        if options.peering_priority is not None:
            kopf_settings.peering.priority = options.peering_priority
        if options.peering_lifetime is not None:
            kopf_settings.peering.lifetime = options.peering_lifetime
    if not settings.webhook_port:
        return
    if options.webhook_certfile and options.webhook_keyfile:
        # In a cluster the chart owns the webhook configuration and the certificate.
        kopf_settings.admission.server = kopf.WebhookServer(
            addr=settings.webhook_host,
            port=settings.webhook_port,
            certfile=options.webhook_certfile,
            pkeyfile=options.webhook_keyfile,
        )
        return
    # On the host: a self-signed certificate for the address the API server calls; kdag registers the
    # webhooks itself (`register_host_webhook`): kopf's managed configuration has no matchConditions.
    if host_webhook is None:
        raise ValueError("a controller on the host needs its webhook's certificate (HostWebhook.make)")
    kopf_settings.admission.server = kopf.WebhookServer(
        addr=settings.webhook_host,
        port=settings.webhook_port,
        host=host_webhook.host,
        certfile=str(host_webhook.certfile),
        pkeyfile=str(host_webhook.pkeyfile),
    )


async def _listening(host: str, port: int, timeout: float) -> bool:
    """Whether a TCP server accepts connections at host:port within `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True
    return False


async def register_host_webhook(api: KubeApi, webhook: HostWebhook) -> None:
    """Register the webhooks of a controller on the host once its server listens (so no request meets a
    closed port), with their matchConditions (`kdag.webhook.webhook_configuration`)."""
    if not await _listening(webhook.host, webhook.port, WEBHOOK_READY_SECONDS):
        logger.warning("the webhook server does not listen at %s yet; registering it anyway", webhook.url)
    configuration = webhook_configuration(WEBHOOK_CONFIGURATION, webhook.url, webhook.certfile.read_bytes())
    try:
        # Made anew, so that no webhook of an earlier controller (another port) stays in it.
        if await api.create_if_absent(configuration, "") is None:
            await api.delete(VALIDATING_WEBHOOK_CONFIGURATION, "", WEBHOOK_CONFIGURATION)
            await api.create(configuration, "")
    except KubeApiError:
        logger.exception("could not register the validating webhooks at %s", webhook.url)
        raise
    logger.info("registered the validating webhooks at %s", webhook.url)


async def unregister_host_webhook(api: KubeApi, webhook: HostWebhook) -> None:
    """Delete the webhook configuration when it still points at this controller: a webhook nobody serves
    would refuse every new DAG and DAGRun (never their deletion or metadata: see `kdag.webhook`)."""
    try:
        current = await api.get(VALIDATING_WEBHOOK_CONFIGURATION, "", WEBHOOK_CONFIGURATION)
        hooks = (current or {}).get("webhooks") or []
        urls = [str((hook.get("clientConfig") or {}).get("url", "")) for hook in hooks]
        if any(url.startswith(webhook.url + "/") for url in urls):
            await api.delete(VALIDATING_WEBHOOK_CONFIGURATION, "", WEBHOOK_CONFIGURATION)
    except KubeApiError as error:
        logger.warning("could not unregister the validating webhooks: %s", error)


async def operate(settings: ControllerSettings, options: ProcessOptions) -> None:
    """Run the operator until it is stopped (SIGINT/SIGTERM)."""
    runtime = Runtime(settings=settings, api=await KubeApi.connect(options.kubeconfig))
    registry = build_registry(webhook=bool(settings.webhook_port))
    in_cluster_webhook = bool(options.webhook_certfile and options.webhook_keyfile)
    host_webhook = HostWebhook.make(settings) if settings.webhook_port and not in_cluster_webhook else None

    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        _configure(runtime.settings, options, settings, host_webhook)

    kopf.on.startup(registry=registry)(configure)
    registering = (
        asyncio.create_task(register_host_webhook(runtime.api, host_webhook)) if host_webhook else None
    )
    try:
        # Loopback unless told otherwise: the chart listens on the pod's address behind its NetworkPolicy.
        metrics.serve(settings.metrics_port, settings.metrics_host)
        await kopf.operator(
            registry=registry,
            memo=runtime,
            clusterwide=not settings.namespaces,
            namespaces=list(settings.namespaces),
            standalone=options.standalone,
            priority=options.peering_priority or 0,
            liveness_endpoint=options.liveness_endpoint,
        )
    finally:
        await dags.stop_schedules(runtime)
        if registering is not None:
            registering.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await registering
        if host_webhook is not None:
            await unregister_host_webhook(runtime.api, host_webhook)
        await runtime.api.close()


def run(settings: ControllerSettings | None = None, options: ProcessOptions | None = None) -> None:
    """Run the controller in the foreground with these settings (default: from the environment)."""
    settings = settings or ControllerSettings.from_env()
    options = options or ProcessOptions.from_env(settings)
    asyncio.run(operate(settings, options))


_WATCH_EVENT_HANDLERS = ("'task_pod_changed'", "'dagrun_deleted'", "'dag_event'", "'taskrun_changed'")


def _quiet_watch_events(record: logging.LogRecord) -> bool:
    """Drop kopf's INFO line for every watch event handled; warnings and errors pass."""
    message = record.getMessage()
    return record.levelno > logging.INFO or not any(h in message for h in _WATCH_EVENT_HANDLERS)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of `python -m kdag.controller`: settings from KDAG_* env, a few flags for humans."""
    parser = argparse.ArgumentParser(prog="kdag controller", description=__doc__)
    parser.add_argument("--verbose", action="store_true", help="log kopf's debug messages")
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, in-cluster)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # One line per API request or pod event is too much at INFO; kdag logs what it decides instead.
    logging.getLogger("kopf.objects").addFilter(_quiet_watch_events)
    if args.kubeconfig:
        os.environ["KUBECONFIG"] = args.kubeconfig
    run()


if __name__ == "__main__":
    main()
