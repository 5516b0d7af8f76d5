"""Graph pyramid benchmark: build time and peak memory for laid-out graphs of 100k
and 1M nodes (3 edges a node), and rectangle-query latency over HTTP.

    .venv/bin/python bench/graph.py [--sizes 100000 1000000] [--budget 256M]

Each size: a clustered layout is generated and written as node-link JSON;
``pyramidd build`` runs as its own process and is measured from outside (wall time,
CPU of the process tree, peak memory of the tree, PSS); then the pyramid is served by
hypercorn on 127.0.0.1 and a renderer-like client asks for random rectangles (one
renderer's share of a 4×3 wall at random zooms) — p50/p99 latency of the cover query,
and of fetching the files of the cover.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from measure import PYRAMIDD, measure  # noqa: E402

from pyramidd.graph import generate  # noqa: E402
from pyramidd.graph.index import GraphIndex  # noqa: E402
from pyramidd.graph.query import cover  # noqa: E402

SERVER = """
import sys
from pathlib import Path
from fastapi import FastAPI
from pyramidd.graph.api import make_router
app = FastAPI()
app.include_router(make_router(Path(sys.argv[1])), prefix="/graph")
import asyncio
from hypercorn.asyncio import serve
from hypercorn.config import Config
config = Config()
config.bind = [f"127.0.0.1:{sys.argv[2]}"]
config.accesslog = None
asyncio.run(serve(app, config))
"""


def size_arg(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(float(text[:-1]) * units[text[-1].upper()]) if text[-1].upper() in units else int(text)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000


def queries(root: Path, name: str, n: int, seed: int = 0) -> dict[str, float]:
    import httpx

    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(root), str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}/graph"
        with httpx.Client(timeout=30) as client:
            for _ in range(200):
                try:
                    client.post(f"{base}/{name}/open", json={"renderers": 12, "bags": 8})
                    break
                except httpx.TransportError:
                    time.sleep(0.05)
            rng = np.random.default_rng(seed)
            cover_t, fetch_t = [], []
            for _ in range(n):
                zoom = 2 ** rng.uniform(0, 6)
                w, h = 1 / zoom, 1 / zoom
                cx, cy = rng.uniform(w / 2, 1 - w / 2), rng.uniform(h / 2, 1 - h / 2)
                col, row = rng.integers(0, 4), rng.integers(0, 3)
                x0, y0 = cx - w / 2 + col * w / 4, cy - h / 2 + row * h / 3
                params = {"x0": x0, "y0": y0, "x1": x0 + w / 4, "y1": y0 + h / 3,
                          "bags": 8, "space": "normalised"}
                t = time.perf_counter()
                r = client.get(f"{base}/{name}/cover", params=params)
                cover_t.append(time.perf_counter() - t)
                r.raise_for_status()
                t = time.perf_counter()
                for f in r.json()["files"]:
                    client.get(f["url"]).raise_for_status()
                fetch_t.append(time.perf_counter() - t)
    finally:
        server.terminate()
        server.wait()
    index = GraphIndex.load(root / name)
    rng = np.random.default_rng(seed)
    local = []
    b = index.bounds
    for _ in range(n):
        x0, y0 = rng.uniform(b[0], b[2]), rng.uniform(b[1], b[3])
        rect = (x0, y0, x0 + (b[2] - b[0]) / 8, y0 + (b[3] - b[1]) / 8)
        t = time.perf_counter()
        cover(index, rect, 8 * index.bag_size)
        local.append(time.perf_counter() - t)
    return {
        "cover_p50_ms": pct(cover_t, 50), "cover_p99_ms": pct(cover_t, 99),
        "fetch_p50_ms": pct(fetch_t, 50), "fetch_p99_ms": pct(fetch_t, 99),
        "inproc_p50_ms": pct(local, 50), "inproc_p99_ms": pct(local, 99),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--budget", type=size_arg, default=256 << 20)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--queries", type=int, default=300)
    p.add_argument("--dir", type=Path, default=None, help="work folder (default: a temporary one)")
    args = p.parse_args()
    work = args.dir or Path(tempfile.mkdtemp(prefix="pyramidd-graph-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"graph bench in {work}; budget {args.budget >> 20} MiB, {args.workers} workers")
    print(f"{'nodes':>9} {'edges':>9} {'input':>8} {'build':>8} {'cpu':>8} {'peak':>9} "
          f"{'tiles':>6} {'output':>9} {'cover p50/p99 ms':>17} {'files p50/p99 ms':>17} "
          f"{'in-proc p50/p99 ms':>19}")
    for n in args.sizes:
        x, y, edges = generate.layout(n, seed=1)
        inp = generate.write(work / f"g{n}.json", "node-link", x, y, edges)
        del x, y, edges
        root = work / f"served{n}"
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir()
        out = root / "graph"
        m = measure([*PYRAMIDD, "build", str(inp), str(out),
                     "--memory-budget", str(args.budget), "--workers", str(args.workers)])
        index = GraphIndex.load(out)
        size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
        q = queries(root, "graph", args.queries)
        print(f"{n:>9} {index.meta['edges']:>9} {inp.stat().st_size / 2**20:>6.0f}Mi "
              f"{m.wall:>7.1f}s {m.cpu:>7.1f}s {m.peak / 2**20:>6.0f}MiB {len(index.tiles):>6} "
              f"{size / 2**20:>6.0f}MiB {q['cover_p50_ms']:>8.1f}/{q['cover_p99_ms']:<8.1f}"
              f"{q['fetch_p50_ms']:>8.1f}/{q['fetch_p99_ms']:<8.1f}"
              f"{q['inproc_p50_ms']:>9.3f}/{q['inproc_p99_ms']:<9.3f}", flush=True)
        if not args.dir:
            shutil.rmtree(root)
            os.unlink(inp)


if __name__ == "__main__":
    main()
