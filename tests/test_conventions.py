"""The one rule for presets and boundaries (README, Conventions): naming a preset selects its
tool's boundary unless ``boundary=`` is given; no preset: pycwt's conventions, ``linear``."""

from __future__ import annotations

import numpy as np
import pycwt
import pytest
import xarray as xr

from bioxen_dask import coherence, wavelet_coherence, wavelet_transform
from bioxen_dask.pipeline import PipelineError, validate
from bioxen_dask.presets import resolve_conventions
from reference import grinsted as G


def test_naming_a_preset_gives_that_tools_numbers(ao_baltic):
    years, ao, baltic = ao_baltic
    grinsted = wavelet_coherence(ao, baltic, dt=1.0, preset="grinsted", dtype="float64")
    assert grinsted.attrs["boundary"] == "grinsted"
    ref = G.wtc(np.c_[years, ao], np.c_[years, baltic], MonteCarloCount=0)
    assert float(np.abs(grinsted.coherence.values - ref.Rsq).max()) <= 1e-9

    pycwt_named = wavelet_coherence(ao, baltic, dt=1.0, preset="pycwt", dtype="float64")
    assert pycwt_named.attrs["boundary"] == "pycwt"
    rWCT, *_ = pycwt.wct(ao, baltic, 1.0, sig=False)
    assert float(np.abs(pycwt_named.coherence.values - rWCT).max()) <= 1e-9

    # no preset: pycwt's grid and smoothing, but the linear boundary (the library default, unchanged)
    default = wavelet_coherence(ao, baltic, dt=1.0, dtype="float64")
    explicit = wavelet_coherence(ao, baltic, dt=1.0, dtype="float64", boundary="linear")
    assert default.attrs["boundary"] == "linear" and default.attrs["preset"] == "pycwt"
    np.testing.assert_array_equal(default.coherence.values, explicit.coherence.values)
    assert float(np.abs(default.coherence.values - rWCT).max()) > 0.1  # the 2-dt period: kernels differ there


def test_an_explicit_boundary_always_wins(ao_baltic):
    _, ao, baltic = ao_baltic
    kw = dict(dt=1.0, preset="grinsted", dtype="float64")
    linear = wavelet_coherence(ao, baltic, boundary="linear", **kw)
    assert linear.attrs["boundary"] == "linear"
    named = wavelet_coherence(ao, baltic, **kw)
    # the 2-dt period, where the time-sampled kernel and the toolbox's Fourier filter part
    assert float(np.abs(linear.coherence - named.coherence).max()) > 0.3
    W = wavelet_transform(ao, dt=1.0, preset="grinsted", boundary="symmetric")
    assert W.attrs["boundary"] == "symmetric"
    assert wavelet_transform(ao, dt=1.0, preset="grinsted").attrs["boundary"] == "grinsted"
    assert wavelet_transform(ao, dt=1.0).attrs["boundary"] == "linear"


@pytest.mark.parametrize(
    "preset, boundary, expected",
    [(None, None, ("pycwt", "linear")), ("grinsted", None, ("grinsted", "grinsted")),
     ("pycwt", None, ("pycwt", "pycwt")), ("GRINSTED", "Linear", ("grinsted", "linear")),
     (None, "circular", ("pycwt", "circular"))],
)
def test_resolution_table(preset, boundary, expected):
    p, b = resolve_conventions(preset, boundary)
    assert (p.name, b) == expected


def test_many_pair_coherence_follows_the_rule(ao_baltic):
    years, ao, baltic = ao_baltic
    sig = xr.DataArray(np.stack([ao, baltic]), dims=("roi", "time"), coords={"time": years})
    ds = coherence(sig, pairs=[(0, 1)], preset="grinsted", dtype="float64", maps=True, significance=None)
    assert ds.attrs["boundary"] == "grinsted"
    one = wavelet_coherence(ao, baltic, dt=1.0, preset="grinsted", dtype="float64")
    got = ds.coherence.isel(pair=0).values
    assert float(np.abs(got - one.coherence.values).max()) <= 1e-9
    assert coherence(sig, pairs=[(0, 1)], significance=None).attrs["boundary"] == "linear"


