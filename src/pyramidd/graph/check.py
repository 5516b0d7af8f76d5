"""Check a built graph pyramid against the graph it was built from.

The invariants (each violation is reported as one line of text):

- every node is an *own* node of exactly one file's leaf: the leaf whose region holds
  it (the placement rule of :mod:`.quadtree`);
- every edge is in exactly the leaves whose region its segment touches, whole: both
  endpoints are nodes of that leaf's file;
- the counts in the index equal the files;
- every file (sparse ones too) references only nodes it carries, and a sparse file
  holds at most ``capacity`` objects, carried nodes included;
- sparse views are consistent across levels: an object a node's file shows is in the
  file of every child it lies in (so, step by step, in every deeper file it lies in);
- and across a level: an edge a sparse file shows is in every file of the same level
  whose region its segment touches, neighbours that are not siblings included (a node
  lies in one file a level).

Meant for tests and for anyone who wants to audit a pyramid; it reads every file, so
it is for graphs that fit in memory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .index import GraphIndex
from .quadtree import point_quadrant, segments_hit_rect

Graph = tuple[dict[str, tuple[float, float]], dict[str, tuple[str, str]]]


def load_files(index: GraphIndex) -> dict[str, dict[str, Any]]:
    """Every tile file of a pyramid, by quadkey."""
    root = index.path.parent
    return {
        key: json.loads((root / t.file).read_text())
        for key, t in index.tiles.items() if t.file is not None
    }


def _edge_key(e: dict[str, Any]) -> str:
    return str(e.get("id", f"{e['source']}->{e['target']}"))


def verify(folder: Path, graph: Graph | None = None) -> list[str]:
    """Problems found in the pyramid at ``folder`` (empty when it is sound).

    ``graph`` — ``(nodes: id -> (x, y), edges: id -> (source, target))`` of the input —
    adds the checks that every input object is where it belongs.
    """
    index = GraphIndex.load(Path(folder))
    files = load_files(index)
    problems: list[str] = []
    cap = int(index.meta["capacity"])
    own_nodes: dict[str, set[str]] = {}
    edges_in: dict[str, set[str]] = {}
    for key, f in files.items():
        tile = index.tiles[key]
        ids = [n["id"] for n in f["nodes"]]
        if len(set(ids)) != len(ids):
            problems.append(f"{key}: a node appears twice in its file")
        idset = set(ids)
        own_nodes[key] = set(ids[: f["own"]])
        edges_in[key] = {_edge_key(e) for e in f["edges"]}
        if tile.nodes != len(f["nodes"]) or tile.edges != len(f["edges"]):
            problems.append(f"{key}: index says {tile.nodes} nodes {tile.edges} edges, "
                            f"file has {len(f['nodes'])} and {len(f['edges'])}")
        for e in f["edges"]:
            if e["source"] not in idset or e["target"] not in idset:
                problems.append(f"{key}: edge {_edge_key(e)} references a node the file lacks")
        if f["sparse"] and len(f["nodes"]) + len(f["edges"]) > cap:
            problems.append(f"{key}: sparse file has {len(f['nodes']) + len(f['edges'])} objects > {cap}")
        x0, y0, x1, y1 = f["nrect"]
        for n in f["nodes"][: f["own"]]:
            if not (x0 - 1e-9 <= n["x"] <= x1 + 1e-9 and y0 - 1e-9 <= n["y"] <= y1 + 1e-9):
                problems.append(f"{key}: own node {n['id']} lies outside the file's rectangle")
    xy = _positions(index, files, graph)
    problems += _across_levels(index, files, own_nodes, edges_in, xy)
    problems += _within_levels(index, files, edges_in, xy)
    if graph is not None:
        problems += _placement(index, graph, own_nodes, edges_in)
    return problems


def _positions(index: GraphIndex, files: dict[str, dict[str, Any]],
               graph: Graph | None) -> dict[str, tuple[float, float]]:
    """Graph coordinates of every node in the files: the input's own when given (the
    build placed objects by those exact floats), else the files' de-normalised."""
    b = index.bounds
    w, h = b[2] - b[0], b[3] - b[1]
    xy = {n["id"]: (b[0] + n["x"] * w, b[1] + n["y"] * h)
          for f in files.values() for n in f["nodes"]}
    if graph is not None:
        xy.update(graph[0])
    return xy


