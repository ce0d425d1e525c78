"""Devices on the CPU: batch sizes from free memory, and asking for a GPU that is not there.

The GPU itself is exercised in ``tests/gpu`` (marked ``gpu``); here CuPy is made unimportable
(or replaced by a stub reporting no device), so these tests mean the same on any machine.
"""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

import bioxen_dask as bd
from bioxen_dask import cluster, kernels
from bioxen_dask.bench import gpu as bench_gpu
from bioxen_dask.grid import make_grid
from bioxen_dask.io import write_synthetic
from bioxen_dask.kernels import BatchDoesNotFitError, GPUUnavailableError, Smoother, batch_size_for, cwt
from bioxen_dask.kernels._device import check_device, memory_info, require_gpu, rows_per_batch
from bioxen_dask.pipeline import PipelineError, load_pipeline
from bioxen_dask.significance._montecarlo import MonteCarloSpec
from bioxen_dask.significance._surrogates import AR1Null

MiB, GiB = 2**20, 2**30


# ------------------------------------------------------------------------------ batch sizes
def test_batch_size_uses_the_safe_share_of_free_memory():
    assert batch_size_for(100 * MiB, 8 * GiB) == 40  # floor(4 GiB / 100 MiB)
    assert batch_size_for(100 * MiB, 8 * GiB, safety=1.0) == 81
    assert batch_size_for(100 * MiB, 8 * GiB, fixed_bytes=1 * GiB) == 30  # (4 - 1) GiB / 100 MiB
    assert batch_size_for(100 * MiB, 8 * GiB, limit=7) == 7
    assert batch_size_for(100 * MiB, 200 * MiB) == 1  # exactly one fits


def test_batch_that_cannot_fit_names_the_sizes_and_the_fix():
    with pytest.raises(BatchDoesNotFitError) as info:
        batch_size_for(300 * MiB, 512 * MiB, what="roi transform", reduce="the time block")
    msg = str(info.value)
    assert isinstance(info.value, MemoryError)
    assert "one roi transform needs 300.0 MiB" in msg and "only 256.0 MiB of 512.0 MiB free" in msg
    assert "Reduce the time block" in msg and "float32" in msg
    with pytest.raises(BatchDoesNotFitError, match="on top of 200.0 MiB fixed"):
        batch_size_for(100 * MiB, 512 * MiB, fixed_bytes=200 * MiB)
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match="safety"):
            batch_size_for(MiB, GiB, safety=bad)
    with pytest.raises(ValueError, match="bytes_per_item"):
        batch_size_for(0, GiB)


def test_cpu_batches_keep_the_task_budget_rule():
    # the CPU graph's rule before device-aware sizing: max(1, budget // per item)
    assert rows_per_batch(10 * MiB, 512 * MiB, np) == 51
    assert rows_per_batch(1024 * MiB, 512 * MiB, np) == 1
    assert rows_per_batch(MiB, 512 * MiB, np, limit=8) == 8


def _fake_cupy(free, total, pool_free, count=1):
    runtime = types.SimpleNamespace(memGetInfo=lambda: (free, total), getDeviceCount=lambda: count)
    pool = types.SimpleNamespace(free_bytes=lambda: pool_free)
    return types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=runtime, get_allocator=lambda: "default"),
                                 get_default_memory_pool=lambda: pool)


def test_device_free_memory_counts_the_cupy_pool(monkeypatch):
    monkeypatch.setitem(sys.modules, "rmm", None)  # no RMM pool
    info = memory_info(_fake_cupy(free=3 * GiB, total=80 * GiB, pool_free=GiB))
    assert (info.free, info.total) == (4 * GiB, 80 * GiB)  # cached free blocks are reusable
    assert "CuPy pool" in info.source
    host = memory_info(np)
    assert 0 < host.free <= host.total and "psutil" in host.source


# ------------------------------------------------------------------------------ no GPU here
@pytest.fixture
def no_cupy(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy -> ImportError, on any machine


def _assert_clear(err, *fragments):
    msg = str(err)
    for fragment in ("no GPU was found", "never falls back to the CPU", "pip install 'bioxen-dask[gpu]'",
                     "nvidia-smi", *fragments):
        assert fragment in msg, msg


def test_require_gpu_without_cupy_or_device(no_cupy, monkeypatch):
    with pytest.raises(GPUUnavailableError) as info:
        require_gpu("the test")
    _assert_clear(info.value, "the test: ", "CuPy cannot be imported", "use device='cpu'")
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(0, 0, 0, count=0))
    with pytest.raises(GPUUnavailableError) as info:
        require_gpu()
    _assert_clear(info.value, "CuPy reports 0 CUDA devices")
    assert cluster.GPUUnavailableError is GPUUnavailableError  # one error for every way of asking


