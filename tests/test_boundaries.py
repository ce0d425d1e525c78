"""Boundary modes against direct time-domain convolution."""

from __future__ import annotations

import numpy as np
import pytest

from bioxen_dask.grid import ScaleGrid
from bioxen_dask.kernels import Smoother, coherence, cwt, smooth_time
from bioxen_dask.wavelets import Morlet

DT = 1.0
# From pycwt's smallest scale (period 2 dt): the linear mode samples the wavelet in time, so
# it is an exact linear convolution even where the Morlet spectrum reaches Nyquist.
GRID = ScaleGrid.from_s0(DT, 2 * DT / Morlet().fourier_factor, 0.25, 19)


def direct_cwt(x: np.ndarray, grid: ScaleGrid) -> np.ndarray:
    """W[s, m] = sum_n x[n] sqrt(dt/s) conj(psi((n - m) dt / s)), zero outside the record."""
    n = x.size
    out = np.empty((grid.n_scales, n), complex)
    w = grid.wavelet
    for j, s in enumerate(grid.scales):
        kernel = np.sqrt(grid.dt / s) * np.conj(w.psi(np.arange(-n + 1, n) * grid.dt / s))
        out[j] = np.convolve(x, kernel[::-1])[n - 1 : 2 * n - 1]
    return out


@pytest.fixture
def step_at_end(rng):
    x = 0.1 * rng.standard_normal(700)
    x[-60:] += 5.0
    return x


def _rel(a, b):
    return np.abs(a - b).max(axis=-1) / np.abs(b).max(axis=-1)


def test_linear_equals_direct_convolution(step_at_end):
    W = cwt(step_at_end, GRID, boundary="linear", dtype="float64")
    D = direct_cwt(step_at_end, GRID)
    assert _rel(W, D).max() <= 1e-6


def test_linear_step_does_not_leak_into_start(step_at_end, rng):
    quiet = step_at_end.copy()
    quiet[-60:] -= 5.0  # same noise, no step
    W_step = cwt(step_at_end, GRID, boundary="linear", dtype="float64")
    W_quiet = cwt(quiet, GRID, boundary="linear", dtype="float64")
    head = slice(0, 100)  # far from the step for every scale up to 64 samples... at 1e-10
    reach = GRID.wavelet_support(1e-10)
    for j, h in enumerate(reach):
        start = slice(0, max(0, 700 - 60 - int(h)))
        np.testing.assert_allclose(W_step[j, start], W_quiet[j, start], rtol=0, atol=1e-9)
    # ...whereas the circular transform wraps the step into the first samples.
    C_step = cwt(step_at_end, GRID, boundary="circular", dtype="float64")
    C_quiet = cwt(quiet, GRID, boundary="circular", dtype="float64")
    leak = np.abs(C_step[:, head] - C_quiet[:, head]).max()
    assert leak > 0.1


def test_symmetric_equals_convolution_of_mirrored_signal(rng):
    x = rng.standard_normal(400).cumsum()
    h = int(GRID.wavelet_support(1e-10)[-1])
    mirrored = np.pad(x, h, mode="symmetric")
    D = direct_cwt(mirrored, GRID)[:, h : h + x.size]
    W = cwt(x, GRID, boundary="symmetric", dtype="float64")
    assert _rel(W, D).max() <= 1e-6


def test_valid_is_nan_exactly_where_the_wavelet_overhangs(rng):
    x = rng.standard_normal(800)
    tol = 1e-4
    W = cwt(x, GRID, boundary="valid", tol=tol, dtype="float64")
    L = cwt(x, GRID, boundary="linear", tol=tol, dtype="float64")
    reach = np.ceil(Morlet().support(tol) * GRID.scales / GRID.dt).astype(int)
    for j, h in enumerate(reach):
        assert np.isnan(W[j, :h]).all() and np.isnan(W[j, x.size - h :]).all()
        np.testing.assert_array_equal(W[j, h : x.size - h], L[j, h : x.size - h])


def test_linear_and_pycwt_kernels_agree_above_four_samples_per_scale(rng):
    """Time-sampled (linear) and band-limited (pycwt) kernels differ only near Nyquist."""
    x = rng.standard_normal(4096)
    grid = ScaleGrid.from_s0(DT, 4.0, 0.25, 12)
    lin = cwt(x, grid, boundary="linear", dtype="float64")
    ref = cwt(x, grid, boundary="pycwt", dtype="float64")
    interior = slice(1024, 3072)
    assert np.abs(lin - ref)[:, interior].max() / np.abs(ref).max() <= 1e-8


def test_time_sampled_and_band_limited_kernels_where_they_part(rng):
    """The numbers the kernels' docstring states: Paul's spectrum decays only exponentially, so
    its two kernels agree more slowly with scale than Morlet's; at pycwt's smallest scale (the
    2-dt period) the sampling does not resolve the wavelet and the two differ by ~the whole
    coefficient. Per scale, relative to the row's largest interior coefficient."""
    from bioxen_dask.wavelets import Paul

    x = rng.standard_normal(4096)
    interior = slice(1024, 3072)

    def differences(wavelet, scales):
        grid = ScaleGrid(DT, tuple(scales), 0.25, wavelet)
        lin = cwt(x, grid, boundary="linear", dtype="float64")[:, interior]
        ref = cwt(x, grid, boundary="pycwt", dtype="float64")[:, interior]
        return np.abs(lin - ref).max(axis=1) / np.abs(ref).max(axis=1)

    morlet = differences(Morlet(), [2 / Morlet().fourier_factor, 4.0])
    assert morlet[0] > 0.5 and morlet[1] < 1e-8
    paul = differences(Paul(), [4.0, 8.0, 12.0])
    assert 1e-3 < paul[0] < 3e-2 and paul[1] < 1e-6 and paul[2] < 1e-9


