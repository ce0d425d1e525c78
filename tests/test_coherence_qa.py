"""bioxen_dask.coherence: selections, references, gap counts and bad input (QA pass).

Every number is checked against an independent computation: one pair's maps in memory
(:func:`bioxen_dask.wavelet_coherence`), gaps filled with ``np.interp`` and masked by a
brute-force distance to every missing sample, reduced here with NumPy.
"""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr

from bioxen_dask import wavelet_coherence
from bioxen_dask.coherence import coherence, period_grid
from _helpers import lagged_traces

DT = 0.1
N = 1000
GRID = dict(min_period=0.4, max_period=8.0, dj=1 / 4)


@pytest.fixture(scope="module")
def traces():
    return lagged_traces(N, 6, [0.0, 0.4, 0.8, 1.2], seed=21, dt=DT)


def _signals(x, chunks=None, **attrs):
    return xr.DataArray(
        da.from_array(x, chunks=chunks or (3, x.shape[1])), dims=("roi", "time"),
        coords={"roi": np.arange(50, 50 + x.shape[0]), "time": np.arange(x.shape[1]) * DT}, attrs=attrs,
    )


def _fill(row):
    """Independent gap filling: linear interpolation, nearest value at the ends."""
    row = np.array(row, dtype=float)
    miss = ~np.isfinite(row)
    i = np.arange(row.size)
    row[miss] = np.interp(i[miss], i[~miss], row[~miss])
    return row, miss


def _direct(a, b, ds, thr=None):
    """The reductions of one pair from its in-memory maps; gaps (NaN in a or b) filled and
    masked within sqrt(2) * scale / dt of every missing sample."""
    fa, ma = _fill(a)
    fb, mb = _fill(b)
    g = period_grid(len(fa), DT, s0=float(ds.scale[0]), J=ds.sizes["period"] - 1, dj=float(ds.attrs["dj"]))
    w = wavelet_coherence(fa, fb, DT, dtype="float64", s0=float(ds.scale[0]), J=ds.sizes["period"] - 1,
                          dj=float(ds.attrs["dj"]))
    miss = np.flatnonzero(ma | mb)
    t = np.arange(len(fa))
    dist = np.abs(t[:, None] - miss[None, :]).min(axis=1) if miss.size else np.full(len(fa), np.inf)
    masked = (dist[None, :] - 0.5) < (np.sqrt(2) * g.scales / DT)[:, None]
    use = (w.period <= w.coi).values & ~masked
    count = use.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(use, np.exp(1j * w.phase.values), 0).sum(axis=1) / count
        out = {
            "coherence_mean": np.where(use, w.coherence.values, 0).sum(axis=1) / count,
            "phase_consistency": np.abs(z),
            "lag": np.angle(z) / (2 * np.pi) * w.period.values,
            "samples": count,
        }
        if thr is not None:
            out["significant_fraction"] = ((w.coherence.values >= thr[:, None]) & use).sum(axis=1) / count
    return out, masked


def _assert_pair(pair, expect, tol=1e-9):
    for name, values in expect.items():
        if name not in pair:
            continue
        got = np.asarray(pair[name].values, dtype=float)
        values = np.asarray(values, dtype=float)
        if name == "lag":
            keep = expect["phase_consistency"] > 1e-3
            got, values = got[keep], values[keep]
        np.testing.assert_array_equal(np.isnan(got), np.isnan(values), err_msg=name)
        assert np.nanmax(np.abs(got - values)) <= tol, name


# ------------------------------------------------------------------------------ selections


def test_all_pairs_of_an_unsorted_selection_are_each_pair_once_a_before_b(traces):
    """'every pair a < b within rois': with rois in any order, roi_a comes before roi_b in the
    signals (so the sign of phase and lag does not depend on how the selection was typed)."""
    x, _ = traces
    thr = np.full(period_grid(N, DT, **GRID).n_scales, 0.5)
    ds = coherence(_signals(x), all_pairs=True, roi_positions=[5, 0, 3], roi_chunk=2, dtype="float64",
                   significance=thr, **GRID).compute(scheduler="sync")
    got = list(zip(ds.index_a.values.tolist(), ds.index_b.values.tolist()))
    assert sorted(got) == [(0, 3), (0, 5), (3, 5)] and all(a < b for a, b in got)
    assert ds.roi_a.values.tolist() == [50 + a for a, _ in got]  # roi ids, not positions
    for k, (a, b) in enumerate(got):
        _assert_pair(ds.isel(pair=k), _direct(x[a], x[b], ds, thr)[0])


