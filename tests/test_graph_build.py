"""Graph pyramid builds end to end on the worker pool, checked by the invariants of
:mod:`pyramidd.graph.check` on generated graphs and on real laid-out graphs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest

from pyramidd.errors import OutputError
from pyramidd.graph import generate
from pyramidd.graph.build import build_graph
from pyramidd.graph.check import load_files, verify
from pyramidd.graph.errors import GraphDataError
from pyramidd.graph.index import GraphIndex
from pyramidd.graph.quadtree import segments_hit_rect
from pyramidd.pool import WorkerPool

SMALL = {"bag_size": 16, "bags_per_leaf": 4}


@pytest.fixture(scope="module")
def portal():
    """One event loop (in a thread) and one worker pool for every build of the module."""
    async def hold(stop: anyio.Event, *, task_status: Any) -> None:
        async with WorkerPool(2) as pool:
            task_status.started(pool)
            await stop.wait()

    with anyio.from_thread.start_blocking_portal() as portal:
        stop = portal.call(anyio.Event)
        future, pool = portal.start_task(hold, stop)
        try:
            yield portal, pool
        finally:
            portal.call(stop.set)
            future.result()


@pytest.fixture
def build(portal):
    loop, pool = portal

    def build(inp: Path, out: Path, hang: float = 300, **options: Any) -> dict[str, Any]:
        # A build that hangs fails the test (and is cancelled) instead of blocking the run.
        future = loop.start_task_soon(lambda: build_graph(inp, out, {**SMALL, **options}, pool=pool))
        try:
            return future.result(timeout=hang)
        except TimeoutError:
            future.cancel()
            raise

    return build


def as_graph(x: np.ndarray, y: np.ndarray, edges: np.ndarray):
    nodes = {f"n{i}": (float(x[i]), float(y[i])) for i in range(len(x))}
    links = {f"e{i}": (f"n{a}", f"n{b}") for i, (a, b) in enumerate(edges.tolist())}
    return nodes, links


def tree_files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "tiles").iterdir())}


@pytest.mark.parametrize("fmt", generate.FORMATS)
def test_every_format_builds_a_sound_pyramid(build, tmp_path: Path, fmt: str) -> None:
    x, y, edges = generate.layout(800, seed=2)
    inp = generate.write(tmp_path / ("g.json" if "json" in fmt or fmt in ("node-link", "graphology")
                                     else f"g.{fmt}"), fmt, x, y, edges)
    out = tmp_path / "pyr"
    summary = build(inp, out)
    assert summary["nodes"] == 800 and summary["edges"] == len(edges)
    assert summary["levels"] > 3 and summary["leaves"] > 20
    assert verify(out, as_graph(x, y, edges)) == []
    index = GraphIndex.load(out)
    assert index.meta["source"]["name"] == inp.name
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


def test_leaf_file_layout(build, tmp_path: Path) -> None:
    x, y, edges = generate.layout(400, seed=1)
    out = tmp_path / "pyr"
    build(generate.write(tmp_path / "g.json", "node-link", x, y, edges), out)
    index = GraphIndex.load(out)
    leaf = next(t for t in index.tiles.values() if t.leaf and t.file)
    doc = json.loads((out / leaf.file).read_text())
    assert doc["key"] == leaf.key and doc["level"] == len(leaf.key) and doc["sparse"] is False
    assert doc["rect"] == list(leaf.rect)
    assert doc["nrect"] == pytest.approx(list(index.nrect(leaf)))
    n = doc["nodes"][0]
    i = int(n["id"][1:])
    b = index.bounds
    assert n["x"] == pytest.approx((x[i] - b[0]) / (b[2] - b[0]))
    assert n["y"] == pytest.approx((y[i] - b[1]) / (b[3] - b[1]))
    assert n["label"] == f"node {i}"
    assert {"id", "source", "target", "weight"} <= set(doc["edges"][0])
    assert (out / "tiles" / f"q{leaf.key}.json").exists()


def _minnesota_airfoil():
    pygsp = pytest.importorskip("pygsp")
    for graph in (pygsp.graphs.Minnesota(), pygsp.graphs.Airfoil()):
        src, dst, _ = graph.get_edge_list()
        yield graph.coords[:, 0], graph.coords[:, 1], np.stack([src, dst], axis=1).astype(np.int64)


def test_real_laid_out_graphs(build, tmp_path: Path) -> None:
    """The Minnesota road network and an airfoil mesh as shipped by PyGSP."""
    for n, (x, y, edges) in enumerate(_minnesota_airfoil()):
        inp = generate.write(tmp_path / f"real{n}.graphml", "graphml", x, y, edges)
        out = tmp_path / f"pyr{n}"
        summary = build(inp, out)
        assert summary["nodes"] == len(x) and summary["edges"] == len(edges)
        assert verify(out, as_graph(x, y, edges)) == []


def test_sparse_levels_are_reproducible_and_seeded(build, tmp_path: Path) -> None:
    x, y, edges = generate.layout(600, seed=4)
    inp = generate.write(tmp_path / "g.gexf", "gexf", x, y, edges)
    build(inp, tmp_path / "a")
    build(inp, tmp_path / "b")
    build(inp, tmp_path / "c", seed=99)
    a, b, c = (tree_files(tmp_path / k) for k in "abc")
    assert a == b
    assert a.keys() == c.keys() and a != c  # same tree, other sample
    assert verify(tmp_path / "c") == []


def test_sparse_edges_are_shown_by_every_tile_of_their_level(build, tmp_path: Path) -> None:
    """An edge a sparse tile shows is in every file of that level it crosses, also
    neighbours that are not siblings; the checker says so when one lacks it."""
    x, y, edges = generate.layout(1500, seed=8)
    long = np.random.default_rng(8).integers(0, 1500, (300, 2))  # more long edges
    edges = np.concatenate([edges, long[long[:, 0] != long[:, 1]]])
    out = tmp_path / "pyr"
    build(generate.write(tmp_path / "g.json", "node-link", x, y, edges), out)
    graph = as_graph(x, y, edges)
    assert verify(out, graph) == []
    index = GraphIndex.load(out)
    files = load_files(index)
    # An edge a sparse tile shows that crosses a same-level tile with another parent.
    def crossings():  # type: ignore[no-untyped-def]
        for key, f in files.items():
            level = [t for t in index.tiles.values()
                     if t.level == len(key) and t.key[:-1] != key[:-1] and t.file]
            for e in f["edges"] if f["sparse"] else ():
                seg = [np.array([v]) for v in (*graph[0][e["source"]], *graph[0][e["target"]])]
                for other in level:
                    if segments_hit_rect(*seg, other.rect)[0]:
                        yield key, e["id"], other

    found = next(crossings(), None)
    assert found is not None
    key, edge, other = found
    path = out / other.file
    doc = json.loads(path.read_text())
    doc["edges"] = [e for e in doc["edges"] if e["id"] != edge]
    path.write_text(json.dumps(doc))
    assert f"level {len(key)}: edge {edge} shown by " in "\n".join(verify(out))


def test_sparse_prefers_important_nodes(build, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    nodes = [{"id": f"n{i}", "x": float(rng.random()), "y": float(rng.random()),
              "rank": 1000 if i % 50 == 0 else 1} for i in range(800)]
    inp = generate.write_json_graph(tmp_path / "g.json", nodes, [])
    out = tmp_path / "pyr"
    build(inp, out, importance="rank", bag_size=8, bags_per_leaf=4)
    root = load_files(GraphIndex.load(out))[""]
    shown = [n["id"] for n in root["nodes"]]
    assert {f"n{i}" for i in range(0, 800, 50)} <= set(shown)
    assert len(shown) <= 32


def test_late_nodes_rebuild_the_tree_with_final_bounds(build, tmp_path: Path) -> None:
    nodes = [{"id": f"n{i}", "x": i % 10, "y": i // 10} for i in range(100)]
    links = [{"source": f"n{i}", "target": f"n{i + 1}", "id": f"e{i}"} for i in range(99)]
    links.append({"source": "n0", "target": "far", "id": "e99"})
    doc = {"nodes": nodes, "links": links, "more": 1}
    text = json.dumps(doc)[:-1] + ', "nodes": [{"id": "far", "x": 500, "y": -40}]}'
    # A second "nodes" member after the edges: the far node arrives last.
    inp = tmp_path / "late.json"
    inp.write_text(text)
    out = tmp_path / "pyr"
    summary = build(inp, out)
    assert summary["nodes"] == 101 and summary["edges"] == 100
    index = GraphIndex.load(out)
    assert index.bounds[2] == 500 and index.bounds[1] == -40
    graph = ({**{f"n{i}": (i % 10, i // 10) for i in range(100)}, "far": (500, -40)},
             {f"e{i}": (f"n{i}", f"n{i + 1}") for i in range(99)} | {"e99": ("n0", "far")})
    assert verify(out, graph) == []


def test_a_hub_hits_the_depth_limit_and_stays_sound(build, tmp_path: Path) -> None:
    nodes = [{"id": "hub", "x": 0.5, "y": 0.5}] + [
        {"id": f"n{i}", "x": 0.5 + 1e-9 * (i % 3), "y": 0.5} for i in range(200)]
    nodes += [{"id": "c0", "x": 0, "y": 0}, {"id": "c1", "x": 1, "y": 1}]
    links = [{"source": "hub", "target": f"n{i}", "id": f"e{i}"} for i in range(200)]
    inp = generate.write_json_graph(tmp_path / "hub.json", nodes, links)
    out = tmp_path / "pyr"
    summary = build(inp, out, max_depth=6)
    assert summary["depth_limited"] >= 1
    index = GraphIndex.load(out)
    assert index.meta["depth_limited"] and max(len(k) for k in index.tiles) == 6
    assert verify(out) == []


def test_bad_data_fails_the_build_and_leaves_nothing(build, tmp_path: Path) -> None:
    inp = generate.write_json_graph(
        tmp_path / "bad.json", [{"id": "a", "x": 1, "y": 2}], [{"source": "a", "target": "zz"}])
    with pytest.raises(GraphDataError, match="'zz'"):
        build(inp, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.json"]
    summary = build(inp, tmp_path / "out", bad_data="skip")
    assert summary["skipped"] == {"unknown-endpoint": 1}
    assert GraphIndex.load(tmp_path / "out").meta["skipped"] == {"unknown-endpoint": 1}


def test_existing_output_needs_replace(build, tmp_path: Path) -> None:
    x, y, edges = generate.layout(100, seed=1)
    inp = generate.write(tmp_path / "g.json", "node-link", x, y, edges)
    build(inp, tmp_path / "out")
    with pytest.raises(OutputError, match="already exists"):
        build(inp, tmp_path / "out")
    build(inp, tmp_path / "out", replace=True, seed=3)
    assert GraphIndex.load(tmp_path / "out").meta["options"]["seed"] == 3


def test_slow_rework_is_inserted_whole(build, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Re-inserting a split leaf's objects may take longer than the insert stage's
    polling interval; none of them may be dropped (and the build must end)."""
    import time

    from pyramidd.graph.bags import GraphQuadtree

    real = GraphQuadtree.insert

    def slow(self, key, nodes, edges):  # type: ignore[no-untyped-def]
        if key:
            time.sleep(0.07)  # longer than the 0.05 s the stage waits for rework
        return real(self, key, nodes, edges)

    monkeypatch.setattr(GraphQuadtree, "insert", slow)
    x, y, edges = generate.layout(300, seed=9)
    inp = generate.write(tmp_path / "g.json", "node-link", x, y, edges)
    out = tmp_path / "pyr"
    summary = build(inp, out)
    assert summary["nodes"] == 300
    assert verify(out, as_graph(x, y, edges)) == []


