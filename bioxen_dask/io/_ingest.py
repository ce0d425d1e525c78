"""Ingest: suite2p / NWB / CaImAn / npy / HDF5 / Zarr / CSV-TSV traces -> a signals store.

Each format has one private reader that opens the source read-only and returns an
:class:`_Opened`: a lazy block reader plus rate, roi ids and provenance. Nothing is
loaded whole: ``.npy`` files are memory-mapped (never unpickled), HDF5/NWB/Zarr
datasets are sliced, and the store is written chunk by chunk.
"""

from __future__ import annotations

import importlib
import math
import os
import re
import shutil
import warnings
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._blocks import BlockReader, array_reader
from ._dff import dff_description, dff_reader, dff_window_frames
from ._store import SignalsWriter, check_store_output, is_signals_store, nonfinite_error, validate_fs

__all__ = ["FORMATS", "detect_format", "ingest"]

#: Formats ``ingest`` reads (``format="auto"`` detects them).
FORMATS = ("suite2p", "nwb", "caiman", "npy", "hdf5", "zarr", "csv")
_DIRECTORY_FORMATS = frozenset({"suite2p", "zarr"})
_HDF5_SUFFIXES = frozenset({".h5", ".hdf5", ".hdf", ".he5"})
_SUITE2P_FILES = ("F.npy", "Fneu.npy", "iscell.npy", "spks.npy", "stat.npy", "ops.npy")
#: Relative tolerance for two sampling rates to count as the same.
RATE_RTOL = 1e-6
#: NWB timestamps: every frame interval must be within this fraction of the mean.
TIMESTAMP_JITTER = 0.05
_FS_HINT = "pass fs= (--fs) with the frame rate in Hz"
_NAN_HINT = (
    "interpolate or drop the bad frames in the source, pass nan_policy='keep' (--nan-policy keep) "
    "to store them as missing samples (NaN) for an analysis with nan_policy='interpolate', or "
    "nan_policy='zero' to replace them with 0 (recorded in the store's preprocessing)"
)
#: What ingest does with NaN/inf samples of the source.
INGEST_NAN_POLICIES = ("raise", "zero", "keep")


@dataclass(frozen=True)
class _Options:
    fs: float | None
    neuropil_coefficient: float
    cells_only: bool
    dataset: str | None
    allow_pickle: bool
    time_major: bool = False  # npy/hdf5/zarr stored (time, roi)
    layout_given: bool = True  # False: the default (roi, time), refused where the shape says otherwise


@dataclass
class _Opened:
    """A source opened for streaming: ``read(rows, times)`` gives float blocks (roi × time)."""

    read: BlockReader
    shape: tuple[int, int]
    fs: float
    roi: np.ndarray
    units: str
    preprocessing: list[str] = field(default_factory=list)
    t0: float = 0.0
    is_dff: bool = False
    attrs: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------- shared helpers


