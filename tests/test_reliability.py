"""Reliability (issue 9): bad inputs fail early and clearly, untrusted files stay inert, the input
store is never modified, a full disk or an unreachable scheduler is a clear error, and the
servers the CLI starts listen on loopback only.

Every test here runs in-process on small stores (seconds); the tests that kill workers and
whole runs are in ``test_reliability_cluster.py``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import pickle
import re
import socket
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

from _cluster_fixtures import free_port
from _helpers import assert_same_result, tree_digest
from bioxen_dask import kernels
from bioxen_dask.cli import main
from bioxen_dask.cluster import ClusterConfig, ClusterConnectionError, connect, dashboard_link
from bioxen_dask.coherence import coherence, period_grid
from bioxen_dask.datasets import IncompleteResultError, open_result, result_status
from bioxen_dask.io import CorruptStoreError, ingest, open_signals_store, write_signals, write_synthetic
from bioxen_dask.pipeline import PipelineError, load_pipeline, run_pipeline

REPO = Path(__file__).resolve().parents[1]
SMALL = REPO / "pipelines" / "small_test.yaml"
FS = 30.0


# ----------------------------------------------------------------------------- helpers


def config(store, tmp_path: Path, **sets) -> dict:
    """A small reference-mode pipeline (periods 1-8 s, 4 scales per octave, 2 rois per region)."""
    cfg = {
        "input": {"store": str(store)},
        "grid": {"min_period": 1.0, "max_period": 8.0, "dj": 0.25},
        "pairs": {"mode": "reference", "reference": "stimulus"},
        "significance": {"enabled": False, "mc_count": 10, "cache": str(tmp_path / "cache")},
        "outputs": {"path": str(tmp_path / "out.zarr")},
        "compute": {"roi_chunk": 2},
    }
    for dotted, value in sets.items():
        section, key = dotted.split("__")
        cfg.setdefault(section, {})[key] = value
    return cfg


def run(cfg) -> dict:
    return run_pipeline(load_pipeline(cfg), progress=False)


def traces(n_rois=6, n=1200, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / FS
    stim = np.sin(2 * np.pi * t / 3.0)
    x = 0.8 * stim + rng.standard_normal((n_rois, n)).cumsum(axis=1) * 0.05 + rng.standard_normal((n_rois, n))
    return x.astype(np.float32), stim


def store_from(tmp_path: Path, x: np.ndarray, stim: np.ndarray, name="s.zarr", nan_policy="raise") -> Path:
    """A signals store holding ``x`` with a stimulus reference; NaN/inf stored as NaN when
    ``nan_policy='keep'`` (what ``ingest(..., nan_policy='keep')`` writes)."""
    from bioxen_dask.io import SignalsWriter
    from bioxen_dask.io._blocks import array_reader

    with SignalsWriter(tmp_path / name, x.shape, FS, references={"stimulus": stim}, chunks=(2, x.shape[1])) as w:
        w.fill(array_reader(x), keep_missing=nan_policy == "keep")
    return w.path


@pytest.fixture(scope="module")
def clean_store(tmp_path_factory):
    x, stim = traces()
    return store_from(tmp_path_factory.mktemp("clean"), x, stim)


@contextlib.contextmanager
def failing_writes(under: Path, exc: BaseException, *, after: int | None = None, after_regions: int | None = None):
    """Zarr file writes under ``under`` raise ``exc`` once ``after`` writes were made, or once
    ``after_regions`` region checksums were written (the last write of a finished region).

    Patches the one function all of zarr's local-store writes go through (threads included).
    """
    import zarr.storage._local as local

    real = local._put
    count = {"n": 0, "regions": 0}
    lock = threading.Lock()
    root = str(Path(under).absolute())

    def put(path, value, *args, **kwargs):
        if str(path).startswith(root):
            with lock:
                full = (after is not None and count["n"] >= after) or (
                    after_regions is not None and count["regions"] >= after_regions)
                count["n"] += 1
                if full:
                    raise exc
                if "/_region_checksum/c/" in str(path):
                    count["regions"] += 1
        return real(path, value, *args, **kwargs)

    local._put = put
    try:
        yield count
    finally:
        local._put = real


@contextlib.contextmanager
def forbid_writes(under: Path):
    """Any attempt to write or delete under ``under`` through Zarr raises (even as root)."""
    import zarr.storage._local as local

    root = str(Path(under).absolute())
    attempts: list[str] = []
    real_put = local._put
    real_delete = local.LocalStore.delete
    real_delete_dir = local.LocalStore.delete_dir

    def put(path, value, *args, **kwargs):
        if str(path).startswith(root):
            attempts.append(str(path))
            raise PermissionError(f"test: write to the input store {path}")
        return real_put(path, value, *args, **kwargs)

    async def delete(self, key):
        if str(self.root).startswith(root):
            attempts.append(f"delete {key}")
            raise PermissionError(f"test: delete in the input store {key}")
        return await real_delete(self, key)

    async def delete_dir(self, prefix):
        if str(self.root).startswith(root):
            attempts.append(f"delete_dir {prefix}")
            raise PermissionError(f"test: delete in the input store {prefix}")
        return await real_delete_dir(self, prefix)

    local._put, local.LocalStore.delete, local.LocalStore.delete_dir = put, delete, delete_dir
    try:
        yield attempts
    finally:
        local._put, local.LocalStore.delete, local.LocalStore.delete_dir = real_put, real_delete, real_delete_dir


# ----------------------------------------------------------------------------- the input store


def test_input_store_is_opened_read_only_and_never_modified(clean_store, tmp_path):
    before = tree_digest(clean_store)
    group = zarr.open_group(str(clean_store), mode="r")
    assert group.store.read_only
    with forbid_writes(clean_store) as attempts:
        summary = run(config(clean_store, tmp_path, outputs__maps=True, significance__enabled=True))
    assert attempts == [] and summary["write"]["written"] == summary["write"]["regions"]
    assert tree_digest(clean_store) == before  # byte for byte, every file
    # the guard itself can fail: a write through the store is caught
    with forbid_writes(clean_store) as attempts, pytest.raises(PermissionError):
        zarr.open_group(str(clean_store), mode="r+").attrs["x"] = 1
    assert attempts


# ----------------------------------------------------------------------------- bad inputs


def test_nan_in_traces_is_refused_by_default_before_anything_is_written(tmp_path):
    x, stim = traces()
    x[3, 500:504] = np.nan
    x[4, 10] = np.inf
    store = store_from(tmp_path, x, stim, nan_policy="keep")
    out = tmp_path / "out.zarr"
    with pytest.raises(ValueError, match=r"non-finite samples .* first roi 3 .* frame 500 .*nan_policy='interpolate'"):
        run(config(store, tmp_path))
    assert not out.exists()  # failed before the output was created: nothing to pass off
    with pytest.raises(ValueError, match="non-finite"):  # the API refuses too, never a silent NaN result
        coherence(store, reference="stimulus", min_period=1.0, max_period=8.0, dj=0.25, significance=None)


def test_ingest_can_keep_missing_samples_and_records_them(tmp_path):
    x, _ = traces()
    x[1, 5:9] = np.nan
    x[2, 100] = -np.inf
    np.save(tmp_path / "x.npy", x)
    with pytest.raises(ValueError, match=r"roi 1 \(row 1\), frame 5 .*nan_policy='keep'"):
        ingest(tmp_path / "x.npy", tmp_path / "a.zarr", fs=FS)
    assert main(["ingest", str(tmp_path / "x.npy"), str(tmp_path / "b.zarr"), "--fs", "30",
                 "--nan-policy", "keep"]) == 0
    ds = open_signals_store(tmp_path / "b.zarr")
    assert ds.attrs["missing_samples"] == 5
    assert ds.attrs["preprocessing"][-1] == "non-finite values kept as missing samples (NaN): 5"
    np.testing.assert_array_equal(np.isnan(ds.signals.values), ~np.isfinite(x))


def test_nan_policy_interpolate_fills_short_gaps_and_masks_their_reach(tmp_path):
    x, stim = traces(n_rois=4)
    x[1, 600:605] = np.nan  # an interior gap of 5 frames
    x[2, 0:3] = np.nan  # a gap at the start: filled with the nearest value
    store = store_from(tmp_path, x, stim, nan_policy="keep")
    cfg = config(store, tmp_path, preprocessing__nan_policy="interpolate", preprocessing__max_gap=0.2,
                 outputs__maps=True)
    run(cfg)
    got = open_result(cfg["outputs"]["path"]).compute()

    # expected: the transform of the interpolated traces, masked by the gap's cone of influence
    filled, missing = kernels.fill_gaps(x.astype(np.float64), max_gap=6)
    ref = coherence(xr.DataArray(filled.astype(np.float32), dims=("roi", "time"),
                                 coords={"time": np.arange(x.shape[1]) / FS}),
                    reference=stim.astype(np.float32), min_period=1.0, max_period=8.0, dj=0.25,
                    significance=None, maps=True).compute(scheduler="sync")  # the stored (float32) reference
    grid = period_grid(x.shape[1], 1 / FS, min_period=1.0, max_period=8.0, dj=0.25)
    mask = kernels.gap_mask(kernels.gap_distance(missing), grid)  # (roi, period, time)
    assert mask[1].any() and mask[2].any() and not mask[0].any()
    # the reach widens with the scale: exactly the COI rule at the record's ends, around the gap
    width = mask[1].sum(axis=-1)
    assert np.all(np.diff(width) >= 0) and width[-1] > width[0] >= 5
    for name in ("coherence", "phase"):
        expect = np.where(mask, np.nan, ref[name].values)
        np.testing.assert_array_equal(np.isnan(got[name].values), np.isnan(expect), err_msg=name)
        np.testing.assert_allclose(got[name].values, expect, atol=2e-5, err_msg=name)
    # reductions: the mean over samples outside the COI *and* outside the gaps' reach
    outside = (grid.periods[:, None] <= grid.coi(x.shape[1])[None, :])[None] & ~mask
    with np.errstate(invalid="ignore"):  # scales with no sample left: NaN, as in the result
        expect_mean = np.nansum(np.where(outside, ref.coherence.values, 0), axis=-1) / outside.sum(axis=-1)
    np.testing.assert_allclose(got.coherence_mean.values, expect_mean, atol=2e-5)
    assert got.attrs["nan_policy"] == "interpolate"


def test_gap_longer_than_max_gap_is_refused(tmp_path):
    x, stim = traces(n_rois=4)
    x[2, 300:340] = np.nan  # 40 frames = 1.33 s
    store = store_from(tmp_path, x, stim, nan_policy="keep")
    cfg = config(store, tmp_path, preprocessing__nan_policy="interpolate", preprocessing__max_gap=0.5)
    with pytest.raises(ValueError, match=r"roi 2 .* gap of 40 missing samples, longer than max_gap=15"):
        run(cfg)
    assert not Path(cfg["outputs"]["path"]).exists()


def test_constant_trace_is_a_clear_error(tmp_path):
    x, stim = traces()
    x[4] = 7.0
    store = store_from(tmp_path, x, stim)
    with pytest.raises(ValueError, match=r"1 traces are constant .* rois 4 .*input\.rois"):
        run(config(store, tmp_path))
    assert not (tmp_path / "out.zarr").exists()
    # excluding it, as the message says, works
    assert run(config(store, tmp_path, input__rois=[0, 1, 2, 3, 5]))["pairs"] == 5


def test_trace_shorter_than_the_grid_needs(tmp_path):
    x, stim = traces(n=120)  # 4 s
    store = store_from(tmp_path, x, stim)
    with pytest.raises(PipelineError, match=r"grid: max_period=8 s is longer than the record \(120 samples"):
        run(config(store, tmp_path))
    tiny = write_signals(tmp_path / "tiny.zarr", x[:, :3], FS, references={"stimulus": stim[:3]})
    cfg = config(tiny, tmp_path)
    cfg["grid"] = {}
    with pytest.raises(PipelineError, match=r"has 3 samples, fewer than the smallest wavelet needs"):
        run(cfg)
    assert not (tmp_path / "out.zarr").exists()


@pytest.mark.parametrize("damage", ["truncate", "overwrite", "delete"])
def test_corrupt_or_missing_chunk_names_the_store_and_variable(tmp_path, damage):
    x, stim = traces()
    store = store_from(tmp_path, x, stim)
    chunk = store / "signals" / "c" / "1" / "0"
    data = chunk.read_bytes()
    if damage == "truncate":
        chunk.write_bytes(data[: len(data) // 3])
    elif damage == "overwrite":
        chunk.write_bytes(b"\0" * len(data))
    else:
        chunk.unlink()
    match = rf"signals store {store}: variable 'signals': .*(cannot be read|is missing).*damaged"
    if damage == "delete":  # a missing chunk file is found when the store is opened: nothing is written
        with pytest.raises(PipelineError, match=match):
            run(config(store, tmp_path, significance__enabled=True))
        assert not (tmp_path / "out.zarr").exists()
        return
    with pytest.raises(CorruptStoreError, match=match):
        run(config(store, tmp_path, significance__enabled=True))
    status = result_status(tmp_path / "out.zarr")
    assert not status["complete"]
    with pytest.raises((FileNotFoundError, IncompleteResultError)):
        open_result(tmp_path / "out.zarr")


def test_wrong_dtypes_are_refused(tmp_path, clean_store):
    x, stim = traces()
    store = store_from(tmp_path, x, stim)
    group = zarr.open_group(str(store), mode="r+")
    del group["signals"]
    arr = group.create_array("signals", shape=x.shape, dtype="int16", chunks=(2, x.shape[1]),
                             dimension_names=("roi", "time"))
    arr[...] = x.astype(np.int16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # consolidated metadata is not in the v3 spec
        zarr.consolidate_metadata(str(store))
    with pytest.raises(PipelineError, match=r"input\.store: 'signals' in .* must be float32 .* got int16"):
        run(config(store, tmp_path))
    np.save(tmp_path / "complex.npy", x.astype(np.complex64))
    with pytest.raises(ValueError, match="must hold real numbers, got dtype complex64"):
        ingest(tmp_path / "complex.npy", tmp_path / "c.zarr", fs=FS)
    assert not (tmp_path / "c.zarr").exists()
    np.save(tmp_path / "ref.npy", np.array(["a"] * x.shape[1]))
    cfg = config(clean_store, tmp_path, pairs__reference=None, pairs__reference_file=str(tmp_path / "ref.npy"))
    with pytest.raises(PipelineError, match=r"pairs\.reference_file: .* numbers, got dtype <U1"):
        run(cfg)
    assert not (tmp_path / "out.zarr").exists()


def test_sampling_rates_that_disagree_between_files(tmp_path):
    import scipy.io

    plane = tmp_path / "plane0"
    plane.mkdir()
    x, _ = traces()
    np.save(plane / "F.npy", x + 100)
    np.save(plane / "iscell.npy", np.ones((x.shape[0], 2)))
    scipy.io.savemat(plane / "Fall.mat", {"ops": {"fs": 30.0}, "settings": {"fs": 15.0}})
    with pytest.raises(ValueError, match=r"sampling rates disagree: 30 Hz in Fall\.mat \(ops\.fs\) vs 15 Hz"):
        ingest(plane, tmp_path / "s.zarr", neuropil_coefficient=0)
    assert not (tmp_path / "s.zarr").exists()


def test_pipeline_with_unknown_keys_fails_before_anything_runs(tmp_path, clean_store, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(SMALL.read_text().replace("max_period:", "max_perod:"))
    code = main(["run", str(bad), "--set", f"input.store={clean_store}", "--set",
                 f"outputs.path={tmp_path / 'out.zarr'}", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "grid.max_perod: unknown key. Did you mean 'grid.max_period'?" in err
    assert "Traceback" not in err and not (tmp_path / "out.zarr").exists()


# ----------------------------------------------------------------------------- disk full


@pytest.mark.parametrize("where", ["template", "regions"])
def test_disk_full_while_writing_the_result_is_a_clear_error_and_never_complete(clean_store, tmp_path, where):
    cfg = config(clean_store, tmp_path, outputs__maps=True)
    out = Path(cfg["outputs"]["path"])
    full = OSError(errno.ENOSPC, "No space left on device")
    when = {"after": 10} if where == "template" else {"after_regions": 1}
    with failing_writes(out, full, **when) as count, pytest.raises(OSError) as info:
        run(cfg)
    assert count["n"] > 10  # it did fail mid-write
    assert info.value.errno == errno.ENOSPC
    message = str(info.value)
    assert "disk full" in message and str(out) in message and "re-run" in message
    status = result_status(out)
    assert status["is_result"] and not status["complete"]
    with pytest.raises(IncompleteResultError):
        open_result(out)
    # with space again, the same pipeline resumes and completes, equal to a clean run
    summary = run(cfg)
    assert summary["write"]["written"] + summary["write"]["skipped"] == summary["write"]["regions"]
    if where == "regions":  # a region was in: only the others are recomputed
        assert summary["write"]["resumed"] and 0 < summary["write"]["written"] < summary["write"]["regions"]
    clean = run(config(clean_store, tmp_path, outputs__maps=True, outputs__path=str(tmp_path / "clean.zarr")))
    assert clean["write"]["written"] == clean["write"]["regions"]
    assert_same_result(open_result(out), open_result(tmp_path / "clean.zarr"))


def test_damaged_half_written_output_is_recomputed_not_trusted(clean_store, tmp_path, capsys):
    cfg = config(clean_store, tmp_path, outputs__maps=True)
    out = Path(cfg["outputs"]["path"])
    with failing_writes(out, OSError(errno.ENOSPC, "No space left on device"), after_regions=2), \
            pytest.raises(OSError):
        run(cfg)
    sums = sorted((out / "_region_checksum" / "c").iterdir(), key=lambda f: int(f.name))
    assert len(sums) >= 2
    sums[0].write_bytes(sums[0].read_bytes()[:3])  # a checksum cut short by a kill
    k = int(sums[1].name)  # and a data chunk of another finished region overwritten
    (out / "coherence_mean" / "c" / str(k) / "0").write_bytes(b"garbage")
    status = result_status(out)  # still readable: damaged entries count as not written
    assert not status["complete"] and status["regions_done"] == len(sums) - 1
    assert main(["info", str(out), "--json"]) == 0 and '"complete": false' in capsys.readouterr().out
    summary = run(cfg)
    assert summary["write"]["skipped"] == len(sums) - 2  # neither damaged region is trusted
    clean = config(clean_store, tmp_path, outputs__maps=True, outputs__path=str(tmp_path / "clean.zarr"))
    run(clean)
    assert_same_result(open_result(out), open_result(tmp_path / "clean.zarr"))


def test_disk_full_in_the_cli_exits_with_a_message(clean_store, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out.zarr"
    with failing_writes(out, OSError(errno.ENOSPC, "No space left on device"), after=3):
        code = main(["run", str(SMALL), "--cluster", "local", "--no-progress", "--set", f"input.store={clean_store}",
                     "--set", f"outputs.path={out}", "--set", "significance.enabled=false",
                     "--set", "grid.max_period=8", "--set", "cluster.processes=false"])
    err = capsys.readouterr().err
    assert code == 2 and "disk full" in err and "Traceback" not in err
    assert not result_status(out)["complete"]


def test_disk_full_during_ingest_leaves_no_store(tmp_path):
    x, _ = traces()
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "s.zarr"
    with failing_writes(out, OSError(errno.ENOSPC, "No space left on device"), after=4), \
            pytest.raises(OSError, match="No space left"):
        ingest(tmp_path / "x.npy", out, fs=FS, chunks=(2, x.shape[1]))
    assert not out.exists()


# ----------------------------------------------------------------------------- unreachable scheduler


@contextlib.contextmanager
def silent_server():
    """A TCP server on 127.0.0.1 that accepts connections and never says a word."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept():
        srv.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                held.append(srv.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"tcp://127.0.0.1:{srv.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for s in held:
            s.close()
        srv.close()


@pytest.mark.parametrize("kind", ["nothing listening", "silent server"])
def test_unreachable_scheduler_times_out_with_a_clear_message(kind):
    ctx = silent_server() if kind == "silent server" else contextlib.nullcontext(f"tcp://127.0.0.1:{free_port()}")
    with ctx as address:
        t0 = time.monotonic()
        with pytest.raises(ClusterConnectionError, match=r"could not connect to the Dask scheduler at .*"
                                                         r"within connect_timeout=2 s"):
            with connect(ClusterConfig(kind="address", address=address, connect_timeout=2)):
                pass
        assert time.monotonic() - t0 < 15  # a timeout, not a hang


def test_cli_with_an_unreachable_scheduler_exits_quickly(clean_store, tmp_path, capsys):
    with silent_server() as address:
        t0 = time.monotonic()
        code = main(["run", str(SMALL), "--scheduler", address, "--no-progress", "--set", f"input.store={clean_store}",
                     "--set", f"outputs.path={tmp_path / 'out.zarr'}", "--set", "cluster.connect_timeout=2",
                     "--set", "grid.max_period=8"])
        elapsed = time.monotonic() - t0
    err = capsys.readouterr().err
    assert code == 2 and "could not connect to the Dask scheduler" in err and address in err
    assert elapsed < 20 and not (tmp_path / "out.zarr").exists()


# ----------------------------------------------------------------------------- untrusted files


class _Payload:
    """Unpickling this creates ``path``: proof that something was unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_npy_files_are_never_unpickled(tmp_path, clean_store):
    marker = tmp_path / "PWNED"
    bad = tmp_path / "traces.npy"
    np.save(bad, np.array([_Payload(marker), 1.0], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="holds Python objects .* never unpickles"):
        ingest(bad, tmp_path / "s.zarr", fs=FS)
    cfg = config(clean_store, tmp_path, pairs__reference=None, pairs__reference_file=str(bad))
    with pytest.raises(PipelineError, match=r"pairs\.reference_file: .*Python objects"):
        run(cfg)
    assert not marker.exists() and not (tmp_path / "s.zarr").exists()
    assert pickle.loads(pickle.dumps(_Payload(marker))) is None and marker.exists()  # the payload is live


def test_yaml_is_read_with_a_safe_loader(tmp_path, capsys):
    marker = tmp_path / "PWNED"
    bad = tmp_path / "evil.yaml"
    bad.write_text(f"input: !!python/object/apply:os.makedirs ['{marker}']\noutputs: {{path: x.zarr}}\n")
    with pytest.raises(PipelineError, match="not valid YAML"):
        load_pipeline(bad)
    code = main(["run", str(bad), "--check"])
    assert code == 2 and "not valid YAML" in capsys.readouterr().err
    assert not marker.exists()
    import yaml

    yaml.unsafe_load(bad.read_text())  # the payload is live: an unsafe loader would run it
    assert marker.exists()


def test_hdf5_and_nwb_are_read_without_executing_anything(tmp_path):
    h5py = pytest.importorskip("h5py")
    pytest.importorskip("pynwb")
    from test_ingest import make_nwb

    marker = tmp_path / "PWNED"
    payload = np.void(pickle.dumps(_Payload(marker)))
    x, _ = traces()
    h5 = tmp_path / "traces.h5"
    with h5py.File(h5, "w") as f:
        f["traces"] = x
        f["traces"].attrs["pickled"] = payload
        f["blob"] = payload
        f.attrs["yaml"] = f"!!python/object/apply:os.makedirs ['{marker}']"
    out = ingest(h5, tmp_path / "h5.zarr", fs=FS, dataset="traces")
    np.testing.assert_array_equal(open_signals_store(out).signals.values, x)

    nwb = tmp_path / "rec.nwb"
    make_nwb(nwb, x.T.copy())
    with h5py.File(nwb, "a") as f:
        f["acquisition"].attrs["pickled"] = payload
        f["acquisition"].attrs["yaml"] = f"!!python/object/apply:os.makedirs ['{marker}']"
    out = ingest(nwb, tmp_path / "nwb.zarr", cells_only=False)
    assert open_signals_store(out).signals.shape == x.shape
    # a file hdmf cannot make sense of is a clear error, not a crash deep inside it
    with h5py.File(nwb, "a") as f:
        f.create_dataset("general/pickled_blob", data=payload)
    with pytest.raises(ValueError, match=r"rec\.nwb could not be read as an NWB file"):
        ingest(nwb, tmp_path / "nwb2.zarr", cells_only=False)
    assert not marker.exists() and not (tmp_path / "nwb2.zarr").exists()


def test_pipeline_paths_stay_where_the_user_named(tmp_path, monkeypatch, clean_store):
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    monkeypatch.chdir(sandbox)
    monkeypatch.setenv("HOME", str(sandbox / "home"))
    before = tree_digest(sandbox)
    cfg = config(clean_store, sandbox, outputs__path="res/out.zarr", outputs__summary="res/summary.json",
                 significance__enabled=True, significance__cache="cache")
    run(cfg)
    created = {p.split("/")[0] for p in set(tree_digest(sandbox)) - set(before)}
    assert created == {"res", "cache"}  # only the named paths (relative to the working directory)
    assert {p.name for p in (sandbox / "res").iterdir()} == {"out.zarr", "summary.json"}

    # an output inside the input store would modify it: refused before anything runs
    digest = tree_digest(clean_store)
    for key in ("outputs__path", "outputs__summary", "outputs__figures", "significance__cache"):
        cfg = config(clean_store, sandbox, **{key: str(clean_store / "inside")})
        with pytest.raises(PipelineError, match=rf"{key.replace('__', '.')}: .* inside the input store"):
            run(cfg)
    assert tree_digest(clean_store) == digest
    # a summary never replaces a file that is not a bioxen-dask summary
    precious = sandbox / "notes.txt"
    precious.write_text("keep me")
    cfg = config(clean_store, sandbox, outputs__path="res2.zarr", outputs__summary=str(precious))
    with pytest.raises(PipelineError, match=r"outputs\.summary: .*notes\.txt exists and is not a bioxen-dask summary"):
        run(cfg)
    assert precious.read_text() == "keep me" and not (sandbox / "res2.zarr").exists()
    # and an existing folder that is not a result is never overwritten
    folder = sandbox / "mine"
    folder.mkdir()
    (folder / "data.txt").write_text("mine")
    cfg = config(clean_store, sandbox, outputs__path=str(folder), outputs__overwrite=True)
    with pytest.raises(FileExistsError, match="is not a bioxen-dask result"):
        run(cfg)
    assert (folder / "data.txt").read_text() == "mine"


# ----------------------------------------------------------------------------- loopback only


def _listening(pids: set[int]) -> list[tuple[str, int]]:
    import psutil

    out = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            for c in psutil.Process(pid).net_connections(kind="inet"):
                if c.status == psutil.CONN_LISTEN:
                    out.append((c.laddr.ip, c.laddr.port))
    return out


@pytest.mark.slow  # starts a cluster
def test_cli_cluster_listens_on_loopback_only():
    import os

    import psutil

    pipeline = load_pipeline(SMALL)  # the cluster section the CLI uses
    config = pipeline.cluster_config()
    assert config.kind == "local" and config.dashboard_address.startswith("127.0.0.1")
    me = psutil.Process(os.getpid())
    before = set(_listening({me.pid}))
    with connect(config) as client:
        link = dashboard_link(client)
        assert link is not None and link.startswith("http://127.0.0.1:")
        assert client.scheduler.address.startswith("tcp://127.0.0.1:")
        workers = client.scheduler_info(n_workers=-1)["workers"]
        assert len(workers) == 2 and all(a.startswith("tcp://127.0.0.1:") for a in workers)
        pids = {me.pid} | {p.pid for p in me.children(recursive=True)}
        sockets = [s for s in _listening(pids) if s not in before]
    assert sockets, "found no listening sockets to check"
    assert all(ip in ("127.0.0.1", "::1") for ip, _ in sockets), sockets
    # the default configuration, with no cluster section at all, is the same
    default = ClusterConfig.from_dask_config({})
    assert default.kind == "local" and default.dashboard_address == "127.0.0.1:0"
    assert json.loads(json.dumps(default.to_dict()))["dashboard_address"] == "127.0.0.1:0"


def test_run_check_reads_the_traces_and_refuses_what_the_run_would(tmp_path, capsys):
    """``run --check`` refuses, before any cluster, the missing samples and constant traces
    the run itself refuses, with the same message; ``--no-scan`` reads metadata only."""
    x, stim = traces(n_rois=6)
    x[3, 100:104] = np.nan
    x[4] = 0.25  # constant
    store = store_from(tmp_path, x, stim, nan_policy="keep")

    def check_cli(cfg, *flags):
        path = tmp_path / "p.yaml"
        path.write_text(json.dumps(cfg))
        code = main(["run", str(path), "--check", "--no-progress", *flags])
        out, err = capsys.readouterr()
        return code, (json.loads(out) if code == 0 else None), err

    cfg = config(store, tmp_path)
    code, _, err = check_cli(cfg)
    assert code == 2
    assert "input.store: the signals of" in err and "roi 3 (position 3) at frame 100 (t = 3.33333 s)" in err
    with pytest.raises(ValueError, match=r"roi 3 \(position 3\) at frame 100"):
        run(cfg)  # the run refuses the same trace
    code, report, _ = check_cli(cfg, "--no-scan")
    assert code == 0 and report["data"].startswith("not read")

    cfg = config(store, tmp_path, preprocessing__nan_policy="interpolate", preprocessing__max_gap=1.0)
    code, _, err = check_cli(cfg)
    assert code == 2 and "1 traces are constant" in err and "rois 4 (positions [4])" in err

    cfg["input"]["rois"] = [0, 1, 2, 3, 5]
    code, report, err = check_cli(cfg)
    assert code == 0, err
    assert (report["n_rois"], report["n_rois_selected"], report["n_pairs"]) == (6, 5, 5)
    assert (report["rois_scanned"], report["missing_samples"], report["rois_with_gaps"]) == (5, 4, 1)
    cfg["preprocessing"]["max_gap"] = 0.1  # 3 samples: shorter than the gap
    code, _, err = check_cli(cfg)
    assert code == 2 and "roi 3 (position 3) has a gap of 4 missing samples, longer than max_gap=3" in err

    cfg = config(store, tmp_path, pairs__mode="all", pairs__reference=None, input__rois=[0, 1, 2, 5])
    code, report, err = check_cli(cfg)
    assert code == 0, err
    assert report["n_pairs"] == 6 and report["missing_samples"] == 0
    cfg = config(store, tmp_path, pairs__mode="list", pairs__reference=None, pairs__list=[[0, 1], [1, 4]])
    code, _, err = check_cli(cfg)
    assert code == 2 and "rois 4 (positions [4])" in err  # only the listed rois are read

    bad_ref = stim.copy()
    bad_ref[7] = np.nan
    np.save(tmp_path / "ref.npy", bad_ref)
    cfg = config(store, tmp_path, pairs__reference=None, pairs__reference_file=str(tmp_path / "ref.npy"),
                 input__rois=[0, 1, 2])
    code, _, err = check_cli(cfg)
    message = "the reference has non-finite samples (NaN/inf): 1 of them, the first at frame 7"
    assert code == 2 and "pairs.reference_file: " + message in err
    with pytest.raises(ValueError, match=re.escape(message)):
        run(cfg)  # the run refuses it with the same words