def test_all_pairs_refuse_a_selection_that_repeats_a_roi(traces):
    x, _ = traces
    with dask.config.set(scheduler=_no_compute):
        with pytest.raises(ValueError, match=r"rois lists roi 53 \(position 3\) more than once"):
            coherence(_signals(x), all_pairs=True, roi_positions=[5, 0, 3, 3], significance=None, **GRID)


def test_a_single_roi_as_a_scalar_or_a_list_gives_the_same_pair(traces):
    x, ref = traces
    kw = dict(reference=ref, dtype="float64", significance=None, **GRID)
    one = coherence(_signals(x), roi_positions=2, **kw).compute(scheduler="sync")
    assert one.sizes["pair"] == 1 and one.index_a.values.tolist() == [2] and one.roi_a.values.tolist() == [52]
    _assert_pair(one.isel(pair=0), _direct(x[2], ref, one)[0])


def _no_compute(*args, **kwargs):  # pragma: no cover - only runs on a bug
    raise AssertionError("a bad request started a computation")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(reference="mean", rois=np.zeros(6, bool)), "rois selects no roi"),
        (dict(reference="mean", rois=[[0, 1], [2, 3]]), "rois must be a 1-D list of roi ids"),
        (dict(all_pairs="yes"), "all_pairs must be True or False"),
        (dict(reference="mean", roi_chunk=0), "roi_chunk must be a positive integer"),
        (dict(pairs=[(0, 1)], pair_chunk=-1), "pair_chunk must be a positive integer"),
    ],
)
def test_bad_selections_and_task_sizes_are_named(traces, kwargs, message):
    x, _ = traces
    with dask.config.set(scheduler=_no_compute):
        with pytest.raises(ValueError, match=message):
            coherence(_signals(x), significance=None, **GRID, **kwargs)


# ------------------------------------------------------------------------------ gaps


def test_rois_outside_the_selection_may_hold_any_gaps(traces):
    """Gaps are filled in the analysed rois only: an unselected roi with a gap longer than
    max_gap, or with no finite sample, neither fails the computation nor changes a number."""
    x, ref = traces
    y = x.copy()
    y[1, 300:304] = np.nan  # analysed, filled and masked
    y[4, 100:700] = np.nan  # not analysed: longer than max_gap
    y[5] = np.nan  # not analysed: no finite sample
    y0 = y.copy()
    kw = dict(nan_policy="interpolate", max_gap=1.0, dtype="float64", **GRID)
    thr = np.full(period_grid(N, DT, **GRID).n_scales, 0.5)
    for mode in (dict(reference=ref, roi_positions=[0, 1]), dict(pairs=[(1, 0)]), dict(all_pairs=True, roi_positions=[1, 0])):
        ds = coherence(_signals(y, chunks=(6, N)), significance=thr, **mode, **kw).compute(scheduler="sync")
        for k in range(ds.sizes["pair"]):
            a, b = int(ds.index_a[k]), int(ds.index_b[k])
            _assert_pair(ds.isel(pair=k), _direct(y[a], ref if b < 0 else y[b], ds, thr)[0])
    np.testing.assert_array_equal(y, y0)  # the input is not modified


def test_with_gaps_the_samples_behind_every_mean_are_reported(traces):
    """nan_policy='interpolate' leaves the samples a gap reaches out of every reduction; the
    per-pair ``samples`` variable counts what entered them (``coi_samples`` without gaps),
    with time blocks and both methods."""
    x = np.concatenate([traces[0]] * 3, axis=1)
    n = x.shape[1]
    rng = np.random.default_rng(2)
    ref = np.sin(2 * np.pi * np.arange(n) * DT / 3.0) + 0.5 * rng.standard_normal(n)
    x[1, 1198:1204] = np.nan
    x[2, :3] = np.nan
    x[3, 2500:2502] = np.nan
    grid = dict(min_period=0.4, max_period=4.0, dj=1 / 4)  # a halo short enough for 5 time blocks
    thr = np.full(period_grid(n, DT, **grid).n_scales, 0.5)
    for method, blocks in (("exact", dict()), ("exact", dict(time_chunk=600)), ("multirate", dict(time_chunk=600))):
        tol = 1e-9 if method == "exact" else 1e-5
        kw = dict(nan_policy="interpolate", max_gap=1.0, significance=thr, maps=True, method=method,
                  dtype="float64" if method == "exact" else "float32", roi_chunk=2, pair_chunk=2, **grid, **blocks)
        for mode in (dict(reference=ref), dict(pairs=[(3, 1), (0, 2), (1, 1)])):
            ds = coherence(_signals(x, chunks=(3, 1000)), **mode, **kw)
            if blocks:
                assert ds.attrs["time_blocks"] > 2
            ds = ds.compute(scheduler="sync")
            assert ds.samples.dims == ("pair", "period")
            for k in range(ds.sizes["pair"]):
                a, b = int(ds.index_a[k]), int(ds.index_b[k])
                expect, masked = _direct(x[a], ref if b < 0 else x[b], ds, thr)
                np.testing.assert_array_equal(np.isnan(ds.coherence.values[k]), masked)
                np.testing.assert_array_equal(ds.samples.values[k], expect["samples"])
                if not masked.any():
                    np.testing.assert_array_equal(ds.samples.values[k], ds.coi_samples.values)
                frac = expect.pop("significant_fraction")
                _assert_pair(ds.isel(pair=k), expect, tol=tol)
                assert np.nanmax(np.abs(ds.significant_fraction.values[k] - frac)) <= (0 if method == "exact" else 2e-3)