def _import_optional(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        raise ImportError(
            f"reading this format needs {name!r}; install it with pip install 'bioxen-dask[formats]'"
        ) from None


def rates_match(a: float, b: float) -> bool:
    """Whether two sampling rates agree to :data:`RATE_RTOL`."""
    return abs(a - b) <= RATE_RTOL * max(abs(a), abs(b))


def resolve_rate(given: float | None, found: list[tuple[str, float]], missing: str) -> tuple[float, str]:
    """Sampling rate and where it came from; ``found`` lists ``(where, Hz)`` read from the source.

    Rates found in the source must agree with each other and with ``given`` (to
    1e-6 relative); with none found ``given`` is required and ``missing`` is the error.
    """
    rates = [(where, validate_fs(value, what=f"the sampling rate in {where}")) for where, value in found]
    for where, value in rates[1:]:
        if not rates_match(value, rates[0][1]):
            raise ValueError(
                f"sampling rates disagree: {rates[0][1]:.10g} Hz in {rates[0][0]} vs {value:.10g} Hz in {where}; "
                "fix the source files"
            )
    if given is not None:
        for where, value in rates:
            if not rates_match(given, value):
                raise ValueError(
                    f"fs={given:.10g} Hz disagrees with {value:.10g} Hz in {where}; pass the matching fs "
                    "or omit fs= to use the file's rate"
                )
        return given, "fs argument"
    if rates:
        return rates[0][1], rates[0][0]
    raise ValueError(missing)


def _require_2d(arr: Any, what: str, layout: str = "(roi, time)") -> None:
    shape = tuple(arr.shape)
    if len(shape) != 2:
        hint = "; a single trace? save it as shape (1, n_frames)" if len(shape) == 1 else ""
        raise ValueError(f"{what} is {len(shape)}-D with shape {shape}; expected a 2-D {layout} array{hint}")
    if np.dtype(arr.dtype).kind not in "iuf":
        raise ValueError(f"{what} must hold real numbers, got dtype {arr.dtype}")


def _load_npy(path: Path, missing_hint: str) -> np.ndarray:
    """Memory-map a ``.npy`` file; never unpickles."""
    if not path.is_file():
        raise FileNotFoundError(f"{path.name} not found in {path.parent}; {missing_hint}")
    check_npy(path)
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as err:  # a header check_npy accepted but NumPy does not: still not usable
        raise ValueError(f"{path} is not a valid .npy file ({err}); save the traces again with numpy.save") from err


def check_npy(path: Path) -> None:
    """Raise a clear error unless ``path`` is a complete ``.npy`` file of a plain (non-object) dtype.

    Reads only the header: tells a pickle (or an object array) from a truncated or
    non-.npy file, which ``np.load`` reports alike with ``allow_pickle=False``.
    """
    fmt = np.lib.format
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(len(fmt.MAGIC_PREFIX))
        if head != fmt.MAGIC_PREFIX:
            if head[:1] == b"\x80":  # pickle protocol 2+ opcode: np.save(allow_pickle=True) of an object
                raise ValueError(f"{path} is a Python pickle, not a .npy array; bioxen-dask never unpickles "
                                 "trace files: save the traces as a numeric array with numpy.save")
            raise ValueError(
                f"{path} is not a valid .npy file (no NumPy header"
                f"{': the file is empty' if size == 0 else ''}); it may be truncated or another format: "
                "save the traces again with numpy.save, or pass format= for other files"
            )
        f.seek(0)
        try:
            version = fmt.read_magic(f)
            if version not in ((1, 0), (2, 0)):
                return  # a newer header layout: np.load judges it
            read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, _, dtype = read_header(f, max_header_size=2**20)
        except (ValueError, OSError, EOFError) as err:
            raise ValueError(f"{path} is truncated or not a valid .npy file (bad header: {err}); "
                             "save the traces again with numpy.save") from None
        offset = f.tell()
    if dtype.hasobject:
        raise ValueError(
            f"{path} holds Python objects (dtype {dtype}, stored as a pickle), not a numeric array; "
            "bioxen-dask never unpickles trace files: save the traces as a numeric array"
        )
    expected = offset + math.prod(shape) * dtype.itemsize
    if size < expected:
        raise ValueError(
            f"{path} is truncated, not a valid .npy file: its header promises shape {shape} {dtype} "
            f"({expected} bytes) but the file has {size} bytes (an interrupted copy or save?); copy or save "
            "it again"
        )


def _pick(candidates: Mapping[str, Any], dataset: str | None, source: Path, what: str) -> tuple[str, Any]:
    """Choose one of ``candidates`` (path -> object): the only one, or the one ``dataset`` names.

    ``dataset`` matches a whole path or any run of its ``/``-separated parts
    (``"DfOverF"``, ``"Fluorescence/RoiResponseSeries"``, ``"C"``).
    """
    listing = ", ".join(sorted(candidates)) or "none"
    if dataset is None:
        if len(candidates) == 1:
            return next(iter(candidates.items()))
        if not candidates:
            raise ValueError(f"{source} has no {what}")
        raise ValueError(
            f"{source} has {len(candidates)} {what} candidates ({listing}); pass dataset= (--dataset) naming one"
        )
    key = [p for p in dataset.strip("/").split("/") if p]
    matches = [path for path in candidates if _has_run(path.split("/"), key)]
    if len(matches) == 1:
        return matches[0], candidates[matches[0]]
    if not matches:
        raise ValueError(f"dataset={dataset!r} matches no {what} in {source}; available: {listing}")
    raise ValueError(
        f"dataset={dataset!r} is ambiguous in {source}: {', '.join(sorted(matches))}; give more of the path"
    )


def _has_run(parts: list[str], key: list[str]) -> bool:
    return bool(key) and any(parts[i:i + len(key)] == key for i in range(len(parts) - len(key) + 1))


def _is_numeric_2d(obj: Any) -> bool:
    shape, dtype = getattr(obj, "shape", None), getattr(obj, "dtype", None)
    return shape is not None and dtype is not None and len(shape) == 2 and np.dtype(dtype).kind in "iuf"


def _cells(labels: np.ndarray, n_rois: int, what: str) -> np.ndarray:
    """Rows whose label (first column) is > 0.5."""
    labels = np.asarray(labels)
    if labels.ndim == 2:
        labels = labels[:, 0]
    if labels.ndim != 1 or labels.shape[0] != n_rois:
        raise ValueError(
            f"{what} has {labels.shape[0] if labels.ndim else 0} rows but there are {n_rois} rois; "
            "they must come from the same run (or pass cells_only=False, --all-rois)"
        )
    rows = np.flatnonzero(labels > 0.5)
    if rows.size == 0:
        raise ValueError(f"{what} marks no roi as a cell; pass cells_only=False (--all-rois) to keep every roi")
    return rows


def _nonfinite_guard(read: BlockReader, roi: np.ndarray, fs: float, t0: float, policy: str) -> BlockReader:
    """Refuse (``"raise"``), zero (``"zero"``) or pass on (``"keep"``) NaN/inf in the source blocks."""

    def guarded(rows: slice, times: slice) -> np.ndarray:
        block = np.asarray(read(rows, times))
        if policy == "keep":
            return block
        if policy == "zero":
            return np.where(np.isfinite(block), block, 0).astype(block.dtype, copy=False)
        error = nonfinite_error(block, roi, rows.start or 0, times.start or 0, fs, t0, _NAN_HINT)
        if error is not None:
            raise error
        return block

    return guarded


# ----------------------------------------------------------------------------- suite2p


def _natural_key(path: Path) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def _suite2p_plane(source: Path) -> Path:
    if (source / "F.npy").is_file():
        return source
    planes = sorted((p.parent for p in source.glob("plane*/F.npy")), key=_natural_key)
    if len(planes) == 1:
        return planes[0]
    if not planes:
        raise FileNotFoundError(
            f"F.npy not found in {source} or its plane*/ folders; point at a suite2p plane folder "
            "(e.g. .../suite2p/plane0)"
        )
    raise ValueError(
        f"{source} holds {len(planes)} planes ({', '.join(p.name for p in planes)}); suite2p's fs is per "
        f"plane, so ingest one plane folder at a time (e.g. {planes[0]})"
    )


def _fall_mat_rates(path: Path) -> list[tuple[str, float]]:
    """``fs`` from ``Fall.mat`` (a MATLAB v5 file: read without unpickling anything)."""
    from scipy.io import loadmat

    try:
        mat = loadmat(str(path), variable_names=["ops", "settings", "db"], simplify_cells=True)
    except (NotImplementedError, ValueError, OSError):  # e.g. a v7.3 (HDF5) file
        return []
    return [(f"{path.name} ({key}.fs)", float(mat[key]["fs"]))
            for key in ("ops", "settings", "db")
            if isinstance(mat.get(key), dict) and "fs" in mat[key]]


def _pickled_rate(path: Path) -> list[tuple[str, float]]:
    """``fs`` from a pickled suite2p dict (only called with ``allow_pickle=True``)."""
    obj = np.load(path, allow_pickle=True)
    content = obj.item() if obj.dtype == object and obj.shape == () else None
    if isinstance(content, dict) and content.get("fs") is not None:
        return [(f"{path.name} (fs)", float(content["fs"]))]
    return []


def _suite2p_rate(folder: Path, opt: _Options) -> tuple[float, str]:
    found = _fall_mat_rates(folder / "Fall.mat") if (folder / "Fall.mat").is_file() else []
    pickled = [folder / n for n in ("ops.npy", "settings.npy", "db.npy") if (folder / n).is_file()]
    if opt.allow_pickle:
        for path in pickled:
            found += _pickled_rate(path)
    if pickled and not opt.allow_pickle:
        names = ", ".join(p.name for p in pickled)
        missing = (
            f"the sampling rate of {folder} is only in {names}, a pickled dict (unpickling can run "
            "code); pass fs= (--fs) with the per-plane frame rate, or allow_pickle=True "
            "(--allow-pickle) if you trust this file"
        )
    else:
        missing = (f"no sampling rate found in {folder} (looked in Fall.mat, ops.npy, settings.npy, db.npy); "
                   f"{_FS_HINT}")
    return resolve_rate(opt.fs, found, missing)


def _read_suite2p(source: Path, opt: _Options, stack: ExitStack) -> _Opened:
    folder = _suite2p_plane(source)
    F = _load_npy(folder / "F.npy", "point at a suite2p plane folder (e.g. .../suite2p/plane0)")
    _require_2d(F, "F.npy")
    n_rois, n_frames = F.shape
    c = float(opt.neuropil_coefficient)
    if not 0 <= c <= 1:
        raise ValueError(f"neuropil_coefficient must be between 0 and 1, got {opt.neuropil_coefficient!r}")
    steps: list[str] = []
    Fneu = None
    if c != 0:
        Fneu = _load_npy(folder / "Fneu.npy",
                         "pass neuropil_coefficient=0 (--neuropil 0) to use F without neuropil correction")
        _require_2d(Fneu, "Fneu.npy")
        if Fneu.shape != F.shape:
            raise ValueError(
                f"Fneu.npy has shape {Fneu.shape} but F.npy has {F.shape}; both must be "
                "(n_rois, n_frames) from the same suite2p run"
            )
        steps.append(f"suite2p neuropil correction: F - {c:g} * Fneu")
    rows = None
    if opt.cells_only:
        iscell = _load_npy(folder / "iscell.npy", "pass cells_only=False (--all-rois) to keep every roi")
        rows = _cells(iscell, n_rois, "iscell.npy")
        steps.append(f"cells only: iscell[:, 0] > 0.5 ({rows.size} of {n_rois} rois)")
    fs, fs_from = _suite2p_rate(folder, opt)
    read_f = array_reader(F, row_index=rows)
    read_n = array_reader(Fneu, row_index=rows) if Fneu is not None else None

    def read(r: slice, t: slice) -> np.ndarray:
        f = read_f(r, t)
        return f if read_n is None else f - c * read_n(r, t)  # float32 stays float32

    roi = rows if rows is not None else np.arange(n_rois)
    return _Opened(read, (roi.size, n_frames), fs, roi, units="a.u.", preprocessing=steps,
                   attrs={"source_dataset": folder.name, "fs_source": fs_from})


# ----------------------------------------------------------------------------- NWB


def rate_from_timestamps(ts: Any, where: str) -> tuple[float, float]:
    """``(fs, t0)`` from NWB timestamps, read in slices; refuses irregular sampling."""
    n = ts.shape[0]
    if n < 2:
        raise ValueError(f"{where} has {n} timestamps; need at least 2 to know the rate")
    step = 2**20
    lo, hi, prev = math.inf, -math.inf, None
    for start in range(0, n, step):
        block = np.asarray(ts[start:start + step], dtype=np.float64)
        diffs = np.diff(block if prev is None else np.concatenate([[prev], block]))
        lo, hi, prev = min(lo, diffs.min(initial=math.inf)), max(hi, diffs.max(initial=-math.inf)), block[-1]
    first = float(ts[0])
    dt = (float(ts[n - 1]) - first) / (n - 1)
    if lo < (1 - TIMESTAMP_JITTER) * dt or hi > (1 + TIMESTAMP_JITTER) * dt:
        raise ValueError(
            f"{where} are not uniformly spaced (intervals {lo:.6g}-{hi:.6g} s around {dt:.6g} s), "
            "e.g. dropped frames; resample to a uniform rate before ingest"
        )
    return 1.0 / dt, first


def _nwb_path(series: Any) -> str:
    name = getattr(series.data, "name", None)
    if isinstance(name, str) and name.endswith("/data"):
        return name[: -len("/data")].strip("/")
    parts, node = [], series
    while node is not None and node.parent is not None:
        parts.append(node.name)
        node = node.parent
    return "/".join(reversed(parts))


def _scaled(read: BlockReader, conversion: float, offset: float) -> BlockReader:
    """NWB ``data * conversion + offset`` (the series' physical values)."""
    return lambda rows, times: read(rows, times) * conversion + offset


def _read_nwb(source: Path, opt: _Options, stack: ExitStack) -> _Opened:
    pynwb = _import_optional("pynwb")
    from pynwb.ophys import DfOverF, RoiResponseSeries

    try:
        nwbfile = stack.enter_context(pynwb.NWBHDF5IO(str(source), mode="r")).read()
    except Exception as exc:  # hdmf raises anything from KeyError to TypeError on malformed files
        raise ValueError(
            f"{source} could not be read as an NWB file ({type(exc).__name__}: {exc}); check that it is a "
            "valid NWB 2 file (e.g. with nwbinspector), or export the traces to .npy/HDF5 and ingest those"
        ) from exc
    candidates = {_nwb_path(o): o for o in nwbfile.objects.values() if isinstance(o, RoiResponseSeries)}
    path, series = _pick(candidates, opt.dataset, source, "RoiResponseSeries")
    data = series.data
    _require_2d(data, f"RoiResponseSeries {path!r}", layout="(time, roi)")
    n_frames, n_cols = data.shape
    if series.rate is not None:
        found, t0 = [(f"{path} rate", float(series.rate))], float(series.starting_time or 0.0)
    elif series.timestamps is not None:
        if len(series.timestamps) != n_frames:
            raise ValueError(f"{path} has {len(series.timestamps)} timestamps for {n_frames} frames")
        fs_ts, t0 = rate_from_timestamps(series.timestamps, f"{path} timestamps")
        found = [(f"{path} timestamps", fs_ts)]
    else:
        found, t0 = [], 0.0
    fs, fs_from = resolve_rate(opt.fs, found, f"{path} in {source} has neither rate nor timestamps; {_FS_HINT}")

    ids, rows, steps = np.arange(n_cols), None, []
    if series.rois is not None:
        region = np.asarray(series.rois.data[:], dtype=np.int64)
        if region.shape != (n_cols,):
            raise ValueError(f"{path}: the rois region lists {region.size} rois but data has {n_cols} columns")
        table = series.rois.table
        ids = np.asarray(table.id.data[:])[region]
        if opt.cells_only and "iscell" in table.colnames:
            rows = _cells(np.asarray(table["iscell"].data[:])[region], n_cols, f"the iscell column of {table.name}")
            steps.append(f"cells only: iscell > 0.5 ({rows.size} of {n_cols} rois)")
            ids = ids[rows]
    read = array_reader(data, row_index=rows, time_major=True)
    conversion, offset = float(series.conversion), float(getattr(series, "offset", 0.0) or 0.0)
    if (conversion, offset) != (1.0, 0.0):
        read = _scaled(read, conversion, offset)
        steps.append(f"NWB scaling: data * {conversion:g} + {offset:g}")
    return _Opened(read, (ids.size, n_frames), fs, ids, units=str(series.unit), preprocessing=steps, t0=t0,
                   is_dff=isinstance(series.parent, DfOverF),
                   attrs={"source_dataset": path, "fs_source": fs_from})


# ----------------------------------------------------------------------------- HDF5 family


def _h5_file(source: Path) -> Any:
    """``h5py.File(source, "r")``; a file h5py cannot open raises an error naming it."""
    h5py = _import_optional("h5py")
    try:
        return h5py.File(source, "r")
    except OSError as exc:  # "Unable to synchronously open file (file signature not found)", truncation ...
        raise ValueError(
            f"{source} could not be opened as an HDF5 file ({exc}); expected an HDF5 file (.h5/.hdf5/.nwb: "
            "NWB, CaImAn, or a 2-D (roi, time) dataset). The file may be truncated or another format: "
            "copy it again, or pass format= matching what it is"
        ) from None


def _open_h5(source: Path, stack: ExitStack) -> Any:
    return stack.enter_context(_h5_file(source))


def _h5_datasets_2d(group: Any) -> dict[str, Any]:
    import h5py

    found: dict[str, Any] = {}
    prefix = group.name.strip("/")

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset) and _is_numeric_2d(obj):
            found[f"{prefix}/{name}".strip("/")] = obj

    group.visititems(visit)
    return found


