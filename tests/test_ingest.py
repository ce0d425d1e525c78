"""Ingest from every supported format: values, rate, roi identity, errors, untouched sources, ΔF/F."""

from __future__ import annotations

import datetime
import hashlib
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import zarr

from bioxen_dask.io import StoreExistsError, detect_format, dff, ingest, open_signals
from bioxen_dask.io._dff import dff_reader

h5py = pytest.importorskip("h5py")
pynwb = pytest.importorskip("pynwb")

N_ROIS, N_FRAMES, FS = 9, 600, 30.0
CELLS = np.array([0, 2, 3, 5, 8])


def _digest(path: Path) -> dict[str, str]:
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {str(f): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


def _F_Fneu(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    F = rng.uniform(200, 400, (N_ROIS, N_FRAMES)).astype(np.float32)
    return F, rng.uniform(50, 150, (N_ROIS, N_FRAMES)).astype(np.float32)


def make_suite2p(folder: Path, *, ops_fs: float | None = None, mat_fs: float | None = None) -> tuple:
    folder.mkdir(parents=True)
    F, Fneu = _F_Fneu()
    iscell = np.zeros((N_ROIS, 2))
    iscell[CELLS, 0] = 1
    iscell[:, 1] = np.linspace(0, 1, N_ROIS)
    np.save(folder / "F.npy", F)
    np.save(folder / "Fneu.npy", Fneu)
    np.save(folder / "iscell.npy", iscell)
    if ops_fs is not None:
        np.save(folder / "ops.npy", {"fs": ops_fs, "neucoeff": 0.7}, allow_pickle=True)
    if mat_fs is not None:
        scipy.io.savemat(folder / "Fall.mat", {"ops": {"fs": mat_fs, "nframes": N_FRAMES}, "iscell": iscell})
    return F, Fneu


def make_nwb(path: Path, data: np.ndarray, *, rate: float | None = FS, timestamps=None,
             container: str = "Fluorescence", extra_dff: bool = False, conversion: float = 1.0,
             starting_time: float = 0.0) -> None:
    """A real NWB file: ImagingPlane, PlaneSegmentation (ids 100.., iscell column), RoiResponseSeries."""
    nwb = pynwb.NWBFile(session_description="test", identifier="test",
                        session_start_time=datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc))
    device = nwb.create_device(name="scope")
    channel = pynwb.ophys.OpticalChannel(name="green", description="green", emission_lambda=510.0)
    plane = nwb.create_imaging_plane(name="plane0", optical_channel=channel, imaging_rate=FS, description="p",
                                     device=device, excitation_lambda=920.0, indicator="GCaMP6s", location="V1")
    ophys = nwb.create_processing_module(name="ophys", description="ophys")
    segmentation = pynwb.ophys.ImageSegmentation()
    ophys.add(segmentation)
    table = segmentation.create_plane_segmentation(name="rois", description="r", imaging_plane=plane)
    table.add_column("iscell", "1 if the roi is a cell")
    n_table = data.shape[1] + 2
    for i in range(n_table):
        table.add_roi(image_mask=np.zeros((4, 4)), id=100 + i, iscell=float(i not in (1, 4)))
    region = list(range(0, n_table, 1))[: data.shape[1]]
    timing = {"rate": rate, "starting_time": starting_time} if rate is not None else {"timestamps": timestamps}
    kinds = {"Fluorescence": pynwb.ophys.Fluorescence, "DfOverF": pynwb.ophys.DfOverF}
    wanted = [container] + (["DfOverF"] if extra_dff else [])
    for name in wanted:
        box = kinds[name](name=name)
        ophys.add(box)
        box.create_roi_response_series(
            name="RoiResponseSeries", data=data if name == container else data / 100, unit="lumens",
            rois=table.create_roi_table_region(region=region, description="all"), conversion=conversion, **timing)
    with pynwb.NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)


