"""bioxen_dask.coherence: many pairs, lazily; equal to wavelet_coherence pair by pair."""

from __future__ import annotations

import warnings

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr
from scipy.signal import lfilter

from bioxen_dask import wavelet_coherence
from bioxen_dask.coherence import LAG_CONVENTION, coherence, pair_table, period_grid
from _helpers import lagged_traces

DT = 0.1
N = 1500
GRID = dict(min_period=0.4, max_period=12.0, dj=1 / 6)


@pytest.fixture(scope="module")
def traces():
    return lagged_traces(N, 7, [0.0, 0.5, 1.0, 1.5], seed=11, dt=DT)


def _signals(x, chunks=(3, N)):
    return xr.DataArray(
        da.from_array(x, chunks=chunks), dims=("roi", "time"),
        coords={"roi": np.arange(100, 100 + x.shape[0]), "time": np.arange(x.shape[1]) * DT},
    )


def _pair_reference(a, b, ds):
    """wavelet_coherence of one pair on the Dataset's grid, plus the numpy reductions."""
    w = wavelet_coherence(a, b, DT, dtype="float64", s0=float(ds.scale[0]), J=ds.sizes["period"] - 1,
                          dj=float(ds.attrs["dj"]))
    outside = (w.period <= w.coi).values
    R2, ph = w.coherence.values, w.phase.values
    count = outside.sum(axis=1)
    z = np.where(outside, np.exp(1j * ph), 0).sum(axis=1) / count
    red = {
        "coherence_mean": np.where(outside, R2, 0).sum(axis=1) / count,
        "phase_mean": np.angle(z),
        "phase_consistency": np.abs(z),
        "lag": np.angle(z) / (2 * np.pi) * w.period.values,
    }
    return w, red


def _check_pair(ds, k, a, b, tol=1e-9):
    w, red = _pair_reference(a, b, ds)
    pair = ds.isel(pair=k)
    if "coherence" in ds:
        assert np.max(np.abs(pair.coherence.values - w.coherence.values)) <= tol
        dphi = np.angle(np.exp(1j * (pair.phase.values - w.phase.values)))
        assert np.max(np.abs(dphi)) <= tol
    for name, values in red.items():
        got = pair[name].values
        if name in ("phase_mean", "lag"):  # compare angles where the mean phase is defined
            keep = red["phase_consistency"] > 1e-6
            got, values = got[keep], values[keep]
            if name == "phase_mean":
                got, values = np.exp(1j * got), np.exp(1j * values)
        assert np.max(np.abs(got - values)) <= tol, name


def test_reference_mode_equals_wavelet_coherence(traces):
    x, ref = traces
    ds = coherence(_signals(x), reference=ref, dtype="float64", maps=True, significance=None,
                   roi_chunk=3, **GRID)
    assert ds.coherence_mean.dims == ("pair", "period") and ds.coherence.dims == ("pair", "period", "time")
    assert isinstance(ds.coherence_mean.data, da.Array)  # lazy
    ds = ds.compute(scheduler="sync")
    assert ds.roi_a.values.tolist() == list(range(100, 107))
    assert set(ds.roi_b.values.tolist()) == {"external"} and set(ds.index_b.values.tolist()) == {-1}
    for k in range(x.shape[0]):
        _check_pair(ds, k, x[k], ref)


def test_pairs_mode_keeps_the_users_order_and_equals_wavelet_coherence(traces):
    x, _ = traces
    pairs = [(5, 1), (0, 6), (2, 2), (1, 5), (3, 0)]
    ds = coherence(_signals(x), pairs=pairs, dtype="float64", maps=True, significance=None,
                   pair_chunk=2, **GRID).compute(scheduler="sync")
    assert list(zip(ds.index_a.values.tolist(), ds.index_b.values.tolist())) == pairs
    assert ds.roi_a.values.tolist() == [105, 100, 102, 101, 103]
    for k, (a, b) in enumerate(pairs):
        _check_pair(ds, k, x[a], x[b])
    same = ds.isel(pair=2)  # a roi with itself: coherence 1, phase 0
    np.testing.assert_allclose(same.coherence_mean.values, 1.0, atol=1e-12)
    np.testing.assert_allclose(same.phase_consistency.values, 1.0, atol=1e-12)


