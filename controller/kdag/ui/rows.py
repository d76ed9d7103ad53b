"""Pure: what the pages show, as rows of plain values, from the objects the watches hold.

Nothing here reads the API or renders markup: templates escape every value, and tests check each row.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kdag_runner import store

from kdag.external_runs import AIRFLOW_TASK_STATE
from kdag.render import parse_time
from kdag.xcom_volumes import XCOM_IN_DIR

PHASES = (
    "Succeeded",
    "Failed",
    "UpstreamFailed",
    "Skipped",
    "Running",
    "Retrying",
    "UpForReschedule",
    "Pending",
)
"""Every task phase, in the legend's order."""
AIRFLOW_STATE = {phase.value: state for phase, state in AIRFLOW_TASK_STATE.items()}
"""Airflow's name of each phase (as `kdag status`/`kdag xcom` say them), shown beside kdag's."""
FINISHED = ("Succeeded", "Failed", "UpstreamFailed", "Skipped")
PAGE_SIZE = 100
"""Rows of a task table or a grid page: a run of 1,000 tasks is ten pages, each quick to render."""
PRETTY_LIMIT = 20_000
"""Characters of one XCom value shown; the rest is cut, with its size said."""


def phase_class(phase: str | None) -> str:
    """The CSS class of a phase (`st-Succeeded`, ...; `st-none` for a task that has no phase yet)."""
    return f"st-{phase}" if phase in AIRFLOW_STATE else "st-none"


def when(text: Any) -> datetime | None:
    try:
        return parse_time(str(text)) if text else None
    except ValueError:
        return None


