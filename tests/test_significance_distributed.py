"""The distributed Monte Carlo stage: bit-identical results for 1, 2 and 4 workers, any batch
size, local or distributed schedulers; progress reporting on both."""

from __future__ import annotations

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

from bioxen_dask.grid import make_grid  # noqa: E402
from bioxen_dask.significance import AR1Null, FourierNull, ar1_thresholds, surrogate_significance  # noqa: E402

GRID = make_grid(256, 1.0, dj=0.25)
MC = 64


@pytest.fixture(scope="module")
def reference():
    """Serial, one batch: the numbers every other configuration must reproduce bit for bit."""
    pooled = surrogate_significance(GRID, AR1Null(0.8, 0.3), mc_count=MC, levels=(0.95, 0.99), seed=2024,
                                    batch_size=MC, scheduler="sync")
    x = np.random.default_rng(0).standard_normal((2, 256)).cumsum(axis=1)
    fields = surrogate_significance(GRID, FourierNull(*x), mc_count=24, seed=7, pointwise=True,
                                    time_averaged=True, batch_size=24, scheduler="sync")
    return pooled, fields, x


@pytest.mark.parametrize("n_workers", [1, 2, 4])
def test_identical_across_workers_and_batch_sizes(reference, n_workers):
    pooled, fields, x = reference
    with distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        for batch_size in (7, 32):
            res = surrogate_significance(GRID, AR1Null(0.8, 0.3), mc_count=MC, levels=(0.95, 0.99),
                                         seed=2024, batch_size=batch_size, scheduler=client)
            np.testing.assert_array_equal(res.histogram, pooled.histogram)
            np.testing.assert_array_equal(res.thresholds, pooled.thresholds)
        # the active client is used when no scheduler is given
        thr = ar1_thresholds(GRID, 0.3, 0.8, mc_count=MC, levels=(0.95, 0.99), seed=2024, batch_size=5)
        np.testing.assert_array_equal(thr, pooled.thresholds)
        res = surrogate_significance(GRID, FourierNull(*x), mc_count=24, seed=7, pointwise=True,
                                     time_averaged=True, batch_size=5, scheduler=client)
        np.testing.assert_array_equal(res.pointwise, fields.pointwise)
        np.testing.assert_array_equal(res.null_time_averaged, fields.null_time_averaged)
        np.testing.assert_array_equal(res.thresholds, fields.thresholds)


@pytest.mark.parametrize("scheduler", ["threads", "sync"])
def test_identical_on_local_schedulers(reference, scheduler):
    pooled, _, _ = reference
    for batch_size in (1, 9):
        res = surrogate_significance(GRID, AR1Null(0.8, 0.3), mc_count=MC, levels=(0.95, 0.99), seed=2024,
                                     batch_size=batch_size, scheduler=scheduler)
        np.testing.assert_array_equal(res.thresholds, pooled.thresholds)


def test_different_seeds_differ(reference):
    pooled, _, _ = reference
    other = ar1_thresholds(GRID, 0.8, 0.3, mc_count=MC, levels=(0.95, 0.99), seed=2025, scheduler="sync")
    assert not np.array_equal(other, pooled.thresholds)


def test_progress_local_and_distributed(capsys):
    ar1_thresholds(GRID, 0.5, 0.5, mc_count=8, seed=1, batch_size=2, scheduler="threads", progress=True)
    err = capsys.readouterr().err
    assert "4/4" in err  # tqdm counted the four batch tasks
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=2,
                            dashboard_address=None) as client:
        thr = ar1_thresholds(GRID, 0.5, 0.5, mc_count=8, seed=1, batch_size=2, scheduler=client, progress=True)
    assert np.isfinite(thr[:10]).all()


def test_memory_per_task_is_stated():
    res = surrogate_significance(GRID, AR1Null(0.8, 0.3), mc_count=4, seed=0, scheduler="sync")
    assert 0 < res.attrs["memory_per_task_bytes"] < 64 * 2**20
    assert res.attrs["engine"] == "multirate"