def test_all_pairs_every_pair_once_and_agrees_with_list_and_reference_modes(traces):
    x, ref = traces
    sel = [0, 2, 3, 5, 6]
    full = np.vstack([x, ref[None, :]])  # the reference as an extra roi (position 7)
    allp = coherence(_signals(full), all_pairs=True, roi_positions=sel + [7], roi_chunk=2, dtype="float64",
                     significance=None, **GRID).compute(scheduler="sync")
    got = sorted(zip(allp.index_a.values.tolist(), allp.index_b.values.tolist()))
    expect = [(a, b) for i, a in enumerate(sel + [7]) for b in (sel + [7])[i + 1:]]
    assert got == sorted(expect)  # each unordered pair exactly once, a before b
    listed = coherence(_signals(full), pairs=expect, dtype="float64", significance=None,
                       **GRID).compute(scheduler="sync")
    refm = coherence(_signals(x), reference=ref, roi_positions=sel, dtype="float64", significance=None,
                     **GRID).compute(scheduler="sync")
    by = allp.set_index(pair=["index_a", "index_b"])
    lst = listed.set_index(pair=["index_a", "index_b"]).sel(pair=by.pair)
    for name in ("coherence_mean", "phase_consistency", "lag"):
        np.testing.assert_allclose(by[name].values, lst[name].values, rtol=0, atol=1e-12)
    vs_ref = by.sel(pair=[(a, 7) for a in sel])
    np.testing.assert_allclose(vs_ref.coherence_mean.values, refm.coherence_mean.values, atol=1e-12)
    np.testing.assert_allclose(vs_ref.lag.values, refm.lag.values, atol=1e-9)
    _check_pair(allp, 0, full[int(allp.index_a[0])], full[int(allp.index_b[0])])


def test_time_blocks_with_halos_equal_one_block():
    rng = np.random.default_rng(3)
    n = 5000
    t = np.arange(n) * DT
    x = lfilter([1.0], [1.0, -0.7], rng.standard_normal((4, n)), axis=-1) + np.sin(2 * np.pi * t / 2)
    ref = np.sin(2 * np.pi * t / 2 + 1.0) + rng.standard_normal(n)
    sig = _signals(x, chunks=(2, 1000))
    kw = dict(min_period=0.4, max_period=3.0, dj=1 / 6, dtype="float64", significance=None, maps=True)
    one = coherence(sig, reference=ref, **kw).compute(scheduler="sync")
    blocks = coherence(sig, reference=ref, time_chunk=800, roi_chunk=3, **kw)
    assert blocks.attrs["time_blocks"] > 2 and blocks.attrs["halo"] > 0
    blocks = blocks.compute(scheduler="sync")
    for name in ("coherence", "coherence_mean", "phase_consistency", "lag"):
        assert float(np.nanmax(np.abs(blocks[name] - one[name]))) <= 1e-9, name
    pairs_one = coherence(sig, all_pairs=True, **kw).compute(scheduler="sync")
    pairs_blk = coherence(sig, all_pairs=True, time_chunk=800, **kw).compute(scheduler="sync")
    assert float(np.abs(pairs_blk.coherence_mean - pairs_one.coherence_mean).max()) <= 1e-9


def test_lag_sign_follows_the_stated_convention():
    t = np.arange(4000) * DT
    rng = np.random.default_rng(5)
    ref = np.sin(2 * np.pi * t / 4.0)
    lead = np.sin(2 * np.pi * (t + 0.8) / 4.0) + 0.2 * rng.standard_normal(t.size)  # leads by 0.8 s
    lag = np.sin(2 * np.pi * (t - 0.8) / 4.0) + 0.2 * rng.standard_normal(t.size)  # follows by 0.8 s
    ds = coherence(_signals(np.stack([lead, lag])), reference=ref, significance=None, **GRID)
    at4 = ds.sel(period=4.0, method="nearest").compute()
    assert at4.lag.values[0] == pytest.approx(0.8, abs=0.1)
    assert at4.lag.values[1] == pytest.approx(-0.8, abs=0.1)
    assert "positive when roi_a leads roi_b" in ds.lag.attrs["convention"] == LAG_CONVENTION


