"""Laid-out test graphs, generated: clustered points with edges to spatial neighbours.

Used by the tests, ``bench/graph.py`` and the wall example. Written as a stream in any
format pyramidd reads, so a graph larger than memory can be made too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import numpy as np

FORMATS = ("node-link", "graphology", "graphml", "gexf", "csv")


def layout(n: int, *, edges_per_node: int = 3, seed: int = 0,
           clusters: int = 12) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions ``(x, y)`` of ``n`` nodes in Gaussian clusters (a non-uniform density,
    as real layouts have) and ``edges_per_node * n`` edges ``(m, 2)`` to near
    neighbours, with a few long ones."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-1000, 1000, size=(clusters, 2))
    spread = rng.uniform(20, 200, size=clusters)
    which = rng.integers(0, clusters, n)
    xy = centres[which] + rng.normal(size=(n, 2)) * spread[which, None]
    # Neighbours in Z-order are near in the plane: cheap local edges, as a layout
    # algorithm makes them (with the occasional longer one where the curve jumps).
    order = np.argsort(_morton(xy), kind="stable")
    m = edges_per_node * n
    src_pos = rng.integers(0, n, m)
    step = rng.integers(1, 12, m)
    far = rng.random(m) < 0.01  # a few long edges
    dst_pos = np.where(far, rng.integers(0, n, m), (src_pos + step) % n)
    edges = np.stack([order[src_pos], order[dst_pos]], axis=1)
    edges = edges[edges[:, 0] != edges[:, 1]]
    return xy[:, 0].copy(), xy[:, 1].copy(), edges


def _morton(xy: np.ndarray) -> np.ndarray:
    """Z-order codes of points on a 65536 × 65536 grid over their bounds."""
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    q = ((xy - lo) / np.maximum(hi - lo, 1e-12) * 65535).astype(np.uint64)
    code = np.zeros(len(xy), dtype=np.uint64)
    for bit in range(16):
        b = np.uint64(bit)
        code |= ((q[:, 0] >> b) & np.uint64(1)) << np.uint64(2 * bit)
        code |= ((q[:, 1] >> b) & np.uint64(1)) << np.uint64(2 * bit + 1)
    return code


def _chunks(n: int, size: int = 50000) -> Iterator[range]:
    for start in range(0, n, size):
        yield range(start, min(n, start + size))


def write(path: Path, fmt: str, x: np.ndarray, y: np.ndarray, edges: np.ndarray) -> Path:
    """Write the graph as ``fmt`` (one of :data:`FORMATS`); returns the input path to
    build from (the nodes file for ``csv``). Nodes are ``n0``…, edges ``e0``…, each
    node has a ``label`` and each edge a ``weight``."""
    path = Path(path)
    n, m = len(x), len(edges)
    xs, ys = x.tolist(), y.tolist()
    es = edges.tolist()
    with open(path if fmt != "csv" else path.with_name(path.stem + ".nodes.csv"), "w") as f:
        if fmt == "node-link":
            f.write('{"directed": false, "multigraph": false, "graph": {}, "nodes": [')
            for r in _chunks(n):
                f.write(("," if r.start else "") + ",".join(
                    f'{{"id": "n{i}", "x": {xs[i]!r}, "y": {ys[i]!r}, "label": "node {i}"}}' for i in r))
            f.write('], "links": [')
            for r in _chunks(m):
                f.write(("," if r.start else "") + ",".join(
                    f'{{"source": "n{es[i][0]}", "target": "n{es[i][1]}", "id": "e{i}", "weight": {1 + i % 5}}}'
                    for i in r))
            f.write("]}\n")
        elif fmt == "graphology":
            f.write('{"attributes": {"name": "generated"}, "options": {"type": "undirected"}, "nodes": [')
            for r in _chunks(n):
                f.write(("," if r.start else "") + ",".join(
                    f'{{"key": "n{i}", "attributes": {{"x": {xs[i]!r}, "y": {ys[i]!r}, "label": "node {i}"}}}}'
                    for i in r))
            f.write('], "edges": [')
            for r in _chunks(m):
                f.write(("," if r.start else "") + ",".join(
                    f'{{"key": "e{i}", "source": "n{es[i][0]}", "target": "n{es[i][1]}", '
                    f'"attributes": {{"weight": {1 + i % 5}}}}}' for i in r))
            f.write("]}\n")
        elif fmt == "graphml":
            f.write('<?xml version="1.0" encoding="UTF-8"?>\n'
                    '<graphml xmlns="http://graphml.graphdrawing.org/xmlns">\n'
                    '<key id="d0" for="node" attr.name="x" attr.type="double"/>\n'
                    '<key id="d1" for="node" attr.name="y" attr.type="double"/>\n'
                    '<key id="d2" for="node" attr.name="label" attr.type="string"/>\n'
                    '<key id="d3" for="edge" attr.name="weight" attr.type="double"/>\n'
                    '<graph edgedefault="undirected">\n')
            for r in _chunks(n):
                f.write("".join(
                    f'<node id="n{i}"><data key="d0">{xs[i]!r}</data><data key="d1">{ys[i]!r}</data>'
                    f'<data key="d2">node {i}</data></node>\n' for i in r))
            for r in _chunks(m):
                f.write("".join(
                    f'<edge id="e{i}" source="n{es[i][0]}" target="n{es[i][1]}">'
                    f'<data key="d3">{1 + i % 5}</data></edge>\n' for i in r))
            f.write("</graph>\n</graphml>\n")
        elif fmt == "gexf":
            f.write('<?xml version="1.0" encoding="UTF-8"?>\n'
                    '<gexf xmlns="http://gexf.net/1.3" xmlns:viz="http://gexf.net/1.3/viz" version="1.3">\n'
                    '<graph defaultedgetype="undirected"><nodes>\n')
            for r in _chunks(n):
                f.write("".join(
                    f'<node id="n{i}" label="node {i}"><viz:position x="{xs[i]!r}" y="{ys[i]!r}" z="0.0"/>'
                    f'<viz:size value="2"/></node>\n' for i in r))
            f.write("</nodes><edges>\n")
            for r in _chunks(m):
                f.write("".join(
                    f'<edge id="e{i}" source="n{es[i][0]}" target="n{es[i][1]}" weight="{1 + i % 5}"/>\n'
                    for i in r))
            f.write("</edges></graph>\n</gexf>\n")
        elif fmt == "csv":
            f.write("Id,x,y,label\n")
            for r in _chunks(n):
                f.write("".join(f"n{i},{xs[i]!r},{ys[i]!r},node {i}\n" for i in r))
        else:
            raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "csv":
        with open(path.with_name(path.stem + ".edges.csv"), "w") as f:
            f.write("Source,Target,Id,weight\n")
            for r in _chunks(m):
                f.write("".join(f"n{es[i][0]},n{es[i][1]},e{i},{1 + i % 5}\n" for i in r))
        return path.with_name(path.stem + ".nodes.csv")
    return path


def write_json_graph(path: Path, nodes: list[dict], edges: list[dict]) -> Path:
    """A small node-link JSON file from plain dicts (for hand-made test cases)."""
    Path(path).write_text(json.dumps({"nodes": nodes, "links": edges}))
    return Path(path)
