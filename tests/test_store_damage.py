"""Damaged signals stores and sources: found when opened (not mid-compute), named with the fix.

Each case copies a healthy store and breaks one part of it, as a QA pass did: garbage
metadata, a deleted array folder, a missing or empty chunk file, a shape edited out of
step with the consolidated metadata. Also the ingest diagnostics for broken sources.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from bioxen_dask.cli import main
from bioxen_dask.io import (
    CorruptStoreError,
    SignalsWriter,
    fingerprint,
    ingest,
    open_signals_store,
    store_info,
    verify_store,
    write_signals,
)

FS = 30.0


def _tree_digest(path: Path) -> dict[str, str]:
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {str(f): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


@pytest.fixture(scope="module")
def healthy(tmp_path_factory) -> Path:
    """A complete store, 40 rois x 600 frames in 3 x 2 signal chunks, with a reference and a per-roi variable."""
    x = np.random.default_rng(3).standard_normal((40, 600)).astype(np.float32)
    out = tmp_path_factory.mktemp("healthy") / "s.zarr"
    with SignalsWriter(out, x.shape, FS, references={"stimulus": np.sin(np.arange(600) / 9.0)},
                       chunks=(16, 300), roi_variables={"truth": np.arange(40) % 3}) as writer:
        writer.fill(lambda rows, times: x[rows, times])
    return out


def _garbage(path: Path) -> None:
    path.write_text("not json {")


def _delete(path: Path) -> None:
    shutil.rmtree(path) if path.is_dir() else path.unlink()


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _edit_shape(path: Path) -> None:
    doc = json.loads(path.read_text())
    doc["shape"] = [40, 599]
    path.write_text(json.dumps(doc))


# (what to break, how, the message it must give)
DAMAGE = {
    "signals metadata garbage": ("signals/zarr.json", _garbage, r"signals/zarr\.json is not valid JSON"),
    "root metadata garbage": ("zarr.json", _garbage, r"s\.zarr/zarr\.json is not valid JSON"),
    "reference names metadata garbage": ("reference/zarr.json", _garbage, r"reference/zarr\.json is not valid JSON"),
    "coordinate metadata deleted": ("time/zarr.json", _delete, r"time/zarr\.json does not exist"),
    "references folder deleted": ("references", _delete,
                                  r"array 'references' is missing \(.*/references does not exist\)"),
    "signals chunk deleted": ("signals/c/1/0", _delete,
                              r"variable 'signals': 1 of 6 chunk files .* chunk c/1/0 is missing"),
    "signals chunk emptied": ("signals/c/2/1", _empty, r"variable 'signals': .*chunk c/2/1 is an empty file"),
    "references chunk deleted": ("references/c/0/1", _delete, r"variable 'references': .*chunk c/0/1 is missing"),
    "roi chunk deleted": ("roi/c/0", _delete, r"variable 'roi': .*chunk c/0 is missing"),
    "shape edited": ("signals/zarr.json", _edit_shape,
                     r"signals/zarr\.json disagrees with the store's consolidated metadata .*shape"),
}


@pytest.fixture(params=sorted(DAMAGE))
def damaged(request, healthy, tmp_path) -> tuple[Path, str]:
    part, breaker, match = DAMAGE[request.param]
    store = tmp_path / "s.zarr"
    shutil.copytree(healthy, store)
    breaker(store / part)
    return store, match


def test_healthy_store_verifies_and_verifying_reads_nothing_into_it(healthy):
    before = _tree_digest(healthy)
    verify_store(healthy)
    info = store_info(healthy)
    assert info["complete"] and info["references"] == ["stimulus"] and info["n_chunks"] == 6
    assert sorted(open_signals_store(healthy).data_vars) == ["references", "signals", "truth"]
    assert _tree_digest(healthy) == before


def test_damage_is_found_on_open_naming_the_file_and_the_fix(damaged):
    store, match = damaged
    before = _tree_digest(store)
    for opener in (open_signals_store, store_info, fingerprint):
        with pytest.raises(CorruptStoreError, match=match) as err:
            opener(store)
        assert "damaged" in str(err.value) and "--overwrite" in str(err.value)
    assert _tree_digest(store) == before  # the damaged store is left as it was


def test_info_command_never_says_complete_for_a_damaged_store(damaged, capsys):
    store, match = damaged
    assert main(["info", str(store)]) == 2
    captured = capsys.readouterr()
    assert '"complete": true' not in captured.out
    assert "damaged" in captured.err and "ingest --overwrite" in captured.err


def test_chunks_zarr_skips_as_fill_values_are_not_damage(tmp_path):
    # zarr writes no chunk equal to the fill value: a lone roi id 0, a one-frame time chunk at t = 0,
    # an all-zero per-roi variable. Such stores are healthy.
    one = write_signals(tmp_path / "one.zarr", np.ones((1, 4)), FS, chunks=(1, 1))
    assert not (one / "roi" / "c" / "0").exists() and not (one / "time" / "c" / "0").exists()
    assert store_info(one)["complete"]
    assert open_signals_store(one)["signals"].shape == (1, 4)


def test_incomplete_store_is_still_described_without_chunk_checks(tmp_path):
    writer = SignalsWriter(tmp_path / "part.zarr", (20, 100), FS, chunks=(10, 100))
    writer.write(slice(0, 10), slice(0, 100), np.ones((10, 100)))  # interrupted: half the chunks
    info = store_info(writer.path)
    assert info["complete"] is False and info["shape"] == (20, 100)
    _garbage(writer.path / "signals" / "zarr.json")  # but broken metadata is still named
    with pytest.raises(CorruptStoreError, match=r"part\.zarr/signals/zarr\.json is not valid JSON"):
        store_info(writer.path)


# ----------------------------------------------------------------------------- ingest diagnostics


@pytest.fixture
def traces() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((20, 3000)).astype(np.float32)


def _ingest_fails(source: Path, out: Path, match: str, **kwargs) -> None:
    before = _tree_digest(source)
    with pytest.raises(ValueError, match=match):
        ingest(source, out, fs=FS, **kwargs)
    assert not out.exists()
    assert _tree_digest(source) == before  # the source is never modified


def test_truncated_npy_is_called_truncated_not_a_pickle(tmp_path, traces):
    np.save(tmp_path / "ok.npy", traces)
    data = (tmp_path / "ok.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(data[: len(data) // 2])
    _ingest_fails(tmp_path / "cut.npy", tmp_path / "o.zarr",
                  r"cut\.npy is truncated, not a valid \.npy file: .* shape \(20, 3000\) float32")
    (tmp_path / "head.npy").write_bytes(data[:20])
    _ingest_fails(tmp_path / "head.npy", tmp_path / "o.zarr", r"head\.npy is truncated or not a valid \.npy file")
    (tmp_path / "empty.npy").write_bytes(b"")
    _ingest_fails(tmp_path / "empty.npy", tmp_path / "o.zarr", r"empty\.npy is not a valid \.npy file .*empty")


def test_pickles_are_still_called_pickles(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"fs": 30}], dtype=object), allow_pickle=True)
    _ingest_fails(tmp_path / "obj.npy", tmp_path / "o.zarr", r"obj\.npy holds Python objects .*never unpickles")
    (tmp_path / "raw.npy").write_bytes(pickle.dumps({"fs": 30}))
    _ingest_fails(tmp_path / "raw.npy", tmp_path / "o.zarr", r"raw\.npy is a Python pickle.*never unpickles")


@pytest.mark.parametrize("fmt", ["auto", "hdf5", "caiman"])
def test_junk_hdf5_names_the_file_and_what_was_expected(tmp_path, fmt):
    pytest.importorskip("h5py")
    (tmp_path / "junk.h5").write_bytes(b"not an hdf5 file " * 64)
    _ingest_fails(tmp_path / "junk.h5", tmp_path / "o.zarr",
                  r"junk\.h5 could not be opened as an HDF5 file \(.*file signature not found.*expected an HDF5",
                  format=fmt)


def test_more_rows_than_columns_is_refused_naming_the_layout(tmp_path, traces):
    np.save(tmp_path / "tall.npy", traces.T)  # (3000, 20): time x roi
    with pytest.raises(ValueError, match=r"tall\.npy has 3000 rows and 20 columns.*layout='time,roi'"):
        ingest(tmp_path / "tall.npy", tmp_path / "tall.zarr", fs=FS)
    assert not (tmp_path / "tall.zarr").exists()
    np.save(tmp_path / "wide.npy", traces)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # roi x time: no warning
        ingest(tmp_path / "wide.npy", tmp_path / "wide.zarr", fs=FS)
