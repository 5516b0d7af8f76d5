"""Tests of the whole-slide source on small generated Aperio slides."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import tifffile

from pyramidd.errors import InputError
from pyramidd.options import BuildOptions
from pyramidd.testing import gradient, read_source, write_image
from pyramidd_openslide import SlideFormat
from pyramidd_openslide.source import may_be_slide
from pyramidd_openslide.testslide import write_aperio_svs


@pytest.fixture
def slide(tmp_path):
    image = gradient(500, 300, 3)
    return write_aperio_svs(tmp_path / "slide.svs", image), image


def test_probe_recognises_an_aperio_slide(slide):
    path, image = slide
    source = SlideFormat().probe(path, BuildOptions())
    assert source is not None
    assert (source.width, source.height, source.bands) == (500, 300, 3)
    assert source.vendor == "aperio"
    assert source.properties["openslide.mpp-x"] == "0.5"


def test_regions_are_the_slide_pixels(tmp_path):
    image = gradient(500, 300, 3)
    path = write_aperio_svs(tmp_path / "lossless.svs", image, compression="zlib")
    source = SlideFormat().probe(path, BuildOptions())
    # Read through a pickled copy, as a render worker gets it.
    pixels = read_source(pickle.loads(pickle.dumps(source)), tile=96)
    np.testing.assert_array_equal(pixels, image)


def test_jpeg_slide_regions_are_close(slide):
    path, image = slide
    pixels = read_source(SlideFormat().probe(path, BuildOptions()))
    # The blue checker loses detail to chroma subsampling; red and green are smooth.
    error = np.abs(pixels[..., :2].astype(int) - image[..., :2].astype(int))
    assert error.mean() < 4


def test_other_files_are_left_to_other_sources(tmp_path):
    png = write_image(tmp_path / "a.png", gradient(64, 64))
    assert SlideFormat().probe(png, BuildOptions()) is None
    tif = write_image(tmp_path / "a.tif", gradient(128, 128))
    assert SlideFormat().probe(tif, BuildOptions()) is None


def test_an_aperio_slide_named_tif_is_still_a_slide(tmp_path):
    path = write_aperio_svs(tmp_path / "scan.tif", gradient(300, 200, 3))
    source = SlideFormat().probe(path, BuildOptions())
    assert source is not None and source.vendor == "aperio"


@pytest.mark.parametrize("marks, slide", [
    ({}, False),
    ({"software": "libvips"}, False),
    ({"description": "Aperio Image Library v12"}, True),
    ({"description": ' <?xml version="1.0"?><scn/>'}, True),  # Leica, Philips
    ({"software": "MedScan 2.0"}, True),  # Trestle
    ({"software": "Philips DP v1.0"}, True),
    ({"extratags": [(271, "s", 0, "Huron Digital Pathology", True)]}, True),
    ({"extratags": [(700, "B", 6, b"<iScan", True)]}, True),  # Ventana's XMP
    ({"extratags": [(65000, "s", 0, "<Argos.Scan.Metadata/>", True)]}, True),
    ({"extratags": [(65420, "I", 1, 1, True)]}, True),  # Hamamatsu NDPI
])
def test_a_tiff_is_asked_about_only_with_a_vendors_marks(tmp_path, marks, slide):
    """OpenSlide (and Pillow with it) is loaded only for files that could be slides."""
    path = tmp_path / "in.tif"
    tifffile.imwrite(path, gradient(64, 64), tile=(32, 32), metadata=None, **marks)
    assert may_be_slide(path) is slide


def test_other_files_are_judged_by_suffix_and_magic(tmp_path):
    for name, data, slide in [
        ("a.jpg", b"\xff\xd8\xff\xe0" + bytes(200), False),
        ("a.png", b"\x89PNG\r\n\x1a\n" + bytes(200), False),
        ("a", bytes(128) + b"DICM" + bytes(64), True),
        ("a.bin", b"ZISRAWFILE" + bytes(64), True),
        ("a.mrxs", b"", True),
        ("a.tif", b"II*\0\xff\xff\xff\x00", True),  # unreadable: OpenSlide says why
    ]:
        (tmp_path / name).write_bytes(data)
        assert may_be_slide(tmp_path / name) is slide, name


def test_generic_tiled_tiff_on_request(tmp_path):
    tif = write_image(tmp_path / "a.tif", gradient(128, 128))
    source = SlideFormat().probe(tif, BuildOptions(extra={"openslide_generic_tiff": True}))
    assert source is not None and source.vendor == "generic-tiff"
    np.testing.assert_array_equal(read_source(source), gradient(128, 128))


def test_a_broken_slide_is_an_input_error(slide):
    path, _ = slide
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    try:
        source = SlideFormat().probe(path, BuildOptions())
    except InputError as exc:
        assert "slide.svs" in str(exc)
    else:  # OpenSlide may open the header and fail on the first missing tile instead
        assert source is None or source.width == 500


def test_registered_through_the_entry_point(pyramidd_registry):
    entry = pyramidd_registry.entries[("source", "openslide")]
    assert entry.plugin == "openslide"


def test_builds_a_dzi(slide, build_pyramid):
    pytest.importorskip("pyramidd.engine")
    from pyramidd.testing import check_dzi

    path, _ = slide
    built = build_pyramid(path, layout="dzi")
    grid = check_dzi(built.output.with_name(built.output.name + ".dzi"))
    assert (grid.width, grid.height) == (500, 300)
