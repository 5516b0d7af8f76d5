"""Work stealing over Morton-ordered subtrees (seed 000).

Subtrees in Morton order are cut into contiguous segments, one per worker, so each
worker starts on a compact region. A worker whose segment runs dry steals the back
half of the longest remaining segment: the thief gets a contiguous, compact run and
the victim keeps the part next to where it is working.

Plain data and plain methods: no processes, no clocks.
"""

from __future__ import annotations

from dataclasses import dataclass, field


def split(n: int, workers: int) -> list[tuple[int, int]]:
    """Cut ``range(n)`` into ``workers`` contiguous ``[start, end)`` runs, sizes within one."""
    workers = max(1, workers)
    base, extra = divmod(n, workers)
    out, start = [], 0
    for w in range(workers):
        end = start + base + (1 if w < extra else 0)
        out.append((start, end))
        start = end
    return out


@dataclass
class StealingScheduler:
    """Hands out item indices to workers; see the module docstring."""

    n: int
    workers: int
    segments: list[list[int]] = field(init=False)
    steals: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.segments = [[s, e] for s, e in split(self.n, self.workers)]

    def remaining(self) -> int:
        """Items not handed out yet."""
        return sum(e - s for s, e in self.segments)

    def next(self, worker: int) -> int | None:
        """The next item for ``worker``, stealing if its own segment is empty; ``None`` when all are out."""
        if self.segments[worker][0] >= self.segments[worker][1] and not self._steal(worker):
            return None
        seg = self.segments[worker]  # after a steal this is the new segment
        item = seg[0]
        seg[0] += 1
        return item

    def _steal(self, thief: int) -> bool:
        victim = max(range(self.workers), key=lambda w: self.segments[w][1] - self.segments[w][0])
        start, end = self.segments[victim]
        if end <= start:
            return False
        mid = start + (end - start) // 2
        self.segments[victim][1] = mid
        self.segments[thief] = [mid, end]
        self.steals += 1
        return True
