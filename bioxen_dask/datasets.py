"""Result datasets on disk: Zarr writes region by region, resumable, marked complete last.

Layout of a result store (a Zarr v3 group readable by ``xr.open_zarr``)::

    <result>.zarr/            attrs: bioxen_dask_result="coherence", complete, run_key,
                              regions (dim, size, count, checksums), every analysis parameter
        coherence_mean  (pair, period)      ... the variables of the Dataset
        ...
        _region_checksum (region,)          while incomplete only: one uint64 per region

How a write goes (:func:`write_result`):

1. the output path is checked before anything is computed: a complete result there is an
   error (unless ``overwrite``), an incomplete one from the *same* run (same ``run_key``) is
   resumed, anything else is refused;
2. the template is written: metadata, coordinates and every variable that does not run
   along the region dimension (``pair``); arrays are pre-created, no chunk of them written;
3. one task per region computes the region's slice of every variable and writes it (each
   region covers whole Zarr chunks, so no two tasks ever touch one chunk: zarr-python#3682,
   dask#12583), then stores a checksum of what it wrote in its own chunk of
   ``_region_checksum``;
4. when every region is in, the checksums move to the attributes, the metadata is
   consolidated and ``complete=True`` is written — the very last write.

A re-run of an interrupted write skips regions whose checksum is present *and* matches the
data read back (verified), and recomputes the others: a chunk or checksum cut short by a killed
process, or damaged since, counts as not written; a run killed while the template was written
starts over. A full disk (``ENOSPC``/``EDQUOT``) is one clear ``OSError`` naming the output;
the result then stays incomplete and resumes the same way once there is space.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr
import zarr

from ._stores import consolidate, json_digest

__all__ = [
    "IncompleteResultError",
    "OutputExistsError",
    "WriteReport",
    "check_output",
    "netcdf_safe_attrs",
    "open_result",
    "result_info",
    "result_status",
    "run_key",
    "write_result",
]

KIND_ATTR = "bioxen_dask_result"
COMPLETE_ATTR = "complete"
RUN_KEY_ATTR = "run_key"
REGIONS_ATTR = "regions"
CHECKSUMS = "_region_checksum"
#: Zarr chunk length along time for map variables (pair, period, time).
MAP_TIME_CHUNK = 4096


class OutputExistsError(FileExistsError, ValueError):
    """The output already holds a complete result (or something that is not a result)."""


class IncompleteResultError(ValueError):
    """The result store was not completely written."""


@dataclass(frozen=True)
class WriteReport:
    """What :func:`write_result` did."""

    path: Path
    regions: int
    written: int
    skipped: int
    resumed: bool

    def describe(self) -> dict[str, Any]:
        return {"path": str(self.path), "regions": self.regions, "written": self.written,
                "skipped": self.skipped, "resumed": self.resumed}


# ----------------------------------------------------------------------------- inspection


def _regions_of(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """The ``regions`` attribute (dim, size, count, checksums): a JSON string on disk, so that
    every attribute is netCDF-safe; a mapping in results written before."""
    raw = attrs.get(REGIONS_ATTR)
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return {}
    return dict(raw) if isinstance(raw, Mapping) else {}


def _attrs_of(path: Path) -> dict[str, Any] | None:
    meta = path / "zarr.json"
    if not meta.is_file():
        return None
    try:
        return json.loads(meta.read_text()).get("attributes", {})
    except (OSError, ValueError):
        return None


def result_status(path: str | os.PathLike[str]) -> dict[str, Any]:
    """``{"exists", "is_result", "complete", "run_key", "regions_done", "regions"}`` of a path.

    Reads metadata only.
    """
    p = Path(path)
    out: dict[str, Any] = {"path": str(p), "exists": p.exists(), "is_result": False, "complete": False,
                           "run_key": None, "regions": None, "regions_done": None}
    attrs = _attrs_of(p) if p.exists() else None
    if attrs is None or KIND_ATTR not in attrs:
        return out
    out.update(is_result=True, complete=attrs.get(COMPLETE_ATTR) is True, run_key=attrs.get(RUN_KEY_ATTR))
    regions = _regions_of(attrs)
    out["regions"] = regions.get("count")
    if out["complete"]:
        out["regions_done"] = regions.get("count")
    elif (p / CHECKSUMS).exists():
        out["regions_done"] = int((_stored_checksums(p) != 0).sum())
    return out


def _stored_checksums(p: Path) -> np.ndarray:
    """The per-region checksums of an incomplete result; 0 where none was written *or* where the
    chunk cannot be read (a write cut short by a killed process)."""
    arr = zarr.open_array(str(p / CHECKSUMS), mode="r")
    try:
        return np.asarray(arr[:], dtype=np.uint64)
    except Exception:  # one damaged chunk: read them one by one
        out = np.zeros(arr.shape, dtype=np.uint64)
        for k in range(arr.shape[0]):
            with contextlib.suppress(Exception):
                out[k] = arr[k]
        return out


def result_info(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What a result store holds: status, sizes, variables and the main parameters (metadata only)."""
    p = Path(path)
    status = result_status(p)
    if not status["is_result"]:
        raise ValueError(f"{p} is not a bioxen-dask result store.")
    group = zarr.open_group(str(p), mode="r")
    attrs = group.attrs.asdict()
    variables = {}
    for name, arr in group.arrays():
        if name.startswith("_"):
            continue
        variables[name] = {"dims": list(arr.metadata.dimension_names or ()), "shape": list(arr.shape),
                           "dtype": str(arr.dtype)}
    keep = ("mode", "reference", "input_store", "input_fingerprint", "bioxen_dask_version", "period_min",
            "period_max", "J", "dj", "preset", "boundary", "dtype", "significance", "significance_level",
            "mc_count", "n_rois", "n_samples")
    return {**status, "parameters": {k: attrs[k] for k in keep if k in attrs}, "variables": variables}


