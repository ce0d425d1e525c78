"""QA of the long-record layer (:mod:`bioxen_dask.graph`): exactness across wavelets, boundaries
and awkward chunkings, streamed reductions against in-memory ones, and input checks.

References are the package's in-memory transform and pycwt; every tolerance is rounding
(float64: ~1e-15 relative observed, asserted at 1e-12; float32: ~2.5e-7 observed, asserted at
2e-6)."""

from __future__ import annotations

import tracemalloc
import warnings

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr

from bioxen_dask import wavelet_transform
from bioxen_dask.graph import band_power, global_wavelet_spectrum, plan_chunks, wavelet_transform_dask
from bioxen_dask.grid import make_grid

DT = 1.0
CDELTA = {"morlet": 0.776, "paul": 1.132, "dog": 3.541}
GRIDS = {"morlet": dict(J=24, dj=0.25), "paul": dict(J=10, dj=0.25), "dog": dict(J=20, dj=0.25)}


def _labelled(values, chunks=None, dt=DT):
    data = values if chunks is None else da.from_array(values, chunks=chunks)
    return xr.DataArray(data, dims=("roi", "time"), coords={"time": np.arange(values.shape[-1]) * dt})


def _rel(a, b):
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    if not np.isfinite(b).any():
        return 0.0
    return float(np.nanmax(np.abs(a - b)) / np.nanmax(np.abs(b)))


def _noise(shape, seed=0, offset=0.0):
    return np.random.default_rng(seed).standard_normal(shape) + offset


# ---------------------------------------------------------------- 1. chunked == unchunked
@pytest.mark.parametrize("wavelet", ["morlet", "paul", "dog"])
@pytest.mark.parametrize("boundary", ["linear", "symmetric", "valid", "circular"])
def test_chunked_equals_unchunked_for_awkward_chunkings(wavelet, boundary):
    """Records barely longer than the halo, prime lengths and chunks, a chunk shorter than the
    halo, a tiny requested chunk, and input chunks of 13 samples (not aligned to anything)."""
    kw = GRIDS[wavelet]
    halo = make_grid(1000, DT, wavelet=wavelet, **kw).halo()
    for n, time_chunk in [(halo + 1, 7), (2 * halo + 3, halo - 1), (1009, 97), (997, 1), (1009, 1008)]:
        x = _noise((2, n), seed=n)
        ref = wavelet_transform(_labelled(x), wavelet=wavelet, boundary=boundary, dtype="float64", **kw)
        lazy = wavelet_transform_dask(_labelled(x, (1, 13)), DT, wavelet=wavelet, boundary=boundary,
                                      dtype="float64", time_chunk=time_chunk, roi_chunk=1, **kw)
        if boundary != "circular":
            assert min(lazy.data.chunks[2]) >= lazy.attrs["halo"]  # halo never truncated
        assert _rel(lazy.compute(scheduler="sync").values, ref.values) <= 1e-12, (n, time_chunk)


@pytest.mark.parametrize("wavelet", ["morlet", "paul", "dog"])
def test_chunked_float32_within_float32_rounding(wavelet):
    kw = {"morlet": dict(J=16, dj=0.25), "paul": dict(J=4, dj=0.25), "dog": dict(J=20, dj=0.25)}[wavelet]
    x = _noise((2, 3001), seed=1)
    ref = wavelet_transform(_labelled(x), wavelet=wavelet, dtype="float64", **kw).values
    got = wavelet_transform_dask(_labelled(x, (2, 300)), DT, wavelet=wavelet, dtype="float32",
                                 time_chunk=300, **kw)
    assert len(got.data.chunks[2]) > 1
    assert _rel(got.compute(scheduler="sync").values, ref) <= 2e-6