# ------------------------------------------------------------------------------ references


def test_a_reference_with_missing_samples_is_refused_however_it_is_given(traces, tmp_path):
    x, ref = traces
    bad = ref.copy()
    bad[123] = np.nan
    for given in (bad, da.from_array(bad, chunks=250), xr.DataArray(da.from_array(bad), dims="time")):
        with pytest.raises(ValueError, match=r"the reference has non-finite samples.*frame 123"):
            coherence(_signals(x), reference=given, significance=None, **GRID)
    from bioxen_dask.io import open_signals_store, write_synthetic

    store = write_synthetic(tmp_path / "syn.zarr", n_rois=4, n_frames=1200, seed=1)
    ds = open_signals_store(store)
    stim = ds["references"].load()
    stim[0, 40] = np.nan
    ds = ds.assign(references=stim.chunk())
    with pytest.raises(ValueError, match=r"the reference 'stimulus' has non-finite samples.*frame 40"):
        coherence(ds, reference="stimulus", min_period=1, max_period=12, significance=None)


def test_a_constant_reference_follows_the_constant_option(traces):
    x, _ = traces
    flat = da.full(N, 2.0, chunks=500)
    with pytest.raises(ValueError, match="the reference is constant"):
        coherence(_signals(x), reference=flat, constant="raise", significance=None, **GRID)
    ds = coherence(_signals(x), reference=flat, significance=None, **GRID).compute(scheduler="sync")
    assert np.all(np.isnan(ds.coherence_mean.values))


def test_a_reference_on_another_time_axis_is_refused(traces):
    x, ref = traces
    t = np.arange(N) * DT
    with pytest.raises(ValueError, match="the reference's time coordinate differs from the signals'"):
        coherence(_signals(x), reference=xr.DataArray(ref, dims="time", coords={"time": t + 5.0}),
                  significance=None, **GRID)
    same = coherence(_signals(x), reference=xr.DataArray(ref, dims="time", coords={"time": t}),
                     roi_positions=[0], dtype="float64", significance=None, **GRID).compute(scheduler="sync")
    _assert_pair(same.isel(pair=0), _direct(x[0], ref, same)[0])


def test_a_dt_that_contradicts_the_fs_attribute_is_refused(traces):
    x, ref = traces
    sig = xr.DataArray(x, dims=("roi", "time"), attrs={"fs": 10.0})
    with pytest.raises(ValueError, match=r"dt=0.2 contradicts the signals' fs attribute \(10 Hz"):
        coherence(sig, reference=ref, dt=0.2, significance=None, **GRID)
    assert coherence(sig, reference=ref, dt=0.1, significance=None, **GRID).attrs["dt"] == pytest.approx(0.1)


# ------------------------------------------------------------------------------ float32 sums


