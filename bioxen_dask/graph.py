"""Wiring the kernels into Dask: halo-exact chunked transforms and streaming reductions.

The time axis is split into chunks that carry halos sized from the wavelet's support at the
largest scale (:meth:`ScaleGrid.halo`), built at compute time with
:func:`dask.array.overlap.overlap` on the time axis only (``boundary="none"``: the global
edges get no halo and are handled exactly as the in-memory ``linear``/``symmetric``/``valid``
modes handle them). Each block runs the plain kernels and crops its halo, so a chunked result
equals the unchunked one to the truncation tolerance. Rois are batched per block.

Nothing here does numerics beyond cropping and summing; the kernels do the math.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import dask.array as da
import numpy as np
import xarray as xr

from . import kernels
from .grid import DEFAULT_TOL, ScaleGrid, make_grid
from .kernels._plan import check_boundary
from .presets import get_preset

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
    halo: int,
) -> np.ndarray:
    """CWT of one overlapped block, cropped to its own samples (linear-convolution exact)."""
    x = block if remove_mean_value is None else block - remove_mean_value
    pre = post = 0
    if boundary == "symmetric":
        pre = halo if at_start else 0
        post = halo if at_end else 0
        if pre or post:
            x = np.pad(x, [(0, 0), (pre, post)], mode="symmetric")
    W = kernels.cwt(x, grid, boundary="linear", tol=tol, dtype=dtype)
    n_own = block.shape[-1] - left - right
    W = W[..., pre + left : pre + left + n_own]
    if boundary == "valid":
        supports = grid.wavelet_support(tol)
        for j, h in enumerate(supports):
            if at_start:
                W[..., j, : min(int(h), n_own)] = np.nan
            if at_end:
                # samples of this block closer than h to the global end
                W[..., j, max(0, n_own - int(h)) :] = np.nan
    return W


def _as_roi_time(x: xr.DataArray) -> xr.DataArray:
    if "time" not in x.dims or x.ndim != 2:
        raise ValueError(
            f"chunked transforms need a 2-D (roi, time) DataArray, got dims {x.dims}; "
            "use bioxen_dask.open_signals(...) or stack extra dims into 'roi'."
        )
    return x.transpose(..., "time")


def wavelet_transform_dask(
    x: xr.DataArray,
    dt: float,
    *,
    dj: float = 1 / 12,
    s0: float | None = None,
    J: int | None = None,
    wavelet: Any = "morlet",
    preset: str = "pycwt",
    boundary: str = "linear",
    dtype: str = "float32",
    tol: float = DEFAULT_TOL,
    time_chunk: int | None = None,
    roi_chunk: int | None = None,
) -> xr.DataArray:
    """Lazy, chunked CWT of a Dask-backed ``(roi, time)`` DataArray (see
    :func:`bioxen_dask.wavelet_transform`, which dispatches here).

    ``linear``, ``symmetric`` and ``valid`` are computed blockwise with halos and equal the
    in-memory transform; ``circular`` and ``pycwt`` wrap around the whole record, so the time
    axis is first gathered into one chunk (memory grows with the record length).

    Returns
    -------
    xarray.DataArray
        Lazy complex ``wavelet`` ``(roi, period, time)``.
    """
    from ._api import _attrs, grid_coords

    boundary = check_boundary(boundary)
    p = get_preset(preset)
    x = _as_roi_time(x)
    n_rois, n = x.shape
    grid = make_grid(n, dt, dj=dj, s0=s0, J=J, wavelet=wavelet, preset=p)
    from ._validation import check_length

    check_length(n, grid)
    data = x.data if isinstance(x.data, da.Array) else da.from_array(x.data)
    mean = None
    if p.remove_mean:
        mean = data.mean(axis=1, keepdims=True)
    _, cplx = kernels.resolve_dtype(dtype)
    if boundary in ("circular", "pycwt", "grinsted"):
        plan = ChunkPlan(roi_chunk or max(1, data.chunksize[0]), n, 0)
    else:
        plan = plan_chunks(n_rois, n, grid, dtype=dtype, tol=tol, time_chunk=time_chunk, roi_chunk=roi_chunk)
    data = data.rechunk({0: plan.roi_chunk, 1: _regular_chunks(n, plan.time_chunk, plan.halo)})
    if mean is not None:
        data = data - mean.rechunk({0: plan.roi_chunk})
    if plan.halo == 0 or boundary in ("circular", "pycwt", "grinsted"):
        from functools import partial

        W = data.map_blocks(
            partial(_whole_record_cwt, grid=grid, boundary=boundary, tol=tol, dtype=dtype),
            new_axis=[1], chunks=(data.chunks[0], (grid.n_scales,), data.chunks[1]), dtype=cplx,
            meta=np.empty((0, 0, 0), dtype=cplx),
        )
    else:
        from functools import partial

        fn = partial(_transform_block, grid=grid, boundary=boundary, tol=tol, dtype=dtype,
                     remove_mean_value=None, halo=plan.halo)
        W = map_time_blocks(data, fn, halo=plan.halo, out_shape_tail=(grid.n_scales,), dtype=cplx)
    roi_dim = x.dims[0]
    coords: dict[str, Any] = dict(grid_coords(grid))
    coords["time"] = ("time", np.asarray(x["time"]) if "time" in x.coords else np.arange(n) * dt, {"units": "s"})
    coords["coi"] = ("time", grid.coi(n, p.coi), {"long_name": "cone of influence (period)", "units": "s"})
    for k, v in x.coords.items():
        if v.dims == (roi_dim,):
            coords[k] = v
    return xr.DataArray(
        W, dims=(roi_dim, "period", "time"), coords=coords, name="wavelet",
        attrs=_attrs(grid, preset=p.name, boundary=boundary, dtype=str(dtype), tol=tol,
                     long_name="continuous wavelet transform", **plan.describe()),
    )


def _whole_record_cwt(block: np.ndarray, *, grid: ScaleGrid, boundary: str, tol: float, dtype: Any) -> np.ndarray:
    """CWT of a block that holds whole records (time in one chunk)."""
    return kernels.cwt(block, grid, boundary=boundary, tol=tol, dtype=dtype)


def _regular_chunks(n: int, size: int, min_last: int = 1) -> tuple[int, ...]:
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


def _grid_for(x: xr.DataArray, dt: float | None, **grid_kw: Any) -> tuple[xr.DataArray, float, ScaleGrid]:
    from ._api import _time_axis

    x = _as_roi_time(x)
    _, dt, _, _ = _time_axis(x, dt)
    return x, dt, make_grid(x.sizes["time"], dt, **grid_kw)


def global_wavelet_spectrum(
    signals: xr.DataArray,
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

    Each block transforms its rois on its time span (with halos), sums ``|W|**2`` over its
    own samples (outside the COI when ``outside_coi``) and returns only those sums, so the
    full transform never exists in memory.

    Returns
    -------
    xarray.DataArray ``(roi, period)`` named ``global_wavelet_spectrum`` (lazy).
    """
    x, dt, grid = _grid_for(signals, dt, **grid_kw)
    n_rois, n = x.shape
    plan = plan_chunks(n_rois, n, grid, dtype=dtype, tol=tol, time_chunk=time_chunk, roi_chunk=roi_chunk)
    data = _dask_data(x).rechunk({0: plan.roi_chunk, 1: _regular_chunks(n, plan.time_chunk, plan.halo)})
    starts = np.cumsum((0,) + data.chunks[1][:-1])
    coi_per_sample = grid.wavelet.fourier_factor * grid.wavelet.coi_factor * grid.dt

    def outside_mask(t0: int, length: int) -> np.ndarray:
        """COI mask of samples [t0, t0+length), computed per block (never for the whole record)."""
        if not outside_coi:
            return np.ones((grid.n_scales, length), bool)
        i = np.arange(t0, t0 + length)
        coi = coi_per_sample * (n / 2 - np.abs(i - (n - 1) / 2))
        return grid.periods[:, None] <= coi[None, :]

    def reduce_block(block: np.ndarray, block_info: dict | None = None) -> np.ndarray:
        at_start, at_end = _edges(block_info, 1)
        left = 0 if (at_start or not plan.halo) else plan.halo
        right = 0 if (at_end or not plan.halo) else plan.halo
        W = _transform_block(block, left, right, at_start, at_end, grid=grid, boundary="linear",
                             tol=tol, dtype=dtype, remove_mean_value=None, halo=plan.halo)
        t0 = int(starts[block_info[0]["chunk-location"][1]])
        mask = outside_mask(t0, W.shape[-1])
        power = (W.real**2 + W.imag**2) * mask
        return np.stack([power.sum(axis=-1), np.broadcast_to(mask.sum(axis=-1), power.shape[:-1])], axis=-1)

    ov = da.overlap.overlap(data, depth={0: 0, 1: plan.halo}, boundary="none") if plan.halo else data
    sums = ov.map_blocks(
        reduce_block, new_axis=[1], dtype=np.float64,
        chunks=(data.chunks[0], (grid.n_scales,), tuple(2 for _ in data.chunks[1])),
        meta=np.empty((0, 0, 0)),
    )
    total = sums.reshape(n_rois, grid.n_scales, -1, 2).sum(axis=2) if len(data.chunks[1]) > 1 else sums
    with np.errstate(invalid="ignore", divide="ignore"):
        gws = total[..., 0] / total[..., 1]
    return _label_roi_period(x, grid, gws, "global_wavelet_spectrum",
                             "time-averaged wavelet power" + (" outside the COI" if outside_coi else ""))


