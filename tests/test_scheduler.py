import random

from hypothesis import given, settings
from hypothesis import strategies as st

from pyramidd import planner
from pyramidd.grid import Grid
from pyramidd.scheduler import StealingScheduler, split, split_weighted


def test_split_is_contiguous_and_balanced():
    assert split(10, 3) == [(0, 4), (4, 7), (7, 10)]
    assert split(2, 4) == [(0, 1), (1, 2), (2, 2), (2, 2)]


def test_idle_worker_steals_back_half_of_longest_segment():
    s = StealingScheduler(16, 2)  # [0, 8) and [8, 16)
    assert [s.next(0) for _ in range(8)] == list(range(8))
    assert s.segments[1] == [8, 16]
    # Worker 0 is dry: it takes the back half of worker 1's segment.
    assert s.next(0) == 12
    assert s.segments == [[13, 16], [8, 12]]
    assert s.steals == 1
    assert s.next(1) == 8


def test_weighted_split_cuts_equal_work():
    # Sixteen whole subtrees, then nine slivers (Morton order puts a power-of-two
    # block of whole ones first): by count one worker would get thirteen whole ones.
    weights = [1365] * 16 + [95] * 8 + [9]
    assert split(25, 2) == [(0, 13), (13, 25)]
    assert split_weighted(weights, 2) == [(0, 8), (8, 25)]
    assert split_weighted([1] * 10, 3) == [(0, 3), (3, 7), (7, 10)]
    assert split_weighted([], 2) == [(0, 0), (0, 0)]


def test_a_thief_takes_the_back_half_by_work():
    s = StealingScheduler(5, 2, [10, 10, 10, 1, 1])  # [0, 2) and [2, 5)
    assert s.segments == [[0, 2], [2, 5]]
    assert [s.next(1), s.next(1)] == [2, 3]
    assert s.next(1) == 4
    # Worker 1 is dry; worker 0 has 20 left in two items: it takes the second.
    assert s.next(1) == 1
    assert s.segments == [[0, 1], [2, 2]]
    # Of [big, small, small] the thief takes the smalls, not the big one beside the victim.
    s = StealingScheduler(4, 2, [1, 10, 1, 1])
    s.segments = [[1, 4], [4, 4]]
    assert s.next(1) == 2 and s.segments == [[1, 2], [3, 4]]


def _makespan(scheduler: StealingScheduler, cost: list[float]) -> float:
    """Simulated end of the last worker, each item taking ``cost[i]``."""
    clock = [0.0] * scheduler.workers
    done = [False] * scheduler.workers
    while not all(done):
        w = min((c, w) for w, c in enumerate(clock) if not done[w])[1]
        item = scheduler.next(w)
        if item is None:
            done[w] = True
        else:
            clock[w] += cost[item]
    return max(clock)


def test_weights_keep_a_whole_subtree_from_ending_the_build_alone():
    g = Grid(32768, 32768, 254, 1)
    plan = planner.plan(g, 2)
    tiles = [planner.subtree_tiles(g, k) for k in plan.subtrees]
    ideal = sum(tiles) / 2
    by_count = _makespan(StealingScheduler(len(tiles), 2), tiles)
    by_work = _makespan(StealingScheduler(len(tiles), 2, tiles), tiles)
    # By count, a quarter of a whole subtree ran on one core at the end; by work, at
    # most a sliver did (4 % and 0 % of a two-worker build's subtree phase).
    assert by_count >= ideal + max(tiles) / 4
    assert by_work <= ideal + max(t for t in tiles if t < max(tiles))


@settings(deadline=None)
@given(st.integers(0, 300), st.integers(1, 8), st.randoms(use_true_random=False), st.booleans())
def test_every_item_handed_out_exactly_once(n, workers, rnd, weighted):
    weights = [rnd.choice([1, 3, 1000]) for _ in range(n)] if weighted else None
    s = StealingScheduler(n, workers, weights)
    seen = []
    active = list(range(workers))
    while active:
        w = rnd.choice(active)
        item = s.next(w)
        if item is None:
            active.remove(w)
        else:
            seen.append(item)
    assert sorted(seen) == list(range(n))


def test_each_worker_runs_contiguous_stretches_under_uneven_speeds():
    # Worker 0 is three times faster than worker 1; items stay in few contiguous runs.
    rnd = random.Random(1)
    s = StealingScheduler(400, 2)
    runs = {0: [], 1: []}
    clock = {0: 0.0, 1: 0.0}
    while True:
        w = min(clock, key=clock.get)
        item = s.next(w)
        if item is None:
            if s.remaining() == 0:
                break
            continue
        seq = runs[w]
        if seq and seq[-1][1] == item - 1:
            seq[-1][1] = item
        else:
            seq.append([item, item])
        clock[w] += (1 if w == 0 else 3) * rnd.uniform(0.9, 1.1)
    done = {w: sum(b - a + 1 for a, b in r) for w, r in runs.items()}
    assert done[0] > 2 * done[1]  # the fast worker did most of it: balance
    assert len(runs[0]) + len(runs[1]) < 20  # few contiguous stretches: locality
