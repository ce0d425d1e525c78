"""Wiring the kernels into Dask: halo-exact chunked transforms and streaming reductions.

The time axis is split into chunks that carry halos sized from the wavelet's support at the
largest scale (:meth:`ScaleGrid.halo`), built at compute time with
:func:`dask.array.overlap.overlap` on the time axis only (``boundary="none"``: the global
edges get no halo and are handled exactly as the in-memory ``linear``/``symmetric``/``valid``
modes handle them). Each block runs the plain kernels and crops its halo, so a chunked result
equals the unchunked one to the truncation tolerance. Rois are batched per block.

Signals are checked as the in-memory API checks them: their dtype (real, numeric) when the
graph is built, their samples (finite) lazily, block by block, with the roi and frame named.
When the halo of the largest scale makes blocks far larger than :data:`BLOCK_BYTES` (the
default grid's largest scale spans the record, so its halo covers it), a ``UserWarning``
says so and gives the ``J`` that streams. Presets that remove the mean (``grinsted``) compute
each roi's mean when the graph is built, in one streaming pass, so that no block waits for it.

Nothing here does numerics beyond cropping and summing; the kernels do the math.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import partial
from typing import Any, Sequence

import dask.array as da
import numpy as np
import xarray as xr

from . import kernels
from ._labels import grid_coords, result_attrs, time_axis
from ._validation import check_float32_range, check_length, float32_bound, whole_number
from .grid import DEFAULT_TOL, ScaleGrid, make_grid
from .kernels._multirate_cwt import check_method, check_multirate
from .presets import get_preset, resolve_conventions

__all__ = [
    "ChunkPlan",
    "plan_chunks",
    "wavelet_transform_dask",
    "map_time_blocks",
    "global_wavelet_spectrum",
    "band_power",
]

#: Working-memory target of one block (its complex transform plus temporaries).
BLOCK_BYTES = 256 * 2**20


@dataclass(frozen=True)
class ChunkPlan:
    """How a ``(roi, time)`` array is cut for a transform on ``grid``.

    Attributes
    ----------
    roi_chunk : int
        Rois per block.
    time_chunk : int
        Samples per block (without halos); every chunk is at least ``halo`` long.
    halo : int
        Samples of context on each side of a block.
    """

    roi_chunk: int
    time_chunk: int
    halo: int

    def describe(self) -> dict[str, int]:
        return {"roi_chunk": self.roi_chunk, "time_chunk": self.time_chunk, "halo": self.halo}


def plan_chunks(
    n_rois: int,
    n_times: int,
    grid: ScaleGrid,
    *,
    dtype: Any = "float32",
    tol: float = DEFAULT_TOL,
    smoothing: bool = False,
    block_bytes: int = BLOCK_BYTES,
    time_chunk: int | None = None,
    roi_chunk: int | None = None,
) -> ChunkPlan:
    """Choose block sizes so one block's transform fits in ``block_bytes``.

    The halo never shrinks to fit: if a requested ``time_chunk`` is shorter than the halo,
    the chunk is enlarged to the halo (Dask cannot take more context than a neighbouring
    chunk holds), and when the halo covers the record the time axis is one chunk.

    Examples
    --------
    >>> from bioxen_dask.grid import make_grid
    >>> g = make_grid(18000, 1 / 30, J=60)
    >>> p = plan_chunks(1000, 18000, g)
    >>> p.halo <= p.time_chunk <= 18000
    True
    """
    _, cplx = kernels.resolve_dtype(dtype)
    time_chunk = _check_count(time_chunk, "time_chunk", "samples per block, e.g. time_chunk=250_000")
    roi_chunk = _check_count(roi_chunk, "roi_chunk", "rois per block, e.g. roi_chunk=64")
    halo = grid.halo(tol, smoothing=smoothing)
    per_sample = grid.n_scales * cplx.itemsize * (4 if smoothing else 2)  # transform + temporaries
    if time_chunk is None:
        time_chunk = max(4 * halo, int(block_bytes // max(1, per_sample * (roi_chunk or 1))) - 2 * halo)
    time_chunk = int(min(max(time_chunk, halo, 1), n_times))
    if time_chunk + 2 * halo >= n_times:
        time_chunk = n_times  # halos would cover the record: one chunk is cheaper and exact
    if roi_chunk is None:
        width = min(n_times, time_chunk + 2 * halo)
        roi_chunk = max(1, int(block_bytes // max(1, per_sample * width)))
    return ChunkPlan(int(min(roi_chunk, max(n_rois, 1))), time_chunk, 0 if time_chunk == n_times else halo)


def _edges(block_info: dict | None, axis: int) -> tuple[bool, bool]:
    """Whether this block touches the global start / end of ``axis`` of the (first) input."""
    info = block_info[0]
    loc = info["chunk-location"][axis]
    return loc == 0, loc == info["num-chunks"][axis] - 1


def map_time_blocks(
    data: da.Array,
    func,
    *,
    halo: int,
    out_shape_tail: tuple[int, ...],
    dtype: Any,
    reduce_time: bool = False,
) -> da.Array:
    """Apply ``func(block, left, right, at_start, at_end)`` to time-overlapped blocks.

    ``data`` is ``(roi, time)``. Each call receives the block with ``left``/``right`` halo
    samples (zero at the global edges) and returns ``(roi_b, *out_shape_tail, time_b)`` for
    the block's own samples, or ``(roi_b, *out_shape_tail, 1)`` partial sums when
    ``reduce_time`` (summed over blocks by the caller).
    """
    ov = da.overlap.overlap(data, depth={0: 0, 1: halo}, boundary="none") if halo else data
    time_chunks = data.chunks[1]
    n_tail = len(out_shape_tail)

    def block_fn(block: np.ndarray, block_info: dict | None = None) -> np.ndarray:
        at_start, at_end = _edges(block_info, 1)
        left = 0 if (at_start or not halo) else halo
        right = 0 if (at_end or not halo) else halo
        return func(block, left, right, at_start, at_end)

    new_axes = list(range(1, 1 + n_tail))
    out_time = tuple(1 for _ in time_chunks) if reduce_time else time_chunks
    chunks = (data.chunks[0],) + tuple((s,) for s in out_shape_tail) + (out_time,)
    meta = np.empty((0,) * (2 + n_tail), dtype=dtype)
    return ov.map_blocks(block_fn, new_axis=new_axes, chunks=chunks, dtype=dtype, meta=meta)


def _transform_block(
    block: np.ndarray, left: int, right: int, at_start: bool, at_end: bool, *,
    grid: ScaleGrid, boundary: str, tol: float, dtype: Any, remove_mean_value: np.ndarray | None,
    halo: int, method: str = "exact",
) -> np.ndarray:
    """CWT of one overlapped block, cropped to its own samples (linear-convolution exact;
    within the multirate bound with ``method="multirate"``)."""
    x = block if remove_mean_value is None else block - remove_mean_value
    pre = post = 0
    if boundary == "symmetric":
        pre = halo if at_start else 0
        post = halo if at_end else 0
        if pre or post:
            x = np.pad(x, [(0, 0), (pre, post)], mode="symmetric")
    W = kernels.cwt(x, grid, boundary="linear", tol=tol, dtype=dtype, method=method)
    n_own = block.shape[-1] - left - right
    W = W[..., pre + left : pre + left + n_own]
    if boundary == "valid":  # only the record's own edges: a block's inner edges have their halo
        kernels.mask_edges(W, grid.wavelet_support(tol), np, start=at_start, end=at_end)
    return W


# --------------------------------------------------------------------------- input checks
#: Scale-grid keywords the streamed reductions pass on to :func:`bioxen_dask.grid.make_grid`.
GRID_KEYWORDS = ("dj", "s0", "J", "wavelet", "preset", "freqs")


def _check_count(value: Any, name: str, hint: str) -> int | None:
    """``None`` (the planner's choice) or a positive integer (:func:`~bioxen_dask._validation.whole_number`)."""
    return None if value is None else whole_number(value, name, hint=f"{hint}, or leave it unset for the planner's choice")


def _check_grid_keywords(func: str, grid_kw: dict[str, Any]) -> None:
    unknown = sorted(set(grid_kw) - set(GRID_KEYWORDS))
    if unknown:
        hint = ""
        if "boundary" in unknown:
            hint = (" The streamed reductions always use boundary='linear' (exact linear convolution, "
                    "halo-exact across blocks); for another boundary reduce wavelet_transform(...) instead.")
        raise TypeError(
            f"{func}() got unknown option(s) {unknown}; the scale grid takes {list(GRID_KEYWORDS)}, and "
            f"{func} itself dt, dtype, tol, time_chunk and roi_chunk.{hint}"
        )


def _as_roi_time(x: Any) -> tuple[xr.DataArray, bool]:
    """``x`` as a ``(roi, time)`` DataArray, and whether it was 1-D (a single record).

    Plain NumPy/Dask arrays are taken as ``(time,)`` or ``(roi, time)`` (``dt`` must then be
    passed); a 1-D DataArray with a ``time`` dim becomes one roi.
    """
    if not isinstance(x, xr.DataArray):
        ndim = getattr(x, "ndim", None)
        if ndim is None:
            x = np.asarray(x)
            ndim = x.ndim
        if ndim not in (1, 2):
            raise ValueError(
                f"chunked transforms need (roi, time) signals, got an array of shape {getattr(x, 'shape', '?')}; "
                "pass a 1-D record or a 2-D (roi, time) array, or stack extra dims into 'roi'."
            )
        x = xr.DataArray(x, dims=("roi", "time")[2 - ndim:])
    if "time" not in x.dims or x.ndim not in (1, 2):
        raise ValueError(
            f"chunked transforms need a 2-D (roi, time) DataArray, got dims {x.dims}; "
            "use bioxen_dask.open_signals(...) or stack extra dims into 'roi'."
        )
    if x.ndim == 1:
        return x.expand_dims("roi"), True
    return x.transpose(..., "time"), False


def _signal_data(x: xr.DataArray, dtype: Any, grid: ScaleGrid) -> da.Array:
    """The Dask array of real signals, float64 when they are integer/boolean (as in memory).

    Its dtype is checked now; finiteness (and, in float32, a magnitude whose wavelet power
    fits: :func:`bioxen_dask._validation.float32_bound`) is checked lazily, block by block, so
    nothing is read before the computation (:func:`_check_finite_block`).
    """

    data = x.data if isinstance(x.data, da.Array) else da.from_array(np.asarray(x.data))
    dt = data.dtype
    if dt == object or not (np.issubdtype(dt, np.number) or dt == bool):
        raise ValueError(f"the signals must be numeric, got dtype {dt}; convert them with .astype('float32').")
    if np.issubdtype(dt, np.complexfloating):
        raise ValueError(f"the signals must be real-valued, got complex dtype {dt}; pass x.real or abs(x).")
    if not np.issubdtype(dt, np.floating):
        data = data.astype(np.float64)
    return data.map_blocks(_check_finite_block, bound=float32_bound(dtype, grid), dtype=data.dtype,
                           meta=np.empty((0, 0), dtype=data.dtype))


def _check_finite_block(block: np.ndarray, block_info: dict | None = None, bound: float | None = None
                        ) -> np.ndarray:
    """Raise, naming roi position and frame, if this block holds NaN or infinite samples (or,
    with ``bound``, values whose float32 wavelet power would overflow)."""

    bad = ~np.isfinite(block)
    if bad.any():
        r, t = np.unravel_index(int(np.argmax(bad)), block.shape)
        loc = block_info[0]["array-location"] if block_info else ((0, 0), (0, 0))
        raise ValueError(
            f"the signals contain non-finite samples ({int(bad.sum())} NaN/inf in this block): roi "
            f"position {loc[0][0] + r}, frame {loc[1][0] + t} holds {block[r, t]!r}. Wavelet transforms need "
            "finite samples: interpolate short gaps (bioxen_dask.kernels.fill_gaps), exclude the roi, or "
            "cut the record before the transform."
        )
    if bound is not None:
        check_float32_range(block, "float32", None, "a signal", bound=bound)  # type: ignore[arg-type]
    return block


def _demean(data: da.Array) -> da.Array:
    """``data`` minus each roi's mean over the whole record (presets that remove the mean).

    The means are computed *now*, in one streaming pass (per-block partial sums, on the active
    scheduler), and subtracted as numbers. A lazy mean would make every block of the transform
    wait for it, and Dask would keep the record's input blocks in memory meanwhile (memory
    growing with the record). The input is read once more instead.
    """
    means = np.asarray(data.mean(axis=1, keepdims=True).compute())
    return data - da.from_array(means, chunks=(data.chunks[0], (1,)))


def _warn_if_oversized(func: str, plan: ChunkPlan, grid: ScaleGrid, n: int, *, dtype: Any, tol: float,
                       requested: int | None, block_bytes: int = BLOCK_BYTES, stacklevel: int = 3) -> None:
    """Warn when the halo (not the caller) forces blocks far beyond their memory budget."""
    _, cplx = kernels.resolve_dtype(dtype)
    width = min(n, plan.time_chunk + 2 * plan.halo)
    nbytes = plan.roi_chunk * width * grid.n_scales * cplx.itemsize * 2
    if nbytes <= block_bytes or (requested is not None and requested >= plan.time_chunk):
        return
    halo = grid.halo(tol)
    fix = "pass a larger tol or fewer, smaller scales"
    s = grid.scales
    if np.allclose(np.log2(s / s[0]), np.arange(len(s)) * grid.dj, rtol=0, atol=1e-9):  # an s0/J grid
        halos = grid.wavelet_support(tol)
        for J in range(grid.n_scales - 2, -1, -1):  # the plan_chunks rule, for the grid cut at J
            h, per_sample = int(halos[J]), (J + 1) * cplx.itemsize * 2
            tc = min(max(4 * h, int(block_bytes // per_sample) - 2 * h, h, 1), n)
            if tc + 2 * h < n and (tc + 2 * h) * per_sample <= block_bytes:
                fix = (f"cap the largest scale with J={J} (largest period {float(grid.periods[J]):.4g}, halo "
                       f"{h} samples), or pass a larger tol")
                break
    warnings.warn(
        f"{func}: the largest scale (period {float(grid.periods[-1]):.4g}) needs a halo of {halo} samples on each "
        f"side of a block, so each block spans {width} samples"
        f"{' (the whole record)' if width == n else ''} and holds {nbytes / 1e9:.3g} GB of transform (budget "
        f"{block_bytes / 2**20:.0f} MiB): memory grows with the record. To stream it, {fix}.",
        UserWarning, stacklevel=stacklevel,
    )


# --------------------------------------------------------------------------- the transform
def wavelet_transform_dask(
    x: Any,
    dt: float,
    *,
    dj: float = 1 / 12,
    s0: float | None = None,
    J: int | None = None,
    wavelet: Any = "morlet",
    preset: str | None = None,
    boundary: str | None = None,
    dtype: str = "float32",
    tol: float = DEFAULT_TOL,
    time_chunk: int | None = None,
    roi_chunk: int | None = None,
    method: str = "exact",
) -> xr.DataArray:
    """Lazy, chunked CWT of Dask-backed ``(roi, time)`` signals.

    :func:`bioxen_dask.wavelet_transform` dispatches here for Dask-backed DataArrays.
    ``linear``, ``symmetric`` and ``valid`` are computed blockwise with halos and equal the
    in-memory transform to rounding; ``circular``, ``pycwt`` and ``grinsted`` wrap around the
    whole record, so the time axis is first gathered into one chunk (memory grows with the
    record length). With a preset that removes the mean, the per-roi means are computed in
    this call (one streaming pass over the input).

    Parameters
    ----------
    x : xarray.DataArray ``(roi, time)`` or ``(time,)``, or a NumPy/Dask array
        Real, finite signals (integers and booleans are transformed as float64). NaN or
        infinite samples raise when the block holding them is computed.
    dt : float
        Sampling interval.
    dj, s0, J, wavelet, preset
        The scale grid and conventions, as :func:`bioxen_dask.wavelet_transform`.
    boundary : {"linear", "symmetric", "valid", "circular", "pycwt", "grinsted"}, optional
        Edge handling (see :func:`bioxen_dask.kernels.cwt`); default: the named preset's own,
        else ``linear`` (:func:`bioxen_dask.presets.resolve_conventions`).
    dtype : {"float32", "float64"}
        Working precision.
    tol : float
        Wavelet truncation tolerance: sets the halo (:meth:`ScaleGrid.halo`).
    time_chunk, roi_chunk : int, optional
        Block sizes (samples, rois); by default chosen by :func:`plan_chunks`. A time chunk
        shorter than the halo is enlarged to it.
    method : {"exact", "multirate"}
        As :func:`bioxen_dask.wavelet_transform`. ``"multirate"`` transforms each block with
        its halo on decimated copies, so the chunked result is within the multirate bound
        (1e-6 of each scale's largest coefficient) of the exact in-memory transform rather
        than equal to rounding (the strides follow each block's length).

    Returns
    -------
    xarray.DataArray
        Lazy complex ``wavelet`` ``(roi, period, time)`` (``(period, time)`` for a 1-D
        record); attrs record the plan (``roi_chunk``, ``time_chunk``, ``halo``).

    Warns
    -----
    UserWarning
        When the halo of the largest scale forces blocks far beyond :data:`BLOCK_BYTES`
        (the message gives the ``J`` that streams).

    Examples
    --------
    >>> import dask.array as da, numpy as np, xarray as xr
    >>> x = np.random.default_rng(0).standard_normal((2, 4000))
    >>> sig = xr.DataArray(da.from_array(x, chunks=(1, 1000)), dims=("roi", "time"))
    >>> W = wavelet_transform_dask(sig, 1.0, dj=0.25, J=16, dtype="float64", time_chunk=500)
    >>> W.dims, W.attrs["halo"], len(W.data.chunks[2]) > 1
    (('roi', 'period', 'time'), 211, True)
    >>> from bioxen_dask import wavelet_transform
    >>> ref = wavelet_transform(x, dt=1.0, dj=0.25, J=16, dtype="float64")
    >>> bool(np.abs(W.values - ref.values).max() < 1e-12 * np.abs(ref.values).max())
    True
    """
    p, boundary = resolve_conventions(preset, boundary)
    method = check_method(method, "bioxen", dtype, boundary)
    x, squeeze = _as_roi_time(x)
    roi_chunk = _check_count(roi_chunk, "roi_chunk", "rois per block, e.g. roi_chunk=64")
    time_chunk = _check_count(time_chunk, "time_chunk", "samples per block, e.g. time_chunk=250_000")
    n_rois, n = x.shape
    grid = make_grid(n, dt, dj=dj, s0=s0, J=J, wavelet=wavelet, preset=p)
    if method == "multirate":
        check_multirate(boundary, grid.wavelet)
    check_length(n, grid)
    data = _signal_data(x, dtype, grid)
    _, cplx = kernels.resolve_dtype(dtype)
    if boundary in ("circular", "pycwt", "grinsted"):
        plan = ChunkPlan(roi_chunk or max(1, data.chunksize[0]), n, 0)
    else:
        plan = plan_chunks(n_rois, n, grid, dtype=dtype, tol=tol, time_chunk=time_chunk, roi_chunk=roi_chunk)
        _warn_if_oversized("wavelet_transform_dask", plan, grid, n, dtype=dtype, tol=tol, requested=time_chunk)
    data = data.rechunk({0: plan.roi_chunk, 1: regular_chunks(n, plan.time_chunk, plan.halo)})
    if p.remove_mean:
        data = _demean(data)
    if plan.halo == 0 or boundary in ("circular", "pycwt", "grinsted"):
        W = data.map_blocks(
            partial(_whole_record_cwt, grid=grid, boundary=boundary, tol=tol, dtype=dtype, method=method),
            new_axis=[1], chunks=(data.chunks[0], (grid.n_scales,), data.chunks[1]), dtype=cplx,
            meta=np.empty((0, 0, 0), dtype=cplx),
        )
    else:
        fn = partial(_transform_block, grid=grid, boundary=boundary, tol=tol, dtype=dtype,
                     remove_mean_value=None, halo=plan.halo, method=method)
        W = map_time_blocks(data, fn, halo=plan.halo, out_shape_tail=(grid.n_scales,), dtype=cplx)
    roi_dim = x.dims[0]
    coords: dict[str, Any] = dict(grid_coords(grid))
    coords["time"] = ("time", np.asarray(x["time"]) if "time" in x.coords else np.arange(n) * dt, {"units": "s"})
    coords["coi"] = ("time", grid.coi(n, p.coi), {"long_name": "cone of influence (period)", "units": "s"})
    for k, v in x.coords.items():
        if v.dims == (roi_dim,):
            coords[k] = v
    out = xr.DataArray(
        W, dims=(roi_dim, "period", "time"), coords=coords, name="wavelet",
        attrs=result_attrs(grid, preset=p.name, boundary=boundary, dtype=str(dtype), tol=tol, method=method,
                     long_name="continuous wavelet transform", **plan.describe()),
    )
    return out.isel({roi_dim: 0}, drop=True) if squeeze else out


def _whole_record_cwt(block: np.ndarray, *, grid: ScaleGrid, boundary: str, tol: float, dtype: Any,
                      method: str = "exact") -> np.ndarray:
    """CWT of a block that holds whole records (time in one chunk)."""
    return kernels.cwt(block, grid, boundary=boundary, tol=tol, dtype=dtype, method=method)


def regular_chunks(n: int, size: int, min_last: int = 1) -> tuple[int, ...]:
    """Equal chunks of at least ``size`` with a last chunk no larger than the others (Zarr's
    regular grid) and no shorter than ``min_last`` (a halo must fit in a neighbour)."""
    if size >= n:
        return (n,)
    for k in range(n // size, 0, -1):
        c = -(-n // k)
        last = n - (k - 1) * c
        if last >= max(1, min_last):
            return (c,) * (k - 1) + (last,)
    return (n,)  # pragma: no cover - k == 1 always returns



# --------------------------------------------------------------------------- streamed reductions
def _prepare(func: str, signals: Any, dt: float | None, *, dtype: Any, tol: float, time_chunk: Any,
             roi_chunk: Any, grid_kw: dict[str, Any]):
    """Checks and plan shared by the streamed reductions."""

    _check_grid_keywords(func, grid_kw)
    time_chunk = _check_count(time_chunk, "time_chunk", "samples per block, e.g. time_chunk=250_000")
    roi_chunk = _check_count(roi_chunk, "roi_chunk", "rois per block, e.g. roi_chunk=64")
    x, squeeze = _as_roi_time(signals)
    _, dt, _, _ = time_axis(x, dt)
    p = get_preset(grid_kw.get("preset", "pycwt"))
    n_rois, n = x.shape
    grid = make_grid(n, dt, **grid_kw)
    check_length(n, grid)
    data = _signal_data(x, dtype, grid)
    plan = plan_chunks(n_rois, n, grid, dtype=dtype, tol=tol, time_chunk=time_chunk, roi_chunk=roi_chunk)
    _warn_if_oversized(func, plan, grid, n, dtype=dtype, tol=tol, requested=time_chunk, stacklevel=4)
    data = data.rechunk({0: plan.roi_chunk, 1: regular_chunks(n, plan.time_chunk, plan.halo)})
    if p.remove_mean:
        data = _demean(data)
    return x, squeeze, dt, p, grid, plan, data


def _coi_slice(grid: ScaleGrid, n: int, t0: int, length: int, convention: str) -> np.ndarray:
    """``grid.coi(n, convention)[t0:t0 + length]``, without building the record-long COI."""
    return grid.coi(n, convention, start=t0, stop=t0 + length)


def global_wavelet_spectrum(
    signals: Any,
    dt: float | None = None,
    *,
    outside_coi: bool = True,
    dtype: str = "float32",
    tol: float = DEFAULT_TOL,
    time_chunk: int | None = None,
    roi_chunk: int | None = None,
    **grid_kw: Any,
) -> xr.DataArray:
    """Time-averaged wavelet power ``mean_t |W|**2`` per roi and period, streamed.

    Each block transforms its rois on its time span (with halos, ``boundary="linear"``),
    sums ``|W|**2`` over its own samples (outside the COI when ``outside_coi``) and returns
    only those sums, so the full transform never exists in memory. Equals
    ``(abs(W)**2).where(W.period <= W.coi).mean("time")`` of the in-memory
    :func:`bioxen_dask.wavelet_transform` (same preset: mean removal and COI convention) to
    rounding; NaN at periods with no sample outside the COI.

    Parameters
    ----------
    signals : xarray.DataArray ``(roi, time)`` or ``(time,)``, or a NumPy/Dask array
        Real, finite signals, Dask-backed or in memory. NaN or infinite samples raise when
        their block is computed.
    dt : float, optional
        Sampling interval (from the time coordinate or ``fs`` attr when omitted).
    outside_coi : bool
        Average only the coefficients outside the cone of influence (default), or all.
    dtype : {"float32", "float64"}
        Working precision of the transform (the sums are float64).
    tol : float
        Wavelet truncation tolerance: sets the halo.
    time_chunk, roi_chunk : int, optional
        Block sizes; by default chosen by :func:`plan_chunks`.
    **grid_kw
        ``dj``, ``s0``, ``J``, ``wavelet``, ``preset``, ``freqs``
        (:func:`bioxen_dask.grid.make_grid`). With the default ``J`` the largest scale spans
        the record, whose halo makes the record one block: cap ``J`` for long records.

    Returns
    -------
    xarray.DataArray ``(roi, period)`` named ``global_wavelet_spectrum`` (lazy); ``(period,)``
    for a 1-D record. attrs record the grid and the plan.

    Warns
    -----
    UserWarning
        When the halo of the largest scale forces blocks far beyond :data:`BLOCK_BYTES`.

    Examples
    --------
    >>> import dask.array as da, numpy as np, xarray as xr
    >>> t = np.arange(20000)
    >>> x = np.sin(2 * np.pi * t / 50) + np.random.default_rng(0).standard_normal((2, t.size))
    >>> sig = xr.DataArray(da.from_array(x, chunks=(1, 5000)), dims=("roi", "time"))
    >>> gws = global_wavelet_spectrum(sig, dt=1.0, dj=0.25, J=24, time_chunk=4000)
    >>> gws.dims, gws.attrs["time_chunk"], gws.attrs["halo"]
    (('roi', 'period'), 4000, 841)
    >>> [round(float(p), 1) for p in gws.idxmax("period").values]  # grid period nearest the sine's 50
    [53.8, 53.8]
    """
    x, squeeze, dt, p, grid, plan, data = _prepare(
        "global_wavelet_spectrum", signals, dt, dtype=dtype, tol=tol, time_chunk=time_chunk,
        roi_chunk=roi_chunk, grid_kw=grid_kw)
    n_rois, n = x.shape
    starts = np.cumsum((0,) + data.chunks[1][:-1])

    def outside_mask(t0: int, length: int) -> np.ndarray:
        """COI mask of samples [t0, t0+length), computed per block (never for the whole record)."""
        if not outside_coi:
            return np.ones((grid.n_scales, length), bool)
        return grid.periods[:, None] <= _coi_slice(grid, n, t0, length, p.coi)[None, :]

    def reduce_block(block: np.ndarray, block_info: dict | None = None) -> np.ndarray:
        at_start, at_end = _edges(block_info, 1)
        left = 0 if (at_start or not plan.halo) else plan.halo
        right = 0 if (at_end or not plan.halo) else plan.halo
        W = _transform_block(block, left, right, at_start, at_end, grid=grid, boundary="linear",
                             tol=tol, dtype=dtype, remove_mean_value=None, halo=plan.halo)
        t0 = int(starts[block_info[0]["chunk-location"][1]])
        mask = outside_mask(t0, W.shape[-1])
        power = (W.real**2 + W.imag**2) * mask
        return np.stack([power.sum(axis=-1, dtype=np.float64),
                         np.broadcast_to(mask.sum(axis=-1), power.shape[:-1]).astype(np.float64)], axis=-1)

    ov = da.overlap.overlap(data, depth={0: 0, 1: plan.halo}, boundary="none") if plan.halo else data
    sums = ov.map_blocks(
        reduce_block, new_axis=[1], dtype=np.float64,
        chunks=(data.chunks[0], (grid.n_scales,), tuple(2 for _ in data.chunks[1])),
        meta=np.empty((0, 0, 0)),
    )
    total = sums.reshape(n_rois, grid.n_scales, -1, 2).sum(axis=2) if len(data.chunks[1]) > 1 else sums
    counts = total[..., 1]
    gws = total[..., 0] / da.where(counts > 0, counts, np.nan)
    out = _label_roi_period(x, grid, gws, "global_wavelet_spectrum",
                            "time-averaged wavelet power" + (" outside the COI" if outside_coi else ""))
    out.attrs.update(plan.describe(), preset=p.name, outside_coi=int(outside_coi), tol=tol, dtype=str(dtype))
    return out.isel({x.dims[0]: 0}, drop=True) if squeeze else out


def _check_bands(bands: Any) -> list[tuple[float, float]]:
    example = "e.g. bands=[(0.5, 1.0), (2.0, 8.0)]"
    try:
        pairs = [tuple(b) for b in bands]
    except TypeError:
        raise ValueError(f"bands must be a sequence of (pmin, pmax) pairs of periods, got {bands!r}; "
                         f"{example} (one band: [(pmin, pmax)]).") from None
    if not pairs:
        raise ValueError(f"bands must hold at least one (pmin, pmax) pair; {example}.")
    out = []
    for b, pair in enumerate(pairs):
        if len(pair) != 2:
            raise ValueError(f"band {b} is {pair!r}; bands are (pmin, pmax) pairs of periods, {example}.")
        try:
            lo, hi = float(pair[0]), float(pair[1])
        except (TypeError, ValueError):
            raise ValueError(f"band {b} ({pair!r}) must hold two positive finite periods; {example}.") from None
        if not (np.isfinite(lo) and np.isfinite(hi) and lo > 0 and hi > 0):
            raise ValueError(f"band {b} ({pair!r}) must hold two positive finite periods; {example}.")
        if lo > hi:
            raise ValueError(f"band {b} ({lo:g}, {hi:g}) needs pmin <= pmax; write it as ({hi:g}, {lo:g}).")
        out.append((lo, hi))
    return out


def band_power(
    signals: Any,
    bands: Sequence[tuple[float, float]],
    dt: float | None = None,
    *,
    dtype: str = "float32",
    tol: float = DEFAULT_TOL,
    time_chunk: int | None = None,
    roi_chunk: int | None = None,
    **grid_kw: Any,
) -> xr.DataArray:
    """Scale-averaged wavelet power time series per period band, streamed.

    Torrence & Compo (1998) eq. 24: ``dj*dt/C_delta * sum_j |W_j|**2 / s_j`` over the scales
    whose period lies in ``[pmin, pmax]`` (``boundary="linear"``, the preset's mean
    removal). Memory per block is one block's transform; the output is
    ``(roi, band, time)``, small next to the transform.

    Parameters
    ----------
    signals : xarray.DataArray ``(roi, time)`` or ``(time,)``, or a NumPy/Dask array
        Real, finite signals, Dask-backed or in memory. NaN or infinite samples raise when
        their block is computed.
    bands : sequence of (pmin, pmax)
        Period bands in seconds, ``0 < pmin <= pmax``; each must contain a scale of the grid.
    dt : float, optional
        Sampling interval (from the time coordinate or ``fs`` attr when omitted).
    dtype : {"float32", "float64"}
        Working precision (also of the output).
    tol : float
        Wavelet truncation tolerance: sets the halo.
    time_chunk, roi_chunk : int, optional
        Block sizes; by default chosen by :func:`plan_chunks`.
    **grid_kw
        ``dj``, ``s0``, ``J``, ``wavelet``, ``preset``, ``freqs``
        (:func:`bioxen_dask.grid.make_grid`); the wavelet needs a known ``C_delta``
        (Morlet(6), Paul(4), DOG(2), DOG(6)). Cap ``J`` for long records (see
        :func:`global_wavelet_spectrum`).

    Returns
    -------
    xarray.DataArray ``(roi, band, time)`` named ``band_power`` (lazy); ``(band, time)`` for
    a 1-D record.

    Warns
    -----
    UserWarning
        When the halo of the largest scale forces blocks far beyond :data:`BLOCK_BYTES`.

    Examples
    --------
    >>> import dask.array as da, numpy as np, xarray as xr
    >>> x = np.random.default_rng(0).standard_normal((1, 40000)).astype("float32")
    >>> sig = xr.DataArray(da.from_array(x, chunks=(1, 10000)), dims=("roi", "time"))
    >>> bp = band_power(sig, [(4.0, 16.0)], dt=1.0, dj=0.25, J=23, time_chunk=8000)
    >>> bp.dims, bp.shape
    (('roi', 'band', 'time'), (1, 1, 40000))
    >>> from bioxen_dask.grid import make_grid  # white noise: E|W|^2 = 1 at every scale
    >>> g = make_grid(40000, 1.0, dj=0.25, J=23)
    >>> in_band = (g.periods >= 4.0) & (g.periods <= 16.0)
    >>> expected = 0.25 * 1.0 / 0.776 * np.sum(1 / g.scales[in_band])  # eq. 24 of E|W|^2 = 1
    >>> print(round(float(bp.mean()) / expected, 1))
    1.0
    """
    x, squeeze, dt, p, grid, plan, data = _prepare(
        "band_power", signals, dt, dtype=dtype, tol=tol, time_chunk=time_chunk, roi_chunk=roi_chunk,
        grid_kw=grid_kw)
    bands = _check_bands(bands)
    cdelta = grid.wavelet.cdelta
    if cdelta is None:
        raise ValueError(f"the reconstruction factor C_delta is unknown for {grid.wavelet!r}; use Morlet(6), "
                         "Paul(4), DOG(2) or DOG(6).")
    periods = grid.periods
    weights = np.zeros((len(bands), grid.n_scales))
    for b, (lo, hi) in enumerate(bands):
        sel = (periods >= lo) & (periods <= hi)
        if not sel.any():
            raise ValueError(
                f"band {b} ({lo:g}-{hi:g} s) contains no scale of the grid (periods "
                f"{periods[0]:.3g}-{periods[-1]:.3g} s); widen it or refine dj."
            )
        weights[b, sel] = grid.dj * grid.dt / cdelta / grid.scales[sel]
    real, _ = kernels.resolve_dtype(dtype)
    w = weights.astype(real)

    def fn(block, left, right, at_start, at_end):
        W = _transform_block(block, left, right, at_start, at_end, grid=grid, boundary="linear",
                             tol=tol, dtype=dtype, remove_mean_value=None, halo=plan.halo)
        return np.einsum("bj,rjt->rbt", w, (W.real**2 + W.imag**2))

    out = map_time_blocks(data, fn, halo=plan.halo, out_shape_tail=(len(bands),), dtype=real)
    roi_dim = x.dims[0]
    coords = {k: v for k, v in x.coords.items() if v.dims in ((roi_dim,), ("time",))}
    coords["band_min_period"] = ("band", [lo for lo, _ in bands], {"units": "s"})
    coords["band_max_period"] = ("band", [hi for _, hi in bands], {"units": "s"})
    # No time coordinate is invented when the input has none: at 1e9 samples it alone would
    # take 8 GB. Time is ``arange(n) * dt`` (``dt`` in attrs).
    res = xr.DataArray(out, dims=(roi_dim, "band", "time"), coords=coords, name="band_power",
                       attrs={"long_name": "scale-averaged wavelet power (Torrence & Compo eq. 24)",
                              **grid.describe(), **plan.describe(), "wavelet": grid.wavelet.name,
                              "preset": p.name, "tol": tol, "dtype": str(dtype)})
    return res.isel({roi_dim: 0}, drop=True) if squeeze else res


def _label_roi_period(x: xr.DataArray, grid: ScaleGrid, values: da.Array, name: str, long_name: str) -> xr.DataArray:

    roi_dim = x.dims[0]
    coords: dict[str, Any] = dict(grid_coords(grid))
    coords.update({k: v for k, v in x.coords.items() if v.dims == (roi_dim,)})
    return xr.DataArray(values, dims=(roi_dim, "period"), coords=coords, name=name,
                        attrs={"long_name": long_name, **grid.describe(), "wavelet": grid.wavelet.name})
