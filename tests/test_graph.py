"""Chunked (Dask) transforms equal in-memory ones; streaming reductions stay memory-bounded."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import dask.array as da
import numpy as np
import pytest
import xarray as xr
from scipy.signal import lfilter

from bioxen_dask import wavelet_transform
from bioxen_dask.graph import band_power, global_wavelet_spectrum, plan_chunks, wavelet_transform_dask
from bioxen_dask.grid import make_grid

DT = 0.1
N = 3000


@pytest.fixture(scope="module")
def traces():
    rng = np.random.default_rng(7)
    noise = rng.standard_normal((5, N))
    return lfilter([1.0], [1.0, -0.8], noise, axis=-1) + np.sin(2 * np.pi * np.arange(N) * DT / 4.0)


def _labelled(values, chunks=None):
    data = values if chunks is None else da.from_array(values, chunks=chunks)
    return xr.DataArray(data, dims=("roi", "time"), coords={"roi": [10, 11, 12, 13, 14], "time": np.arange(N) * DT})


def _rel(a, b):
    scale = np.nanmax(np.abs(b), axis=-1, keepdims=True)
    return float(np.nanmax(np.abs(a - b) / scale))


@pytest.mark.parametrize("boundary", ["linear", "symmetric", "valid"])
@pytest.mark.parametrize("time_chunk", [150, 420, 1000])
@pytest.mark.parametrize("dtype, tol", [("float64", 1e-9), ("float32", 1e-5)])
def test_chunked_equals_unchunked(traces, boundary, time_chunk, dtype, tol):
    ref = wavelet_transform(_labelled(traces), J=40, boundary=boundary, dtype=dtype)
    lazy = wavelet_transform_dask(_labelled(traces, (2, 500)), DT, J=40, boundary=boundary,
                                  dtype=dtype, time_chunk=time_chunk, roi_chunk=3)
    assert lazy.attrs["halo"] > 0 and len(lazy.data.chunks[2]) > 1  # really chunked, with halos
    got = lazy.compute(scheduler="sync")
    np.testing.assert_array_equal(np.isnan(got.values), np.isnan(ref.values))
    assert _rel(got.values, ref.values) <= tol
    assert got.roi.values.tolist() == [10, 11, 12, 13, 14]


@pytest.mark.parametrize("boundary", ["pycwt", "circular"])
def test_wrapping_modes_gather_time_into_one_chunk(traces, boundary):
    lazy = wavelet_transform(_labelled(traces, (2, 500)), J=30, boundary=boundary, dtype="float64")
    assert lazy.data.chunks[2] == (N,)
    ref = wavelet_transform(_labelled(traces), J=30, boundary=boundary, dtype="float64")
    assert _rel(lazy.values, ref.values) <= 1e-12


def test_plan_never_truncates_the_halo():
    grid = make_grid(N, DT, J=60)
    halo = grid.halo()
    plan = plan_chunks(5, N, grid, time_chunk=halo // 3)
    assert plan.time_chunk >= plan.halo == halo or plan.time_chunk == N
    whole = plan_chunks(5, 500, make_grid(500, DT))
    assert whole.time_chunk == 500 and whole.halo == 0


def test_global_wavelet_spectrum_streamed_equals_in_memory(traces):
    W = wavelet_transform(_labelled(traces), J=40, dtype="float64")
    outside = (W.period <= W.coi)
    ref = (np.abs(W) ** 2).where(outside).mean("time")
    got = global_wavelet_spectrum(_labelled(traces, (2, 500)), J=40, dtype="float64", time_chunk=400)
    assert got.dims == ("roi", "period")
    np.testing.assert_allclose(got.values, ref.values, rtol=1e-9)


def test_band_power_streamed_equals_torrence_compo_eq24(traces):
    bands = [(3.0, 5.0), (0.5, 1.0)]
    got = band_power(_labelled(traces, (2, 500)), bands, J=60, dtype="float64", time_chunk=400)
    W = wavelet_transform(_labelled(traces), J=60, dtype="float64")
    for b, (lo, hi) in enumerate(bands):
        sel = W.sel(period=slice(lo, hi))
        ref = (np.abs(sel) ** 2 / sel.scale).sum("period") * W.attrs["dj"] * DT / 0.776
        np.testing.assert_allclose(got.isel(band=b).values, ref.values, rtol=1e-9)
    # the 4 s sinusoid dominates its band
    assert float(got.isel(band=0).mean()) > 3 * float(got.isel(band=1).mean())


def test_band_power_rejects_an_empty_band(traces):
    with pytest.raises(ValueError, match="contains no scale"):
        band_power(_labelled(traces), [(1e3, 2e3)], J=20)


MEMORY_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np, zarr, dask, xarray as xr, dask.array as da
    from bioxen_dask.graph import band_power
    path, n = sys.argv[1], int(sys.argv[2])
    chunk = 1_000_000
    arr = zarr.create_array(path, shape=(1, n), chunks=(1, chunk), dtype="float32")
    rng = np.random.default_rng(0)
    for i in range(0, n, chunk):  # generated chunk by chunk: never all in memory
        arr[0, i:i + chunk] = rng.standard_normal(min(chunk, n - i)).astype("float32")
    sig = xr.DataArray(da.from_zarr(path), dims=("roi", "time"))
    out = band_power(sig, [(4.0, 16.0), (16.0, 64.0)], dt=1.0, dj=0.25, J=23, time_chunk=250_000)
    with dask.config.set(scheduler="threads", num_workers=2):
        means = out.mean("time").compute()
    print(float(means[0, 0]), float(means[0, 1]))
    from bioxen_dask.bench import peak_rss_mb  # this process's own peak, not pytest's (see there)
    print("PEAK_MB", peak_rss_mb())
    """
)


