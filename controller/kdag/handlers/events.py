"""Kubernetes Events on transitions, posted in the background so a slow Event never delays a decision."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from kdag_runner import keys

from kdag.api.models import API_VERSION
from kdag.handlers.runtime import Runtime
from kdag.kube import JSONObject

logger = logging.getLogger("kdag.events")


def event_manifest(kind: str, obj: JSONObject, type_: str, reason: str, message: str) -> JSONObject:
    """A core/v1 Event about a kdag object."""
    meta = obj["metadata"]
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta['name'][:200]}.", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": obj.get("apiVersion") or API_VERSION,
            "kind": kind,
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta.get("uid"),
        },
        "type": type_,
        "reason": reason,
        "message": message[:1024],
        "source": {"component": "kdag-controller"},
        "reportingComponent": f"{keys.GROUP}/controller",
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }


def post(runtime: Runtime, kind: str, obj: JSONObject, type_: str, reason: str, message: str) -> None:
    """Post the Event without waiting for it; a failure is only logged."""

    async def send() -> None:
        manifest = event_manifest(kind, obj, type_, reason, message)
        try:
            await runtime.api.create(manifest, obj["metadata"]["namespace"])
        except Exception as error:
            name = obj["metadata"]["name"]
            logger.warning("could not post Event %s on %s %s: %s", reason, kind, name, error)

    task = asyncio.get_running_loop().create_task(send())
    runtime.background.add(task)
    task.add_done_callback(runtime.background.discard)
