"""Smoothing of wavelet spectra for coherence: Gaussian in time, boxcar across scales."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..grid import DEFAULT_TOL, ScaleGrid
from ._cache import filter_cache
from ._cwt import (
    _MIN_ROWS,
    _TILE_BYTES_CPU,
    _TILE_BYTES_GPU,
    _run,
    _segment_frames,
    flush_subnormals,
    resolve_dtype,
    resolve_workers,
    run_pooled,
)
from ._plan import Band, check_boundary, plan_bands, reach
from ._xp import array_namespace, device_key, fft_namespace

__all__ = ["smooth", "scale_kernel", "SCALE_KERNELS"]

SCALE_KERNELS = ("pycwt", "grinsted")


def _matlab_round(v: float) -> int:
    """Round half away from zero, as MATLAB's ``round``."""
    return int(math.floor(abs(v) + 0.5)) * (1 if v >= 0 else -1)


def scale_kernel(kind: str, grid: ScaleGrid) -> np.ndarray:
    """Weights of the boxcar applied across scales (they sum to 1).

    Parameters
    ----------
    kind : {"pycwt", "grinsted"}
        ``pycwt``: ``rect(round(2*deltaj0/dj))`` with half-weight ends (``Morlet.smooth``),
        14 taps at ``dj=1/12``. ``grinsted``: ``2*round(deltaj0/(2*dj))+1`` taps whose two
        ends weigh ``mod(deltaj0/(2*dj), 1)`` (``smoothwavelet.m``), 9 taps at ``dj=1/12``.
    grid : ScaleGrid
        Supplies ``dj`` and the wavelet's ``deltaj0``.

    Examples
    --------
    >>> from bioxen_dask.grid import make_grid
    >>> k = scale_kernel("grinsted", make_grid(1000, 1.0))
    >>> (k * 8.2).round(6).tolist()
    [0.6, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.6]
    """
    kind = str(kind).lower()
    dj0 = grid.wavelet.deltaj0
    if dj0 is None:
        raise ValueError(
            f"the scale-decorrelation length deltaj0 is unknown for {grid.wavelet!r}, so the "
            "coherence scale smoothing is undefined; use Morlet(f0=6), Paul(4) or DOG(2|6)."
        )
    if kind == "pycwt":
        taps = int(np.round(dj0 / grid.dj * 2))
        if taps <= 1:
            return np.ones(1)
        win = np.ones(taps)
        win[0] = win[-1] = 0.5
        return win / win.sum()
    if kind == "grinsted":
        steps = dj0 / (grid.dj * 2)
        frac = steps % 1.0
        ones = 2 * _matlab_round(steps) - 1
        win = np.concatenate([[frac], np.ones(max(ones, 0)), [frac]])
        return win / win.sum()
    raise ValueError(f"unknown scale kernel {kind!r}; choose one of {list(SCALE_KERNELS)}.")


