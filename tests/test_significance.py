"""Monte Carlo coherence significance: exactness of the fast engine, agreement with pycwt,
calibration under the null, per-point thresholds and p-values.

Tolerances are derived from Monte Carlo standard errors estimated by a jackknife over groups
of surrogates (``_jackknife``); every seed is fixed, so every test is deterministic.
"""

from __future__ import annotations

import numpy as np
import pycwt
import pytest
from scipy.signal import lfilter

from bioxen_dask import compat
from bioxen_dask.grid import ScaleGrid, make_grid
from bioxen_dask.kernels import Smoother, coherence, cwt
from bioxen_dask.significance import (
    AR1Null,
    FourierNull,
    IAAFTNull,
    ar1_thresholds,
    levels_from_histograms,
    outside_coi_mask,
    pointwise_levels,
    pvalues_from_null,
    rednoise,
    surrogate_length,
    surrogate_significance,
)
from bioxen_dask.significance._api import make_spec
from bioxen_dask.significance._montecarlo import merge_partials
from bioxen_dask.significance._multirate import MultiratePlan

Z = 4.5  # standard errors allowed per scale (deterministic seeds; ~20-40 scales per test)


def _jackknife(spec, mc_count: int, groups: int, level: float = 0.95):
    """Pooled thresholds of ``spec`` and their jackknife standard errors over surrogate groups."""
    edges = np.linspace(0, mc_count, groups + 1).astype(int)
    parts = [spec.run(a, b) for a, b in zip(edges[:-1], edges[1:])]
    w = spec.class_weights()[:, :, None]
    total = np.sum([p.counts for p in parts], axis=0)  # integer counts, as the stage sums them
    theta = levels_from_histograms((total * w).sum(1), [level])[0]
    loo = np.array([levels_from_histograms(((total - p.counts) * w).sum(1), [level])[0] for p in parts])
    se = np.sqrt((groups - 1) / groups * ((loo - loo.mean(axis=0)) ** 2).sum(axis=0))
    return theta, se, parts


def _pycwt_grid(n: int, dj: float) -> tuple[float, float, int]:
    s0 = 2.0 / pycwt.Morlet().flambda()
    return s0, dj, int(round(np.log2(n / s0) / dj))


# ---------------------------------------------------------------------------------------------
# the multirate engine is exact where it claims to be


@pytest.mark.parametrize("boundary", ["pycwt", "linear"])
def test_multirate_decimated_coherence_equals_full_rate(boundary):
    """Every scale computed on its decimated grid equals the full-rate coherence (float32)."""
    grid = make_grid(1000, 1.0)
    N = surrogate_length(grid)
    plan = MultiratePlan(grid, N, boundary=boundary, interior=None)
    assert max(g.D for fr in plan.frames for g in fr.groups) >= 64  # large scales really are decimated
    rng = np.random.default_rng(4)
    x1, x2 = rednoise(N, 0.7, rng=rng), rednoise(N, 0.2, rng=rng)
    sm = Smoother(grid, scale_kernel="pycwt", boundary=boundary)
    kw = dict(boundary=boundary, dtype="float64")
    ref, _ = coherence(cwt(x1, grid, **kw), cwt(x2, grid, **kw), sm, clip=False)
    outside = outside_coi_mask(grid, N)
    # 'linear' frames differ in length, which changes the smallest scales' wavelets: pycwt's
    # Morlet is cut at the Nyquist frequency there (its band reaches pi for scales < 3.6 dt),
    # giving a slowly decaying time-domain tail that depends on the FFT length. Compare
    # 'linear' from the first scale whose whole smoothing window is clear of Nyquist.
    nyq_free = grid.scales / grid.dt * np.pi - 6.0 > 5.3
    first_ok = 0 if boundary == "pycwt" else int(np.argmax(nyq_free)) + 7
    worst, checked = 0.0, 0
    for (j0, j1), t, r2 in plan.coherence_rows(x1, x2):
        for j in range(max(j0, first_ok), j1):
            m = outside[j, t]
            worst = max(worst, float(np.abs(r2[j - j0][m] - ref[j, t[m]]).max()))
            checked += int(m.sum())
    assert checked > 10_000
    assert worst < 2e-5, worst


