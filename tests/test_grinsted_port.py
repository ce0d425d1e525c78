"""Sanity tests of the literal NumPy port of Grinsted's MATLAB toolbox.

The port lives in ``tests/reference/grinsted.py`` and is a *reference* for the
package's "grinsted" preset; these tests check the port itself (against
hand-derived facts and against pycwt where the two must agree).
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import math
import pathlib

import numpy as np
import pytest

# Load by path so the test works whether or not ``tests`` is a package.
_REF = pathlib.Path(__file__).parent / "reference" / "grinsted.py"
_spec = importlib.util.spec_from_file_location("grinsted_reference", _REF)
G = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(G)


# ---------------------------------------------------------------------------
# (a) scale kernel of smoothwavelet.m l.88-106
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "dj, expected",
    [
        (1 / 12, np.array([0.6] + [1.0] * 7 + [0.6]) / 8.2),
        (1 / 8, np.array([0.4, 1.0, 1.0, 1.0, 0.4]) / 3.8),
        (1 / 4, np.array([0.2, 1.0, 0.2]) / 1.4),
    ],
)
def test_scale_kernel_weights(dj, expected):
    k = G.scale_kernel(dj)
    assert k.shape == expected.shape
    np.testing.assert_allclose(k, expected, rtol=1e-12, atol=0)
    assert abs(k.sum() - 1) < 1e-14


def test_smoothwavelet_applies_kernel_along_scale_with_zero_fill():
    # Rows constant in time and n a power of two: the FFT Gaussian (unit DC
    # gain, circular) leaves them untouched, so only the scale kernel acts.
    dj, J, n = 1 / 12, 30, 64
    scale = 2.0 * 2.0 ** (np.arange(J) * dj)
    k = G.scale_kernel(dj)
    h = k.size // 2
    for row in (10, 0, J - 1):
        w = np.zeros((J, n))
        w[row] = 1.0
        s = G.smoothwavelet(w, 1.0, scale, dj, scale)
        expect = np.zeros(J)
        for j in range(k.size):
            r = row - h + j
            if 0 <= r < J:
                expect[r] = k[j]  # truncated at the edges, not renormalised
        np.testing.assert_allclose(s, expect[:, None] * np.ones((1, n)), atol=1e-13)


# ---------------------------------------------------------------------------
# (b) a sinusoid peaks at the scale whose Fourier period is closest
# ---------------------------------------------------------------------------
def test_sinusoid_peaks_at_nearest_period():
    n = 2000
    t = np.arange(1, n + 1, dtype=float)
    _, period, _, _, _ = G.wt(np.sin(t), MakeFigure=False)  # grid only
    dj = 1 / 12
    for j in (15, 40, 65):
        for offset in (0.0, 0.25, -0.25, 0.7):  # in units of dj (log2 period)
            P = period[j] * 2.0 ** (offset * dj)
            x = np.sin(2 * np.pi * t / P)
            wave, per, _, _, _ = G.wt(x)
            power = np.abs(wave[:, n // 4 : 3 * n // 4]) ** 2
            got = int(np.argmax(power.mean(axis=1)))
            nearest = int(np.argmin(np.abs(np.log2(per) - np.log2(P))))
            assert got == nearest, (j, offset, per[got], P)


# ---------------------------------------------------------------------------
# (c) agreement with pycwt.cwt on the same padded length and scale grid
# ---------------------------------------------------------------------------
def _pycwt_psi_ft(u, f0=6.0):
    # pycwt/mothers.py Morlet.psi_ft: no Heaviside step
    return np.pi**-0.25 * np.exp(-0.5 * (u - f0) ** 2)


def _setup_cwt_pair(x, dt, dj):
    pycwt = pytest.importorskip("pycwt")
    n1 = x.size
    s0 = 2 * dt
    J1 = int(G._mround(math.log2(n1 * 0.17) / dj))
    Wg, per, sc, coi = G.wavelet(x, dt, 1, dj, s0, J1, "Morlet")
    npad = 2 ** (math.trunc(math.log(n1) / math.log(2) + 0.4999) + 1)
    xp = np.concatenate([x, np.zeros(npad - n1)])  # already a power of two
    Wp, sj, freqs, coip, _, _ = pycwt.cwt(xp, dt, dj=dj, s0=s0, J=J1, wavelet="morlet")
    np.testing.assert_allclose(sj, sc, rtol=1e-14)
    np.testing.assert_allclose(1 / freqs, per, rtol=1e-14)
    return Wg, Wp[:, :n1], sc, per, coi, xp


def test_wavelet_matches_pycwt_up_to_heaviside_and_nyquist():
    rng = np.random.default_rng(1)
    n1, dt, dj = 1000, 0.5, 1 / 12
    x = np.cumsum(rng.standard_normal(n1)) * 0.1 + rng.standard_normal(n1)
    # Project out the constant and the (-1)^t component: DC and Nyquist bins
    # of the padded FFT are then zero (to rounding).
    A = np.column_stack([np.ones(n1), (-1.0) ** np.arange(n1)])
    x = x - A @ np.linalg.lstsq(A, x, rcond=None)[0]
    Wg, Wp, sc, per, coi, xp = _setup_cwt_pair(x, dt, dj)
    scale_max = np.abs(Wg).max()

    D = Wg - Wp
    # The only remaining difference is pycwt's missing Heaviside step: its
    # psi_ft(s*k) at k < 0 is at most pi^-1/4 * exp(-18) ~ 1.1e-8.
    assert np.abs(D).max() / scale_max < 1e-7
    assert np.abs(D).max() > 1e-12 * scale_max  # ... and it is not zero

    # Add that leak (pycwt's psi_ft at k <= 0, absent from Grinsted's daughter)
    # to the port explicitly: then the two agree to rounding.
    n = xp.size
    f = np.fft.fft(xp)
    k = 2 * np.pi * np.fft.fftfreq(n, dt)  # pycwt's frequencies (Nyquist < 0)
    leak_mask = k <= 0
    norm = np.sqrt(sc[:, None] * k[1] * n)
    leak = np.fft.ifft(f * norm * _pycwt_psi_ft(sc[:, None] * k) * leak_mask, axis=1)[:, : x.size]
    np.testing.assert_allclose(Wg + leak, Wp, rtol=0, atol=1e-12 * scale_max)

    # COI: T&C/Grinsted min(t, n-1-t) with 1e-5 ends; pycwt adds half a sample.
    ff = 4 * np.pi / (6 + np.sqrt(38))
    _, _, _, coip, _, _ = pytest.importorskip("pycwt").cwt(x, dt, dj=dj, s0=2 * dt, J=3)
    np.testing.assert_allclose(coip[1:-1] - coi[1:-1], 0.5 * ff / np.sqrt(2) * dt, rtol=1e-12)
    assert coi[0] == coi[-1] == pytest.approx(ff / np.sqrt(2) * dt * 1e-5)


def test_wavelet_removes_the_mean_before_padding():
    # wavelet.m l.119: x = Y - mean(Y). An offset on the n1 data samples
    # followed by zero padding is a boxcar, not a DC term, so the Heaviside
    # alone would not hide it: only the mean removal makes W offset-invariant.
    rng = np.random.default_rng(6)
    x = rng.standard_normal(300)
    W0 = G.wavelet(x, 1.0, 1, 1 / 12, 2.0, 60, "Morlet")[0]
    W1 = G.wavelet(x + 5.0, 1.0, 1, 1 / 12, 2.0, 60, "Morlet")[0]
    np.testing.assert_allclose(W1, W0, rtol=0, atol=1e-12 * np.abs(W0).max())


def test_wavelet_nyquist_difference_is_confined_to_smallest_scales():
    # With Nyquist content, MATLAB's k vector has +Nyquist (passes the
    # Heaviside; Morlet at s0=2dt gives exp(-(2*pi-6)^2/2)=0.96 there), while
    # pycwt's fftfreq puts Nyquist at -pi/dt (weight ~0).
    rng = np.random.default_rng(2)
    n1, dt, dj = 1000, 1.0, 1 / 12
    x = rng.standard_normal(n1)
    x -= x.mean()
    Wg, Wp, sc, per, coi, xp = _setup_cwt_pair(x, dt, dj)
    n = xp.size
    f = np.fft.fft(xp)
    norm = np.sqrt(sc * (2 * np.pi / (n * dt)) * n) * np.pi**-0.25
    g = np.exp(-((sc * np.pi / dt - 6) ** 2) / 2)
    nyq = (f[n // 2] * norm * g / n)[:, None] * ((-1.0) ** np.arange(n1))[None, :]
    D = Wg - Wp
    scale_max = np.abs(Wg).max()
    np.testing.assert_allclose(D - nyq, 0, atol=1e-7 * scale_max)  # rest: Heaviside leak
    per_scale = np.abs(D).max(axis=1) / scale_max
    assert per_scale[0] > 1e-3  # a real difference at s0 ...
    assert np.all(per_scale[sc >= 4 * dt] < 1e-7)  # ... gone one octave up


# ---------------------------------------------------------------------------
# (d) coherence of a signal with itself
# ---------------------------------------------------------------------------
def test_wtc_self_coherence_is_one():
    rng = np.random.default_rng(3)
    x = np.cumsum(rng.standard_normal(300)) + np.sin(np.arange(300) / 5.0)
    res = G.wtc(x, x, rng=np.random.default_rng(0), MonteCarloCount=0)
    assert np.all(np.isfinite(res.Rsq))
    np.testing.assert_allclose(res.Rsq, 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.angle(res.Wxy), 0.0, atol=1e-12)
    # MonteCarloCount < 1: constant 0.71 level (wtcsignif.m l.88-92)
    np.testing.assert_array_equal(res.sig95_level, 0.71)
    # Defaults: S0 = 2*dt (dt = 1 for a plain vector), J1 from MaxScale
    assert res.scale[0] == 2.0
    assert res.J1 == int(G._mround(math.log2(300 * 0.17 * 2 / 2) * 12))
    assert res.Rsq.shape == (res.J1 + 1, 300)


# ---------------------------------------------------------------------------
# (e) the AO / Baltic (BMI) pair of Grinsted et al. (2004), pycwt's copy
# ---------------------------------------------------------------------------
def test_wtc_ao_baltic():
    sample = importlib.resources.files("pycwt.sample")
    ao = np.loadtxt(str(sample / "jao.dat"))
    bmi = np.loadtxt(str(sample / "jbaltic.dat"))
    assert np.all(np.diff(ao[:, 0]) == 1) and np.all(np.diff(bmi[:, 0]) == 1)  # annual
    res = G.wtc(ao, bmi, rng=np.random.default_rng(0), MonteCarloCount=100)

    # common span: 1851..1997 (AO is 1851-1997, BMI 1720-1999)
    assert res.t[0] == 1851 and res.t[-1] == 1997 and res.t.size == 147
    assert res.J1 == 56  # round(log2(147*.17)*12)
    assert res.Rsq.shape == (57, 147)
    R = res.Rsq
    assert np.all(np.isfinite(R))
    assert R.min() >= 0 and R.max() <= 1 + 1e-12
    outside = res.period[:, None] <= res.coi[None, :]
    assert 0.9 < R[outside].max() <= 1
    assert 0.3 < R[outside].mean() < 0.8
    lvl = res.sig95_level
    assert np.all(np.isfinite(lvl)) and np.all((lvl > 0.4) & (lvl < 1))
    np.testing.assert_allclose(res.ar1, [G.ar1nv(ao[:, 1])[0], G.ar1nv(bmi[:, 1])[0]])
    frac_sig = float((res.sig95[outside] >= 1).mean())
    assert 0.05 < frac_sig < 0.8
    print(
        f"\nAO/BMI: n={res.t.size} J1={res.J1} ar1={np.round(res.ar1, 4)} "
        f"maxRsq(out COI)={R[outside].max():.4f} meanRsq(out COI)={R[outside].mean():.4f} "
        f"sig95 level range=[{lvl.min():.3f}, {lvl.max():.3f}] frac significant={frac_sig:.3f}"
    )


# ---------------------------------------------------------------------------
# AR(1) estimators, significance binning details
# ---------------------------------------------------------------------------
def test_ar1_estimators():
    rng = np.random.default_rng(4)
    x = G.rednoise(5000, 0.7, 1.0, rng=rng)
    g, a = G.ar1nv(x)
    xm = x - x.mean()
    assert g == pytest.approx((xm[:-1] @ xm[1:] / 4999) / (xm @ xm / 5000), rel=1e-14)
    assert a == pytest.approx(math.sqrt((1 - g**2) * (xm @ xm / 5000)), rel=1e-14)
    assert 0.65 < g < 0.75
    pycwt = pytest.importorskip("pycwt")
    ga, aa, mu2 = G.ar1(x)
    gp, ap, mu2p = pycwt.ar1(x)
    assert ga == pytest.approx(gp, rel=1e-12)  # same Allen & Smith root ...
    assert mu2 != pytest.approx(mu2p, rel=1e-6)  # ... different mu2 ((1-g) vs (1-g)^2)


def test_rednoise_white_when_g_is_zero():
    y = G.rednoise(10, 0.0, 2.0, rng=np.random.default_rng(5))
    np.testing.assert_allclose(y, np.random.default_rng(5).standard_normal(10) * 2.0)


def test_interp1_has_no_extrapolation():
    assert math.isnan(G._interp1_linear([0.1, 0.5, 0.9], [1, 2, 3], 0.95))
    assert G._interp1_linear([0.1, 0.5, 0.99], [1, 2, 3], 0.95) == pytest.approx(2 + 0.45 / 0.49)


def test_cache_key_buckets():
    cv, h = G.wtcsignif_cache_key([0.3, -0.5], 1 / 12, 2.0, 1.0, 56, "Morlet")
    # round(atanh(a)*4): 0.3 -> 1; -0.5 -> -2 -> |.|+0.5 = 2.5
    np.testing.assert_array_equal(cv[:2], np.float32([1.0, 2.5]))
    assert cv.dtype == np.float32 and len(h) == 2
    np.testing.assert_array_equal(cv[-6:], np.float32([ord(c) for c in "Morlet"]))