@pytest.mark.parametrize("method", ["exact", "multirate"])
def test_float32_phase_sums_of_a_long_record_keep_the_maps_accuracy(method):
    """The reductions of float32 maps are summed in float64: on 131,072 samples the mean
    phase vector of a coherent pair is as accurate as the float32 maps allow (the float32
    dot products it used to be summed by were off by ~2e-5)."""
    n = 2**17
    rng = np.random.default_rng(9)
    t = np.arange(n) * DT
    x = np.sin(2 * np.pi * (t - 0.3) / 1.5) + 0.5 * rng.standard_normal(n)
    ref = np.sin(2 * np.pi * t / 1.5) + 0.5 * rng.standard_normal(n)
    grid = dict(min_period=0.4, max_period=2.0, dj=1 / 4)
    ds = coherence(_signals(x[None], chunks=(1, n)), reference=ref, method=method, significance=None,
                   **grid).compute(scheduler="sync")
    w = wavelet_coherence(x, ref, DT, dtype="float32", s0=float(ds.scale[0]), J=ds.sizes["period"] - 1,
                          dj=float(ds.attrs["dj"]), method=method)
    use = (w.period <= w.coi).values
    z = np.where(use, np.exp(1j * w.phase.values.astype(np.float64)), 0).sum(axis=1) / use.sum(axis=1)
    assert np.abs(z).max() > 0.9  # a coherent pair, where the sums are largest
    assert np.max(np.abs(ds.phase_consistency.values[0] - np.abs(z))) <= 2e-6
    got = ds.phase_consistency.values[0] * np.exp(1j * ds.phase_mean.values[0])
    assert np.max(np.abs(got - z)) <= 2e-6  # the mean phase vector, where its angle is defined or not


# ----------------------------------------------------------------------------- issue 23: roi ids, other inputs


def _with_ids():
    """Five traces whose roi ids are not their positions (a suite2p store keeps only cells)."""
    rng = np.random.default_rng(23)
    t = np.arange(600) / 10
    x = np.sin(2 * np.pi * t / 4)[None, :] + 0.5 * rng.standard_normal((5, 600))
    ids = np.array([3, 7, 13, 29, 40])
    return xr.DataArray(x, dims=("roi", "time"), coords={"roi": ids, "time": t}), x


ID_GRID = dict(min_period=1.0, max_period=8.0, dj=0.25, significance=None)


def test_rois_select_by_id_and_roi_positions_by_position():
    """``rois=`` takes roi ids (the ``roi`` coordinate, shown as ``roi_a`` in results);
    ``roi_positions=`` takes 0-based positions: one rule, the same for every mode."""
    sig, x = _with_ids()
    by_id = coherence(sig, reference=x[0], rois=[29, 7], **ID_GRID).compute(scheduler="sync")
    assert by_id.roi_a.values.tolist() == [29, 7] and by_id.index_a.values.tolist() == [3, 1]
    by_pos = coherence(sig, reference=x[0], roi_positions=[3, 1], **ID_GRID).compute(scheduler="sync")
    np.testing.assert_array_equal(by_id.coherence_mean.values, by_pos.coherence_mean.values)
    one = coherence(sig.isel(roi=[3]), reference=x[0], **ID_GRID).compute(scheduler="sync")
    np.testing.assert_allclose(by_id.coherence_mean.values[0], one.coherence_mean.values[0], rtol=1e-6)
    pairs = coherence(sig, all_pairs=True, rois=[40, 3, 13], **ID_GRID)
    assert list(zip(pairs.roi_a.values.tolist(), pairs.roi_b.values.tolist())) == [(3, 13), (3, 40), (13, 40)]
    assert coherence(sig, reference=x[0], rois=13, **ID_GRID).roi_a.values.tolist() == [13]  # one id


def test_a_position_given_as_a_roi_id_is_refused_naming_both_rules():
    sig, x = _with_ids()
    with pytest.raises(ValueError, match=r"rois: roi id 9 is not in the signals \(5 rois, ids 3, 7, 13, 29, 40\); "
                                         r"rois= selects by roi id.*roi_positions= \(0\.\.4\)"):
        coherence(sig, reference=x[0], rois=[9], **ID_GRID)
    with pytest.raises(ValueError, match=r"roi_positions: roi index 9 is out of range.*0\.\.4"):
        coherence(sig, reference=x[0], roi_positions=[9], **ID_GRID)
    with pytest.raises(ValueError, match=r"give rois= \(roi ids\) or roi_positions= \(positions\), not both"):
        coherence(sig, reference=x[0], rois=[3], roi_positions=[0], **ID_GRID)


