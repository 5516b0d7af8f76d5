"""Graph sources: every format streams the same graph; the read stage's bad-data policy."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from pyramidd.errors import InputError
from pyramidd.graph import generate
from pyramidd.graph.build import _builtin_probe
from pyramidd.graph.errors import GraphDataError
from pyramidd.graph.read import read_graph
from pyramidd.graph.records import EDGE, NODE, GraphOptions
from pyramidd.graph.sources import jsonstream
from pyramidd.graph.sources.base import EDGE as E
from pyramidd.graph.sources.base import NODE as N


@pytest.fixture(scope="module")
def small() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return generate.layout(300, seed=5)


@pytest.mark.parametrize("fmt,name", [
    ("node-link", "node-link-json"), ("graphology", "graphology-json"),
    ("graphml", "graphml"), ("gexf", "gexf"), ("csv", "csv"),
])
def test_every_format_yields_the_same_graph(tmp_path: Path, small, fmt: str, name: str) -> None:
    x, y, edges = small
    path = generate.write(tmp_path / f"g.{ {'graphology': 'json', 'node-link': 'json'}.get(fmt, fmt)}",
                          fmt, x, y, edges)
    source = _builtin_probe(path)
    assert source is not None and source.format == name
    seen = []
    recs = list(source.records(seen.append))
    nodes = [r for r in recs if r[0] == N]
    links = [r for r in recs if r[0] == E]
    assert [r[1] for r in nodes] == [f"n{i}" for i in range(len(x))]
    assert [float(r[2]) for r in nodes] == x.tolist()
    assert [float(r[3]) for r in nodes] == y.tolist()
    assert nodes[7][4]["label"] == "node 7"
    assert [(r[1], r[2]) for r in links] == [(f"n{a}", f"n{b}") for a, b in edges.tolist()]
    assert [r[3] for r in links] == [f"e{i}" for i in range(len(edges))]
    assert float(links[3][4]["weight"]) == 1 + 3 % 5
    assert seen and seen[-1] == source.size


def test_probe_leaves_other_files_alone(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('{"type": "FeatureCollection"}')
    (tmp_path / "b.xml").write_text("<svg/>")
    (tmp_path / "c.csv").write_text("a,b\n")
    for name in ("a.json", "b.xml", "c.csv"):
        assert _builtin_probe(tmp_path / name) is None


def test_yed_geometry_is_the_node_centre(tmp_path: Path) -> None:
    path = tmp_path / "y.graphml"
    path.write_text(
        '<graphml xmlns="http://graphml.graphdrawing.org/xmlns" xmlns:y="http://www.yworks.com/xml/graphml">'
        '<key id="d6" for="node" yfiles.type="nodegraphics"/><graph>'
        '<node id="a"><data key="d6"><y:ShapeNode><y:Geometry x="10" y="20" width="30" height="40"/>'
        '<y:NodeLabel>Alpha</y:NodeLabel></y:ShapeNode></data></node></graph></graphml>'
    )
    [rec] = list(_builtin_probe(path).records())
    assert rec[:4] == (N, "a", 25.0, 40.0) and rec[4] == {"label": "Alpha"}


def test_json_stream_across_tiny_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jsonstream, "BLOCK", 3)
    doc = {"graph": {"name": "x"}, "nodes": [{"id": i, "x": 1.5 * i, "y": -i} for i in range(50)],
           "n": 12345678, "links": [], "edges": [[1, 2], {"a": "é"}]}
    got = list(jsonstream.iter_members(io.BytesIO(json.dumps(doc).encode()), {"nodes", "links", "edges"}))
    assert got[0] == ("graph", {"name": "x"}, False)
    assert [v for k, v, el in got if k == "nodes"] == doc["nodes"]
    assert ("n", 12345678, False) in got
    assert [v for k, v, el in got if k == "edges"] == doc["edges"]


def test_truncated_json_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text('{"nodes": [{"id": "a", "x": 1, "y": 2}, {"id": "b"')
    with pytest.raises(InputError, match="not valid JSON"):
        list(_builtin_probe(path).records())


def test_truncated_xml_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "t.graphml"
    path.write_text('<graphml><graph><node id="a">')
    with pytest.raises(InputError, match="not well-formed GraphML"):
        list(_builtin_probe(path).records())


BAD = {
    "nodes": [
        {"id": "a", "x": 0, "y": 0}, {"id": "b", "x": 1, "y": 1},
        {"id": "nopos"}, {"id": "nan", "x": "NaN", "y": 0}, {"id": "inf", "x": 1e400, "y": 0},
        {"id": "text", "x": "left", "y": 0}, {"id": "a", "x": 5, "y": 5},
    ],
    "links": [{"source": "a", "target": "b"}, {"source": "a", "target": "ghost"},
              {"source": "nopos", "target": "b"}],
}


def _read(tmp_path: Path, policy: str):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(BAD).replace("1e+400", "1e400"))
    return read_graph(_builtin_probe(path), str(tmp_path / "spill"), GraphOptions(bad_data=policy))


def test_bad_data_error_names_the_record_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(GraphDataError, match=r"node 'nopos' has no position.*bad_data = \"skip\""):
        _read(tmp_path, "error")


def test_bad_data_skip_counts_every_reason(tmp_path: Path) -> None:
    result = _read(tmp_path, "skip")
    assert result.nodes == 2 and result.edges == 1
    assert result.skipped == {
        "missing-position": 1, "bad-coordinate": 3, "duplicate-id": 1, "unknown-endpoint": 2,
    }
    assert any("'ghost'" in ex for ex in result.examples["unknown-endpoint"])
    chunks = sorted((tmp_path / "spill" / "chunks").glob("c*.npz"))
    nodes = np.concatenate([np.load(c)["nodes"] for c in chunks]).astype(NODE)
    edges = np.concatenate([np.load(c)["edges"] for c in chunks]).astype(EDGE)
    assert nodes["x"].tolist() == [0, 1] and edges[["s", "t"]].tolist() == [(0, 1)]


def test_edges_before_their_nodes_resolve_at_the_end(tmp_path: Path) -> None:
    path = tmp_path / "late.graphml"
    path.write_text(
        '<graphml><key id="x" for="node" attr.name="x"/><key id="y" for="node" attr.name="y"/>'
        '<graph><node id="a"><data key="x">0</data><data key="y">0</data></node>'
        '<edge source="a" target="b"/>'
        '<node id="b"><data key="x">9</data><data key="y">3</data></node></graph></graphml>'
    )
    result = read_graph(_builtin_probe(path), str(tmp_path / "spill"), GraphOptions())
    assert result.edges == 1 and result.skipped == {}
    assert result.provisional == (0, 0, 0, 0) and result.bounds == (0, 0, 9, 3)


def test_no_node_with_a_position_is_an_error(tmp_path: Path) -> None:
    path = generate.write_json_graph(tmp_path / "e.json", [{"id": "a"}], [])
    with pytest.raises(GraphDataError, match="no node with a position"):
        read_graph(_builtin_probe(path), str(tmp_path / "s"), GraphOptions(bad_data="skip"))


def test_json_nested_past_the_decoders_depth_is_an_input_error(tmp_path):
    # Python's JSON decoder recurses once per level: a RecursionError came out of the
    # worker as an internal error with its traceback.
    path = tmp_path / "deep.json"
    path.write_text('{"nodes": [' + "[" * 100_000 + "]" * 100_000 + '], "edges": []}')
    with pytest.raises(InputError, match="deep.json: not valid JSON: .* nested too deeply"):
        read_graph(_builtin_probe(path), str(tmp_path / "spill"), GraphOptions())


def _payloads(tmp_path: Path, name: str, text: str | bytes) -> tuple[bytes, bytes]:
    """Read a graph file; the node and edge objects the tiles will hold, as stored."""
    path = tmp_path / name
    (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
    spill = tmp_path / "spill"
    read_graph(_builtin_probe(path), str(spill), GraphOptions())
    store = spill / "store"
    return (store / "nodes.payload").read_bytes(), (store / "edges.payload").read_bytes()


def test_attributes_named_like_a_tiles_own_keys_are_kept_apart(tmp_path):
    # A CSV column "x", a GEXF attribute titled "id" or "source", graphology's edge
    # attribute "source": each overwrote the position, id or end in the tile (a
    # duplicate key, or an edge moved to another node).
    (tmp_path / "edges.csv").write_text("source,target\na,b\n")
    nodes, _ = _payloads(tmp_path, "nodes.csv", "id,x,y,x\na,0,0,5\nb,1,1,6\n")
    assert b'{"id":"a","attr_x":5}' in nodes
    nodes, edges = _payloads(tmp_path, "g.json", json.dumps({
        "nodes": [{"key": "a", "attributes": {"x": 1, "y": 2}},
                  {"key": "b", "attributes": {"x": 3, "y": 4}}],
        "edges": [{"source": "a", "target": "b", "attributes": {"source": "q"}}]}))
    assert edges == b'{"source":"a","target":"b","attr_source":"q"}'


def test_gexf_attribute_ids_are_per_class(tmp_path):
    nodes, edges = _payloads(tmp_path, "g.gexf", """<gexf><graph>
      <attributes class="node"><attribute id="0" title="weight" type="float"/></attributes>
      <attributes class="edge"><attribute id="0" title="kind" type="string"/></attributes>
      <nodes><node id="0"><attvalues><attvalue for="0" value="99"/></attvalues>
        <viz:position xmlns:viz="v" x="0" y="0"/></node>
        <node id="1"><viz:position xmlns:viz="v" x="1" y="1"/></node></nodes>
      <edges><edge id="0" source="0" target="1"><attvalues><attvalue for="0" value="road"/>
        </attvalues></edge></edges></graph></gexf>""")
    assert b'"weight":99' in nodes and b'"kind":"road"' in edges


def test_text_that_is_not_utf8_and_ids_that_are_not_unicode(tmp_path):
    # Both escaped as tracebacks: a Latin-1 byte in a JSON or CSV file, and a lone
    # surrogate (a JSON "\ud800") as an id, which UTF-8 cannot encode.
    with pytest.raises(InputError, match=r"latin.json: not UTF-8 text \(a byte 0xff"):
        _payloads(tmp_path, "latin.json",
                  b'{"nodes": [{"id":"a\xff","x":1,"y":5},{"id":"b","x":6,"y":6}], "links": []}')
    (tmp_path / "edges.csv").write_text("source,target\n")
    with pytest.raises(InputError, match=r"nodes.csv: not UTF-8 text \(a byte 0xe9"):
        _payloads(tmp_path, "nodes.csv", b"id,x,y\n\xe9,1,2\nb,3,4\n")
    nodes, edges = _payloads(tmp_path, "s.json", '{"nodes": [{"id":"\\ud800","x":1,"y":5},'
                             '{"id":"b","x":6,"y":6}], "links": [{"source":"\\ud800","target":"b"}]}')
    assert b'"id":"\\ud800"' in nodes and edges == b'{"source":"\\ud800","target":"b"}'
    assert json.loads(edges)["source"] == "\ud800"


def test_a_bom_before_json_and_a_nodes_csv_without_its_edges(tmp_path):
    # A BOM (as Windows editors save) made the JSON 'not a format any plugin reads';
    # a nodes.csv without its edges.csv said the same instead of what is missing.
    text = '{"nodes": [{"id":"a","x":1,"y":5},{"id":"b","x":6,"y":6}], "links": []}'
    nodes, _ = _payloads(tmp_path, "bom.json", "\ufeff" + text)
    assert b'{"id":"a"}' in nodes
    (tmp_path / "lone").mkdir()
    (tmp_path / "lone" / "nodes.csv").write_text("id,x,y\na,1,2\n")
    for path in (tmp_path / "lone", tmp_path / "lone" / "nodes.csv"):
        with pytest.raises(InputError, match="edges.csv is missing"):
            _builtin_probe(path)


def test_pyramidd_build_reads_a_folder_of_nodes_and_edges_csv(tmp_path):
    import subprocess
    import sys

    folder = tmp_path / "net"
    folder.mkdir()
    (folder / "nodes.csv").write_text("id,x,y\na,0,0\nb,3,4\n")
    (folder / "edges.csv").write_text("source,target\na,b\n")
    r = subprocess.run([sys.executable, "-m", "pyramidd", "build", str(folder),
                        str(tmp_path / "out" / "net"), "--workers", "1"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    index = json.loads((tmp_path / "out" / "net" / "index.json").read_text())
    assert (index["nodes"], index["edges"]) == (2, 1)