def check_output(
    path: str | os.PathLike[str], *, overwrite: bool = False, resume: bool = True, key: str | None = None,
) -> str:
    """Decide what to do with an output path, before any computation.

    Returns ``"create"`` (nothing there), ``"resume"`` (an incomplete result of the same run),
    or ``"replace"`` (``overwrite`` and the path holds a result or an empty folder).

    Raises
    ------
    OutputExistsError
        A complete result is there and ``overwrite`` is false; an incomplete result of another
        run (different ``key``) or with ``resume=False``; or something that is not a result.
    """
    p = Path(path)
    if not (p.exists() or p.is_symlink()):
        return "create"
    empty_dir = p.is_dir() and not any(p.iterdir())
    status = result_status(p)
    if not status["is_result"] and not empty_dir:
        raise OutputExistsError(
            f"output {p} exists and is not a bioxen-dask result; remove it yourself or choose another "
            "output path (it is never overwritten)."
        )
    if overwrite:
        return "replace"
    if empty_dir:
        return "create"
    if status["complete"]:
        raise OutputExistsError(
            f"output {p} already holds a complete result; choose another output path or pass "
            "overwrite=True (--set outputs.overwrite=true) to replace it."
        )
    if not resume:
        raise OutputExistsError(
            f"output {p} holds an incomplete result; resume it (resume=True) or pass overwrite=True."
        )
    if key is not None and status["run_key"] != key:
        raise OutputExistsError(
            f"output {p} holds an incomplete result of a different run (other input or parameters); "
            "choose another output path or pass overwrite=True to replace it."
        )
    return "resume"


