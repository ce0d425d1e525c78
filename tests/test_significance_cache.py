"""The AR(1) threshold cache: hit when every input matches, miss when any differs, no
recomputation on a hit, one Monte Carlo run per bucket pair for many rois."""

from __future__ import annotations

import os

import numpy as np
import pytest

from bioxen_dask import compat
from bioxen_dask.grid import ScaleGrid, make_grid
from bioxen_dask.significance import (
    ThresholdCache,
    ar1_bucket,
    ar1_thresholds,
    ar1_thresholds_many,
    bucket_centre,
    cached_ar1_thresholds,
    threshold_cache,
)
from bioxen_dask.significance.threshold_cache import exact_engine_scales
from bioxen_dask.wavelets import Morlet

GRID = make_grid(96, 1.0, dj=0.5)
KW = dict(mc_count=12, seed=3, scheduler="sync")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh cache whose Monte Carlo runs are counted by the stage itself."""
    calls = []
    real = threshold_cache.run_specs

    def counting(jobs, **kw):
        calls.append(len(jobs))
        return real(jobs, **kw)

    monkeypatch.setattr(threshold_cache, "run_specs", counting)
    c = ThresholdCache(tmp_path / "cache")
    c.calls = calls
    return c


def test_hit_when_key_matches_and_no_recomputation(cache):
    a = cached_ar1_thresholds(GRID, 0.5, 0.2, cache=cache, **KW)
    assert (cache.hits, cache.misses, cache.computed, cache.calls) == (0, 1, 1, [1])
    b = cached_ar1_thresholds(GRID, 0.5, 0.2, cache=cache, **KW)
    c = cached_ar1_thresholds(GRID, 0.2, 0.5, cache=cache, **KW)  # order does not matter
    d = cached_ar1_thresholds(GRID, 0.49, 0.21, cache=cache, **KW)  # same buckets
    assert (cache.hits, cache.misses, cache.computed, cache.calls) == (3, 1, 1, [1])
    for other in (b, c, d):
        np.testing.assert_array_equal(a, other)
    # a hit returns what an uncached run at the bucket centres computes
    c1, c2 = bucket_centre(ar1_bucket(0.5)), bucket_centre(ar1_bucket(0.2))
    np.testing.assert_array_equal(a, ar1_thresholds(GRID, c1, c2, **KW))
    # nothing is left half-written
    names = os.listdir(cache.directory)
    assert len(names) == 1 and names[0].endswith(".zarr")


def test_other_levels_are_read_from_the_cached_run(cache):
    cached_ar1_thresholds(GRID, 0.5, 0.2, cache=cache, levels=0.95, **KW)
    both = cached_ar1_thresholds(GRID, 0.5, 0.2, cache=cache, levels=(0.9, 0.99), **KW)
    assert (cache.misses, cache.computed) == (1, 1)
    c1, c2 = bucket_centre(ar1_bucket(0.5)), bucket_centre(ar1_bucket(0.2))
    np.testing.assert_array_equal(both, ar1_thresholds(GRID, c1, c2, levels=(0.9, 0.99), **KW))


@pytest.mark.parametrize(
    "change",
    [
        dict(g1=0.7),  # another AR(1) bucket
        dict(grid=make_grid(96, 1.0, dj=0.25)),  # grid: dj
        dict(grid=make_grid(96, 0.5, dj=0.5)),  # grid: dt
        dict(grid=make_grid(120, 1.0, dj=0.5)),  # grid: number of scales
        dict(grid=ScaleGrid(GRID.dt, GRID.scales_, GRID.dj, Morlet(f0=6.0, heaviside=True))),  # wavelet
        dict(scale_kernel="grinsted"),  # preset's scale smoothing
        dict(boundary="linear"),
        dict(mc_count=13),
        dict(seed=4),
        dict(n_samples=200),
        dict(nbins=500),
        dict(interior=None),
        dict(engine="exact"),
    ],
)
def test_miss_when_any_part_of_the_key_differs(cache, change):
    base = dict(grid=GRID, g1=0.5, g2=0.2, **KW)
    cached_ar1_thresholds(**{**base, "g1": base["g1"]}, cache=cache)
    assert (cache.misses, cache.computed) == (1, 1)
    args = {**base, **change}
    grid = args.pop("grid")
    cached_ar1_thresholds(grid, args.pop("g1"), args.pop("g2"), cache=cache, **args)
    # the linear boundary's broadband smallest scales are a second (exact-engine) run, keyed apart
    extra = 1 if exact_engine_scales(grid, **{k: v for k, v in args.items() if k in ("boundary", "engine")}) else 0
    assert (cache.hits, cache.misses, cache.computed) == (0, 2 + extra, 2 + extra)


def test_many_rois_need_one_run_per_bucket_pair(cache):
    rois = np.random.default_rng(0).uniform(0.05, 0.95, 1000)
    thr = ar1_thresholds_many(GRID, 0.6, rois, cache=cache, levels=(0.95, 0.99), **KW)
    n_buckets = np.unique(ar1_bucket(rois)).size
    assert thr.shape == (1000, 2, GRID.n_scales)
    assert cache.computed == n_buckets < 30 and cache.calls == [n_buckets]  # one graph for all
    again = ar1_thresholds_many(GRID, 0.6, rois[::-1], cache=cache, levels=(0.95, 0.99), **KW)
    assert cache.computed == n_buckets and cache.hits == n_buckets
    np.testing.assert_array_equal(again, thr[::-1])
    # rois in one bucket share one curve
    same = ar1_bucket(rois) == ar1_bucket(rois[0])
    assert same.sum() > 1 and np.all(thr[same] == thr[0])


def test_corrupt_entry_is_recomputed(cache):
    cached_ar1_thresholds(GRID, 0.5, 0.2, cache=cache, **KW)
    (entry,) = cache.directory.iterdir()
    for f in entry.rglob("*"):
        if f.is_file():
            f.write_bytes(b"garbage")
    cached_ar1_thresholds(GRID, 0.5, 0.2, cache=cache, **KW)
    assert (cache.hits, cache.misses, cache.computed) == (0, 2, 2)


def test_buckets():
    g = np.array([-0.5, 0.0, 0.049, 0.5, 0.9, 0.99])
    b = ar1_bucket(g)
    assert b.tolist() == [-5, 0, 0, 5, 15, 26]
    assert np.all(np.abs(np.arctanh(g) - np.arctanh(bucket_centre(b))) <= 0.05 + 1e-12)
    assert ar1_bucket(0.5, width=0.25) == 2
    with pytest.raises(ValueError):
        ar1_bucket(1.0)
    with pytest.raises(ValueError, match="fixed seed"):
        cached_ar1_thresholds(GRID, 0.5, 0.5, seed=None, mc_count=4)


def test_compat_uses_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BIOXEN_DASK_CACHE", str(tmp_path))
    s0, J = GRID.scales[0], GRID.n_scales - 1
    a = compat.wct_significance(0.4, 0.6, 1.0, 0.5, s0, J, mc_count=10, progress=False, seed=5)
    entries = list(tmp_path.iterdir())
    monkeypatch.setattr(threshold_cache, "run_specs", lambda *a, **k: pytest.fail("recomputed"))
    b = compat.wct_significance(0.4, 0.6, 1.0, 0.5, s0, J, mc_count=10, progress=False, seed=5)
    np.testing.assert_array_equal(a, b)
    assert len(entries) == 1 and list(tmp_path.iterdir()) == entries
