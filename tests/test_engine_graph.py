"""One entry point for both pipelines: graph inputs become graph pyramids."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import anyio

from pyramidd.engine import build
from pyramidd.graph import generate
from pyramidd.options import BuildOptions
from pyramidd.pool import WorkerPool


def graphml(tmp_path: Path, n: int = 2000) -> Path:
    x, y, edges = generate.layout(n, seed=3)
    return generate.write(tmp_path / "net.graphml", "graphml", x, y, edges)


def test_engine_builds_a_graph_input_even_with_a_raster_layout(tmp_path):
    src = graphml(tmp_path)

    async def main():
        async with WorkerPool(2) as pool:
            # a watch profile's default layout is dzi: a graph input still builds a graph
            return await build(src, tmp_path / "out", BuildOptions(layout="dzi"), pool=pool)

    summary = anyio.run(main)
    assert summary.layout == "graph-json"
    assert summary.details["nodes"] == 2000 and summary.details["edges"] == 6000
    assert summary.tiles > 0 and summary.levels > 0
    index = tmp_path / "out" / "index.json"
    assert index.exists() and json.loads(index.read_text())


def test_cli_prints_graph_figures(tmp_path):
    src = graphml(tmp_path, 500)
    r = subprocess.run([sys.executable, "-m", "pyramidd.cli", "build", str(src), str(tmp_path / "g"),
                        "--workers", "1"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "500 nodes, 1500 edges," in r.stdout


def test_neither_raster_nor_graph_is_one_clear_error(tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01 nothing anyone reads")
    r = subprocess.run([sys.executable, "-m", "pyramidd.cli", "build", str(junk), str(tmp_path / "o")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.startswith("pyramidd: error: junk.bin: not a format")


def test_graph_options_on_the_command_line(tmp_path):
    src = graphml(tmp_path, 800)
    r = subprocess.run([sys.executable, "-m", "pyramidd.cli", "build", str(src), str(tmp_path / "g"),
                        "--workers", "1", "--bag-size", "16", "--bags-per-leaf", "2", "--seed", "5"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    index = json.loads((tmp_path / "g" / "index.json").read_text())
    assert index["bag_size"] == 16 and index["bags_per_leaf"] == 2
    assert index["options"]["seed"] == 5