def _scalar(obj: Any) -> float | None:
    """A numeric scalar dataset's value (CaImAn stores ``None`` as a string)."""
    if obj is None or getattr(obj, "shape", None) not in ((), (1,)) or np.dtype(obj.dtype).kind not in "iuf":
        return None
    return float(np.asarray(obj[()]).reshape(-1)[0])


def _exact_or_pick(root: Any, candidates: dict[str, Any], dataset: str | None, source: Path, what: str
                   ) -> tuple[str, Any]:
    """``dataset`` as an exact path under ``root`` (any dataset, then checked), else :func:`_pick`."""
    if dataset is not None and dataset.strip("/") and dataset.strip("/") in root:
        return dataset.strip("/"), root[dataset.strip("/")]
    return _pick(candidates, dataset, source, what)


def _read_caiman(source: Path, opt: _Options, stack: ExitStack) -> _Opened:
    f = _open_h5(source, stack)
    if "estimates" not in f:
        raise ValueError(f"{source} is not a CaImAn file (no /estimates group); use format='hdf5' with dataset=")
    traces = _h5_datasets_2d(f["estimates"])
    if opt.dataset is None:
        name = next((k for k in ("estimates/F_dff", "estimates/C") if k in traces), None)
        if name is None:
            raise ValueError(
                f"{source} has neither /estimates/F_dff nor /estimates/C; pass dataset= naming the traces"
            )
        data = traces[name]
    else:
        name, data = _exact_or_pick(f, traces, opt.dataset, source, "2-D dataset under /estimates")
    _require_2d(data, f"/{name}")
    n_rois, n_frames = data.shape
    fr = _scalar(f.get("params/data/fr"))
    fs, fs_from = resolve_rate(opt.fs, [] if fr is None else [("/params/data/fr", fr)],
                               f"no frame rate at /params/data/fr in {source}; {_FS_HINT}")
    rows, steps = None, []
    idx = f["estimates"].get("idx_components")
    if opt.cells_only and idx is not None and getattr(idx, "ndim", 0) == 1 and np.dtype(idx.dtype).kind in "iu":
        rows = np.unique(np.asarray(idx[()], dtype=np.int64))
        if rows.size == 0 or rows[0] < 0 or rows[-1] >= n_rois:
            raise ValueError(f"/estimates/idx_components has indices outside 0..{n_rois - 1}; pass cells_only=False")
        steps.append(f"cells only: /estimates/idx_components ({rows.size} of {n_rois} components)")
    is_dff = name.endswith("F_dff")
    roi = rows if rows is not None else np.arange(n_rois)
    return _Opened(array_reader(data, row_index=rows), (roi.size, n_frames), fs, roi,
                   units="dF/F" if is_dff else "a.u.", preprocessing=steps, is_dff=is_dff,
                   attrs={"source_dataset": f"/{name}", "fs_source": fs_from})


