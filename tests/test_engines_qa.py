"""QA of the hybrid engines: memory, unusual grids and dtype spellings, against pycwt itself."""

from __future__ import annotations

import gc
import os

import numpy as np
import pytest

from bioxen_dask.engines import available_engines, engine_cwt
from bioxen_dask.grid import make_grid

pycwt = pytest.importorskip("pycwt")

AVAILABLE = available_engines()


def need(engine: str) -> None:
    if AVAILABLE[engine].startswith("unavailable"):
        pytest.skip(f"{engine}: {AVAILABLE[engine]}")


def _pycwt(x, grid):
    return pycwt.cwt(x, grid.dt, grid.dj, float(grid.scales[0]), grid.n_scales - 1, pycwt.Morlet(grid.wavelet.f0),
                     freqs=grid.frequencies)[0]


def _err(W, ref, grid, n, min_scale=0.0) -> float:
    mask = (grid.periods[:, None] <= grid.coi(n)[None, :]) & (grid.scales / grid.dt >= min_scale)[:, None]
    return float(np.abs(W - ref)[mask].max() / np.abs(ref)[mask].max())


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc (Linux) to read the RSS")
def test_fcwt_memory_growth_over_repeated_calls_is_small():
    """fCWT 0.1.18 leaks 12 bytes per frame bin on every FCWT.cwt call (its mother and last-scale
    buffers are never freed). One call per scale leaked ~73 MB per transform of a 512-sample
    record (98 scales on 2**16-bin frames), i.e. tens of GB over a Monte Carlo significance run.
    One call per frame size leaks < 1 MB per transform."""
    need("fcwt")
    x = np.random.default_rng(0).standard_normal(512)
    grid = make_grid(x.size, 1.0)
    engine_cwt(x, grid, "fcwt")
    gc.collect()
    before = _rss_mb()
    for _ in range(10):
        engine_cwt(x, grid, "fcwt")
    gc.collect()
    growth = _rss_mb() - before
    assert growth < 30.0, f"RSS grew {growth:.0f} MB over 10 fCWT transforms of a 512-sample record"


@pytest.mark.parametrize("dj", [1 / 12, 0.5, 1.0])
def test_fcwt_matches_pycwt_on_coarse_log_grids(dj):
    """Coarse grids: a scale's band is much narrower than the previous one's, so a wrong order of
    scales inside one fCWT call would leave stale bins (errors of several per cent)."""
    need("fcwt")
    rng = np.random.default_rng(11)
    for n, dt in ((700, 1.0), (3000, 0.1)):  # the 3000-sample record spans several frame sizes
        x = rng.standard_normal(n)
        grid = make_grid(n, dt, dj=dj)
        assert _err(engine_cwt(x, grid, "fcwt"), _pycwt(x, grid), grid, n) < 5e-4


@pytest.mark.parametrize("engine", ["pycwt", "pywavelets", "ssqueezepy", "fcwt"])
@pytest.mark.parametrize("kind", ["uniform-frequency", "random", "one scale", "two scales", "dj=3"])
def test_every_engine_takes_any_morlet_grid(engine, kind):
    """Grids from make_grid(freqs=...) (pycwt's freqs=) need not be log-spaced; short grids and
    coarse dj are valid ScaleGrids too."""
    need(engine)
    n = 512
    x = np.random.default_rng(3).standard_normal(n)
    grid = {
        "uniform-frequency": lambda: make_grid(n, 1.0, freqs=np.linspace(1 / 200, 1 / 5, 12)),
        "random": lambda: make_grid(n, 1.0, freqs=np.sort(np.random.default_rng(4).uniform(1 / 150, 1 / 5, 9))),
        "one scale": lambda: make_grid(n, 1.0, s0=6.0, J=0),
        "two scales": lambda: make_grid(n, 1.0, s0=6.0, J=1, dj=0.25),
        "dj=3": lambda: make_grid(n, 1.0, dj=3.0, s0=5.0),
    }[kind]()
    tol = {"pycwt": 1e-12, "ssqueezepy": 1e-7, "fcwt": 5e-4, "pywavelets": 1.5e-2}[engine]
    W = engine_cwt(x, grid, engine)
    assert W.shape == (grid.n_scales, n)
    assert _err(W, _pycwt(x, grid), grid, n, 4.0) < tol


@pytest.mark.parametrize("engine", ["pycwt", "ssqueezepy", "fcwt", "pywavelets"])
def test_numpy_dtype_spellings_are_accepted_like_the_native_engine(engine):
    """np.float64 / np.dtype('float32') / 'f4' work for engine='bioxen'; the others said
    "dtype must be 'float32' or 'float64', got <class 'numpy.float64'>"."""
    need(engine)
    x = np.random.default_rng(5).standard_normal(256)
    grid = make_grid(x.size, 1.0, dj=0.5)
    for spelled, canonical in ((np.float64, "float64"), (np.dtype("float32"), "float32"), ("f4", "float32"),
                               (np.float32, "float32")):
        engine_cwt(x, grid, "bioxen", dtype=spelled)  # the native engine accepts it
        np.testing.assert_array_equal(engine_cwt(x, grid, engine, dtype=spelled),
                                      engine_cwt(x, grid, engine, dtype=canonical))
    with pytest.raises(ValueError, match=r"'float32' or 'float64'"):
        engine_cwt(x, grid, engine, dtype="float16")