@pytest.mark.slow
def test_band_power_of_a_long_record_stays_memory_bounded(tmp_path):
    """2e7 samples x 24 scales (a 3.8 GB complex64 transform) in well under 1 GB of RSS."""
    n = 20_000_000
    proc = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(tmp_path / "long.zarr"), str(n)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.split()
    peak_mb = float(lines[lines.index("PEAK_MB") + 1])
    assert peak_mb < 1024, f"peak RSS {peak_mb:.0f} MB"
    # unit white noise has E|W_j|^2 = 1 (T&C normalisation), so eq. 24 averages to
    # dj*dt/C_delta * sum_j 1/s_j over the band's scales.
    grid = make_grid(n, 1.0, dj=0.25, J=23)
    for value, (lo, hi) in zip(map(float, lines[:2]), [(4.0, 16.0), (16.0, 64.0)]):
        sel = (grid.periods >= lo) & (grid.periods <= hi)
        expected = 0.25 * 1.0 / 0.776 * np.sum(1 / grid.scales[sel])
        assert value == pytest.approx(expected, rel=0.05)


def test_transform_of_a_signals_store_is_lazy_and_exact(tmp_path):
    from bioxen_dask.io import open_signals, write_signals

    rng = np.random.default_rng(3)
    values = rng.standard_normal((6, 2400)).astype("float32")
    store = write_signals(tmp_path / "s.zarr", values, fs=20.0, chunks=(3, 600))
    sig = open_signals(store)
    W = wavelet_transform(sig, J=30, dtype="float64")
    assert W.chunks is not None and W.dims == ("roi", "period", "time")
    ref = wavelet_transform(values.astype("float64"), dt=1 / 20, J=30, dtype="float64")
    assert _rel(W.values, ref.values) <= 1e-9


def test_reductions_write_to_zarr_one_task_per_chunk(traces, tmp_path):
    import zarr

    bp = band_power(_labelled(traces, (2, 500)), [(3.0, 5.0)], J=60, dtype="float32", time_chunk=400)
    path = tmp_path / "band_power.zarr"
    bp.to_dataset().to_zarr(path, mode="w", consolidated=False)
    stored = zarr.open_array(path / "band_power", mode="r")
    # Zarr chunks are exactly the Dask blocks: each output chunk has one writer.
    assert stored.chunks == tuple(c[0] for c in bp.data.chunks)
    assert all(len(set(c[:-1])) <= 1 and c[-1] <= c[0] for c in bp.data.chunks)
    np.testing.assert_allclose(stored[...], bp.values, rtol=1e-6)
