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
