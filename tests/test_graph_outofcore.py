"""Out of core: a graph many times the memory budget builds in bounded memory.

The bound, stated: the process tree's memory when building a tiny graph (the
interpreters and the worker pool), plus the memory budget, plus a fixed working set
(one parsed chunk of the read stage, one batch of tile files: ``WORKING_SET``), plus
``PER_NODE`` bytes a node for the read stage's node table (id hashes, positions and
degrees, with the slack of growing arrays). Edges, attributes and bags cost nothing
beyond the budget: they are on disk.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pyramidd.graph import generate
from pyramidd.graph.index import GraphIndex
from pyramidd.graph.records import EDGE, NODE
from pyramidd.memory import PeakSampler

BUDGET = 1 << 20
WORKING_SET = 64 << 20
PER_NODE = 200


def _build(tmp_path: Path, n: int, budget: int) -> tuple[int, str]:
    x, y, edges = generate.layout(n, seed=11)
    inp = generate.write(tmp_path / f"g{n}.json", "node-link", x, y, edges)
    out = tmp_path / f"out{n}-{budget}"
    proc = subprocess.Popen(
        [sys.executable, "-c", "from pyramidd.cli import main; raise SystemExit(main())",
         "build", str(inp), str(out), "--memory-budget", str(budget), "--workers", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    with PeakSampler(proc.pid, interval=0.02) as sampler:
        stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr
    return sampler.peak, stdout


def test_a_graph_many_times_the_budget_builds_under_budget_plus_overhead(tmp_path: Path) -> None:
    base, _ = _build(tmp_path, 1000, BUDGET)
    n = 60000
    peak, line = _build(tmp_path, n, BUDGET)
    index = GraphIndex.load(tmp_path / f"out{n}-{BUDGET}")
    # The bags the tree held (nodes once, edges once per leaf) and the input file
    # are several times the budget.
    stored = sum(t.stored for t in index.tiles.values() if t.leaf)
    bag_bytes = n * NODE.itemsize + (stored - n) * EDGE.itemsize
    assert bag_bytes > 8 * BUDGET
    assert (tmp_path / f"g{n}.json").stat().st_size > 10 * BUDGET
    bound = base + BUDGET + WORKING_SET + PER_NODE * n
    assert peak <= bound, (
        f"peak {peak >> 20} MiB > {bound >> 20} MiB (base {base >> 20} MiB); {line}"
    )
    assert f"{n} nodes" in line
