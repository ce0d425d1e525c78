"""Hybrid engines: other CWTs converted to pycwt's convention, against pycwt itself.

Each external engine's coefficients are compared with ``pycwt.cwt`` outside the cone of
influence on NINO3 (pycwt's own sample) and on a chirp in noise, with thresholds a few times
the measured error and far below what a wrong factor of sqrt(2) or a conjugation gives (both
are checked to fail). A missing engine skips with the reason ``available_engines`` gives.
"""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

from bioxen_dask import engines, wavelet_coherence
from bioxen_dask.engines import ENGINES, available_engines, engine_cwt
from bioxen_dask.grid import make_grid
from bioxen_dask.significance import AR1Null, surrogate_significance
from bioxen_dask.significance._api import make_spec

pycwt = pytest.importorskip("pycwt")

AVAILABLE = available_engines()

#: max |W - W_pycwt| / max |W_pycwt| outside the COI, at scales of at least MIN_SCALE samples.
#: Measured (NINO3, chirp): bioxen 0, pycwt 1e-15, ssqueezepy 2e-8, fCWT 1.2e-4 (float32),
#: PyWavelets 1.4e-3 / 5.2e-3 (time-sampled wavelet, integral jitter at precision 18).
CWT_TOL = {"bioxen": 1e-12, "pycwt": 1e-12, "ssqueezepy": 1e-7, "fcwt": 5e-4, "pywavelets": 1.5e-2}
#: PyWavelets samples the wavelet in time: below ~4 samples per scale it aliases (see engines).
MIN_SCALE = {"pywavelets": 4.0}


def need(engine: str) -> None:
    if AVAILABLE[engine].startswith("unavailable"):
        pytest.skip(f"{engine}: {AVAILABLE[engine]}")


def _signals():
    from bioxen_dask.sample_data import load_nino3

    _, sst, dt = load_nino3()
    t = np.arange(2000.0)
    rng = np.random.default_rng(20261201)
    chirp = np.sin(2 * np.pi * t / 40.0 * (1 + t / 4000)) + 0.5 * rng.standard_normal(t.size)
    return {"nino3": ((sst - sst.mean()) / sst.std(), dt), "chirp": (chirp, 1.0)}


SIGNALS = _signals()


def _pycwt_reference(x, grid):
    return pycwt.cwt(x, grid.dt, grid.dj, float(grid.scales[0]), grid.n_scales - 1, pycwt.Morlet(6))[0]


def _outside(grid, n, min_scale=0.0):
    return (grid.periods[:, None] <= grid.coi(n)[None, :]) & (grid.scales / grid.dt >= min_scale)[:, None]


def _err(W, ref, mask) -> float:
    return float(np.abs(W - ref)[mask].max() / np.abs(ref)[mask].max())


def test_available_engines_lists_every_engine_with_a_version_or_a_reason():
    assert list(AVAILABLE) == list(ENGINES)
    import bioxen_dask

    assert AVAILABLE["bioxen"] == bioxen_dask.__version__
    for name, text in AVAILABLE.items():
        assert text and (text[0].isdigit() or text.startswith("unavailable:")), (name, text)
        if text.startswith("unavailable:"):
            assert "install" in text, text


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("signal", list(SIGNALS))
def test_engine_matches_pycwt_outside_coi(engine, signal):
    need(engine)
    x, dt = SIGNALS[signal]
    grid = make_grid(x.size, dt)
    W = engine_cwt(x, grid, engine)
    ref = _pycwt_reference(x, grid)
    assert W.shape == ref.shape == (grid.n_scales, x.size)
    mask = _outside(grid, x.size, MIN_SCALE.get(engine, 0.0))
    tol = CWT_TOL[engine]
    assert _err(W, ref, mask) <= tol
    # the thresholds catch the mistakes an adapter can make (errors of 0.29 or more)
    assert tol <= 0.025
    for wrong in (W * math.sqrt(2), W / math.sqrt(2), np.conj(W)):
        assert _err(wrong, ref, mask) > 0.25