def test_pycwt_mode_pads_to_power_of_two(rng):
    x = rng.standard_normal(300)
    W = cwt(x, GRID, boundary="pycwt", dtype="float64")
    padded = np.zeros(512)
    padded[:300] = x
    C = cwt(padded, GRID, boundary="circular", dtype="float64")[:, :300]
    assert _rel(W, C).max() <= 1e-12


def test_time_smoothing_linear_is_gaussian_convolution(rng):
    P = rng.random((GRID.n_scales, 500))
    S = smooth_time(P, GRID, boundary="linear")
    for j in (0, 8, 16):
        sigma = GRID.scales[j] / GRID.dt
        k = np.exp(-0.5 * (np.arange(-499, 500) / sigma) ** 2)
        k /= k.sum()
        ref = np.convolve(P[j], k)[499 : 499 + 500]
        np.testing.assert_allclose(S[j], ref, rtol=1e-8, atol=1e-10)


def test_valid_coherence_takes_linear_coefficients_and_refuses_nan_edged_ones(rng):
    x, y = rng.standard_normal(512), rng.standard_normal(512)
    W1, W2 = (cwt(v, GRID, boundary="linear", dtype="float64") for v in (x, y))
    R2v, _ = coherence(W1, W2, Smoother(GRID, boundary="valid"))
    R2l, _ = coherence(W1, W2, Smoother(GRID, boundary="linear"))
    sup = GRID.wavelet_support() + GRID.smoothing_support()
    j = 5
    h = int(sup[j])
    assert np.isnan(R2v[j, :h]).all() and np.isnan(R2v[j, -h:]).all()
    np.testing.assert_array_equal(R2v[j, h:-h], R2l[j, h:-h])
    V1 = cwt(x, GRID, boundary="valid", dtype="float64")
    with pytest.raises(ValueError, match="linear-mode coefficients"):
        coherence(V1, W2, Smoother(GRID, boundary="valid"))


@pytest.mark.parametrize("boundary", ["linear", "symmetric", "circular", "pycwt"])
def test_coherence_of_a_signal_with_itself_is_one(boundary, rng):
    x = rng.standard_normal(512)
    W = cwt(x, GRID, boundary=boundary, dtype="float64")
    R2, ph = coherence(W, W, Smoother(GRID, boundary=boundary))
    np.testing.assert_allclose(R2, 1.0, atol=1e-12)
    np.testing.assert_allclose(ph, 0.0, atol=1e-12)


def test_kernels_wider_than_the_record_are_still_exact_linear_convolutions(rng):
    """pycwt's default grid reaches scales whose support is ~7x the record: only lags within
    the record can meet data, so the kernels are cut there (:func:`kernels._plan.reach`) --
    and must still equal the direct convolution with the whole kernel."""
    from bioxen_dask.grid import make_grid

    n = 300
    grid = make_grid(n, DT)
    assert grid.wavelet_support().max() > 5 * n and grid.smoothing_support().max() > 5 * n
    x = rng.standard_normal(n)
    W = cwt(x, grid, boundary="linear", dtype="float64")
    assert _rel(W, direct_cwt(x, grid)).max() <= 1e-9
    P = np.abs(W) ** 2
    S = smooth_time(P, grid, boundary="linear")
    supports = grid.smoothing_support()
    for j in (grid.n_scales // 2, grid.n_scales - 1):  # the unit sum is the whole Gaussian's
        h, sigma = int(supports[j]), grid.scales[j] / grid.dt
        k = np.exp(-0.5 * (np.arange(-h, h + 1) / sigma) ** 2)
        ref = np.convolve(P[j], k / k.sum())[h : h + n]
        np.testing.assert_allclose(S[j], ref, rtol=1e-9, atol=1e-14)
    V = cwt(x, grid, boundary="valid", dtype="float64")  # valid still masks by the full support
    h0 = int(grid.wavelet_support()[0])
    assert np.isnan(V[-1]).all() and np.isfinite(V[0, h0:-h0]).all() and np.isnan(V[0, :h0]).all()


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_scale_smoothing_of_complex_values_is_convolve2d_to_rounding(dtype, rng):
    """The complex path runs on the interleaved real view: the same sums as smoothing the real
    and imaginary parts one by one (scipy.signal.convolve2d 'same' with the boxcar column), to
    the last bits: the BLAS blocks a 2 * time wide product differently from a time wide one on
    some CPUs (bit-equal where the test was written, 4 ulp apart on an AMD EPYC VM), so the
    bound is rounding."""
    import scipy.signal

    from bioxen_dask.kernels import scale_kernel, smooth_scale

    w = scale_kernel("pycwt", GRID)
    z = (rng.standard_normal((2, GRID.n_scales, 300)) + 1j * rng.standard_normal((2, GRID.n_scales, 300))).astype(dtype)
    out = smooth_scale(z[:, :, ::2], w)  # a strided input too
    for part in (np.real, np.imag):
        ref = smooth_scale(np.ascontiguousarray(part(z[:, :, ::2])), w)
        eps = np.finfo(ref.dtype).eps
        np.testing.assert_allclose(part(out), ref, rtol=0, atol=8 * eps * np.abs(ref).max())
    direct = scipy.signal.convolve2d(z[0].astype(np.complex128), w[:, None], mode="same")
    np.testing.assert_allclose(smooth_scale(z, w)[0], direct, rtol=1e-5 if dtype == np.complex64 else 1e-12,
                               atol=1e-5 if dtype == np.complex64 else 1e-12)
