"""Monte Carlo significance on CuPy: surrogate coherence and histograms equal NumPy's.

Histograms are integer counts of float coherences in 1000 bins, so a value that rounding
moves across a bin edge moves one count by one bin: the comparison is of the cumulative
histograms (the distribution the levels are read from), whose largest difference is the net
number of values crossing one edge -- at most ``RTOL[dtype]`` of the counts per scale.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from _gpu_helpers import GPU, RTOL, rel_err

from bioxen_dask.grid import make_grid
from bioxen_dask.significance._montecarlo import MonteCarloSpec, levels_from_histograms
from bioxen_dask.significance._multirate import multirate_plan
from bioxen_dask.significance._surrogates import AR1Null

pytestmark = GPU


def _cdf_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Largest |CDF_a - CDF_b| per scale, relative to the scale's count."""
    a = a.reshape(a.shape[0], -1).astype(float)
    b = b.reshape(b.shape[0], -1).astype(float)
    total = np.maximum(b.sum(axis=-1, keepdims=True), 1)
    return float((np.abs(np.cumsum(a - b, axis=-1)) / total).max())


def test_multirate_coherence_values_on_cupy_equal_numpy():
    import cupy

    grid = make_grid(600, 1.0, dj=0.25)
    plan = multirate_plan(grid, 2000, "pycwt", "pycwt", 1000)
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((2, 2000)).astype(np.float32)
    host = list(plan._coherence(xs, np))
    dev = list(plan._coherence(cupy.asarray(xs), cupy))
    assert len(host) == len(dev) > 1
    for (_, b, r_h), (_, _, r_d) in zip(host, dev):
        assert isinstance(r_d, cupy.ndarray)
        assert rel_err(r_d, r_h) <= RTOL["float32"], b.own  # the multirate engine works in float32


@pytest.mark.parametrize(("engine", "dtype"), [("multirate", "float32"), ("exact", "float32"), ("exact", "float64")])
def test_surrogate_histograms_on_cupy_equal_numpy(engine, dtype):
    grid = make_grid(400, 1.0, dj=0.25)
    spec = MonteCarloSpec(grid=grid, null=AR1Null(0.6, 0.3), n_samples=1200, root=np.random.SeedSequence(11),
                          engine=engine, dtype=dtype, boundary="pycwt")
    cpu = spec.run(0, 6)
    gpu = dataclasses.replace(spec, device="gpu").run(0, 6)
    assert isinstance(gpu.counts, np.ndarray) and gpu.counts.dtype == np.int64  # partials come back to the host
    assert gpu.counts.sum() == cpu.counts.sum() > 0  # the same points were counted
    assert _cdf_diff(gpu.counts, cpu.counts) <= RTOL[dtype]
    h_cpu = (cpu.counts * spec.class_weights()[:, :, None]).sum(axis=1)
    h_gpu = (gpu.counts * spec.class_weights()[:, :, None]).sum(axis=1)
    lv_cpu, lv_gpu = levels_from_histograms(h_cpu, [0.95]), levels_from_histograms(h_gpu, [0.95])
    ok = np.isfinite(lv_cpu)
    assert ok.sum() > 3
    assert np.abs(lv_gpu[ok] - lv_cpu[ok]).max() <= 1e-3  # within one bin of the 95% level


def test_exact_engine_fields_on_cupy_equal_numpy():
    grid = make_grid(300, 1.0, dj=0.25)
    spec = MonteCarloSpec(grid=grid, null=AR1Null(0.5, 0.5, length=300), n_samples=300,
                          root=np.random.SeedSequence(4), engine="exact", dtype="float64", boundary="linear",
                          topk=3, time_averaged=True)
    cpu = spec.run(0, 4)
    gpu = dataclasses.replace(spec, device="gpu").run(0, 4)
    assert isinstance(gpu.topk, np.ndarray) and isinstance(gpu.means, np.ndarray)
    assert rel_err(np.where(np.isfinite(gpu.topk), gpu.topk, np.nan),
                   np.where(np.isfinite(cpu.topk), cpu.topk, np.nan)) <= 1e-6  # float32 storage of float64 work
    assert rel_err(gpu.means, cpu.means) <= RTOL["float64"]
