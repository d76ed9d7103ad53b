"""Drawing a DAG: layers by depth (every task one layer below its deepest upstream task).

The terminal view lists each layer with every task's upstream tasks; the SVG places the layers in
columns and draws an arrow per dependency. Both need nothing but the spec.
"""

from __future__ import annotations

import shutil
import subprocess
from html import escape
from pathlib import Path

from rich.console import Console
from rich.tree import Tree

from kdag import topology
from kdag.api.models import DAGSpec
from kdag.cli.errors import UserError

BOX_WIDTH = 170
BOX_HEIGHT = 34
COLUMN_GAP = 70
ROW_GAP = 22
MARGIN = 20


def layers(spec: DAGSpec) -> list[list[str]]:
    """Task ids by depth: layer 0 has no upstream tasks; order within a layer follows the spec."""
    depth: dict[str, int] = {}
    by_id = {task.id: task for task in spec.tasks}
    for tid in topology.topological_order(spec.tasks):
        depth[tid] = 1 + max((depth[up] for up in by_id[tid].upstream_ids), default=-1)
    result: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for task in spec.tasks:
        result[depth[task.id]].append(task.id)
    return result


def print_graph(title: str, spec: DAGSpec, console: Console | None = None) -> None:
    """Print the layers of the DAG, each task with the tasks it waits for."""
    console = console or Console()
    by_id = {task.id: task for task in spec.tasks}
    tree = Tree(f"[bold]{escape(title)}[/] ({len(spec.tasks)} tasks)")
    for number, layer in enumerate(layers(spec)):
        branch = tree.add(f"layer {number}")
        for tid in layer:
            task = by_id[tid]
            rule = task.effective_trigger_rule
            waits = ", ".join(task.upstream_ids)
            text = f"[bold]{tid}[/]" + (f"  <- {waits}" if waits else "")
            if rule != "all_success":
                text += f"  [dim]({rule})[/]"
            branch.add(text)
    console.print(tree)


def svg(title: str, spec: DAGSpec) -> str:
    """The DAG as a standalone SVG document: boxes in columns by layer, arrows for dependencies."""
    columns = layers(spec)
    position: dict[str, tuple[int, int]] = {}
    for col, layer in enumerate(columns):
        for row, tid in enumerate(layer):
            x = MARGIN + col * (BOX_WIDTH + COLUMN_GAP)
            y = MARGIN + 30 + row * (BOX_HEIGHT + ROW_GAP)
            position[tid] = (x, y)
    width = MARGIN * 2 + max(len(columns), 1) * (BOX_WIDTH + COLUMN_GAP) - COLUMN_GAP
    tallest = max((len(layer) for layer in columns), default=1)
    height = MARGIN * 2 + 30 + tallest * (BOX_HEIGHT + ROW_GAP) - ROW_GAP
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="13">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" '
        'orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>',
        f'<text x="{MARGIN}" y="{MARGIN + 12}" font-weight="bold">{escape(title)}</text>',
    ]
    for task in spec.tasks:
        x2, y2 = position[task.id]
        for up in task.upstream_ids:
            x1, y1 = position[up]
            parts.append(
                f'<line x1="{x1 + BOX_WIDTH}" y1="{y1 + BOX_HEIGHT // 2}" '
                f'x2="{x2}" y2="{y2 + BOX_HEIGHT // 2}" stroke="#555" stroke-width="1.5" '
                'marker-end="url(#arrow)"/>'
            )
    for task in spec.tasks:
        x, y = position[task.id]
        parts.append(
            f'<g class="task" id="task-{escape(task.id)}"><rect x="{x}" y="{y}" width="{BOX_WIDTH}" '
            f'height="{BOX_HEIGHT}" rx="6" fill="#e8f0fe" stroke="#3b6fd8"/>'
            f'<text x="{x + BOX_WIDTH // 2}" y="{y + BOX_HEIGHT // 2 + 4}" text-anchor="middle">'
            f"{escape(task.id)}</text></g>"
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def write_png(svg_text: str, target: Path) -> None:
    """Rasterise the SVG with librsvg's `rsvg-convert`: a PNG needs a font renderer kdag does not carry."""
    tool = shutil.which("rsvg-convert")
    if tool is None:
        raise UserError(
            "PNG output needs rsvg-convert (Debian: apt-get install librsvg2-bin); --svg needs nothing"
        )
    done = subprocess.run(
        [tool, "--format", "png", "--output", str(target)],
        input=svg_text.encode(),
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        raise UserError(f"rsvg-convert failed: {done.stderr.decode(errors='replace').strip()}")
