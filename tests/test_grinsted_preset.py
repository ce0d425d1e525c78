"""The ``grinsted`` preset against an independent literal port of Grinsted's MATLAB toolbox."""

from __future__ import annotations

import numpy as np
import pytest

from bioxen_dask import make_grid, wavelet_coherence, wavelet_transform
from bioxen_dask.kernels import scale_kernel
from bioxen_dask.significance import ar1_naive
from reference import grinsted as G


def test_wtc_ao_baltic_matches_the_toolbox(ao_baltic):
    years, ao, baltic = ao_baltic
    ref = G.wtc(np.c_[years, ao], np.c_[years, baltic], MonteCarloCount=0)
    ds = wavelet_coherence(ao, baltic, dt=1.0, preset="grinsted", boundary="grinsted", dtype="float64")
    assert ds.sizes["period"] == ref.J1 + 1 == 57
    np.testing.assert_allclose(ds.period, ref.period, rtol=1e-12)
    np.testing.assert_allclose(ds.coi, ref.coi, rtol=1e-12)
    assert float(np.abs(ds.coherence.values - ref.Rsq).max()) <= 1e-9
    strong = np.abs(ref.Wxy) > 1e-6 * np.abs(ref.Wxy).max()
    dphi = np.angle(np.exp(1j * (ds.phase.values - np.angle(ref.Wxy))))
    assert np.abs(dphi[strong]).max() <= 1e-9


@pytest.mark.parametrize("n", [147, 504, 1000])
def test_cwt_matches_the_toolbox_wavelet(n, nino3, rng):
    x = nino3[1][:n] if n <= nino3[1].size else rng.standard_normal(n)
    dt = 0.25
    grid = make_grid(n, dt, preset="grinsted")
    wave, period, scale, coi = G.wavelet(x, dt, 1, 1 / 12, 2 * dt, grid.n_scales - 1, "MORLET", -1)
    W = wavelet_transform(x, dt=dt, preset="grinsted", boundary="grinsted", dtype="float64")
    assert np.abs(W.values - wave).max() / np.abs(wave).max() <= 1e-9
    np.testing.assert_allclose(W.scale, scale, rtol=1e-12)
    np.testing.assert_allclose(W.coi, coi, rtol=1e-12)


@pytest.mark.parametrize("dj", [1 / 12, 1 / 8, 1 / 4, 0.1])
def test_scale_kernel_matches_smoothwavelet(dj):
    ours = scale_kernel("grinsted", make_grid(500, 1.0, dj=dj, preset="grinsted"))
    np.testing.assert_allclose(ours, G.scale_kernel(dj), rtol=1e-12)


def test_naive_ar1_matches_ar1nv(ao_baltic):
    for x in ao_baltic[1:]:
        np.testing.assert_allclose(ar1_naive(x), G.ar1nv(x), rtol=1e-12)


def test_presets_differ_as_documented(ao_baltic):
    """On the same data the two conventions give visibly different coherence (DESIGN §2)."""
    _, ao, baltic = ao_baltic
    grid = make_grid(ao.size, 1.0, preset="grinsted")
    kw = dict(dt=1.0, s0=float(grid.scales[0]), J=grid.n_scales - 1, dtype="float64", boundary="linear")
    a = wavelet_coherence(ao, baltic, preset="pycwt", **kw)
    b = wavelet_coherence(ao, baltic, preset="grinsted", **kw)
    assert 0.1 < float(np.abs(a.coherence - b.coherence).max()) < 0.8