def open_result(path: str | os.PathLike[str]) -> xr.Dataset:
    """Open a complete result lazily.

    Raises
    ------
    FileNotFoundError
        Nothing at ``path``.
    IncompleteResultError
        The write was interrupted (re-run the pipeline: it resumes).
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no result at {p}.")
    status = result_status(p)
    if not status["is_result"]:
        raise ValueError(f"{p} is not a bioxen-dask result store.")
    if not status["complete"]:
        raise IncompleteResultError(
            f"result {p} is incomplete ({status['regions_done']} of {status['regions']} regions written); "
            "re-run the pipeline to resume it."
        )
    ds = xr.open_zarr(str(p), consolidated=True, zarr_format=3)
    ds.attrs = netcdf_safe_attrs(ds.attrs)
    for var in ds.variables.values():
        var.attrs = netcdf_safe_attrs(var.attrs)
    return ds


def netcdf_safe_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Attributes every netCDF writer takes: booleans as 0/1 (netCDF has no boolean type; they
    stay truthy), mappings and mixed lists as JSON strings, None as ``"none"``; strings,
    numbers and lists of one of them as they are. ``open_result(path).to_netcdf(file)`` works.

    Examples
    --------
    >>> netcdf_safe_attrs({"complete": True, "regions": {"count": 2}, "ids": [3, 7], "seed": None})
    {'complete': 1, 'regions': '{"count": 2}', 'ids': [3, 7], 'seed': 'none'}
    """
    out: dict[str, Any] = {}
    for key, value in attrs.items():
        if isinstance(value, (bool, np.bool_)):
            value = int(value)
        elif value is None:
            value = "none"
        elif isinstance(value, Mapping):
            value = json.dumps(value, sort_keys=True, default=str)
        elif isinstance(value, (list, tuple)):
            kinds = {type(v) for v in value}
            if not value or bool in kinds or len({str if k is str else float for k in kinds}) > 1 \
                    or not kinds <= {str, int, float}:
                value = json.dumps(list(value), default=str)  # empty, boolean or mixed: one string
        out[key] = value
    return out


# ----------------------------------------------------------------------------- writing


def run_key(ds: xr.Dataset, extra: Mapping[str, Any] | None = None) -> str:
    """Stable identity of the computation a Dataset describes (attrs, sizes, variables)."""
    desc = {
        "attrs": {k: v for k, v in ds.attrs.items() if k not in (COMPLETE_ATTR, RUN_KEY_ATTR, REGIONS_ATTR)},
        "sizes": dict(ds.sizes),
        "vars": {k: [list(v.dims), str(v.dtype)] for k, v in ds.data_vars.items()},
        "extra": dict(extra or {}),
    }
    return json_digest(desc)


def _region_vars(ds: xr.Dataset, dim: str) -> list[str]:
    return [name for name, v in ds.data_vars.items() if dim in v.dims]


def _regular(ds: xr.Dataset, dim: str, size: int | None) -> tuple[xr.Dataset, int]:
    """Every region variable dask-backed with regular chunks of ``size`` along ``dim``."""
    names = _region_vars(ds, dim)
    if not names:
        raise ValueError(f"no data variable runs along {dim!r}; nothing to write region by region.")
    if size is None:
        sizes = [max(ds[n].chunks[ds[n].dims.index(dim)]) for n in names if ds[n].chunks is not None]
        size = sizes[0] if sizes else ds.sizes[dim]
    size = int(max(1, min(size, ds.sizes[dim])))
    out = ds.copy()
    for name in names:
        v = ds[name]
        data = v.data if isinstance(v.data, da.Array) else da.from_array(np.asarray(v.data), chunks=-1)
        chunks = {i: -1 for i in range(v.ndim)}
        chunks[v.dims.index(dim)] = size
        out[name] = v.copy(data=data.rechunk(chunks))
    return out, size


def _encoding(ds: xr.Dataset, dim: str, size: int) -> dict[str, dict[str, Any]]:
    enc: dict[str, dict[str, Any]] = {}
    for name in _region_vars(ds, dim):
        v = ds[name]
        chunks = []
        for d in v.dims:
            if d == dim:
                chunks.append(size)
            elif d == "time":
                chunks.append(min(v.sizes[d], MAP_TIME_CHUNK))
            else:
                chunks.append(v.sizes[d])
        enc[name] = {"chunks": tuple(chunks)}
    return enc


