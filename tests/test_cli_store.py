"""The store commands of the CLI: synth, ingest, info (real subprocess-free calls of main)."""

from __future__ import annotations

import json

import numpy as np

from bioxen_dask.cli import main
from bioxen_dask.io import open_signals


def test_synth_info_and_ingest_round_trip(tmp_path, capsys):
    store = tmp_path / "synth.zarr"
    assert main(["synth", str(store), "--rois", "12", "--frames", "900", "--fs", "30", "--seed", "4"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["n_rois"] == 12 and info["n_frames"] == 900 and info["fs"] == 30.0
    assert main(["info", str(store), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["references"] == ["stimulus"]

    traces = np.random.default_rng(0).standard_normal((4, 500)).astype("float32")
    np.save(tmp_path / "traces.npy", traces)
    out = tmp_path / "ingested.zarr"
    assert main(["ingest", str(tmp_path / "traces.npy"), str(out), "--fs", "20"]) == 0
    capsys.readouterr()
    np.testing.assert_array_equal(open_signals(out).values, traces)


def test_errors_exit_2_with_a_message(tmp_path, capsys):
    np.save(tmp_path / "traces.npy", np.zeros((2, 100), "float32"))
    assert main(["ingest", str(tmp_path / "traces.npy"), str(tmp_path / "o.zarr")]) == 2
    assert "fs" in capsys.readouterr().err
    assert main(["info", str(tmp_path / "missing.zarr")]) == 2
    assert "missing.zarr" in capsys.readouterr().err