def test_chunked_pycwt_mode_is_pycwt_and_linear_interior_matches_it():
    pycwt = pytest.importorskip("pycwt")
    n, dt = 3001, 0.5
    x = _noise(n, seed=3)
    Wp, sj, _, coi, _, _ = pycwt.cwt(x, dt, dj=1 / 12, s0=-1, J=40, wavelet=pycwt.Morlet(6))
    exact = wavelet_transform_dask(_labelled(x[None], (1, 500), dt), dt, J=40, boundary="pycwt",
                                   dtype="float64").compute(scheduler="sync")
    np.testing.assert_allclose(exact.scale.values, sj, rtol=1e-14)
    assert float(np.max(np.abs(exact.values[0] - Wp))) <= 1e-12 * float(np.max(np.abs(Wp)))
    lin = wavelet_transform_dask(_labelled(x[None], (1, 500), dt), dt, J=40, dtype="float64",
                                 time_chunk=400)
    assert len(lin.data.chunks[2]) > 1
    W = lin.compute(scheduler="sync").values[0]
    # where neither convention sees an edge (outside the COI, farther than the support from both
    # ends) and the wavelet is resolved (>= 4 samples per scale), linear == pycwt (to 3e-11 seen)
    support = np.ceil(lin.scale.values * 6.8 / dt)[:, None]
    t = np.arange(n)[None, :]
    interior = ((lin.period.values[:, None] <= coi[None, :]) & (lin.scale.values[:, None] / dt >= 4)
                & (t >= support) & (t < n - support))
    assert interior.sum() > 50_000
    assert float(np.max(np.abs(W - Wp)[interior])) <= 1e-9 * float(np.max(np.abs(Wp)))


# ---------------------------------------------------------------- 3. streamed reductions
def _gws_reference(W, outside_coi=True):
    power = np.abs(W) ** 2
    return (power.where(W.period <= W.coi) if outside_coi else power).mean("time")


@pytest.mark.parametrize("wavelet", ["morlet", "paul", "dog"])
@pytest.mark.parametrize("preset", ["pycwt", "grinsted"])
def test_reductions_equal_in_memory_for_every_wavelet_and_preset(wavelet, preset):
    """The Grinsted preset removes each record's mean and uses its own COI; the streamed
    reductions must do the same as the in-memory transform (a +3 offset makes it visible)."""
    x = _noise((3, 1500), seed=5, offset=3.0)
    sig = _labelled(x, (2, 400), dt=0.1)
    J = 8 if wavelet == "paul" else 30  # Paul's halo is ~100 scales
    # the reductions are always linear: the in-memory reference names that boundary (a named
    # preset alone would select its tool's padding)
    W = wavelet_transform(_labelled(x, dt=0.1), J=J, dtype="float64", preset=preset, wavelet=wavelet,
                          boundary="linear")
    for outside in (True, False):
        got = global_wavelet_spectrum(sig, J=J, dtype="float64", preset=preset, wavelet=wavelet,
                                      time_chunk=200, outside_coi=outside)
        assert got.attrs["halo"] > 0 and got.attrs["time_chunk"] < 1500  # really streamed
        assert _rel(got.values, _gws_reference(W, outside).values) <= 1e-12
    band = (0.25, 1.0)
    bp = band_power(sig, [band], J=J, dtype="float64", preset=preset, wavelet=wavelet, time_chunk=200)
    sel = W.sel(period=slice(*band))
    ref = (np.abs(sel) ** 2 / sel.scale).sum("period") * W.attrs["dj"] * 0.1 / CDELTA[wavelet]
    assert _rel(bp.isel(band=0).values, ref.values) <= 1e-12


def test_streamed_band_power_float32_within_rounding():
    x = _noise((2, 2000), seed=6)
    W = wavelet_transform(_labelled(x), J=24, dj=0.25, dtype="float64")
    sel = W.sel(period=slice(4.0, 16.0))
    ref = (np.abs(sel) ** 2 / sel.scale).sum("period") * 0.25 / 0.776
    got = band_power(_labelled(x, (2, 500)), [(4.0, 16.0)], J=24, dj=0.25, time_chunk=300)
    assert got.dtype == np.float32
    assert _rel(got.isel(band=0).values, ref.values) <= 2e-6
    gws = global_wavelet_spectrum(_labelled(x, (2, 500)), J=24, dj=0.25, time_chunk=300)
    assert _rel(gws.values, _gws_reference(W).values) <= 2e-6


