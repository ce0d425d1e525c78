"""Bad input raises a ValueError that names the problem and the fix; inputs stay untouched."""

from __future__ import annotations

import numpy as np
import pytest

from bioxen_dask import compat, make_grid, wavelet_coherence, wavelet_transform

X = np.sin(np.arange(200) / 5.0)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: wavelet_transform(np.r_[X[:50], np.nan, X[51:]], dt=1.0), r"1 NaN .*index 50.*interpolate"),
        (lambda: wavelet_transform(np.r_[X[:9], np.inf, X[10:]], dt=1.0), r"1 infinite .*index 9"),
        (lambda: wavelet_transform(X[:3], dt=1.0), r"3 samples, fewer than the smallest wavelet needs"),
        (lambda: compat.cwt(X[:3], 1.0), r"fewer than the smallest wavelet needs"),
        (lambda: wavelet_coherence(np.ones(200), X, dt=1.0), r"x is constant.*zero variance.*drop constant"),
        (lambda: compat.wct(X, np.zeros(200), 1.0, sig=False), r"y2 is constant"),
        (lambda: wavelet_coherence(X[:1], X[:1], dt=1.0), r"x has 1 sample: too short"),
        (lambda: wavelet_transform(X * 1e37, dt=1.0), r"would overflow float32.*dtype='float64'"),
        (lambda: wavelet_coherence(X * 1e30, X, dt=1.0, normalize=False), r"x reaches .*overflow float32"),
        (lambda: wavelet_coherence(X * 1e-170, X, dt=1.0), r"x varies, but its variance underflows.*rescale"),
        (lambda: wavelet_coherence(X * 1e160, X, dt=1.0), r"x varies, but its variance overflows.*rescale"),
        (lambda: wavelet_coherence(np.vstack([X, X]), X, dt=1.0), r"x must be 1-D.*shape \(2, 200\)"),
        (lambda: compat.cwt(np.vstack([X, X]), 1.0), r"signal must be 1-D"),
        (lambda: wavelet_coherence(X, X[:150], dt=1.0), r"same number of samples.*200 and 150.*common time span"),
        (lambda: compat.wct(X, X[:150], 1.0, sig=False), r"y1 and y2 must have the same number"),
        (lambda: wavelet_transform(X, dt=1.0, wavelet="haar"), r"unknown wavelet 'haar'.*morlet"),
        (lambda: compat.cwt(X, 1.0, wavelet="haar"), r"unknown wavelet"),
        (lambda: wavelet_transform(X, dt=1.0, preset="matlab"), r"unknown preset 'matlab'.*grinsted"),
        (lambda: wavelet_transform(X, dt=1.0, boundary="reflect"), r"unknown boundary 'reflect'.*symmetric"),
        (lambda: wavelet_transform(X, dt=0.0), r"dt must be a positive finite"),
        (lambda: wavelet_transform(X, dt=-1.0), r"dt must be a positive finite"),
        (lambda: compat.cwt(X, float("nan")), r"dt must be a positive finite"),
        (lambda: wavelet_transform(X), r"dt .* is required"),
        (lambda: wavelet_transform(X, dt=1.0, dtype="float16"), r"dtype must be 'float32' or 'float64'"),
        (lambda: wavelet_transform(X + 1j, dt=1.0), r"must be real-valued"),
        (lambda: wavelet_transform(np.array(["a", "b"]), dt=1.0), r"must be numeric"),
        (lambda: make_grid(100, 1.0, dj=0), r"dj must be a positive"),
        (lambda: make_grid(1, 1.0, s0=50.0), r"too short for the scale grid"),
    ],
)
def test_bad_input_message(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_inputs_never_modified(rng):
    x = rng.standard_normal(300)
    y = rng.standard_normal(300) + 4.0
    xc, yc = x.copy(), y.copy()
    x.flags.writeable = False
    y.flags.writeable = False
    wavelet_coherence(x, y, dt=0.1, preset="grinsted")
    wavelet_transform(np.vstack([x, y]), dt=0.1, boundary="symmetric")
    np.testing.assert_array_equal(x, xc)
    np.testing.assert_array_equal(y, yc)
