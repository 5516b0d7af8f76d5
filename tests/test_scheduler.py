import random

from hypothesis import given, settings
from hypothesis import strategies as st

from pyramidd.scheduler import StealingScheduler, split


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


@settings(deadline=None)
@given(st.integers(0, 300), st.integers(1, 8), st.randoms(use_true_random=False))
def test_every_item_handed_out_exactly_once(n, workers, rnd):
    s = StealingScheduler(n, workers)
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