def test_block_coi_equals_the_grid_coi():
    from bioxen_dask.graph import _coi_slice

    for n in (1000, 1001):
        grid = make_grid(n, 0.1, J=20)
        for conv in ("pycwt", "grinsted"):
            full = grid.coi(n, conv)
            pieces = np.concatenate([_coi_slice(grid, n, t0, min(137, n - t0), conv) for t0 in range(0, n, 137)])
            np.testing.assert_array_equal(pieces, full)


def test_streamed_reduction_never_holds_the_whole_transform():
    """Peak traced allocation of the streamed spectrum is a small fraction of the transform."""
    n, J = 400_000, 23
    x = np.random.default_rng(0).standard_normal((1, n)).astype(np.float32)
    sig = xr.DataArray(da.from_array(x, chunks=(1, 50_000)), dims=("roi", "time"))
    grid = make_grid(n, 1.0, dj=0.25, J=J)
    full = n * grid.n_scales * 8  # complex64 transform, 77 MB
    gws = global_wavelet_spectrum(sig, dt=1.0, dj=0.25, J=J, time_chunk=25_000)
    bp = band_power(sig, [(4.0, 16.0)], dt=1.0, dj=0.25, J=J, time_chunk=25_000)
    # no block of the graph is wider than a chunk plus its halos
    assert max(gws.attrs["time_chunk"], bp.attrs["time_chunk"]) + 2 * gws.attrs["halo"] < n / 8
    tracemalloc.start()
    try:
        with dask.config.set(scheduler="sync"):
            gws.compute()
            bp.mean("time").compute()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < full / 4, f"peak {peak / 1e6:.0f} MB against a {full / 1e6:.0f} MB transform"


def test_a_block_too_large_for_its_budget_is_announced():
    """The default grid's largest scale needs a halo of several record lengths, so the record
    becomes one block: say so (with the fix) instead of silently holding the full transform."""
    n = 2_000_000
    sig = xr.DataArray(da.zeros((1, n), chunks=(1, 100_000)), dims=("roi", "time"))
    for build in (lambda: global_wavelet_spectrum(sig, dt=1.0),
                  lambda: band_power(sig, [(4.0, 16.0)], dt=1.0),
                  lambda: wavelet_transform_dask(sig, 1.0)):
        with pytest.warns(UserWarning, match=r"(?s)halo.*J="):
            build()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        global_wavelet_spectrum(sig, dt=1.0, dj=0.25, J=23)  # the streamed case stays quiet


# ---------------------------------------------------------------- 4. bad input
def _builders(sig, **kw):
    return {
        "wavelet_transform": lambda: wavelet_transform(sig, J=20, **kw),
        "global_wavelet_spectrum": lambda: global_wavelet_spectrum(sig, J=20, **kw),
        "band_power": lambda: band_power(sig, [(0.5, 1.0)], J=20, **kw),
    }


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_raise_naming_roi_and_frame(bad):
    x = _noise((3, 2000), seed=8)
    x[2, 1234] = bad
    before = x.copy()
    for name, build in _builders(_labelled(x, (2, 500), dt=0.1)).items():
        lazy = build()  # lazy: the check runs with the blocks
        with pytest.raises(ValueError, match=r"(?s)non-finite.*position 2.*frame 1234.*interpolate"):
            lazy.compute(scheduler="sync")
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("dtype, match", [(np.complex128, "real"), (object, "numeric"), ("U3", "numeric")])
def test_complex_or_non_numeric_signals_are_refused(dtype, match):
    x = _noise((2, 600), seed=9).astype(dtype)
    for name, build in _builders(_labelled(x, (2, 300), dt=0.1)).items():
        with pytest.raises(ValueError, match=match):
            build()


