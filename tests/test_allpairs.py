"""All-pairs coherence by tiles of rois: each roi's share once per tile, pairs equal to one-pair paths."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pycwt
import pytest
import xarray as xr
from scipy.signal import lfilter

from bioxen_dask import wavelet_coherence
from bioxen_dask.coherence import _all_pairs_tile, coherence
from bioxen_dask.kernels import _coherence_map
from bioxen_dask.kernels._coherence_map import coherence_plan
from bioxen_dask.sample_data import load_ao_baltic, load_ecg


def _signals(x, dt, chunks=None):
    data = da.from_array(x, chunks=chunks or x.shape)
    return xr.DataArray(data, dims=("roi", "time"),
                        coords={"roi": np.arange(x.shape[0]), "time": np.arange(x.shape[1]) * dt})


def _ecg_population():
    """Rois made of PyWavelets' ECG (a real record): itself, delayed, filtered, reversed, with
    AR(1) noise, and one AR(1) trace alone."""
    ecg, dt = load_ecg()
    rng = np.random.default_rng(5)
    noise = lfilter([1.0], [1.0, -0.6], rng.standard_normal((2, ecg.size)), axis=-1)
    x = np.stack([ecg, np.roll(ecg, 9), lfilter([1.0], [1.0, -0.8], ecg), ecg[::-1].copy(),
                  ecg + 0.3 * noise[0], noise[1]])
    return x, dt


def _reductions(R2, phase, period, coi):
    outside = period[:, None] <= coi[None, :]
    count = outside.sum(axis=1)
    z = np.where(outside, np.exp(1j * phase), 0).sum(axis=1) / count
    return np.where(outside, R2, 0).sum(axis=1) / count, z


def test_multirate_tiles_equal_the_one_pair_multirate_path_on_a_real_record(monkeypatch):
    """The ECG population in tiles of 2 rois (diagonal, off-diagonal and a one-roi block), at
    360 Hz from 2 dt (so the small-scale tiles run too): every pair's maps and reductions equal
    wavelet_coherence(method='multirate') of that pair, and each task computes each of its
    rois' shares exactly once."""
    x, dt = _ecg_population()
    calls = []
    share = _coherence_map.MultirateCoherence.share

    def counting(self, v, **kw):
        calls.append(np.asarray(v).copy())
        return share(self, v, **kw)

    monkeypatch.setattr(_coherence_map.MultirateCoherence, "share", counting)
    ds = coherence(_signals(x, dt), all_pairs=True, method="multirate", roi_chunk=2, maps=True,
                   significance=None, max_period=0.5).compute(scheduler="sync")
    assert coherence_plan(_grid_of(ds, dt), x.shape[1]).small is not None  # fused tiles and bands
    n_rois = x.shape[0]
    assert ds.sizes["pair"] == n_rois * (n_rois - 1) // 2
    # tasks: blocks {0,1} {2,3} {4,5}: 3 diagonal tiles of 2 rois, 3 off-diagonal of 4
    assert len(calls) == 3 * 2 + 3 * 4
    monkeypatch.undo()
    for k in range(ds.sizes["pair"]):
        a, b = int(ds.index_a[k]), int(ds.index_b[k])
        w = wavelet_coherence(x[a], x[b], dt, method="multirate", s0=float(ds.scale[0]),
                              J=ds.sizes["period"] - 1, dj=float(ds.attrs["dj"]))
        p = ds.isel(pair=k)
        assert float(np.abs(p.coherence.values - w.coherence.values).max()) <= 2e-6
        big = w.coherence.values > 0.05
        assert np.abs(np.angle(np.exp(1j * (p.phase.values - w.phase.values))))[big].max() <= 1e-4
        mean, z = _reductions(w.coherence.values, w.phase.values, w.period.values, w.coi.values)
        assert np.abs(p.coherence_mean.values - mean).max() <= 2e-6
        assert np.abs(p.phase_consistency.values - np.abs(z)).max() <= 1e-4


