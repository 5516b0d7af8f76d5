"""The polynomial GCP model, fitted as GDAL's ``gdalwarp -order N`` fits it.

A model of order 1, 2 or 3 maps ``(e, n)`` to a polynomial in the terms
``1, e, n, e², en, n², e³, e²n, en², n³`` (the first 3, 6 or 10). Input coordinates
are centred on the mean of the GCPs before the terms are formed, which keeps the
normal equations well conditioned with map coordinates in the millions. Two fits are
made from the same GCPs: *forward* (pixel/line -> map), used to find the output grid,
and *reverse* (map -> pixel/line), used to sample: each output pixel centre is sent
through the reverse polynomial, never through an inverted forward one, which is what
makes pyramidd's pixels agree with GDAL's.

With exactly as many GCPs as terms the system is solved as is; with more, the
least-squares normal equations are solved. Both are solved by Gaussian elimination
with partial pivoting (LAPACK through numpy), the method GDAL uses, so the
coefficients agree to rounding.
"""

from __future__ import annotations

import math

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .gcps import GCP, GCPError

#: Number of polynomial terms for each order.
TERMS = {1: 3, 2: 6, 3: 10}


def default_order(n_gcps: int) -> int:
    """GDAL's default order: 2 from six GCPs up, else 1 (3 is never chosen by itself)."""
    return 2 if n_gcps >= 6 else 1


def terms(e: np.ndarray, n: np.ndarray, order: int) -> list[np.ndarray]:
    """The polynomial terms of centred coordinates, in GDAL's order."""
    one = np.ones_like(e)
    out = [one, e, n]
    if order >= 2:
        out += [e * e, e * n, n * n]
    if order >= 3:
        out += [e * e * e, e * e * n, e * n * n, n * n * n]
    return out


def evaluate(coef: Sequence[float], e: np.ndarray, n: np.ndarray, order: int) -> np.ndarray:
    """Sum the polynomial ``coef`` at centred ``(e, n)``; broadcasts like numpy.

    Terms are added left to right in GDAL's order with the same products, so a point
    gets bit-for-bit the value GDAL computes for it.
    """
    c = coef
    acc = c[0] + c[1] * e + c[2] * n
    if order >= 2:
        e2 = e * e
        n2 = n * n
        en = e * n
        acc = acc + c[3] * e2 + c[4] * en + c[5] * n2
        if order >= 3:
            acc = acc + c[6] * (e * e2) + c[7] * (e2 * n) + c[8] * (e * n2) + c[9] * (n * n2)
    return acc


def _solve(
    src_e: np.ndarray, src_n: np.ndarray, dst_e: np.ndarray, dst_n: np.ndarray, order: int
) -> tuple[tuple[float, ...], tuple[float, ...], float, float]:
    """Coefficients mapping ``src`` to ``dst`` and the means ``src`` was centred on."""
    mean_e = float(src_e.sum() / len(src_e))
    mean_n = float(src_n.sum() / len(src_n))
    ce = src_e - mean_e
    cn = src_n - mean_n
    design = np.stack(terms(ce, cn, order), axis=1)
    # Collinear (or coincident) points leave the design matrix without full rank.
    # Judge the rank on coordinates scaled to unit size so the test does not depend
    # on whether the map is in degrees or metres.
    scale_e = float(np.abs(ce).max()) or 1.0
    scale_n = float(np.abs(cn).max()) or 1.0
    scaled = np.stack(terms(ce / scale_e, cn / scale_n, order), axis=1)
    sv = np.linalg.svd(scaled, compute_uv=False)
    if sv[-1] <= 1e-9 * sv[0]:
        raise GCPError(
            f"the GCPs are collinear or repeated: an order {order} polynomial needs them "
            "spread over the image (not all on one line); move or add GCPs"
        )
    if len(src_e) == design.shape[1]:
        matrix, rhs = design, np.stack([dst_e, dst_n], axis=1)
    else:
        matrix = design.T @ design
        rhs = design.T @ np.stack([dst_e, dst_n], axis=1)
    try:
        sol = np.linalg.solve(matrix, rhs)
    except np.linalg.LinAlgError:
        raise GCPError("the GCPs do not determine a polynomial (singular system); add GCPs") from None
    return tuple(map(float, sol[:, 0])), tuple(map(float, sol[:, 1])), mean_e, mean_n


