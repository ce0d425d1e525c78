"""Synthetic calcium data: determinism, layout, ground truth, planted coherence, speed."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import signal

from bioxen_dask.io import (
    DEFAULT_GROUPS,
    PlantedGroup,
    open_signals,
    open_signals_store,
    synthesize,
    write_synthetic,
)

FS = 30.0


@pytest.fixture(scope="module")
def ds():
    return synthesize(n_rois=120, n_frames=18000, fs=FS, seed=7)


def test_deterministic_from_seed():
    a = synthesize(n_rois=30, n_frames=2000, seed=3)
    b = synthesize(n_rois=30, n_frames=2000, seed=3)
    c = synthesize(n_rois=30, n_frames=2000, seed=4)
    assert a.identical(b)
    assert not np.array_equal(a["signals"].values, c["signals"].values)
    assert not np.array_equal(a["truth_group"].values, c["truth_group"].values)


def test_layout_attrs_and_ground_truth(ds):
    assert ds["signals"].dims == ("roi", "time") and ds["signals"].dtype == np.float32
    assert ds["signals"].shape == (120, 18000) and np.isfinite(ds["signals"].values).all()
    assert ds["references"].dims == ("reference", "time") and ds["reference"].values.tolist() == ["stimulus"]
    np.testing.assert_allclose(ds["time"].values, np.arange(18000) / FS)
    assert ds.attrs["fs"] == FS and ds.attrs["units"] == "dF/F" and ds.attrs["source_format"] == "synthetic"
    json.dumps(ds.attrs)  # the group table and parameters are JSON-serialisable

    group, period, lag = (ds[v].values for v in ("truth_group", "truth_period", "truth_lag"))
    table = ds.attrs["truth_groups"]
    assert [g["period_s"] for g in table] == [2.0, 5.0, 10.0]
    assert [g["phase_lag_deg"] for g in table] == [45.0, 90.0, 135.0]  # distinct phase lags
    for k, g in enumerate(table):
        members = group == k
        assert members.sum() == g["n_rois"] == round(0.08 * 120)
        assert (period[members] == g["period_s"]).all() and (lag[members] == g["lag_s"]).all()
    background = group == -1
    assert background.sum() == 120 - 3 * 10
    assert np.isnan(period[background]).all() and np.isnan(lag[background]).all()


def test_planted_modulation_is_present_at_the_right_period_and_lag(ds):
    x, stim = ds["signals"].values, ds["references"].values[0]
    group = ds["truth_group"].values
    nperseg = 3000  # 0.01 Hz resolution: 0.5, 0.2 and 0.1 Hz are exact bins
    for k, g in enumerate(ds.attrs["truth_groups"]):
        f0 = 1 / g["period_s"]
        freqs, power = signal.welch(x, fs=FS, nperseg=nperseg, axis=-1)
        i = np.argmin(np.abs(freqs - f0))
        assert abs(freqs[i] - f0) < 1e-9
        group_power = signal.welch(x[group == k].mean(axis=0), fs=FS, nperseg=nperseg)[1][i]
        background_power = signal.welch(x[group == -1].mean(axis=0), fs=FS, nperseg=nperseg)[1][i]
        assert group_power > 50 * background_power

        _, coh = signal.coherence(stim, x, fs=FS, nperseg=nperseg, axis=-1)
        assert coh[group == k, i].min() > 0.6
        assert coh[group == -1, i].mean() < 0.2
        other = (group >= 0) & (group != k)
        assert coh[other, i].mean() < 0.2  # other groups are not coherent at this period

        # the rois lag the stimulus by the planted lag plus the calcium kernel's delay
        _, pxy = signal.csd(stim, x[group == k], fs=FS, nperseg=nperseg, axis=-1)
        measured = np.angle(pxy[:, i].mean())
        expected = -2 * np.pi * f0 * (g["lag_s"] + g["calcium_delay_s"])
        assert abs(np.angle(np.exp(1j * (measured - expected)))) < np.radians(15)


def test_write_synthetic_matches_synthesize_and_is_a_store(tmp_path):
    kwargs = {"n_rois": 45, "n_frames": 2400, "seed": 11}
    expected = synthesize(**kwargs)
    out = write_synthetic(tmp_path / "syn.zarr", **kwargs, chunks=(7, 1000))  # blocking must not matter
    stored = open_signals_store(out).load()
    for name in ("signals", "references", "truth_group", "truth_period", "truth_lag"):
        np.testing.assert_array_equal(stored[name].values, expected[name].values)
    assert stored.attrs["truth_groups"] == expected.attrs["truth_groups"]
    assert stored.attrs["synthetic"] == expected.attrs["synthetic"]
    sig = open_signals(out)
    assert sig.chunks == ((7,) * 6 + (3,), (1000, 1000, 400))


def test_custom_groups_and_validation():
    ds = synthesize(n_rois=40, n_frames=3000, groups=[PlantedGroup(3.0, 0.5, 0.25), {"period_s": 8.0, "lag_s": 0}])
    assert np.bincount(ds["truth_group"].values + 1).tolist() == [40 - 10 - 3, 10, 3]
    with pytest.raises(ValueError, match="need 44 rois but n_rois=40"):
        synthesize(n_rois=40, n_frames=3000, groups=[PlantedGroup(3.0, 0.5, 0.6), PlantedGroup(4.0, 0.5, 0.5)])
    with pytest.raises(ValueError, match="fit twice in the 100 s recording"):
        synthesize(n_rois=40, n_frames=3000, groups=[PlantedGroup(60.0, 0.5)])
    with pytest.raises(ValueError, match="at least 4 frames"):
        synthesize(n_rois=40, n_frames=3000, groups=[PlantedGroup(0.1, 0.0)])
    assert DEFAULT_GROUPS[0] == PlantedGroup(2.0, 0.25, 0.08)


@pytest.mark.slow
def test_full_size_demo_store_is_complete_and_finite(tmp_path):
    """The demo's 2,000 x 18,000 store is written whole (speed is for the benchmarks)."""
    out = write_synthetic(tmp_path / "big.zarr", n_rois=2000, n_frames=18000)
    sig = open_signals(out)
    assert sig.shape == (2000, 18000)
    last = sig.isel(roi=slice(-50, None), time=slice(-2000, None)).values
    assert np.isfinite(last).all() and float(last.std()) > 0
