"""Multirate coherence maps (``method="multirate"``) against the exact float64 path."""

from __future__ import annotations

import numpy as np
import pytest

from bioxen_dask import wavelet_coherence
from bioxen_dask.grid import ScaleGrid, make_grid
from bioxen_dask.kernels import Smoother, coherence, cross_spectrum, cwt, multirate_coherence
from bioxen_dask.kernels._coherence_map import MultirateCoherence, ReferenceCache, _interp_taps
from bioxen_dask.wavelets import Paul

DT = 1 / 30


def _pair(n: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(n) * DT
    x = np.sin(2 * np.pi * t / 4) + rng.standard_normal(n)
    return x, np.roll(x, 9) + rng.standard_normal(n)


def _exact(x, y, grid, scale_kernel="pycwt"):
    W1 = cwt(x, grid, dtype="float64")
    W2 = cwt(y, grid, dtype="float64")
    R2, ang = coherence(W1, W2, Smoother(grid, scale_kernel=scale_kernel), clip=False)
    return R2, ang, np.abs(cross_spectrum(W1, W2))


def _phase_error(ang, ref_ang, cross_ref):
    """Largest phase error where the cross power is at least 1e-3 of its row maximum (below,
    the phase of float32 coefficients is itself that uncertain)."""
    big = cross_ref >= 1e-3 * cross_ref.max(axis=1, keepdims=True)
    return float(np.abs(np.angle(np.exp(1j * (ang - ref_ang))))[big].max())


@pytest.mark.parametrize("n", [700, 5000, 18000])
def test_matches_the_exact_path(n):
    x, y = _pair(n)
    grid = make_grid(n, DT)
    R2e, Ae, Ce = _exact(x, y, grid)
    plan = MultirateCoherence(grid, n)
    assert 0 < plan.cut < grid.n_scales and plan.frames  # both engines are exercised
    R2, ang, cross = multirate_coherence(x, y, grid, clip=False, with_cross=True)
    assert R2.dtype == ang.dtype == cross.dtype == np.float32
    assert R2.shape == (grid.n_scales, n)
    assert np.abs(R2 - R2e).max() < 1e-5
    assert _phase_error(ang, Ae, Ce) < 2e-3
    assert (np.abs(cross - Ce) / Ce.max(axis=1, keepdims=True)).max() < 1e-5
    spectrum = np.empty((grid.n_scales, n), np.complex64)  # the unsmoothed W1 W2* itself
    plan(x, y, with_phase=False, spectrum=spectrum)
    W12 = cross_spectrum(cwt(x, grid, dtype="float64"), cwt(y, grid, dtype="float64"))
    assert (np.abs(spectrum - W12) / np.abs(W12).max(axis=1, keepdims=True)).max() < 1e-5
    assert _phase_error(np.angle(spectrum), Ae, Ce) < 2e-3


def test_every_split_between_the_two_engines_agrees():
    """Small-scale tiles for every scale, or from the first decimable scale on, or in between:
    the same maps."""
    n = 3000
    x, y = _pair(n, seed=5)
    grid = make_grid(n, DT)
    R2e, Ae, Ce = _exact(x, y, grid)
    first = MultirateCoherence(grid, n).cut
    with pytest.raises(ValueError, match="cannot be decimated"):
        MultirateCoherence(grid, n, cut=first - 1)
    for cut in (first, first + 13, grid.n_scales):
        R2, ang, _ = MultirateCoherence(grid, n, cut=cut)(x, y)
        assert np.abs(R2 - R2e).max() < 1e-5, cut
        assert _phase_error(ang, Ae, Ce) < 2e-3, cut


def test_grinsted_scale_kernel_and_valid_boundary():
    n = 4000
    x, y = _pair(n, seed=8)
    grid = make_grid(n, DT)
    R2e, Ae, Ce = _exact(x, y, grid, scale_kernel="grinsted")
    R2, ang, cross = multirate_coherence(x, y, grid, scale_kernel="grinsted", boundary="valid", clip=False,
                                         with_cross=True)
    assert np.abs(R2 - R2e)[~np.isnan(R2)].max() < 1e-5
    sup = grid.wavelet_support() + grid.smoothing_support()
    hw = grid.wavelet_support()
    for j in (0, 40, 80):
        for v, h in ((R2, sup[j]), (ang, sup[j]), (cross, hw[j])):
            assert np.isnan(v[j, :h]).all() and np.isnan(v[j, -h:]).all() and np.isfinite(v[j, h:-h]).all()


def test_threads_give_the_same_maps_bit_for_bit(monkeypatch):
    from bioxen_dask.kernels import _cwt

    monkeypatch.setattr(_cwt, "MIN_THREADED_POINTS", 0)
    n = 6000
    x, y = _pair(n, seed=11)
    grid = make_grid(n, DT)
    one = multirate_coherence(x, y, grid, with_cross=True)
    two = multirate_coherence(x, y, grid, with_cross=True, workers=2)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


def test_clip_and_input_untouched():
    n = 2000
    x, y = _pair(n)
    x0, y0 = x.copy(), y.copy()
    R2, _, _ = multirate_coherence(x, y, make_grid(n, DT))
    assert R2.min() >= 0.0 and R2.max() <= 1.0
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(y, y0)


def test_coherent_sine_pair_has_unit_coherence_and_its_lag_as_phase():
    n = 6000
    t = np.arange(n) * DT
    x = np.sin(2 * np.pi * t / 5)
    R2, ang, _ = multirate_coherence(x, np.sin(2 * np.pi * (t - 0.5) / 5), make_grid(n, DT))
    j = int(np.argmin(np.abs(make_grid(n, DT).periods - 5)))
    mid = slice(2000, 4000)
    assert R2[j, mid].min() > 0.999
    np.testing.assert_allclose(ang[j, mid], 2 * np.pi * 0.5 / 5, atol=1e-3)  # x leads by 0.5 s


@pytest.mark.parametrize("taps, bound", [(8, 2e-5), (12, 5e-7)])
def test_interpolation_taps_reproduce_band_limited_signals(taps, bound):
    c = _interp_taps(0.3, 8, taps)
    h = taps // 2 - 1
    m = np.arange(-40, 60)
    for w in (0.0, 0.05, 0.2, 0.3 * np.pi):
        v = np.cos(w * m + 0.3)
        for p in range(8):  # y(m*8 + p) from v(m - h .. m + taps - 1 - h), at m = 0
            y = c[p] @ v[40 - h : 40 - h + taps]
            assert abs(y - np.cos(w * p / 8 + 0.3)) < bound
    np.testing.assert_allclose(c[0], np.eye(1, taps, h)[0], atol=1e-9)  # phase 0: the sample itself


def test_wavelet_coherence_method_multirate_matches_exact():
    n = 5000
    x, y = _pair(n, seed=2)
    exact = wavelet_coherence(x, y, DT)
    fast = wavelet_coherence(x, y, DT, method="multirate")
    assert fast.attrs["method"] == "multirate" and exact.attrs["method"] == "exact"
    assert float(np.abs(fast.coherence - exact.coherence).max()) < 2e-5
    assert float(np.abs(fast.cross_power - exact.cross_power).max() / float(exact.cross_power.max())) < 2e-5
    np.testing.assert_array_equal(fast.coi, exact.coi)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(method="fastest"), "unknown method"),
        (dict(method="multirate", dtype="float64"), "float32"),
        (dict(method="multirate", boundary="pycwt"), "boundary"),
        (dict(method="multirate", engine="pycwt"), "engine"),
        (dict(method="multirate", wavelet="paul"), "Morlet"),
    ],
)
def test_wavelet_coherence_multirate_rejects_what_it_cannot_do(kwargs, match):
    x, y = _pair(1000)
    with pytest.raises(ValueError, match=match):
        wavelet_coherence(x, y, DT, **kwargs)


