"""The terminal view of a local run: task states while it runs (redrawn in place on a terminal; printed
once at the end to a file or a pipe), then the XComs it pushed and where the task logs are."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from kdag_runner import store
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from kdag.cli.terminal_view import console_for
from kdag.local.run import LocalDag, LocalRunResult, TaskReport, TriggerAnswers, XComRow, run_local

STATE_STYLE = {
    "success": "green",
    "failed": "red",
    "upstream_failed": "dark_orange",
    "skipped": "magenta",
    "running": "cyan",
    "up_for_retry": "yellow",
    "up_for_reschedule": "turquoise2",
    "queued": "white",
    "none": "dim",
}


INTERNAL_MARK = " (internal)"
"""After an XCom key kdag writes for itself (`store.is_internal_key`: `__context`), which is shown dimmed."""


def titled(title: str, table: Table) -> Group:
    """A table under its title, the title a line of its own (a table's own title would wrap at its width)."""
    return Group(Text(title, style="bold"), table)


def task_table(reports: Iterable[TaskReport]) -> Table:
    """One row per task (per instance of a mapped task: its map index, and its name when it has one):
    state, attempts, and why it failed."""
    reports = list(reports)
    mapped = any(report.map_index is not None for report in reports)
    table = Table()
    table.add_column("task")
    if mapped:
        table.add_column("map index", justify="right")
    table.add_column("state")
    table.add_column("attempts", justify="right")
    table.add_column("message", overflow="fold")
    for report in reports:
        style = STATE_STYLE.get(report.state, "")
        cells = [report.task_id, f"[{style}]{report.state}[/]", str(report.attempts or ""), report.message]
        if mapped:
            index = "" if report.map_index is None else str(report.map_index)
            if report.rendered_map_index:
                index += f" ({report.rendered_map_index})"
            cells.insert(1, index)
        table.add_row(*cells)
    return table


def xcom_table(rows: Iterable[XComRow]) -> Table:
    """One row per XCom: task (and map index, when a mapped task's instance pushed it), key and the value
    as JSON; kdag's own keys (`__context`) dimmed and marked `(internal)`."""
    rows = list(rows)
    mapped = any(row.map_index != -1 for row in rows)
    table = Table()
    table.add_column("task")
    if mapped:
        table.add_column("map index", justify="right")
    table.add_column("key")
    table.add_column("value", overflow="fold")
    for row in rows:
        internal = store.is_internal_key(row.key)
        key = row.key + INTERNAL_MARK if internal else row.key
        cells = [row.task_id, key, json.dumps(row.value)]
        if mapped:
            cells.insert(1, "" if row.map_index == -1 else str(row.map_index))
        table.add_row(*cells, style="dim" if internal else None)
    return table


def xcoms_view(rows: Iterable[XComRow]) -> RenderableType:
    """The XCom table under its title, or a line saying there are none."""
    rows = list(rows)
    return titled("XComs", xcom_table(rows)) if rows else Text("XComs: none")


def run_with_live_view(
    dag: LocalDag,
    workdir: Path,
    *,
    params: Mapping[str, Any],
    conf: Mapping[str, Any],
    logical_date: datetime | None,
    console: Console | None = None,
    triggers: TriggerAnswers | None = None,
) -> LocalRunResult:
    """Run the DAG locally while a table of task states updates in place (on a terminal; to a file or a pipe
    the table is printed once, at the end); then print the XComs."""
    console = console or console_for()
    reports: dict[str, TaskReport] = {task.id: TaskReport(task.id) for task in dag.spec.tasks}
    title = f"{dag.dag_id} (local)"
    # Live only redraws on a terminal: elsewhere it would print its last frame with no newline after it.
    live = Live(titled(title, task_table(reports.values())), console=console, refresh_per_second=8)

    def changed(report: TaskReport) -> None:
        if report.map_index is not None:  # an instance of a mapped task takes the task's row
            reports.pop(report.task_id, None)
        reports[report.key] = report
        live.update(titled(title, task_table(reports.values())))

    with live if console.is_terminal else contextlib.nullcontext():
        result = run_local(
            dag,
            workdir,
            params=params,
            conf=conf,
            logical_date=logical_date,
            on_change=changed if console.is_terminal else None,
            triggers=triggers,
        )
        final = titled(f"{result.dag_id} {result.run_id}: {result.state}", task_table(result.tasks.values()))
        live.update(final)
    if not console.is_terminal:
        console.print(final)
    console.print(xcoms_view(result.xcoms))
    console.print(f"run {result.run_id}: [bold]{result.state}[/]")
    return result


def print_logs_folder(result: LocalRunResult, console: Console | None = None) -> None:
    """Where the tasks' logs are, and a failed task's log file by name."""
    console = console or console_for()
    console.print(f"task logs: {result.logs}", highlight=False, soft_wrap=True)
    for key, report in result.tasks.items():
        log = result.logs / f"{key}.log"
        if report.state == "failed" and log.is_file():
            console.print(f"  {key}: {log}", highlight=False, soft_wrap=True)