def test_multirate_tiles_without_maps_equal_the_one_pair_reductions_on_a_real_record():
    """Reductions only (no maps: coherence summed band by band over the COI ranges, phase sums
    as one product per scale of the rois' exact unit phasors): the ECG population in tiles of 2
    (small-scale tiles and bands), with a threshold, equals the tiles with maps (the one-pair
    maps, previous test) and the reductions of wavelet_coherence(method='multirate') pair by pair."""
    x, dt = _ecg_population()
    kw = dict(all_pairs=True, method="multirate", roi_chunk=2, max_period=0.5)
    with_maps = coherence(_signals(x, dt), maps=True, significance=None, **kw).compute(scheduler="sync")
    thr = np.full(with_maps.sizes["period"], 0.6)
    with_maps = coherence(_signals(x, dt), maps=True, significance=thr, **kw).compute(scheduler="sync")
    fused = coherence(_signals(x, dt), significance=thr, **kw).compute(scheduler="sync")
    assert "coherence" not in fused and (fused.index_a == with_maps.index_a).all()
    assert float(np.abs(fused.coherence_mean - with_maps.coherence_mean).max()) <= 1e-6
    assert float(np.abs(fused.phase_consistency - with_maps.phase_consistency).max()) <= 2e-6
    np.testing.assert_array_equal(fused.coi_samples, with_maps.coi_samples)
    frac = np.abs(fused.significant_fraction - with_maps.significant_fraction).values
    assert frac.max() <= 1.0 / fused.coi_samples.values.min() and np.mean(frac > 0) < 0.01  # ties at the threshold
    for k in (0, 4, 9, 14):
        a, b = int(fused.index_a[k]), int(fused.index_b[k])
        w = wavelet_coherence(x[a], x[b], dt, method="multirate", s0=float(fused.scale[0]),
                              J=fused.sizes["period"] - 1, dj=float(fused.attrs["dj"]))
        mean, z = _reductions(w.coherence.values, w.phase.values, w.period.values, w.coi.values)
        assert np.abs(fused.coherence_mean.values[k] - mean).max() <= 2e-6
        assert np.abs(fused.phase_consistency.values[k] - np.abs(z)).max() <= 2e-5


def _grid_of(ds, dt):
    from bioxen_dask.grid import make_grid

    return make_grid(ds.attrs["n_samples"], dt, dj=float(ds.attrs["dj"]), s0=float(ds.scale[0]),
                     J=ds.sizes["period"] - 1)


def test_multirate_tiles_equal_the_float64_exact_path_on_lagged_sines():
    """Synthetic rois sharing a 3 s rhythm at known lags, in tiles of 3: the multirate tiles'
    reductions equal the float64 exact all-pairs reductions, and the lag between two planted
    rois is their delay."""
    rng = np.random.default_rng(2)
    n, dt = 4000, 0.05
    t = np.arange(n) * dt
    lags = [0.0, 0.3, 0.6, 0.9]
    x = lfilter([1.0], [1.0, -0.6], rng.standard_normal((7, n)), axis=-1)
    x[:4] += 2 * np.sin(2 * np.pi * (t[None, :] - np.asarray(lags)[:, None]) / 3.0)
    kw = dict(all_pairs=True, min_period=0.5, max_period=10, significance=None)
    multi = coherence(_signals(x, dt, chunks=(3, n)), method="multirate", roi_chunk=3, **kw).compute(scheduler="sync")
    exact = coherence(_signals(x, dt), dtype="float64", **kw).compute(scheduler="sync")
    multi, exact = (_by_pair(v) for v in (multi, exact))  # the tiles order the pairs their own way
    assert float(np.abs(multi.coherence_mean - exact.coherence_mean).max()) <= 1e-5
    assert float(np.abs(multi.phase_consistency - exact.phase_consistency).max()) <= 1e-4
    at3 = multi.sel(period=3.0, method="nearest")
    k = int(np.flatnonzero((multi.index_a.values == 0) & (multi.index_b.values == 3))[0])
    assert float(at3.coherence_mean[k]) > 0.8
    assert float(at3.lag[k]) == pytest.approx(0.9, abs=0.05)  # roi 0 leads roi 3 by 0.9 s


def _by_pair(ds):
    return ds.isel(pair=np.lexsort((ds.index_b.values, ds.index_a.values)))


