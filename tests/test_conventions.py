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
