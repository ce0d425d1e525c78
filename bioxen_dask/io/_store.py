"""The signals store: one Zarr v3 group per recording, written once, read lazily.

Layout (readable by ``xr.open_zarr``)::

    <store>/                       group attrs: fs, units, source, source_format,
                                   preprocessing, bioxen_dask_store="signals",
                                   bioxen_dask_store_version, complete, ...
        signals     (roi, time)    float32, chunks (roi_chunk, time_chunk), NaN fill
        roi         (roi,)         int64 or str: the source's own roi ids
        time        (time,)        float64 seconds, t0 + arange(n_frames) / fs
        references  (reference, time)  float32, optional (stimulus, behaviour, ...)
        reference   (reference,)   str names of the references
        <name>      (roi,)         optional per-roi variables (e.g. synthetic ground truth)

Writes stream through :class:`SignalsWriter`: every write covers whole chunks and no
chunk is written twice (two writers into one Zarr chunk silently lose data). The
``complete`` attribute is set to ``True`` last, after the metadata is consolidated,
so an interrupted write never looks complete.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import xarray as xr
import zarr

from .._stores import consolidate, jsonable
from .._version import __version__
from ._blocks import BlockReader, array_reader, first_nonfinite

__all__ = [
    "CorruptStoreError",
    "IncompleteStoreError",
    "SignalsWriter",
    "StoreExistsError",
    "fingerprint",
    "open_signals",
    "open_signals_store",
    "store_info",
    "verify_store",
    "write_signals",
]

STORE_VERSION = 1
#: Group attribute naming the kind of bioxen-dask store.
KIND_ATTR = "bioxen_dask_store"
VERSION_ATTR = "bioxen_dask_store_version"
COMPLETE_ATTR = "complete"
#: Group attribute: how many signal samples are missing (NaN), set when the write completes.
MISSING_ATTR = "missing_samples"

#: Default chunking: whole recordings up to this many frames form one time chunk.
MAX_TIME_CHUNK = 2**16
#: Default chunking: roi chunks hold about this many bytes ...
TARGET_CHUNK_BYTES = 8 * 2**20
#: ... with a roi chunk between these bounds (a multiple of 16 rows).
ROI_CHUNK_MIN, ROI_CHUNK_MAX = 16, 256
#: Streaming writes read at most about this much source data at a time.
READ_BUDGET_BYTES = 64 * 2**20

_DIMS = ("roi", "time")
_CORE_VARIABLES = frozenset({"signals", "roi", "time", "references", "reference"})
_RESERVED_ATTRS = frozenset(
    {KIND_ATTR, VERSION_ATTR, COMPLETE_ATTR, MISSING_ATTR, "fs", "units", "source", "source_format",
     "preprocessing", "created_by"}
)
_NAN_HINT_WRITE = "clean the array first (e.g. interpolate the bad frames) and write again"


class StoreExistsError(FileExistsError, ValueError):
    """The output path exists and ``overwrite`` was not set."""


class IncompleteStoreError(ValueError):
    """The store's write never finished (no ``complete`` marker)."""


class CorruptStoreError(ValueError):
    """A store is damaged: a ``zarr.json`` that does not parse, a missing array or chunk file,
    shapes that disagree (found when the store is opened), or a chunk that cannot be read
    (truncated or overwritten; found when it is computed)."""


# ----------------------------------------------------------------------------- validation


def validate_fs(fs: Any, what: str = "fs") -> float:
    """Return ``fs`` as a float, or raise if it is not a finite positive rate."""
    try:
        value = float(fs)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number in Hz, got {fs!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{what} must be a finite sampling rate > 0 Hz, got {fs!r}")
    return value


def _validate_shape(shape: Sequence[int]) -> tuple[int, int]:
    if len(shape) != 2:
        hint = " For a single trace use signals[np.newaxis, :]." if len(shape) == 1 else ""
        raise ValueError(
            f"signals must be 2-D (roi × time); got shape {tuple(shape)}.{hint}"
        )
    n_rois, n_frames = (int(s) for s in shape)
    if n_rois < 1 or n_frames < 2:
        raise ValueError(
            f"signals need at least 1 roi and 2 frames; got shape (roi={n_rois}, time={n_frames})"
        )
    return n_rois, n_frames


def _roi_ids(roi: Any, n_rois: int) -> np.ndarray:
    if roi is None:
        return np.arange(n_rois, dtype=np.int64)
    ids = np.asarray(roi)
    if ids.shape != (n_rois,):
        raise ValueError(f"roi must hold one id per roi: expected shape ({n_rois},), got {ids.shape}")
    if ids.dtype.kind in "iu":
        ids = ids.astype(np.int64)
    elif ids.dtype.kind in "UTO" and all(isinstance(v, str) for v in ids.tolist()):
        ids = np.asarray(ids.tolist(), dtype=str)
    else:
        raise ValueError(f"roi ids must be integers or strings, got dtype {ids.dtype}")
    values, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise ValueError(f"roi ids must be unique; {values[counts > 1][:5].tolist()} repeat")
    return ids


def _as_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "compute"):
        x = x.compute()
    return np.asarray(x)


def _references(references: Any, n_frames: int) -> list[tuple[str, Any]]:
    if references is None:
        return []
    if isinstance(references, xr.DataArray):
        if references.dims != ("reference", "time"):
            raise ValueError(f"references DataArray must have dims ('reference', 'time'), got {references.dims}")
        names = references["reference"].values if "reference" in references.coords else range(references.shape[0])
        items = [(str(n), references.data[i]) for i, n in enumerate(names)]
    elif isinstance(references, Mapping):
        items = [(str(k), v) for k, v in references.items()]
    else:
        raise TypeError("references must be a mapping {name: 1-D trace} or a ('reference', 'time') DataArray")
    names = [n for n, _ in items]
    if len(set(names)) != len(names) or not all(names):
        raise ValueError(f"reference names must be unique and non-empty, got {names}")
    for name, trace in items:
        if getattr(trace, "shape", None) is None:
            raise TypeError(f"reference {name!r} must be an array, got {type(trace).__name__}")
        if tuple(trace.shape) != (n_frames,):
            raise ValueError(
                f"reference {name!r} must be 1-D with one value per frame ({n_frames}), "
                f"got shape {tuple(trace.shape)}"
            )
    return items