def test_exact_all_pairs_with_the_pycwt_boundary_equal_pycwt_wct_pair_by_pair():
    """Rois from the AO index and the Baltic ice extent (pycwt's real sample series): every
    all-pairs map equals pycwt.wct of the pair (its default grid, boundary='pycwt')."""
    _, ao, baltic = load_ao_baltic()
    rng = np.random.default_rng(1)
    x = np.stack([ao, baltic, ao + 0.5 * rng.standard_normal(ao.size), np.roll(baltic, 3)])
    ds = coherence(_signals(x, 1.0), all_pairs=True, boundary="pycwt", dtype="float64", maps=True,
                   significance=None, roi_chunk=2).compute(scheduler="sync")
    for k in range(ds.sizes["pair"]):
        a, b = int(ds.index_a[k]), int(ds.index_b[k])
        WCT, aWCT, coi, freq, _ = pycwt.wct(x[a], x[b], 1.0, sig=False)
        assert WCT.shape == ds.coherence.shape[1:]
        np.testing.assert_allclose(ds.coherence.values[k], np.clip(WCT, 0, 1), atol=1e-10)
        big = WCT > 0.05
        dphi = np.angle(np.exp(1j * (ds.phase.values[k] - aWCT)))
        assert np.abs(dphi[big]).max() <= 1e-9


def test_tile_size_keeps_a_task_within_block_bytes():
    """Rois per block from block_bytes: two blocks' shares and one pair's arrays fit."""
    from bioxen_dask.coherence import period_grid

    grid = period_grid(18000, 1 / 30, min_period=0.5, max_period=30)
    row = coherence_plan(grid, 18000).share_bytes()
    assert 6e6 < row < 12e6  # transforms on the decimated grids + the smoothed power (~9 MB)
    for budget in (128 * 2**20, 512 * 2**20, 4 * 2**30):
        tile = _all_pairs_tile(grid, 18000, "pycwt", 1e-10, "multirate", budget, 0)
        pair = grid.n_scales * 18000 * 20
        assert 2 * tile * row + pair <= budget < 2 * (tile + 1) * row + pair or tile == 256
    assert _all_pairs_tile(grid, 18000, "pycwt", 1e-10, "multirate", 512 * 2**20, 0) >= 20


# --- connectivity matrices ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def planted():
    """7 rois, 4 of them sharing a 3 s rhythm at lags 0, 0.3, 0.6, 0.9 s, and the all-pairs
    result (tiles of 3 rois: diagonal and off-diagonal chunks)."""
    rng = np.random.default_rng(2)
    n, dt = 3000, 0.05
    t = np.arange(n) * dt
    x = lfilter([1.0], [1.0, -0.6], rng.standard_normal((7, n)), axis=-1)
    x[:4] += 2 * np.sin(2 * np.pi * (t[None, :] - np.array([0.0, 0.3, 0.6, 0.9])[:, None]) / 3.0)
    sig = _signals(x, dt, chunks=(3, n)).assign_coords(roi=np.arange(10, 17))
    ds = coherence(sig, all_pairs=True, roi_positions=[6, 0, 1, 2, 3, 4, 5], min_period=0.5, max_period=10,
                   significance=np.full(53, 0.5), roi_chunk=3)
    return x, ds


def test_connectivity_matrices_hold_each_pair_symmetric_and_lag_antisymmetric(planted):
    from bioxen_dask.connectivity import connectivity

    _, ds = planted
    pairs = ds.compute(scheduler="sync")
    conn = connectivity(ds, block=2).compute(scheduler="sync")  # blocks cut across the tiles
    assert conn.coherence_mean.dims == ("roi_i", "roi_j", "period") and conn.sizes["roi_i"] == 7
    assert conn.roi_i.values.tolist() == list(range(10, 17))
    for k in range(pairs.sizes["pair"]):
        i, j = int(pairs.index_a[k]), int(pairs.index_b[k])
        for v in ("coherence_mean", "phase_consistency", "significant_fraction"):
            np.testing.assert_allclose(conn[v].values[i, j], pairs[v].values[k], rtol=1e-6, atol=1e-7)
            np.testing.assert_array_equal(conn[v].values[i, j], conn[v].values[j, i])
        for v in ("phase_mean", "lag"):
            np.testing.assert_allclose(conn[v].values[i, j], pairs[v].values[k], rtol=1e-6, atol=1e-7)
            np.testing.assert_array_equal(conn[v].values[j, i], -conn[v].values[i, j])
    d = np.arange(7)
    assert (conn.coherence_mean.values[d, d] == 1).all() and (conn.lag.values[d, d] == 0).all()
    assert np.isnan(conn.significant_fraction.values[d, d]).all()


