"""The GPU end to end: coherence(device='gpu'), a `--cluster cuda` pipeline run equal to the
CPU run, and the GPU benchmark at tiny sizes. Skipped without CuPy or a CUDA device."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _gpu_helpers import GPU

import bioxen_dask as bd
from bioxen_dask.bench import gpu as bench_gpu
from bioxen_dask.bench._harness import read_csv
from bioxen_dask.cli import main
from bioxen_dask.datasets import open_result
from bioxen_dask.io import write_synthetic

pytestmark = GPU

REPO = Path(__file__).resolve().parents[2]
SMALL = str(REPO / "pipelines" / "small_test.yaml")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return write_synthetic(tmp_path_factory.mktemp("gpu") / "small.zarr", n_rois=30, n_frames=3000, seed=8)


def test_coherence_device_gpu_equals_cpu(store):
    kw = dict(reference="stimulus", min_period=1.0, max_period=12.0, dj=0.25, significance=None, roi_chunk=8)
    cpu = bd.coherence(store, **kw).compute(scheduler="threads")
    gpu = bd.coherence(store, device="gpu", **kw).compute(scheduler="threads")
    for name in ("coherence_mean", "phase_consistency"):
        assert isinstance(gpu[name].values, np.ndarray)
        np.testing.assert_allclose(gpu[name].values, cpu[name].values, rtol=1e-4, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(np.exp(1j * gpu.phase_mean.values), np.exp(1j * cpu.phase_mean.values), atol=1e-4)
    assert float(cpu.coherence_mean.max()) > 0.5  # planted groups: a match of real numbers


def _run(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_pipeline_with_cluster_cuda_equals_the_cpu_run(store, tmp_path, capsys):
    def sets(out):
        return ["--set", f"input.store={store}", "--set", f"outputs.path={out}",
                "--set", f"significance.cache={tmp_path / 'cache'}", "--no-progress"]

    local, cuda = tmp_path / "local.zarr", tmp_path / "cuda.zarr"
    code, out, err = _run(["run", SMALL, "--cluster", "local", *sets(local)], capsys)
    assert code == 0, err
    code, out, err = _run(["run", SMALL, "--cluster", "cuda", "--set", "cluster.n_workers=null", *sets(cuda)],
                          capsys)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["cluster"]["kind"] == "cuda"
    a, b = open_result(local).compute(), open_result(cuda).compute()
    assert set(a.data_vars) == set(b.data_vars) and a.sizes == b.sizes
    for name in a.coords:
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
    np.testing.assert_array_equal(a.threshold.values, b.threshold.values)  # significance: same seeds, host
    for name in ("coherence_mean", "phase_consistency"):
        np.testing.assert_allclose(b[name].values, a[name].values, rtol=1e-4, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(np.exp(1j * a.phase_mean.values), np.exp(1j * b.phase_mean.values), atol=1e-4)
    step = 1.0 / a.coi_samples.values  # a point at the threshold may flip: one sample outside the COI
    assert np.all(np.abs(a.significant_fraction.values - b.significant_fraction.values) <= 2 * step + 1e-12)
    drop = {"run_key", "regions", "pipeline"}
    assert {k: v for k, v in a.attrs.items() if k not in drop} == {k: v for k, v in b.attrs.items() if k not in drop}
    assert json.loads(b.attrs["pipeline"])["cluster"]["kind"] == "cuda"


def test_gpu_benchmark_quick(tmp_path):
    path = bench_gpu.run(tmp_path, quick=True)
    rows, info, notes = read_csv(path)
    assert {r["workload"] for r in rows} == {"cwt", "coherence"}
    assert len(rows) == len(bench_gpu._QUICK_CWT) + len(bench_gpu._QUICK_ROIS)
    for r in rows:
        assert r["cpu_s"] > 0 and r["gpu_total_s"] > 0 and r["gpu_compute_s"] > 0
        assert r["max_rel_diff"] <= 1e-4, r  # float32 on both devices
    assert info["gpu"] and sum(n.startswith("break-even") for n in notes) == 2
    text = bench_gpu.summary_markdown(path)
    assert "break-even cwt" in text and "| size |" in text
    assert path.with_suffix(".png").stat().st_size > 1000
