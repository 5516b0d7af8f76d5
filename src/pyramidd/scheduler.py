"""Work stealing over Morton-ordered subtrees (seed 000).

Subtrees in Morton order are cut into contiguous segments, one per worker, so each
worker starts on a compact region. A worker whose segment runs dry steals the back
half of the longest remaining segment: the thief gets a contiguous, compact run and
the victim keeps the part next to where it is working.

"Length" is work, not a count of items, where the items say what they weigh: the
subtrees along the right and bottom edges of an image are slivers (a 32768² DZI in
254-pixel tiles has sixteen whole subtrees and nine a thirty-second as wide or less),
and cut by count one worker got nearly all the whole ones, while the last steal could
leave a whole subtree, 0.7 s of work, to run on one core after the other had none.

Plain data and plain methods: no processes, no clocks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import accumulate, pairwise


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


def split_weighted(weights: Sequence[float], workers: int) -> list[tuple[int, int]]:
    """Cut ``range(len(weights))`` into ``workers`` contiguous runs of about equal
    weight: each cut at the item boundary nearest to its share of the total."""
    return _split_prefix([0.0, *accumulate(weights)], workers)


def _split_prefix(prefix: list[float], workers: int) -> list[tuple[int, int]]:
    """:func:`split_weighted` of the items whose running totals are ``prefix``
    (``prefix[i]``: the weight of the first ``i`` items)."""
    workers = max(1, workers)
    total, n = prefix[-1], len(prefix) - 1
    cuts, start = [0], 0
    for w in range(1, workers):
        target = total * w / workers
        end = start
        while end < n and abs(prefix[end + 1] - target) <= abs(prefix[end] - target):
            end += 1
        cuts.append(end)
        start = end
    cuts.append(n)
    return list(pairwise(cuts))


@dataclass
class StealingScheduler:
    """Hands out item indices to workers; see the module docstring.

    ``weights`` (one per item, e.g. its tile count) make segments equal in work and
    steals take half of the most work left; without them every item weighs one.
    """

    n: int
    workers: int
    weights: Sequence[float] | None = None
    segments: list[list[int]] = field(init=False)
    steals: int = field(init=False, default=0)
    _prefix: list[float] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.weights is not None and len(self.weights) != self.n:
            raise ValueError(f"{len(self.weights)} weights for {self.n} items")
        self._prefix = [0.0, *accumulate(self.weights or [1.0] * self.n)]
        cut = (split(self.n, self.workers) if self.weights is None
               else _split_prefix(self._prefix, self.workers))
        self.segments = [[s, e] for s, e in cut]

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

    def _work(self, start: int, end: int) -> float:
        return self._prefix[end] - self._prefix[start]

    def _steal(self, thief: int) -> bool:
        victim = max(range(self.workers), key=lambda w: self._work(*self.segments[w]))
        start, end = self.segments[victim]
        if end <= start:
            return False
        # The back half by work, at least one item: the thief's part weighs nearest to
        # half, the larger part on a tie (of equal items, the back ceil(n/2)).
        half = self._work(start, end) / 2
        mid = end - 1
        while mid > start and abs(self._work(mid - 1, end) - half) <= abs(self._work(mid, end) - half):
            mid -= 1
        self.segments[victim][1] = mid
        self.segments[thief] = [mid, end]
        self.steals += 1
        return True