#: Axis orders of npy/HDF5/Zarr sources (``layout=``): the first name is the rows' axis.
LAYOUTS = ("roi,time", "time,roi")


def _warn_layout(name: str, shape: tuple[int, int], fmt: str, time_major: bool, given_by_user: bool = True) -> None:
    """A source that becomes more rois than frames is likely read in the wrong axis order: an
    error naming ``layout`` when none was given (the default would silently swap the axes), a
    warning when the caller chose that layout."""
    n_rois, n_frames = shape[::-1] if time_major else shape
    if n_rois > n_frames and not given_by_user:
        raise ValueError(
            f"{name} has {shape[0]} rows and {shape[1]} columns: read as ({LAYOUTS[0]}) it would be {n_rois} rois x "
            f"{n_frames} frames, which looks like a ({LAYOUTS[1]}) array. Say which it is: layout={LAYOUTS[1]!r} "
            f"(--layout {LAYOUTS[1]}) if it holds one column per roi, or layout={LAYOUTS[0]!r} (--layout "
            f"{LAYOUTS[0]}) if it really holds {n_rois} rois of {n_frames} frames"
        )
    if n_rois > n_frames:
        given, other = (LAYOUTS[1], LAYOUTS[0]) if time_major else LAYOUTS
        warnings.warn(
            f"{name} has {shape[0]} rows and {shape[1]} columns, read as ({given}): it becomes {n_rois} rois x "
            f"{n_frames} frames. If it is stored ({other}), pass layout={other!r} (--layout {other})",
            UserWarning, stacklevel=4,
        )


