"""A display wall of N renderers reading a graph pyramid through the query API.

    .venv/bin/python examples/wall.py [GRAPH] [--renderers 12] [--bags 32]

Builds a graph pyramid from GRAPH (GraphML, GEXF, graph JSON or a nodes CSV; without
one, a generated 20,000-node layout), serves it with the graph API on 127.0.0.1 the
way the pyramidd service does, and plays the wall: it opens the graph with the wall's
capabilities, splits the graph into one rectangle per renderer (columns × rows
matching the graph's aspect ratio), asks for each renderer's cover and fetches the
files, as each renderer would. Prints what each renderer draws.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import socket
import sys
import tempfile
from pathlib import Path

import httpx
from fastapi import FastAPI
from hypercorn.asyncio import serve
from hypercorn.config import Config

from pyramidd.graph import generate
from pyramidd.graph.api import make_router
from pyramidd.graph.build import build_graph
from pyramidd.pool import WorkerPool


def wall_grid(renderers: int, aspect: float) -> tuple[int, int]:
    """Columns and rows for ``renderers`` screens, closest to the graph's aspect ratio."""
    best = (renderers, 1)
    for rows in range(1, renderers + 1):
        if renderers % rows == 0:
            cols = renderers // rows
            if abs(math.log(cols / rows / aspect)) < abs(math.log(best[0] / best[1] / aspect)):
                best = (cols, rows)
    return best


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def renderer(client: httpx.AsyncClient, base: str, rect: tuple[float, ...], bags: int) -> dict:
    """One renderer: its cover, then every file of it."""
    params = dict(zip(("x0", "y0", "x1", "y1"), rect), bags=bags, space="normalised")
    cover = (await client.get(f"{base}/cover", params=params)).raise_for_status().json()
    nodes = edges = 0
    for f in cover["files"]:
        doc = (await client.get(f["url"])).raise_for_status().json()
        nodes += len(doc["nodes"])
        edges += len(doc["edges"])
    return {"cover": cover, "nodes": nodes, "edges": edges}


async def main() -> None:
    p = argparse.ArgumentParser(description="Split a wall of renderers over a graph pyramid.")
    p.add_argument("graph", type=Path, nargs="?", help="laid-out graph (default: generated)")
    p.add_argument("--renderers", type=int, default=12)
    p.add_argument("--bags", type=int, default=32, help="bags one renderer draws smoothly")
    args = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="pyramidd-wall-"))
    graph = args.graph
    if graph is None:
        x, y, e = generate.layout(20000, seed=7)
        graph = generate.write(work / "demo.json", "node-link", x, y, e)
    async with WorkerPool(2) as pool:
        summary = await build_graph(graph, work / "graphs" / "demo", {}, pool=pool)
    print(f"built {summary['nodes']} nodes, {summary['edges']} edges into "
          f"{summary['tiles']} files, {summary['levels']} levels")

    app = FastAPI()
    app.include_router(make_router(work / "graphs"), prefix="/graph")
    config = Config()
    port = free_port()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    stop = asyncio.Event()
    server = asyncio.create_task(serve(app, config, shutdown_trigger=stop.wait))
    base = f"http://127.0.0.1:{port}/graph/demo"
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            for _ in range(100):  # wait for the server to listen
                try:
                    info = (await client.post(f"{base}/open", json={
                        "renderers": args.renderers, "bags": args.bags})).raise_for_status().json()
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
            else:
                sys.exit("the graph API did not start")
            cols, rows = wall_grid(args.renderers, info["aspect"])
            print(f"graph {info['width']:.4g} x {info['height']:.4g} (aspect {info['aspect']:.3f}); "
                  f"wall {cols} x {rows}; each renderer draws up to {info['budget']} objects")
            rects = [
                (c / cols, r / rows, (c + 1) / cols, (r + 1) / rows)
                for r in range(rows) for c in range(cols)
            ]
            results = await asyncio.gather(*(renderer(client, base, rect, args.bags) for rect in rects))
            print(f"{'screen':>8} {'rectangle (normalised)':>30} {'files':>5} {'levels':>7} "
                  f"{'sparse':>6} {'nodes':>6} {'edges':>6}")
            for n, (rect, res) in enumerate(zip(rects, results)):
                files = res["cover"]["files"]
                levels = sorted({f["level"] for f in files})
                lv = f"{levels[0]}-{levels[-1]}" if levels else "-"
                print(f"{n % cols},{n // cols:>6} {'[%.2f, %.2f, %.2f, %.2f]' % rect:>30} "
                      f"{len(files):>5} {lv:>7} {sum(not f['leaf'] for f in files):>6} "
                      f"{res['nodes']:>6} {res['edges']:>6}")
    finally:
        stop.set()
        await server


if __name__ == "__main__":
    asyncio.run(main())