def test_many_pair_time_blocks_name_the_preset_and_the_fix(rng):
    sig = xr.DataArray(rng.standard_normal((2, 4000)), dims=("roi", "time"), coords={"time": np.arange(4000) * 0.1})
    with pytest.raises(ValueError, match=r"boundary='linear'.*named preset.*pass boundary='linear'"):
        coherence(sig, pairs=[(0, 1)], preset="grinsted", time_chunk=1000, significance=None,
                  min_period=0.5, max_period=4)
    ok = coherence(sig, pairs=[(0, 1)], preset="grinsted", boundary="linear", time_chunk=1000,
                   significance=None, min_period=0.5, max_period=4)
    assert ok.attrs["time_blocks"] > 1


def _pipeline(**grid):
    return {"input": {"store": "x.zarr"}, "outputs": {"path": "y.zarr"}, "grid": grid,
            "pairs": {"mode": "reference", "reference": "stimulus"}}


def test_pipelines_resolve_and_record_the_rule():
    assert [validate(_pipeline(**g))["grid"]["boundary"] for g in
            ({}, {"preset": "grinsted"}, {"preset": "pycwt"}, {"preset": "grinsted", "boundary": "linear"})] == [
        "linear", "grinsted", "pycwt", "linear"]
    assert validate(_pipeline())["grid"]["preset"] == "pycwt"
    with pytest.raises(PipelineError, match=r"'grinsted' \(selected by grid.preset 'grinsted'\); set grid.boundary"):
        validate({**_pipeline(preset="grinsted"), "compute": {"method": "multirate"}})
    cfg = validate({**_pipeline(preset="grinsted", boundary="linear"), "compute": {"method": "multirate"}})
    assert validate(cfg)["grid"] == cfg["grid"]  # resolved values validate to themselves


def test_multirate_names_the_fix_when_a_preset_selected_the_boundary(ao_baltic):
    _, ao, baltic = ao_baltic
    with pytest.raises(ValueError, match=r"named preset selects its tool's boundary.*boundary='linear'"):
        wavelet_coherence(ao, baltic, dt=1.0, preset="grinsted", method="multirate")


# ----------------------------------------------------------------------------- different spans
# Reference: Grinsted's toolbox itself (wtc.m, xwt.m), run in GNU Octave by
# tests/reference/make_grinsted_octave.py (stored outputs; README there says how to regenerate).

OCTAVE_CASES = ("ao_baltic_spans", "ao_baltic_equal", "offset_quarter")


@pytest.fixture(scope="module")
def toolbox():
    from pathlib import Path

    with np.load(Path(__file__).parent / "reference" / "grinsted_octave.npz") as f:
        return dict(f)


def _compare_with_toolbox(ds, ref, case, coherence_tol, phase_tol):
    R = ref[f"{case}_Rsq"]
    np.testing.assert_allclose(ds.period, ref[f"{case}_period"], rtol=1e-12)
    np.testing.assert_allclose(ds.scale, ref[f"{case}_scale"], rtol=1e-12)
    np.testing.assert_allclose(ds.coi, ref[f"{case}_coi"], rtol=1e-12)
    np.testing.assert_allclose(ds.time, ref[f"{case}_t"], rtol=0, atol=1e-9)
    # the toolbox's Rsq can exceed 1 (see test_toolbox_coherence_above_one_is_clipped); ours is clipped
    assert float(np.abs(ds.coherence.values - np.clip(R, 0, 1)).max()) <= coherence_tol
    strong = ds.cross_power.values > 1e-6 * ds.cross_power.values.max()
    dphi = np.angle(np.exp(1j * (ds.phase.values - ref[f"{case}_phase"])))
    assert float(np.abs(dphi[strong]).max()) <= phase_tol