def test_kernel_rejects_bad_shapes_and_options():
    grid = make_grid(500, DT)
    x, y = _pair(500)
    with pytest.raises(ValueError, match="same length"):
        multirate_coherence(x, y[:-1], grid)
    with pytest.raises(ValueError, match="1-D"):
        multirate_coherence(np.stack([x, x]), np.stack([y, y]), grid)
    with pytest.raises(ValueError, match="boundary"):
        multirate_coherence(x, y, grid, boundary="circular")
    paul = ScaleGrid(grid.dt, tuple(grid.scales), grid.dj, Paul())
    with pytest.raises(ValueError, match="Morlet"):
        multirate_coherence(x, y, paul)


def test_without_phase_the_coherence_is_the_same_to_rounding():
    """Without phase the coefficients come from the coarser fold (float32 rounding differs)."""
    n = 3000
    x, y = _pair(n, seed=4)
    grid = make_grid(n, DT)
    R2, ang, cross = multirate_coherence(x, y, grid)
    R2b, none, none2 = multirate_coherence(x, y, grid, with_phase=False)
    assert ang is not None and cross is None and none is None and none2 is None
    np.testing.assert_allclose(R2b, R2, rtol=0, atol=2e-6)
    assert np.abs(R2b - _exact(x, y, grid)[0]).max() < 1e-5