def _staging_dirs(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if ".pyramidd-staging-" in p.name] if folder.exists() else []


@pytest.mark.parametrize("when", ["while-reading", "after-reading", "while-writing", "output-parent"])
def test_a_build_whose_staging_folder_is_removed_fails_with_a_clear_error(
    build, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    """A clean-up (or a user) deleting the build's folder under it: the build stops
    with an error saying so, instead of waiting forever for files that will not come,
    and leaves nothing behind."""
    import os
    import shutil
    import tempfile

    from pyramidd.graph import build as build_mod
    from pyramidd.graph.bags import GraphQuadtree

    parent = tmp_path / "parent"
    parent.mkdir()
    out = parent / "pyr"

    def take_away(d: Path) -> None:
        # Renamed out of reach, then deleted: the reader may be writing a chunk into it
        # at that moment, and a plain rmtree raced with it ("Directory not empty").
        aside = Path(tempfile.mkdtemp(dir=tmp_path))
        os.rename(d, aside / d.name)
        shutil.rmtree(aside, ignore_errors=True)

    def remove() -> None:
        for d in [parent] if when == "output-parent" else _staging_dirs(parent):
            take_away(d)

    real_insert, real_flush = GraphQuadtree.insert, GraphQuadtree.flush
    real_wait = build_mod._Stages._wait_bounds
    removed = False

    def insert(self, key, nodes, edges):  # type: ignore[no-untyped-def]
        nonlocal removed
        if when == "while-reading" and not removed:
            removed = True
            remove()
        return real_insert(self, key, nodes, edges)

    async def wait_bounds(self):  # type: ignore[no-untyped-def]
        if when in ("after-reading", "output-parent"):
            # The reader is done and its chunks wait on disk for the insert stage.
            await self.read_done.wait()
            remove()
        return await real_wait(self)

    def flush(self):  # type: ignore[no-untyped-def]
        if when == "while-writing":
            remove()
        return real_flush(self)

    monkeypatch.setattr(GraphQuadtree, "insert", insert)
    monkeypatch.setattr(build_mod._Stages, "_wait_bounds", wait_bounds)
    monkeypatch.setattr(GraphQuadtree, "flush", flush)
    x, y, edges = generate.layout(3000, seed=12)
    inp = generate.write(tmp_path / "g.json", "node-link", x, y, edges)
    # Small chunks keep the reader busy past the first insert.
    options = {"chunk": 500} if when == "while-reading" else {}
    with pytest.raises(OutputError, match="was removed"):
        build(inp, out, hang=120, **options)
    assert not out.exists() and _staging_dirs(parent) == []