#: Attribute names read as the sampling rate (Hz) of an HDF5 dataset or Zarr array, or of a
#: group above it (the nearest one that has one).
RATE_ATTRS = ("fs", "rate", "sampling_rate", "sample_rate", "sampling_frequency", "frame_rate", "fps", "fr")


def _rate_attribute(nodes: list[tuple[str, Any]]) -> list[tuple[str, float]]:
    """``[(where, Hz)]`` from the first of ``nodes`` (``(name, attrs)``, nearest first) with a
    numeric :data:`RATE_ATTRS` attribute; empty when none has one."""
    for where, attrs in nodes:
        for key in RATE_ATTRS:
            value = attrs.get(key) if hasattr(attrs, "get") else None
            arr = np.asarray(value) if value is not None else None
            if arr is not None and arr.size == 1 and arr.dtype.kind in "iuf":
                return [(f"attribute {key!r} of {where}", float(arr.reshape(-1)[0]))]
    return []


def _plain(data: Any, name: str, source: Path, opt: _Options, fmt: str,
           rate_nodes: list[tuple[str, Any]] = ()) -> _Opened:
    _require_2d(data, name)
    _warn_layout(name, tuple(data.shape), fmt, opt.time_major, opt.layout_given)
    fs, fs_from = resolve_rate(opt.fs, _rate_attribute(list(rate_nodes)),
                               f"{fmt} sources carry no sampling rate (no {'/'.join(RATE_ATTRS[:3])} attribute); "
                               f"{_FS_HINT}")
    n_rois, n_frames = data.shape[::-1] if opt.time_major else data.shape
    return _Opened(array_reader(data, time_major=opt.time_major), (n_rois, n_frames), fs, np.arange(n_rois),
                   units="a.u.", attrs={"source_dataset": name, "fs_source": fs_from,
                                        "source_layout": LAYOUTS[1] if opt.time_major else LAYOUTS[0]})


def _read_hdf5(source: Path, opt: _Options, stack: ExitStack) -> _Opened:
    f = _open_h5(source, stack)
    name, data = _exact_or_pick(f, _h5_datasets_2d(f), opt.dataset, source, "2-D numeric dataset")
    nodes, node = [], data
    while True:  # the dataset, then every group above it
        nodes.append((node.name, node.attrs))
        if node.name == "/":
            break
        node = node.parent
    return _plain(data, f"/{name}", source, opt, "hdf5", nodes)


def _read_npy(source: Path, opt: _Options, stack: ExitStack) -> _Opened:
    return _plain(_load_npy(source, "check the path"), source.name, source, opt, "npy")