def test_short_records_reproduce_the_full_record_histogram():
    """Stationarity shortcut: a short-record run estimates the same thresholds (paired jackknife)."""
    grid = make_grid(1000, 1.0, dj=0.25)
    mc, G = 160, 16
    kw = dict(mc_count=mc, seed=11, scale_kernel="pycwt", boundary="pycwt", engine="multirate")
    full = make_spec(grid, AR1Null(0.8, 0.3), interior=None, **kw)
    short = make_spec(grid, AR1Null(0.8, 0.3), interior=16, **kw)
    assert not all(fr.full for fr in short.plan().frames)  # the shortcut is exercised
    th_f, _, parts_f = _jackknife(full, mc, G)
    th_s, _, parts_s = _jackknife(short, mc, G)
    # paired jackknife of the difference (same surrogates in both runs)
    wf, ws = full.class_weights()[:, :, None], short.class_weights()[:, :, None]
    Tf = np.sum([p.counts for p in parts_f], axis=0)
    Ts = np.sum([p.counts for p in parts_s], axis=0)
    d_loo = np.array([levels_from_histograms(((Ts - ps.counts) * ws).sum(1), [0.95])[0]
                      - levels_from_histograms(((Tf - pf.counts) * wf).sum(1), [0.95])[0]
                      for ps, pf in zip(parts_s, parts_f)])
    se_d = np.sqrt((G - 1) / G * ((d_loo - d_loo.mean(0)) ** 2).sum(0))
    d = th_s - th_f
    ok = np.isfinite(d)
    assert ok.sum() == grid.n_scales
    assert np.all(np.abs(d[ok]) <= Z * se_d[ok] + 1e-3), (d, se_d)


# ---------------------------------------------------------------------------------------------
# agreement with pycwt's wct_significance


def _fixed_rednoise(N, g, a=1.0):
    """pycwt's rednoise with its axis bug fixed (it filters a length-1 axis: white noise)."""
    tau = int(np.ceil(-2 / np.log(np.abs(g))))
    return lfilter([1, 0], [1, -g], np.random.randn(N + tau) * a)[tau:]


def test_pycwt_rednoise_is_white():
    """Why the red-noise comparison patches pycwt: its 'AR(1)' surrogates have no memory."""
    from pycwt.helpers import rednoise as pycwt_rednoise

    np.random.seed(0)
    y = pycwt_rednoise(20_000, 0.8)
    assert abs(np.corrcoef(y[:-1], y[1:])[0, 1]) < 0.03
    np.random.seed(0)
    y = _fixed_rednoise(20_000, 0.8)
    assert np.corrcoef(y[:-1], y[1:])[0, 1] > 0.75


@pytest.mark.parametrize("case", ["white", "red"])
def test_agrees_with_pycwt_wct_significance(case, monkeypatch, tmp_path):
    """compat.wct_significance (and a short-record run) vs pycwt, 300 surrogates each.

    Tolerance per scale: Z * sqrt(se_ours**2 + se_pycwt**2) + 1/nbins, with the standard errors
    from a jackknife over 15 groups of our surrogates (pycwt's estimator has the standard
    error of our whole-record one). Checked at every scale both define.
    """
    monkeypatch.setenv("BIOXEN_DASK_CACHE", str(tmp_path))
    n, mc = 64, 300
    s0, dj, J = _pycwt_grid(n, 0.25)
    if case == "white":  # unpatched pycwt: white-noise surrogates whatever the coefficients
        g_pycwt, g_ours = (0.5, 0.3), (0.0, 0.0)
    else:
        monkeypatch.setattr(pycwt.wavelet, "rednoise", _fixed_rednoise)
        g_pycwt = g_ours = (0.7, 0.4)
    np.random.seed(1234)
    ref = pycwt.wct_significance(*g_pycwt, 1.0, dj, s0, J, wavelet=pycwt.Morlet(), mc_count=mc,
                                 progress=False, cache=False)
    ours = compat.wct_significance(*g_ours, 1.0, dj, s0, J, mc_count=mc, progress=False, cache=False, seed=99)
    grid = ScaleGrid.from_s0(1.0, s0, dj, J)
    spec = make_spec(grid, AR1Null(*g_ours), mc_count=mc, seed=99, interior=None)
    th_full, se_full, _ = _jackknife(spec, mc, 15)
    np.testing.assert_array_equal(ours, th_full)  # compat runs this very stage
    short = make_spec(grid, AR1Null(*g_ours), mc_count=mc, seed=99, interior=4)
    assert not all(fr.full for fr in short.plan().frames)
    th_short, se_short, _ = _jackknife(short, mc, 15)
    both = np.isfinite(ref) & (ref > 0) & np.isfinite(ours)
    assert both.sum() >= grid.n_scales - 2  # pycwt leaves its largest valid scale NaN
    for mine, se in ((th_full, se_full), (th_short, se_short)):
        tol = Z * np.sqrt(se**2 + se_full**2) + 1e-3
        assert np.all(np.abs(mine - ref)[both] <= tol[both]), (np.abs(mine - ref) / tol)[both].max()