@pytest.mark.parametrize("case", OCTAVE_CASES)
def test_grinsted_preset_equals_the_toolbox_run_in_octave(case, toolbox):
    """wtc(x, y) on different spans (AO 1851-1997 vs Baltic ice 1720-1999; a partial overlap at
    dt = 0.25) and on equal spans: coherence, phase, COI, periods and times."""
    x, y = toolbox[f"{case}_x"], toolbox[f"{case}_y"]
    ds = wavelet_coherence(x, y, preset="grinsted", dtype="float64")
    assert ds.attrs["span"] == "whole" and ds.attrs["boundary"] == "grinsted"
    _compare_with_toolbox(ds, toolbox, case, 1e-13, 1e-12)
    f32 = wavelet_coherence(x, y, preset="grinsted")  # the default working precision
    _compare_with_toolbox(f32, toolbox, case, 1e-5, 1e-4)


def test_toolbox_spans_matter_and_dataarrays_give_the_same(toolbox):
    case = "ao_baltic_spans"
    x, y = toolbox[f"{case}_x"], toolbox[f"{case}_y"]
    cut_first = wavelet_coherence(x, y, preset="grinsted", span="common", dtype="float64")
    # transforming the whole Baltic record changes the common span's edges a lot
    assert float(np.abs(cut_first.coherence.values - toolbox[f"{case}_Rsq"]).max()) > 0.3
    xa = xr.DataArray(x[:, 1], dims="time", coords={"time": x[:, 0]})
    ya = xr.DataArray(y[:, 1], dims="time", coords={"time": y[:, 0]})
    da_ds = wavelet_coherence(xa, ya, preset="grinsted", dtype="float64")
    _compare_with_toolbox(da_ds, toolbox, case, 1e-13, 1e-12)
    with pytest.raises(ValueError, match=r"two columns \(t, value\).*\(2, 147\) \(if it is \(t, value\) as rows, pass"):
        wavelet_coherence(x.T, y, preset="grinsted")  # rows could be two stacked signals: not guessed


def test_toolbox_coherence_above_one_is_clipped(toolbox):
    """With span='whole' each power is smoothed over its own record and the cross spectrum over
    the common span (64 samples here: the toolbox's power-of-two smoothing then wraps around),
    so the toolbox's "coherence" exceeds 1; ours is the same number clipped to [0, 1]."""
    R = toolbox["offset_quarter_Rsq"]
    assert R.max() > 5 and (R > 1).sum() > 100
    ds = wavelet_coherence(toolbox["offset_quarter_x"], toolbox["offset_quarter_y"], preset="grinsted",
                           dtype="float64")
    assert float(ds.coherence.max()) == 1.0


def test_pycwt_conventions_cut_to_the_common_span_first(toolbox):
    """pycwt has no different-span mode: its preset (and no preset) analyse the common span, the
    equal-length arrays one would pass to pycwt.wct."""
    x, y = toolbox["ao_baltic_spans_x"], toolbox["ao_baltic_spans_y"]
    inside = (y[:, 0] >= x[0, 0]) & (y[:, 0] <= x[-1, 0])
    ds = wavelet_coherence(x, y, preset="pycwt", dtype="float64")
    assert ds.attrs["span"] == "common" and ds.sizes["time"] == 147
    rWCT, raWCT, rcoi, *_ = pycwt.wct(x[:, 1], y[inside, 1], 1.0, sig=False)
    assert float(np.abs(ds.coherence.values - rWCT).max()) <= 1e-9
    np.testing.assert_allclose(ds.coi, rcoi, rtol=1e-12)
    np.testing.assert_array_equal(ds.time, x[:, 0])
    default = wavelet_coherence(x, y, dtype="float64")
    plain = wavelet_coherence(x[:, 1], y[inside, 1], dt=1.0, dtype="float64")
    np.testing.assert_array_equal(default.coherence.values, plain.coherence.values)
    whole = wavelet_coherence(x, y, span="whole", dtype="float64")  # the toolbox's treatment, pycwt's grid
    assert whole.attrs["span"] == "whole" and float(np.abs(whole.coherence - default.coherence).max()) > 0.1


