"""The native single-pair API: labelled outputs, analytic cases, agreement with compat."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from bioxen_dask import compat, wavelet_coherence, wavelet_transform


def test_wavelet_coherence_dataset_layout(ao_baltic):
    _, ao, baltic = ao_baltic
    ds = wavelet_coherence(ao, baltic, dt=1.0)
    assert set(ds.data_vars) == {"coherence", "phase", "cross_power", "coi"}
    assert ds.coherence.dims == ds.phase.dims == ("period", "time")
    assert ds.coi.dims == ("time",)
    assert {"period", "scale", "frequency", "time"} <= set(ds.coords)
    np.testing.assert_allclose(ds.period, ds.scale * 4 * np.pi / (6 + np.sqrt(38)))
    np.testing.assert_allclose(ds.frequency, 1 / ds.period)
    for key in ("preset", "boundary", "dt", "dj", "s0", "J", "wavelet", "dtype", "tol", "bioxen_dask_version"):
        assert key in ds.attrs
    assert ds.phase.attrs["units"] == "rad" and "leads" in ds.phase.attrs["convention"]
    assert float(ds.coherence.min()) >= 0 and float(ds.coherence.max()) <= 1


def test_pycwt_boundary_float64_equals_compat_wct(ao_baltic):
    _, ao, baltic = ao_baltic
    ds = wavelet_coherence(ao, baltic, dt=1.0, boundary="pycwt", dtype="float64")
    WCT, aWCT, coi, freq, _ = compat.wct(ao, baltic, 1.0, sig=False)
    np.testing.assert_allclose(ds.coherence, WCT, atol=1e-12)
    np.testing.assert_allclose(ds.coi, coi)
    np.testing.assert_allclose(ds.frequency, freq)


def test_valid_boundary_masks_the_edges_and_equals_linear_inside(rng):
    """Regression: the valid transform's NaN edges once spread through the smoothing FFTs and
    left every sample NaN."""
    x, y = rng.standard_normal(3000), rng.standard_normal(3000)
    valid = wavelet_coherence(x, y, dt=0.1, boundary="valid", dtype="float64")
    linear = wavelet_coherence(x, y, dt=0.1, dtype="float64")
    from bioxen_dask.grid import make_grid

    grid = make_grid(3000, 0.1)
    sup = grid.wavelet_support() + grid.smoothing_support()
    for j in (0, 30, 60):
        h = int(sup[j])
        row = valid.coherence.values[j]
        assert np.isnan(row[:h]).all() and np.isnan(row[-h:]).all()
        np.testing.assert_allclose(row[h:-h], linear.coherence.values[j, h:-h], rtol=0, atol=1e-12)
        np.testing.assert_allclose(valid.phase.values[j, h:-h], linear.phase.values[j, h:-h], atol=1e-12)
        hw = int(grid.wavelet_support()[j])
        assert np.isnan(valid.cross_power.values[j, :hw]).all()
        np.testing.assert_allclose(valid.cross_power.values[j, hw:-hw], linear.cross_power.values[j, hw:-hw])


@pytest.mark.parametrize("lag_fraction", [0.125, 0.25, -0.25])
def test_phase_and_coherence_of_lagged_sinusoids(lag_fraction, rng):
    """x leads y by lag_fraction of a cycle at period P: coherence ~1, phase = 2*pi*fraction."""
    dt, P = 0.05, 4.0
    t = np.arange(0, 200, dt)
    x = np.sin(2 * np.pi * t / P) + 0.05 * rng.standard_normal(t.size)
    y = np.sin(2 * np.pi * (t / P - lag_fraction)) + 0.05 * rng.standard_normal(t.size)
    ds = wavelet_coherence(x, y, dt=dt, dtype="float64")
    band = ds.sel(period=P, method="nearest")
    inside = band.coi >= band.period
    assert float(band.coherence.where(inside).min()) > 0.95
    mean_phase = np.angle(np.exp(1j * band.phase.where(inside)).mean())
    assert mean_phase == pytest.approx(2 * np.pi * lag_fraction, abs=0.02)


def test_independent_noise_is_not_coherent_on_average(rng):
    x, y = rng.standard_normal(4000), rng.standard_normal(4000)
    ds = wavelet_coherence(x, y, dt=1.0, J=40)
    outside = ds.period <= ds.coi
    assert float(ds.coherence.where(outside).mean()) < 0.45


def test_wavelet_transform_many_signals_and_dataarray(nino3):
    _, sst, dt = nino3
    sig = xr.DataArray(np.vstack([sst, sst[::-1]]), dims=("roi", "time"),
                       coords={"roi": [7, 9], "time": np.arange(sst.size) * dt})
    W = wavelet_transform(sig)  # dt read from the time coordinate
    assert W.dims == ("roi", "period", "time") and W.name == "wavelet"
    assert W.roi.values.tolist() == [7, 9] and W.attrs["dt"] == dt
    single = wavelet_transform(sst[::-1], dt=dt)
    np.testing.assert_allclose(W.sel(roi=9).values, single.values, rtol=0, atol=1e-5 * float(abs(single).max()))
    assert "coi" in W.coords and W.coi.dims == ("time",)


def test_wavelet_transform_reads_dt_by_the_rule_coherence_uses(rng):
    """One rule for dt from a DataArray (``_labels.dt_of``): a given dt must agree with the time
    coordinate or the fs attr; with neither, dt= is needed."""
    x = rng.standard_normal(256)
    on_time = xr.DataArray(x, dims="time", coords={"time": np.arange(256) * 0.5})
    assert wavelet_transform(on_time, dt=0.5).attrs["dt"] == 0.5
    with pytest.raises(ValueError, match="contradicts the signals' time coordinate"):
        wavelet_transform(on_time, dt=0.25)
    with pytest.raises(ValueError, match="contradicts the signals' fs attribute"):
        wavelet_transform(xr.DataArray(x, dims="time", attrs={"fs": 4.0}), dt=0.5)
    with pytest.raises(ValueError, match="cannot be read from the signals.*pass dt=\\.$"):
        wavelet_transform(xr.DataArray(x, dims="time"))


def test_wavelet_transform_multirate_in_memory_and_chunked():
    """method='multirate' through the public transform: in memory and chunked with halos, within
    1e-6 of each scale's largest coefficient of the exact float64 transform (a real recording:
    matplotlib's membrane potential, 12,000 samples, on pycwt's default grid)."""
    import dask.array as da

    from bioxen_dask import graph
    from bioxen_dask.grid import make_grid
    from bioxen_dask.kernels._multirate_cwt import cwt_strides
    from bioxen_dask.sample_data import load_membrane

    v = load_membrane()
    x = np.vstack([v, v[::-1]])
    exact = wavelet_transform(x, dt=1.0, dtype="float64").values
    mr = wavelet_transform(x, dt=1.0, method="multirate")
    assert mr.attrs["method"] == "multirate" and mr.dtype == np.complex64
    assert wavelet_transform(x, dt=1.0).attrs["method"] == "exact"
    assert float(_scale_error(mr.values, exact).max()) <= 1e-6
    chunked = xr.DataArray(da.from_array(x, chunks=(1, 3000)), dims=("roi", "time"), coords={"time": np.arange(v.size)})
    lazy = wavelet_transform(chunked, method="multirate")
    assert lazy.attrs["method"] == "multirate" and lazy.chunks is not None
    assert float(_scale_error(lazy.values, exact).max()) <= 1e-6
    # time blocks with halos (periods up to ~200 samples, strides up to 8: a halo of 1,335 samples)
    blocked = graph.wavelet_transform_dask(chunked, 1.0, J=80, time_chunk=4000, method="multirate")
    assert len(blocked.data.chunks[2]) == 3 and 0 < blocked.attrs["halo"] < 4000
    exact = wavelet_transform(x, dt=1.0, J=80, dtype="float64").values
    assert (cwt_strides(make_grid(12000, 1.0, J=80), 6670) > 1).sum() >= 20
    assert float(_scale_error(blocked.values, exact).max()) <= 1e-6
    valid = graph.wavelet_transform_dask(chunked, 1.0, J=80, time_chunk=4000, boundary="valid", method="multirate")
    ref_valid = wavelet_transform(x, dt=1.0, J=80, boundary="valid", dtype="float64").values
    inside = np.isfinite(ref_valid)
    assert np.array_equal(np.isfinite(valid.values), inside)
    assert float(np.abs(valid.values - ref_valid)[inside].max()) <= 1e-6 * float(np.abs(ref_valid[inside]).max())


def _scale_error(W, ref):
    return np.abs(W - ref).max(axis=-1) / np.abs(ref).max(axis=-1)


def test_wavelet_transform_method_errors_name_the_fix(rng):
    import dask.array as da

    x = rng.standard_normal(2000)
    with pytest.raises(ValueError, match=r"unknown method 'fast'.*\['exact', 'multirate'\]"):
        wavelet_transform(x, dt=1.0, method="fast")
    with pytest.raises(ValueError, match="float32"):
        wavelet_transform(x, dt=1.0, method="multirate", dtype="float64")
    with pytest.raises(ValueError, match="boundary 'linear' or 'valid', not 'pycwt'.*preset"):
        wavelet_transform(x, dt=1.0, method="multirate", preset="pycwt")  # the preset selects pycwt's boundary
    with pytest.raises(ValueError, match="Morlet wavelet"):
        wavelet_transform(x, dt=1.0, method="multirate", wavelet="paul")
    lazy = xr.DataArray(da.from_array(x, chunks=500), dims="time")
    with pytest.raises(ValueError, match="Morlet wavelet"):  # at graph construction, not at compute
        wavelet_transform(lazy, dt=1.0, method="multirate", wavelet="paul")
    with pytest.raises(ValueError, match="unknown method"):
        wavelet_transform(lazy, dt=1.0, method="Fast")
    W = wavelet_transform(x, dt=1.0, method="multirate", preset="pycwt", boundary="linear")  # explicit boundary wins
    assert W.attrs["boundary"] == "linear" and W.attrs["method"] == "multirate"
