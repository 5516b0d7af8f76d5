"""Ground control points: what they are and where they come from.

A :class:`GCP` ties a position in the input image (``pixel``, ``line``, with
``(0, 0)`` the top-left *corner* of the top-left pixel, as GDAL counts) to a map
position (``x``, ``y``). They are read from:

- a QGIS georeferencer ``.points`` file
  (``mapX,mapY,sourceX,sourceY,enable,dX,dY,residual``, optional ``#CRS:`` first
  line). QGIS writes ``sourceY`` negative (its image space has y up); when no
  ``sourceY`` is positive the sign is flipped back into a line number;
- a GDAL ``GCPList`` element, in a ``.aux.xml`` sidecar or in a ``.vrt``;
- plain data given with the build options (the watch profile, the command line):
  a list of ``{"pixel", "line", "x", "y"[, "enabled"]}`` mappings or
  ``(pixel, line, x, y)`` tuples.
"""

from __future__ import annotations

import math

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from ..errors import InputError, OptionError

if TYPE_CHECKING:
    import xml.etree.ElementTree as ET

# The CSV and XML parsers are imported by the functions that read such files: every
# build asks the warp format about its input, and nearly no input has GCPs.


class GCPError(InputError):
    """The ground control points cannot define a warp (too few, disabled, collinear, unreadable)."""

    kind = "bad-gcps"


@dataclass(frozen=True)
class GCP:
    """One ground control point: input image position and map position."""

    pixel: float
    line: float
    x: float
    y: float
    enabled: bool = True
    id: str = ""


@dataclass(frozen=True)
class GCPSet:
    """GCPs and where they were read from (for messages)."""

    gcps: tuple[GCP, ...]
    origin: str
    #: For a VRT: the raster file the GCPs refer to (its first band's source).
    raster: Path | None = None
    crs: str = ""