def test_pywavelets_small_scales_differ_as_documented():
    """Time-sampled wavelet: tens of per cent at the 2-dt period, small from 4 samples up."""
    need("pywavelets")
    x, dt = SIGNALS["chirp"]
    grid = make_grid(x.size, dt)
    W, ref = engine_cwt(x, grid, "pywavelets"), _pycwt_reference(x, grid)
    first = _outside(grid, x.size) & (np.arange(grid.n_scales) == 0)[:, None]
    assert 0.05 < _err(W, ref, first) < 1.0


def test_linear_boundary_matches_native_linear():
    """With boundary='linear' every engine pads by the wavelet support: no wrap-around."""
    x, dt = SIGNALS["nino3"]
    grid = make_grid(x.size, dt, dj=0.25)
    ref = engine_cwt(x, grid, "bioxen", boundary="linear")
    mask = _outside(grid, x.size, 4.0)
    for engine, tol in (("pycwt", 1e-8), ("ssqueezepy", 1e-7), ("fcwt", 5e-4)):
        if AVAILABLE[engine].startswith("unavailable"):
            continue
        assert _err(engine_cwt(x, grid, engine, boundary="linear"), ref, mask) <= tol, engine


def test_batched_input_and_remove_mean():
    need("ssqueezepy")
    x, dt = SIGNALS["nino3"]
    grid = make_grid(x.size, dt, dj=0.5)
    X = np.stack([x, 2 * x + 3.0])
    W = engine_cwt(X, grid, "ssqueezepy", remove_mean=True)
    assert W.shape == (2, grid.n_scales, x.size)
    np.testing.assert_allclose(W[1], 2 * W[0], rtol=0, atol=1e-12 * np.abs(W[0]).max())


def test_errors_name_the_problem():
    grid = make_grid(128, 1.0, dj=0.5)
    x = np.random.default_rng(0).standard_normal(128)
    with pytest.raises(ValueError, match=r"unknown CWT engine 'matlab'.*'pywavelets'"):
        engine_cwt(x, grid, "matlab")
    paul = make_grid(128, 1.0, dj=0.5, wavelet="paul")
    with pytest.raises(ValueError, match="Morlet wavelet only"):
        engine_cwt(x, paul, "pywavelets")
    engine_cwt(x, paul, "bioxen")  # the native kernels take any wavelet
    with pytest.raises(ValueError, match=r"boundary in \['pycwt', 'linear'\]"):
        engine_cwt(x, grid, "ssqueezepy", boundary="symmetric")


def test_missing_package_raises_importerror_with_install_hint(monkeypatch):
    real = engines.importlib.import_module

    def fake(name, *a, **k):
        if name == "ssqueezepy":
            raise ModuleNotFoundError("No module named 'ssqueezepy'")
        return real(name, *a, **k)

    monkeypatch.setattr(engines.importlib, "import_module", fake)
    with pytest.raises(ImportError, match=r"pip install ssqueezepy"):
        engine_cwt(np.ones(64) + np.arange(64), make_grid(64, 1.0), "ssqueezepy")
    assert available_engines()["ssqueezepy"].startswith("unavailable:")


def test_fcwt_missing_library_is_reported_not_dropped():
    text = AVAILABLE["fcwt"]
    if text.startswith("unavailable"):  # the reason names the library and the fix
        assert "libfftw3" in text or "pip install fCWT" in text, text
    else:
        assert text[0].isdigit()