def _segments(edges: list[dict[str, Any]], xy: dict[str, tuple[float, float]]) -> np.ndarray:
    return np.array([(*xy[e["source"]], *xy[e["target"]]) for e in edges]).reshape(-1, 4)


def _across_levels(index: GraphIndex, files: dict[str, dict[str, Any]],
                   own_nodes: dict[str, set[str]], edges_in: dict[str, set[str]],
                   xy: dict[str, tuple[float, float]]) -> list[str]:
    """An object a sparse file shows is in the file of every child it lies in."""
    problems: list[str] = []
    for key, f in files.items():
        tile = index.tiles[key]
        if tile.leaf:
            continue
        for n in f["nodes"][: f["own"]]:
            child = tile.children[point_quadrant(*xy[n["id"]], tile.rect)].key
            if n["id"] not in own_nodes.get(child, set()):
                problems.append(f"{key}: shows node {n['id']} that child {child!r} does not")
        seg = _segments(f["edges"], xy)
        for c in tile.children:
            hit = segments_hit_rect(seg[:, 0], seg[:, 1], seg[:, 2], seg[:, 3], c.rect)
            for j in np.flatnonzero(hit):
                ek = _edge_key(f["edges"][j])
                if ek not in edges_in.get(c.key, set()):
                    problems.append(f"{key}: shows edge {ek} that child {c.key!r} does not")
    return problems


def _within_levels(index: GraphIndex, files: dict[str, dict[str, Any]],
                   edges_in: dict[str, set[str]], xy: dict[str, tuple[float, float]]) -> list[str]:
    """An edge a sparse file shows is in every file of its level its segment touches."""
    problems: list[str] = []
    by_level: dict[int, list[str]] = {}
    for key in index.tiles:
        by_level.setdefault(len(key), []).append(key)
    for level, keys in sorted(by_level.items()):
        shown: dict[str, tuple[str, dict[str, Any]]] = {}
        for key in keys:
            f = files.get(key)
            if f is not None and f["sparse"]:
                for e in f["edges"]:
                    shown.setdefault(_edge_key(e), (key, e))
        if not shown:
            continue
        ids = list(shown)
        seg = _segments([e for _, e in shown.values()], xy)
        for key in keys:
            hit = segments_hit_rect(seg[:, 0], seg[:, 1], seg[:, 2], seg[:, 3], index.tiles[key].rect)
            for j in np.flatnonzero(hit):
                if ids[j] not in edges_in.get(key, set()):
                    problems.append(f"level {level}: edge {ids[j]} shown by {shown[ids[j]][0]!r} "
                                    f"is missing from {key!r}, which it crosses")
    return problems


def _placement(index: GraphIndex, graph: Graph, own_nodes: dict[str, set[str]],
               edges_in: dict[str, set[str]]) -> list[str]:
    nodes, edges = graph
    problems: list[str] = []
    leaves = [t for t in index.tiles.values() if t.leaf]
    where: dict[str, list[str]] = {}
    for t in leaves:
        for n in own_nodes.get(t.key, ()):
            where.setdefault(n, []).append(t.key)
    for ident, (x, y) in nodes.items():
        expect = index.locate(x, y).key
        if where.get(ident) != [expect]:
            problems.append(f"node {ident} is own in leaves {where.get(ident)}, expected [{expect!r}]")
    if len(where) != len(nodes):
        problems.append(f"leaves hold {len(where)} distinct nodes, the graph has {len(nodes)}")
    e_where: dict[str, set[str]] = {}
    for t in leaves:
        for e in edges_in.get(t.key, ()):
            e_where.setdefault(e, set()).add(t.key)
    ids = list(edges)
    if ids:
        s = np.array([nodes[edges[i][0]] for i in ids])
        d = np.array([nodes[edges[i][1]] for i in ids])
        expect_sets: list[set[str]] = [set() for _ in ids]
        for t in leaves:
            hit = segments_hit_rect(s[:, 0], s[:, 1], d[:, 0], d[:, 1], t.rect)
            for j in np.flatnonzero(hit):
                expect_sets[j].add(t.key)
        for j, ident in enumerate(ids):
            if e_where.get(ident, set()) != expect_sets[j]:
                problems.append(f"edge {ident} is in leaves {sorted(e_where.get(ident, set()))}, "
                                f"expected {sorted(expect_sets[j])}")
    return problems