def make_caiman(path: Path, *, f_dff: bool = True, idx=(0, 2, 3)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    C = rng.uniform(0, 5, (6, N_FRAMES)).astype(np.float32)
    D = (C / 10).astype(np.float32)
    with h5py.File(path, "w") as f:
        f["estimates/C"] = C
        f["estimates/YrA"] = C * 0
        f["estimates/F_dff"] = D if f_dff else "NoneType"
        if idx is not None:
            f["estimates/idx_components"] = np.asarray(idx, dtype=np.int64)
        f["params/data/fr"] = FS
    return C, D


# ----------------------------------------------------------------------------- suite2p


def test_suite2p_roundtrip_neuropil_and_cells(tmp_path):
    F, Fneu = make_suite2p(tmp_path / "plane0")
    before = _digest(tmp_path / "plane0")
    out = ingest(tmp_path / "plane0", tmp_path / "s.zarr", fs=FS)
    sig = open_signals(out)
    np.testing.assert_array_equal(sig.values, (F - 0.7 * Fneu)[CELLS])  # exact float32 arithmetic
    assert sig["roi"].values.tolist() == CELLS.tolist()
    assert sig.attrs["fs"] == FS and sig.attrs["source_format"] == "suite2p"
    assert sig.attrs["preprocessing"] == ["suite2p neuropil correction: F - 0.7 * Fneu",
                                          "cells only: iscell[:, 0] > 0.5 (5 of 9 rois)"]
    assert sig.attrs["source"] == str((tmp_path / "plane0").resolve())
    assert _digest(tmp_path / "plane0") == before


def test_suite2p_all_rois_other_coefficient_and_no_neuropil(tmp_path):
    F, Fneu = make_suite2p(tmp_path / "suite2p" / "plane0")
    out = ingest(tmp_path / "suite2p", tmp_path / "a.zarr", fs=FS, cells_only=False, neuropil_coefficient=0.5)
    np.testing.assert_array_equal(open_signals(out).values, F - 0.5 * Fneu)  # plane0 found from suite2p/
    (tmp_path / "suite2p" / "plane0" / "Fneu.npy").unlink()
    out = ingest(tmp_path / "suite2p" / "plane0", tmp_path / "b.zarr", fs=FS, neuropil_coefficient=0)
    np.testing.assert_array_equal(open_signals(out).values, F[CELLS])


def test_suite2p_rate_from_pickled_ops_only_when_allowed(tmp_path):
    make_suite2p(tmp_path / "p", ops_fs=15.0)
    with pytest.raises(ValueError, match="ops.npy, a pickled dict.*fs=.*allow_pickle=True"):
        ingest(tmp_path / "p", tmp_path / "a.zarr")
    assert open_signals(ingest(tmp_path / "p", tmp_path / "a.zarr", allow_pickle=True)).attrs["fs"] == 15.0
    assert open_signals(ingest(tmp_path / "p", tmp_path / "b.zarr", fs=15.0 * (1 + 1e-8),
                               allow_pickle=True)).attrs["fs_source"] == "fs argument"
    with pytest.raises(ValueError, match="fs=16 Hz disagrees with 15 Hz in ops.npy"):
        ingest(tmp_path / "p", tmp_path / "c.zarr", fs=16.0, allow_pickle=True)
    # fs= given, pickles not allowed: ops.npy is never opened
    assert open_signals(ingest(tmp_path / "p", tmp_path / "d.zarr", fs=16.0)).attrs["fs"] == 16.0


def test_suite2p_rate_from_fall_mat_without_pickle(tmp_path):
    make_suite2p(tmp_path / "p", mat_fs=7.5)
    sig = open_signals(ingest(tmp_path / "p", tmp_path / "a.zarr"))
    assert sig.attrs["fs"] == 7.5 and sig.attrs["fs_source"] == "Fall.mat (ops.fs)"
    with pytest.raises(ValueError, match="fs=10 Hz disagrees with 7.5 Hz in Fall.mat"):
        ingest(tmp_path / "p", tmp_path / "b.zarr", fs=10.0)


def test_suite2p_rates_disagreeing_between_files(tmp_path):
    make_suite2p(tmp_path / "p", ops_fs=15.0, mat_fs=7.5)
    before = _digest(tmp_path / "p")
    assert open_signals(ingest(tmp_path / "p", tmp_path / "a.zarr")).attrs["fs"] == 7.5  # pickles not read
    with pytest.raises(ValueError, match="sampling rates disagree: 7.5 Hz in Fall.mat .* vs 15 Hz in ops.npy"):
        ingest(tmp_path / "p", tmp_path / "b.zarr", allow_pickle=True)
    assert _digest(tmp_path / "p") == before


def _corrupt(folder: Path, name: str, value) -> None:
    if value is None:
        (folder / name).unlink()
    else:
        np.save(folder / name, value, allow_pickle=True)


@pytest.mark.parametrize(
    ("name", "value", "error", "match"),
    [
        ("Fneu.npy", None, FileNotFoundError, "Fneu.npy not found.*neuropil_coefficient=0"),
        ("iscell.npy", None, FileNotFoundError, "iscell.npy not found.*cells_only=False"),
        ("F.npy", None, FileNotFoundError, "F.npy not found"),
        ("Fneu.npy", np.zeros((N_ROIS, N_FRAMES - 1), np.float32), ValueError,
         r"Fneu.npy has shape \(9, 599\) but F.npy has \(9, 600\)"),
        ("iscell.npy", np.ones((N_ROIS - 1, 2)), ValueError, "iscell.npy has 8 rows but there are 9 rois"),
        ("iscell.npy", np.zeros((N_ROIS, 2)), ValueError, "marks no roi as a cell.*cells_only=False"),
        ("F.npy", np.zeros(N_FRAMES, np.float32), ValueError, "F.npy is 1-D.*expected a 2-D"),
        ("F.npy", np.array([{"a": 1}], dtype=object), ValueError, "pickle.*never unpickles"),
    ],
)
def test_suite2p_bad_input(tmp_path, name, value, error, match):
    make_suite2p(tmp_path / "p")
    _corrupt(tmp_path / "p", name, value)
    with pytest.raises(error, match=match):
        ingest(tmp_path / "p", tmp_path / "s.zarr", fs=FS)
    assert not (tmp_path / "s.zarr").exists()


def test_suite2p_needs_a_rate_and_one_plane(tmp_path):
    make_suite2p(tmp_path / "s2p" / "plane0")
    with pytest.raises(ValueError, match="no sampling rate found.*pass fs="):
        ingest(tmp_path / "s2p" / "plane0", tmp_path / "a.zarr")
    for bad in (0, -1.0, float("inf")):
        with pytest.raises(ValueError, match="fs must be a finite sampling rate > 0"):
            ingest(tmp_path / "s2p" / "plane0", tmp_path / "a.zarr", fs=bad)
    make_suite2p(tmp_path / "s2p" / "plane1")
    with pytest.raises(ValueError, match="2 planes.*one plane folder at a time"):
        ingest(tmp_path / "s2p", tmp_path / "a.zarr", fs=FS)


def test_nan_frames_refused_with_location_or_zeroed(tmp_path):
    F, Fneu = make_suite2p(tmp_path / "p")
    F[3, 17] = np.nan
    np.save(tmp_path / "p" / "F.npy", F)
    with pytest.raises(ValueError, match=r"NaN at roi 3 \(row 2\), frame 17.*nan_policy='zero'"):
        ingest(tmp_path / "p", tmp_path / "s.zarr", fs=FS)
    assert not (tmp_path / "s.zarr").exists()  # no partial output left behind
    sig = open_signals(ingest(tmp_path / "p", tmp_path / "s.zarr", fs=FS, nan_policy="zero"))
    assert sig.values[2, 17] == 0 and np.isfinite(sig.values).all()
    assert "non-finite values replaced by 0" in sig.attrs["preprocessing"]


def test_existing_output_and_overlapping_paths(tmp_path):
    make_suite2p(tmp_path / "p")
    out = ingest(tmp_path / "p", tmp_path / "s.zarr", fs=FS)
    with pytest.raises(StoreExistsError, match="overwrite=True"):
        ingest(tmp_path / "p", out, fs=FS)
    ingest(tmp_path / "p", out, fs=FS, overwrite=True, cells_only=False)
    assert open_signals(out).shape == (N_ROIS, N_FRAMES)
    with pytest.raises(ValueError, match="overlaps the source"):
        ingest(tmp_path / "p", tmp_path / "p" / "inside.zarr", fs=FS)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ingest(tmp_path / "nope", tmp_path / "x.zarr", fs=FS)


# ----------------------------------------------------------------------------- NWB


def test_nwb_roundtrip_rate_ids_and_cells(tmp_path):
    data = np.random.default_rng(1).standard_normal((N_FRAMES, 4)).astype(np.float32)  # time × roi
    make_nwb(tmp_path / "x.nwb", data, starting_time=2.5)
    before = _digest(tmp_path / "x.nwb")
    sig = open_signals(ingest(tmp_path / "x.nwb", tmp_path / "a.zarr"))
    keep = [0, 2, 3]  # table rows 1 and 4 are not cells
    np.testing.assert_array_equal(sig.values, data.T[keep])
    assert sig["roi"].values.tolist() == [100, 102, 103]
    assert sig.attrs["fs"] == FS and sig.attrs["units"] == "lumens" and sig.attrs["source_format"] == "nwb"
    assert sig.attrs["source_dataset"] == "processing/ophys/Fluorescence/RoiResponseSeries"
    assert float(sig["time"][0]) == 2.5
    all_rois = open_signals(ingest(tmp_path / "x.nwb", tmp_path / "b.zarr", cells_only=False))
    np.testing.assert_array_equal(all_rois.values, data.T)
    assert _digest(tmp_path / "x.nwb") == before


def test_nwb_timestamps_conversion_and_rate_checks(tmp_path):
    data = np.random.default_rng(2).standard_normal((N_FRAMES, 3)).astype(np.float32)
    ts = 10.0 + np.arange(N_FRAMES) / 20.0
    make_nwb(tmp_path / "t.nwb", data, rate=None, timestamps=ts, conversion=2.0)
    sig = open_signals(ingest(tmp_path / "t.nwb", tmp_path / "a.zarr", cells_only=False))
    assert sig.attrs["fs"] == pytest.approx(20.0, rel=1e-12) and float(sig["time"][0]) == 10.0
    np.testing.assert_allclose(sig.values, data.T * 2.0, rtol=1e-6)
    assert "NWB scaling: data * 2 + 0" in sig.attrs["preprocessing"]
    with pytest.raises(ValueError, match="fs=30 Hz disagrees with 20 Hz"):
        ingest(tmp_path / "t.nwb", tmp_path / "b.zarr", fs=30.0)
    jittery = ts.copy()
    jittery[100:] += 0.05  # a dropped frame
    make_nwb(tmp_path / "j.nwb", data, rate=None, timestamps=jittery)
    with pytest.raises(ValueError, match="not uniformly spaced.*dropped frames"):
        ingest(tmp_path / "j.nwb", tmp_path / "c.zarr")


def test_nwb_several_series_need_dataset(tmp_path):
    data = np.random.default_rng(4).uniform(1, 2, (N_FRAMES, 3)).astype(np.float32)
    make_nwb(tmp_path / "two.nwb", data, extra_dff=True)
    with pytest.raises(ValueError, match="2 RoiResponseSeries candidates.*DfOverF/RoiResponseSeries.*dataset="):
        ingest(tmp_path / "two.nwb", tmp_path / "a.zarr")
    with pytest.raises(ValueError, match="dataset='Neuropil' matches no"):
        ingest(tmp_path / "two.nwb", tmp_path / "a.zarr", dataset="Neuropil")
    sig = open_signals(ingest(tmp_path / "two.nwb", tmp_path / "a.zarr", dataset="DfOverF", cells_only=False))
    np.testing.assert_array_equal(sig.values, (data / 100).T)
    with pytest.raises(ValueError, match="already holds dF/F"):
        ingest(tmp_path / "two.nwb", tmp_path / "b.zarr", dataset="DfOverF", dff=True)
    sig = open_signals(ingest(tmp_path / "two.nwb", tmp_path / "c.zarr", dataset="Fluorescence/RoiResponseSeries",
                              cells_only=False))
    np.testing.assert_array_equal(sig.values, data.T)


# ----------------------------------------------------------------------------- CaImAn


def test_caiman_prefers_F_dff_and_keeps_accepted_components(tmp_path):
    C, D = make_caiman(tmp_path / "cnm.hdf5")
    before = _digest(tmp_path / "cnm.hdf5")
    assert detect_format(tmp_path / "cnm.hdf5") == "caiman"
    sig = open_signals(ingest(tmp_path / "cnm.hdf5", tmp_path / "a.zarr"))
    np.testing.assert_array_equal(sig.values, D[[0, 2, 3]])
    assert sig["roi"].values.tolist() == [0, 2, 3] and sig.attrs["fs"] == FS and sig.attrs["units"] == "dF/F"
    sig = open_signals(ingest(tmp_path / "cnm.hdf5", tmp_path / "b.zarr", dataset="C", cells_only=False))
    np.testing.assert_array_equal(sig.values, C)
    assert sig.attrs["source_dataset"] == "/estimates/C"
    with pytest.raises(ValueError, match="fs=10 Hz disagrees with 30 Hz in /params/data/fr"):
        ingest(tmp_path / "cnm.hdf5", tmp_path / "c.zarr", fs=10.0)
    assert _digest(tmp_path / "cnm.hdf5") == before


def test_caiman_without_F_dff_falls_back_to_C(tmp_path):
    C, _ = make_caiman(tmp_path / "cnm.hdf5", f_dff=False, idx=None)
    sig = open_signals(ingest(tmp_path / "cnm.hdf5", tmp_path / "a.zarr"))
    np.testing.assert_array_equal(sig.values, C)
    assert sig.attrs["source_dataset"] == "/estimates/C" and sig.attrs["units"] == "a.u."


# ----------------------------------------------------------------------------- plain npy / HDF5 / Zarr


def test_plain_formats_roundtrip(tmp_path):
    x = np.random.default_rng(5).standard_normal((4, 300))
    np.save(tmp_path / "x.npy", x)
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f["group/traces"] = x
        f["group/other"] = x[:2]
        f["vector"] = x[0]
    zarr.save_array(str(tmp_path / "x.zarr"), x)
    group = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    group.create_array("traces", data=x)
    cases = {"x.npy": {}, "x.h5": {"dataset": "traces"}, "x.zarr": {}, "g.zarr": {}}
    for name, extra in cases.items():
        before = _digest(tmp_path / name)
        sig = open_signals(ingest(tmp_path / name, tmp_path / f"out-{name}.zarr", fs=12.5, **extra))
        np.testing.assert_array_equal(sig.values, x.astype(np.float32))
        assert sig.attrs["fs"] == 12.5 and sig["roi"].values.tolist() == [0, 1, 2, 3]
        assert _digest(tmp_path / name) == before
    assert [detect_format(tmp_path / n) for n in cases] == ["npy", "hdf5", "zarr", "zarr"]


def test_time_major_sources_are_read_with_layout(tmp_path, capsys):
    """``layout='time,roi'`` reads one column per roi, streamed in blocks (here more frames than
    one block), for every plain format, without the layout warning; the store records it."""
    import warnings

    from bioxen_dask.cli import main

    x = np.random.default_rng(6).standard_normal((3, 5000)).astype(np.float32)  # (roi, time)
    np.save(tmp_path / "t.npy", x.T)
    with h5py.File(tmp_path / "t.h5", "w") as f:
        f["traces"] = x.T
    zarr.create_array(str(tmp_path / "t.zarr"), data=x.T, chunks=(700, 2))
    for name in ("t.npy", "t.h5", "t.zarr"):
        before = _digest(tmp_path / name)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            out = ingest(tmp_path / name, tmp_path / f"o-{name}.zarr", fs=20.0, layout="time,roi",
                         chunks=(2, 1024))
        sig = open_signals(out)
        np.testing.assert_array_equal(sig.values, x)
        assert sig.sizes == {"roi": 3, "time": 5000} and sig.attrs["source_layout"] == "time,roi"
        assert _digest(tmp_path / name) == before
    # no layout given and the shape says "time x roi" (far more rows than columns): refused, naming
    # --layout, instead of 5000 rois x 3 frames with exit 0
    with pytest.raises(ValueError, match=r"t\.npy has 5000 rows and 3 columns: read as \(roi,time\) it would be "
                                         r"5000 rois x 3 frames.*layout='time,roi' \(--layout time,roi\).*"
                                         r"layout='roi,time' \(--layout roi,time\)"):
        ingest(tmp_path / "t.npy", tmp_path / "wrong.zarr", fs=20.0)
    assert not (tmp_path / "wrong.zarr").exists()
    assert main(["ingest", str(tmp_path / "t.npy"), str(tmp_path / "wrong.zarr"), "--fs", "20"]) == 2
    assert "--layout time,roi" in capsys.readouterr().err and not (tmp_path / "wrong.zarr").exists()
    with pytest.warns(UserWarning, match=r"read as \(roi,time\): it becomes 5000 rois x 3 frames"):
        ingest(tmp_path / "t.npy", tmp_path / "asked.zarr", fs=20.0, layout="roi,time")  # said so: done
    np.save(tmp_path / "w.npy", x)
    with pytest.warns(UserWarning, match=r"read as \(time,roi\): it becomes 5000 rois x 3 frames.*layout='roi,time'"):
        ingest(tmp_path / "w.npy", tmp_path / "wrong2.zarr", fs=20.0, layout="time,roi")
    with pytest.raises(ValueError, match=r"unknown layout 'time_roi'; use one of \['roi,time', 'time,roi'\]"):
        ingest(tmp_path / "t.npy", tmp_path / "o.zarr", fs=20.0, layout="time_roi")
    F, _ = make_suite2p(tmp_path / "suite2p" / "plane0")
    with pytest.raises(ValueError, match="layout='time,roi' applies to npy/hdf5/zarr sources; suite2p"):
        ingest(tmp_path / "suite2p" / "plane0", tmp_path / "o.zarr", fs=20.0, layout="time,roi")
    assert main(["ingest", str(tmp_path / "t.npy"), str(tmp_path / "cli.zarr"), "--fs", "20",
                 "--layout", "time,roi"]) == 0
    capsys.readouterr()
    np.testing.assert_array_equal(open_signals(tmp_path / "cli.zarr").values, x)
    assert main(["ingest", str(tmp_path / "t.npy"), str(tmp_path / "cli2.zarr"), "--fs", "20",
                 "--layout", "time,roi", "--dff-window", "30"]) == 2
    assert "--dff-window and --dff-percentile set the dF/F baseline: add --dff" in capsys.readouterr().err


def test_plain_formats_bad_input(tmp_path):
    x = np.random.default_rng(5).standard_normal((4, 300))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "v.npy", x[0])
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f["a"], f["b"], f["v"] = x, x, x[0]
    with pytest.raises(ValueError, match="carry no sampling rate.*pass fs="):
        ingest(tmp_path / "x.npy", tmp_path / "o.zarr")
    with pytest.raises(ValueError, match="1-D with shape \\(300,\\).*shape \\(1, n_frames\\)"):
        ingest(tmp_path / "v.npy", tmp_path / "o.zarr", fs=10)
    with pytest.raises(ValueError, match="2 2-D numeric dataset candidates \\(a, b\\).*dataset="):
        ingest(tmp_path / "x.h5", tmp_path / "o.zarr", fs=10)
    with pytest.raises(ValueError, match="/v is 1-D"):
        ingest(tmp_path / "x.h5", tmp_path / "o.zarr", fs=10, dataset="/v")
    with pytest.raises(ValueError, match="unknown format 'tiff'"):
        ingest(tmp_path / "x.npy", tmp_path / "o.zarr", fs=10, format="tiff")
    with pytest.raises(ValueError, match="format 'suite2p' expects a folder"):
        ingest(tmp_path / "x.npy", tmp_path / "o.zarr", fs=10, format="suite2p")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(ValueError, match="cannot tell the format.*format="):
        ingest(tmp_path / "notes.txt", tmp_path / "o.zarr", fs=10)
    out = ingest(tmp_path / "x.npy", tmp_path / "o.zarr", fs=10)
    with pytest.raises(ValueError, match="already a bioxen-dask signals store"):
        ingest(out, tmp_path / "again.zarr", fs=10)