def test_integer_and_boolean_signals_equal_their_float64_transform():
    x = (_noise((2, 1200), seed=10) * 20).astype(np.int16)
    ref = wavelet_transform(_labelled(x.astype(float), dt=0.1), J=20, dtype="float64").values
    got = wavelet_transform(_labelled(x, (2, 300), dt=0.1), J=20, dtype="float64")
    assert _rel(got.values, ref) <= 1e-12
    gref = global_wavelet_spectrum(_labelled(x.astype(float), (2, 300), dt=0.1), J=20, dtype="float64")
    assert _rel(global_wavelet_spectrum(_labelled(x, (2, 300), dt=0.1), J=20, dtype="float64").values,
                gref.values) <= 1e-12


def test_reductions_refuse_records_too_short_for_the_grid():
    sig = _labelled(_noise((2, 3)), (2, 3), dt=0.1)
    with pytest.raises(ValueError, match="fewer than the smallest wavelet needs"):
        wavelet_transform(sig)
    with pytest.raises(ValueError, match="fewer than the smallest wavelet needs"):
        global_wavelet_spectrum(sig)
    with pytest.raises(ValueError, match="fewer than the smallest wavelet needs"):
        band_power(sig, [(0.2, 0.3)])


def test_one_dimensional_and_plain_array_signals():
    x = _noise((2, 1500), seed=11)
    ref = global_wavelet_spectrum(_labelled(x, (2, 500), dt=0.1), J=20, dtype="float64")
    one = global_wavelet_spectrum(xr.DataArray(da.from_array(x[1], chunks=500), dims=("time",)), dt=0.1,
                                  J=20, dtype="float64")
    assert one.dims == ("period",)
    np.testing.assert_allclose(one.values, ref.values[1], rtol=1e-12)
    plain = global_wavelet_spectrum(da.from_array(x, chunks=(1, 500)), dt=0.1, J=20, dtype="float64")
    np.testing.assert_allclose(plain.values, ref.values, rtol=1e-12)
    bp = band_power(x[0], [(0.5, 1.0)], dt=0.1, J=20, dtype="float64")
    bref = band_power(_labelled(x, (2, 500), dt=0.1), [(0.5, 1.0)], J=20, dtype="float64")
    assert bp.dims == ("band", "time")
    np.testing.assert_allclose(bp.values, bref.values[0], rtol=1e-12)
    with pytest.raises(ValueError, match="dt"):
        global_wavelet_spectrum(x, J=20)  # a plain array has no time coordinate
    with pytest.raises(ValueError, match=r"\(roi, time\)"):
        global_wavelet_spectrum(np.zeros((2, 2, 100)), dt=0.1)


@pytest.mark.parametrize("kw, match", [
    (dict(time_chunk=0), "time_chunk"), (dict(time_chunk=-5), "time_chunk"), (dict(time_chunk=2.5), "time_chunk"),
    (dict(roi_chunk=0), "roi_chunk"), (dict(roi_chunk=-1), "roi_chunk"),
])
def test_chunk_sizes_must_be_positive_integers(kw, match):
    sig = _labelled(_noise((2, 1200)), (2, 300), dt=0.1)
    for build in (lambda: wavelet_transform_dask(sig, 0.1, J=20, **kw),
                  lambda: global_wavelet_spectrum(sig, J=20, **kw),
                  lambda: band_power(sig, [(0.5, 1.0)], J=20, **kw)):
        with pytest.raises(ValueError, match=match):
            build()


@pytest.mark.parametrize("bands, match", [
    ([(1.0, 0.5)], "pmin <= pmax"), ([(np.nan, 0.5)], "positive finite"), ([(-1.0, 0.5)], "positive finite"),
    ([], "at least one"), ((0.5, 1.0), r"sequence of \(pmin, pmax\) pairs"), ([(0.5, 1.0, 2.0)], "pairs"),
])
def test_bad_bands_are_named(bands, match):
    sig = _labelled(_noise((2, 1200)), (2, 300), dt=0.1)
    with pytest.raises(ValueError, match=match):
        band_power(sig, bands, J=20)