def test_compat_wct_sig_uses_the_stage():
    rng = np.random.default_rng(9)
    a, b = rednoise(200, 0.6, rng=rng), rednoise(200, 0.3, rng=rng)
    *_, sig = compat.wct(a, b, 1.0, dj=0.25, sig=True, mc_count=12, seed=4, cache=False, progress=False)
    grid = make_grid(200, 1.0, dj=0.25)
    g1, g2 = compat.ar1(a)[0], compat.ar1(b)[0]
    np.testing.assert_array_equal(sig, ar1_thresholds(grid, g1, g2, mc_count=12, seed=4, scheduler="sync"))


def test_red_and_white_nulls_differ_on_this_grid():
    """The comparison above can fail: AR(1) 0.9 and white-noise thresholds differ by more
    than its tolerance at some scale."""
    grid = ScaleGrid.from_s0(1.0, *_pycwt_grid(64, 0.25))
    red = make_spec(grid, AR1Null(0.9, 0.9), mc_count=300, seed=3, interior=None)
    white = make_spec(grid, AR1Null(0.0, 0.0), mc_count=300, seed=4, interior=None)
    th_r, se_r, _ = _jackknife(red, 300, 15)
    th_w, se_w, _ = _jackknife(white, 300, 15)
    tol = Z * np.sqrt(se_r**2 + se_w**2) + 1e-3
    assert np.nanmax(np.abs(th_r - th_w) - tol) > 0


# ---------------------------------------------------------------------------------------------
# calibration under the null


def _coherence_fields(pairs, grid, boundary="pycwt"):
    sm = Smoother(grid, scale_kernel="pycwt", boundary=boundary)
    kw = dict(boundary=boundary, dtype="float32")
    return np.stack([coherence(cwt(a, grid, **kw), cwt(b, grid, **kw), sm, clip=True)[0] for a, b in pairs])


@pytest.mark.parametrize("g", [0.0, 0.5, 0.9])
def test_ar1_thresholds_are_calibrated(g):
    """Independent AR(1) pairs exceed the pooled 0.95 thresholds at 5% of outside-COI points.

    Surrogates of the data's length (``n_samples=n``). Margin: the per-pair exceedance f_k
    varies across the K independent pairs, and the thresholds come from mc exchangeable
    draws, so se = sd(f_k) * sqrt(1/K + 1/mc).
    """
    n, K, mc = 256, 120, 300
    grid = make_grid(n, 1.0, dj=0.25)
    thr = ar1_thresholds(grid, g, g, mc_count=mc, seed=21, n_samples=n, scheduler="sync")
    rng = np.random.default_rng(int(100 * g) + 7)
    R2 = _coherence_fields([(rednoise(n, g, rng=rng), rednoise(n, g, rng=rng)) for _ in range(K)], grid)
    out = outside_coi_mask(grid, n)
    f = ((R2 > thr[:, None]) & out).sum(axis=(1, 2)) / out.sum()
    se = f.std(ddof=1) * np.sqrt(1 / K + 1 / mc)
    assert abs(f.mean() - 0.05) <= 3.5 * se, (f.mean(), se)


