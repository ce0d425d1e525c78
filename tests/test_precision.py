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