def _read_zarr(source: Path, opt: _Options, stack: ExitStack) -> _Opened:
    import zarr

    if is_signals_store(source):
        raise ValueError(
            f"{source} is already a bioxen-dask signals store; open it with open_signals, no ingest needed"
        )
    node = zarr.open(str(source), mode="r")
    if isinstance(node, zarr.Array):
        return _plain(node, source.name, source, opt, "zarr", [(source.name, node.attrs)])
    arrays = {path: arr for path, arr in node.members(max_depth=None)
              if isinstance(arr, zarr.Array) and _is_numeric_2d(arr)}
    name, data = _exact_or_pick(node, arrays, opt.dataset, source, "2-D numeric array")
    parts = name.strip("/").split("/")
    nodes = [(name, data.attrs)] + [("/".join(parts[:k]) or source.name, node[("/".join(parts[:k]))].attrs
                                     if k else node.attrs) for k in range(len(parts) - 1, -1, -1)]
    return _plain(data, name, source, opt, "zarr", nodes)


# ----------------------------------------------------------------------------- CSV / TSV

#: Suffixes read as delimited text (``format="csv"``), and their delimiter (None: sniffed).
TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".txt": None}
#: Header names of a time column (seconds): the rate comes from it, it is not a roi.
TIME_COLUMNS = ("time", "t", "time_s", "seconds", "timestamp", "timestamps")
#: Header names of a frame-number column: dropped (neither a roi nor a rate).
FRAME_COLUMNS = ("frame", "frames", "index", "")


def _number(cell: str) -> float:
    cell = cell.strip()
    return math.nan if cell == "" or cell.lower() in ("nan", "na", "n/a") else float(cell)


def read_table(path: str | os.PathLike[str]) -> tuple[np.ndarray, list[str] | None, np.ndarray | None]:
    """A delimited text file of traces, time x column: ``(values (time, column), names or None,
    times or None)``.

    The layout of a CSV/TSV export: one row per frame, one column per trace, an optional
    header row naming the columns; a column named like :data:`TIME_COLUMNS` holds the time
    (seconds) and one named like :data:`FRAME_COLUMNS` a frame number (both taken out of
    the traces). Empty cells and ``NaN`` are missing samples. The whole file is read (text
    cannot be memory-mapped).

    Raises
    ------
    ValueError
        Naming the row and column of a cell that is not a number, or rows of unequal length.
    """
    import csv

    src = Path(path)
    delimiter = TABLE_SUFFIXES.get(src.suffix.lower(), ",")
    with open(src, newline="", encoding="utf-8-sig") as f:
        text = f.read()
    if delimiter is None:
        try:
            delimiter = csv.Sniffer().sniff(text[:65536], delimiters=",\t; ").delimiter
        except csv.Error:
            delimiter = ","
    rows = [r for r in csv.reader(text.splitlines(), delimiter=delimiter) if any(c.strip() for c in r)]
    if not rows:
        raise ValueError(f"{src} holds no rows")
    names: list[str] | None = None
    try:
        [_number(c) for c in rows[0]]
    except ValueError:
        names, rows = [c.strip() for c in rows[0]], rows[1:]
    width = len(names) if names is not None else len(rows[0])
    values = np.empty((len(rows), width), dtype=np.float64)
    for i, row in enumerate(rows):
        line = i + 1 + (names is not None)
        if len(row) != width:
            raise ValueError(f"{src}: row {line} has {len(row)} cells, the {'header' if names else 'first row'} "
                             f"{width}; every row needs one value per column")
        for j, cell in enumerate(row):
            try:
                values[i, j] = _number(cell)
            except ValueError:
                column = repr(names[j]) if names is not None else str(j + 1)
                raise ValueError(f"{src}: row {line}, column {column}: {cell.strip()!r} is not a number; "
                                 "traces are numbers (an empty cell or NaN for a missing sample)") from None
    times = None
    if names is not None:
        lowered = [n.lower() for n in names]
        keep = [j for j, n in enumerate(lowered) if n not in TIME_COLUMNS and n not in FRAME_COLUMNS]
        time_cols = [j for j, n in enumerate(lowered) if n in TIME_COLUMNS]
        if time_cols:
            times = values[:, time_cols[0]]
        values, names = values[:, keep], [names[j] for j in keep]
    return values, names, times


def _read_csv(source: Path, opt: _Options, stack: ExitStack) -> _Opened:
    if opt.layout_given and opt.time_major is False:
        raise ValueError(f"CSV/TSV sources are read time x roi (one row per frame, one column per roi, a header "
                         f"naming them); layout='roi,time' does not apply: transpose {source.name} or drop --layout")
    values, names, times = read_table(source)
    if values.shape[0] == 0:
        raise ValueError(f"{source} has a header but no rows of values")
    if values.shape[1] == 0:
        raise ValueError(f"{source} has no trace columns (only time/frame columns)")
    found = []
    t0 = 0.0
    if times is not None:
        rate, t0 = rate_from_timestamps(times, f"the time column of {source.name}")
        found.append((f"the time column of {source.name}", rate))
    fs, fs_from = resolve_rate(opt.fs, found, f"csv sources carry no sampling rate (no time column: "
                               f"{', '.join(TIME_COLUMNS[:3])}, ...); {_FS_HINT}")
    if names is None:
        roi: np.ndarray = np.arange(values.shape[1])
    else:
        try:
            as_int = [int(n) for n in names]
            roi = np.asarray(as_int, dtype=np.int64) if all(str(i) == n for i, n in zip(as_int, names)) \
                else np.asarray(names, dtype=str)
        except ValueError:
            roi = np.asarray(names, dtype=str)
    data = np.ascontiguousarray(values.T)
    return _Opened(array_reader(data), data.shape, fs, roi, units="a.u.", t0=t0 if times is not None else 0.0,
                   attrs={"source_dataset": source.name, "fs_source": fs_from, "source_layout": LAYOUTS[1]})