def _spiky(n, rng):
    """A non-Gaussian trace with a non-AR(1) spectrum: calcium-like spikes plus an oscillation."""
    spikes = rng.poisson(0.05, n + 100).astype(float)
    ca = lfilter([1.0], [1.0, -0.85], spikes)[100:]
    osc = lfilter([1.0], [1.0, -1.6, 0.9], rng.standard_normal(n + 100))[100:]  # spectral peak
    return ca + 0.05 * osc**2 + 0.1 * rng.standard_normal(n)


def test_fourier_surrogates_are_calibrated():
    """Fourier null on independent skewed, peaked-spectrum pairs: pooled and per-point 0.95
    thresholds are exceeded at the nominal rate, p-values are uniform-or-conservative."""
    n, K, mc = 128, 40, 79
    grid = make_grid(n, 1.0, dj=0.25)
    rng = np.random.default_rng(5)
    f_pool, f_point, small_p = [], [], []
    out = outside_coi_mask(grid, n)
    for k in range(K):
        x1, x2 = _spiky(n, rng), _spiky(n, rng)
        res = surrogate_significance(grid, FourierNull(x1, x2), mc_count=mc, seed=k, pointwise=True,
                                     time_averaged=True, scheduler="sync")
        assert res.attrs["engine"] == "exact" and res.pointwise.shape == (1, grid.n_scales, n)
        R2 = _coherence_fields([(x1, x2)], grid)[0]
        f_pool.append(((R2 > res.thresholds[0][:, None]) & out).sum() / out.sum())
        f_point.append((R2 > res.pointwise[0]).mean())
        p = res.pvalues(R2)
        small_p.append(np.nanmean(p <= 0.1))
    f_pool, f_point, small_p = map(np.asarray, (f_pool, f_point, small_p))
    # per-point thresholds from mc exchangeable values (Hazen positions) are exceeded with
    # probability ((m - lo + 1) - frac) / (m + 1), slightly above 0.05 for small m
    pos = 0.95 * mc + 0.5
    lo, frac = np.floor(pos), pos - np.floor(pos)
    expect_point = ((mc - lo + 1) - frac) / (mc + 1)
    for f, target in ((f_pool, 0.05), (f_point, expect_point)):
        se = f.std(ddof=1) * np.sqrt(1 / K + 1 / mc)
        assert abs(f.mean() - target) <= 3.5 * se, (f.mean(), target, se)
    se = small_p.std(ddof=1) / np.sqrt(K)
    assert small_p.mean() <= 0.1 + 3.5 * se
    assert small_p.mean() >= 0.1 - 3.5 * se - 0.03  # not uselessly conservative


# ---------------------------------------------------------------------------------------------
# per-point thresholds, p-values, readouts


def test_pointwise_thresholds_equal_hazen_quantiles_of_all_surrogates():
    """Keeping only the top k per point loses nothing: equals numpy's Hazen quantile."""
    n, mc = 96, 41
    grid = make_grid(n, 1.0, dj=0.5)
    null = AR1Null(0.6, 0.1, length=n)
    res = surrogate_significance(grid, null, mc_count=mc, levels=(0.9, 0.95, 0.99), seed=8, pointwise=True,
                                 time_averaged=True, boundary="linear", batch_size=6, scheduler="sync")
    spec = make_spec(grid, null, mc_count=mc, seed=8, pointwise=True, boundary="linear")
    pairs = [spec._pair(i) for i in range(mc)]
    R2 = _coherence_fields(pairs, grid, boundary="linear")
    want = np.quantile(R2.astype(np.float64), [0.9, 0.95, 0.99], axis=0, method="hazen")
    np.testing.assert_allclose(res.pointwise, want, rtol=0, atol=1e-6)
    from bioxen_dask.significance import time_averaged_coherence

    np.testing.assert_allclose(res.null_time_averaged, time_averaged_coherence(R2, grid), atol=1e-6)
    assert res.to_dataset()["pointwise_threshold"].dims == ("level", "scale", "time")


