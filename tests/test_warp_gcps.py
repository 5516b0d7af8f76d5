"""Reading GCPs: QGIS .points, GDAL GCPList in .aux.xml and VRT, inline data."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyramidd.errors import InputError, OptionError
from pyramidd.warp.gcps import (
    GCP,
    GCPError,
    find_sidecar_gcps,
    parse_gcp_xml,
    parse_inline,
    parse_points,
    read_gcp_file,
)

QGIS = """#CRS: PROJCRS["WGS 84 / UTM zone 33N"]
mapX,mapY,sourceX,sourceY,enable,dX,dY,residual
500100.5,4000200.25,10.5,-20.25,1,0,0,0
500300,4000100,210,-120,1,0,0,0
500050,4000000,60,-300,0,0,0,0
"""


def test_points_flips_negative_source_y_and_reads_crs_and_enable() -> None:
    found = parse_points(QGIS)
    assert found.crs.startswith("PROJCRS")
    assert found.gcps[0] == GCP(10.5, 20.25, 500100.5, 4000200.25, True, "1")
    assert found.gcps[1].line == 120.0
    assert found.gcps[2].enabled is False


def test_points_keeps_positive_lines_of_other_tools() -> None:
    text = "mapX,mapY,pixelX,pixelY,enable\n1,2,3,4,1\n5,6,7,8,1\n"
    found = parse_points(text)
    assert [(g.pixel, g.line) for g in found.gcps] == [(3.0, 4.0), (7.0, 8.0)]


@pytest.mark.parametrize(
    "text",
    ["", "a,b,c\n1,2,3\n", "mapX,mapY,sourceX,sourceY\n1,2,x,4\n"],
)
def test_points_errors_say_what_is_wrong(text: str) -> None:
    with pytest.raises(GCPError) as info:
        parse_points(text, "map.tif.points")
    assert "map.tif.points" in str(info.value)
    assert isinstance(info.value, InputError)


AUX = """<PAMDataset>
  <GCPList Projection="EPSG:32633">
    <GCP Id="a" Info="" Pixel="1.5" Line="2.5" X="100" Y="200" Z="0"/>
    <GCP Id="b" Pixel="11" Line="2" X="110" Y="200"/>
  </GCPList>
</PAMDataset>"""


def test_aux_xml_gcp_list() -> None:
    found = parse_gcp_xml(AUX, "x.aux.xml")
    assert found is not None
    assert found.crs == "EPSG:32633"
    assert found.gcps == (GCP(1.5, 2.5, 100.0, 200.0, True, "a"), GCP(11, 2, 110, 200, True, "b"))
    assert found.raster is None


def test_aux_xml_without_gcps_is_not_a_gcp_file() -> None:
    assert parse_gcp_xml("<PAMDataset><Metadata/></PAMDataset>", "x.aux.xml") is None


def test_vrt_names_its_raster_relative_to_itself(tmp_path: Path) -> None:
    vrt = f"""<VRTDataset rasterXSize="10" rasterYSize="10">
  <GCPList>{AUX.split('<GCPList Projection="EPSG:32633">')[1].split('</GCPList>')[0]}</GCPList>
  <VRTRasterBand dataType="Byte" band="1"><SimpleSource>
    <SourceFilename relativeToVRT="1">img.tif</SourceFilename>
  </SimpleSource></VRTRasterBand>
</VRTDataset>"""
    (tmp_path / "g.vrt").write_text(vrt)
    found = read_gcp_file(tmp_path / "g.vrt")
    assert found.raster == tmp_path / "img.tif"
    assert len(found.gcps) == 2


def test_sidecars_found_in_order_and_statistics_only_aux_ignored(tmp_path: Path) -> None:
    img = tmp_path / "map.tif"
    img.write_bytes(b"")
    assert find_sidecar_gcps(img) is None
    (tmp_path / "map.tif.aux.xml").write_text("<PAMDataset><Metadata/></PAMDataset>")
    assert find_sidecar_gcps(img) is None
    (tmp_path / "map.tif.aux.xml").write_text(AUX)
    assert find_sidecar_gcps(img).origin == "map.tif.aux.xml"
    assert len(find_sidecar_gcps(img).gcps) == 2
    (tmp_path / "map.points").write_text(QGIS)
    assert len(find_sidecar_gcps(img).gcps) == 3  # .points before .aux.xml


def test_inline_mappings_and_tuples() -> None:
    found = parse_inline([{"pixel": 1, "line": 2, "x": 3, "y": 4, "enabled": False}, (5, 6, 7, 8)])
    assert found.gcps[0] == GCP(1, 2, 3, 4, False, "1")
    assert found.gcps[1] == GCP(5, 6, 7, 8, True, "2")
    with pytest.raises(OptionError):
        parse_inline([{"pixel": 1}])
    with pytest.raises(OptionError):
        parse_inline([(1, 2, 3)])


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(GCPError, match="cannot read GCP file"):
        read_gcp_file(tmp_path / "nope.points")


def test_a_points_file_that_is_not_utf8_is_a_gcp_error(tmp_path: Path) -> None:
    # It escaped as a bare UnicodeDecodeError, which the service filed as a broken plugin
    path = tmp_path / "map.png.points"
    path.write_bytes(QGIS.encode() + b"\xff\xfe\n")
    with pytest.raises(GCPError, match=r"map.png.points: not a GCP file: not UTF-8 text"):
        read_gcp_file(path)


def test_gcp_values_that_are_not_finite_are_gcp_errors(tmp_path: Path) -> None:
    # nan and inf parse as floats: the fit failed with "LinAlgError: SVD did not
    # converge", filed as a broken plugin.
    from pyramidd.warp.model import fit

    text = QGIS.replace("500300,4000100", "nan,4000100")
    with pytest.raises(GCPError, match=r"mapX 'nan' is not a finite number; fix or remove"):
        parse_points(text)
    gcps = [GCP(0, 0, 0, 0, id="a"), GCP(10, 0, float("inf"), 0, id="b"), GCP(0, 10, 0, 10, id="c")]
    with pytest.raises(GCPError, match=r"GCP b has x inf: not a finite number"):
        fit(gcps, 1)
