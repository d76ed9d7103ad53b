"""Server-sent events: the shared watches' changes fanned out to every open page (`Hub`), and a task's log.

A browser holds one EventSource per page; its queue is bounded, and a page too slow to keep up is dropped
(EventSource reconnects and gets a fresh snapshot) rather than letting the server's memory grow.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from kdag_runner.kube import KubeApiError

from kdag.kube import DAGRUN, TASKRUN, JSONObject, Kind
from kdag.ui import rows
from kdag.ui.cache import label

QUEUE_SIZE = 2000
"""Messages a page may fall behind by before it is dropped (and reconnects)."""
HEARTBEAT_SECONDS = 15.0
"""A comment line this often keeps proxies from closing an idle stream."""
LOG_LIMIT_BYTES = 8 * 1024 * 1024
"""The most of one log the UI reads: the rest is for `kubectl logs`."""


@dataclass(frozen=True)
class Interest:
    """What one page wants to hear about: a namespace ("" any), and a DAG or a run in it."""

    namespace: str = ""
    dag: str = ""
    run: str = ""

    def wants(self, message: Mapping[str, Any]) -> bool:
        if self.namespace and message.get("ns") != self.namespace:
            return False
        if self.run:
            return message.get("run") == self.run or message.get("name") == self.run
        if self.dag:
            return message.get("dag") == self.dag
        return message.get("kind") == "run"  # the DAG list: runs only, not every task


@dataclass(eq=False)
class Subscriber:
    interest: Interest
    queue: asyncio.Queue[dict[str, Any] | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))


def message_of(kind: Kind, event_type: str, obj: JSONObject) -> dict[str, Any] | None:
    """What a page hears of a changed DAGRun or TaskRun (other kinds: nothing)."""
    metadata = obj.get("metadata") or {}
    deleted = event_type == "DELETED"
    if kind == DAGRUN:
        status = obj.get("status") or {}
        return {
            "kind": "run",
            "ns": metadata.get("namespace"),
            "name": metadata.get("name"),
            "dag": ((obj.get("spec") or {}).get("dagRef") or {}).get("name"),
            "phase": "Deleted" if deleted else status.get("phase") or "Pending",
            "progress": status.get("progress") or "",
        }
    if kind == TASKRUN:
        return {"ns": metadata.get("namespace"), "dag": label(obj, "kdag.dev/dag"), **rows.task_message(obj)}
    return None


class Hub:
    """The open pages, and the changes each wants."""

    def __init__(self) -> None:
        self.subscribers: set[Subscriber] = set()

    def changed(self, kind: Kind, event_type: str, obj: JSONObject) -> None:
        """A Store listener: one message, to every page that wants it."""
        message = message_of(kind, event_type, obj)
        if message is not None:
            self.publish(message)

    def publish(self, message: dict[str, Any]) -> None:
        for subscriber in list(self.subscribers):
            if not subscriber.interest.wants(message):
                continue
            try:
                subscriber.queue.put_nowait(message)
            except asyncio.QueueFull:  # too slow: end its stream, it reconnects and gets a snapshot
                self.subscribers.discard(subscriber)
                with contextlib.suppress(asyncio.QueueEmpty):
                    subscriber.queue.get_nowait()
                subscriber.queue.put_nowait(None)

    @contextlib.asynccontextmanager
    async def subscribe(self, interest: Interest) -> AsyncIterator[Subscriber]:
        subscriber = Subscriber(interest)
        self.subscribers.add(subscriber)
        try:
            yield subscriber
        finally:
            self.subscribers.discard(subscriber)


async def open_stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
    await response.prepare(request)
    return response


def sse(event: str, data: Any) -> bytes:
    """One server-sent event; `data` as JSON on one line (JSON has no raw newlines)."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def follow(
    response: web.StreamResponse, hub: Hub, interest: Interest, snapshot: list[dict[str, Any]]
) -> web.StreamResponse:
    """Send the snapshot, then every change the page wants, until the page goes away."""
    async with hub.subscribe(interest) as subscriber:
        try:
            await response.write(sse("snapshot", snapshot))
            while True:
                try:
                    message = await asyncio.wait_for(subscriber.queue.get(), HEARTBEAT_SECONDS)
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                if message is None:
                    return response
                await response.write(sse(str(message.get("kind")), message))
        except ConnectionResetError:  # the page went away: its EventSource is closed
            return response


async def stream_log(response: web.StreamResponse, chunks: AsyncIterator[bytes]) -> web.StreamResponse:
    """A log as `line` events (one per chunk of whole lines), then `end`; an API error as `error`."""
    pending = b""
    try:
        async for chunk in chunks:
            pending += chunk
            whole, _, pending = pending.rpartition(b"\n")
            if whole:
                await response.write(sse("line", (whole + b"\n").decode("utf-8", errors="replace")))
        if pending:
            await response.write(sse("line", pending.decode("utf-8", errors="replace")))
        await response.write(sse("end", "the container has ended"))
    except KubeApiError as err:
        with contextlib.suppress(ConnectionResetError):
            await response.write(sse("error", str(err)))
    except ConnectionResetError:
        pass  # the page went away
    return response