def test_pvalues_and_levels_readouts():
    null = np.arange(1.0, 20.0)[:, None] * np.ones((1, 3))
    obs = np.array([19.5, 10.0, np.nan])
    np.testing.assert_allclose(pvalues_from_null(null, obs), [1 / 20, 11 / 20, np.nan])
    h = np.zeros((2, 100))
    h[0, 90] = 1
    h[0, :10] = 9
    lv = levels_from_histograms(h, [0.5, 0.95])
    assert np.isnan(lv[:, 1]).all() and lv[0, 0] < lv[1, 0]
    top = np.arange(10.0)[::-1, None]  # the 10 largest of 100 values 0..99 -> here 0..9 stand in
    assert pointwise_levels(top + 90, 100, 0.95)[0, 0] == pytest.approx(np.quantile(np.arange(100.0), 0.95,
                                                                                     method="hazen"))


# ---------------------------------------------------------------------------------------------
# null models and validation


def test_null_models():
    rng = np.random.default_rng(0)
    y1, y2 = AR1Null(0.8, 0.2, length=50_000).pair(rng)
    assert np.corrcoef(y1[:-1], y1[1:])[0, 1] == pytest.approx(0.2, abs=0.02)  # stored sorted
    assert np.corrcoef(y2[:-1], y2[1:])[0, 1] == pytest.approx(0.8, abs=0.02)
    assert AR1Null(0.8, 0.2) == AR1Null(0.2, 0.8)
    x = _spiky(512, rng)
    f1, _ = FourierNull(x, x[::-1]).pair(np.random.default_rng(1))
    np.testing.assert_allclose(np.abs(np.fft.rfft(f1)), np.abs(np.fft.rfft(x)), rtol=1e-9, atol=1e-9)
    i1, _ = IAAFTNull(x, x[::-1], n_iter=50).pair(np.random.default_rng(1))
    np.testing.assert_array_equal(np.sort(i1), np.sort(x))
    amp, amp_i = np.abs(np.fft.rfft(x)), np.abs(np.fft.rfft(i1))
    assert np.linalg.norm(amp_i - amp) < 0.1 * np.linalg.norm(amp)


def test_swapped_coefficients_give_identical_thresholds():
    grid = make_grid(128, 1.0, dj=0.25)
    a = ar1_thresholds(grid, 0.7, 0.1, mc_count=16, seed=5, scheduler="sync")
    b = ar1_thresholds(grid, 0.1, 0.7, mc_count=16, seed=5, scheduler="sync")
    np.testing.assert_array_equal(a, b)


def test_bad_inputs_raise_clear_errors():
    grid = make_grid(128, 1.0, dj=0.25)
    with pytest.raises(ValueError, match="levels"):
        ar1_thresholds(grid, 0.5, 0.5, mc_count=4, levels=1.5)
    with pytest.raises(ValueError, match="mc_count"):
        ar1_thresholds(grid, 0.5, 0.5, mc_count=0)
    with pytest.raises(ValueError, match="AR\\(1\\) coefficient"):
        AR1Null(1.0, 0.2)
    with pytest.raises(ValueError, match="multirate"):
        surrogate_significance(grid, AR1Null(0.5, 0.5, length=128), mc_count=4, pointwise=True, engine="multirate")
    with pytest.raises(ValueError, match="same length"):
        FourierNull(np.arange(10.0), np.arange(12.0))
    with pytest.raises(ValueError, match="time-averaged"):
        surrogate_significance(grid, AR1Null(0.5, 0.5), mc_count=4, scheduler="sync").pvalues(np.zeros((25, 10)))


def test_partials_merge_in_any_order():
    grid = make_grid(128, 1.0, dj=0.5)
    spec = make_spec(grid, AR1Null(0.3, 0.6, length=128), mc_count=12, seed=2, pointwise=True,
                     time_averaged=True, boundary="linear")
    parts = [spec.run(i, i + 3) for i in range(0, 12, 3)]
    a = merge_partials(merge_partials(parts[0], parts[1]), merge_partials(parts[2], parts[3]))
    b = merge_partials(parts[3], merge_partials(parts[1], parts[0], parts[2]))
    np.testing.assert_array_equal(a.counts, b.counts)
    np.testing.assert_array_equal(np.sort(a.topk, axis=0), np.sort(b.topk, axis=0))
    np.testing.assert_array_equal(a.means[np.argsort(a.index)], b.means[np.argsort(b.index)])