def test_unknown_options_are_named_with_the_valid_ones():
    sig = _labelled(_noise((2, 1200)), (2, 300), dt=0.1)
    with pytest.raises(TypeError, match=r"(?s)global_wavelet_spectrum.*'wavlet'.*wavelet"):
        global_wavelet_spectrum(sig, wavlet="paul")
    with pytest.raises(TypeError, match=r"(?s)band_power.*'boundary'.*linear"):
        band_power(sig, [(0.5, 1.0)], boundary="symmetric")


def test_reductions_without_c_delta_say_which_wavelets_have_it():
    sig = _labelled(_noise((2, 1200)), (2, 300), dt=0.1)
    from bioxen_dask.wavelets import Paul

    with pytest.raises(ValueError, match="C_delta"):
        band_power(sig, [(0.5, 1.0)], J=20, wavelet=Paul(6))


def test_float32_power_overflow_is_refused_in_dask_input_as_in_memory():
    """|x| whose float32 power would overflow: the in-memory path refuses it, and so does each
    Dask block when it is computed (no inf/NaN coefficients without a word)."""
    from bioxen_dask import wavelet_transform

    x = np.random.default_rng(3).standard_normal((2, 600)) * 1e20
    with pytest.raises(ValueError, match="would overflow float32"):
        wavelet_transform(x, dt=1.0, dj=0.5)
    lazy = wavelet_transform(xr.DataArray(da.from_array(x, chunks=(1, 300)), dims=("roi", "time")), dt=1.0, dj=0.5)
    with pytest.raises(ValueError, match="a signal reaches .* would overflow float32"):
        lazy.values
    ok = wavelet_transform(xr.DataArray(da.from_array(x, chunks=(1, 300)), dims=("roi", "time")), dt=1.0, dj=0.5,
                           dtype="float64")
    assert np.isfinite(ok.values).all()


def test_a_one_dimensional_dask_record_stays_lazy_and_equals_the_in_memory_transform():
    from bioxen_dask import wavelet_transform

    x = np.random.default_rng(4).standard_normal(3000)
    lazy = wavelet_transform(xr.DataArray(da.from_array(x, chunks=700), dims=("time",)), dt=0.1, dj=0.25, J=20,
                             dtype="float64")
    assert isinstance(lazy.data, da.Array) and lazy.dims == ("period", "time")
    ref = wavelet_transform(x, dt=0.1, dj=0.25, J=20, dtype="float64")
    np.testing.assert_allclose(lazy.values, ref.values, rtol=0, atol=1e-12 * float(np.abs(ref.values).max()))


def test_mean_removal_streams_a_long_record(tmp_path):
    """The Grinsted preset removes each roi's mean: its streamed reduction of a Zarr record
    must not hold the record (a lazy mean made every block wait for it), and it equals the
    in-memory Grinsted spectrum."""
    import zarr

    n = 4_000_000
    store = zarr.create_array(str(tmp_path / "x.zarr"), shape=(1, n), chunks=(1, 250_000), dtype="float64")
    rng = np.random.default_rng(0)
    for i in range(0, n, 1_000_000):
        store[:, i : i + 1_000_000] = rng.standard_normal((1, 1_000_000)) + 3.0
    sig = xr.DataArray(da.from_zarr(str(tmp_path / "x.zarr")), dims=("roi", "time"))

    def peak(preset):
        gws = global_wavelet_spectrum(sig, dt=1.0, dj=0.5, J=8, preset=preset, time_chunk=250_000)
        tracemalloc.start()
        try:
            with dask.config.set(scheduler="synchronous"):
                values = gws.values
            return tracemalloc.get_traced_memory()[1], values
        finally:
            tracemalloc.stop()

    with_mean, _ = peak("grinsted")
    without, _ = peak("pycwt")
    # the lazy mean held about 1.3x the record (43 MB here) on top; now a few blocks. The
    # synchronous scheduler makes the peak independent of thread timing (under load the
    # threaded peak moved by more than the bound)
    assert with_mean - without < 0.5 * n * 8, (with_mean / 1e6, without / 1e6)
    # (the values: test_reductions_equal_in_memory_for_every_wavelet_and_preset)