# ----------------------------------------------------------------------------- ΔF/F


def test_dff_blockwise_equals_whole_trace(tmp_path):
    rng = np.random.default_rng(6)
    x = (100 + 20 * rng.standard_normal((5, 2000)) + np.linspace(0, 50, 2000)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    whole = dff(x, window=61, percentile=8.0)
    # 300-frame time chunks, window 2 s * 30 Hz + 1 = 61 frames: blocks need halos
    sig = open_signals(ingest(tmp_path / "x.npy", tmp_path / "a.zarr", fs=30.0, dff=True, dff_window_s=2.0,
                              chunks=(2, 300)))
    np.testing.assert_array_equal(sig.values, whole)
    assert sig.attrs["units"] == "dF/F" and "61 frames" in sig.attrs["preprocessing"][-1]
    # and directly, with odd block edges
    read = dff_reader(lambda r, t: x[r, t], 2000, 61, 8.0, np.arange(5))
    pieces = [read(slice(0, 5), slice(a, b)) for a, b in [(0, 7), (7, 700), (700, 1999), (1999, 2000)]]
    np.testing.assert_array_equal(np.concatenate(pieces, axis=1), whole)


def test_dff_constant_baseline_is_exact(tmp_path):
    f = np.full((2, 900), 100.0, dtype=np.float32)
    f[0, 100:103] = 150.0  # sparse transients stay above the 8th percentile
    f[1, 400] = 300.0
    np.save(tmp_path / "f.npy", f)
    sig = open_signals(ingest(tmp_path / "f.npy", tmp_path / "a.zarr", fs=10.0, dff=True, dff_window_s=10.0))
    expected = np.zeros_like(f)
    expected[0, 100:103] = 0.5
    expected[1, 400] = 2.0
    np.testing.assert_array_equal(sig.values, expected)


def test_dff_bad_parameters(tmp_path):
    f = np.full((2, 300), 100.0, dtype=np.float32)
    f[1, :] = -5.0
    np.save(tmp_path / "f.npy", f)
    with pytest.raises(ValueError, match="baseline is -5 <= 0 at roi 1, frame 0"):
        ingest(tmp_path / "f.npy", tmp_path / "a.zarr", fs=10.0, dff=True, dff_window_s=2.0)
    with pytest.raises(ValueError, match="longer than the recording.*shorter dff_window_s"):
        ingest(tmp_path / "f.npy", tmp_path / "a.zarr", fs=10.0, dff=True, dff_window_s=60.0)
    with pytest.raises(ValueError, match="dff_percentile must be between 0 and 100"):
        ingest(tmp_path / "f.npy", tmp_path / "a.zarr", fs=10.0, dff=True, dff_window_s=2.0, dff_percentile=100)
    assert not (tmp_path / "a.zarr").exists()


def test_layout_help_names_each_order_once(capsys):
    from bioxen_dask.cli import main

    with pytest.raises(SystemExit):
        main(["ingest", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "{roi,time,time,roi}" not in text  # argparse's joined choices read as four axis names
    assert "--layout ORDER" in text and "'roi,time' (one row per roi)" in text
    assert "'time,roi' (one column per roi)" in text


# ----------------------------------------------------------------------------- CSV / TSV (issue 23.5)


def _csv_traces():
    rng = np.random.default_rng(23)
    return rng.standard_normal((4, 500)).astype(np.float32)  # (roi, time)


@pytest.mark.parametrize("sep, suffix", [(",", ".csv"), ("\t", ".tsv")])
def test_csv_tsv_time_x_roi_with_header_and_time_column(tmp_path, sep, suffix):
    """The common export: one column per roi under a header naming it, a time column first;
    the rate comes from the time column, the roi ids from the header."""
    x = _csv_traces()
    t = np.arange(500) / 15.0
    lines = [sep.join(["time", "3", "7", "13", "29"])]
    lines += [sep.join([f"{t[k]:.9g}"] + [f"{v:.9g}" for v in x[:, k]]) for k in range(500)]
    src = tmp_path / f"traces{suffix}"
    src.write_text("\n".join(lines) + "\n")
    before = _digest(src)
    assert detect_format(src) == "csv"
    sig = open_signals(ingest(src, tmp_path / "o.zarr"))
    np.testing.assert_array_equal(sig.values, x)
    assert sig.attrs["fs"] == pytest.approx(15.0, rel=1e-6) and sig["roi"].values.tolist() == [3, 7, 13, 29]
    assert sig.attrs["source_format"] == "csv" and _digest(src) == before
    with pytest.raises(ValueError, match=r"fs=16 disagrees|disagree"):
        ingest(src, tmp_path / "o2.zarr", fs=16.0)


def test_csv_without_header_or_time_column_needs_fs_and_named_columns(tmp_path):
    x = _csv_traces()
    np.savetxt(tmp_path / "plain.csv", x.T, delimiter=",", fmt="%.9g")
    with pytest.raises(ValueError, match="csv sources carry no sampling rate.*pass fs="):
        ingest(tmp_path / "plain.csv", tmp_path / "o.zarr")
    sig = open_signals(ingest(tmp_path / "plain.csv", tmp_path / "o.zarr", fs=10.0))
    np.testing.assert_array_equal(sig.values, x)
    assert sig["roi"].values.tolist() == [0, 1, 2, 3]
    (tmp_path / "names.csv").write_text("cellA,cellB\n1,2\n3,4\n5,6.5\n")
    named = open_signals(ingest(tmp_path / "names.csv", tmp_path / "n.zarr", fs=1.0))
    assert named["roi"].values.tolist() == ["cellA", "cellB"]
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n3,oops\n")
    with pytest.raises(ValueError, match=r"bad\.csv: row 3, column 'b': 'oops' is not a number"):
        ingest(tmp_path / "bad.csv", tmp_path / "b.zarr", fs=1.0)
    with pytest.raises(ValueError, match=r"CSV/TSV sources are read time x roi.*layout='roi,time' does not apply"):
        ingest(tmp_path / "plain.csv", tmp_path / "l.zarr", fs=10.0, layout="roi,time")


def test_hdf5_and_zarr_rate_attributes_are_read(tmp_path):
    """An ``fs`` (or ``rate``, ``sampling_rate``, ...) attribute on the dataset or a group above it
    is the rate; a given ``fs`` must agree with it."""
    x = np.random.default_rng(7).standard_normal((3, 400))
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f["traces"] = x
        f["traces"].attrs["fs"] = 12.5
    with h5py.File(tmp_path / "g.h5", "w") as f:
        f.attrs["sampling_rate"] = 20.0
        f["imaging/traces"] = x
    z = zarr.create_array(str(tmp_path / "a.zarr"), data=x)
    z.attrs["rate"] = 7.5
    for name, rate, where in (("a.h5", 12.5, "'fs' of /traces"), ("g.h5", 20.0, "'sampling_rate' of /"),
                              ("a.zarr", 7.5, "'rate' of a.zarr")):
        sig = open_signals(ingest(tmp_path / name, tmp_path / f"o-{name}.zarr"))
        np.testing.assert_array_equal(sig.values, x.astype(np.float32))
        assert sig.attrs["fs"] == rate and sig.attrs["fs_source"] == f"attribute {where}", name
    with pytest.raises(ValueError, match="disagree"):
        ingest(tmp_path / "a.h5", tmp_path / "bad.zarr", fs=30.0)