def test_valid_boundary_counts_the_linear_coherence_outside_both_the_coi_and_the_edges():
    """Regression: the exact engine once histogrammed valid-mode transforms, whose NaN edges
    spread through the smoothing and left nothing to count. The counts must be those of the
    linear coherence of the same surrogates at the points valid keeps."""
    grid = ScaleGrid.from_s0(1.0, *_pycwt_grid(128, 0.25))
    valid = make_spec(grid, AR1Null(0.5, 0.5), mc_count=6, seed=2, boundary="valid", engine="exact")
    linear = make_spec(grid, AR1Null(0.5, 0.5), mc_count=6, seed=2, boundary="linear", engine="exact")
    cv, cl = valid.run(0, 6).counts.sum(axis=1), linear.run(0, 6).counts.sum(axis=1)
    assert cv.sum() > 0 and np.all(cv <= cl)  # a subset of the same points, none lost to NaN
    n = valid.n_samples
    sup = grid.wavelet_support() + grid.smoothing_support()
    keep = outside_coi_mask(grid, n) & (np.arange(n)[None, :] >= sup[:, None]) \
        & (np.arange(n)[None, :] < n - sup[:, None])
    np.testing.assert_array_equal(cv.reshape(grid.n_scales, -1).sum(axis=1), 6 * keep.sum(axis=1))


# ----------------------------------------------------------------------------- FDR (issue 23)


def _bh_adjusted(p):
    """Reference: Benjamini-Hochberg adjusted p-values q_(i) = min_{j >= i} m p_(j) / j."""
    p = np.asarray(p, float)
    m = p.size
    order = np.argsort(p)
    q = np.minimum.accumulate((m * p[order] / np.arange(1, m + 1))[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(q, 1.0)
    return out


def test_fdr_bh_matches_a_hand_computation_and_the_adjusted_p_values():
    from bioxen_dask.significance import fdr_bh

    # m = 5, alpha = 0.05: sorted 0.005 0.01 0.03 0.04 0.2 against 0.01 0.02 0.03 0.04 0.05 -> k = 4
    assert fdr_bh([0.01, 0.04, 0.03, 0.005, 0.2], 0.05).tolist() == [True, True, True, True, False]
    # step-up: p_(2) = 0.03 > 0.025 fails its own bound, but p_(3) = 0.032 <= 0.0375 rejects it too
    assert fdr_bh([0.001, 0.03, 0.032, 0.2], 0.05).tolist() == [True, True, True, False]
    assert fdr_bh([0.02, 0.03], 0.01).tolist() == [False, False]
    rng = np.random.default_rng(19)
    for _ in range(20):
        p = np.concatenate([rng.uniform(size=300), rng.beta(0.2, 8, size=100)])
        for alpha in (0.01, 0.05, 0.2):
            np.testing.assert_array_equal(fdr_bh(p, alpha), _bh_adjusted(p) <= alpha)
    grid = np.array([[0.001, np.nan], [0.5, 0.004]])  # NaN: no test, not counted in m
    np.testing.assert_array_equal(fdr_bh(grid, 0.05), [[True, False], [False, True]])
    with pytest.raises(ValueError, match=r"alpha must be in \(0, 1\)"):
        fdr_bh([0.1], 1.0)
    with pytest.raises(ValueError, match=r"p-values must lie in \[0, 1\]"):
        fdr_bh([0.1, 1.5], 0.05)


def test_fdr_bh_controls_the_false_discovery_rate():
    """400 runs of 900 true nulls and 100 false ones (p ~ Beta(0.1, 10)): the mean share of
    false discoveries among the rejections stays at or below alpha * m0 / m = 0.045."""
    from bioxen_dask.significance import fdr_bh

    rng = np.random.default_rng(7)
    fdp = []
    for _ in range(400):
        p = np.concatenate([rng.uniform(size=900), rng.beta(0.1, 10, size=100)])
        reject = fdr_bh(p, 0.05)
        fdp.append(reject[:900].sum() / max(1, reject.sum()))
    mean, se = float(np.mean(fdp)), float(np.std(fdp) / np.sqrt(len(fdp)))
    assert mean <= 0.045 + 3 * se, (mean, se)
    assert mean > 0.02  # not a procedure that rejects nothing
