"""QA of the significance stage at its edges: per-point thresholds for any batch size, per-scale
calibration, the AR(1) estimator against pycwt, the threshold cache's key and integrity, and
clear errors for bad input (never modifying it).

Every reference is independent of the code under test: numpy's Hazen quantile of every
surrogate's coherence, ``pycwt.ar1``, fresh (uncached) runs, or the nominal 5% exceedance
with a tolerance from the Monte Carlo standard error. Seeds are fixed.
"""

from __future__ import annotations

import numpy as np
import pycwt
import pytest

from bioxen_dask.grid import make_grid
from bioxen_dask.kernels import Smoother, coherence, cwt
from bioxen_dask.significance import (
    AR1Null,
    FourierNull,
    IAAFTNull,
    ThresholdCache,
    ar1_allen_smith,
    ar1_bucket,
    ar1_naive,
    ar1_thresholds,
    ar1_thresholds_many,
    bucket_centre,
    cached_ar1_thresholds,
    estimate_ar1,
    outside_coi_mask,
    rednoise,
    surrogate_significance,
)
from bioxen_dask.significance._api import make_spec


def _fields(pairs, grid, boundary="pycwt"):
    sm = Smoother(grid, scale_kernel="pycwt", boundary=boundary)
    kw = dict(boundary=boundary, dtype="float32")
    return np.stack([coherence(cwt(a, grid, **kw), cwt(b, grid, **kw), sm, clip=True)[0] for a, b in pairs])


# ---------------------------------------------------------------------------------------------
# per-point thresholds do not depend on the batching


@pytest.mark.parametrize("batch_size", [None, 1, 3, 40])
def test_pointwise_thresholds_for_any_batch_size(batch_size):
    """Regression: merged partials kept only as many values per point as the largest batch
    had surrogates, so any batch smaller than the ``k`` values a level needs (the default
    batch for levels <= 0.9, e.g. 7 of the 11 needed for 0.9 of 100) raised "needs the k
    largest values". Reference: numpy's Hazen quantile of all surrogates' coherence."""
    n, mc, levels = 64, 40, (0.9, 0.95)
    grid = make_grid(n, 1.0, dj=0.5)
    null = AR1Null(0.5, 0.2, length=n)
    res = surrogate_significance(grid, null, mc_count=mc, levels=levels, seed=4, pointwise=True,
                                 boundary="linear", batch_size=batch_size, scheduler="sync")
    spec = make_spec(grid, null, mc_count=mc, seed=4, pointwise=True, boundary="linear")
    R2 = _fields([spec._pair(i) for i in range(mc)], grid, boundary="linear")
    want = np.quantile(R2.astype(np.float64), levels, axis=0, method="hazen")
    np.testing.assert_allclose(res.pointwise, want, rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# calibration per scale, AR(1) estimate


def test_data_length_ar1_thresholds_are_calibrated_at_every_scale():
    """Independent AR(1) pairs (g = 0.6) exceed the pooled 0.95 threshold of every scale at 5%
    of that scale's outside-COI points. se per scale = sd_k(f_kj) * sqrt(1/K + 1/mc)."""
    n, K, mc, g = 256, 200, 300, 0.6
    grid = make_grid(n, 1.0, dj=0.25)
    thr = ar1_thresholds(grid, g, g, mc_count=mc, seed=31, n_samples=n, scheduler="sync")
    rng = np.random.default_rng(77)
    R2 = _fields([(rednoise(n, g, rng=rng), rednoise(n, g, rng=rng)) for _ in range(K)], grid)
    out = outside_coi_mask(grid, n)
    ok = out.sum(axis=1) > 0
    f = ((R2 > thr[:, None]) & out).sum(axis=2)[:, ok] / out.sum(axis=1)[ok]  # (K, scales)
    se = f.std(axis=0, ddof=1) * np.sqrt(1 / K + 1 / mc)
    z = (f.mean(axis=0) - 0.05) / se
    assert np.all(np.abs(z) <= 4.0), np.round(z, 1)  # ~20 scales: 4 se each


@pytest.mark.parametrize("g", [-0.6, 0.0, 0.5, 0.9])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_ar1_estimate_equals_pycwt(g, dtype):
    x = rednoise(400, g, rng=np.random.default_rng(int(10 * g) + 20)).astype(dtype)
    keep = x.copy()
    ours = ar1_allen_smith(x)
    ref = pycwt.ar1(x.astype(np.float64))
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-14)
    assert estimate_ar1(x) == ours[0]
    assert abs(ar1_naive(x)[0] - ours[0]) < 0.05  # the bias correction is O(1/N)
    np.testing.assert_array_equal(x, keep)


