"""Threads (``workers``) change how the kernels' work is split, never the numbers.

Every tile, GEMM block and row slice is computed the same way whichever thread runs it, so
``workers=2`` must equal one thread bit for bit; and the banded scale product must be the
zero-filled boxcar of ``scipy.signal.convolve2d``.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import scipy.signal

from bioxen_dask.grid import make_grid
from bioxen_dask.kernels import _cwt
from bioxen_dask.kernels import Smoother, coherence, cwt, scale_kernel, smooth, smooth_scale

N = 3000
GRID = make_grid(N, 1 / 30)


@pytest.fixture
def threaded(monkeypatch):
    """These records are below the size where kernels start threads; make them thread."""
    monkeypatch.setattr(_cwt, "MIN_THREADED_POINTS", 0)
    _cwt._POOLS.clear()
    yield
    assert (os.getpid(), 2) in _cwt._POOLS  # the threaded calls did run on 2 threads


@pytest.fixture
def pair(rng):
    t = np.arange(N) / 30
    x = np.sin(2 * np.pi * t / 3) + rng.standard_normal(N)
    return np.stack([x, np.roll(x, 7) + rng.standard_normal(N)])


@pytest.mark.parametrize("boundary", ["linear", "symmetric", "pycwt", "circular"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_threaded_transform_and_smoothing_equal_one_thread(pair, boundary, dtype, threaded):
    W1 = cwt(pair, GRID, boundary=boundary, dtype=dtype)
    W2 = cwt(pair, GRID, boundary=boundary, dtype=dtype, workers=2)
    np.testing.assert_array_equal(W1, W2)
    P = np.abs(W1) ** 2
    for values in (P, W1):
        one = smooth(values, GRID, boundary=boundary, divide_by_scale=True)
        two = smooth(values, GRID, boundary=boundary, divide_by_scale=True, workers=2)
        np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize("boundary", ["linear", "valid", "pycwt"])
def test_threaded_coherence_equals_one_thread(pair, boundary, threaded):
    W = cwt(pair, GRID, boundary="linear" if boundary == "valid" else boundary)
    R1, a1 = coherence(W[0], W[1], Smoother(GRID, boundary=boundary))
    R2, a2 = coherence(W[0], W[1], Smoother(GRID, boundary=boundary, workers=2))
    np.testing.assert_array_equal(R1, R2)
    np.testing.assert_array_equal(a1, a2)
    finite = np.isfinite(R1)
    assert finite.mean() > 0.1 and 0.0 <= R1[finite].min() and R1[finite].max() <= 1.0


@pytest.mark.parametrize("dtype", [np.float64, np.complex64, np.complex128])
def test_banded_scale_product_is_convolve2d_with_column_weights(dtype, rng, threaded):
    w = scale_kernel("pycwt", GRID)
    v = rng.standard_normal((2, GRID.n_scales, 5000))
    if np.iscomplexobj(np.empty(0, dtype)):
        v = v + 1j * rng.standard_normal(v.shape)
    v = v.astype(dtype)
    inv = 1.0 / GRID.scales
    out = np.empty_like(v)
    got = smooth_scale(v, w, column_weights=inv, out=out, workers=2)  # 5000 columns: several column blocks
    assert got is out
    tol = 1e-12 if v.real.dtype == np.float64 else 2e-6
    for k in range(2):
        ref = scipy.signal.convolve2d(v[k].astype(np.complex128) * inv[:, None], w[:, None], mode="same")
        np.testing.assert_allclose(got[k], ref, rtol=tol, atol=tol * np.abs(ref).max())


def test_scaled_smoother_folds_the_division_by_scale(pair):
    W = cwt(pair[0], GRID, dtype="float64")
    sm = Smoother(GRID)
    inv = (1.0 / GRID.scales)[:, None]
    np.testing.assert_allclose(sm.scaled(W), sm(W * inv), rtol=1e-12, atol=1e-15 * np.abs(W).max())
    P = np.abs(W) ** 2
    np.testing.assert_allclose(sm.scaled(P), sm(P * inv), rtol=1e-12, atol=1e-15 * P.max())


def test_column_weights_must_match_the_scales():
    with pytest.raises(ValueError, match="one weight per scale"):
        smooth_scale(np.ones((4, 10)), np.ones(3) / 3, column_weights=np.ones(3))
    v = np.ones((4, 10))
    with pytest.raises(ValueError, match="must not overlap"):
        smooth_scale(v, np.ones(3) / 3, out=v)
    with pytest.raises(ValueError, match="shape"):
        smooth_scale(v, np.ones(3) / 3, out=np.empty((4, 9)))
    counts = np.arange(40).reshape(4, 10)  # integers are smoothed in float64, not truncated
    np.testing.assert_allclose(smooth_scale(counts, np.ones(3) / 3),
                               scipy.signal.convolve2d(counts, np.ones((3, 1)) / 3, mode="same"), rtol=1e-12)
    assert counts.dtype.kind == "i" and counts[1, 0] == 10  # input untouched


def test_small_calls_stay_on_one_thread(monkeypatch):
    monkeypatch.setattr(_cwt, "MIN_THREADED_POINTS", 1000)
    assert _cwt.resolve_workers(2, points=999) == 1 and _cwt.resolve_workers(2, points=1000) == 2
    assert _cwt.resolve_workers(-1) == max(1, os.cpu_count() or 1) and _cwt.resolve_workers(None, points=10**9) == 1