def test_device_option_is_checked():
    assert check_device("cpu") == "cpu" and check_device("GPU") == "gpu" and check_device("cuda") == "gpu"
    with pytest.raises(ValueError, match=r"device must be one of \['cpu', 'gpu'\], got 'tpu'"):
        check_device("tpu")


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory):
    return write_synthetic(tmp_path_factory.mktemp("device") / "tiny.zarr", n_rois=4, n_frames=600, seed=3)


def test_coherence_on_gpu_without_one_is_an_error_not_a_cpu_run(tiny_store, no_cupy):
    kw = dict(reference="stimulus", min_period=1.0, max_period=4.0, dj=0.5, significance=None)
    cpu = bd.coherence(tiny_store, **kw).coherence_mean.compute(scheduler="sync")
    assert np.isfinite(cpu.values).all() and float(cpu.max()) > 0  # the same graph runs on the CPU
    lazy = bd.coherence(tiny_store, device="gpu", **kw)
    with pytest.raises(GPUUnavailableError) as info:
        lazy.coherence_mean.compute(scheduler="sync")
    _assert_clear(info.value, "coherence(device='gpu')")
    with pytest.raises(ValueError, match="device must be one of"):
        bd.coherence(tiny_store, device="tpu", **kw)


def test_pipeline_device_key_is_validated(tmp_path):
    text = ("input: {store: x.zarr}\noutputs: {path: out.zarr}\ncompute: {device: gpus}\n")
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(PipelineError, match=r"compute.device.*'gpus' is not allowed.*Did you mean 'gpu'"):
        load_pipeline(path)


def test_significance_on_gpu_without_one_is_an_error(no_cupy):
    spec = MonteCarloSpec(grid=make_grid(200, 1.0, dj=0.5), null=AR1Null(0.5, 0.2), n_samples=400,
                          root=np.random.SeedSequence(0), device="gpu")
    with pytest.raises(GPUUnavailableError) as info:
        spec.run(0, 1)
    _assert_clear(info.value, "significance(device='gpu')")


def test_gpu_benchmark_without_a_gpu_says_how_to_run_it(no_cupy, tmp_path):
    with pytest.raises(RuntimeError) as info:
        bench_gpu.run(tmp_path, quick=True)
    _assert_clear(info.value, "bioxen-dask bench gpu: ", "CuPy cannot be imported", "deploy/gpu/check-gpu.sh")
    assert not list(tmp_path.iterdir())  # nothing measured, nothing written


# ------------------------------------------------------------------------------ benchmark pieces
def test_benchmark_sub_batches_equal_one_batch():
    n = 512
    grid = make_grid(n, 1 / 30, dj=0.5)
    rng = np.random.default_rng(0)
    ref = rng.standard_normal(n)
    X = (ref + rng.standard_normal((5, n))).astype(np.float32)
    sm = Smoother(grid)
    Wr = cwt(ref[None], grid)
    Sr = sm(kernels.scaled_power(Wr, grid))
    whole = bench_gpu._mean_coherence(X, Wr, Sr, sm, batch=5)
    parts = bench_gpu._mean_coherence(X, Wr, Sr, sm, batch=2)
    assert whole.shape == (5, grid.n_scales)
    np.testing.assert_allclose(parts, whole, rtol=1e-6)
    assert 0.2 < float(whole.mean()) < 1.0  # correlated traces: real coherence values


def test_break_even_and_summary(tmp_path):
    from bioxen_dask.bench._harness import write_csv

    rows = [bench_gpu._row("cwt", n, "samples", n, 16, cpu, 1e-3, g - 2e-3, 1e-3, g, 1e-7, 1)
            for n, cpu, g in ((10**4, 0.01, 0.02), (10**5, 0.1, 0.05), (10**6, 1.0, 0.2))]
    rows += [bench_gpu._row("coherence", b, "rois", 4096, 44, 0.5, 1e-3, 0.9, 1e-3, 1.0, 1e-6, 1) for b in (10, 100)]
    assert bench_gpu.break_even(rows, "cwt")["size"] == 10**5
    assert bench_gpu.break_even(rows, "coherence") is None
    notes = [bench_gpu._break_even_note(rows, w) for w in ("cwt", "coherence")]
    assert notes[1] == "break-even coherence: none up to 100 rois (the CPU was faster at every size)"
    path = write_csv(tmp_path / "gpu.csv", rows, {"cpu": "EPYC", "gpu": "H200, 139 GiB"}, notes,
                     fields=bench_gpu.FIELDS)
    text = bench_gpu.summary_markdown(path)
    assert "- break-even cwt: 100,000 samples (GPU total 0.05 s" in text
    assert "| 100,000 samples | 16 | 0.1 | 0.001 | 0.048 | 0.001 | 0.05 | 2.00x | 1.0e-07 |" in text
    assert bench_gpu.figure(path).stat().st_size > 1000
