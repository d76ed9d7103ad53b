"""How a run on the cluster is printed: `kdag status`'s table, and why a run `kdag trigger --wait` followed
failed (`failure_lines`, pure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.table import Table

from kdag.cli.terminal_view import console_for

FAILED_TASK_PHASES = ("Failed", "UpstreamFailed")


def failure_lines(
    dagrun: Mapping[str, Any], taskruns: list[dict[str, Any]], order: list[str], namespace: str
) -> list[str]:
    """Why a finished run failed: each failed task (and mapped instance) with its attempts and message,
    the tasks marked UpstreamFailed after them, the run's own reason when no task says it, and how to read
    a failed task's log."""
    run = dagrun["metadata"]["name"]
    status = dagrun.get("status") or {}
    phases: dict[str, str] = status.get("tasks") or {}
    by_key: dict[str, Mapping[str, Any]] = {}
    for taskrun in taskruns:
        index = taskrun["spec"].get("mapIndex")
        task = taskrun["spec"]["taskId"]
        by_key[task if index is None else f"{task}[{index}]"] = taskrun.get("status") or {}
    ranks = {tid: rank for rank, tid in enumerate(order)}
    keys = sorted(by_key, key=lambda key: (ranks.get(key.partition("[")[0], len(ranks)), key))
    failed = [key for key in keys if by_key[key].get("phase") == "Failed"]
    failed += [tid for tid, phase in phases.items() if phase == "Failed" and tid not in by_key]
    # A mapped task whose instances failed: its instances say why.
    failed = [key for key in failed if not any(other.startswith(f"{key}[") for other in failed)]
    lines = [f"run {run} failed"]
    for key in failed:
        task_status = by_key.get(key) or {}
        attempts = int(task_status.get("attempts") or 0)
        tried = f" after {attempts} attempts" if attempts > 1 else ""
        message = task_status.get("message") or "no message"
        lines.append(f"  {key}: failed{tried}: {message}")
    upstream = [tid for tid in order if phases.get(tid) == "UpstreamFailed"]
    if upstream:
        lines.append(f"  not run (upstream failed): {', '.join(upstream)}")
    if not failed:
        stalled = [c for c in status.get("conditions") or [] if c.get("type") == "Stalled"]
        for condition in stalled:
            lines.append(
                f"  {condition.get('reason') or 'Stalled'}: {condition.get('message') or ''}".rstrip()
            )
    if failed:
        first = failed[0]
        task, _, index = first.partition("[")
        instance = f" --map-index {index.rstrip(']')}" if index else ""
        lines.append(f"its log: kdag logs {run} {task}{instance} -n {namespace}")
    return lines


def print_status(
    run: str,
    status: Mapping[str, Any],
    order: list[str],
    taskruns: Mapping[str, dict[str, Any]],
    instances: Mapping[str, dict[int, dict[str, Any]]],
) -> None:
    """`kdag status`'s text: the run's phase and progress, then a row per task and per mapped instance."""
    console = console_for()
    console.print(f"[bold]{run}[/]: {status.get('phase') or 'Pending'} ({status.get('progress') or '-'})")
    tasks = status.get("tasks") or {}
    table = Table()
    for column in ("task", "map index", "phase", "attempts", "message"):
        table.add_column(column, overflow="fold")
    for tid in order:
        tr_status = (taskruns.get(tid) or {}).get("status") or {}
        table.add_row(
            tid,
            "",
            tasks.get(tid) or "-",
            str(tr_status.get("attempts") or ""),
            tr_status.get("message") or "",
        )
        for index, instance in sorted(instances.get(tid, {}).items()):
            in_status = instance.get("status") or {}
            name = in_status.get("renderedMapIndex")
            table.add_row(
                "",
                f"{index} ({name})" if name else str(index),
                in_status.get("phase") or "-",
                str(in_status.get("attempts") or ""),
                in_status.get("message") or "",
            )
    console.print(table)