def _checksum(values: Mapping[str, np.ndarray]) -> int:
    h = hashlib.blake2b(digest_size=8)
    for name in sorted(values):
        v = np.ascontiguousarray(values[name])
        h.update(name.encode())
        h.update(str(v.dtype).encode())
        h.update(v.tobytes())
    return int.from_bytes(h.digest(), "little") or 1  # 0 means "not written"


def _write_region(path: str, k: int, start: int, stop: int, axes: dict[str, int],
                  values: dict[str, np.ndarray]) -> int:
    """Write region ``k`` (``start:stop`` along the region dim) of every variable, then its checksum."""
    group = zarr.open_group(path, mode="r+")
    stored = {}
    for name, value in values.items():
        arr = group[name]
        v = np.asarray(value, dtype=arr.dtype)
        index = [slice(None)] * arr.ndim
        index[axes[name]] = slice(start, stop)
        arr[tuple(index)] = v
        stored[name] = v
    checksum = _checksum(stored)
    group[CHECKSUMS][k] = np.uint64(checksum)  # its own chunk: written last, after the data
    return checksum


def _read_region(group: zarr.Group, start: int, stop: int, axes: dict[str, int]) -> dict[str, np.ndarray]:
    out = {}
    for name, axis in axes.items():
        arr = group[name]
        index = [slice(None)] * arr.ndim
        index[axis] = slice(start, stop)
        out[name] = arr[tuple(index)]
    return out


def _region_verified(group: zarr.Group, k: int, start: int, stop: int, axes: dict[str, int]) -> bool:
    """Region ``k`` has a checksum and its data reads back with it. Anything unreadable (a chunk
    or checksum cut short by a killed process) counts as not written: it is recomputed."""
    try:
        expected = int(group[CHECKSUMS][k])
        return expected != 0 and _checksum(_read_region(group, start, stop, axes)) == expected
    except Exception:  # codec errors on a truncated chunk are RuntimeError/ValueError/...
        return False


#: ``errno`` values that mean "no room left to write" (disk full, quota exceeded).
_NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


@contextlib.contextmanager
def _space_errors(p: Path):
    """Turn a full disk (or quota) while writing ``p`` into one clear error.

    The result is never marked complete after such an error (the marker is the very last
    write), and a re-run of the same pipeline resumes: regions already written and verified
    are kept, the others are recomputed.
    """
    try:
        yield
    except OSError as exc:
        if exc.errno not in _NO_SPACE:
            raise
        raise OSError(
            exc.errno,
            f"disk full while writing the result {p} ({exc.strerror or exc}); it is not marked complete "
            "and is never opened as a result. Free space (or choose an output on a larger disk) and "
            "re-run the same pipeline: it resumes, keeping the regions already written and verified.",
        ) from exc


def _run(tasks: list[Any], progress: bool, desc: str) -> list[Any]:
    from ._progress import progress as show_progress

    if not tasks:
        return []
    persisted = show_progress(tasks, desc=desc, disable=not progress)
    return list(dask.compute(*persisted))