def duration(start: Any, finish: Any, now: datetime) -> str:
    """`1m 05s`, from two RFC 3339 times (to `now` while not finished); "" without a start."""
    begun, ended = when(start), when(finish) or now
    if begun is None:
        return ""
    seconds = max(0, int((ended - begun).total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {seconds:02d}s" if minutes else f"{seconds}s"


def schedule_text(spec: Mapping[str, Any]) -> str:
    """The DAG's schedule as its spec says it: cron or preset, a timetable's kind, or `None` (manual)."""
    if spec.get("schedule"):
        return str(spec["schedule"])
    timetable = spec.get("timetable")
    if isinstance(timetable, Mapping) and timetable:
        return "timetable: " + ", ".join(f"{k}={v}" for k, v in sorted(timetable.items()) if k != "events")
    return "None (triggered only)"


@dataclass(frozen=True)
class DagRow:
    namespace: str
    name: str
    dag_id: str
    schedule: str
    task_count: int
    last_runs: list[tuple[str, str]]
    """(run name, phase) of the newest runs, oldest first (as Airflow's list shows them)."""
    problem: str
    """The Ready condition's message when the DAG is not Ready, "" when it is."""


def condition(obj: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return {}


def dag_row(dag: Mapping[str, Any], runs_newest_first: Sequence[Mapping[str, Any]], last: int = 10) -> DagRow:
    spec, metadata = dag.get("spec") or {}, dag.get("metadata") or {}
    ready = condition(dag, "Ready")
    problem = ""
    if ready and ready.get("status") != "True":
        problem = f"{ready.get('reason') or 'NotReady'}: {ready.get('message') or ''}".strip()
    runs = [
        (str(r["metadata"]["name"]), (r.get("status") or {}).get("phase") or "Pending")
        for r in runs_newest_first[:last]
    ]
    return DagRow(
        namespace=str(metadata.get("namespace") or ""),
        name=str(metadata.get("name") or ""),
        dag_id=str(spec.get("dagId") or metadata.get("name") or ""),
        schedule=schedule_text(spec),
        task_count=len(spec.get("tasks") or []),
        last_runs=list(reversed(runs)),
        problem=problem,
    )


@dataclass(frozen=True)
class Grid:
    """Airflow's grid: runs as columns (oldest left), tasks as rows, each cell a phase (or "")."""

    runs: list[tuple[str, str]]
    tasks: list[str]
    cells: list[list[str]]


def grid(order: Sequence[str], runs_newest_first: Sequence[Mapping[str, Any]], last: int = 20) -> Grid:
    runs = list(reversed(runs_newest_first[:last]))
    phases = [(r.get("status") or {}).get("tasks") or {} for r in runs]
    return Grid(
        runs=[(str(r["metadata"]["name"]), (r.get("status") or {}).get("phase") or "Pending") for r in runs],
        tasks=list(order),
        cells=[[str(p.get(tid) or "") for p in phases] for tid in order],
    )


def map_index_of(taskrun: Mapping[str, Any]) -> int | None:
    index = (taskrun.get("spec") or {}).get("mapIndex")
    return int(index) if index is not None else None


def task_message(taskrun: Mapping[str, Any]) -> dict[str, Any]:
    """A TaskRun's state as a live page applies it (the `task` server-sent event)."""
    spec, status = taskrun.get("spec") or {}, taskrun.get("status") or {}
    return {
        "kind": "task",
        "run": spec.get("dagRun"),
        "task": spec.get("taskId"),
        "mapIndex": map_index_of(taskrun),
        "phase": status.get("phase") or "Pending",
        "attempts": status.get("attempts") or 0,
        "exitCode": status.get("exitCode"),
    }


@dataclass(frozen=True)
class TaskRow:
    task_id: str
    map_index: int | None
    phase: str
    attempts: int
    duration: str
    exit_code: str
    message: str


def task_rows(
    order: Sequence[str], phases: Mapping[str, str], taskruns: Iterable[Mapping[str, Any]], now: datetime
) -> list[TaskRow]:
    """One row per task in topological order (a mapped task's instances after it), from its TaskRun when it
    has one, else from the run's status (a task not started yet has no TaskRun)."""
    by_task: dict[str, dict[int | None, Mapping[str, Any]]] = {}
    for taskrun in taskruns:
        by_task.setdefault(str(taskrun["spec"]["taskId"]), {})[map_index_of(taskrun)] = taskrun
    found: list[TaskRow] = []
    for tid in order:
        instances = by_task.get(tid, {})
        indexes = [None, *sorted(i for i in instances if i is not None)]
        for index in indexes:
            found_run = instances.get(index)
            if found_run is None and index is None and len(indexes) > 1:
                found.append(TaskRow(tid, None, phases.get(tid) or "Pending", 0, "", "", "mapped"))
                continue
            status = (found_run or {}).get("status") or {}
            code = status.get("exitCode")
            found.append(
                TaskRow(
                    task_id=tid,
                    map_index=index,
                    phase=status.get("phase") or (phases.get(tid) if index is None else None) or "Pending",
                    attempts=int(status.get("attempts") or 0),
                    duration=duration(status.get("startTime"), status.get("finishTime"), now),
                    exit_code="" if code is None else str(code),
                    message=str(status.get("message") or ""),
                )
            )
    return found


def page_of(items: Sequence[Any], page: int, size: int = PAGE_SIZE) -> tuple[list[Any], int, int]:
    """Items of page `page` (from 1, clamped), the page, and how many pages there are."""
    pages = max(1, -(-len(items) // size))
    page = min(max(1, page), pages)
    return list(items[(page - 1) * size : page * size]), page, pages


@dataclass(frozen=True)
class XComRow:
    """One row of Airflow's XCom list."""

    key: str
    value: str
    """Pretty-printed: a str as itself, anything else as indented JSON; cut at PRETTY_LIMIT characters."""
    type: str
    size: int
    """Bytes of its stored text form (what counts against the ConfigMap's limit)."""
    map_index: int | None
    internal: bool
    """kdag's own key (`__context`: the task instance context), not one the task pushed."""


COMPACT_LIMIT = 80
"""A JSON value whose compact form is at most this long is shown on one line (`["2026-01-01"]`), as Airflow's
XCom list shows it; a longer one indented."""


def pretty(value: Any) -> str:
    if isinstance(value, str):
        text = value
    else:
        text = json.dumps(value, ensure_ascii=False)
        if len(text) > COMPACT_LIMIT:
            text = json.dumps(value, indent=2, ensure_ascii=False)
    if len(text) > PRETTY_LIMIT:
        return text[:PRETTY_LIMIT] + f"\n... ({len(text) - PRETTY_LIMIT} more characters not shown)"
    return text


def type_name(value: Any) -> str:
    return {dict: "dict", list: "list", str: "str", bool: "bool", int: "int", float: "float"}.get(
        type(value), "null" if value is None else type(value).__name__
    )


def xcom_rows(data: Mapping[str, str], map_index: int | None = None) -> list[XComRow]:
    """The XComs of one task's ConfigMap data, in push order, decoded as `xcom_pull` reads them."""
    values = store.decode(data)
    stored = {store.decode_key(k): k for k in data if store.is_store_key(k)}
    return [
        XComRow(
            key=key,
            value=pretty(value),
            type=type_name(value),
            size=len(data.get(stored.get(key, key), "").encode()),
            map_index=map_index,
            internal=key.startswith("__"),
        )
        for key, value in values.items()
    ]


@dataclass(frozen=True)
class InputRow:
    """An upstream task's XComs this task received, and how."""

    task_id: str
    key: str
    """The XCom key (every key, `*`, for a mounted ConfigMap)."""
    delivered: str
    """`env NAME` or `file /kdag/xcom/in/{task}/`."""


def received_inputs(task: Mapping[str, Any], pod: Mapping[str, Any] | None) -> list[InputRow]:
    """What the attempt's pod got: each declared `xcomInputs` entry as an env var, and each ancestor's XComs
    as files (read from the pod, which says exactly which it mounted: `xcom_volumes`): by key from the one
    projected volume, `*` for an ancestor's whole ConfigMap mounted as its own volume."""
    found = [
        InputRow(
            str(inp.get("task")),
            store.decode_key(str(inp.get("key") or store.RETURN_KEY)),
            f"env {inp.get('env')}",
        )
        for inp in task.get("xcomInputs") or []
    ]
    spec = (pod or {}).get("spec") or {}
    volumes = {str(v.get("name")): v for v in spec.get("volumes") or []}
    for container in spec.get("containers") or []:
        for mount in container.get("volumeMounts") or []:
            path = str(mount.get("mountPath") or "")
            if path == XCOM_IN_DIR:
                rows = _projected_inputs(volumes.get(str(mount.get("name"))) or {})
            elif path.startswith(XCOM_IN_DIR + "/"):
                rows = [InputRow(path.removeprefix(XCOM_IN_DIR + "/"), "*", f"file {path}/")]
            else:
                continue
            found.extend(row for row in rows if row not in found)
    return found


def _projected_inputs(volume: Mapping[str, Any]) -> list[InputRow]:
    """The XCom files of the one projected volume: each item's path, `.types` and kdag's own keys aside."""
    rows = []
    for source in (volume.get("projected") or {}).get("sources") or []:
        for item in (source.get("configMap") or {}).get("items") or []:
            folder, _, key = str(item.get("path") or "").rpartition("/")
            if folder and key != store.TYPES_KEY and not store.is_internal_key(key):
                task_id = folder.split("/")[0]
                rows.append(InputRow(task_id, store.decode_key(key), f"file {XCOM_IN_DIR}/{folder}/{key}"))
    return rows