def test_band_matrices_equal_the_coi_weighted_means_and_round_trip_through_zarr(planted, tmp_path):
    from bioxen_dask.connectivity import band_matrix, connectivity, write_connectivity
    from bioxen_dask.datasets import verify_result

    _, ds = planted
    conn = connectivity(ds, bands={"rhythm": (2.5, 3.5), "slow": (5, 10)})
    path = tmp_path / "conn.zarr"
    write_connectivity(conn, path)
    assert verify_result(path)
    pairs = ds.compute(scheduler="sync")
    keep = (pairs.period >= 2.5) & (pairs.period <= 3.5)
    w = pairs.coi_samples.where(keep, 0).values.astype(float)
    m = band_matrix(path, "rhythm").values
    lag = band_matrix(path, "rhythm", "lag").values
    for k in range(pairs.sizes["pair"]):
        i, j = int(pairs.index_a[k]), int(pairs.index_b[k])
        assert m[i, j] == pytest.approx((pairs.coherence_mean.values[k] * w).sum() / w.sum(), rel=1e-5)
        assert m[j, i] == m[i, j] and lag[j, i] == -lag[i, j]
    assert m[0, 3] > 0.8 and m[0, 5] < 0.5  # planted against planted, against noise
    mid = float(np.exp(np.log(pairs.period.values[keep.values]).mean()))
    assert lag[0, 3] == pytest.approx(0.9, abs=0.05) and mid == pytest.approx(3.0, rel=0.1)
    # a band not stored is reduced on the fly, with the same numbers
    np.testing.assert_allclose(band_matrix(conn, (2.5, 3.5)).values, m, rtol=1e-6)
    with pytest.raises(ValueError, match="band 'fast' is not stored"):
        band_matrix(path, "fast")
    with pytest.raises(ValueError, match="holds no period of the grid"):
        connectivity(ds, bands={"none": (40, 50)})


def test_connectivity_of_a_pair_list_leaves_the_missing_pairs_nan(planted):
    from bioxen_dask.connectivity import connectivity

    x, _ = planted
    ds = coherence(_signals(x, 0.05), pairs=[(0, 3), (5, 1)], min_period=0.5, max_period=10, significance=None)
    conn = connectivity(ds).compute(scheduler="sync")
    assert conn.index.values.tolist() == [0, 1, 3, 5]
    c = conn.coherence_mean.values[..., 20]
    assert np.isfinite(c[0, 2]) and c[0, 2] == c[2, 0] and np.isfinite(c[3, 1]) and np.isnan(c[0, 1])
    with pytest.raises(ValueError, match="reference-mode result"):
        connectivity(coherence(_signals(x, 0.05), reference=x[0], min_period=0.5, max_period=10, significance=None))


# --- significance in all-pairs mode ---------------------------------------------------------------
def test_fdr_bh_equals_the_step_up_rule_and_statsmodels_style_reference():
    from bioxen_dask.significance import fdr_bh

    rng = np.random.default_rng(4)
    p = np.concatenate([rng.uniform(0, 1, 900), rng.uniform(0, 1e-3, 100)])
    got = fdr_bh(p, 0.05)
    # the step-up rule written out: largest k with p_(k) <= 0.05 k / m
    s = np.sort(p)
    k = np.flatnonzero(s <= 0.05 * np.arange(1, p.size + 1) / p.size).max() + 1
    assert got.sum() == k and (p[got].max() <= s[k - 1]) and (p[~got].min() > s[k - 1] or k == p.size)
    grid = fdr_bh(p.reshape(10, 100), 0.05)  # any shape, one family
    assert np.array_equal(grid.ravel(), got)
    assert not fdr_bh(rng.uniform(0.2, 1, 50), 0.05).any()
    with pytest.raises(ValueError, match="alpha must be in"):
        fdr_bh(p, 1.5)
    with pytest.raises(ValueError, match=r"p-values must lie in \[0, 1\]"):
        fdr_bh([0.1, 2.0])