def band_power(
    signals: xr.DataArray,
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
    whose period lies in ``[pmin, pmax]``. Memory per block is one block's transform; the
    output is ``(roi, band, time)``, small next to the transform.

    Parameters
    ----------
    signals : xarray.DataArray ``(roi, time)``, Dask-backed or in memory
    bands : sequence of (pmin, pmax)
        Period bands in seconds.
    dt : float, optional
        Sampling interval (from the time coordinate or ``fs`` attr when omitted).

    Returns
    -------
    xarray.DataArray ``(roi, band, time)`` named ``band_power`` (lazy).
    """
    x, dt, grid = _grid_for(signals, dt, **grid_kw)
    n_rois, n = x.shape
    cdelta = grid.wavelet.cdelta
    if cdelta is None:
        raise ValueError(f"the reconstruction factor C_delta is unknown for {grid.wavelet!r}; use Morlet(6).")
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
    plan = plan_chunks(n_rois, n, grid, dtype=dtype, tol=tol, time_chunk=time_chunk, roi_chunk=roi_chunk)
    data = _dask_data(x).rechunk({0: plan.roi_chunk, 1: _regular_chunks(n, plan.time_chunk, plan.halo)})
    real, _ = kernels.resolve_dtype(dtype)
    w = weights.astype(real)

    def fn(block, left, right, at_start, at_end):
        W = _transform_block(block, left, right, at_start, at_end, grid=grid, boundary="linear",
                             tol=tol, dtype=dtype, remove_mean_value=None, halo=plan.halo)
        return np.einsum("bj,rjt->rbt", w, (W.real**2 + W.imag**2))

    out = map_time_blocks(data, fn, halo=plan.halo, out_shape_tail=(len(bands),), dtype=real)
    roi_dim = x.dims[0]
    coords = {k: v for k, v in x.coords.items() if v.dims in ((roi_dim,), ("time",))}
    coords["band_min_period"] = ("band", [float(lo) for lo, _ in bands], {"units": "s"})
    coords["band_max_period"] = ("band", [float(hi) for _, hi in bands], {"units": "s"})
    # No time coordinate is invented when the input has none: at 1e9 samples it alone would
    # take 8 GB. Time is ``arange(n) * dt`` (``dt`` in attrs).
    return xr.DataArray(out, dims=(roi_dim, "band", "time"), coords=coords, name="band_power",
                        attrs={"long_name": "scale-averaged wavelet power (Torrence & Compo eq. 24)",
                               **grid.describe(), **plan.describe(), "wavelet": grid.wavelet.name})


def _dask_data(x: xr.DataArray) -> da.Array:
    return x.data if isinstance(x.data, da.Array) else da.from_array(np.asarray(x.data))


def _label_roi_period(x: xr.DataArray, grid: ScaleGrid, values: da.Array, name: str, long_name: str) -> xr.DataArray:
    from ._api import grid_coords

    roi_dim = x.dims[0]
    coords: dict[str, Any] = dict(grid_coords(grid))
    coords.update({k: v for k, v in x.coords.items() if v.dims == (roi_dim,)})
    return xr.DataArray(values, dims=(roi_dim, "period"), coords=coords, name=name,
                        attrs={"long_name": long_name, **grid.describe(), "wavelet": grid.wavelet.name})