def test_pairs_of_very_different_power_keep_float32_accuracy():
    """A quiet, smooth trace against a loud noisy one: at small scales one power is ~1e4 times
    the other. Each power is smoothed by its own real FFTs, so the weaker one keeps its own
    float32 precision (packing both in one complex FFT would give it the rounding of the
    stronger: 0.07 in coherence here)."""
    n = 6000
    rng = np.random.default_rng(21)
    t = np.arange(n) * DT
    x = np.sin(2 * np.pi * t / 5) + 0.01 * rng.standard_normal(n)
    y = 3.0 * rng.standard_normal(n) + np.sin(2 * np.pi * t / 5)
    grid = make_grid(n, DT)
    ref = _exact(x, y, grid)[0]
    single, _ = coherence(cwt(x, grid), cwt(y, grid), Smoother(grid), clip=False)
    R2, _, _ = multirate_coherence(x, y, grid, clip=False)
    exact_f32 = float(np.abs(single - ref).max())
    assert float(np.abs(R2 - ref).max()) <= max(3 * exact_f32, 1e-5)


def test_a_noiseless_sine_reference_keeps_the_small_scales_exact():
    """A pure sine (a stimulus) leaks across every tile's edges: those wrapped-around products
    must not enter the float32 smoothing, whose rounding they would spread over the tile (it
    gave 3e-3 and inf in coherence at the smallest scales)."""
    from bioxen_dask.coherence import period_grid

    n = 3000
    t = np.arange(n) * DT
    rng = np.random.default_rng(0)
    x = np.sin(2 * np.pi * (t + 0.3) / 2) + 0.5 * rng.standard_normal(n)
    ref = np.sin(2 * np.pi * t / 2)
    x, ref = (x - x.mean()) / x.std(), (ref - ref.mean()) / ref.std()
    grid = period_grid(n, DT, min_period=0.3, max_period=10)
    R2e, _, _ = _exact(x, ref, grid)
    first = MultirateCoherence(grid, n).cut
    for cut in (first, first + 4, first + 14):
        R2, _, _ = MultirateCoherence(grid, n, cut=cut)(x, ref)
        assert np.abs(R2[:cut] - R2e[:cut]).max() < 1e-5, cut
        # where the sine has no content at all (periods far from 2 s), every float32 path is
        # rounding-limited: the exact float32 path is off by ~7e-5 there, multirate by ~3e-4
        assert np.abs(R2 - R2e).max() < 1e-3, cut


def test_a_power_at_its_rounding_floor_gives_no_spurious_coherence():
    """A float32 smoothed power at its rounding floor (a few eps of its row's peak) under a
    cross spectrum of noise made coherence 1e8 (clipped: full coherence) where a noiseless
    reference had no power at a scale; such a coherence above 1 is 0. A tiny power whose
    coherence is within [0, 1] is a value, and kept."""
    from bioxen_dask.kernels._coherence import coherence_ratio

    S1 = np.array([[1.0, 1.0, 1.0, 1.0]], np.float32)
    S2 = np.array([[1.0, 1e-8, 1e-8, 0.5]], np.float32)  # 1e-8 < 4 eps (4.8e-7) of the row's peak
    re = np.array([[0.5, 1e-3, 1e-5, 0.5]], np.float32)
    R2 = coherence_ratio(re, np.zeros_like(re), S1, S2)
    np.testing.assert_allclose(R2[0], [0.25, 0.0, 1e-10 / 1e-8, 0.5], rtol=1e-5)
    # the same numbers in float64 are far above its floor: the ratio is the ratio
    R2 = coherence_ratio(re.astype(float), np.zeros(re.shape), S1.astype(float), S2.astype(float))
    assert R2[0, 1] == pytest.approx(1e-6 / 1e-8, rel=1e-5)