@dataclass(frozen=True)
class PolynomialModel:
    """A fitted pair of polynomials between input pixel/line and map coordinates.

    Plain floats only, so it pickles to render workers as data.
    """

    order: int
    #: pixel/line -> map: coefficients for x and y, and the pixel/line means.
    forward_x: tuple[float, ...]
    forward_y: tuple[float, ...]
    pixel_mean: tuple[float, float]
    #: map -> pixel/line: coefficients for pixel and line, and the map means.
    reverse_x: tuple[float, ...]
    reverse_y: tuple[float, ...]
    map_mean: tuple[float, float]

    def to_map(self, pixel: np.ndarray, line: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Forward: input pixel/line (corner-based) to map coordinates."""
        e = np.asarray(pixel, dtype=np.float64) - self.pixel_mean[0]
        n = np.asarray(line, dtype=np.float64) - self.pixel_mean[1]
        return evaluate(self.forward_x, e, n, self.order), evaluate(self.forward_y, e, n, self.order)

    def to_source(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Reverse: map coordinates to input pixel/line (corner-based); broadcasts."""
        e = np.asarray(x, dtype=np.float64) - self.map_mean[0]
        n = np.asarray(y, dtype=np.float64) - self.map_mean[1]
        return evaluate(self.reverse_x, e, n, self.order), evaluate(self.reverse_y, e, n, self.order)


@dataclass(frozen=True)
class Residual:
    """How far the reverse model puts a GCP from where it was placed, in input pixels."""

    id: str
    dx: float
    dy: float

    @property
    def distance(self) -> float:
        """Length of the residual vector."""
        return float(np.hypot(self.dx, self.dy))


@dataclass(frozen=True)
class Fit:
    """A fitted model, the GCPs it used and their residuals."""

    model: PolynomialModel
    gcps: tuple[GCP, ...]
    residuals: tuple[Residual, ...]

    @property
    def rms(self) -> float:
        """Root mean square of the residual distances, in input pixels."""
        if not self.residuals:
            return 0.0
        return float(np.sqrt(np.mean([r.dx * r.dx + r.dy * r.dy for r in self.residuals])))


def fit(gcps: Sequence[GCP], order: int | None = None) -> Fit:
    """Fit forward and reverse polynomials to the enabled ``gcps``.

    ``order`` None picks GDAL's default for the number of enabled GCPs. Raises
    :class:`GCPError` with what to do when there are too few or they are collinear.
    """
    enabled = tuple(g for g in gcps if g.enabled)
    for i, g in enumerate(enabled):  # a GeoTIFF's tiepoints are not checked as read
        values = {"pixel": g.pixel, "line": g.line, "x": g.x, "y": g.y}
        bad = [f"{k} {v}" for k, v in values.items() if not math.isfinite(v)]
        if bad:
            raise GCPError(f"GCP {g.id or i + 1} has {', '.join(bad)}: not a finite number;"
                           " fix or remove that GCP")
    if order is None:
        order = default_order(len(enabled))
    if order not in TERMS:
        raise GCPError(f"the polynomial order must be 1, 2 or 3, got {order}")
    need = TERMS[order]
    if len(enabled) < need:
        disabled = len(gcps) - len(enabled)
        note = f" ({disabled} of {len(gcps)} are disabled)" if disabled else ""
        raise GCPError(
            f"an order {order} warp needs at least {need} enabled GCPs, "
            f"found {len(enabled)}{note}; add GCPs or lower --order"
        )
    px = np.array([g.pixel for g in enabled], dtype=np.float64)
    ln = np.array([g.line for g in enabled], dtype=np.float64)
    mx = np.array([g.x for g in enabled], dtype=np.float64)
    my = np.array([g.y for g in enabled], dtype=np.float64)
    fx, fy, pm_e, pm_n = _solve(px, ln, mx, my, order)
    rx, ry, mm_e, mm_n = _solve(mx, my, px, ln, order)
    model = PolynomialModel(order, fx, fy, (pm_e, pm_n), rx, ry, (mm_e, mm_n))
    sx, sy = model.to_source(mx, my)
    residuals = tuple(
        Residual(g.id, float(a - g.pixel), float(b - g.line)) for g, a, b in zip(enabled, sx, sy)
    )
    return Fit(model, enabled, residuals)


def format_residuals(result: Fit) -> str:
    """A table of each GCP's residual and the RMS, for the console and the log."""
    lines = [f"GCP residuals (order {result.model.order}, input pixels):"]
    lines.append(f"  {'id':>6} {'pixel':>10} {'line':>10} {'dx':>9} {'dy':>9} {'dist':>9}")
    for g, r in zip(result.gcps, result.residuals):
        lines.append(
            f"  {g.id:>6} {g.pixel:10.2f} {g.line:10.2f} {r.dx:9.3f} {r.dy:9.3f} {r.distance:9.3f}"
        )
    lines.append(f"  RMS {result.rms:.3f} px over {len(result.gcps)} GCPs")
    return "\n".join(lines)