def test_datetime_axes_and_one_plain_series(rng):
    t = np.datetime64("2026-01-01T00:00:00") + np.arange(600) * np.timedelta64(100, "ms")
    x = xr.DataArray(rng.standard_normal(600), dims="time", coords={"time": t})
    y = xr.DataArray(rng.standard_normal(400), dims="time", coords={"time": t[150:550]})
    ds = wavelet_coherence(x, y, dtype="float64")
    assert ds.attrs["dt"] == pytest.approx(0.1) and ds.sizes["time"] == 400
    np.testing.assert_array_equal(ds.time.values, t[150:550])
    same = wavelet_coherence(x.values[150:550], y.values, dt=0.1, dtype="float64")
    np.testing.assert_allclose(ds.coherence.values, same.coherence.values, rtol=0, atol=1e-12)  # dt to rounding
    mixed = wavelet_coherence(x[150:550], y.values, dtype="float64")  # a plain series shares the other's axis
    np.testing.assert_allclose(mixed.coherence.values, ds.coherence.values, rtol=0, atol=1e-12)


def _cols(t, rng):
    return np.c_[t, rng.standard_normal(t.size)]


@pytest.mark.parametrize(
    "tx, ty, kw, message",
    [
        (np.arange(200.0), np.arange(100.0) * 0.5, {}, r"different intervals \(dt 1 and 0.5\)"),
        (np.arange(200.0), np.arange(100.0) + 10.3, {}, r"not on the same sampling grid.*0.3 of a sample"),
        (np.r_[np.arange(100.0), np.arange(101.0, 150.0)], np.arange(200.0), {}, r"x \(read as \(t, value\) columns\): its time axis is not evenly spaced.*sample 100"),
        (np.arange(100.0), np.arange(100.0) + 500, {}, r"do not overlap in time"),
        (np.arange(100.0)[::-1], np.arange(100.0), {}, r"its time axis does not increase.*sort"),
        (np.arange(200.0), np.arange(200.0), dict(dt=0.5), r"dt=0.5 disagrees with the series' time axes"),
        (np.arange(200.0), np.arange(200.0), dict(span="both"), r"unknown span 'both'"),
    ],
)
def test_time_axes_that_do_not_fit_are_clear_errors(tx, ty, kw, message, rng):
    with pytest.raises(ValueError, match=message):
        wavelet_coherence(_cols(tx, rng), _cols(ty, rng), **kw)


def test_plain_arrays_of_different_lengths_name_both_fixes(rng):
    with pytest.raises(ValueError, match=r"same number of samples.*\(t, value\) columns"):
        wavelet_coherence(rng.standard_normal(100), rng.standard_normal(90), dt=1.0)
    with pytest.raises(ValueError, match=r"y has no time axis"):
        wavelet_coherence(_cols(np.arange(100.0), rng), rng.standard_normal(90))
    with pytest.raises(ValueError, match=r"two columns \(t, value\)"):
        wavelet_coherence(rng.standard_normal((3, 50)), rng.standard_normal(50), dt=1.0)
    with pytest.raises(ValueError, match=r"multirate.*one span"):
        wavelet_coherence(_cols(np.arange(300.0), rng), _cols(np.arange(200.0) + 50, rng), span="whole",
                          method="multirate")


def test_the_toolbox_live_in_octave_reproduces_the_stored_outputs(toolbox):
    """Reruns the toolbox in Octave when both are here (CI has neither: the stored outputs above
    are the tests that always run). BIOXEN_GRINSTED_TOOLBOX: the toolbox folder."""
    import os
    import shutil
    import sys
    from pathlib import Path

    folder = os.environ.get("BIOXEN_GRINSTED_TOOLBOX")
    if shutil.which("octave") is None or not folder:
        pytest.skip("needs GNU Octave and BIOXEN_GRINSTED_TOOLBOX (Grinsted's toolbox folder); the stored "
                    "toolbox outputs are checked by the tests above")
    sys.path.insert(0, str(Path(__file__).parent / "reference"))
    try:
        from make_grinsted_octave import run_toolbox
    finally:
        sys.path.pop(0)
    live = run_toolbox(folder)
    for case in OCTAVE_CASES:
        for field in ("Rsq", "phase", "coi", "period", "t"):
            np.testing.assert_allclose(live[f"{case}_{field}"], toolbox[f"{case}_{field}"], rtol=1e-12, atol=1e-12)
        ds = wavelet_coherence(live[f"{case}_x"], live[f"{case}_y"], preset="grinsted", dtype="float64")
        _compare_with_toolbox(ds, live, case, 1e-13, 1e-12)