def _roi_variables(variables: Mapping[str, Any] | None, n_rois: int) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name, values in (variables or {}).items():
        if name in _CORE_VARIABLES:
            raise ValueError(f"per-roi variable name {name!r} is reserved; choose another")
        arr = np.asarray(values)
        if arr.shape != (n_rois,):
            raise ValueError(f"per-roi variable {name!r} must have shape ({n_rois},), got {arr.shape}")
        out[name] = arr
    return out


def store_attrs(
    *,
    fs: float,
    units: str,
    source: str | os.PathLike[str] | None,
    source_format: str,
    preprocessing: str | Sequence[str],
    attrs: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The user-facing attributes of a signals store (also used for in-memory datasets)."""
    steps = [preprocessing] if isinstance(preprocessing, str) else list(preprocessing)
    if not all(isinstance(s, str) for s in steps):
        raise TypeError("preprocessing must be a string or a sequence of strings")
    clash = _RESERVED_ATTRS.intersection(attrs or {})
    if clash:
        raise ValueError(f"attrs may not set reserved keys {sorted(clash)}; pass them as arguments")
    return {
        "fs": validate_fs(fs),
        "units": str(units),
        "source": "" if source is None else str(source),
        "source_format": str(source_format),
        "preprocessing": steps,
        "created_by": f"bioxen-dask {__version__}",
        **jsonable(dict(attrs or {})),
    }


# ----------------------------------------------------------------------------- chunking


def default_chunks(n_rois: int, n_frames: int) -> tuple[int, int]:
    """Default ``(roi_chunk, time_chunk)`` for a ``(n_rois, n_frames)`` float32 store.

    Whole recordings of up to ``2**16`` frames are one time chunk (the wavelet
    transform wants whole rows); longer ones are cut into ``2**16``-frame chunks.
    The roi chunk keeps a chunk near 8 MiB: a multiple of 16 rows between 16 and 256
    (18,000 frames -> 112 rois per chunk), never more than ``n_rois``.
    """
    time_chunk = min(n_frames, MAX_TIME_CHUNK)
    rows = TARGET_CHUNK_BYTES // (4 * time_chunk)
    rows = min(ROI_CHUNK_MAX, max(ROI_CHUNK_MIN, rows // 16 * 16))
    return min(rows, n_rois), time_chunk


def normalize_chunks(chunks: Any, shape: tuple[int, int]) -> tuple[int, int]:
    """``chunks`` as ``(roi_chunk, time_chunk)``: None (default), a pair or ``{"roi", "time"}``; -1 = whole axis."""
    if chunks is None:
        return default_chunks(*shape)
    if isinstance(chunks, Mapping):
        unknown = set(chunks) - set(_DIMS)
        if unknown:
            raise ValueError(f"chunks keys must be 'roi' and/or 'time', got {sorted(unknown)}")
        default = default_chunks(*shape)
        pair = [chunks.get(dim, default[i]) for i, dim in enumerate(_DIMS)]
    else:
        pair = list(chunks)
        if len(pair) != 2:
            raise ValueError(f"chunks must be (roi_chunk, time_chunk), got {chunks!r}")
    out = []
    for size, n, dim in zip(pair, shape, _DIMS):
        size = n if size == -1 else int(size)
        if size < 1:
            raise ValueError(f"chunk size along {dim!r} must be >= 1 (or -1 for the whole axis), got {size}")
        out.append(min(size, n))
    return out[0], out[1]


# ----------------------------------------------------------------------------- writing


def is_signals_store(path: Path) -> bool:
    meta = path / "zarr.json"
    if not meta.is_file():
        return False
    try:
        attrs = json.loads(meta.read_text()).get("attributes", {})
    except (OSError, ValueError):
        return False
    return attrs.get(KIND_ATTR) == "signals"


def check_store_output(path: str | os.PathLike[str], overwrite: bool) -> Path:
    """Raise unless ``path`` is free, or is a signals store (or empty folder) and ``overwrite``."""
    out = Path(path)
    if out.exists() or out.is_symlink():
        if not overwrite:
            raise StoreExistsError(
                f"output {out} already exists; pass overwrite=True (--overwrite) to replace it, "
                "or choose another path"
            )
        if not (out.is_dir() and (is_signals_store(out) or not any(out.iterdir()))):
            raise ValueError(
                f"refusing to overwrite {out}: it is not a bioxen-dask signals store; "
                "remove it yourself or choose another output path"
            )
    return out


def _prepare_output(path: str | os.PathLike[str], overwrite: bool) -> Path:
    out = check_store_output(path, overwrite)
    if out.exists():
        shutil.rmtree(out)
    return out


def nonfinite_error(block: np.ndarray, roi: np.ndarray, r0: int, t0: int, fs: float,
                     time0: float, hint: str) -> ValueError | None:
    found = first_nonfinite(block)
    if found is None:
        return None
    row, col, count = found
    value = block[row, col]
    kind = "NaN" if np.isnan(value) else "infinite values"
    frame = t0 + col
    return ValueError(
        f"signals contain {kind} at roi {roi[r0 + row].item()!r} (row {r0 + row}), frame {frame} "
        f"(t = {time0 + frame / fs:.6g} s); {count} non-finite values in rows "
        f"{r0}-{r0 + block.shape[0] - 1}, frames {t0}-{t0 + block.shape[1] - 1}. Fix: {hint}"
    )


class SignalsWriter:
    """Create a signals store and fill it block by block, chunk-aligned.

    Coordinates, references and per-roi variables are written on creation; the
    signals are written by :meth:`fill` (from a block reader), :meth:`store_dask`
    (from a dask array, one task per output chunk) or :meth:`write` (one aligned
    block at a time). :meth:`close` -- called on leaving a ``with`` block without an
    error -- checks that every chunk was written, consolidates the metadata and only
    then marks the store complete.

    Parameters
    ----------
    path
        Output directory (a Zarr v3 group).
    shape
        ``(n_rois, n_frames)``.
    fs
        Sampling rate in Hz (> 0).
    roi
        Roi ids (unique ints or strings); default ``0 .. n_rois-1``.
    t0
        Time of the first frame in seconds; ``time = t0 + arange(n_frames) / fs``.
    references
        Mapping ``{name: 1-D trace}`` (or a ``('reference', 'time')`` DataArray) of
        reference traces, e.g. the stimulus, each one value per frame.
    units, source, source_format, preprocessing, attrs
        Recorded as group attributes; ``attrs`` must be JSON-serialisable and may not
        override the named ones.
    chunks
        ``(roi_chunk, time_chunk)``, ``{"roi": .., "time": ..}`` or None for
        :func:`default_chunks`.
    overwrite
        Replace an existing store at ``path`` (never a directory that is not one).
    roi_variables
        Extra 1-D per-roi variables stored alongside (e.g. ground truth).

    Examples
    --------
    >>> import numpy as np, tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> x = np.random.default_rng(0).standard_normal((4, 100)).astype("float32")
    >>> with SignalsWriter(f"{tmp.name}/sig.zarr", x.shape, fs=10.0, chunks=(2, 100)) as w:
    ...     for rows, times in w.regions():
    ...         w.write(rows, times, x[rows, times])
    >>> open_signals(w.path).shape
    (4, 100)
    >>> tmp.cleanup()
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        shape: Sequence[int],
        fs: float,
        *,
        roi: Any = None,
        t0: float = 0.0,
        references: Any = None,
        units: str = "dF/F",
        source: str | os.PathLike[str] | None = None,
        source_format: str = "array",
        preprocessing: str | Sequence[str] = (),
        attrs: Mapping[str, Any] | None = None,
        chunks: Any = None,
        overwrite: bool = False,
        roi_variables: Mapping[str, Any] | None = None,
    ) -> None:
        self.shape = _validate_shape(shape)
        n_rois, n_frames = self.shape
        self.fs = validate_fs(fs)
        self.t0 = float(t0)
        self.roi = _roi_ids(roi, n_rois)
        refs = _references(references, n_frames)
        extra = _roi_variables(roi_variables, n_rois)
        group_attrs = {
            KIND_ATTR: "signals",
            VERSION_ATTR: STORE_VERSION,
            COMPLETE_ATTR: False,
            **store_attrs(fs=self.fs, units=units, source=source, source_format=source_format,
                          preprocessing=preprocessing, attrs=attrs),
        }
        self.chunks = normalize_chunks(chunks, self.shape)
        self.path = _prepare_output(path, overwrite)
        try:
            self._signals = self._create(group_attrs, str(units), refs, extra)
        except BaseException:
            shutil.rmtree(self.path, ignore_errors=True)  # a failed constructor leaves nothing behind
            raise
        grid = [math.ceil(n / c) for n, c in zip(self.shape, self.chunks)]
        self._written = np.zeros(grid, dtype=bool)
        self._closed = False
        self.missing_samples = 0

    # -- creation helpers
    def _create(self, group_attrs: dict[str, Any], units: str, refs: list[tuple[str, Any]],
                extra: dict[str, np.ndarray]) -> zarr.Array:
        group = zarr.open_group(str(self.path), mode="w-", zarr_format=3, attributes=group_attrs)
        signals = group.create_array(
            "signals", shape=self.shape, dtype="float32", chunks=self.chunks, fill_value=np.nan,
            dimension_names=_DIMS, attributes={"units": units, "long_name": "roi signals"},
            config={"write_empty_chunks": True},  # every chunk on disk: a missing one is damage
        )
        self._write_1d(group, "roi", self.roi, ("roi",), {"long_name": "roi id in the source"})
        self._write_time(group)
        if refs:
            self._write_references(group, refs)
        for name, values in extra.items():
            self._write_1d(group, name, values, ("roi",), {})
        return signals

    @staticmethod
    def _write_1d(group: zarr.Group, name: str, values: np.ndarray, dims: tuple[str, ...],
                  attributes: dict[str, Any]) -> None:
        dtype: Any = str if values.dtype.kind in "UTO" else values.dtype
        arr = group.create_array(name, shape=values.shape, dtype=dtype, chunks=values.shape,
                                 dimension_names=dims, attributes=attributes)
        arr[...] = values

    def _time_blocks(self) -> Iterator[slice]:
        step = self.chunks[1]
        for start in range(0, self.shape[1], step):
            yield slice(start, min(start + step, self.shape[1]))

    def _write_time(self, group: zarr.Group) -> None:
        arr = group.create_array(
            "time", shape=(self.shape[1],), dtype="float64", chunks=(self.chunks[1],),
            dimension_names=("time",),
            attributes={"units": "s", "long_name": "time from the start of the recording"},
        )
        for ts in self._time_blocks():
            arr[ts] = self.t0 + np.arange(ts.start, ts.stop, dtype=np.float64) / self.fs

    def _write_references(self, group: zarr.Group, refs: list[tuple[str, Any]]) -> None:
        names = np.asarray([n for n, _ in refs], dtype=str)
        self._write_1d(group, "reference", names, ("reference",), {"long_name": "reference trace name"})
        arr = group.create_array(
            "references", shape=(len(refs), self.shape[1]), dtype="float32",
            chunks=(len(refs), self.chunks[1]), fill_value=np.nan,
            dimension_names=("reference", "time"), attributes={"long_name": "reference traces"},
        )
        for ts in self._time_blocks():
            block = np.stack([_as_numpy(trace[ts]).astype(np.float32) for _, trace in refs])
            found = first_nonfinite(block)
            if found is not None:
                raise ValueError(
                    f"reference {refs[found[0]][0]!r} is not finite at frame {ts.start + found[1]}; "
                    "references must be finite (interpolate or fill the gaps first)"
                )
            arr[:, ts] = block

    # -- streaming
    def regions(self, budget_bytes: int = READ_BUDGET_BYTES) -> Iterator[tuple[slice, slice]]:
        """Chunk-aligned ``(rows, times)`` blocks covering the array once, rows outermost.

        Each block spans one time chunk and as many whole roi chunks as fit in
        ``budget_bytes`` of float32 (at least one), so memory stays bounded.
        """
        (n_rois, n_frames), (rc, tc) = self.shape, self.chunks
        rows_per = max(rc, budget_bytes // (4 * tc) // rc * rc)
        for r0 in range(0, n_rois, rows_per):
            rows = slice(r0, min(r0 + rows_per, n_rois))
            for ts in self._time_blocks():
                yield rows, ts

    def _chunk_span(self, sl: slice, axis: int) -> slice:
        n, c = self.shape[axis], self.chunks[axis]
        start, stop, step = sl.indices(n)
        if step != 1 or start % c or (stop % c and stop != n) or stop <= start:
            dim = _DIMS[axis]
            raise ValueError(
                f"write along {dim!r} must cover whole chunks of {c}: got [{start}:{stop}] "
                f"(an unaligned write would share a Zarr chunk with another write)"
            )
        return slice(start // c, math.ceil(stop / c))

    def write(self, rows: slice, times: slice, block: Any) -> None:
        """Write ``block`` into ``signals[rows, times]``; both slices must cover whole chunks.

        Raises ``RuntimeError`` if any of those chunks was already written.
        """
        if self._closed:
            raise RuntimeError(f"writer for {self.path} is closed")
        ci, cj = self._chunk_span(rows, 0), self._chunk_span(times, 1)
        data = np.asarray(block, dtype=np.float32)
        expected = tuple(len(range(*sl.indices(n))) for sl, n in zip((rows, times), self.shape))
        if data.shape != expected:
            raise ValueError(f"block has shape {data.shape}, expected {expected} for rows {rows}, times {times}")
        if self._written[ci, cj].any():
            raise RuntimeError(f"chunks under rows {rows}, times {times} of {self.path} were already written")
        self._signals[rows, times] = data
        self._written[ci, cj] = True

    def fill(self, read: BlockReader, *, hint: str = _NAN_HINT_WRITE,
             budget_bytes: int = READ_BUDGET_BYTES, keep_missing: bool = False) -> None:
        """Write every chunk from ``read(rows, times)``, refusing non-finite values.

        ``hint`` ends the error message raised at the first NaN/inf (it names the fix).
        ``keep_missing``: store NaN/inf as NaN (missing samples) instead; their count is
        recorded in the ``missing_samples`` attribute when the store is closed.
        """
        for rows, times in self.regions(budget_bytes):
            block = np.asarray(read(rows, times), dtype=np.float32)
            if keep_missing:
                bad = ~np.isfinite(block)
                if bad.any():
                    block = np.where(bad, np.float32(np.nan), block)
                    self.missing_samples += int(bad.sum())
            else:
                error = nonfinite_error(block, self.roi, rows.start, times.start, self.fs, self.t0, hint)
                if error is not None:
                    raise error
            self.write(rows, times, block)

    def store_dask(self, x: Any, *, hint: str = _NAN_HINT_WRITE) -> None:
        """Write a dask array ``(roi, time)``: rechunked to the store chunks, one task per chunk."""
        import dask.array as da

        if tuple(x.shape) != self.shape:
            raise ValueError(f"array shape {tuple(x.shape)} does not match the store {self.shape}")
        checked = x.rechunk(self.chunks).map_blocks(
            _checked_float32, dtype=np.float32, meta=np.empty((0, 0), np.float32),
            roi=self.roi, fs=self.fs, time0=self.t0, hint=hint,
        )
        da.store(checked, self._signals, lock=False, compute=True)
        self._written[...] = True

    def add_preprocessing(self, step: str) -> None:
        """Append ``step`` to the store's ``preprocessing`` list (before :meth:`close`)."""
        if self._closed:
            raise RuntimeError(f"writer for {self.path} is closed")
        attrs = zarr.open_group(str(self.path), mode="r+").attrs
        attrs["preprocessing"] = [*attrs.get("preprocessing", []), str(step)]

    def close(self) -> Path:
        """Check every chunk was written, consolidate metadata, then mark the store complete."""
        if self._closed:
            return self.path
        missing = int((~self._written).sum())
        if missing:
            raise RuntimeError(
                f"{missing} of {self._written.size} chunks of {self.path} were never written; "
                "the store stays marked incomplete"
            )
        zarr.open_group(str(self.path), mode="r+").attrs[MISSING_ATTR] = int(self.missing_samples)
        consolidate(self.path)
        group = zarr.open_group(str(self.path), mode="r+", use_consolidated=True)
        group.attrs[COMPLETE_ATTR] = True  # the very last write
        self._closed = True
        return self.path

    def __enter__(self) -> SignalsWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()


def _checked_float32(block: np.ndarray, *, roi: np.ndarray, fs: float, time0: float, hint: str,
                     block_info: dict[Any, Any] | None = None) -> np.ndarray:
    out = np.asarray(block, dtype=np.float32)
    (r0, _), (t0, _) = block_info[0]["array-location"] if block_info else ((0, 0), (0, 0))
    error = nonfinite_error(out, roi, r0, t0, fs, time0, hint)
    if error is not None:
        raise error
    return out


def _unwrap_dataarray(signals: Any, roi: Any) -> tuple[Any, Any]:
    if not isinstance(signals, xr.DataArray):
        return signals, roi
    if set(signals.dims) != set(_DIMS):
        raise ValueError(f"signals DataArray must have dims ('roi', 'time'), got {signals.dims}")
    signals = signals.transpose(*_DIMS)
    if roi is None and "roi" in signals.coords:
        roi = signals["roi"].values
    return signals.data, roi


def write_signals(
    path: str | os.PathLike[str],
    signals: Any,
    fs: float,
    *,
    roi: Any = None,
    references: Any = None,
    units: str = "dF/F",
    source: str | os.PathLike[str] | None = None,
    source_format: str = "array",
    preprocessing: str | Sequence[str] = (),
    attrs: Mapping[str, Any] | None = None,
    chunks: Any = None,
    overwrite: bool = False,
) -> Path:
    """Write ``(roi, time)`` signals to a new signals store, streaming block by block.

    Parameters
    ----------
    path
        Output directory (Zarr v3 group). Refused if it exists, unless ``overwrite``.
    signals
        ``(roi, time)`` array: NumPy array or memmap, dask array, an h5py/zarr dataset
        or any sliceable array with ``shape``, or a DataArray with dims ``roi``/``time``.
        Converted to float32. Read in chunk-aligned blocks of at most ~64 MiB (dask
        arrays: rechunked to the store chunks and stored one task per chunk).
    fs
        Sampling rate in Hz (> 0).
    roi
        Unique roi ids (ints or strings), kept as the ``roi`` coordinate.
    references
        ``{name: 1-D trace}`` of reference traces (stimulus, behaviour), one value per frame.
    units, source, source_format, preprocessing, attrs
        Metadata stored as attributes. ``preprocessing`` lists what was done to the data.
    chunks
        ``(roi_chunk, time_chunk)``; default: one time chunk up to 65,536 frames (then
        65,536-frame chunks) and 16-256 rois so a chunk is about 8 MiB.
    overwrite
        Replace an existing signals store at ``path``.

    Returns
    -------
    pathlib.Path
        The store path.

    Raises
    ------
    StoreExistsError
        ``path`` exists and ``overwrite`` is False (also a ``FileExistsError``/``ValueError``).
    ValueError
        Bad shape, rate, ids or references, or non-finite values (named by roi and frame).
        A write that fails midway leaves the store marked incomplete.

    Examples
    --------
    >>> import numpy as np, tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> x = np.random.default_rng(0).standard_normal((3, 300))
    >>> out = write_signals(f"{tmp.name}/s.zarr", x, fs=30.0, roi=[10, 11, 12],
    ...                     references={"stimulus": np.sin(np.arange(300) / 5)})
    >>> sig = open_signals(out)
    >>> sig.dims, sig.attrs["fs"], sig["roi"].values.tolist()
    (('roi', 'time'), 30.0, [10, 11, 12])
    >>> tmp.cleanup()
    """
    data, roi = _unwrap_dataarray(signals, roi)
    shape = getattr(data, "shape", None)
    if shape is None:
        raise TypeError(f"signals must be an array with a shape, got {type(signals).__name__}")
    _validate_shape(shape)
    if np.dtype(data.dtype).kind not in "iuf":
        raise ValueError(f"signals must be real numbers, got dtype {data.dtype}")
    with SignalsWriter(
        path, shape, fs, roi=roi, references=references, units=units, source=source,
        source_format=source_format, preprocessing=preprocessing, attrs=attrs, chunks=chunks,
        overwrite=overwrite,
    ) as writer:
        if hasattr(data, "dask"):
            writer.store_dask(data)
        else:
            writer.fill(array_reader(data))
    return writer.path


# ----------------------------------------------------------------------------- reading


def _open_group(path: str | os.PathLike[str], *, require_complete: bool) -> tuple[Path, zarr.Group, dict[str, Any]]:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(
            f"no signals store at {p}; create one with bioxen_dask.io.ingest (`bioxen-dask ingest`) "
            "or write_signals"
        )
    if not (p / "zarr.json").is_file():
        raise ValueError(
            f"{p} is not a Zarr v3 group, so not a bioxen-dask signals store; "
            "create one with bioxen_dask.io.ingest (`bioxen-dask ingest`)"
        )
    root = _read_metadata(p / "zarr.json")
    try:
        group = zarr.open_group(str(p), mode="r")
    except Exception as exc:  # valid JSON that zarr cannot parse as group metadata
        raise CorruptStoreError(
            f"{p / 'zarr.json'} is not valid Zarr group metadata ({type(exc).__name__}: {exc}): {_DAMAGED}"
        ) from exc
    attrs = group.attrs.asdict()
    if attrs.get(KIND_ATTR) != "signals" or VERSION_ATTR not in attrs:
        raise ValueError(
            f"{p} is a Zarr group but not a bioxen-dask signals store (no {KIND_ATTR!r}/{VERSION_ATTR!r} "
            "attributes); create one with bioxen_dask.io.ingest (`bioxen-dask ingest`)"
        )
    if int(attrs[VERSION_ATTR]) > STORE_VERSION:
        raise ValueError(
            f"{p} is signals store version {attrs[VERSION_ATTR]}, newer than this bioxen-dask "
            f"reads ({STORE_VERSION}); upgrade bioxen-dask"
        )
    if require_complete and attrs.get(COMPLETE_ATTR) is not True:
        raise IncompleteStoreError(
            f"signals store {p} is incomplete: its write was interrupted (no complete marker). "
            "Re-run the ingest with --overwrite (overwrite=True) to rebuild it"
        )
    verify_store(p, root, check_chunks=attrs.get(COMPLETE_ATTR) is True)
    return p, group, attrs


#: The fix named by every "damaged store" error.
_DAMAGED = (
    "the store is damaged (a truncated, overwritten or deleted file, or an incomplete copy); re-create it "
    "with `bioxen-dask ingest --overwrite` (or `bioxen-dask synth`), or copy it again from its source"
)
#: Arrays every signals store has; ``reference`` and ``references`` come together.
_REQUIRED_ARRAYS = ("signals", "roi", "time")
#: Arrays whose chunks are all on disk in a complete store (checked at open). ``roi`` and
#: ``time`` only when a chunk holds more than one value: zarr skips a chunk equal to the fill
#: value (a lone roi id 0, a one-frame time chunk at t = 0); per-roi variables may be all zero.
_CHUNKED_ARRAYS = ("signals", "references", "reference", "roi", "time")


def _read_metadata(path: Path) -> dict[str, Any]:
    """Parse one ``zarr.json``; a missing or unparsable document raises :class:`CorruptStoreError`."""
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise CorruptStoreError(f"{path} does not exist: {_DAMAGED}") from None
    except (ValueError, UnicodeDecodeError) as exc:  # json.JSONDecodeError is a ValueError
        raise CorruptStoreError(f"{path} is not valid JSON ({exc}): {_DAMAGED}") from None
    if not isinstance(doc, dict):
        raise CorruptStoreError(f"{path} is not a Zarr metadata document (a JSON object): {_DAMAGED}")
    return doc


def _expected_arrays(p: Path, root: Mapping[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """Names of the arrays the store should hold, and their consolidated metadata (if any)."""
    consolidated = (root.get("consolidated_metadata") or {}).get("metadata") or {}
    listed = {name: meta for name, meta in consolidated.items()
              if isinstance(meta, dict) and meta.get("node_type") == "array" and "/" not in name}
    names = set(listed) | set(_REQUIRED_ARRAYS)
    if not listed:  # not consolidated yet (an incomplete store): what is on disk
        names |= {d.name for d in p.iterdir() if d.is_dir() and not d.name.startswith(".")}
    if names & {"reference", "references"}:
        names |= {"reference", "references"}
    return sorted(names), listed


def _chunk_problems(folder: Path, arr: zarr.Array) -> tuple[list[str], int]:
    """Problems of ``arr``'s chunk files (``"chunk c/1/0 is missing"``) and the chunk count; reads no data."""
    present: dict[str, int] = {}
    stack = [folder]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.name != "zarr.json":
                    present[Path(entry.path).relative_to(folder).as_posix()] = entry.stat().st_size
    grid = [range(math.ceil(n / c)) for n, c in zip(arr.shape, arr.chunks)]
    bad: list[str] = []
    total = 0
    for coords in itertools.product(*grid):
        total += 1
        key = arr.metadata.encode_chunk_key(coords)
        size = present.get(key)
        if size is None:
            bad.append(f"chunk {key} is missing")
        elif size == 0:
            bad.append(f"chunk {key} is an empty file")
    return bad, total


def verify_store(path: str | os.PathLike[str], root: Mapping[str, Any] | None = None, *,
                 check_chunks: bool = True) -> None:
    """Check that every array of a signals store opens and agrees with the others; read no data.

    Cheap (metadata documents and a listing of the chunk folders), so it runs whenever a
    store is opened (:func:`open_signals_store`, :func:`store_info`, :func:`fingerprint`).

    Parameters
    ----------
    path
        The store (a Zarr v3 group).
    root
        The parsed root ``zarr.json`` (read from ``path`` when None).
    check_chunks
        Also check that every chunk file of ``signals``, ``references``, ``reference``,
        ``roi`` and ``time`` exists and is not empty (for complete stores; an interrupted
        write legitimately lacks chunks). Truncated chunk files are not detected here
        (that would mean reading them); they fail when computed.

    Raises
    ------
    CorruptStoreError
        An array listed by the store (or one every store has: ``signals``, ``roi``,
        ``time``) is missing, its ``zarr.json`` does not parse or disagrees with the
        store's consolidated metadata, its shape does not fit the ``signals`` shape, or a
        chunk file is missing or empty. The message names the file and the fix.
    """
    p = Path(path)
    if root is None:
        root = _read_metadata(p / "zarr.json")
    names, listed = _expected_arrays(p, root)
    arrays: dict[str, zarr.Array] = {}
    for name in names:
        folder = p / name
        meta_path = folder / "zarr.json"
        if not folder.is_dir():
            raise CorruptStoreError(f"signals store {p}: array {name!r} is missing ({folder} does not exist): "
                                    f"{_DAMAGED}")
        doc = _read_metadata(meta_path)
        try:
            arr = zarr.open_array(str(folder), mode="r")
        except Exception as exc:  # valid JSON, invalid array metadata: zarr raises many types
            raise CorruptStoreError(
                f"{meta_path} is not valid Zarr array metadata ({type(exc).__name__}: {exc}): {_DAMAGED}"
            ) from exc
        if name in listed:
            for key in ("shape", "data_type", "chunk_grid", "chunk_key_encoding", "codecs"):
                if doc.get(key) != listed[name].get(key):
                    raise CorruptStoreError(
                        f"{meta_path} disagrees with the store's consolidated metadata in {p / 'zarr.json'}: "
                        f"{key} {doc.get(key)!r} vs {listed[name].get(key)!r}: {_DAMAGED}"
                    )
        arrays[name] = arr
    sig = arrays["signals"]
    if sig.ndim != 2:
        return  # open_signals_store names the wrong dims
    n_rois, n_frames = sig.shape
    wanted: dict[str, tuple[int, ...]] = {"roi": (n_rois,), "time": (n_frames,)}
    if "reference" in arrays:
        n_refs = arrays["reference"].shape[0] if arrays["reference"].ndim == 1 else -1
        wanted.update(reference=(n_refs,), references=(n_refs, n_frames))
    for name in arrays:
        wanted.setdefault(name, (n_rois,) if name != "signals" else (n_rois, n_frames))
    for name, arr in arrays.items():
        if tuple(arr.shape) != wanted[name]:
            raise CorruptStoreError(
                f"signals store {p}: array {name!r} ({p / name / 'zarr.json'}) has shape {tuple(arr.shape)}, "
                f"but the signals are {n_rois} rois x {n_frames} frames, so it should be {wanted[name]}: "
                f"{_DAMAGED}"
            )
    if not check_chunks:
        return
    for name in _CHUNKED_ARRAYS:
        arr = arrays.get(name)
        if arr is None or arr.shards is not None or (name in ("roi", "time") and arr.chunks[0] < 2):
            continue
        bad, total = _chunk_problems(p / name, arr)
        if bad:
            shown = ", ".join(bad[:5]) + (f", ... ({len(bad) - 5} more)" if len(bad) > 5 else "")
            raise CorruptStoreError(
                f"signals store {p}: variable {name!r}: {len(bad)} of {total} chunk files under {p / name} "
                f"are missing or empty: {shown}; {_DAMAGED}"
            )


class _GuardedArray:
    """One array of a store, opened read-only, whose failed reads name the store and variable.

    Dask reads it chunk by chunk (it is wrapped with ``da.from_array`` on the array's own
    chunks). A chunk that cannot be decoded (truncated or overwritten file) or that is
    missing from a complete store raises :class:`CorruptStoreError` instead of a codec's
    bare message or, worse, silently reading the fill value (NaN). Picklable: workers
    reopen the array themselves.
    """

    def __init__(self, path: Path, name: str, arr: zarr.Array, require_chunks: bool) -> None:
        self.path = str(path)
        self.name = name
        self.shape = tuple(arr.shape)
        self.dtype = np.dtype(arr.dtype) if not str(arr.dtype).startswith("<U") else arr.dtype
        self.ndim = len(self.shape)
        self.chunks = tuple(arr.chunks)
        self.require_chunks = require_chunks
        meta = Path(path) / name / "zarr.json"
        self._stamp = (meta.stat().st_mtime_ns, meta.stat().st_size) if meta.is_file() else None
        self._arr: zarr.Array | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_arr": None}

    def __dask_tokenize__(self) -> tuple:
        return ("bioxen-signals-array", self.path, self.name, self.shape, str(self.dtype), self.chunks,
                self._stamp)

    def _array(self) -> zarr.Array:
        if self._arr is None:
            self._arr = zarr.open_array(str(Path(self.path) / self.name), mode="r")
        return self._arr

    def _fail(self, what: str, cause: BaseException | None = None) -> CorruptStoreError:
        reason = f" ({type(cause).__name__}: {cause})" if cause is not None else ""
        return CorruptStoreError(
            f"signals store {self.path}: variable {self.name!r}: {what}{reason}. The store is damaged "
            "(truncated or overwritten file, or an incomplete copy); re-create it with "
            "`bioxen-dask ingest --overwrite` (or copy it again from its source)."
        )

    def __getitem__(self, key: Any) -> np.ndarray:
        arr = self._array()
        if self.require_chunks and isinstance(key, tuple) and all(isinstance(k, slice) for k in key):
            for coords in _chunk_coords(key, self.shape, self.chunks):
                rel = arr.metadata.encode_chunk_key(coords)
                if not (Path(self.path) / self.name / rel).is_file():
                    raise self._fail(f"chunk {rel} (index {coords}) is missing")
        try:
            return np.asarray(arr[key])
        except Exception as exc:  # codec errors are RuntimeError/ValueError/... depending on the codec
            raise self._fail(f"the chunk(s) holding [{_format_key(key)}] cannot be read", exc) from exc


def _format_key(key: Any) -> str:
    parts = key if isinstance(key, tuple) else (key,)
    return ", ".join(f"{k.start or 0}:{k.stop}" if isinstance(k, slice) else str(k) for k in parts)


def _chunk_coords(key: tuple[slice, ...], shape: tuple[int, ...], chunks: tuple[int, ...]) -> Iterator[tuple]:
    import itertools

    spans = []
    for sl, n, c in zip(key, shape, chunks):
        start, stop, _ = sl.indices(n)
        if stop <= start:
            return
        spans.append(range(start // c, (stop - 1) // c + 1))
    yield from itertools.product(*spans)


def _guard_variables(ds: xr.Dataset, p: Path, group: zarr.Group) -> xr.Dataset:
    """Swap each lazily loaded variable's reads for :class:`_GuardedArray` reads."""
    import dask.array as da

    for name, var in ds.data_vars.items():
        if not hasattr(var.data, "dask") or name not in group:
            continue
        arr = group[name]
        guard = _GuardedArray(p, name, arr, require_chunks=name == "signals")
        data = da.from_array(guard, chunks=var.data.chunks, asarray=False, meta=np.empty((0,) * var.ndim, arr.dtype),
                             name=f"open-{name}-" + dask_token(guard))
        ds[name] = var.copy(data=data)
    return ds


def dask_token(obj: Any) -> str:
    from dask.base import tokenize

    return tokenize(obj)


def open_signals_store(path: str | os.PathLike[str]) -> xr.Dataset:
    """Open a complete signals store as a lazy, read-only Dataset.

    Holds ``signals`` and, when stored, ``references`` and per-roi variables, chunked
    as on disk. Validates the store (see :func:`open_signals`); never modifies it: every
    array is opened read-only. A chunk that turns out unreadable or missing when it is
    computed raises :class:`CorruptStoreError`, naming the store and the variable.

    Examples
    --------
    >>> import numpy as np, tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> out = write_signals(f"{tmp.name}/s.zarr", np.ones((2, 50)), fs=5.0,
    ...                     references={"stimulus": np.zeros(50)})
    >>> ds = open_signals_store(out)
    >>> sorted(ds.data_vars), ds["reference"].values.tolist()
    (['references', 'signals'], ['stimulus'])
    >>> tmp.cleanup()
    """
    p, group, attrs = _open_group(path, require_complete=True)
    consolidated = group.metadata.consolidated_metadata is not None
    try:
        ds = xr.open_zarr(str(p), chunks={}, consolidated=consolidated, zarr_format=3)  # mode "r"
    except Exception as exc:  # coordinates are read eagerly: a damaged roi/time array fails here
        raise CorruptStoreError(
            f"signals store {p} cannot be opened ({type(exc).__name__}: {exc}); the store is damaged: "
            "re-create it with `bioxen-dask ingest --overwrite`."
        ) from exc
    if "signals" not in ds:
        raise ValueError(f"signals store {p} has no 'signals' variable; re-run the ingest with --overwrite")
    sig = ds["signals"]
    if sig.dims != _DIMS or sig.dtype != np.float32:
        raise ValueError(
            f"'signals' in {p} must be float32 with dims ('roi', 'time'), got {sig.dtype} {sig.dims}; "
            "re-run the ingest with --overwrite"
        )
    validate_fs(attrs.get("fs"), what=f"attribute 'fs' of {p}")
    return _guard_variables(ds, p, group)


def open_signals(path: str | os.PathLike[str]) -> xr.DataArray:
    """Open the ``signals`` of a store as a lazy, dask-backed, read-only DataArray.

    The DataArray is named ``signals`` with dims ``('roi', 'time')``, coordinates
    ``roi`` (source ids) and ``time`` (s), chunked as stored, and carries the store
    attributes (``fs``, ``units``, ``source``, ``preprocessing``, ...).

    Raises
    ------
    FileNotFoundError
        No such path.
    ValueError
        Not a bioxen-dask signals store, wrong dims/dtype, or ``fs`` not > 0.
    IncompleteStoreError
        The write was interrupted (re-run the ingest with ``--overwrite``).
    CorruptStoreError
        The store is damaged (see :func:`verify_store`: checked on opening, no data read);
        the message names the file.

    Examples
    --------
    >>> import numpy as np, tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> out = write_signals(f"{tmp.name}/s.zarr", np.ones((2, 50)), fs=5.0)
    >>> sig = open_signals(out)
    >>> sig.name, sig.shape, float(sig["time"][-1])
    ('signals', (2, 50), 9.8)
    >>> tmp.cleanup()
    """
    ds = open_signals_store(path)
    sig = ds["signals"]
    sig.attrs = {**ds.attrs, **sig.attrs}
    return sig


def _disk_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def store_info(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Summarise a signals store from its metadata (no signal data is read).

    Works on incomplete stores too (``complete`` is then False), to diagnose them. A
    damaged store (:func:`verify_store`) raises :class:`CorruptStoreError` naming the
    file, so a store reported ``complete`` has every array and chunk file in place.

    Returns
    -------
    dict
        ``path, complete, store_version, n_rois, n_frames, shape, fs, t0, duration_s,
        dtype, chunks, n_chunks, units, source, source_format, preprocessing,
        missing_samples (NaN samples kept by ``nan_policy='keep'``; None for stores written
        before it was recorded), references, variables, size_bytes``.

    Examples
    --------
    >>> import numpy as np, tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> info = store_info(write_signals(f"{tmp.name}/s.zarr", np.ones((2, 50)), fs=5.0))
    >>> info["shape"], info["duration_s"], info["complete"]
    ((2, 50), 10.0, True)
    >>> tmp.cleanup()
    """
    p, group, attrs = _open_group(path, require_complete=False)
    sig = group["signals"]
    n_rois, n_frames = sig.shape
    fs = float(attrs["fs"])
    names = sorted(group.array_keys())
    references = [str(n) for n in group["reference"][:]] if "reference" in names else []
    return {
        "path": str(p),
        "complete": attrs.get(COMPLETE_ATTR) is True,
        "store_version": attrs[VERSION_ATTR],
        "n_rois": n_rois,
        "n_frames": n_frames,
        "shape": (n_rois, n_frames),
        "fs": fs,
        "t0": float(group["time"][0]),
        "duration_s": n_frames / fs,
        "dtype": str(sig.dtype),
        "chunks": {"roi": sig.chunks[0], "time": sig.chunks[1]},
        "n_chunks": math.prod(math.ceil(n / c) for n, c in zip(sig.shape, sig.chunks)),
        "units": attrs.get("units"),
        "source": attrs.get("source"),
        "source_format": attrs.get("source_format"),
        "preprocessing": list(attrs.get("preprocessing", [])),
        "missing_samples": attrs.get(MISSING_ATTR),
        "references": references,
        "variables": [n for n in names if n not in {"roi", "time", "reference"}],
        "size_bytes": _disk_size(p),
    }


def fingerprint(path: str | os.PathLike[str], *, deep: bool = False) -> str:
    """Stable hash of a complete store, for result provenance.

    Hashes every metadata document (canonical JSON: attributes, shapes, dtypes,
    chunking) and the key and compressed size of every chunk; with ``deep=True`` also
    the chunk bytes. It reads no array data by default, so it is cheap; it does not
    depend on the store's location or file times.

    Examples
    --------
    >>> import numpy as np, tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> a = write_signals(f"{tmp.name}/a.zarr", np.ones((2, 50)), fs=5.0)
    >>> b = write_signals(f"{tmp.name}/b.zarr", np.ones((2, 50)), fs=5.0)
    >>> fingerprint(a) == fingerprint(b), fingerprint(a).startswith("sha256:")
    (True, True)
    >>> tmp.cleanup()
    """
    p, _, _ = _open_group(path, require_complete=True)
    digest = hashlib.sha256(f"bioxen-dask-fingerprint-v1 deep={deep}\n".encode())
    files = sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith("."))
    for f in files:
        rel = f.relative_to(p).as_posix()
        if f.name == "zarr.json":
            canonical = json.dumps(json.loads(f.read_text()), sort_keys=True, separators=(",", ":"))
            digest.update(f"M {rel} {hashlib.sha256(canonical.encode()).hexdigest()}\n".encode())
        else:
            line = f"C {rel} {f.stat().st_size}"
            if deep:
                line += " " + hashlib.sha256(f.read_bytes()).hexdigest()
            digest.update(f"{line}\n".encode())
    return "sha256:" + digest.hexdigest()