# --- hybrid coherence -----------------------------------------------------------------------
#: max |WCT - pycwt.wct| outside the COI (measured on AO/Baltic and a 1024-sample pair:
#: bioxen/pycwt 2e-15, ssqueezepy 5e-10, fCWT 1.1e-4; PyWavelets 1.4e-4 from 8 dt up, 0.6
#: including the smallest scales, see WCT_MIN_PERIOD).
WCT_TOL = {"bioxen": 1e-12, "pycwt": 1e-12, "ssqueezepy": 1e-8, "fcwt": 1e-3, "pywavelets": 1e-3}
#: Periods (in dt) from which PyWavelets' coherence is compared (the scale smoothing reaches
#: 7 scales = 0.6 octave down to its aliased 2-4 sample scales).
WCT_MIN_PERIOD = {"pywavelets": 8.0}


def _pair():
    from bioxen_dask.sample_data import load_ao_baltic

    rng = np.random.default_rng(3)
    t = np.arange(1024)
    a = np.sin(2 * np.pi * t / 30) + rng.standard_normal(t.size)
    b = np.roll(a, 5) + rng.standard_normal(t.size)
    _, ao, baltic = load_ao_baltic()
    return {"ao_baltic": (ao, baltic, 1.0), "synthetic": (a, b, 0.1)}


PAIRS = _pair()


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("pair", list(PAIRS))
def test_hybrid_wct_matches_pycwt(engine, pair):
    need(engine)
    x, y, dt = PAIRS[pair]
    rW, raW, coi, freq, _ = pycwt.wct(x, y, dt, sig=False)
    ds = wavelet_coherence(x, y, dt, boundary="pycwt", dtype="float64", engine=engine)
    assert ds.attrs["engine"] == engine
    outside = ((1 / freq)[:, None] <= coi[None, :]) & ((1 / freq) >= WCT_MIN_PERIOD.get(engine, 0) * dt)[:, None]
    err = float(np.abs(ds.coherence.values - rW)[outside].max())
    assert err <= WCT_TOL[engine], err


def test_hybrid_wct_rejects_unsupported_boundary():
    x, y, dt = PAIRS["synthetic"]
    with pytest.raises(ValueError, match="boundary in"):
        wavelet_coherence(x, y, dt, boundary="symmetric", engine="pycwt")


# --- significance ---------------------------------------------------------------------------
def test_significance_with_external_cwt_engine_matches_native():
    need("ssqueezepy")
    grid = make_grid(96, 1.0, dj=0.5)
    kw = dict(mc_count=12, levels=0.95, seed=7, n_samples=96, boundary="pycwt", dtype="float64",
              scheduler="sync")
    ext = surrogate_significance(grid, AR1Null(0.5, 0.3), cwt_engine="ssqueezepy", **kw)
    nat = surrogate_significance(grid, AR1Null(0.5, 0.3), engine="exact", **kw)
    assert ext.attrs["engine"] == "exact" and ext.attrs["cwt_engine"] == "ssqueezepy"
    # coherence agrees to ~1e-9, so the 1000-bin histograms agree bin for bin
    np.testing.assert_array_equal(ext.histogram, nat.histogram)
    again = surrogate_significance(grid, AR1Null(0.5, 0.3), cwt_engine="ssqueezepy", **kw)
    np.testing.assert_array_equal(ext.histogram, again.histogram)


def test_significance_cwt_engine_spec_is_picklable_and_validated():
    grid = make_grid(64, 1.0, dj=0.5)
    spec = make_spec(grid, AR1Null(0.3, 0.3), mc_count=4, n_samples=64, cwt_engine="pycwt")
    assert spec.engine == "exact" and spec.cwt_engine == "pycwt"
    back = pickle.loads(pickle.dumps(spec))
    np.testing.assert_array_equal(back.run(0, 2).counts, spec.run(0, 2).counts)
    with pytest.raises(ValueError, match="exact engine only"):
        make_spec(grid, AR1Null(0.3, 0.3), mc_count=4, engine="multirate", cwt_engine="pycwt")
    with pytest.raises(ValueError, match="unknown CWT engine"):
        make_spec(grid, AR1Null(0.3, 0.3), mc_count=4, cwt_engine="nope")
