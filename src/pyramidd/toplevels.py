"""The levels below the builder level, made topologically from the builders' roots.

The coordinator holds the *core* of every tile at or below the builder level (there
are few). Two kinds of task make the rest, each as soon as its inputs exist, never
waiting for a whole level (seed 000):

- ``merge(P)``: make tile P's core from the cores of the level above that its
  resampler reads (its children, plus their neighbours when the resampler has
  support);
- ``emit(K)``: write tile K (below the builder level) from its core and, for the
  overlap, its neighbours' cores. Builder-level tiles are written by the builders.

A core is dropped once every task that reads it has run. This module is the
bookkeeping only: plain data in, task lists out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from .grid import Grid, Rect, TileKey


class Task(NamedTuple):
    """A top-level task: ``merge`` makes ``key``'s core, ``emit`` writes ``key``."""

    kind: Literal["merge", "emit"]
    key: TileKey


def keys_over(grid: Grid, level: int, rect: Rect) -> list[TileKey]:
    """Tiles of ``level`` whose cores intersect ``rect`` (clipped to the level)."""
    w, h = grid.level_size(level)
    x0, y0, x1, y1 = max(0, rect[0]), max(0, rect[1]), min(w, rect[2]), min(h, rect[3])
    if x0 >= x1 or y0 >= y1:
        return []
    t = grid.tile_size
    return [
        TileKey(level, c, r)
        for r in range(y0 // t, (y1 - 1) // t + 1)
        for c in range(x0 // t, (x1 - 1) // t + 1)
    ]


def merge_rect(grid: Grid, key: TileKey, support: int) -> Rect:
    """The rectangle of ``key.level + 1`` that making ``key``'s core reads."""
    x0, y0, x1, y1 = grid.core(key)
    return (2 * x0 - support, 2 * y0 - support, 2 * x1 + support, 2 * y1 + support)


def inputs(grid: Grid, task: Task, support: int) -> list[TileKey]:
    """Cores a task reads."""
    if task.kind == "merge":
        return keys_over(grid, task.key.level + 1, merge_rect(grid, task.key, support))
    return keys_over(grid, task.key.level, grid.tile_rect(task.key))


@dataclass
class TopLevels:
    """Tracks which cores exist and which tasks are ready or still need a core."""

    grid: Grid
    builder_level: int
    support: int
    present: set[TileKey] = field(default_factory=set)
    started: set[Task] = field(default_factory=set)
    finished: set[Task] = field(default_factory=set)
    # Both relations are asked again for every core and task (a core is read by up to
    # a dozen tasks, each of which is checked at every input's arrival and at its own
    # end); computed once each, they were most of the coordinator's time per tile.
    _inputs: dict[Task, list[TileKey]] = field(default_factory=dict, repr=False)
    _readers: dict[TileKey, list[Task]] = field(default_factory=dict, repr=False)

    def inputs(self, task: Task) -> list[TileKey]:
        """Cores ``task`` reads (:func:`inputs`, remembered)."""
        found = self._inputs.get(task)
        if found is None:
            found = self._inputs[task] = inputs(self.grid, task, self.support)
        return found

    def _tasks_reading(self, key: TileKey) -> list[Task]:
        """Every task (merge or emit) whose inputs include ``key``."""
        found = self._readers.get(key)
        if found is not None:
            return found
        g = self.grid
        near = [key, *g.neighbours(key)]
        cands: set[Task] = set()
        if key.level - 1 >= g.min_level:
            cands.update(Task("merge", g.parent(k)) for k in near)
        if key.level < self.builder_level:
            cands.update(Task("emit", k) for k in near)
        found = self._readers[key] = [t for t in cands if key in self.inputs(t)]
        return found

    def _ready(self, task: Task) -> bool:
        return task not in self.started and all(k in self.present for k in self.inputs(task))

    def add(self, key: TileKey) -> list[Task]:
        """``key``'s core now exists; return the tasks that became ready (marked started)."""
        self.present.add(key)
        ready = sorted(t for t in self._tasks_reading(key) if self._ready(t))
        self.started.update(ready)
        return ready

    def done(self, task: Task) -> list[TileKey]:
        """``task`` ran; return the cores no task needs any more."""
        self.finished.add(task)
        free = []
        for key in self.inputs(task):
            if key in self.present and all(t in self.finished for t in self._tasks_reading(key)):
                self.present.discard(key)
                free.append(key)
                self._readers.pop(key, None)
        return free

    def total(self) -> int:
        """Number of tasks the top levels need in all."""
        g = self.grid
        merges = sum(
            c * r for c, r in map(g.tiles_across, range(g.min_level, self.builder_level))
        )
        return 2 * merges  # every tile below the builder level is merged once and emitted once

    def complete(self) -> bool:
        """Whether every task has run."""
        return len(self.finished) == self.total()