#: Formats without a layout of their own (``layout=`` applies).
_PLAIN_FORMATS = ("npy", "hdf5", "zarr")

_READERS: dict[str, Callable[[Path, _Options, ExitStack], _Opened]] = {
    "suite2p": _read_suite2p,
    "nwb": _read_nwb,
    "caiman": _read_caiman,
    "npy": _read_npy,
    "hdf5": _read_hdf5,
    "zarr": _read_zarr,
    "csv": _read_csv,
}


# ----------------------------------------------------------------------------- detection and entry point


def _hdf5_flavour(path: Path) -> str:
    with _h5_file(path) as f:
        if "nwb_version" in f.attrs or f.attrs.get("namespace") == "core":
            return "nwb"
        if "estimates" in f:
            return "caiman"
    return "hdf5"


def detect_format(source: str | os.PathLike[str]) -> str:
    """Guess the format of ``source``: one of :data:`FORMATS`.

    Folders with suite2p outputs (``F.npy``, ``iscell.npy``, ... or ``plane*/F.npy``)
    are suite2p, folders with Zarr metadata are zarr; ``.npy`` files are npy, ``.nwb``
    files nwb, and HDF5 files are nwb (``nwb_version`` attribute), caiman
    (``/estimates``) or hdf5.

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> tmp = tempfile.TemporaryDirectory()
    >>> p = pathlib.Path(tmp.name) / "traces.npy"
    >>> np.save(p, np.zeros((2, 10)))
    >>> detect_format(p)
    'npy'
    >>> tmp.cleanup()
    """
    path = Path(source)
    if path.is_dir():
        if any((path / m).is_file() for m in _SUITE2P_FILES) or any(path.glob("plane*/F.npy")):
            return "suite2p"
        if any((path / m).is_file() for m in ("zarr.json", ".zarray", ".zgroup")):
            return "zarr"
        raise ValueError(
            f"cannot tell the format of folder {path}: no suite2p F.npy (or plane*/F.npy) and no Zarr "
            f"metadata; pass format= one of {FORMATS}"
        )
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return "npy"
    if suffix == ".nwb":
        return "nwb"
    if suffix in TABLE_SUFFIXES and suffix != ".txt":  # .txt: anything; format="csv" says it is a table
        return "csv"
    if suffix in _HDF5_SUFFIXES or _import_optional("h5py").is_hdf5(str(path)):
        return _hdf5_flavour(path)
    raise ValueError(f"cannot tell the format of {path}; pass format= one of {FORMATS}")


def _check_paths(source: Path, out: Path) -> None:
    src, dst = source.resolve(), out.resolve()
    if dst == src or src.is_relative_to(dst) or (source.is_dir() and dst.is_relative_to(src)):
        raise ValueError(
            f"output {out} overlaps the source {source}; choose an output outside the source "
            "(the source is never modified)"
        )


