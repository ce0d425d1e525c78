"""The filter-bank cache of the kernels: hits, misses and its byte bound."""

from __future__ import annotations

import numpy as np
import pytest

from bioxen_dask.grid import ScaleGrid
from bioxen_dask.kernels import cwt, filter_cache, smooth_time
from bioxen_dask.kernels._cache import FilterCache
from bioxen_dask.kernels._plan import plan_bands
from bioxen_dask.wavelets import Morlet, Paul

GRID = ScaleGrid.from_s0(1.0, 2 / Morlet().fourier_factor, 0.25, 19)


@pytest.fixture(autouse=True)
def fresh_cache():
    """An empty process cache with its default bound, restored afterwards."""
    bound = filter_cache.max_bytes
    filter_cache.clear()
    yield filter_cache
    filter_cache.max_bytes = bound
    filter_cache.clear()


def _counts():
    return filter_cache.hits, filter_cache.misses


@pytest.mark.parametrize("boundary", ["linear", "symmetric", "circular", "pycwt"])
def test_repeated_transform_hits_every_bank(boundary, rng):
    x = rng.standard_normal(600)
    first = cwt(x, GRID, boundary=boundary)
    hits, misses = _counts()
    assert hits == 0 and misses >= 1 and len(filter_cache) == misses
    again = cwt(x, GRID, boundary=boundary)
    assert _counts() == (hits + misses, misses)  # every bank found, none rebuilt
    np.testing.assert_array_equal(first, again)  # cached banks are never modified in place


@pytest.mark.parametrize(
    "change",
    [
        dict(grid=ScaleGrid.from_s0(1.0, 2 / Morlet().fourier_factor, 0.25, 18)),
        dict(grid=ScaleGrid.from_s0(1.0, 2 / Morlet().fourier_factor, 0.2, 19)),
        dict(grid=ScaleGrid.from_s0(0.5, 1 / Morlet().fourier_factor, 0.25, 19)),
        dict(grid=ScaleGrid.from_s0(1.0, 2 / Paul().fourier_factor, 0.25, 19, wavelet=Paul())),
        dict(dtype="float64"),
        dict(boundary="symmetric"),
        dict(n=1025, boundary="pycwt"),  # frames of 2**k >= n: 1024 -> 2048
        dict(n=599, boundary="circular"),
    ],
    ids=["J", "dj", "dt", "wavelet", "dtype", "boundary", "length-pycwt", "length-circular"],
)
def test_any_change_of_grid_dtype_or_frame_misses(change, rng):
    base = dict(n=600, grid=GRID, dtype="float32", boundary="linear")
    if change.get("boundary") in ("pycwt", "circular"):
        base["boundary"] = change["boundary"]
    x = rng.standard_normal(2000)
    cwt(x[: base["n"]], base["grid"], dtype=base["dtype"], boundary=base["boundary"])
    hits, misses = _counts()
    new = {**base, **change}
    cwt(x[: new["n"]], new["grid"], dtype=new["dtype"], boundary=new["boundary"])
    assert filter_cache.hits == hits
    assert filter_cache.misses > misses


@pytest.mark.parametrize("n_new", [601, 700, 1500, 5000])
def test_length_change_misses_exactly_the_changed_frames(n_new, rng):
    """``linear`` banks are keyed by FFT frame length: a new record length rebuilds the
    banks of the bands whose frame changed and reuses the others."""
    x = rng.standard_normal(5000)
    sup = GRID.wavelet_support()
    old = {(b.start, b.stop, b.nfft) for b in plan_bands(600, sup, "linear")}
    new = [(b.start, b.stop, b.nfft) for b in plan_bands(n_new, sup, "linear")]
    cwt(x[:600], GRID)
    hits, misses = _counts()
    cwt(x[:n_new], GRID)
    reused = sum(k in old for k in new)
    assert _counts() == (hits + reused, misses + len(new) - reused)
    assert (reused == len(new)) == (n_new == 601)  # 600 and 601 share all their frame lengths


def test_segmented_banks_are_shared_across_record_lengths(rng):
    """Overlap-save banks depend on the segment length only: chunks of a long recording
    (whose last chunk is shorter) reuse them."""
    grid = ScaleGrid.from_s0(1.0, 2 / Morlet().fourier_factor, 0.5, 6)
    n1, n2 = 40_000, 39_000
    p1 = plan_bands(n1, grid.wavelet_support(), "linear")
    p2 = plan_bands(n2, grid.wavelet_support(), "linear")
    assert all(b.hop for b in p1) and p1 == p2
    x = rng.standard_normal(n1)
    cwt(x, grid)
    hits, misses = _counts()
    cwt(x[:n2], grid)
    assert _counts() == (hits + len(p2), misses)


def test_smoothing_banks_hit_on_repeat(rng):
    P = rng.random((GRID.n_scales, 500)).astype(np.float32)
    smooth_time(P, GRID)
    hits, misses = _counts()
    assert misses >= 1
    smooth_time(P, GRID)
    assert _counts() == (hits + misses, misses)
    smooth_time(P.astype(np.float64), GRID)  # other dtype: new banks
    assert filter_cache.misses > misses


def test_cache_stays_under_its_byte_bound(rng):
    filter_cache.max_bytes = 300_000
    x = rng.standard_normal(3000)
    for n in (1000, 1500, 2000, 2500, 3000):
        for boundary in ("linear", "circular", "pycwt"):
            W = cwt(x[:n], GRID, boundary=boundary, dtype="float64")
            assert filter_cache.nbytes <= filter_cache.max_bytes
            assert 0 < len(filter_cache)
            np.testing.assert_allclose(W, cwt(x[:n], GRID, boundary=boundary, dtype="float64"), rtol=0, atol=0)
    assert filter_cache.nbytes == sum(int(v.nbytes) for v in filter_cache._data.values())


def test_long_frequency_defined_banks_are_trimmed_and_counted(rng):
    """Record-long pycwt banks keep only their non-zero band: bounded, and still exact."""
    grid = ScaleGrid.from_s0(1.0, 2 / Morlet().fourier_factor, 0.25, 39)  # up to 1670 samples
    x = rng.standard_normal(70_000)
    W = cwt(x, grid, boundary="pycwt", dtype="float32")
    dense = grid.n_scales * 2**17 * 4  # what the full float32 bank would take
    assert 0 < filter_cache.nbytes < dense / 2
    assert filter_cache.nbytes == sum(int(v.nbytes) for v in filter_cache._data.values())
    np.testing.assert_array_equal(W, cwt(x, grid, boundary="pycwt", dtype="float32"))


def test_lru_eviction_and_oversized_values():
    cache = FilterCache(max_bytes=3000)
    build = lambda size: (lambda: np.zeros(size, dtype=np.uint8))  # noqa: E731
    cache.get("a", build(1000))
    cache.get("b", build(1000))
    cache.get("a", build(1000))  # refresh "a": "b" is now the oldest
    cache.get("c", build(1500))  # evicts "b"
    assert set(cache._data) == {"a", "c"} and cache.nbytes == 2500
    big = cache.get("huge", build(5000))  # larger than the bound: returned, not kept
    assert big.nbytes == 5000 and "huge" not in cache._data and cache.nbytes <= cache.max_bytes
    assert (cache.hits, cache.misses) == (1, 4)
