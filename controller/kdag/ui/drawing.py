"""Pure: the graph and the Gantt chart as SVG markup. Every task id is escaped here (`escape`): the
markup is inserted into pages as it is, so this is where user-controlled text must never pass raw."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from markupsafe import Markup, escape

from kdag.ui.layout import NODE_HEIGHT, NODE_WIDTH, Layout
from kdag.ui.rows import phase_class
from kdag.ui.timeline import Gantt

LABEL_CHARS = 24
"""Characters of a task id that fit in a box; a longer one is cut with an ellipsis (its tooltip has all)."""
GANTT_ROW = 18
GANTT_LABEL = 220
GANTT_WIDTH = 900


def short(text: str, limit: int = LABEL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def graph_svg(drawn: Layout, phases: Mapping[str, str], link: Callable[[str], str] | None = None) -> Markup:
    """The tasks as boxes coloured by phase (class `st-{phase}`; `data-task` lets the page recolour them
    live) and their dependencies as arrows."""
    parts = [
        f'<svg class="graph" xmlns="http://www.w3.org/2000/svg" width="{drawn.width}" height="{drawn.height}"'
        f' viewBox="0 0 {drawn.width} {drawn.height}" role="img" aria-label="task graph">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7"'
        ' orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#888"/></marker></defs>',
    ]
    half = NODE_HEIGHT // 2
    for up, down in drawn.edges:
        a, b = drawn.boxes[up], drawn.boxes[down]
        x1, y1, x2, y2 = a.x + NODE_WIDTH, a.y + half, b.x, b.y + half
        mid = (x1 + x2) // 2
        parts.append(
            f'<path class="edge" d="M {x1} {y1} C {mid} {y1}, {mid} {y2}, {x2} {y2}" fill="none"'
            ' stroke="#999" marker-end="url(#arrow)"/>'
        )
    for tid, box in drawn.boxes.items():
        phase = phases.get(tid, "")
        node = (
            f'<rect x="{box.x}" y="{box.y}" width="{NODE_WIDTH}" height="{NODE_HEIGHT}" rx="5"/>'
            f'<text x="{box.x + 8}" y="{box.y + half + 5}">{escape(short(tid))}</text>'
            f"<title>{escape(tid)}{escape(': ' + phase) if phase else ''}</title>"
        )
        if link is not None:
            node = f'<a href="{escape(link(tid))}">{node}</a>'
        parts.append(f'<g class="node {phase_class(phase)}" data-task="{escape(tid)}">{node}</g>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _tick_step(span: float) -> float:
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400):
        if span / step <= 10:
            return float(step)
    return 86400.0 * max(1, int(span / 86400 / 10))


def gantt_svg(chart: Gantt, link: Callable[[str, int | None, int], str] | None = None) -> Markup:
    """One row per attempt: a grey bar while queued, then coloured while running (green: exit 0, red:
    another exit code, blue: still running)."""
    if not chart.bars:
        return Markup('<p class="muted">No attempt has a pod yet.</p>')
    span = max(chart.span, 1.0)
    scale = (GANTT_WIDTH - GANTT_LABEL - 10) / span
    height = 24 + len(chart.bars) * GANTT_ROW
    parts = [
        f'<svg class="gantt" xmlns="http://www.w3.org/2000/svg" width="{GANTT_WIDTH}" height="{height}"'
        f' viewBox="0 0 {GANTT_WIDTH} {height}" role="img" aria-label="Gantt chart of attempts">'
    ]
    step = _tick_step(span)
    tick = 0.0
    while tick <= span:
        x = GANTT_LABEL + tick * scale
        parts.append(
            f'<line x1="{x:.1f}" y1="14" x2="{x:.1f}" y2="{height}" class="tick"/>'
            f'<text x="{x:.1f}" y="11" class="tick-label">{tick:g}s</text>'
        )
        tick += step
    for row, bar in enumerate(chart.bars):
        y = 18 + row * GANTT_ROW
        label = escape(short(bar.label, 32))
        if link is not None:
            label = Markup(f'<a href="{escape(link(bar.task_id, bar.map_index, bar.attempt))}">{label}</a>')
        parts.append(
            f'<text x="4" y="{y + 11}" class="gantt-label">{label}<title>{escape(bar.label)}</title></text>'
        )
        start = GANTT_LABEL + bar.queued_from * scale
        running_at = GANTT_LABEL + (bar.running_from if bar.running_from is not None else bar.until) * scale
        end = GANTT_LABEL + bar.until * scale
        parts.append(
            f'<rect x="{start:.1f}" y="{y}" width="{max(running_at - start, 1):.1f}" height="12"'
            ' class="queued"><title>queued</title></rect>'
        )
        if bar.running_from is not None:
            state = "running" if bar.exit_code is None else ("ok" if bar.exit_code == 0 else "failed")
            parts.append(
                f'<rect x="{running_at:.1f}" y="{y}" width="{max(end - running_at, 1):.1f}" height="12"'
                f' class="run-{state}"><title>{state}, {bar.until - bar.running_from:.1f}s</title></rect>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))
