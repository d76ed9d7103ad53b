"""Pure: a layered layout of a DAG's tasks, left to right, for the graph the pages draw.

Each task's layer is its longest path from a root (so every edge points right); within a layer tasks are
ordered by the mean position of their upstream tasks (one barycentre sweep), which keeps most edges short
without the cost of a full crossing minimisation: a 500-task DAG lays out in milliseconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kdag import topology
from kdag.api.models import TaskSpec

NODE_WIDTH = 180
NODE_HEIGHT = 34
GAP_X = 60
GAP_Y = 14
MARGIN = 10
MAX_GRAPH_TASKS = 400
"""Above this many tasks the pages draw no graph (it would be unreadable); the task table pages instead."""


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    layer: int


@dataclass(frozen=True)
class Layout:
    boxes: dict[str, Box]
    edges: list[tuple[str, str]]
    """(upstream, downstream) pairs, each once."""
    width: int
    height: int


def layers(tasks: Sequence[TaskSpec]) -> dict[str, int]:
    """Each task's layer: 0 for a root, else one more than its furthest upstream task's."""
    upstream = {task.id: task.upstream_ids for task in tasks}
    layer: dict[str, int] = {}
    for tid in topology.topological_order(tasks):
        layer[tid] = 1 + max((layer[up] for up in upstream[tid] if up in layer), default=-1)
    return layer


def layout(tasks: Sequence[TaskSpec]) -> Layout:
    """Where each task's box goes; every layer is centred on the tallest one."""
    layer_of = layers(tasks)
    upstream = {task.id: list(dict.fromkeys(task.upstream_ids)) for task in tasks}
    columns: list[list[str]] = [[] for _ in range(max(layer_of.values(), default=-1) + 1)]
    for tid in topology.topological_order(tasks):
        columns[layer_of[tid]].append(tid)
    position: dict[str, float] = {tid: float(i) for i, tid in enumerate(columns[0] if columns else [])}
    for column in columns[1:]:
        keyed = []
        for i, tid in enumerate(column):
            ups = [position[up] for up in upstream[tid] if up in position]
            keyed.append((sum(ups) / len(ups) if ups else float(i), i, tid))
        column[:] = [tid for _, _, tid in sorted(keyed)]
        position.update({tid: float(i) for i, tid in enumerate(column)})
    tallest = max((len(column) for column in columns), default=0)
    step_y = NODE_HEIGHT + GAP_Y
    boxes: dict[str, Box] = {}
    for number, column in enumerate(columns):
        offset = (tallest - len(column)) * step_y / 2
        for i, tid in enumerate(column):
            x = MARGIN + number * (NODE_WIDTH + GAP_X)
            boxes[tid] = Box(x, int(MARGIN + offset + i * step_y), number)
    edges = [(up, tid) for tid in layer_of for up in upstream[tid] if up in boxes]
    width = 2 * MARGIN + max(len(columns) * (NODE_WIDTH + GAP_X) - GAP_X, 0)
    height = 2 * MARGIN + max(tallest * step_y - GAP_Y, 0)
    return Layout(boxes, edges, width, height)