def test_all_pairs_p_values_are_calibrated_under_the_null_and_find_the_planted_pairs(tmp_path):
    """AR(1) rois (two AR(1) coefficients: bucket pairs shared) plus three sharing a 4 s rhythm:
    the p-values of null pairs are uniform-ish (share below 0.1 near 0.1), the planted pairs'
    are the smallest possible, and BH at 5% across the pairs finds them and little else."""
    from bioxen_dask.significance import fdr_bh

    rng = np.random.default_rng(12)
    n, dt = 1024, 0.1
    t = np.arange(n) * dt
    g = np.array([0.3, 0.3, 0.3, 0.5, 0.5, 0.5, 0.3, 0.5, 0.3, 0.5])
    x = np.stack([lfilter([1.0], [1.0, -gi], rng.standard_normal(n)) for gi in g])
    x[:3] += 1.5 * np.sin(2 * np.pi * (t[None, :] - np.array([0, 0.4, 0.8])[:, None]) / 4.0)
    # 45 pairs: BH at 5% can pass 3 discoveries only if 1 / (mc_count + 1) <= 0.05 * 3 / 45
    ds = coherence(_signals(x, dt), all_pairs=True, min_period=1, max_period=8, dj=1 / 4, mc_count=299,
                   p_values=True, threshold_cache=tmp_path, roi_chunk=4).compute(scheduler="sync")
    assert ds.p_value.dims == ("pair", "period")
    assert ds.attrs["p_value_bucket_pairs"] == ds.attrs["ar1_bucket_pairs"] < ds.sizes["pair"]  # shared nulls
    j = int(np.argmin(np.abs(ds.period.values - 4.0)))
    planted = (ds.index_a.values < 3) & (ds.index_b.values < 3)
    p4 = ds.p_value.values[:, j]
    assert (p4[planted] == 1 / 300).all()  # above every one of the 299 surrogates
    null = ds.p_value.values[~planted]
    assert 0.03 < np.mean(null <= 0.1) < 0.2 and 0.35 < np.mean(null <= 0.5) < 0.65
    hits = fdr_bh(p4, 0.05)
    assert hits[planted].all() and hits[~planted].sum() <= 2
    with pytest.raises(ValueError, match="p_values=True needs significance='ar1'"):
        coherence(_signals(x, dt), all_pairs=True, min_period=1, max_period=8, significance=None, p_values=True)


def test_beta_tail_p_values_follow_the_null_and_agree_with_the_monte_carlo_ranks():
    """A null drawn from a known beta (the shape of a time-averaged coherence): the fitted
    tail equals the true tail, in the bulk and far beyond the surrogates."""
    from scipy.stats import beta

    from bioxen_dask.coherence import _beta_tail
    from bioxen_dask.significance import pvalues_from_null

    rng = np.random.default_rng(0)
    a, b = 40.0, 160.0  # mean 0.2, sd 0.028
    null = beta.rvs(a, b, size=(300, 2), random_state=rng)
    x = np.array([[0.2, 0.2], [0.25, 0.25], [0.3, 0.3], [0.35, 0.35]])
    got, true, mc = _beta_tail(null, x), beta.sf(x, a, b), pvalues_from_null(null, x)
    np.testing.assert_allclose(got[:2], true[:2], atol=0.08)  # 300 draws: the fit has ~0.03 of noise
    assert np.all(np.abs(np.log10(got[2:]) - np.log10(true[2:])) < 0.75)  # within 5x at 1e-3 .. 1e-6
    assert np.abs(got[:2] - mc[:2]).max() < 0.05
    assert (got[3] < 1 / 301).all() and (mc[3] == 1 / 301).all()  # beyond every surrogate


def test_demo_all_pairs_recovers_the_planted_networks(tmp_path):
    """`bioxen-dask demo --all-pairs` (small): the networks' pairs are found at their periods,
    with their lags, and the outputs (pairs, connectivity store, figure, summary) are written."""
    import json

    from bioxen_dask.cli import main
    from bioxen_dask.datasets import verify_result

    out = tmp_path / "demo"
    assert main(["demo", "--all-pairs", "--out", str(out), "--rois", "24", "--frames", "4500", "--surrogates", "20",
                 "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["recall"] >= 0.9 and summary["precision"] >= 0.9
    assert {n["period_s"] for n in summary["networks"]} == {2.0, 5.0, 10.0}
    assert all(n["lag_error_s"]["median"] < 0.25 * n["period_s"] for n in summary["networks"])
    assert verify_result(out / "connectivity.zarr") and (out / "connectivity.png").stat().st_size > 10_000
