"""The terminal view of a local run: task states while it runs, then the XComs it pushed."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

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


def task_table(title: str, reports: Iterable[TaskReport]) -> Table:
    """One row per task (per instance of a mapped task: its map index, and its name when it has one):
    state, attempts, and why it failed."""
    reports = list(reports)
    mapped = any(report.map_index is not None for report in reports)
    table = Table(title=title, title_justify="left")
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
    as JSON."""
    rows = list(rows)
    mapped = any(row.map_index != -1 for row in rows)
    table = Table(title="XComs", title_justify="left")
    table.add_column("task")
    if mapped:
        table.add_column("map index", justify="right")
    table.add_column("key")
    table.add_column("value", overflow="fold")
    for row in rows:
        cells = [row.task_id, row.key, json.dumps(row.value)]
        if mapped:
            cells.insert(1, "" if row.map_index == -1 else str(row.map_index))
        table.add_row(*cells)
    return table


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
    """Run the DAG locally while a table of task states updates in place; then print the XComs."""
    console = console or Console()
    reports: dict[str, TaskReport] = {task.id: TaskReport(task.id) for task in dag.spec.tasks}
    title = f"{dag.dag_id} (local)"
    with Live(task_table(title, reports.values()), console=console, refresh_per_second=8) as live:

        def changed(report: TaskReport) -> None:
            if report.map_index is not None:  # an instance of a mapped task takes the task's row
                reports.pop(report.task_id, None)
            reports[report.key] = report
            live.update(task_table(title, reports.values()))

        result = run_local(
            dag,
            workdir,
            params=params,
            conf=conf,
            logical_date=logical_date,
            on_change=changed,
            triggers=triggers,
        )
        live.update(task_table(f"{result.dag_id} {result.run_id}: {result.state}", result.tasks.values()))
    console.print(xcom_table(result.xcoms))
    console.print(f"run {result.run_id}: [bold]{result.state}[/]")
    return result