def _gaussian_filters(
    grid: ScaleGrid, band: Band, real: np.dtype, xp, half: bool, sampled_support: np.ndarray | None = None,
    max_lag: int | None = None,
) -> Any:
    """Spectra of the time-smoothing Gaussians (σ = s/dt samples), cached per device.

    Frequency-defined (pycwt ``Morlet.smooth``): ``exp(-0.5 * (s/dt)**2 * k**2)`` with ``k`` in
    rad/sample. Time-defined (``linear``/``symmetric``): the DFT of the sampled Gaussian,
    truncated at ``sampled_support`` samples and normalised to unit sum, whose compact support
    makes padding and chunk halos exact. ``max_lag`` then drops the taps no output of the
    record reaches (:func:`._plan.reach`); the unit sum stays that of the whole kernel.
    """

    def build():
        snorm = grid.scales[band.start : band.stop, None] / grid.dt
        if sampled_support is None:
            f = np.fft.rfftfreq(band.nfft) if half else np.fft.fftfreq(band.nfft)
            with np.errstate(under="ignore"):
                gauss = np.exp(-0.5 * snorm**2 * (2 * np.pi * f) ** 2).astype(real)
            return xp.asarray(flush_subnormals(gauss))
        h = np.asarray(sampled_support[band.start : band.stop])
        taus = np.arange(-int(h.max()), int(h.max()) + 1)
        kern = np.where(np.abs(taus)[None, :] <= h[:, None], np.exp(-0.5 * (taus[None, :] / snorm) ** 2), 0.0)
        kern /= kern.sum(axis=1, keepdims=True)
        if max_lag is not None and max_lag < taus[-1]:
            keep = np.abs(taus) <= max_lag
            taus, kern = taus[keep], kern[:, keep]
        frame = np.zeros((snorm.shape[0], band.nfft))
        frame[:, taus % band.nfft] = kern
        spec = np.fft.rfft(frame, axis=-1) if half else np.fft.fft(frame, axis=-1)
        return xp.asarray(spec.real.astype(real))  # even kernel: real spectrum

    key = ("gauss", grid.key, band.start, band.stop, band.nfft, half, real.str,
           sampled_support is not None, max_lag, device_key(xp))
    return filter_cache.get(key, build)