def _float(text: str, what: str, origin: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise GCPError(f"{origin}: {what} {text!r} is not a number; fix or remove that GCP") from None
    if not math.isfinite(value):
        raise GCPError(f"{origin}: {what} {text!r} is not a finite number; fix or remove that GCP")
    return value


def parse_points(text: str, origin: str = ".points") -> GCPSet:
    """Parse a QGIS georeferencer ``.points`` file."""
    import csv
    import io

    crs = ""
    lines = text.splitlines()
    if lines and lines[0].startswith("#CRS:"):
        crs = lines[0][5:].strip()
        lines = lines[1:]
    rows = [r for r in csv.reader(io.StringIO("\n".join(lines))) if r and any(c.strip() for c in r)]
    if not rows:
        raise GCPError(f"{origin}: no GCPs in the file; add points in the georeferencer and save again")
    header = [c.strip() for c in rows[0]]
    if "mapX" not in header:
        raise GCPError(
            f"{origin}: not a QGIS .points file (the first row must name mapX,mapY,sourceX,sourceY)"
        )
    col = {name: i for i, name in enumerate(header)}
    src_x = col.get("sourceX", col.get("pixelX"))
    src_y = col.get("sourceY", col.get("pixelY"))
    if src_x is None or src_y is None or "mapY" not in col:
        raise GCPError(f"{origin}: the header must have mapX, mapY, sourceX and sourceY")
    raw = []
    for n, r in enumerate(rows[1:], start=2):
        if len(r) < len(header[:4]):
            raise GCPError(f"{origin}: row {n} has {len(r)} fields, expected at least 4")
        enabled = True
        if "enable" in col and col["enable"] < len(r):
            enabled = r[col["enable"]].strip() not in ("0", "false", "False")
        raw.append(
            (
                _float(r[src_x], "sourceX", origin),
                _float(r[src_y], "sourceY", origin),
                _float(r[col["mapX"]], "mapX", origin),
                _float(r[col["mapY"]], "mapY", origin),
                enabled,
                str(n - 1),
            )
        )
    # QGIS stores the line as a negative y. Files from other tools use positive lines.
    flip = bool(raw) and max(p[1] for p in raw) <= 0
    gcps = tuple(
        GCP(px, -py if flip else py, x, y, en, ident) for px, py, x, y, en, ident in raw
    )
    return GCPSet(gcps, origin, crs=crs)


def _gcps_from_element(gcp_list: ET.Element, origin: str) -> tuple[GCP, ...]:
    out = []
    for n, g in enumerate(gcp_list.findall("GCP"), start=1):
        a = g.attrib
        out.append(
            GCP(
                _float(a.get("Pixel", ""), "Pixel", origin),
                _float(a.get("Line", ""), "Line", origin),
                _float(a.get("X", ""), "X", origin),
                _float(a.get("Y", ""), "Y", origin),
                True,
                a.get("Id") or str(n),
            )
        )
    return tuple(out)


def parse_gcp_xml(text: str, origin: str, base: Path | None = None) -> GCPSet | None:
    """GCPs of a GDAL ``.aux.xml`` or ``.vrt`` document; ``None`` when it has no ``GCPList``.

    For a VRT, :attr:`GCPSet.raster` is the file its first band reads
    (``SourceFilename``, relative to ``base`` when ``relativeToVRT="1"``).
    """
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise GCPError(f"{origin}: not well-formed XML ({exc})") from None
    gcp_list = root.find(".//GCPList")
    if gcp_list is None:
        return None
    gcps = _gcps_from_element(gcp_list, origin)
    crs = (gcp_list.get("Projection") or "").strip()
    raster = None
    if root.tag == "VRTDataset":
        src = root.find(".//SourceFilename")
        if src is None or not (src.text or "").strip():
            raise GCPError(f"{origin}: the VRT has GCPs but no SourceFilename to read pixels from")
        name = Path(src.text.strip())
        if src.get("relativeToVRT") == "1" and base is not None:
            name = base / name
        raster = name
    return GCPSet(gcps, origin, raster=raster, crs=crs)


def parse_inline(items: Iterable[Any], origin: str = "options") -> GCPSet:
    """GCPs given as data: mappings with pixel/line/x/y or ``(pixel, line, x, y)`` tuples."""
    out = []
    for n, item in enumerate(items, start=1):
        if isinstance(item, Mapping):
            try:
                out.append(
                    GCP(
                        float(item["pixel"]),
                        float(item["line"]),
                        float(item["x"]),
                        float(item["y"]),
                        bool(item.get("enabled", True)),
                        str(item.get("id", n)),
                    )
                )
            except (KeyError, TypeError, ValueError):
                raise OptionError(
                    f"{origin}: GCP {n} needs numeric pixel, line, x and y, got {dict(item)!r}"
                ) from None
        elif isinstance(item, Sequence) and len(item) == 4:
            try:
                out.append(GCP(*(float(v) for v in item), id=str(n)))  # type: ignore[misc]
            except (TypeError, ValueError):
                raise OptionError(f"{origin}: GCP {n} must be four numbers, got {item!r}") from None
        else:
            raise OptionError(
                f"{origin}: GCP {n} must be (pixel, line, x, y) or a mapping with those keys"
            )
    return GCPSet(tuple(out), origin)


def read_gcp_file(path: Path) -> GCPSet:
    """Read GCPs from a ``.points``, ``.aux.xml``/``.xml`` or ``.vrt`` file."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise GCPError(f"cannot read GCP file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise GCPError(f"{path.name}: not a GCP file: not UTF-8 text (byte {exc.start:,}"
                       f" is {exc.object[exc.start]:#04x})") from None
    if path.suffix.lower() == ".points":
        return parse_points(text, path.name)
    if path.suffix.lower() in (".xml", ".vrt"):
        found = parse_gcp_xml(text, path.name, base=path.parent)
        if found is None:
            raise GCPError(f"{path.name}: has no GCPList; add GCPs or give a .points file")
        return found
    # Unknown suffix: a .points body starts with #CRS: or mapX; anything else try as XML.
    if text.lstrip().startswith(("#CRS:", "mapX")):
        return parse_points(text, path.name)
    found = parse_gcp_xml(text, path.name, base=path.parent)
    if found is None:
        raise GCPError(f"{path.name}: neither a QGIS .points file nor XML with a GCPList")
    return found


def sidecars(image: Path) -> list[Path]:
    """Where GCPs for ``image`` may sit, in the order they are looked for."""
    return [
        image.with_name(image.name + ".points"),
        image.with_suffix(".points"),
        image.with_name(image.name + ".aux.xml"),
    ]


def find_sidecar_gcps(image: Path) -> GCPSet | None:
    """GCPs from the first sidecar of ``image`` that has any; ``None`` if none does."""
    for side in sidecars(image):
        if side == image or not side.is_file():
            continue
        if side.suffix == ".points":
            return read_gcp_file(side)
        found = parse_gcp_xml(side.read_text(encoding="utf-8-sig"), side.name)
        if found is not None:  # a .aux.xml often holds only statistics
            return found
    return None