def test_a_reference_cache_gives_the_same_maps_with_less_work():
    """Pairs sharing their second record: the cached calls equal the uncached ones (to the last
    bit or two: a batch of one record is rounded a little differently from a batch of two)."""
    n = 5000
    grid = make_grid(n, DT)
    plan = MultirateCoherence(grid, n)
    assert plan.small is not None and plan.frames  # tiles and bands are both cached
    rng = np.random.default_rng(9)
    ref = rng.standard_normal(n)
    cache = ReferenceCache()
    for k in range(3):
        x = rng.standard_normal(n) + 0.5 * ref
        spec_c, spec_u = (np.empty((grid.n_scales, n), np.complex64) for _ in range(2))
        R2c, Ac, _ = plan(x, ref, spectrum=spec_c, reference=cache)
        R2u, Au, _ = plan(x, ref, spectrum=spec_u)
        assert cache.filled and cache.tiles and cache.groups
        assert np.abs(R2c - R2u).max() <= 3e-7
        assert (np.abs(spec_c - spec_u) / np.abs(spec_u).max(axis=1, keepdims=True)).max() <= 1e-6
        big = np.abs(spec_u) >= 1e-3 * np.abs(spec_u).max(axis=1, keepdims=True)
        assert np.abs(np.angle(np.exp(1j * (Ac - Au))))[big].max() <= 1e-5
    for misuse in (lambda: plan(x, ref, with_phase=False, reference=cache),  # other outputs
                   lambda: MultirateCoherence(grid, n)(x, ref, reference=cache),  # another plan
                   lambda: plan(x, ref + 1e-3, reference=cache)):  # another reference
        with pytest.raises(ValueError, match="filled by another plan, for other outputs or for another second"):
            misuse()


def test_a_noiseless_stimulus_leaves_no_rounding_floor_in_the_float32_maps():
    """A sum of noiseless cosines (the demo's stimulus) has no power at the smallest periods.
    A float32 forward FFT (or a float32 copy of the record) spread ~1e-7 of its whole energy
    over every bin, and the float32 exact path reported a mean coherence of 0.18 at the
    smallest period where float64 gives 3e-4; the forward FFTs now run in float64."""
    rng = np.random.default_rng(6)
    n, dt = 18000, 1 / 30
    t = np.arange(n) * dt
    stim = np.cos(2 * np.pi * t / 2) + np.cos(2 * np.pi * t / 5 + 1) + np.cos(2 * np.pi * t / 10 + 2)
    roi = 0.3 * np.cos(2 * np.pi * (t - 0.3) / 5) + rng.standard_normal(n)
    f64 = wavelet_coherence(roi, stim, dt, dtype="float64").coherence.values
    for method in ("exact", "multirate"):
        f32 = wavelet_coherence(roi, stim, dt, method=method).coherence.values
        small = slice(0, 12)  # periods up to 0.13 s: the stimulus has no content there
        assert np.abs(f32[small].mean(axis=1) - f64[small].mean(axis=1)).max() < 2e-3, method
        assert np.mean(np.abs(f32 - f64) > 1e-2) < 1e-4, method


def test_a_noiseless_chirp_gives_no_nan_coherence():
    """Far from a noiseless chirp's instantaneous frequency both smoothed powers underflow in
    float32 (or are flushed to zero by a BLAS kernel): ``0/0`` there made NaN coherence from
    finite records (17 points at 4,096 samples). The ratio divides first and calls a vanished
    pair on a live row 0; a constant record is still NaN (:func:`coherence_ratio`)."""
    from bioxen_dask.kernels._coherence import coherence_ratio

    n, dt = 4096, 1 / 30
    t = np.arange(n) * dt
    T = n * dt
    phase = 2 * np.pi * (t / (T / 3) + (0.4 / dt) * t**2 / (2 * T))
    x = np.cos(phase)
    y = np.cos(phase - 0.7) + 0.2 * np.random.default_rng(4).standard_normal(n)
    for method in ("exact", "multirate"):
        R2 = wavelet_coherence(x, y, dt, method=method).coherence.values
        assert not np.isnan(R2).any(), method
        assert R2.min() >= 0 and R2.max() <= 1
    re = np.array([[1e-30, 0.0, 2e-20], [0.0, 0.0, 0.0]], np.float32)
    S1 = np.array([[1e-25, 0.0, 4e-20], [0.0, 0.0, 0.0]], np.float32)
    S2 = np.array([[1e-35, 0.0, 1e-20], [1.0, 1.0, 1.0]], np.float32)
    R2 = coherence_ratio(re, np.zeros_like(re), S1, S2)
    np.testing.assert_allclose(R2[0], [(1e-30) ** 2 / (1e-25 * 1e-35), 0.0, 1.0], rtol=1e-5)
    assert np.isnan(R2[1]).all()  # a silent row: undefined, as a constant trace