def smooth_time(
    values: Any,
    grid: ScaleGrid,
    *,
    boundary: str = "linear",
    tol: float = DEFAULT_TOL,
    workers: int | None = None,
) -> Any:
    """Gaussian smoothing along time (last axis), σ = scale/dt samples per scale (axis -2).

    Real input (powers) goes through ``rfft``/``irfft``; long records in the
    ``linear``/``symmetric`` modes by overlap-save in cache-sized tiles (see :mod:`._plan`),
    which is exact for the truncated, time-sampled Gaussian of those modes. ``workers``: CPU
    threads as in :func:`bioxen_dask.kernels.cwt` (``None``: one).
    """
    boundary = check_boundary(boundary)
    xp = array_namespace(values)
    fft = fft_namespace(xp)
    is_complex = xp.iscomplexobj(values)
    real, cplx = resolve_dtype(values.real.dtype if is_complex else values.dtype)
    values = xp.asarray(values)
    if values.ndim < 2:
        raise ValueError("values must have shape (..., scale, time).")
    nthreads = resolve_workers(workers, xp, points=math.prod(values.shape))
    n = values.shape[-1]
    n_sc = values.shape[-2]
    lead = values.shape[:-2]
    nb = math.prod(lead)
    v3 = values.reshape(nb, n_sc, n)
    out = xp.empty((nb, n_sc, n), dtype=values.dtype)
    mode = {"valid": "linear", "grinsted": "pycwt"}.get(boundary, boundary)  # smoothwavelet.m pads as pycwt
    supports = grid.smoothing_support(tol)
    if len(supports) != n_sc:
        raise ValueError(f"values have {n_sc} scales but the grid has {len(supports)}.")
    sampled = None if mode in ("pycwt", "circular") else supports
    needed = reach(supports, n, mode)
    max_lag = n - 1 if sampled is not None and needed.max() < supports.max() else None
    tile_bytes = _TILE_BYTES_CPU if xp is np else _TILE_BYTES_GPU
    pooled: list = []  # with threads, every band's tiles run together (segmented frames are copies)
    for band in plan_bands(n, needed, mode):
        gauss = _gaussian_filters(grid, band, real, xp, half=not is_complex, sampled_support=sampled,
                                  max_lag=max_lag)
        frames = _segment_frames(v3[:, band.start : band.stop, :], band, n, xp)
        nfft, left = band.nfft, band.left
        hop = band.hop or n
        n_full = n // hop if band.hop else 0
        rem = n - n_full * hop
        rows = max(_MIN_ROWS, tile_bytes // (nfft * cplx.itemsize))
        tiles = _tiles(nb, band.stop - band.start, n_full, rem > 0, rows)

        def run(tile, scratch, band=band, gauss=gauss, frames=frames, nfft=nfft, left=left, hop=hop,
                n_full=n_full, rem=rem):
            b0, b1, j0, j1, s0, s1 = tile
            f = frames[b0:b1, j0:j1, s0:s1]
            g = gauss[j0:j1, None, :][None]
            if is_complex:
                sp = fft.fft(f, n=nfft, axis=-1)
                sp *= g
                sm = fft.ifft(sp, axis=-1, overwrite_x=True)
            else:
                sp = fft.rfft(f, n=nfft, axis=-1)
                sp *= g
                sm = fft.irfft(sp, n=nfft, axis=-1)
            c0, c1 = band.start + j0, band.start + j1
            if s0 < n_full:
                dst = out[b0:b1, c0:c1, s0 * hop : s1 * hop].reshape(b1 - b0, j1 - j0, s1 - s0, hop)
                dst[...] = sm[..., left : left + hop]
            else:
                out[b0:b1, c0:c1, n_full * hop :] = sm[:, :, 0, left : left + rem]

        pooled += [(run, tile) for tile in tiles]
        if nthreads <= 1:  # one band's frames alive at a time
            run_pooled(pooled, 1)
            pooled = []
    run_pooled(pooled, nthreads)
    return out.reshape(values.shape)


def _tiles(nb: int, n_rows: int, n_full: int, tail: bool, rows: int) -> list[tuple[int, ...]]:
    """Tiles ``(b0, b1, j0, j1, s0, s1)`` of about ``rows`` FFT rows over (batch, row, segment).

    Full segments ``[0, n_full)`` and, if ``tail``, the partial last segment ``n_full`` are
    never mixed in one tile (their kept samples are copied differently).
    """
    tiles: list[tuple[int, ...]] = []
    groups = []
    if n_full:
        groups.append((0, n_full))
    if tail:
        groups.append((n_full, n_full + 1))
    for s_lo, s_hi in groups:
        ns = s_hi - s_lo
        ss = min(ns, rows)
        jj = min(n_rows, max(1, rows // ss))
        bb = min(nb, max(1, rows // (ss * jj)))
        for b0 in range(0, nb, bb):
            for j0 in range(0, n_rows, jj):
                for s0 in range(s_lo, s_hi, ss):
                    tiles.append((b0, min(b0 + bb, nb), j0, min(j0 + jj, n_rows), s0, min(s0 + ss, s_hi)))
    return tiles


#: Output scales per GEMM of the banded scale product (a 14-tap band then reads 25 rows).
_BAND_ROWS = 12
#: Time columns per GEMM: small enough that BLAS keeps each product on the calling thread
#: (OpenBLAS threads only larger ones), so ``workers`` alone sets the threads used.
_BAND_COLUMNS = 2048


def scale_matrix(weights: np.ndarray, n_scales: int) -> np.ndarray:
    """The zero-filled 'same' boxcar across scales as a dense ``(n_scales, n_scales)`` matrix:
    ``(M @ v)[j] = sum_k w[k] v[j + c - k]`` (zero outside), ``c = (taps - 1) // 2``.

    Examples
    --------
    >>> scale_matrix(np.array([0.25, 0.5, 0.25]), 3).tolist()
    [[0.5, 0.25, 0.0], [0.25, 0.5, 0.25], [0.0, 0.25, 0.5]]
    """
    taps, c = len(weights), (len(weights) - 1) // 2
    M = np.zeros((n_scales, n_scales))
    for j in range(n_scales):
        for k in range(taps):
            i = j + c - k
            if 0 <= i < n_scales:
                M[j, i] += weights[k]
    return M


def _band_blocks(weights: np.ndarray, n_scales: int, column_weights: np.ndarray | None,
                 real: np.dtype, xp) -> tuple[tuple[int, int, int, int, Any], ...]:
    """The zero-filled 'same' boxcar across scales as a banded ``(n_scales, n_scales)`` matrix
    ``M`` (times ``diag(column_weights)``), cut into blocks of :data:`_BAND_ROWS` rows.

    ``(M @ v)[j] = sum_k w[k] v[j + c - k]`` (zero outside), ``c = (taps - 1) // 2``, which is
    ``scipy.signal.convolve2d(v, w[:, None], "same")``. Each block ``(r0, r1, c0, c1, B)`` holds
    rows ``[r0, r1)`` and the columns ``[c0, c1)`` where they are non-zero, in ``real`` on the
    device of ``xp``; cached.
    """

    def build():
        M = scale_matrix(weights, n_scales)
        if column_weights is not None:
            M = M * np.asarray(column_weights, dtype=float)[None, :]
        blocks = []
        for r0 in range(0, n_scales, _BAND_ROWS):
            r1 = min(n_scales, r0 + _BAND_ROWS)
            nz = np.flatnonzero(np.any(M[r0:r1] != 0, axis=0))
            c0, c1 = (int(nz[0]), int(nz[-1]) + 1) if nz.size else (r0, r1)
            blocks.append((r0, r1, c0, c1, xp.asarray(np.ascontiguousarray(M[r0:r1, c0:c1]).astype(real))))
        return _Blocks(tuple(blocks))

    cw = None if column_weights is None else np.asarray(column_weights, dtype=float).tobytes()
    key = ("scale-band", np.asarray(weights, dtype=float).tobytes(), int(n_scales), cw, real.str, device_key(xp))
    return filter_cache.get(key, build).blocks


class _Blocks:
    """A tuple of band blocks with ``nbytes`` (for the byte-bounded filter cache)."""

    def __init__(self, blocks: tuple) -> None:
        self.blocks = blocks
        self.nbytes = int(sum(int(b[4].nbytes) for b in blocks))


def smooth_scale(
    values: Any,
    weights: np.ndarray,
    *,
    column_weights: np.ndarray | None = None,
    out: Any = None,
    workers: int | None = None,
) -> Any:
    """Zero-filled 'same' convolution across scales (axis -2), as ``scipy.signal.convolve2d``.

    A banded matrix product over the scale axis (:func:`_band_blocks`; complex values as
    their interleaved real view ``(..., n_scales, 2 * time)``, the matrix being real): a few
    GEMMs per block of :data:`_BAND_COLUMNS` time columns, ~6x faster than a pass over the
    array per tap (``scipy.ndimage.correlate1d``) at 159 scales. Sums are accumulated in the
    working precision (float32: ~2e-7 relative).

    Parameters
    ----------
    values : ndarray, shape ``(..., n_scales, time)``
        Real or complex, NumPy or CuPy.
    weights : ndarray
        The boxcar taps (:func:`scale_kernel`).
    column_weights : ndarray, shape ``(n_scales,)``, optional
        Multiply each input scale by this first (``1/scale`` folds the division by the
        scale of coherence into the product: one pass over the array less).
    out : ndarray, optional
        Result buffer (same shape and dtype as ``values``, not ``values`` itself).
    workers : int, optional
        CPU threads, as in :func:`bioxen_dask.kernels.cwt`.

    Returns
    -------
    ndarray
        ``out`` when given, else a new array like ``values``.

    Examples
    --------
    >>> import numpy as np
    >>> v = np.zeros((5, 1)); v[2] = 1.0
    >>> smooth_scale(v, np.array([0.25, 0.5, 0.25]))[:, 0].tolist()
    [0.0, 0.25, 0.5, 0.25, 0.0]
    """
    xp = array_namespace(values)
    weights = np.asarray(weights, dtype=float)
    is_complex = xp.iscomplexobj(values)
    real = np.dtype(values.real.dtype if is_complex else values.dtype)
    if real not in (np.dtype(np.float32), np.dtype(np.float64)):  # integers, float16: a float64 copy
        real = np.dtype(np.float64)
        values = values.astype(np.complex128 if is_complex else real)
    v = xp.ascontiguousarray(values)
    if v.ndim < 2:
        raise ValueError("values must have shape (..., scale, time).")
    n_scales = v.shape[-2]
    if column_weights is not None and np.shape(column_weights) != (n_scales,):
        raise ValueError(f"column_weights must have one weight per scale ({n_scales}), got shape "
                         f"{np.shape(column_weights)}.")
    if out is not None and (out.shape != v.shape or out.dtype != v.dtype):
        raise ValueError(f"out must have the shape {v.shape} and dtype {v.dtype} of values, got {out.shape} "
                         f"{out.dtype}.")
    if out is not None and xp is np and np.may_share_memory(out, v):
        raise ValueError("out must not overlap values (each output scale reads its neighbours); pass a "
                         "separate buffer.")
    blocks = _band_blocks(weights, n_scales, column_weights, real, xp)
    res = xp.empty_like(v) if out is None else out
    flat = v.view(real) if is_complex else v
    stack = flat.reshape((-1,) + flat.shape[-2:])
    dst = (res.view(real) if is_complex else res).reshape(stack.shape)
    width = stack.shape[-1]
    if xp is not np:  # one product per block on a device (no ``out=`` into strided views)
        for i in range(stack.shape[0]):
            for r0, r1, c0, c1, B in blocks:
                dst[i, r0:r1] = xp.matmul(B, stack[i, c0:c1])
        return res
    tasks = [(i, t0, min(width, t0 + _BAND_COLUMNS)) for i in range(stack.shape[0])
             for t0 in range(0, width, _BAND_COLUMNS)]

    def run(task, scratch):
        i, t0, t1 = task
        for r0, r1, c0, c1, B in blocks:  # one GEMM per block: a broadcast matmul would skip BLAS
            xp.matmul(B, stack[i, c0:c1, t0:t1], out=dst[i, r0:r1, t0:t1])

    _run(tasks, run, resolve_workers(workers, xp, points=math.prod(v.shape)))
    return res


def smooth(
    values: Any,
    grid: ScaleGrid,
    *,
    scale_kernel_kind: str = "pycwt",
    boundary: str = "linear",
    tol: float = DEFAULT_TOL,
    workers: int | None = None,
    divide_by_scale: bool = False,
    out: Any = None,
) -> Any:
    """Smooth a wavelet spectrum in time then across scales (the coherence smoother).

    Parameters
    ----------
    values : ndarray, shape ``(..., n_scales, time)``
        Real (power) or complex (cross spectrum) values, already divided by scale unless
        ``divide_by_scale``.
    grid : ScaleGrid
        The grid the values were computed on.
    scale_kernel_kind : {"pycwt", "grinsted"}
        Scale boxcar convention (see :func:`scale_kernel`).
    boundary : str
        Time-axis boundary, as for :func:`bioxen_dask.kernels.cwt`: ``pycwt`` pads to the
        next power of two exactly as pycwt; ``linear`` pads enough that the Gaussian does not
        wrap; ``symmetric`` mirrors; ``circular`` wraps.
    tol : float
        Truncation tolerance of the Gaussian for padding lengths.
    workers : int, optional
        CPU threads (FFTs and the scale products).
    divide_by_scale : bool
        Smooth ``values / scale`` instead: the time Gaussian acts scale by scale, so the
        division is folded into the scale product (equal to rounding, one pass less).
    out : ndarray, optional
        Result buffer (same shape and dtype as ``values``).

    Returns
    -------
    ndarray
        Same shape and dtype as ``values``.

    Examples
    --------
    >>> import numpy as np
    >>> from bioxen_dask.grid import make_grid
    >>> g = make_grid(256, 1.0)
    >>> P = np.ones((g.n_scales, 256))
    >>> S = smooth(P, g, boundary="circular")
    >>> bool(np.allclose(S[20:-20], 1.0))
    True
    """
    t = smooth_time(values, grid, boundary=boundary, tol=tol, workers=workers)
    return smooth_scale(t, scale_kernel(scale_kernel_kind, grid), out=out, workers=workers,
                        column_weights=1.0 / grid.scales if divide_by_scale else None)