def test_numpy_dataarray_with_other_dims_and_pandas_inputs_give_the_same_result():
    """A 2-D NumPy array (roi, time) with dt= or fs=, a DataArray with its own dim names
    (dim= names the time one) and a pandas DataFrame (time index, one column per roi) are the
    same signals as the labelled DataArray."""
    import pandas as pd

    sig, x = _with_ids()
    ref = x[0]
    want = coherence(sig, reference=ref, **ID_GRID).compute(scheduler="sync")
    got = {
        "numpy dt": coherence(x, reference=ref, dt=0.1, **ID_GRID),
        "numpy fs": coherence(x, reference=ref, fs=10.0, **ID_GRID),
        "dims cell/frame": coherence(xr.DataArray(x, dims=("cell", "frame"), coords={"cell": sig.roi.values}),
                                     reference=ref, dim="frame", fs=10.0, **ID_GRID),
        "dims frame/cell": coherence(xr.DataArray(x.T, dims=("frame", "cell"), coords={"cell": sig.roi.values}),
                                     reference=ref, dim="frame", dt=0.1, **ID_GRID),
        "pandas": coherence(pd.DataFrame(x.T, index=pd.Index(sig.time.values, name="time"), columns=sig.roi.values),
                            reference=ref, **ID_GRID),
        "pandas timedelta": coherence(pd.DataFrame(x.T, index=pd.to_timedelta(sig.time.values, unit="s"),
                                                   columns=sig.roi.values), reference=ref, **ID_GRID),
    }
    for name, ds in got.items():
        ds = ds.compute(scheduler="sync")
        np.testing.assert_allclose(ds.coherence_mean.values, want.coherence_mean.values, rtol=1e-6, err_msg=name)
        np.testing.assert_allclose(ds.period.values, want.period.values, rtol=1e-12, err_msg=name)
        if name not in ("numpy dt", "numpy fs"):
            assert ds.roi_a.values.tolist() == [3, 7, 13, 29, 40], name
    sub = coherence(pd.DataFrame(x.T, columns=sig.roi.values), reference=ref, fs=10.0, rois=[13], **ID_GRID)
    assert sub.roi_a.values.tolist() == [13]


def test_unusable_inputs_say_how_to_pass_them():
    sig, x = _with_ids()
    with pytest.raises(ValueError, match=r"dims \('cell', 'frame'\).*dim= naming the time dimension"):
        coherence(xr.DataArray(x, dims=("cell", "frame")), reference=x[0], fs=10.0, **ID_GRID)
    with pytest.raises(ValueError, match="dt is not given.*pass dt= or fs="):
        coherence(x, reference=x[0], **ID_GRID)
    with pytest.raises(ValueError, match=r"dt=0\.2 contradicts fs=10"):
        coherence(x, reference=x[0], dt=0.2, fs=10.0, **ID_GRID)
    with pytest.raises(ValueError, match=r"read as \(roi, time\): 600 rows x 5 columns.*pass signals\.T"):
        coherence(x.T, reference=x[0], fs=10.0, **ID_GRID)
    with pytest.raises(ValueError, match=r"dim='frames' is not a dimension of the signals \('cell', 'frame'\)"):
        coherence(xr.DataArray(x, dims=("cell", "frame")), reference=x[0], dim="frames", fs=10.0, **ID_GRID)


def test_constant_traces_warn_naming_the_rois_and_the_result_says_why_its_rows_are_nan():
    sig, x = _with_ids()
    y = sig.copy(data=x.copy())
    y[1] = 2.0  # roi 7
    y[3] = 0.0  # roi 29
    with pytest.warns(UserWarning, match=r"2 traces are constant \(zero variance\): rois 7, 29 \(positions 1, 3\); "
                                         r"their pairs are NaN.*rois=.*constant='raise'"):
        ds = coherence(y, reference=x[0], **ID_GRID)
    assert ds.attrs["constant_rois"] == [7, 29]
    assert "zero variance" in ds.attrs["constant_rois_reason"]
    out = ds.compute(scheduler="sync")
    assert np.isnan(out.coherence_mean.values[[1, 3]]).all() and np.isfinite(out.coherence_mean.values[[0, 2, 4]]).all()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing constant among the analysed rois: no warning
        clean = coherence(y, reference=x[0], rois=[3, 13], **ID_GRID)
    assert clean.attrs["constant_rois"] == []


def test_too_few_surrogates_warn_saying_how_many_the_level_needs():
    sig, x = _with_ids()
    kw = dict(min_period=1.0, max_period=8.0, dj=0.25, reference=x[0])
    with pytest.warns(UserWarning, match=r"mc_count=1: fewer surrogate pairs than 1/\(1 - level\) = 20 at level "
                                         r"0\.95.*mc_count >= 20.*pycwt uses 300"):
        coherence(sig, mc_count=1, **kw)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        coherence(sig, mc_count=20, **kw)  # enough for the level: no warning
        coherence(sig, mc_count=1, significance=None, **kw)  # no significance, no surrogates
    with pytest.warns(UserWarning, match=r"= 100 at level 0\.99"):
        coherence(sig, mc_count=50, level=0.99, **kw)
