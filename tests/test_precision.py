"""float32 (default) against float64."""

from __future__ import annotations

import numpy as np

from bioxen_dask import wavelet_coherence, wavelet_transform


def test_float32_transform_matches_float64(nino3):
    _, sst, dt = nino3
    W32 = wavelet_transform(sst, dt=dt, dtype="float32")
    W64 = wavelet_transform(sst, dt=dt, dtype="float64")
    assert W32.dtype == np.complex64 and W64.dtype == np.complex128
    a, b = np.abs(W32.values), np.abs(W64.values)
    meaningful = b > 1e-3 * b.max(axis=-1, keepdims=True)
    rel = np.abs(W32.values - W64.values)[meaningful] / b[meaningful]
    assert rel.max() <= 1e-4


def test_float32_coherence_matches_float64(ao_baltic):
    _, ao, baltic = ao_baltic
    c32 = wavelet_coherence(ao, baltic, dt=1.0, dtype="float32")
    c64 = wavelet_coherence(ao, baltic, dt=1.0, dtype="float64")
    assert c32.coherence.dtype == np.float32
    diff = np.abs(c32.coherence - c64.coherence)
    assert float(diff.max()) <= 1e-4


def _high_dynamic_range_pairs():
    """Records whose smoothed power spans many decades along time at a scale: a step, a
    spike, a noiseless chirp (each against noise or its noisy copy), z-scored."""
    rng = np.random.default_rng(1)
    step = 0.1 * rng.standard_normal(12_000)
    step[4000:] += 50
    spike = rng.standard_normal(8000)
    spike[4000] += 300
    n, dt = 4096, 1 / 30
    t = np.arange(n) * dt
    phase = 2 * np.pi * (t / (n * dt / 3) + (0.4 / dt) * t**2 / (2 * n * dt))
    pairs = {"step": (step, rng.standard_normal(12_000)), "spike": (spike, rng.standard_normal(8000)),
             "chirp": (np.cos(phase), np.cos(phase - 0.7) + 0.2 * rng.standard_normal(n))}
    return {k: tuple((v - v.mean()) / v.std() for v in ab) for k, ab in pairs.items()}


def test_float32_coherence_is_accurate_where_both_powers_are_resolved():
    """The float32 contract the README states: both methods agree with float64 to 1e-4 where
    each record's smoothed power is at least 1e-3 of its largest value at that scale, and to
    1e-3 from 1e-4; below, float32 rounding (~1e-7 of the row's largest power) dominates and
    the coherence can be anything in [0, 1] (use dtype="float64" for such records)."""
    from bioxen_dask.grid import make_grid
    from bioxen_dask.kernels import Smoother, coherence, cwt, power

    for name, (a, b) in _high_dynamic_range_pairs().items():
        grid = make_grid(a.size, 1.0)
        sm = Smoother(grid)
        W1, W2 = cwt(a, grid, dtype="float64"), cwt(b, grid, dtype="float64")
        S1, S2 = sm.scaled(power(W1)), sm.scaled(power(W2))
        R64, _ = coherence(W1, W2, sm)
        resolved = np.minimum(S1 / S1.max(axis=1, keepdims=True), S2 / S2.max(axis=1, keepdims=True))
        for method in ("exact", "multirate"):
            err = np.abs(wavelet_coherence(a, b, 1.0, method=method, normalize=False).coherence.values - R64)
            assert err[resolved >= 1e-3].max() <= 1e-4, (name, method)
            assert err[resolved >= 1e-4].max() <= 1e-3, (name, method)
