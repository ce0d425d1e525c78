"""CuPy through the same kernels as NumPy: transform, smoothing, coherence, filter banks.

Skipped without CuPy or a CUDA device (see ``_gpu_helpers``). Run on a GPU machine with
``pytest -m gpu tests/gpu`` (``deploy/gpu/check-gpu.sh`` does it in one go).
"""

from __future__ import annotations

import numpy as np
import pytest
from _gpu_helpers import GPU, RTOL, rel_err

from bioxen_dask import kernels
from bioxen_dask.grid import make_grid
from bioxen_dask.kernels import Smoother, coherence, cwt, filter_cache, smooth
from bioxen_dask.kernels._xp import to_numpy

pytestmark = GPU


@pytest.fixture(scope="module")
def cp():
    import cupy

    return cupy


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(
    ("boundary", "n"),
    [("linear", 3000), ("linear", 70_000), ("symmetric", 3000), ("valid", 3000), ("circular", 4096),
     ("pycwt", 3000), ("pycwt", 70_000), ("grinsted", 3000)],
)
def test_cwt_on_cupy_equals_numpy(cp, dtype, boundary, n):
    # n=70,000: segmented overlap-save bands (linear) and trimmed record-long banks (pycwt)
    x = np.random.default_rng(n).standard_normal((2, n))
    grid = make_grid(n, 0.5, dj=0.25)
    ref = cwt(x, grid, boundary=boundary, dtype=dtype)
    got = cwt(cp.asarray(x), grid, boundary=boundary, dtype=dtype)
    assert isinstance(got, cp.ndarray) and got.dtype == ref.dtype and got.shape == ref.shape
    assert rel_err(got, ref) <= RTOL[dtype]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("boundary", ["linear", "pycwt", "valid"])
def test_smoothing_and_coherence_on_cupy_equal_numpy(cp, dtype, boundary):
    rng = np.random.default_rng(5)
    n = 2500
    t = np.arange(n) * 0.1
    x = np.sin(2 * np.pi * t / 5) + 0.5 * rng.standard_normal(n)
    y = np.roll(x, 7) + 0.5 * rng.standard_normal(n)
    grid = make_grid(n, 0.1, dj=1 / 8)
    cwt_mode = "linear" if boundary == "valid" else boundary
    W = cwt(np.stack([x, y]), grid, boundary=cwt_mode, dtype=dtype)
    Wd = cp.asarray(W)
    for kind in ("pycwt", "grinsted"):
        P = kernels.scaled_power(W, grid)
        assert rel_err(smooth(cp.asarray(P), grid, scale_kernel_kind=kind, boundary=cwt_mode),
                       smooth(P, grid, scale_kernel_kind=kind, boundary=cwt_mode)) <= RTOL[dtype]
    sm = Smoother(grid, boundary=boundary)
    R2, ph = coherence(W[0], W[1], sm)
    R2d, phd = coherence(Wd[0], Wd[1], sm)
    assert isinstance(R2d, cp.ndarray) and isinstance(phd, cp.ndarray)  # stays on the device
    assert rel_err(R2d, R2) <= RTOL[dtype]
    # phase: wrapped difference, where the cross spectrum is not negligible
    w = np.abs(W[0] * np.conj(W[1]))
    d = np.angle(np.exp(1j * (to_numpy(phd) - ph)))
    sel = np.isfinite(ph) & (w > 1e-6 * np.nanmax(w))
    assert np.abs(d[sel]).max() <= (1e-9 if dtype == "float64" else 1e-3)
    assert 0.3 < float(np.nanmean(R2)) < 1.0  # the test signals are coherent: not a vacuous match


def test_filter_banks_are_cached_on_the_device(cp):
    filter_cache.clear()
    n = 4096
    grid = make_grid(n, 1.0, dj=0.25)
    x = np.random.default_rng(1).standard_normal(n)
    dev = ("cuda", int(cp.cuda.runtime.getDevice()))
    cwt(cp.asarray(x), grid, boundary="linear")
    keys = list(filter_cache._data)
    assert keys and all(k[-1] == dev for k in keys), keys
    assert all(isinstance(v, cp.ndarray) for v in filter_cache._data.values())
    misses = filter_cache.misses
    cwt(cp.asarray(x), grid, boundary="linear")
    assert filter_cache.misses == misses and filter_cache.hits >= len(keys)  # reused, not rebuilt
    cwt(x, grid, boundary="linear")  # NumPy: its own host banks, the device banks untouched
    host = [k for k in filter_cache._data if k[-1] == ("cpu", 0)]
    assert len(host) == len(keys)
    assert all(isinstance(filter_cache._data[k], np.ndarray) for k in host)


def test_results_come_back_as_numpy_only_when_asked(cp):
    n = 1024
    grid = make_grid(n, 1.0, dj=0.25)
    x = cp.asarray(np.random.default_rng(2).standard_normal((3, n)))
    W = cwt(x, grid)
    S = smooth(kernels.scaled_power(W, grid), grid)
    R2, ph = coherence(W[:1], W[1:], Smoother(grid))
    for a in (W, S, R2, ph):
        assert isinstance(a, cp.ndarray)
    host = to_numpy(R2)
    assert isinstance(host, np.ndarray) and host.shape == (2, grid.n_scales, n)