# ---------------------------------------------------------------------------------------------
# the threshold cache: keyed on every input, never a silently wrong entry

GRID = make_grid(96, 1.0, dj=0.5)
KW = dict(mc_count=12, seed=3, scheduler="sync")


def test_cache_key_includes_the_transform_engine(tmp_path):
    """A pycwt-engine run was answered with the native engine's cached histogram (the key
    lacked ``cwt_engine``; 28 of 219,120 counts differ for 40 surrogates on this grid)."""
    cache = ThresholdCache(tmp_path)
    cached_ar1_thresholds(GRID, 0.5, 0.2, cache=cache, engine="exact", **KW)
    got = cached_ar1_thresholds(GRID, 0.5, 0.2, cache=cache, engine="exact", cwt_engine="pycwt",
                                levels=(0.5, 0.95), **KW)
    assert (cache.hits, cache.misses, cache.computed) == (0, 2, 2)
    c1, c2 = bucket_centre(ar1_bucket(0.5)), bucket_centre(ar1_bucket(0.2))
    fresh = surrogate_significance(GRID, AR1Null(c1, c2), engine="exact", cwt_engine="pycwt",
                                   levels=(0.5, 0.95), **KW)
    np.testing.assert_array_equal(got, fresh.thresholds)


def _entry(cache):
    (entry,) = [p for p in cache.directory.iterdir() if p.name.endswith(".zarr")]
    return entry


def test_cache_entry_with_a_missing_chunk_is_recomputed(tmp_path):
    """Regression: a cache entry whose histogram chunk was lost (partial copy, cleanup script)
    read back as the fill value, and every threshold came back NaN, silently."""
    cache = ThresholdCache(tmp_path)
    fresh = cached_ar1_thresholds(GRID, 0.5, 0.2, cache=cache, **KW)
    assert np.isfinite(fresh).all()
    chunks = [p for p in (_entry(cache) / "histogram").rglob("*") if p.is_file() and p.name != "zarr.json"]
    assert chunks
    for p in chunks:
        p.unlink()
    again = cached_ar1_thresholds(GRID, 0.5, 0.2, cache=cache, **KW)
    np.testing.assert_array_equal(again, fresh)
    assert (cache.hits, cache.computed) == (0, 2)
    third = cached_ar1_thresholds(GRID, 0.5, 0.2, cache=cache, **KW)  # the repaired entry is used
    np.testing.assert_array_equal(third, fresh)
    assert cache.hits == 1