def write_result(
    ds: xr.Dataset,
    path: str | os.PathLike[str],
    *,
    dim: str = "pair",
    region_size: int | None = None,
    overwrite: bool = False,
    resume: bool = True,
    key: str | None = None,
    progress: bool = False,
    max_regions: int | None = None,
) -> WriteReport:
    """Write a (lazy) result Dataset to Zarr region by region; resumable; complete marked last.

    Parameters
    ----------
    ds : xarray.Dataset
        E.g. from :func:`bioxen_dask.coherence`. Variables along ``dim`` are written by one
        task per region; everything else with the template.
    path : path
        Output folder (``.zarr``).
    dim : str
        Region dimension (default ``pair``).
    region_size : int, optional
        Entries of ``dim`` per region (and Zarr chunk); default the Dataset's chunk size.
    overwrite : bool
        Replace an existing result (never a folder that is not one).
    resume : bool
        Continue an interrupted write of the same run (default); verified regions are skipped.
    key : str, optional
        Identity of the run (default :func:`run_key` of ``ds``); an incomplete result with
        another key is never resumed.
    progress : bool
        Show a progress bar (``distributed.progress`` on a cluster, tqdm locally).
    max_regions : int, optional
        Write at most this many regions and stop without completing (for tests of resume).

    Returns
    -------
    WriteReport
    """
    p = Path(path).absolute()  # region tasks may run on workers with another cwd
    key = key or run_key(ds)
    action = check_output(p, overwrite=overwrite, resume=resume, key=key)
    if dim not in ds.dims:
        raise ValueError(f"the Dataset has no dimension {dim!r}.")
    ds, size = _regular(ds, dim, region_size)
    names = _region_vars(ds, dim)
    n = ds.sizes[dim]
    starts = list(range(0, n, size))
    bounds = [(s, min(s + size, n)) for s in starts]
    axes = {name: ds[name].dims.index(dim) for name in names}
    if action == "replace":
        shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    done: set[int] = set()
    resumed = action == "resume"
    if action == "resume":
        group = zarr.open_group(str(p), mode="r+")
        info = _regions_of(group.attrs.asdict())
        if info.get("count") != len(bounds) or info.get("size") != size or info.get("dim") != dim:
            raise OutputExistsError(
                f"output {p} holds an incomplete result with another region layout; pass overwrite=True."
            )
        if CHECKSUMS not in group:  # interrupted while the template was written: no region is in
            shutil.rmtree(p)
            action, resumed = "create", False
        else:
            for k, (a, b) in enumerate(bounds):
                if _region_verified(group, k, a, b, axes):
                    done.add(k)
    if action != "resume":
        template = ds.copy()
        template.attrs = {**ds.attrs, KIND_ATTR: "coherence", RUN_KEY_ATTR: key, COMPLETE_ATTR: False,
                          REGIONS_ATTR: json.dumps({"dim": dim, "size": size, "count": len(bounds)})}
        p.parent.mkdir(parents=True, exist_ok=True)
        with _space_errors(p):
            template.to_zarr(str(p), mode="w", compute=False, encoding=_encoding(ds, dim, size),
                             zarr_format=3, consolidated=False)
            group = zarr.open_group(str(p), mode="r+")
            group.create_array(CHECKSUMS, shape=(len(bounds),), chunks=(1,), dtype="uint64", fill_value=0,
                               dimension_names=("region",))
    todo = [k for k in range(len(bounds)) if k not in done]
    if max_regions is not None:
        todo = todo[: int(max_regions)]
    tasks = [
        dask.delayed(_write_region, pure=False)(
            str(p), k, bounds[k][0], bounds[k][1], axes,
            {name: ds[name].data[tuple(slice(*bounds[k]) if i == axes[name] else slice(None)
                                       for i in range(ds[name].ndim))] for name in names},
        )
        for k in todo
    ]
    with _space_errors(p):
        _run(tasks, progress, desc=f"writing {p.name}")
        written = len(todo)
        if max_regions is None or len(done) + written == len(bounds):
            _finalize(p, len(bounds))
    return WriteReport(p, len(bounds), written, len(done), resumed)


def _finalize(p: Path, count: int) -> None:
    group = zarr.open_group(str(p), mode="r+")
    sums = group[CHECKSUMS][:]
    missing = int((sums == 0).sum())
    if missing:
        raise IncompleteResultError(f"{missing} of {count} regions of {p} were not written; it stays incomplete.")
    info = _regions_of(group.attrs.asdict())
    info["checksums"] = [f"{int(s):016x}" for s in sums]
    group.attrs[REGIONS_ATTR] = json.dumps(info)
    del group[CHECKSUMS]
    consolidate(p)
    group = zarr.open_group(str(p), mode="r+", use_consolidated=True)
    group.attrs[COMPLETE_ATTR] = True  # the very last write