def test_given_thresholds_give_the_fraction_above_them(traces):
    x, ref = traces
    grid = period_grid(N, DT, **GRID)
    thr = np.linspace(0.3, 0.8, grid.n_scales)
    ds = coherence(_signals(x), reference=ref, significance=thr, maps=True, dtype="float64",
                   **GRID).compute(scheduler="sync")
    outside = (ds.period <= ds.coi).values
    above = (ds.coherence.values >= thr[None, :, None]) & outside[None]
    expect = above.sum(axis=-1) / outside.sum(axis=-1)
    np.testing.assert_allclose(ds.significant_fraction.values, expect, atol=1e-12)
    np.testing.assert_array_equal(ds.threshold.values, np.broadcast_to(thr, ds.threshold.shape))


def test_per_pair_thresholds_reach_their_own_pairs_across_chunks(traces):
    """Per-pair curves enter the graph once per distinct curve (repeats and a NaN row among
    them), each pair reading its own through several pair chunks."""
    from bioxen_dask.coherence import _distinct_rows

    x, ref = traces
    grid = period_grid(N, DT, **GRID)
    base = np.linspace(0.3, 0.8, grid.n_scales)
    thr = np.stack([base, base[::-1], base, np.full_like(base, np.nan), base[::-1], base + 0.1, base])
    rows, index = _distinct_rows(thr)
    assert len(rows) == 4 and index.dtype == np.int32
    np.testing.assert_array_equal(rows[index], thr)  # NaN rows included, bit for bit
    ds = coherence(_signals(x), reference=ref, significance=thr, maps=True, dtype="float64", roi_chunk=2,
                   **GRID).compute(scheduler="sync")
    outside = (ds.period <= ds.coi).values
    above = (ds.coherence.values >= thr[:, :, None]) & outside[None]
    expect = above.sum(axis=-1) / outside.sum(axis=-1)
    expect[3] = np.nan  # no threshold, no significant fraction
    np.testing.assert_allclose(ds.significant_fraction.values, expect, atol=1e-12)
    np.testing.assert_array_equal(ds.threshold.values, thr)


def test_ar1_significance_thresholds_are_shared_per_bucket(traces, tmp_path):
    x, ref = traces
    ds = coherence(_signals(x), reference=ref, mc_count=30, threshold_cache=tmp_path / "cache", **GRID)
    assert ds.threshold.dims == ("pair", "period")
    thr = ds.threshold.values
    assert np.all((thr > 0.2) & (thr < 1)), "AR(1) thresholds of squared coherence lie well inside (0, 1)"
    assert ds.attrs["mc_count"] == 30 and 1 <= ds.attrs["ar1_bucket_pairs"] <= x.shape[0]
    assert len({tuple(np.round(r, 12)) for r in thr}) == ds.attrs["ar1_bucket_pairs"]
    np.testing.assert_allclose(ds.ar1_a.values[4:], 0.6, atol=0.05)  # AR(1) 0.6 noise
    assert np.all(ds.ar1_a.values[:4] > 0.65)  # the sine makes those traces redder
    frac = ds.significant_fraction.sel(period=3.0, method="nearest").values
    assert np.all(frac[:4] > 0.5) and np.all(frac[4:] < 0.5)  # the four sine rois, not the noise
    again = coherence(_signals(x), reference=ref, mc_count=30, threshold_cache=tmp_path / "cache", **GRID)
    np.testing.assert_array_equal(again.threshold.values, thr)  # cached, identical


