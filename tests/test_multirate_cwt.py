"""The multirate CWT (``method="multirate"``) against the exact ``linear`` transform."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bioxen_dask.grid import ScaleGrid, make_grid
from bioxen_dask.kernels import cwt
from bioxen_dask.kernels._multirate_cwt import cwt_strides
from bioxen_dask.wavelets import Morlet


def _signals(n, rng):
    t = np.arange(n)
    step = np.where(t > n // 3, 1.0, 0.0)
    return {"noise": rng.standard_normal(n), "sine": np.sin(2 * np.pi * t / 700.0) + 0.1 * rng.standard_normal(n),
            "step": step + 0.01 * rng.standard_normal(n)}


@pytest.mark.parametrize("kind", ["noise", "sine", "step"])
def test_multirate_cwt_within_1e6_of_the_exact_transform(kind, rng):
    """pycwt's kind of grid (2 dt up to the record length): the decimated scales differ from
    the exact float64 transform by at most 1e-6 of each scale's largest coefficient."""
    n = 40_000
    x = _signals(n, rng)[kind]
    s0 = 2 / Morlet().fourier_factor
    grid = ScaleGrid.from_s0(1.0, s0=s0, dj=math.log2(n / s0) / 59, J=59)
    assert (cwt_strides(grid, n) > 1).sum() >= 30  # most scales really decimated
    W = cwt(x, grid, method="multirate")
    ref = cwt(x, grid, dtype="float64")
    err = np.abs(W - ref).max(axis=-1) / np.abs(ref).max(axis=-1)
    assert W.dtype == np.complex64 and W.shape == ref.shape
    assert float(err.max()) <= 1e-6
    exact32 = np.abs(cwt(x, grid) - ref).max(axis=-1) / np.abs(ref).max(axis=-1)
    assert float(err.max()) <= 10 * float(exact32.max())  # within an order of float32 rounding


def test_multirate_cwt_batches_and_refuses_what_it_cannot_do(rng):
    x = rng.standard_normal((2, 5000))
    g = make_grid(5000, 0.1, dj=0.5)
    W = cwt(x, g, method="multirate", boundary="valid")
    ref = cwt(x, g, boundary="valid")
    ok = np.isfinite(ref)
    assert np.array_equal(np.isfinite(W), ok)
    assert float(np.abs(W[ok] - ref[ok]).max()) <= 1e-5 * float(np.abs(ref[ok]).max())
    with pytest.raises(ValueError, match="float32"):
        cwt(x, g, method="multirate", dtype="float64")
    with pytest.raises(ValueError, match="boundary 'linear' or 'valid'"):
        cwt(x, g, method="multirate", boundary="pycwt")
    with pytest.raises(ValueError, match="unknown method"):
        cwt(x, g, method="fast")


def _scale_error(W, ref):
    """Per scale, the largest difference relative to the scale's largest reference coefficient."""
    return np.abs(W - ref).max(axis=-1) / np.abs(ref).max(axis=-1)


@pytest.mark.parametrize("grid_kind", ["default", "pycwt"])
def test_multirate_cwt_on_real_recordings(grid_kind):
    """Real data shipped in wheels: matplotlib's membrane-potential recording (12,000 samples,
    action potentials: broadband steps) and PyWavelets' ECG (1,024 samples, a short one, strides
    up to 4) are within 1e-6 of the exact float64 transform."""
    from bioxen_dask.sample_data import load_ecg, load_membrane

    for x, dt, most in ((load_membrane(), 1.0, 32), (*load_ecg(), 4)):
        n = x.size
        s0 = 2 * dt / Morlet().fourier_factor
        grid = (make_grid(n, dt) if grid_kind == "default"
                else ScaleGrid.from_s0(dt, s0=s0, dj=math.log2(n * dt / s0) / 59, J=59))
        strides = cwt_strides(grid, n)
        assert strides.max() == most and (strides > 1).sum() >= grid.n_scales // 3
        err = _scale_error(cwt(x, grid, method="multirate"), cwt(x, grid, dtype="float64"))
        assert float(err.max()) <= 1e-6


def test_multirate_cwt_of_short_records_is_the_exact_transform(nino3):
    """NINO3 (504 quarterly samples): below 512 samples no scale is decimated, so multirate
    returns the exact float32 transform itself."""
    _, sst, dt = nino3
    grid = make_grid(sst.size, dt)
    assert (cwt_strides(grid, sst.size) == 1).all()
    assert np.array_equal(cwt(sst, grid, method="multirate"), cwt(sst, grid))


def test_multirate_cwt_of_cosines_matches_the_analytic_transform():
    """Away from the edges, the transform of ``cos(w t)`` at scale ``s`` (samples) is
    ``sqrt(2 pi s) pi**-0.25 / 2 * (exp(-(w s - 6)**2 / 2) e^{iwt} + exp(-(w s + 6)**2 / 2) e^{-iwt})``
    (Morlet, w0 = 6): a sum of three cosines, with periods the decimated scales carry, against it."""
    n = 2**16
    t = np.arange(n)
    periods = (300.0, 2000.0, 6000.0)
    x = sum(np.cos(2 * np.pi * t / P) for P in periods)
    grid = make_grid(n, 1.0, dj=1 / 8)
    s = grid.scales[:, None]
    A = np.zeros((grid.n_scales, n), complex)
    for P in periods:
        w = 2 * np.pi / P
        A += 0.5 * np.sqrt(2 * np.pi * s) * np.pi**-0.25 * (np.exp(-((w * s - 6) ** 2) / 2) * np.exp(1j * w * t)
                                                             + np.exp(-((w * s + 6) ** 2) / 2) * np.exp(-1j * w * t))
    W = cwt(x, grid, method="multirate")
    strides, support = cwt_strides(grid, n), grid.wavelet_support()
    checked = 0
    for j in np.flatnonzero(strides > 1):
        h = int(support[j])
        if n - 2 * h < n // 4:
            continue
        inner, ref = W[j, h : n - h], A[j, h : n - h]
        assert float(np.abs(inner - ref).max()) <= 1e-6 * float(np.abs(A).max())
        if np.abs(ref).max() > 0.1 * np.abs(A).max():  # scales near a period: relative to their own size
            assert float(np.abs(inner - ref).max()) <= 2e-6 * float(np.abs(ref).max())
        checked += 1
    assert checked >= 30