def _checked_axes(p: Path, group: zarr.Group, dim: str) -> dict[str, int]:
    """The region variables (the Dataset's data variables along ``dim``, not its coordinates)
    that a result's checksums cover, and their axis of ``dim``."""
    axes = {}
    for name, arr in group.arrays():
        dims = list(arr.metadata.dimension_names or ())
        if dim in dims:
            axes[name] = dims.index(dim)
    data_vars = xr.open_zarr(str(p), consolidated=True, zarr_format=3).data_vars
    return {k: v for k, v in axes.items() if k in data_vars}


def damaged_regions(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Re-read every region of a complete result; the regions that no longer match the checksums
    recorded when they were written.

    Returns
    -------
    list of dict
        One entry per damaged region: ``region`` (its number), ``dim``, ``start``/``stop``
        (its range along ``dim``) and ``problem`` (the variable whose chunk no longer decodes,
        or that the data differ from the checksum). Empty for an intact result.

    Raises
    ------
    IncompleteResultError
        The result is not complete (it has no recorded checksums to compare with).
    """
    p = Path(path)
    group = zarr.open_group(str(p), mode="r")
    attrs = group.attrs.asdict()
    info = _regions_of(attrs)
    if attrs.get(COMPLETE_ATTR) is not True or "checksums" not in info:
        raise IncompleteResultError(f"result {p} is incomplete: it has no checksums to verify; re-run the "
                                    "pipeline to resume it.")
    dim, size, count = info["dim"], int(info["size"]), int(info["count"])
    axes = _checked_axes(p, group, dim)
    n = next(iter(group[name].shape[axis] for name, axis in axes.items()))
    out = []
    for k, start in enumerate(range(0, n, size)):
        stop = min(start + size, n)
        problem = None
        region = {}
        for name, axis in sorted(axes.items()):
            try:
                region.update(_read_region(group, start, stop, {name: axis}))
            except Exception:  # a chunk that no longer decodes (truncated, overwritten)
                problem = f"{name}: a chunk no longer decodes"
                break
        if problem is None and (k >= len(info["checksums"]) or f"{_checksum(region):016x}" != info["checksums"][k]):
            problem = "the data differ from the checksum recorded when the region was written"
        if problem is not None:
            out.append({"region": k, "dim": dim, "start": start, "stop": stop, "problem": problem})
    if count != len(range(0, n, size)):
        out.append({"region": None, "dim": dim, "start": 0, "stop": n,
                    "problem": f"{count} regions recorded, {len(range(0, n, size))} found"})
    return out


def reopen_for_repair(path: str | os.PathLike[str], regions: list[int]) -> None:
    """Turn a complete result with damaged ``regions`` back into an incomplete one whose other
    regions count as written: a resumed :func:`write_result` of the same run then recomputes
    the damaged regions only. ``complete`` is cleared first, so an interruption leaves a result
    that is never opened as complete (and resumes the same way)."""
    p = Path(path)
    group = zarr.open_group(str(p), mode="r+")
    info = _regions_of(group.attrs.asdict())
    group.attrs[COMPLETE_ATTR] = False  # first: from here on it is not a complete result
    sums = np.array([int(c, 16) for c in info["checksums"]], dtype=np.uint64)
    sums[list(regions)] = 0
    if CHECKSUMS in group:
        del group[CHECKSUMS]
    arr = group.create_array(CHECKSUMS, shape=(len(sums),), chunks=(1,), dtype="uint64", fill_value=0,
                             dimension_names=("region",))
    arr[:] = sums
    consolidate(p)  # the consolidated listing is what a resumed write reads


def verify_result(path: str | os.PathLike[str]) -> bool:
    """Re-read every region of a complete result and compare with the recorded checksums
    (:func:`damaged_regions` names the regions that fail)."""
    p = Path(path)
    attrs = zarr.open_group(str(p), mode="r").attrs.asdict()
    if attrs.get(COMPLETE_ATTR) is not True or "checksums" not in _regions_of(attrs):
        return False
    return not damaged_regions(p)


__all__ += ["damaged_regions", "reopen_for_repair", "verify_result"]