def test_store_reference_population_mean_and_provenance(tmp_path):
    from bioxen_dask.io import fingerprint, write_synthetic

    store = write_synthetic(tmp_path / "syn.zarr", n_rois=12, n_frames=1800, seed=3)
    ds = coherence(store, reference="stimulus", min_period=1, max_period=12, significance=None)
    assert ds.attrs["input_store"] == str(store) and ds.attrs["input_fingerprint"] == fingerprint(store)
    assert ds.attrs["reference"] == "stimulus" and set(ds.roi_b.values.tolist()) == {"stimulus"}
    assert ds.attrs["bioxen_dask_version"] and ds.attrs["mode"] == "reference"
    pm = coherence(store, reference="mean", rois=[0, 1, 2], min_period=1, max_period=12,
                   significance=None).compute()
    assert pm.sizes["pair"] == 3 and set(pm.roi_b.values.tolist()) == {"population_mean"}
    with pytest.raises(ValueError, match=r"not in the signals store; it holds \['stimulus'\]"):
        coherence(store, reference="behaviour", min_period=1, max_period=12)
    with pytest.raises(ValueError, match="one value per frame"):
        coherence(store, reference=np.zeros(10), min_period=1, max_period=12)


def test_constant_roi_gives_nan_with_one_warning_naming_it(traces):
    """No numerical warnings (0/0 is handled), one UserWarning naming the constant roi."""
    x, ref = traces
    y = x.copy()
    y[2] = 3.0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = coherence(_signals(y), reference=ref, mc_count=20, **GRID).compute(scheduler="sync")
    assert [type(w.message) for w in caught] == [UserWarning]
    assert "rois 102 (positions 2); their pairs are NaN" in str(caught[0].message)
    assert np.all(np.isnan(ds.coherence_mean.values[2])) and np.all(np.isnan(ds.significant_fraction.values[2]))
    assert np.all(np.isfinite(ds.coherence_mean.values[[0, 1, 3]]))
    assert ds.attrs["ar1_undefined"] == 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(), "choose exactly one pair mode"),
        (dict(reference="mean", all_pairs=True), "choose exactly one pair mode"),
        (dict(pairs=[(0, 1), (2, 9)]), r"pairs\[1\] = \(2, 9\): roi index 9 is out of range"),
        (dict(all_pairs=True, rois=[101, 70]), "rois: roi id 70 is not in the signals"),
        (dict(all_pairs=True, roi_positions=[1, 70]), "roi_positions: roi index 70 is out of range"),
        (dict(reference="mean", min_period=0.1), "below the Nyquist period"),
        (dict(reference="mean", max_period=500.0), "longer than the record"),
        (dict(reference="mean", min_period=5, max_period=2), "must be smaller than max_period"),
        (dict(reference="mean", boundary="valid"), "not offered"),
        (dict(reference="mean", significance="fourier"), "significance must be"),
        (dict(reference="mean", significance=np.ones(3)), "thresholds must have shape"),
        (dict(reference="mean", method="fastest"), r"unknown method 'fastest'; choose one of \['exact', 'multirate'\]"),
        (dict(reference="mean", method="multirate", dtype="float64"), "computes in float32"),
        (dict(reference="mean", method="multirate", wavelet="paul"), "supports the Morlet wavelet"),
        (dict(reference="mean", method="multirate", device="gpu"), "runs on the CPU"),
    ],
)
def test_bad_requests_fail_before_computing(traces, kwargs, message):
    x, _ = traces
    sig = _signals(x)
    kw = {**GRID, **kwargs}
    with dask.config.set(scheduler=_no_compute):
        with pytest.raises(ValueError, match=message):
            coherence(sig, **kw)


def _no_compute(*args, **kwargs):  # pragma: no cover - only runs on a bug
    raise AssertionError("a bad request started a computation")


def test_a_dt_that_contradicts_the_time_coordinate_is_refused(traces):
    x, ref = traces
    with pytest.raises(ValueError, match=r"dt=0.5 contradicts the signals' time coordinate \(steps of 0.1\)"):
        coherence(_signals(x), reference=ref, dt=0.5, significance=None, **GRID)
    same = coherence(_signals(x), reference=ref, dt=DT, significance=None, **GRID)
    assert same.attrs["dt"] == pytest.approx(DT)