def test_cache_entry_with_altered_values_is_recomputed(tmp_path):
    """A readable entry whose numbers are not the ones stored (bit rot, edited by hand) must
    not be used: thresholds equal a fresh run's."""
    import zarr

    cache = ThresholdCache(tmp_path)
    fresh = cached_ar1_thresholds(GRID, 0.5, 0.2, cache=cache, **KW)
    arr = zarr.open_group(str(_entry(cache)), mode="r+")["histogram"]
    h = arr[...]
    h[:, : h.shape[1] // 2] = 0  # a plausible-looking histogram with every low bin emptied
    arr[...] = h
    again = cached_ar1_thresholds(GRID, 0.5, 0.2, cache=cache, **KW)
    np.testing.assert_array_equal(again, fresh)
    assert (cache.hits, cache.computed) == (0, 2)


def test_cache_rejects_unknown_options(tmp_path):
    with pytest.raises(ValueError, match="boundry"):
        ar1_thresholds_many(GRID, 0.5, 0.2, cache=ThresholdCache(tmp_path), boundry="linear", **KW)
    with pytest.raises(ValueError, match="pointwise"):
        ar1_thresholds_many(GRID, 0.5, 0.2, cache=ThresholdCache(tmp_path), pointwise=True, n_samples=96, **KW)


# ---------------------------------------------------------------------------------------------
# bad input: clear errors, nothing modified


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), None, "ten", 2.5, 0, -3])
def test_bad_mc_count(bad):
    with pytest.raises(ValueError, match="mc_count must be a positive integer"):
        ar1_thresholds(GRID, 0.5, 0.5, mc_count=bad, scheduler="sync")


@pytest.mark.parametrize("name, value", [("n_samples", 100.5), ("batch_size", 2.5), ("nbins", 500.5),
                                          ("interior", 8.5), ("batch_size", float("nan"))])
def test_fractional_counts_are_rejected(name, value):
    """They were silently truncated (nbins=2.5 ran with 2 bins)."""
    with pytest.raises(ValueError, match=name):
        ar1_thresholds(GRID, 0.5, 0.5, mc_count=4, scheduler="sync", **{name: value})


def test_zero_dimensional_level_is_a_scalar_level():
    a = ar1_thresholds(GRID, 0.5, 0.2, levels=np.array(0.95), **KW)
    b = ar1_thresholds(GRID, 0.5, 0.2, levels=0.95, **KW)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("n_iter", [0, -1, 2.5, "a"])
def test_iaaft_iterations_are_checked(n_iter):
    """n_iter=0 silently returned shuffled surrogates (white noise): another null model."""
    x = np.random.default_rng(0).standard_normal((2, 64))
    with pytest.raises(ValueError, match="n_iter"):
        IAAFTNull(*x, n_iter=n_iter)


def test_bad_traces_and_lengths():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 64))
    with pytest.raises(ValueError, match="complex"):
        FourierNull(x[0] + 1j * x[1], x[1])
    with pytest.raises(ValueError, match="length"):
        AR1Null(0.5, 0.5, length=100.5)
    with pytest.raises(ValueError, match="amplitude"):
        rednoise(10, 0.5, float("nan"))
    with pytest.raises(ValueError, match="AR\\(1\\) coefficient"):
        AR1Null(0.5, float("nan"))
    with pytest.raises(ValueError, match="at least 4"):
        ar1_thresholds(GRID, 0.5, 0.5, mc_count=4, n_samples=3, scheduler="sync")


def test_fourier_null_keeps_its_own_copy_and_never_writes_the_input():
    """The traces were stored by reference: filling the caller's buffer with the next roi
    changed a null model built (but not yet run) for the previous one."""
    rng = np.random.default_rng(3)
    x1, x2 = rng.standard_normal((2, 96)).cumsum(axis=1)
    k1, k2 = x1.copy(), x2.copy()
    grid = make_grid(96, 1.0, dj=0.5)
    want = surrogate_significance(grid, FourierNull(k1, k2), mc_count=8, seed=1, scheduler="sync")
    for cls in (FourierNull, IAAFTNull):
        null = cls(x1, x2)
        res_before = surrogate_significance(grid, null, mc_count=8, seed=1, scheduler="sync")
        x1[:] = rng.standard_normal(96)  # the caller reuses its buffer
        res = surrogate_significance(grid, null, mc_count=8, seed=1, scheduler="sync")
        np.testing.assert_array_equal(res.thresholds, res_before.thresholds)
        x1[:] = k1
        np.testing.assert_array_equal(x2, k2)
    np.testing.assert_array_equal(want.thresholds,
                                  surrogate_significance(grid, FourierNull(x1, x2), mc_count=8, seed=1,
                                                         scheduler="sync").thresholds)
