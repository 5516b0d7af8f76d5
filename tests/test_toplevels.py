import random

import pytest

from pyramidd import planner
from pyramidd.grid import Grid
from pyramidd.toplevels import TopLevels, inputs


@pytest.mark.parametrize("support", [0, 1])
@pytest.mark.parametrize("w,h,t,o,depth", [(9000, 5000, 254, 1, "onepixel"), (3000, 9000, 256, 0, "onetile"),
                                            (60000, 200, 64, 2, "onepixel")])
def test_tasks_run_once_after_their_inputs_and_free_every_core(w, h, t, o, depth, support):
    grid = Grid(w, h, t, o, depth)
    plan = planner.plan(grid, 2)
    top = TopLevels(grid, plan.builder_level, support)
    rnd = random.Random(w)
    roots = list(plan.subtrees)
    rnd.shuffle(roots)
    present, ran, freed, ready = set(), [], set(), []

    def add(key):
        present.add(key)
        ready.extend(top.add(key))

    def run_one():
        task = ready.pop(rnd.randrange(len(ready)))
        assert all(k in present and k not in freed for k in inputs(grid, task, support))
        ran.append(task)
        freed.update(top.done(task))
        if task.kind == "merge":
            add(task.key)

    for root in roots:  # builders finish in any order, tasks run in any order
        add(root)
        while ready and rnd.random() < 0.5:
            run_one()
    while ready:
        run_one()
    assert len(ran) == len(set(ran)) == top.total()
    assert top.complete()
    below = {k for level in range(grid.min_level, plan.builder_level) for k in grid.keys(level)}
    assert {t.key for t in ran if t.kind == "emit"} == below
    assert {t.key for t in ran if t.kind == "merge"} == below
    # every core was dropped once nothing needed it (the last level's only reader is its emit)
    assert freed == present