def test_pair_table_and_period_grid():
    assert pair_table(np.array([[0.0, 1.0]]), 2).dtype == np.int64
    with pytest.raises(ValueError, match="non-empty list"):
        pair_table([1, 2, 3], 4)
    g = period_grid(18000, 1 / 30, min_period=0.5, max_period=30)
    assert g.periods[0] == pytest.approx(0.5) and 30 <= g.periods[-1] < 30 * 2 ** (1 / 12)


def _multirate_equals_exact(exact, multi, *, map_tol=1e-5):
    """The float32 exact and multirate results of the same request agree to float32 rounding."""
    assert multi.attrs["method"] == "multirate" and exact.attrs["method"] == "exact"
    assert float(np.abs(multi.coherence_mean - exact.coherence_mean).max()) <= 1e-5
    assert float(np.abs(multi.phase_consistency - exact.phase_consistency).max()) <= 1e-4
    keep = exact.phase_consistency.values > 0.1  # where the mean phase is defined
    dphi = np.angle(np.exp(1j * (multi.phase_mean.values - exact.phase_mean.values)))[keep]
    assert keep.sum() > 10 and np.abs(dphi).max() <= 1e-3
    if "significant_fraction" in exact:  # a sample within rounding of its threshold may flip
        assert float(np.abs(multi.significant_fraction - exact.significant_fraction).max()) <= 2e-3
    if "coherence" in exact:
        assert float(np.nanmax(np.abs(multi.coherence - exact.coherence))) <= map_tol
        assert np.array_equal(np.isnan(multi.coherence.values), np.isnan(exact.coherence.values))
        big = (exact.coherence.values > 0.05)
        dphi = np.angle(np.exp(1j * (multi.phase.values - exact.phase.values)))[big]
        assert np.abs(dphi).max() <= 2e-2


@pytest.mark.parametrize("mode", ["reference", "pairs", "all_pairs"])
def test_multirate_method_equals_exact_in_every_mode(traces, mode):
    x, ref = traces
    kw = {"reference": dict(reference=ref), "pairs": dict(pairs=[(0, 5), (3, 1), (6, 2)]),
          "all_pairs": dict(all_pairs=True, roi_positions=[0, 2, 5])}[mode]
    thr = np.full(31, 0.6)
    common = dict(**GRID, **kw, significance=thr, maps=True, roi_chunk=3, pair_chunk=2)
    exact = coherence(_signals(x), **common).compute(scheduler="sync")
    multi = coherence(_signals(x), method="multirate", **common).compute(scheduler="sync")
    assert multi.sizes == exact.sizes and multi.sizes["period"] == 31
    _multirate_equals_exact(exact, multi)


def test_multirate_method_with_time_blocks_gaps_and_grinsted_mean_removal():
    """Halo'd time blocks, interpolated gaps (masked the same), no normalisation and Grinsted's
    preset (its mean removal in each block, its scale kernel): still the exact path's numbers."""
    rng = np.random.default_rng(8)
    n = 5000
    t = np.arange(n) * DT
    x = lfilter([1.0], [1.0, -0.7], rng.standard_normal((4, n)), axis=-1) + np.sin(2 * np.pi * t / 2) + 3.0
    x[1, 2000:2004] = np.nan
    ref = np.sin(2 * np.pi * t / 2 + 1.0) + rng.standard_normal(n)
    kw = dict(reference=ref, min_period=0.4, max_period=3.0, dj=1 / 6, significance=None, maps=True,
              nan_policy="interpolate", max_gap=1.0, normalize=False, preset="grinsted", boundary="linear")
    for blocks in (dict(), dict(time_chunk=800, roi_chunk=3)):
        exact = coherence(_signals(x, chunks=(2, 1000)), **kw, **blocks)
        multi = coherence(_signals(x, chunks=(2, 1000)), method="multirate", **kw, **blocks)
        assert multi.attrs["time_blocks"] == exact.attrs["time_blocks"]
        _multirate_equals_exact(exact.compute(scheduler="sync"), multi.compute(scheduler="sync"))
    assert multi.attrs["time_blocks"] > 2
    assert np.isnan(multi.coherence.values[1, :, 2001]).any()  # the gap is masked
