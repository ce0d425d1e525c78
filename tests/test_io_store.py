"""The signals store: round-trips, streaming, chunk alignment, completeness, validation."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import xarray as xr
import zarr

from bioxen_dask.io import (
    IncompleteStoreError,
    SignalsWriter,
    StoreExistsError,
    fingerprint,
    open_signals,
    open_signals_store,
    store_info,
    write_signals,
)
from bioxen_dask.io._store import default_chunks


def _tree_digest(path: Path) -> dict[str, str]:
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {str(f): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


@pytest.fixture
def traces() -> np.ndarray:
    return np.random.default_rng(42).standard_normal((37, 1000)).astype(np.float32)


class FailingArray:
    """Array-like that raises on its ``fail_at``-th read, like a source dying mid-write."""

    def __init__(self, data: np.ndarray, fail_at: int) -> None:
        self.data, self.shape, self.dtype, self.ndim = data, data.shape, data.dtype, data.ndim
        self.reads, self.fail_at = 0, fail_at

    def __getitem__(self, key):
        self.reads += 1
        if self.reads == self.fail_at:
            raise OSError("simulated read failure")
        return self.data[key]


# ----------------------------------------------------------------------------- round-trips


def test_roundtrip_values_coords_attrs(tmp_path, traces):
    stim = np.sin(np.arange(1000) / 7.0)
    ids = [f"cell{i:02d}" for i in range(37)]
    out = write_signals(
        tmp_path / "s.zarr", traces, 30.0, roi=ids, references={"stimulus": stim, "speed": stim ** 2},
        units="dF/F", source="/data/x", source_format="array", preprocessing="unit test",
        attrs={"animal": "m1", "depth_um": np.float64(150.0)},
    )
    sig = open_signals(out)
    assert sig.name == "signals" and sig.dims == ("roi", "time") and sig.dtype == np.float32
    np.testing.assert_array_equal(sig.values, traces)
    assert sig["roi"].values.tolist() == ids
    np.testing.assert_allclose(sig["time"].values, np.arange(1000) / 30.0, rtol=0, atol=1e-12)
    assert sig.attrs["fs"] == 30.0 and sig.attrs["units"] == "dF/F" and sig.attrs["source"] == "/data/x"
    assert sig.attrs["preprocessing"] == ["unit test"] and sig.attrs["depth_um"] == 150.0
    ds = open_signals_store(out)
    assert ds["reference"].values.tolist() == ["stimulus", "speed"]
    np.testing.assert_array_equal(ds["references"].sel(reference="speed").values, (stim ** 2).astype(np.float32))
    # plain xarray reads it too, without warnings
    plain = xr.open_zarr(out)
    np.testing.assert_array_equal(plain["signals"].values, traces)


def test_open_is_lazy_dask_and_read_only(tmp_path, traces):
    out = write_signals(tmp_path / "s.zarr", traces, 10.0, chunks=(8, 250))
    before = _tree_digest(out)
    sig = open_signals(out)
    assert sig.chunks == ((8, 8, 8, 8, 5), (250, 250, 250, 250))
    assert isinstance(sig.data, da.Array)
    float(sig.sum().compute())
    store_info(out), fingerprint(out), open_signals_store(out).load()
    assert _tree_digest(out) == before


def test_default_chunking_documented_values():
    assert default_chunks(10_000, 18_000) == (112, 18_000)  # ~8 MiB, whole rows
    assert default_chunks(10_000, 10**9) == (32, 2**16)  # long recordings: 64k-frame chunks
    assert default_chunks(5, 300) == (5, 300)
    assert default_chunks(10_000, 300) == (256, 300)


# ----------------------------------------------------------------------------- streaming and alignment


def test_numpy_memmap_dask_and_dataarray_give_identical_stores(tmp_path, traces):
    np.save(tmp_path / "x.npy", traces)
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    sources = {
        "numpy": traces,
        "memmap": mm,
        "dask": da.from_array(traces, chunks=(7, 333)),  # deliberately misaligned with the store
        "dataarray": xr.DataArray(traces.T, dims=("time", "roi")),
    }
    prints = set()
    for name, src in sources.items():
        out = write_signals(tmp_path / f"{name}.zarr", src, 20.0, chunks=(16, 300))
        np.testing.assert_array_equal(open_signals(out).values, traces)
        prints.add(fingerprint(out, deep=True))
    assert len(prints) == 1  # byte-identical stores, whatever the input type


@pytest.mark.parametrize("kind", ["memmap", "dask"])
def test_every_chunk_written_exactly_once(tmp_path, traces, monkeypatch, kind):
    chunks = (16, 300)
    writes: list[tuple] = []
    lock = threading.Lock()
    original = zarr.Array.__setitem__

    def spy(self, selection, value):
        if self.path == "signals":
            with lock:
                writes.append(selection)
        return original(self, selection, value)

    monkeypatch.setattr(zarr.Array, "__setitem__", spy)
    src = da.from_array(traces, chunks=(5, 170)) if kind == "dask" else traces
    write_signals(tmp_path / "s.zarr", src, 20.0, chunks=chunks)

    counts = np.zeros((3, 4), dtype=int)  # 37 rois / 16, 1000 frames / 300
    for sel in writes:
        rows, times = sel
        for sl, c, n in zip((rows, times), chunks, traces.shape):
            start, stop, _ = sl.indices(n)
            assert start % c == 0 and (stop % c == 0 or stop == n), f"unaligned write {sel}"
        r, t = rows.indices(37), times.indices(1000)
        counts[r[0] // 16: -(-r[1] // 16), t[0] // 300: -(-t[1] // 300)] += 1
    assert (counts == 1).all()


def test_fill_reads_in_bounded_blocks(tmp_path, traces):
    shapes = []

    def read(rows, times):
        shapes.append(traces[rows, times].shape)
        return traces[rows, times]

    budget = 8 * 1000 * 4  # eight float32 rows of 1,000 frames
    with SignalsWriter(tmp_path / "s.zarr", traces.shape, 20.0, chunks=(4, 1000)) as w:
        w.fill(read, budget_bytes=budget)
    assert shapes == [(8, 1000)] * 4 + [(5, 1000)]  # two whole roi chunks per read, never more
    np.testing.assert_array_equal(open_signals(w.path).values, traces)


def test_writer_refuses_unaligned_double_and_missing_chunks(tmp_path, traces):
    w = SignalsWriter(tmp_path / "s.zarr", traces.shape, 20.0, chunks=(16, 500))
    with pytest.raises(ValueError, match="whole chunks of 16"):
        w.write(slice(0, 10), slice(0, 500), traces[:10, :500])
    with pytest.raises(ValueError, match="whole chunks of 500"):
        w.write(slice(0, 16), slice(100, 500), traces[:16, 100:500])
    w.write(slice(0, 16), slice(0, 1000), traces[:16])
    with pytest.raises(RuntimeError, match="already written"):
        w.write(slice(0, 16), slice(500, 1000), traces[:16, 500:])
    with pytest.raises(RuntimeError, match="4 of 6 chunks .* never written"):
        w.close()
    assert store_info(w.path)["complete"] is False


# ----------------------------------------------------------------------------- interrupted writes


def test_interrupted_write_is_never_complete(tmp_path, traces):
    out = tmp_path / "s.zarr"
    with pytest.raises(OSError, match="simulated"):
        write_signals(out, FailingArray(traces, fail_at=3), 20.0, chunks=(16, 250))
    assert out.exists() and store_info(out)["complete"] is False
    with pytest.raises(IncompleteStoreError, match="interrupted.*--overwrite"):
        open_signals(out)
    with pytest.raises(IncompleteStoreError):
        fingerprint(out)
    # the fix the message names works
    write_signals(out, traces, 20.0, overwrite=True)
    np.testing.assert_array_equal(open_signals(out).values, traces)


def test_interrupted_dask_write_is_never_complete(tmp_path, traces):
    def boom(block, block_info=None):
        if block_info[0]["chunk-location"] == (1, 0):
            raise RuntimeError("worker died")
        return block

    x = da.from_array(traces, chunks=(16, 1000)).map_blocks(boom, dtype=np.float32)
    out = tmp_path / "s.zarr"
    with pytest.raises(RuntimeError, match="worker died"):
        write_signals(out, x, 20.0, chunks=(16, 1000))
    with pytest.raises(IncompleteStoreError, match="interrupted"):
        open_signals(out)


# ----------------------------------------------------------------------------- bad input


def test_existing_output_needs_overwrite(tmp_path, traces):
    out = write_signals(tmp_path / "s.zarr", traces, 20.0)
    with pytest.raises(StoreExistsError, match="overwrite=True"):
        write_signals(out, traces, 20.0)
    with pytest.raises(ValueError, match="already exists"):  # also a ValueError
        write_signals(out, traces, 20.0)
    write_signals(out, traces[:3], 20.0, overwrite=True)
    assert open_signals(out).shape == (3, 1000)
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "data.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not a bioxen-dask signals store"):
        write_signals(precious, traces, 20.0, overwrite=True)
    assert (precious / "data.txt").read_text() == "keep me"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"signals": np.zeros(100)}, "2-D .*signals\\[np.newaxis, :\\]"),
        ({"fs": 0.0}, "fs must be a finite sampling rate > 0"),
        ({"fs": -5}, "fs must be a finite sampling rate > 0"),
        ({"fs": float("nan")}, "fs must be a finite"),
        ({"roi": [1, 2]}, "one id per roi"),
        ({"roi": [1, 1, 2]}, "unique"),
        ({"roi": [0.5, 1.5, 2.5]}, "integers or strings"),
        ({"references": {"stim": np.zeros(99)}}, "reference 'stim' must be 1-D with one value per frame"),
        ({"references": {"stim": np.full(100, np.nan)}}, "reference 'stim' is not finite at frame 0"),
        ({"attrs": {"fs": 3}}, "reserved keys \\['fs'\\]"),
        ({"signals": np.zeros((3, 100), complex)}, "real numbers"),
        ({"chunks": (0, 10)}, "chunk size along 'roi' must be >= 1"),
    ],
)
def test_write_rejects_bad_input(tmp_path, kwargs, match):
    args = {"signals": np.zeros((3, 100), np.float32), "fs": 10.0, **kwargs}
    with pytest.raises(ValueError, match=match):
        write_signals(tmp_path / "s.zarr", **args)
    assert not (tmp_path / "s.zarr").exists()  # validated before touching the disk


def test_write_names_nan_location(tmp_path):
    x = np.zeros((3, 100), np.float32)
    x[1, 7] = np.nan
    with pytest.raises(ValueError, match=r"NaN at roi 11 \(row 1\), frame 7 \(t = 0.7 s\)"):
        write_signals(tmp_path / "s.zarr", x, 10.0, roi=[10, 11, 12])
    with pytest.raises(ValueError, match=r"infinite values at roi 0 \(row 0\), frame 3"):
        write_signals(tmp_path / "d.zarr", da.from_array(np.where(np.arange(100) == 3, np.inf, x)), 10.0)


def test_open_rejects_what_is_not_a_complete_store(tmp_path, traces):
    with pytest.raises(FileNotFoundError, match="no signals store"):
        open_signals(tmp_path / "missing.zarr")
    (tmp_path / "plain").mkdir()
    with pytest.raises(ValueError, match="not a Zarr v3 group"):
        open_signals(tmp_path / "plain")
    zarr.open_group(str(tmp_path / "other.zarr"), mode="w").create_array("x", shape=(2,), dtype="f4")
    with pytest.raises(ValueError, match="not a bioxen-dask signals store"):
        open_signals(tmp_path / "other.zarr")
    out = write_signals(tmp_path / "s.zarr", traces, 20.0)
    root = json.loads((out / "zarr.json").read_text())
    root["attributes"]["fs"] = 0
    (out / "zarr.json").write_text(json.dumps(root))
    with pytest.raises(ValueError, match="attribute 'fs'.*> 0"):
        open_signals(out)
    root["attributes"]["bioxen_dask_store_version"] = 99
    (out / "zarr.json").write_text(json.dumps(root))
    with pytest.raises(ValueError, match="newer than this bioxen-dask"):
        open_signals(out)


# ----------------------------------------------------------------------------- info and fingerprint


def test_store_info(tmp_path, traces):
    out = write_signals(tmp_path / "s.zarr", traces, 25.0, references={"stimulus": np.zeros(1000)},
                        preprocessing=["a", "b"], chunks=(16, 1000))
    info = store_info(out)
    assert info["shape"] == (37, 1000) and info["n_rois"] == 37 and info["n_frames"] == 1000
    assert info["fs"] == 25.0 and info["duration_s"] == 40.0 and info["t0"] == 0.0
    assert info["chunks"] == {"roi": 16, "time": 1000} and info["n_chunks"] == 3
    assert info["references"] == ["stimulus"] and info["preprocessing"] == ["a", "b"]
    assert info["complete"] is True and info["dtype"] == "float32" and info["store_version"] == 1
    assert 0 < info["size_bytes"] == sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    json.dumps(info)  # printable by `bioxen-dask info`


def test_fingerprint_stable_and_sensitive(tmp_path, traces):
    a = write_signals(tmp_path / "a.zarr", traces, 20.0)
    b = write_signals(tmp_path / "b.zarr", traces, 20.0)
    assert fingerprint(a) == fingerprint(b) == fingerprint(a)  # location-independent, repeatable
    changed = traces.copy()
    changed[5, 500] += 1.0
    c = write_signals(tmp_path / "c.zarr", changed, 20.0)
    assert fingerprint(c, deep=True) != fingerprint(a, deep=True)
    d = write_signals(tmp_path / "d.zarr", traces, 20.0, units="F")
    assert fingerprint(d) != fingerprint(a)
    e = write_signals(tmp_path / "e.zarr", traces, 20.0, chunks=(8, 1000))
    assert fingerprint(e) != fingerprint(a)