def ingest(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    format: str = "auto",
    fs: float | None = None,
    neuropil_coefficient: float = 0.7,
    cells_only: bool = True,
    dff: bool = False,
    dff_window_s: float = 60.0,
    dff_percentile: float = 8.0,
    dataset: str | None = None,
    overwrite: bool = False,
    allow_pickle: bool = False,
    nan_policy: str = "raise",
    chunks: Any = None,
    layout: str | None = None,
) -> Path:
    """Convert calcium-imaging traces into a signals store, streaming, without touching the source.

    Parameters
    ----------
    source
        A suite2p plane folder (``F.npy``, ``Fneu.npy``, ``iscell.npy``), an NWB file
        (a ``RoiResponseSeries``, stored time × roi), a CaImAn HDF5 file
        (``/estimates/F_dff`` if present, else ``/estimates/C``), a ``.npy`` file, an
        HDF5 file or a Zarr array/group (roi × time, or time × roi with ``layout``), or a
        CSV/TSV file (``.csv``, ``.tsv``, ``.tab``; ``.txt`` with ``format="csv"``; time × roi: one column per roi,
        an optional header naming them and a ``time`` column giving the rate, see
        :func:`read_table`).
    out
        Path of the new signals store (Zarr v3).
    format
        ``"auto"`` (see :func:`detect_format`) or one of ``suite2p, nwb, caiman, npy, hdf5, zarr, csv``.
    fs
        Sampling rate in Hz. Required for npy/hdf5/zarr; optional where the source has
        a rate (NWB ``rate``/``timestamps``, CaImAn ``/params/data/fr``, suite2p
        ``Fall.mat``, or -- with ``allow_pickle`` -- ``ops.npy``/``settings.npy``/``db.npy``),
        in which case the two must agree to 1e-6 relative.
    neuropil_coefficient
        suite2p only: signals are ``F - c * Fneu`` (0 uses F alone).
    cells_only
        Keep only rois classified as cells (suite2p ``iscell[:, 0]``, an NWB ``iscell``
        column, CaImAn ``idx_components``); the ``roi`` coordinate keeps the source indices/ids.
    dff, dff_window_s, dff_percentile
        Convert to ΔF/F with a running-percentile baseline (window in seconds,
        percentile), computed blockwise with a halo so it equals the whole-trace result.
    dataset
        Which series/dataset to read when a file holds several (path or name, e.g.
        ``"DfOverF"``, ``"C"``, ``"/traces"``).
    overwrite
        Replace an existing signals store at ``out``.
    allow_pickle
        suite2p only: allow reading ``fs`` from pickled ``ops.npy``/``settings.npy``/
        ``db.npy``. Unpickling can run arbitrary code: only for files you trust.
        Trace files are never unpickled.
    nan_policy
        ``"raise"`` (default): refuse NaN/inf, naming the roi and frame; ``"zero"``:
        replace them with 0 (recorded in ``preprocessing``); ``"keep"``: store them as
        missing samples (NaN, counted in the ``missing_samples`` attribute) for an analysis
        that fills short gaps and masks them (``nan_policy='interpolate'`` of
        :func:`bioxen_dask.coherence` and of pipelines). With ``dff=True`` only
        ``"raise"``/``"zero"`` are allowed (the running baseline needs every sample).
    chunks
        Store chunking, see :func:`write_signals`.
    layout : {"roi,time", "time,roi"}, optional
        npy/HDF5/Zarr only: the source's axis order (``"roi,time"``: one row per roi;
        ``"time,roi"``: one column per roi, as many tools save traces). Default: ``"roi,time"``,
        except that a source with more rows than columns (more "rois" than frames, the shape
        of a time x roi array) is refused until ``layout`` says which it is. The other formats
        have a known layout (NWB is read time x roi by itself).

    Returns
    -------
    pathlib.Path
        The store path. On an error the partial output is removed; a killed ingest
        leaves a store marked incomplete that :func:`open_signals` refuses.

    Raises
    ------
    FileNotFoundError
        Missing source or required files.
    ValueError
        Bad shapes, missing/disagreeing/non-positive rates, NaN frames, an existing
        output without ``overwrite`` (``StoreExistsError``), ambiguous datasets, a
        truncated or non-.npy ``.npy`` file, a file h5py cannot open (both named).

    Warns
    -----
    UserWarning
        An npy/HDF5/Zarr source that becomes more rois than frames with the ``layout``
        given: probably the wrong axis order (the warning names the other ``layout``).

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> tmp = tempfile.TemporaryDirectory()
    >>> plane = pathlib.Path(tmp.name) / "suite2p" / "plane0"
    >>> plane.mkdir(parents=True)
    >>> F = np.random.default_rng(0).uniform(100, 200, (5, 400)).astype("float32")
    >>> np.save(plane / "F.npy", F); np.save(plane / "Fneu.npy", F / 2)
    >>> np.save(plane / "iscell.npy", np.array([[1, .9], [0, .1], [1, .8], [1, .7], [0, .2]]))
    >>> out = ingest(plane, pathlib.Path(tmp.name) / "signals.zarr", fs=30.0)
    >>> from bioxen_dask.io import open_signals
    >>> sig = open_signals(out)
    >>> sig["roi"].values.tolist(), sig.attrs["source_format"]
    ([0, 2, 3], 'suite2p')
    >>> tmp.cleanup()
    """
    src, dst = Path(source), Path(out)
    if not src.exists():
        raise FileNotFoundError(f"source {src} does not exist")
    _check_paths(src, dst)
    check_store_output(dst, overwrite)
    if fs is not None:
        fs = validate_fs(fs)
    if nan_policy not in INGEST_NAN_POLICIES:
        raise ValueError(f"nan_policy must be one of {list(INGEST_NAN_POLICIES)}, got {nan_policy!r}")
    if nan_policy == "keep" and dff:
        raise ValueError("nan_policy='keep' cannot be combined with dff=True (the running baseline needs "
                         "every sample); fill the gaps first or use nan_policy='zero'")
    if format == "auto":
        fmt = detect_format(src)
    elif format in _READERS:
        fmt = format
    else:
        raise ValueError(f"unknown format {format!r}; use 'auto' or one of {FORMATS}")
    if src.is_dir() != (fmt in _DIRECTORY_FORMATS):
        kind = "a folder" if fmt in _DIRECTORY_FORMATS else "a file"
        raise ValueError(f"format {fmt!r} expects {kind}, but {src} is not one")
    layout_given = layout is not None
    layout = LAYOUTS[0] if layout is None else layout
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; use one of {list(LAYOUTS)} (the source's axis order)")
    if layout != LAYOUTS[0] and fmt not in _PLAIN_FORMATS + ("csv",):
        raise ValueError(f"layout={layout!r} applies to {'/'.join(_PLAIN_FORMATS)} sources; {fmt} sources have a "
                         "known axis order (drop layout=)")
    opts = _Options(fs, neuropil_coefficient, cells_only, dataset, allow_pickle, time_major=layout == LAYOUTS[1],
                    layout_given=layout_given)

    with ExitStack() as stack:
        src_data = _READERS[fmt](src, opts, stack)
        read = _nonfinite_guard(src_data.read, src_data.roi, src_data.fs, src_data.t0, nan_policy)
        steps, units = list(src_data.preprocessing), src_data.units
        if nan_policy == "zero":
            steps.append("non-finite values replaced by 0")
        if dff:
            if src_data.is_dff:
                raise ValueError(f"{src} already holds dF/F ({src_data.attrs.get('source_dataset')}); drop dff=True")
            window = dff_window_frames(dff_window_s, src_data.fs, src_data.shape[1])
            read = dff_reader(read, src_data.shape[1], window, dff_percentile, src_data.roi)
            steps.append(dff_description(window, dff_window_s, dff_percentile))
            units = "dF/F"
        writer = SignalsWriter(
            dst, src_data.shape, src_data.fs, roi=src_data.roi, t0=src_data.t0, units=units,
            source=src.resolve(), source_format=fmt, preprocessing=steps, attrs=src_data.attrs,
            chunks=chunks, overwrite=overwrite,
        )
        try:
            writer.fill(read, hint=_NAN_HINT, keep_missing=nan_policy == "keep")
            if writer.missing_samples:
                writer.add_preprocessing(f"non-finite values kept as missing samples (NaN): "
                                         f"{writer.missing_samples}")
            writer.close()
        except Exception:
            shutil.rmtree(writer.path, ignore_errors=True)
            raise
    return writer.path
