"""The polynomial model: exact fits, GDAL's default order, errors, and gdaltransform agreement."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from pyramidd.warp.gcps import GCP, GCPError
from pyramidd.warp.model import default_order, fit, format_residuals


def affine_gcps(n: int, seed: int = 0) -> list[GCP]:
    rng = np.random.default_rng(seed)
    px, ln = rng.uniform(0, 400, n), rng.uniform(0, 300, n)
    th = np.radians(30)
    x = 500000 + 2 * (px * np.cos(th) - ln * np.sin(th))
    y = 4000000 - 2 * (px * np.sin(th) + ln * np.cos(th))
    return [GCP(*v) for v in zip(px, ln, x, y)]


def test_affine_gcps_fit_exactly_both_ways() -> None:
    gcps = affine_gcps(7)
    result = fit(gcps, 1)
    assert result.rms < 1e-9
    mx, my = result.model.to_map(np.array([0.0, 400.0]), np.array([0.0, 300.0]))
    sx, sy = result.model.to_source(mx, my)
    assert np.allclose(sx, [0, 400], atol=1e-9) and np.allclose(sy, [0, 300], atol=1e-9)
    # A quadratic fit of an affine map has zero quadratic terms.
    assert np.allclose(fit(gcps, 2).model.reverse_x[3:], 0, atol=1e-12)


def test_default_order_follows_gdal() -> None:
    assert [default_order(n) for n in (3, 5, 6, 10, 40)] == [1, 1, 2, 2, 2]
    assert fit(affine_gcps(5)).model.order == 1
    assert fit(affine_gcps(6)).model.order == 2


def test_too_few_counts_disabled_gcps() -> None:
    gcps = affine_gcps(6)
    gcps[0] = GCP(gcps[0].pixel, gcps[0].line, gcps[0].x, gcps[0].y, enabled=False)
    with pytest.raises(GCPError, match=r"at least 6 enabled GCPs, found 5 \(1 of 6 are disabled\)"):
        fit(gcps, 2)
    with pytest.raises(GCPError, match="at least 3"):
        fit(affine_gcps(2), 1)
    with pytest.raises(GCPError, match="1, 2 or 3"):
        fit(affine_gcps(12), 4)


def test_collinear_gcps_are_refused() -> None:
    gcps = [GCP(t, 2 * t, 10 * t, -5 * t) for t in (0.0, 10.0, 20.0, 35.0)]
    with pytest.raises(GCPError, match="collinear"):
        fit(gcps, 1)


def test_residuals_and_rms_are_reported() -> None:
    gcps = affine_gcps(20)
    gcps[3] = GCP(gcps[3].pixel + 5.0, gcps[3].line, gcps[3].x, gcps[3].y)
    result = fit(gcps, 1)
    worst = max(result.residuals, key=lambda r: r.distance)
    assert worst is result.residuals[3]
    assert 0 < result.rms < 2
    text = format_residuals(result)
    assert "RMS" in text and len(text.splitlines()) == 2 + 20 + 1


@pytest.mark.skipif(shutil.which("gdaltransform") is None, reason="GDAL not installed")
@pytest.mark.parametrize("order", [1, 2, 3])
def test_reverse_model_matches_gdaltransform(order: int) -> None:
    rng = np.random.default_rng(order)
    n = 14
    px, ln = rng.uniform(0, 3000, n), rng.uniform(0, 2000, n)
    x = 500000 + 1.7 * px - 0.4 * ln + 2e-4 * px * px + rng.normal(0, 0.5, n)
    y = 4000000 - 0.3 * px - 1.8 * ln + 3e-4 * px * ln + rng.normal(0, 0.5, n)
    gcps = [GCP(*v) for v in zip(px, ln, x, y)]
    model = fit(gcps, order).model
    qx, qy = rng.uniform(x.min(), x.max(), 200), rng.uniform(y.min(), y.max(), 200)
    args = ["gdaltransform", "-i", "-order", str(order), "-output_xy"]
    for g in gcps:
        args += ["-gcp", *("%.17g" % v for v in (g.pixel, g.line, g.x, g.y))]
    text = "\n".join("%.17g %.17g" % p for p in zip(qx, qy))
    out = subprocess.run(args, input=text, capture_output=True, text=True, check=True, timeout=60)
    ref = np.array([[float(v) for v in line.split()] for line in out.stdout.split("\n") if line])
    sx, sy = model.to_source(qx, qy)
    assert np.abs(ref[:, 0] - sx).max() < 1e-6
    assert np.abs(ref[:, 1] - sy).max() < 1e-6
