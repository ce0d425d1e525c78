"""Wavelet coherence of many pairs, lazily, with reductions and significance.

:func:`coherence` is the main job: it takes a dask-backed ``(roi, time)`` DataArray (or a
signals store) and a pair mode, and returns a lazy :class:`xarray.Dataset` of per-pair,
per-period reductions (mean coherence outside the cone of influence, circular mean phase,
phase consistency, lag, fraction of time above the significance threshold), and on request
the full ``coherence``/``phase`` maps.

How it is computed
------------------
One task per *pair chunk* (and per time block for long records) runs the whole chain on
plain arrays: CWT → smoothed scaled power → cross spectrum → smoothing → coherence →
reductions, so the wavelet transform never exists outside one task's memory:

* **reference mode** — the reference's transform and smoothed power are computed once per
  time block (one task) and shared by every roi chunk; each roi's once, and on the CPU one
  roi at a time through buffers reused by the whole chunk (:func:`_reference_stream`);
* **list mode** — the pairs are sorted and cut into chunks; each chunk gathers the rows it
  needs, transforms each of them once, then forms its pairs;
* **all pairs** — the selection is cut into tiles of rois; tile ``(i, j)`` transforms the
  rois of blocks ``i`` and ``j`` once and forms every pair between (or within) them.

Long records are cut along time with halos of ``grid.halo(tol, smoothing=True)`` samples
(the wavelet's support plus the smoothing Gaussian's), built with
:func:`dask.array.overlap.overlap`; the reductions are carried as partial sums over each
block's own samples and added up, so chunked and unchunked results agree to the truncation
tolerance. Each time block is an independent task: what it needs of the whole
record (the normalisation's mean, standard deviation and trend, and the AR(1) coefficients)
comes from one streaming pass when the graph is built (:mod:`bioxen_dask._stream`), so no
block waits on a lazy whole-record reduction and memory stays flat in the record's length.
The reductions' graph is flat too: one task (:func:`_wave_sums`) runs the blocks in bounded
waves, each block a task that reads its rows and halos from the lazy record (e.g. Zarr) --
on a cluster submitted to every worker (``distributed.worker_client``), elsewhere on a
thread pool -- so the client and the scheduler hold a few blocks, not a record's thousands
(the per-block graph, with the maps, grows ~0.5 KB and several tasks a block).
``map_step=`` decimates the maps to window means, cut at block boundaries (a Zarr region
per block).

Significance (Grinsted et al. 2004): each roi's (and the reference's) AR(1) coefficient is
estimated, coefficients are grouped into buckets, and one Monte Carlo threshold curve is
computed per distinct bucket pair by :func:`bioxen_dask.significance.ar1_thresholds_many`
(cached on disk), in parallel on the active Dask scheduler. That step runs when
the Dataset is built (it is small: a pass over the data for the AR(1)s, and
``mc_count`` surrogate pairs per bucket pair); the coherence itself stays lazy.

The surrogates are as long as the record (pycwt and Grinsted use ``6 x`` the largest scale
whatever the record): the test then counts the same edge effects as the data's coherence
outside the cone of influence. With pycwt's length, independent AR(1) pairs exceed the 95%
threshold far more often than 5% at the largest scales of a record shorter than that length,
and less often on records several times longer; with the record's length, 5% within the
Monte Carlo error (``tests/test_significance_calibration.py`` measures both on 256-sample
records). Thresholds of records of different lengths are cached apart. With the ``linear``
boundary, the smallest scales, whose wavelets reach the Nyquist band (periods below about
4 dt), take their thresholds from the exact Monte Carlo engine: the fast engine's
frequency-defined kernels differ from the data's time-sampled ones there, and its thresholds
came out too high (the same test measures it); the attribute
``significance_exact_engine_periods`` says how many.

Records cut into time blocks take surrogates one extended time block long (the block and its
two halos, attribute ``surrogate_length``) instead of the record's length, and the threshold
curve of each AR(1) bucket pair is shared by every block, as it is by every pair. This
assumes what the AR(1) null already assumes, stationarity: the null distribution of the
coherence at a sample outside the COI does not depend on where in the record it lies nor on
how long the record is, once the record is longer than the wavelet's and the smoothing's
support (the halo), which every block is. The record's own edges are in its COI and never
counted. Measured on 6 independent AR(1) pairs (g = 0.7) of 32,768 samples in 8 blocks: 4.79%
of the samples above the 95% threshold with 4,940-sample surrogates, 4.78% with
record-length ones (``tests/test_long_records.py``). A non-stationary record (a drifting AR(1)
coefficient) is tested against one AR(1) fit of the whole record either way.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr
from dask.highlevelgraph import HighLevelGraph

from . import kernels
from ._api import PHASE_CONVENTION
from ._labels import dt_of, grid_coords
from ._version import __version__
from ._validation import NAN_POLICIES, check_dt, check_length, scan_traces, whole_number
from .grid import DEFAULT_TOL, ScaleGrid, make_grid
from .kernels._coherence import coherence_ratio
from .kernels._coherence_map import coherence_plan
from .kernels._multirate_cwt import check_method
from .kernels._device import check_device, device_namespace, rows_per_batch
from .kernels._xp import array_namespace, to_numpy
from .presets import Preset, get_preset, resolve_conventions
from .wavelets import MotherWavelet, Morlet, get_wavelet

__all__ = [
    "LAG_CONVENTION",
    "coherence",
    "period_grid",
    "pair_table",
    "select_rois",
]

#: Sign convention of the ``lag`` variable.
LAG_CONVENTION = (
    "lag = phase_mean / (2*pi) * period, in seconds; positive when roi_a leads roi_b (the "
    "reference in reference mode), i.e. roi_b follows roi_a by `lag` seconds (modulo one "
    "period). " + PHASE_CONVENTION
)

#: Working memory one task may use for its arrays (transforms, smoothed spectra, temporaries).
DEFAULT_BLOCK_BYTES = 512 * 2**20
#: Records up to this many samples are processed as one time block (no halos).
MAX_SINGLE_TIME_BLOCK = 2**17
#: Bytes per (pair, scale, sample) of one pair's working arrays: W12 and S12 (complex),
#: R2, smoothing temporaries; calibrated on the float32 path.
_PAIR_BYTES_PER_POINT = 40
#: Bytes per (row, scale, sample) kept for each transformed row: W (complex) and S (real).
_ROW_BYTES_PER_POINT = 12

#: Index of each partial sum in a block's ``sums`` output.
_SUM_R2, _SUM_COS, _SUM_SIN, _N_SIG, _N_OUT = range(5)
_N_SUMS = 5

# ------------------------------------------------------------------------------ grid


def period_grid(
    n: int,
    dt: float,
    *,
    min_period: float | None = None,
    max_period: float | None = None,
    dj: float = 1 / 12,
    s0: float | None = None,
    J: int | None = None,
    wavelet: str | MotherWavelet = "morlet",
    preset: str | Preset = "pycwt",
) -> ScaleGrid:
    """A scale grid for ``n`` samples, given by a period range or by pycwt's ``s0``/``J``.

    ``min_period``/``max_period`` (seconds) set ``s0 = min_period / fourier_factor`` and
    ``J = ceil(log2(max_period / min_period) / dj)``, so the grid starts exactly at
    ``min_period`` and reaches at least ``max_period``. Without them the preset's defaults
    apply (pycwt: smallest period ``2 dt``, largest about the record length).

    Raises
    ------
    ValueError
        For an impossible grid: a period below the Nyquist period ``2 dt``, a largest
        period beyond the record, ``min_period >= max_period``, or mixing the two styles.

    Examples
    --------
    >>> g = period_grid(18000, 1 / 30, min_period=0.5, max_period=30)
    >>> g.n_scales, round(float(g.periods[0]), 6), float(g.periods[-1]) >= 30
    (72, 0.5, True)
    """
    if (min_period is not None or max_period is not None) and (s0 is not None or J is not None):
        raise ValueError("give the grid either as min_period/max_period or as s0/J, not both.")
    p = get_preset(preset)
    if min_period is None and max_period is None:
        return make_grid(n, dt, dj=dj, s0=s0, J=J, wavelet=wavelet, preset=p)
    w = get_wavelet(wavelet)
    duration = n * dt
    lo = 2 * dt if min_period is None else _positive_float(min_period, "min_period")
    hi = duration if max_period is None else _positive_float(max_period, "max_period")
    if lo < 2 * dt * (1 - 1e-9):
        raise ValueError(
            f"min_period={lo:g} s is below the Nyquist period 2*dt={2 * dt:g} s; "
            f"choose min_period >= {2 * dt:g}."
        )
    if hi > duration:
        raise ValueError(
            f"max_period={hi:g} s is longer than the record ({n} samples = {duration:g} s); "
            "choose a shorter max_period (periods beyond ~1/4 of the record lie mostly "
            "inside the cone of influence anyway)."
        )
    if not lo < hi:
        raise ValueError(f"min_period ({lo:g} s) must be smaller than max_period ({hi:g} s).")
    if not (math.isfinite(dj) and dj > 0):
        raise ValueError(f"dj must be a positive number, got {dj!r}; e.g. dj=1/12.")
    J = int(math.ceil(math.log2(hi / lo) / dj - 1e-9))
    return make_grid(n, dt, dj=dj, s0=lo / w.fourier_factor, J=J, wavelet=wavelet, preset=p)


def _nonnegative_float(v: Any, name: str) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number of seconds >= 0, got {v!r}.") from None
    if not (math.isfinite(f) and f >= 0):
        raise ValueError(f"{name} must be a number of seconds >= 0, got {v!r}.")
    return f


def max_gap_samples(nan_policy: str, max_gap: Any, dt: float) -> int:
    """The longest gap (samples) ``nan_policy`` fills: ``max_gap`` seconds at ``dt`` with
    ``"interpolate"`` (required there), none with ``"raise"``."""
    if nan_policy != "interpolate":
        return 0
    if max_gap is None:
        raise ValueError("nan_policy='interpolate' needs max_gap= (the longest gap to fill, in seconds).")
    return int(math.floor(_nonnegative_float(max_gap, "max_gap") / dt + 1e-9))


def _fill_block(block: np.ndarray, max_gap: int) -> np.ndarray:
    return kernels.fill_gaps(block, max_gap, what="row")[0]


def _fill_gaps(x: da.Array, max_gap: int) -> da.Array:
    """Gaps of at most ``max_gap`` samples filled (:func:`bioxen_dask.kernels.fill_gaps`).

    Time blocks overlap by ``max_gap + 1`` samples, so every gap that reaches a block's own
    samples is seen whole, with its two neighbours: the result equals filling whole rows.
    """
    if len(x.chunks[1]) == 1:
        return x.map_blocks(_fill_block, max_gap, dtype=x.dtype)
    depth = max_gap + 1
    if min(x.chunks[1]) < depth:
        from .graph import regular_chunks

        x = x.rechunk({1: regular_chunks(x.shape[1], max(depth, max(x.chunks[1])), depth)})
    if len(x.chunks[1]) == 1:
        return x.map_blocks(_fill_block, max_gap, dtype=x.dtype)
    return x.map_overlap(_fill_block, depth={0: 0, 1: depth}, boundary="none", dtype=x.dtype,
                         max_gap=max_gap)


def _positive_float(v: Any, name: str) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number of seconds, got {v!r}.") from None
    if not (math.isfinite(f) and f > 0):
        raise ValueError(f"{name} must be a positive number of seconds, got {v!r}.")
    return f


# ------------------------------------------------------------------------------ block numerics


@dataclass(frozen=True)
class _Ctx:
    """Everything a block task needs (picklable, shared by all tasks)."""

    grid: ScaleGrid
    scale_kernel: str
    boundary: str
    tol: float
    dtype: str
    remove_mean: bool
    n: int  # samples in the whole record
    coi_convention: str
    maps: bool
    block_bytes: int
    workers: int | None
    device: str = "cpu"  # "gpu": blocks computed with CuPy, results returned to the host
    method: str = "exact"  # "multirate": each pair's maps by kernels.multirate_coherence's plans
    map_step: int = 1  # samples per time step of the maps (window means: kernels._moments.decimate_maps)

    def smoother(self) -> kernels.Smoother:
        return kernels.Smoother(self.grid, scale_kernel=self.scale_kernel, boundary=self.boundary,
                             tol=self.tol, workers=self.workers)


def _transform_rows(x: np.ndarray, ctx: _Ctx, sm: kernels.Smoother) -> tuple[np.ndarray, np.ndarray]:
    """CWT and smoothed scaled power of rows ``x`` (rows, n_ext), batched by memory."""
    n_ext = x.shape[-1]
    per_row = ctx.grid.n_scales * n_ext * _PAIR_BYTES_PER_POINT
    xp = array_namespace(x)
    step = rows_per_batch(per_row, ctx.block_bytes, xp, what="roi transform")  # GPU: from free memory
    Ws, Ss = [], []
    for r0 in range(0, x.shape[0], step):
        W = kernels.cwt(x[r0 : r0 + step], ctx.grid, boundary=ctx.boundary, tol=ctx.tol,
                        remove_mean=ctx.remove_mean, dtype=ctx.dtype, workers=ctx.workers)
        Ws.append(W)
        Ss.append(sm.scaled(kernels.power(W)))
    if len(Ws) == 1:
        return Ws[0], Ss[0]
    return xp.concatenate(Ws), xp.concatenate(Ss)


def _coi_ranges(ctx: _Ctx, t0: int, n_own: int) -> np.ndarray:
    """Per scale, the ``[lo, hi)`` range (block-local) of own samples outside the COI."""
    out = np.clip(ctx.grid.outside_coi(ctx.n, ctx.coi_convention) - t0, 0, n_own)  # never the record-long COI
    out[out[:, 1] <= out[:, 0]] = 0
    return out


def _pair_batch(
    W1: np.ndarray, S1: np.ndarray, W2: np.ndarray, S2: np.ndarray, thr: np.ndarray | None,
    ctx: _Ctx, sm: kernels.Smoother, left: int, n_own: int, ranges: np.ndarray,
    gap: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Coherence of a batch of pairs (broadcast over the leading axis) and its partial sums.

    Same formulas as :func:`bioxen_dask.kernels.coherence` (the phase is that of the
    unsmoothed cross spectrum), evaluated on the extended block and cropped to the block's
    own samples. ``gap``: per pair, the distance (own samples) to the nearest interpolated
    sample of either trace (:func:`bioxen_dask.kernels.gap_distance`); the samples a gap
    reaches (:func:`bioxen_dask.kernels.gap_mask`) are NaN in the maps and left out of
    every sum and count.
    """
    grid = ctx.grid
    W12 = kernels.cross_spectrum(W1, W2)
    xp = array_namespace(W12)  # NumPy, or CuPy with device='gpu' (sums stay on the device)
    real = W12.real.dtype
    S12 = sm.scaled(W12)
    own = slice(left, left + n_own)
    s12 = S12[..., own]
    R2 = coherence_ratio(s12.real, s12.imag, S1[..., own], S2[..., own])
    R2 = xp.clip(R2, 0.0, 1.0, out=R2)
    del S12, s12
    C = W12[..., own]
    b = R2.shape[0]
    masked = None if gap is None else xp.asarray(kernels.gap_mask(gap, grid))  # (b, scales, n_own)
    thr = None if thr is None else xp.asarray(thr)
    sums = xp.zeros((b, _N_SUMS, grid.n_scales))
    with np.errstate(divide="ignore", invalid="ignore"):
        for j in range(grid.n_scales):
            lo, hi = ranges[j]
            if hi <= lo:
                continue
            r = R2[:, j, lo:hi]
            c = C[:, j, lo:hi]
            mag = xp.abs(c)
            keep = mag > 0
            if masked is not None:
                valid = ~masked[:, j, lo:hi]
                keep &= valid
                r = xp.where(valid, r, 0.0)
            unit_re = xp.where(keep, c.real / mag, 0.0)
            unit_im = xp.where(keep, c.imag / mag, 0.0)
            sums[:, _SUM_R2, j] = r.sum(axis=-1, dtype=np.float64)
            sums[:, _SUM_COS, j] = unit_re.sum(axis=-1, dtype=np.float64)
            sums[:, _SUM_SIN, j] = unit_im.sum(axis=-1, dtype=np.float64)
            sums[:, _N_OUT, j] = hi - lo if masked is None else valid.sum(axis=-1)
            if thr is not None:
                above = r >= thr[:, j, None]
                sums[:, _N_SIG, j] = (above if masked is None else above & valid).sum(axis=-1)
    bad = ~xp.isfinite(sums[:, _SUM_R2])  # constant traces: 0/0 coherence
    if thr is None:
        sums[:, _N_SIG] = np.nan
    else:
        sums[:, _N_SIG] = xp.where(xp.isnan(thr), np.nan, sums[:, _N_SIG])
    sums[:, _N_SIG] = xp.where(bad, np.nan, sums[:, _N_SIG])
    if not ctx.maps:
        return sums, None, None
    phase = xp.angle(C).astype(real, copy=False)
    R2 = R2.astype(real, copy=False)
    if masked is not None:
        R2[masked] = np.nan
        phase[masked] = np.nan
    return sums, R2, phase


#: Rows of the (scale, time) arrays per elementwise step of :func:`_reference_stream` (L2-sized).
_ROW_STEP = 4


def _reference_stream(
    x: np.ndarray, ref: tuple[np.ndarray, np.ndarray], thr: np.ndarray | None, ctx: _Ctx,
    sm: kernels.Smoother, left: int, n_own: int, ranges: np.ndarray, dist: np.ndarray | None,
    sums: np.ndarray, maps: tuple[np.ndarray, np.ndarray] | None,
) -> None:
    """Reference mode on the CPU: every row of ``x`` against the reference, one roi at a time.

    The numbers of :func:`_pair_batch` (same formulas, to rounding), computed with fewer
    passes over memory: each roi's ``(scale, time)`` arrays are made once in buffers reused
    for every roi (no page faults from fresh allocations), ``|W|**2`` and ``W * conj(Wr)``
    (in place of ``W``) come from one sweep over ``W`` in cache-sized row steps, ``1/scale``
    is folded into the scale-boxcar matrix (:meth:`bioxen_dask.kernels.Smoother.scaled`), and coherence and
    the reductions are evaluated scale by scale on rows that stay in the cache, the phase
    sums as dot products with ``1/|W12|``. Writes ``sums[k]`` (and ``maps[.][k]``) for row
    ``k``; ``dist`` as in :func:`_pair_batch`.
    """
    grid = ctx.grid
    J, n_ext = grid.n_scales, x.shape[-1]
    real, cplx = kernels.resolve_dtype(ctx.dtype)
    cWr = np.conj(ref[0]).astype(cplx, copy=False)
    Sr = ref[1]
    Q = np.empty((J, n_ext), real)
    tmp = np.empty((_ROW_STEP, n_ext), real)
    S1 = np.empty((J, n_ext), real)
    S12 = np.empty((J, n_ext), cplx)
    # the samples each scale needs: its COI-free range, or every own sample for the maps
    span = np.tile([0, n_own], (J, 1)) if maps is not None else ranges
    m_max = int(max(1, (span[:, 1] - span[:, 0]).max()))
    num, den, r = np.empty((3, m_max), real)
    sums[...] = 0.0
    for k in range(x.shape[0]):
        W = kernels.cwt(x[k : k + 1], grid, boundary=ctx.boundary, tol=ctx.tol, remove_mean=ctx.remove_mean,
                        dtype=ctx.dtype, workers=ctx.workers)[0]
        for j0 in range(0, J, _ROW_STEP):
            w = W[j0 : j0 + _ROW_STEP]
            kernels.power(w, out=Q[j0 : j0 + _ROW_STEP], tmp=tmp[: len(w)])
            np.multiply(w, cWr[j0 : j0 + _ROW_STEP], out=w)  # W now holds W12 = W * conj(Wr)
        sm.scaled(Q, out=S1)
        sm.scaled(W, out=S12)
        masked = None if dist is None else kernels.gap_mask(dist[k : k + 1], grid)[0]  # (J, n_own)
        map_k = None if maps is None else (maps[0][k], maps[1][k])
        with np.errstate(divide="ignore", invalid="ignore"):
            for j in range(J):
                a, b = (int(v) for v in span[j])
                m = b - a
                if m <= 0:
                    continue
                t0, t1 = left + a, left + b
                s12 = S12[j, t0:t1]
                nm, dn, rr = num[:m], den[:m], r[:m]
                coherence_ratio(s12.real, s12.imag, S1[j, t0:t1], Sr[j, t0:t1], out=rr, tmp=dn)
                np.clip(rr, 0.0, 1.0, out=rr)
                _reduce_scale(sums[k], j, rr, W[j, t0:t1], a, ranges[j], None if masked is None else masked[j],
                              None if thr is None else thr[k, j], map_k, nm)
    _finish_sums(sums, thr)


#: Smallest normal number of each real dtype (by type code), the floor of ``|W12|`` in the phase sums.
_TINY = {np.dtype(t).char: np.finfo(t).tiny for t in (np.float32, np.float64)}


def _reduce_scale(
    out: np.ndarray, j: int, rr: np.ndarray, c: np.ndarray, a: int, range_j: np.ndarray,
    masked_j: np.ndarray | None, thr_kj: float | None, maps_k: tuple[np.ndarray, np.ndarray] | None,
    work: np.ndarray,
) -> None:
    """One pair's reductions (and maps) at scale ``j`` (CPU): ``rr`` its clipped coherence and
    ``c`` its unsmoothed cross spectrum on own samples ``[a, a + len(rr))`` (every own sample
    when ``maps_k`` is given); ``range_j``: the ``[lo, hi)`` outside the COI; ``masked_j``:
    own samples a gap reaches; ``work``: a float buffer of at least ``hi - lo``."""
    if maps_k is not None:
        maps_k[0][j] = rr
        maps_k[1][j] = np.angle(c)
        if masked_j is not None:
            maps_k[0][j][masked_j] = np.nan
            maps_k[1][j][masked_j] = np.nan
    lo, hi = (int(v) for v in range_j)
    if hi <= lo:
        return
    rr, c = rr[lo - a : hi - a], c[lo - a : hi - a]
    inv = np.abs(c, out=work[: hi - lo])
    # 1/|c|, with |c| floored at the smallest normal number: where c is 0, c/|c| stays 0 (and a
    # subnormal |c| cannot overflow 1/|c| to inf)
    np.maximum(inv, _TINY[inv.dtype.char], out=inv)
    np.reciprocal(inv, out=inv)
    if masked_j is not None:
        valid = ~masked_j[lo:hi]
        inv *= valid
        rr = np.where(valid, rr, 0.0)
    out[_SUM_R2, j] = rr.sum()  # pairwise summation: rounding ~log2(n) eps, below the map's own
    # sums of cos and sin of the phase: one product of 1/|c| with the (re, im) pairs of c, in
    # float64 (a float32 dot product accumulates ~sqrt(n) eps: 1.2e-5 of phase consistency at
    # 131,072 samples, 3e-8 here)
    out[_SUM_COS : _SUM_SIN + 1, j] = (inv.astype(np.float64, copy=False)
                                       @ c.view(inv.dtype).reshape(-1, 2).astype(np.float64, copy=False))
    out[_N_OUT, j] = hi - lo if masked_j is None else np.count_nonzero(valid)
    if thr_kj is not None:
        above = rr >= thr_kj
        out[_N_SIG, j] = np.count_nonzero(above if masked_j is None else above & valid)


def _finish_sums(sums: np.ndarray, thr: np.ndarray | None) -> None:
    """No significant count without a threshold, or where the threshold or the coherence is NaN."""
    if thr is None:
        sums[:, _N_SIG] = np.nan
    else:
        sums[:, _N_SIG] = np.where(np.isnan(thr), np.nan, sums[:, _N_SIG])
    sums[:, _N_SIG] = np.where(~np.isfinite(sums[:, _SUM_R2]), np.nan, sums[:, _N_SIG])


#: Most pairs of one first roi whose coherence sums are computed together (multirate, no maps).
_PAIR_BATCH = 8


def _multirate_pairs(
    x: np.ndarray, ref: np.ndarray | None, ia: np.ndarray, ib: np.ndarray, thr: np.ndarray | None, ctx: _Ctx,
    left: int, n_own: int, ranges: np.ndarray, dist: np.ndarray | None, sums: np.ndarray,
    maps: tuple[np.ndarray, np.ndarray] | None,
) -> None:
    """``method='multirate'``: the pairs ``(x[ia[k]], x[ib[k]] or ref)`` by the multirate plan
    of the extended block (:func:`bioxen_dask.kernels.multirate_coherence`, the same maps to
    ~3e-6), then the reductions of :func:`_reference_stream`. Each row's (and the
    reference's) transforms and smoothed power are computed once, when its first pair comes,
    and kept (:class:`bioxen_dask.kernels._coherence_map.RecordShare`) for every other pair
    of the task, which then costs its cross spectrum alone; a share is dropped after its last
    pair. ``dist`` (rows of ``x``) as in :func:`_pair_batch`.

    Without maps and gaps the pairs make no full-rate map: their coherence sums come from
    :meth:`~bioxen_dask.kernels._coherence_map.MultirateCoherence.pair_sums` in batches of
    pairs sharing their first roi, their phase sums for the whole task from one
    :meth:`~bioxen_dask.kernels._coherence_map.MultirateCoherence.phasor_sums` (a complex
    matrix product per scale of the rows' unit phasors)."""
    grid = ctx.grid
    J, n_ext = grid.n_scales, x.shape[-1]
    plan = coherence_plan(grid, n_ext, ctx.scale_kernel, ctx.tol)
    spectrum = np.empty((J, n_ext), np.complex64)
    R2 = np.empty((J, n_ext), np.float32)
    work = np.empty(max(1, n_own), np.float32)
    own = slice(left, left + n_own)
    sums[...] = 0.0
    last = {}  # row -> its last pair: its share is dropped after it
    for k in range(len(ia)):
        last[int(ia[k])] = k
        if ib[k] >= 0:
            last[int(ib[k])] = k
    shares: dict[int, Any] = {}

    def record(row: int) -> np.ndarray:
        v = ref if row < 0 else x[row]
        return v - v.mean() if ctx.remove_mean else v  # as kernels.cwt(remove_mean=True)

    fused = maps is None and dist is None  # reductions only: no full-rate map of any pair

    def share(row: int) -> Any:
        if row not in shares:
            shares[row] = plan.share(record(row), workers=ctx.workers, sums_only=fused)
        return shares[row]

    if fused:
        lo = left + ranges[:, 0]
        hi = left + np.maximum(ranges[:, 0], ranges[:, 1])
        rows, pos = np.unique(np.concatenate([ia, ib]), return_inverse=True)  # each record once
        pos = pos.reshape(-1)
        pa, pb = pos[: len(ia)], pos[len(ia) :]
        ua, ka = np.unique(pa, return_inverse=True)
        ub, kb = np.unique(pb, return_inverse=True)
        z = plan.phasor_sums(np.stack([record(int(r)) for r in rows]), ua, ub, lo, hi)[ka.reshape(-1), kb.reshape(-1)]
        sums[:, _SUM_COS] = z.real
        sums[:, _SUM_SIN] = z.imag
        sums[:, _N_OUT] = hi - lo
        # batches of consecutive pairs with one first roi (a tile's pairs come in such runs), of
        # at most the pairs whose band temporaries fit one pair's arrays (_all_pairs_tile)
        batch = max(1, min(_PAIR_BATCH, J * n_ext * _PAIR_BYTES_PER_POINT // plan.pair_sums_bytes()))
        k0 = 0
        while k0 < len(ia):
            a = int(ia[k0])
            k1 = k0 + 1
            while k1 < len(ia) and k1 - k0 < batch and ia[k1] == a:
                k1 += 1
            r2, nsig = plan.pair_sums(share(a), [share(int(b)) for b in ib[k0:k1]], lo, hi,
                                      None if thr is None else thr[k0:k1], workers=ctx.workers)
            sums[k0:k1, _SUM_R2] = r2
            if nsig is not None:
                sums[k0:k1, _N_SIG] = nsig
            for r in {a, *(int(b) for b in ib[k0:k1])}:
                if r >= 0 and last[r] < k1:
                    del shares[r]
            k0 = k1
        _finish_sums(sums, thr)
        return

    for k in range(len(ia)):
        a, b = int(ia[k]), int(ib[k])
        plan.pair(share(a), share(b), workers=ctx.workers, with_phase=False, spectrum=spectrum, out=R2)
        for r in {a, b}:  # a roi with itself (list mode): one share
            if r >= 0 and last[r] == k:
                del shares[r]
        np.clip(R2, 0.0, 1.0, out=R2)
        masked = None
        if dist is not None:
            d = dist[a] if b < 0 else np.minimum(dist[a], dist[b])
            masked = kernels.gap_mask(d[None], grid)[0]
        map_k = None if maps is None else (maps[0][k], maps[1][k])
        with np.errstate(divide="ignore", invalid="ignore"):
            for j in range(J):
                lo, hi = (0, n_own) if maps is not None else (int(ranges[j, 0]), max(int(ranges[j, 0]), int(ranges[j, 1])))
                _reduce_scale(sums[k], j, R2[j, own][lo:hi], spectrum[j, own][lo:hi], lo, ranges[j],
                              None if masked is None else masked[j], None if thr is None else thr[k, j], map_k, work)
    _finish_sums(sums, thr)


def _chunk_task(
    blocks: list[np.ndarray], ref: tuple[np.ndarray, np.ndarray] | None,
    gaps: list[np.ndarray] | None, curves: np.ndarray | None, ia: np.ndarray, ib: np.ndarray,
    curve_of_pair: np.ndarray | None, left: int, t0: int, n_own: int, ctx: _Ctx,
) -> dict[str, np.ndarray]:
    """All pairs of one chunk on one (overlapped) time block.

    ``blocks`` are the rows this chunk needs (concatenated); pair ``k`` is
    ``(rows[ia[k]], rows[ib[k]])``, or ``(rows[ia[k]], reference)`` where ``ib[k] < 0``.
    ``gaps`` (``nan_policy='interpolate'`` only): the same blocks of the *missing-sample*
    mask (the rows hold interpolated values there). ``curves`` ``(curves, scales)``: the
    distinct threshold curves of the job (one graph key, shared by every task), pair ``k``'s
    being ``curves[curve_of_pair[k]]``. Returns ``sums`` ``(pairs, 5, scales)`` and, with
    maps, ``coherence``/``phase`` ``(pairs, scales, n_own)``.
    """
    thr = None if curves is None else curves[curve_of_pair]
    x = blocks[0] if len(blocks) == 1 else np.concatenate(blocks, axis=0)
    xp = device_namespace(ctx.device, "coherence(device='gpu')")
    x = xp.asarray(x)  # host -> device with device='gpu'; results come back in emit()
    dist = None
    if gaps is not None:  # distance to the nearest filled sample, over the halo too; own samples kept
        g = gaps[0] if len(gaps) == 1 else np.concatenate(gaps, axis=0)
        dist = kernels.gap_distance(g)[:, left : left + n_own]
    sm = ctx.smoother()
    grid = ctx.grid
    n_ext = x.shape[-1]
    ranges = _coi_ranges(ctx, t0, n_own)
    P = len(ia)
    sums = np.empty((P, _N_SUMS, grid.n_scales))
    maps = None
    if ctx.maps:
        real, _ = kernels.resolve_dtype(ctx.dtype)
        maps = (np.empty((P, grid.n_scales, n_own), real), np.empty((P, grid.n_scales, n_own), real))
    per_pair = grid.n_scales * n_ext * _PAIR_BYTES_PER_POINT
    step = rows_per_batch(2 * per_pair, ctx.block_bytes, xp, limit=max(1, P), what="pair")

    def emit(k0: int, out: tuple) -> None:
        s, R2, ph = out
        sums[k0 : k0 + len(s)] = to_numpy(s)
        if maps is not None:
            maps[0][k0 : k0 + len(s)] = to_numpy(R2)
            maps[1][k0 : k0 + len(s)] = to_numpy(ph)

    if ctx.method == "multirate":  # every mode, pair by pair (CPU only: checked by coherence())
        _multirate_pairs(x, None if ref is None else ref[0], ia, ib, thr, ctx, left, n_own, ranges, dist, sums, maps)
    elif ref is not None and np.all(ib < 0) and xp is np:
        # Reference mode on the CPU: stream over rows, one roi at a time, in reused buffers.
        _reference_stream(x[ia], ref, thr, ctx, sm, left, n_own, ranges,
                          None if dist is None else dist[ia], sums, maps)
    elif ref is not None and np.all(ib < 0):
        # Reference mode: stream over rows; each roi transformed once, never all kept.
        Wr, Sr = xp.asarray(ref[0]), xp.asarray(ref[1])
        for k0 in range(0, P, step):
            rows = ia[k0 : k0 + step]
            W, S = _transform_rows(x[xp.asarray(rows)], ctx, sm)
            t = None if thr is None else thr[k0 : k0 + step]
            d = None if dist is None else dist[rows]
            emit(k0, _pair_batch(W, S, Wr, Sr, t, ctx, sm, left, n_own, ranges, d))
    else:
        W, S = _transform_rows(x, ctx, sm)
        for k0 in range(0, P, step):
            a = ia[k0 : k0 + step]
            b = ib[k0 : k0 + step]
            if ref is not None and np.any(b < 0):
                raise AssertionError("mixed reference and roi pairs in one chunk")
            t = None if thr is None else thr[k0 : k0 + step]
            d = None if dist is None else np.minimum(dist[a], dist[b])
            a_, b_ = xp.asarray(a), xp.asarray(b)
            emit(k0, _pair_batch(W[a_], S[a_], W[b_], S[b_], t, ctx, sm, left, n_own, ranges, d))
    out = {"sums": sums}
    if maps is not None:
        from .kernels._moments import decimate_maps

        out["coherence"], out["phase"] = decimate_maps(*maps, ctx.map_step)
    return out


def _ref_task(block: np.ndarray, ctx: _Ctx) -> tuple[np.ndarray, np.ndarray | None]:
    """The reference's transform and smoothed scaled power on one (overlapped) time block
    (``method='multirate'``: the block itself; each pair's plan transforms it)."""
    if ctx.method == "multirate":
        return np.asarray(block).reshape(-1), None
    xp = device_namespace(ctx.device, "coherence(device='gpu')")
    W, S = _transform_rows(xp.asarray(block.reshape(1, -1)), ctx, ctx.smoother())
    return to_numpy(W[0]), to_numpy(S[0])  # host arrays between tasks (the graph's meta is NumPy)


def _distinct_rows(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, index)``: the distinct rows of a 2-D array (compared bit for bit, so NaN rows
    group too) and, per row of ``values``, the number of its copy in ``rows`` (int32)."""
    v = np.ascontiguousarray(values)
    keys = v.view(np.dtype((np.void, v.dtype.itemsize * v.shape[1]))).ravel()
    _, first, index = np.unique(keys, return_index=True, return_inverse=True)
    return v[first], index.astype(np.int32)


def _sum_parts(parts: list[dict[str, np.ndarray]]) -> np.ndarray:
    return np.sum([p["sums"] for p in parts], axis=0)


def _partial_sums(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {"sums": _sum_parts(parts)}


#: Time blocks whose partial sums one task adds up (a tree over long records).
_SUM_EVERY = 8


def _sum_tree(dsk: dict, keys: list, out_key: tuple, name: str) -> None:
    """``dsk[out_key]``: the sums of the blocks ``keys``, added in a tree of ``_SUM_EVERY``.

    One task over every block of a long record (thousands) made Dask's ordering run the
    blocks out of order, holding the input pieces of the halos in between: memory growing
    with the record. A tree lets it finish each stretch of the record before the next.
    """
    level = 0
    while len(keys) > _SUM_EVERY:
        nxt = []
        for i in range(0, len(keys), _SUM_EVERY):
            key = (name,) + out_key[1:] + (level, i)
            dsk[key] = (_partial_sums, keys[i : i + _SUM_EVERY])
            nxt.append(key)
        keys, level = nxt, level + 1
    dsk[out_key] = (_sum_parts, keys)


def _get(d: dict[str, np.ndarray], key: str) -> np.ndarray:
    return d[key]


# ------------------------------------------------------------------------------ time blocks in waves

logger = logging.getLogger(__name__)

#: Time-block tasks in flight per worker thread while a long record's reductions run: the
#: client, the scheduler and the driver hold that many blocks' tasks whatever the record's length.
_IN_FLIGHT_PER_THREAD = 2


@dataclass(frozen=True)
class _BlockSource:
    """Everything one time-block task reads, the same for every block (its size does not grow
    with the record): the lazy record (each task slices its block and halos from it, e.g.
    from Zarr), the streamed normalisation as numbers, and per pair chunk its rows and pairs.

    Block ``tj`` of chunk ``c`` is the task :func:`_block_sums` ``(source, c, tj)``."""

    x: da.Array  # (roi, time) before normalisation (gaps filled)
    streamed: Any  # bioxen_dask._stream.StreamedRecords of x's rows
    missing: da.Array | None  # (roi, time) missing-sample mask (nan_policy='interpolate')
    ref: da.Array | None  # (time,) the normalised reference (reference mode)
    chunk_rows: tuple[np.ndarray, ...]  # per pair chunk: roi positions of its rows (may repeat)
    chunk_ia: tuple[np.ndarray, ...]
    chunk_ib: tuple[np.ndarray, ...]
    curves: np.ndarray | None  # distinct threshold curves
    chunk_curves: tuple[np.ndarray | None, ...]  # per pair chunk: each pair's curve number
    block_runs: tuple[tuple[int, int], ...]  # time blocks as runs of (samples, count)
    halo: int
    ctx: _Ctx
    token: str

    @property
    def n_blocks(self) -> int:
        return sum(k for _, k in self.block_runs)

    def block(self, tj: int) -> tuple[int, int]:
        """``(t0, n_own)``: the first sample and the own samples of time block ``tj``."""
        t0 = 0
        for size, count in self.block_runs:
            if tj < count:
                return t0 + tj * size, size
            t0, tj = t0 + size * count, tj - count
        raise IndexError(tj)


def _runs(sizes: Sequence[int]) -> tuple[tuple[int, int], ...]:
    out: list[list[int]] = []
    for v in sizes:
        if out and out[-1][0] == v:
            out[-1][1] += 1
        else:
            out.append([int(v), 1])
    return tuple((a, b) for a, b in out)


def _block_sums(src: _BlockSource, c: int, tj: int) -> np.ndarray:
    """The partial sums of pair chunk ``c`` on time block ``tj``: its rows and halos read from
    the lazy record (only the chunks they touch), normalised, then :func:`_chunk_task`."""
    t0, n_own = src.block(tj)
    n_blocks = src.n_blocks
    lo = t0 - src.halo if tj > 0 else t0
    hi = t0 + n_own + src.halo if tj < n_blocks - 1 else t0 + n_own
    rows, back = np.unique(src.chunk_rows[c], return_inverse=True)
    with dask.config.set(scheduler="sync"):  # a small graph of a few input chunks, inside this task
        x = src.streamed.apply(np.asarray(src.x[rows, lo:hi].compute()), lo, rows)[back]
        gaps = None if src.missing is None else [np.asarray(src.missing[rows, lo:hi].compute())[back]]
        ref = None if src.ref is None else _ref_task(np.asarray(src.ref[lo:hi].compute()).reshape(1, -1), src.ctx)
    return _chunk_task([x], ref, gaps, src.curves, src.chunk_ia[c], src.chunk_ib[c], src.chunk_curves[c],
                       t0 - lo, t0, n_own, src.ctx)["sums"]


def _fold_in_order(n_units: int, submit: Any, fold: Any, limit: int) -> None:
    """``fold(i, submit(i).result())`` for ``i`` in order, at most ``limit`` units submitted and
    not yet folded: the oldest is waited for (and folded, its result released) before the next
    is submitted. In order, so the sums do not depend on which unit finished first."""
    pending: dict[int, Any] = {}
    done = 0
    for i in range(n_units):
        while i - done >= limit:
            fold(done, pending.pop(done).result())
            done += 1
        pending[i] = submit(i)
    while done < n_units:
        fold(done, pending.pop(done).result())
        done += 1


def _local_threads() -> int:
    """Threads for the blocks off a cluster: 1 under the synchronous scheduler, else the
    configured ``num_workers`` or the machine's cores."""
    if dask.config.get("scheduler", None) in ("sync", "synchronous", "single-threaded"):
        return 1
    return int(dask.config.get("num_workers", None) or os.cpu_count() or 1)


def _wave_sums(src: _BlockSource) -> list[np.ndarray]:
    """Per pair chunk, the sums of every time block, the blocks run in bounded waves.

    On a Dask cluster (this task runs on a worker) the blocks are submitted from here as
    tasks of their own (:func:`distributed.worker_client`; the scheduler spreads them over
    every worker), ``_IN_FLIGHT_PER_THREAD`` per worker thread at a time; elsewhere on a
    thread pool of the local scheduler's size. Either way the graph, the client and the
    scheduler hold a fixed number of blocks, not the record's thousands.
    """
    n_c, n_t = len(src.chunk_rows), src.n_blocks
    totals: list[np.ndarray | None] = [None] * n_c

    every = max(1, (n_c * n_t) // 20)

    def fold(i: int, s: np.ndarray) -> None:
        c = i % n_c
        totals[c] = s if totals[c] is None else totals[c] + s
        if (i + 1) % every == 0 or i + 1 == n_c * n_t:
            logger.info("coherence: %d of %d time-block tasks done (%d blocks x %d pair chunks)",
                        i + 1, n_c * n_t, n_t, n_c)

    def unit(i: int) -> tuple[int, int]:
        return i % n_c, i // n_c  # time-major: the record is finished stretch by stretch

    try:
        from distributed import get_worker, worker_client

        get_worker()
        on_cluster = True
    except (ImportError, ValueError):
        on_cluster = False
    if on_cluster:
        with worker_client() as client:
            limit = _IN_FLIGHT_PER_THREAD * max(1, sum(client.nthreads().values()))
            # sent once, not with every block; on every worker, so no worker is preferred for holding it
            [shared] = client.scatter([src], hash=False, broadcast=True)
            _fold_in_order(n_c * n_t, lambda i: client.submit(
                _block_sums, shared, *unit(i), key=f"coherence-block-{src.token}-{i}", pure=False), fold, limit)
    else:
        threads = _local_threads()
        if threads == 1:
            class _Done:
                def __init__(self, v: Any) -> None:
                    self.v = v

                def result(self) -> Any:
                    return self.v

            _fold_in_order(n_c * n_t, lambda i: _Done(_block_sums(src, *unit(i))), fold, 1)
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(threads, thread_name_prefix="coherence-block") as pool:
                _fold_in_order(n_c * n_t, lambda i: pool.submit(_block_sums, src, *unit(i)), fold,
                               _IN_FLIGHT_PER_THREAD * threads)
    return totals  # type: ignore[return-value]


def _wave_chunk(totals: list[np.ndarray], c: int) -> np.ndarray:
    return totals[c]


# ------------------------------------------------------------------------------ pair plans


@dataclass
class _PairPlan:
    """How pairs map onto row blocks and tasks."""

    mode: str
    index_a: np.ndarray  # (P,) roi positions (in the signals' roi axis)
    index_b: np.ndarray  # (P,) roi positions, -1 for the reference
    rows: np.ndarray  # positions of the rows laid out for the tasks (may repeat)
    row_chunks: tuple[int, ...]  # chunking of ``rows``
    chunk_blocks: list[list[int]]  # per pair chunk: the row blocks it reads
    chunk_ia: list[np.ndarray]  # per pair chunk: local row index of a
    chunk_ib: list[np.ndarray]  # per pair chunk: local row index of b (-1: reference)

    @property
    def pair_chunks(self) -> tuple[int, ...]:
        return tuple(len(a) for a in self.chunk_ia)


def _check_positions(values: Any, n_rois: int, what: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim == 0 and arr.dtype != bool:  # one roi given as a number
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be a 1-D list of roi positions (or a boolean mask), got shape {arr.shape}.")
    if arr.dtype == bool:
        if arr.shape != (n_rois,):
            raise ValueError(f"{what}: a boolean mask must have one entry per roi ({n_rois}), got {arr.shape}.")
        if not arr.any():
            raise ValueError(f"{what} selects no roi (the boolean mask is all False); select at least one roi.")
        return np.flatnonzero(arr)
    if arr.size == 0:
        raise ValueError(f"{what} is empty; select at least one roi.")
    if not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise ValueError(f"{what} must be integer roi indices (positions 0..{n_rois - 1}), got dtype {arr.dtype}.")
    bad = (arr < 0) | (arr >= n_rois)
    if bad.any():
        raise ValueError(
            f"{what}: roi index {int(arr[bad][0])} is out of range; the signals have {n_rois} rois "
            f"(valid indices 0..{n_rois - 1})."
        )
    return arr.astype(np.int64)


def _id_listing(roi_ids: np.ndarray) -> str:
    ids = [repr(v) if isinstance(v, str) else str(v) for v in roi_ids.tolist()]
    return ", ".join(ids) if len(ids) <= 6 else ", ".join(ids[:5]) + f" ... {ids[-1]}"


def select_rois(
    roi_ids: Any, rois: Any = None, roi_positions: Any = None, *,
    keys: tuple[str, str] = ("rois=", "roi_positions="), where: str = "signals",
) -> np.ndarray | None:
    """Positions (0-based, along the roi axis) of the rois a caller selects; None: every roi.

    One rule for the API and pipelines: ``rois`` are roi **ids**, the values of the signals'
    ``roi`` coordinate (suite2p / NWB / CaImAn ids, shown as ``roi_a``/``roi_b`` in results);
    ``roi_positions`` are **positions** (``index_a``/``index_b`` in results). A boolean
    mask (one entry per roi) is accepted by either. Order and repeats are kept.

    Parameters
    ----------
    roi_ids : array-like
        The signals' roi ids, in roi-axis order.
    rois, roi_positions : int, sequence or boolean mask, optional
        At most one of them.
    keys : (str, str)
        How the caller names the two (``("input.rois", "input.roi_positions")`` in pipelines).
    where : str
        What holds the rois, for messages (``"signals"``, ``"store"``).

    Raises
    ------
    ValueError
        Both given; an id the signals lack (naming the ids, and the other key); a position
        out of range.

    Examples
    --------
    >>> ids = np.array([0, 2, 3, 5, 8])  # suite2p kept these cells
    >>> select_rois(ids, rois=[5, 2]).tolist(), select_rois(ids, roi_positions=[3, 1]).tolist()
    ([3, 1], [3, 1])
    >>> select_rois(ids, rois=[4])
    Traceback (most recent call last):
    ...
    ValueError: rois: roi id 4 is not in the signals (5 rois, ids 0, 2, 3, 5, 8); rois= selects by roi id (the roi coordinate, roi_a/roi_b in results); to select by position use roi_positions= (0..4).
    """
    by_id, by_pos = keys
    name_id, name_pos = by_id.rstrip("="), by_pos.rstrip("=")
    if rois is not None and roi_positions is not None:
        raise ValueError(f"give {by_id} (roi ids) or {by_pos} (positions), not both.")
    ids = np.asarray(roi_ids)
    n = ids.shape[0]
    if roi_positions is not None:
        return _check_positions(roi_positions, n, name_pos)
    if rois is None:
        return None
    arr = np.asarray(rois)
    if arr.dtype == bool:
        return _check_positions(arr, n, name_id)
    arr = arr.reshape(1) if arr.ndim == 0 else arr
    if arr.ndim != 1:
        raise ValueError(f"{name_id} must be a 1-D list of roi ids (or a boolean mask), got shape {arr.shape}.")
    if arr.size == 0:
        raise ValueError(f"{name_id} is empty; select at least one roi.")
    lookup = {v: i for i, v in enumerate(ids.tolist())}
    out = np.empty(arr.size, np.int64)
    for k, v in enumerate(arr.tolist()):
        pos = lookup.get(v) if isinstance(v, (int, float, str)) else None
        if pos is None:
            raise ValueError(
                f"{name_id}: roi id {v!r} is not in the {where} ({n} rois, ids {_id_listing(ids)}); {by_id} "
                f"selects by roi id (the roi coordinate, roi_a/roi_b in results); to select by position use "
                f"{by_pos} (0..{n - 1})."
            )
        out[k] = pos
    return out


def pair_table(pairs: Any, n_rois: int) -> np.ndarray:
    """Validate a list of ``(roi, roi)`` index pairs; returns an ``(n_pairs, 2)`` int array.

    Raises
    ------
    ValueError
        Wrong shape, non-integer indices, or an index out of ``0..n_rois-1`` (the message
        names the first offending pair).

    Examples
    --------
    >>> pair_table([(0, 1), (2, 3)], 4).tolist()
    [[0, 1], [2, 3]]
    >>> pair_table([(0, 7)], 4)
    Traceback (most recent call last):
    ...
    ValueError: pairs[0] = (0, 7): roi index 7 is out of range; the signals have 4 rois (valid indices 0..3).
    """
    try:
        arr = np.asarray(pairs)
    except Exception as exc:  # pragma: no cover - ragged input
        raise ValueError(f"pairs must be a list of (roi, roi) index pairs: {exc}") from None
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] == 0:
        raise ValueError(f"pairs must be a non-empty list of (roi, roi) index pairs, got shape {arr.shape}.")
    if not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise ValueError(f"pairs must hold integer roi indices, got dtype {arr.dtype}.")
    bad = (arr < 0) | (arr >= n_rois)
    if bad.any():
        k = int(np.flatnonzero(bad.any(axis=1))[0])
        idx = int(arr[k][bad[k]][0])
        raise ValueError(
            f"pairs[{k}] = ({int(arr[k, 0])}, {int(arr[k, 1])}): roi index {idx} is out of range; the "
            f"signals have {n_rois} rois (valid indices 0..{n_rois - 1})."
        )
    return arr.astype(np.int64)


def _reference_plan(sel: np.ndarray, roi_chunk: int) -> _PairPlan:
    chunks = tuple(len(range(i, min(i + roi_chunk, len(sel)))) for i in range(0, len(sel), roi_chunk))
    return _PairPlan(
        mode="reference", index_a=sel, index_b=np.full(len(sel), -1, np.int64), rows=sel,
        row_chunks=chunks, chunk_blocks=[[c] for c in range(len(chunks))],
        chunk_ia=[np.arange(n) for n in chunks], chunk_ib=[np.full(n, -1, np.int64) for n in chunks],
    )


def _list_plan(table: np.ndarray, pair_chunk: int) -> _PairPlan:
    rows: list[np.ndarray] = []
    ia: list[np.ndarray] = []
    ib: list[np.ndarray] = []
    for p0 in range(0, len(table), pair_chunk):
        t = table[p0 : p0 + pair_chunk]
        uniq, inv = np.unique(t.ravel(), return_inverse=True)
        inv = inv.reshape(t.shape)
        rows.append(uniq)
        ia.append(inv[:, 0])
        ib.append(inv[:, 1])
    return _PairPlan(
        mode="pairs", index_a=table[:, 0], index_b=table[:, 1], rows=np.concatenate(rows),
        row_chunks=tuple(len(r) for r in rows), chunk_blocks=[[c] for c in range(len(rows))],
        chunk_ia=ia, chunk_ib=ib,
    )


#: Most rois per all-pairs block (a tile of two blocks holds up to 2 x 256 rows' shares).
_MAX_TILE = 256


def _all_pairs_tile(grid: ScaleGrid, n_ext: int, scale_kernel: str, tol: float, method: str, block_bytes: int,
                    per_row: int) -> int:
    """Rois per all-pairs block, from ``block_bytes``: a task holds the shares of its two
    blocks' rows (``method='multirate'``: :meth:`RecordShare` bytes of the plan; ``exact``:
    the rows' transforms and powers) and one pair's working arrays."""
    if method == "multirate":
        plan = coherence_plan(grid, n_ext, scale_kernel, tol)
        row = plan.share_bytes()
        pair = grid.n_scales * n_ext * (4 + 8 + 8)  # coherence, cross spectrum, band temporaries
        return max(2, min(_MAX_TILE, (block_bytes - pair) // (2 * row)))
    return max(2, min(64, block_bytes // 2 // max(1, per_row) // 2))


def _all_pairs_plan(sel: np.ndarray, tile: int) -> _PairPlan:
    blocks = [np.arange(i, min(i + tile, len(sel))) for i in range(0, len(sel), tile)]
    a_all, b_all, chunk_blocks, ia, ib = [], [], [], [], []
    for i, bi in enumerate(blocks):
        for j in range(i, len(blocks)):
            bj = blocks[j]
            if i == j:
                la, lb = np.triu_indices(len(bi), k=1)
                if la.size == 0:
                    continue
                chunk_blocks.append([i])
                ia.append(la)
                ib.append(lb)
                a_all.append(sel[bi[la]])
                b_all.append(sel[bi[lb]])
            else:
                la, lb = np.meshgrid(np.arange(len(bi)), np.arange(len(bj)), indexing="ij")
                la, lb = la.ravel(), lb.ravel()
                chunk_blocks.append([i, j])
                ia.append(la)
                ib.append(lb + len(bi))
                a_all.append(sel[bi[la]])
                b_all.append(sel[bj[lb]])
    if not ia:
        raise ValueError("all_pairs needs at least two rois in the selection.")
    return _PairPlan(
        mode="all_pairs", index_a=np.concatenate(a_all), index_b=np.concatenate(b_all), rows=sel,
        row_chunks=tuple(len(b) for b in blocks), chunk_blocks=chunk_blocks, chunk_ia=ia, chunk_ib=ib,
    )


# ------------------------------------------------------------------------------ inputs


def _pandas_signals(frame: Any) -> xr.DataArray:
    """A pandas DataFrame (time index, one column per roi) as ``(roi, time)`` signals: the
    columns are the roi ids; a numeric, datetime or timedelta index is the time (seconds from
    the first row); a default ``RangeIndex`` (row numbers) carries no time."""
    import pandas as pd

    index = frame.index
    coords: dict[str, Any] = {"roi": np.asarray(frame.columns)}
    if isinstance(index, pd.DatetimeIndex):
        coords["time"] = np.asarray((index - index[0]).total_seconds(), dtype=float)
    elif isinstance(index, pd.TimedeltaIndex):
        coords["time"] = np.asarray(index.total_seconds(), dtype=float)
    elif not isinstance(index, pd.RangeIndex) and np.issubdtype(np.asarray(index).dtype, np.number):
        coords["time"] = np.asarray(index, dtype=float)
    values = frame.to_numpy()
    if values.dtype.kind not in "fiu":
        bad = [c for c in frame.columns if frame[c].dtype.kind not in "fiu"][:3]
        raise ValueError(f"the DataFrame's columns must be numbers (one trace per roi); {bad} are not.")
    return xr.DataArray(values.T, dims=("roi", "time"), coords=coords)


def _array_signals(values: Any) -> xr.DataArray:
    """A 2-D NumPy or Dask array, read ``(roi, time)`` (as MNE's ``(n_channels, n_times)``)."""
    if values.ndim != 2:
        hint = "; one trace? pass it as shape (1, n_frames)" if values.ndim == 1 else ""
        raise ValueError(f"signals must be a 2-D (roi, time) array, got shape {tuple(values.shape)}{hint}.")
    rows, cols = values.shape
    if rows > cols:
        raise ValueError(
            f"an array is read as (roi, time): {rows} rows x {cols} columns would be {rows} rois of {cols} "
            "frames. If it is (time, roi), one column per roi, pass signals.T; otherwise pass an xarray "
            "DataArray with dims ('roi', 'time')."
        )
    return xr.DataArray(values, dims=("roi", "time"))


def _unwrap_signals(signals: Any, dim: str | None = None) -> tuple[xr.DataArray, xr.Dataset | None, str | None]:
    """(signals DataArray ``(roi, time)``, its Dataset if any, store path if known).

    ``dim`` names the time dimension of a DataArray whose dims are not ``roi``/``time``; the
    other dimension is the rois, and the time dimension's coordinate (frame numbers, usually)
    is not read as seconds.
    """
    path = None
    ds = None
    if isinstance(signals, (str, os.PathLike)):
        from .io import open_signals_store

        path = str(Path(signals).absolute())  # workers may run elsewhere (another cwd)
        ds = open_signals_store(path)
    elif isinstance(signals, xr.Dataset):
        ds = signals
        path = ds.encoding.get("source")
    if ds is not None:
        if "signals" not in ds:
            raise ValueError("the Dataset has no 'signals' variable; pass bioxen_dask.io.open_signals_store(path).")
        sig = ds["signals"]
        sig = sig.assign_attrs({**ds.attrs, **sig.attrs})
    elif isinstance(signals, xr.DataArray):
        sig = signals
    elif isinstance(signals, (np.ndarray, da.Array)):
        sig = _array_signals(signals)
    elif type(signals).__name__ == "DataFrame" and hasattr(signals, "to_numpy"):
        sig = _pandas_signals(signals)
    else:
        raise TypeError(
            "signals must be an xarray DataArray (roi, time), a signals-store Dataset, the path of a signals "
            "store, a 2-D NumPy/Dask array (roi, time) with dt= or fs=, or a pandas DataFrame (time index, one "
            f"column per roi); got {type(signals).__name__}."
        )
    if sig.ndim != 2:
        raise ValueError(f"signals must be 2-D (roi, time), got dims {sig.dims}.")
    if dim is not None and dim != "time":
        if dim not in sig.dims:
            raise ValueError(f"dim={dim!r} is not a dimension of the signals {tuple(sig.dims)}; name the time "
                             "dimension.")
        other = next(d for d in sig.dims if d != dim)
        if dim in sig.coords:  # frame numbers, not seconds: dt comes from dt=, fs= or the fs attribute
            sig = sig.drop_vars(dim)
        sig = sig.rename({dim: "time"} if other == "roi" else {dim: "time", other: "roi"})
    elif "time" not in sig.dims:
        raise ValueError(
            f"signals must be 2-D (roi, time), got dims {tuple(sig.dims)}: pass dim= naming the time dimension "
            f"(e.g. dim={sig.dims[-1]!r}); the other dimension is the rois."
        )
    elif "roi" not in sig.dims:
        sig = sig.rename({next(d for d in sig.dims if d != "time"): "roi"})
    sig = sig.transpose("roi", "time")
    return sig, ds, path


def _interval(dt: float | None, fs: float | None) -> float | None:
    """The sampling interval given as ``dt`` or ``fs`` (or None); both must agree."""
    if fs is None:
        return dt
    from .io._store import validate_fs

    step = 1.0 / validate_fs(fs)
    if dt is not None and not math.isclose(check_dt(dt), step, rel_tol=1e-6):
        raise ValueError(f"dt={dt:g} contradicts fs={fs:g} (dt=1/fs={step:g}); pass one of them.")
    return step


def _as_dask(values: Any, row_chunk: int | None = None) -> da.Array:
    if isinstance(values, da.Array):
        return values
    arr = np.asarray(values)
    return da.from_array(arr, chunks=(row_chunk or arr.shape[0],) + arr.shape[1:] if arr.ndim > 1 else arr.shape)


def _normalise(x: da.Array, normalize: bool, remove_mean: bool, detrend: bool = False) -> da.Array:
    """Optional least-squares line removal, then ``(x - mean) / std`` per row (float64; constant
    rows stay constant, not NaN)."""
    axis = -1
    x = x.astype(np.float64)
    if detrend:
        n = x.shape[-1]
        tc = np.arange(n, dtype=np.float64) - (n - 1) / 2
        slope = (x * tc).sum(axis=axis, keepdims=True) / float(tc @ tc) if n > 1 else 0.0
        x = x - x.mean(axis=axis, keepdims=True) - slope * tc
    if normalize:
        mean = x.mean(axis=axis, keepdims=True)
        std = x.std(axis=axis, keepdims=True)
        return (x - mean) / da.where(std > 0, std, 1.0)
    if remove_mean:
        return x - x.mean(axis=axis, keepdims=True)
    return x


#: Names of the population-mean reference.
MEAN_REFERENCES = ("mean", "population_mean", "population-mean")


def _resolve_reference(
    reference: Any, sig: xr.DataArray, ds: xr.Dataset | None, x_norm: da.Array, n: int,
) -> tuple[da.Array, str]:
    """(reference trace (n,) lazily, its name)."""
    if isinstance(reference, str):
        key = reference.strip()
        if key.lower() in MEAN_REFERENCES:
            return x_norm.mean(axis=0), "population_mean"
        refs = None
        if ds is not None and "references" in ds:
            refs = ds["references"]
        if refs is None:
            raise ValueError(
                f"reference {reference!r}: the signals carry no references; pass the Dataset from "
                "bioxen_dask.io.open_signals_store (or the store path), an array, or 'mean'."
            )
        names = [str(v) for v in np.asarray(refs["reference"].values)]
        if key not in names:
            raise ValueError(f"reference {reference!r} is not in the signals store; it holds {names} (or use 'mean').")
        trace = refs.isel(reference=names.index(key)).data
        return _as_dask(trace), key
    if isinstance(reference, xr.DataArray):
        if reference.ndim != 1:
            raise ValueError(f"an external reference must be 1-D (time), got dims {reference.dims}.")
        values = reference.data
        # xarray names a DataArray after its dask array ('array-<token>') when none is given
        unnamed = reference.name is None or (isinstance(values, da.Array) and reference.name == values.name)
        name = "external" if unnamed else str(reference.name)
        if "time" in reference.coords and "time" in sig.coords and reference.sizes.get("time") == n:
            rt = np.asarray(reference["time"].values, dtype=float)
            st = np.asarray(sig["time"].values, dtype=float)
            step = abs(float(st[1] - st[0])) if n > 1 else 1.0
            if not np.allclose(rt, st, rtol=0, atol=1e-6 * step):
                k = int(np.flatnonzero(~np.isclose(rt, st, rtol=0, atol=1e-6 * step))[0])
                raise ValueError(
                    f"the reference's time coordinate differs from the signals' (frame {k}: {rt[k]:g} s against "
                    f"{st[k]:g} s): align it to the signals (e.g. reference.interp(time=signals.time)) or pass "
                    "its values (reference.values) if the frames correspond."
                )
    else:
        name = "external"
        values = reference
        if not isinstance(values, da.Array):
            values = np.asarray(values)
            if values.dtype == object or not np.issubdtype(values.dtype, np.number) or np.iscomplexobj(values):
                raise ValueError("an external reference must be a real numeric 1-D array (one value per frame).")
    if values.ndim != 1 or values.shape[0] != n:
        raise ValueError(
            f"the reference has shape {tuple(values.shape)}; it needs one value per frame ({n},)."
        )
    return _as_dask(values), name


def check_reference(trace: Any, name: str, *, constant: str, dt: float) -> None:
    """A stored or external reference is finite (it is never interpolated) and, with
    ``constant='raise'``, not constant (one read of the trace)."""
    what = "the reference" if name == "external" else f"the reference {name!r}"
    scan = scan_traces(_as_dask(trace).reshape(1, -1))
    if scan.n_missing[0]:
        k = int(scan.first_missing[0])
        raise ValueError(
            f"{what} has non-finite samples (NaN/inf): {int(scan.n_missing[0])} of them, the first at frame {k} "
            f"(t = {k * dt:.6g} s). References are not interpolated (nan_policy applies to the rois): fill or "
            "cut the gaps in the reference first."
        )
    if scan.constant[0] and constant == "raise":
        raise ValueError(f"{what} is constant (zero variance): every pair's coherence would be 0/0; pass a "
                         "varying reference.")


# ------------------------------------------------------------------------------ significance


def _ar1_block(block: np.ndarray, estimator: str) -> np.ndarray:
    from .significance import ar1_naive, estimate_ar1

    out = np.full((block.shape[0], 2), np.nan)
    for i, row in enumerate(block):
        if not np.all(np.isfinite(row)) or np.ptp(row) == 0:
            continue
        try:
            out[i, 0] = estimate_ar1(row, estimator)
        except ValueError:  # Allen & Smith has no root: fall back to the naive estimate
            try:
                out[i, 0] = ar1_naive(row)[0]
                out[i, 1] = 1.0
            except ValueError:
                pass
    return out


def _significance(
    x_norm: da.Array, ref: da.Array | None, plan: _PairPlan, grid: ScaleGrid, p: Preset, *,
    mc_count: int, level: float, seed: int, bucket: float | None, boundary: str, dtype: str,
    cache: Any, progress: bool, streamed: tuple = (None, None), n_samples: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """AR(1) per roi (and reference); thresholds from the significance stage's bucket cache.

    ``streamed``: the :class:`bioxen_dask._stream.StreamedRecords` of the rois (and the
    reference) of a record cut into time blocks, whose AR(1)s come from the streaming pass
    instead of a read of whole rows. ``n_samples``: surrogate length (default the record's;
    a time block's for long records: see :func:`coherence`).

    Returns ``threshold (P, J)``, ``ar1_a (P,)``, ``ar1_b (P,)`` and provenance attrs.
    Pairs with a constant trace (no AR(1) coefficient) get NaN thresholds.
    """
    from .significance import ar1_bucket as bucket_of
    from .significance import ar1_thresholds_many
    from .significance.threshold_cache import exact_engine_scales

    need = np.unique(np.concatenate([plan.index_a, plan.index_b[plan.index_b >= 0]]))
    g_rows = np.full(x_norm.shape[0], np.nan)
    fallback = np.zeros(x_norm.shape[0], bool)
    if streamed[0] is not None:
        g_rows[streamed[0].rows], fallback[streamed[0].rows] = streamed[0].ar1(p.ar1_estimator)
        g_ref = float(streamed[1].ar1(p.ar1_estimator)[0][0]) if ref is not None else np.nan
    else:
        rows = x_norm[need] if len(need) < x_norm.shape[0] else x_norm
        est = rows.rechunk({1: -1}).map_blocks(
            _ar1_block, p.ar1_estimator, dtype=float, chunks=(rows.chunks[0], (2,)),
            meta=np.empty((0, 0)),
        )
        parts = [est]
        if ref is not None:
            parts.append(ref.reshape(1, -1).rechunk({1: -1}).map_blocks(
                _ar1_block, p.ar1_estimator, dtype=float, chunks=((1,), (2,)), meta=np.empty((0, 0))))
        computed = dask.compute(*parts)
        g_rows[need] = computed[0][:, 0]
        fallback[need] = computed[0][:, 1] == 1
        g_ref = float(computed[1][0, 0]) if ref is not None else np.nan
    n_samples = int(x_norm.shape[1]) if n_samples is None else int(n_samples)
    if ref is not None and not np.isfinite(g_ref):
        raise ValueError("the reference is constant or not finite: its AR(1) coefficient (and coherence) is undefined.")
    ga = g_rows[plan.index_a]
    gb = np.where(plan.index_b >= 0, g_rows[np.maximum(plan.index_b, 0)], g_ref)
    ok = np.isfinite(ga) & np.isfinite(gb) & (np.abs(ga) < 1) & (np.abs(gb) < 1)
    thr = np.full((len(ga), grid.n_scales), np.nan)
    n_buckets = 0
    options = dict(scale_kernel=p.scale_kernel, boundary=boundary, dtype=dtype, remove_mean=p.remove_mean)
    if ok.any():
        thr[ok] = ar1_thresholds_many(grid, ga[ok], gb[ok], levels=float(level), mc_count=int(mc_count),
                                      seed=int(seed), bucket_width=bucket, cache=cache, progress=progress,
                                      n_samples=n_samples, **options)
        if bucket is not None:
            b1, b2 = bucket_of(ga[ok], bucket), bucket_of(gb[ok], bucket)
            n_buckets = len({(min(a, b), max(a, b)) for a, b in zip(b1.tolist(), b2.tolist())})
        else:
            n_buckets = len({(min(a, b), max(a, b)) for a, b in zip(ga[ok].tolist(), gb[ok].tolist())})
    attrs = {
        "significance": "AR(1) Monte Carlo (Grinsted et al. 2004), thresholds per AR(1) bucket pair",
        "significance_level": float(level),
        "mc_count": int(mc_count),
        "seed": int(seed),
        "ar1_estimator": p.ar1_estimator,
        "ar1_bucket_width": "none" if bucket is None else float(bucket),
        "ar1_bucket_pairs": int(n_buckets),
        "ar1_reference": g_ref if ref is not None else "n/a",
        "ar1_fallback_to_naive": int(fallback[need].sum()),
        "ar1_undefined": int((~ok).sum()),
        "surrogate_length": n_samples,
        "significance_exact_engine_periods": exact_engine_scales(grid, **options),
    }
    return thr, ga, gb, attrs


def _mean_nulls(grid: ScaleGrid, p: Preset, ga: np.ndarray, gb: np.ndarray, *, n: int, mc_count: int, seed: int,
                boundary: str, dtype: str, bucket: Any, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(nulls (bucket pairs, mc, scales), index (pairs,))`` of the time-averaged coherence;
    index -1 where a pair's AR(1) is undefined (constant trace)."""
    from .significance import ar1_mean_nulls

    ok = np.isfinite(ga) & np.isfinite(gb) & (np.abs(ga) < 1) & (np.abs(gb) < 1)
    index = np.full(len(ga), -1, np.int64)
    if not ok.any():
        return np.full((1, int(mc_count), grid.n_scales), np.nan), index
    nulls, index[ok], _ = ar1_mean_nulls(
        grid, ga[ok], gb[ok], n_samples=n, mc_count=int(mc_count), seed=int(seed),
        bucket_width=None if bucket in (None, "none") else float(bucket), progress=progress,
        scale_kernel=p.scale_kernel, boundary=boundary, dtype=dtype, remove_mean=p.remove_mean)
    return nulls, index


def _beta_tail(null: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Upper tail at ``observed`` of a beta fitted per scale to ``null`` (m, scales) by moments."""
    from scipy.stats import beta

    mu, var = np.nanmean(null, axis=0), np.nanvar(null, axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        common = mu * (1 - mu) / var - 1
        a, b = mu * common, (1 - mu) * common
        return np.where((a > 0) & (b > 0), beta.sf(observed, a, b), np.nan)


def _pvalue_block(mean: np.ndarray, index: np.ndarray, nulls: np.ndarray, how: str) -> np.ndarray:
    from .significance import pvalues_from_null

    out = np.full(mean.shape, np.nan)
    index = index.reshape(-1)
    for b in np.unique(index[index >= 0]):
        rows = index == b
        out[rows] = (_beta_tail if how == "beta" else pvalues_from_null)(nulls[b], mean[rows])
    return out


def _pvalue_array(mean: da.Array, nulls: np.ndarray, index: np.ndarray, how: str) -> da.Array:
    """Lazy p-values of ``coherence_mean`` (pair, period), chunked as it is."""
    idx = da.from_array(index, chunks=(mean.chunks[0],))
    return da.map_blocks(_pvalue_block, mean, idx[:, None], dask.delayed(nulls), how, dtype=float)  # nulls: one key


# ------------------------------------------------------------------------------ the builder


def _warn_few_surrogates(significance: Any, mc_count: Any, level: float) -> None:
    """Warn when ``mc_count`` is below ``1 / (1 - level)`` (20 at 0.95): too few surrogate pairs
    for the level's quantile."""
    import numbers
    import warnings

    need = round(1 / (1 - level))
    if isinstance(significance, str) and isinstance(mc_count, numbers.Integral) and 0 < mc_count < need:
        warnings.warn(
            f"mc_count={mc_count}: fewer surrogate pairs than 1/(1 - level) = {need} at level {level:g}: the "
            f"thresholds rest on too few surrogates to be a {level:g} quantile worth reporting. Use mc_count >= "
            f"{need} (pycwt uses 300).",
            UserWarning, stacklevel=3,
        )


def _mode_of(reference: Any, pairs: Any, all_pairs: bool) -> str:
    if not isinstance(all_pairs, (bool, np.bool_)):
        raise ValueError(f"all_pairs must be True or False, got {all_pairs!r}; select rois with rois=.")
    given = [name for name, on in (("reference", reference is not None), ("pairs", pairs is not None),
                                   ("all_pairs", bool(all_pairs))) if on]
    if len(given) != 1:
        raise ValueError(
            "choose exactly one pair mode: reference=... (every roi against one trace), "
            f"pairs=[(a, b), ...] (a list) or all_pairs=True; got {given or 'none'}."
        )
    return given[0]


def coherence(
    signals: Any,
    *,
    reference: Any = None,
    pairs: Any = None,
    all_pairs: bool = False,
    rois: Any = None,
    roi_positions: Any = None,
    dt: float | None = None,
    fs: float | None = None,
    dim: str | None = None,
    grid: ScaleGrid | None = None,
    min_period: float | None = None,
    max_period: float | None = None,
    dj: float = 1 / 12,
    s0: float | None = None,
    J: int | None = None,
    wavelet: str | MotherWavelet = "morlet",
    preset: str | None = None,
    boundary: str | None = None,
    dtype: str = "float32",
    tol: float = DEFAULT_TOL,
    normalize: bool = True,
    detrend: str | None = None,
    nan_policy: str = "raise",
    max_gap: float | None = None,
    constant: str = "nan",
    maps: bool = False,
    map_step: float | None = None,
    significance: Any = "ar1",
    mc_count: int = 300,
    level: float | None = None,
    seed: int = 0,
    ar1_bucket: float | None = None,
    threshold_cache: Any = None,
    progress: bool = False,
    roi_chunk: int | None = None,
    pair_chunk: int | None = None,
    time_chunk: int | None = None,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    workers: int | None = None,
    device: str = "cpu",
    method: str = "exact",
    p_values: bool | str = False,
) -> xr.Dataset:
    """Wavelet coherence of many pairs of signals, lazily, as a labelled Dataset.

    Parameters
    ----------
    signals : xarray.DataArray, signals-store Dataset, path, NumPy/Dask array or pandas DataFrame
        The traces; dask-backed for anything large (:func:`bioxen_dask.io.open_signals`).
        A DataArray ``(roi, time)`` (other dim names: see ``dim``); a 2-D array ``(roi,
        time)``, as MNE's ``(n_channels, n_times)``, with ``dt`` or ``fs`` (an array with
        more rows than columns is refused: pass ``signals.T`` if it is time x roi); a
        DataFrame with one row per frame and one column per roi (the columns are the roi
        ids; a numeric, datetime or timedelta index is the time). ``dt`` comes from the
        ``time`` coordinate or the ``fs`` attribute when not given.
    reference : str, array-like or DataArray, optional
        **Reference mode**: every selected roi against one trace: the name of a reference
        stored with the signals (e.g. ``"stimulus"``; needs the store's Dataset or path),
        ``"mean"`` (the population mean of the selected, normalised rois), or an external
        1-D array with one value per frame.
    pairs : sequence of (int, int), optional
        **List mode**: explicit ``(roi_a, roi_b)`` pairs, as roi *positions* (0-based).
    all_pairs : bool
        **All-pairs mode**: every pair ``a < b`` within ``rois`` (``roi_a`` before ``roi_b`` in
        the signals' roi order, whatever the order of ``rois``; a roi listed twice is an
        error), tiled so that each roi's transform is computed once per tile and reused by
        every pair in it.
    rois : int, str, sequence or boolean mask, optional
        Roi **ids** to analyse (reference and all-pairs modes): values of the signals' ``roi``
        coordinate, as ``roi_a``/``roi_b`` of the result show them (for signals without a
        ``roi`` coordinate the ids are the positions); default all. Reference mode keeps their
        order (and repeats). Rois outside the selection are not analysed: their gaps and
        constancy do not matter. See :func:`select_rois`.
    roi_positions : int, sequence or boolean mask, optional
        The same selection by 0-based **position** along the roi axis (``index_a`` of the
        result) instead; at most one of ``rois`` and ``roi_positions``.
    dt : float, optional
        Sampling interval (s), when the signals carry no time coordinate or ``fs``.
    fs : float, optional
        Or the sampling rate (Hz), ``1 / dt``.
    dim : str, optional
        The time dimension of a DataArray whose dims are not ``("roi", "time")``, e.g.
        ``dim="frame"`` for dims ``("cell", "frame")``; the other dimension is the rois (its
        coordinate the roi ids). The time dimension's coordinate is then not read as seconds
        (frame numbers): give ``dt``/``fs`` or an ``fs`` attribute.
    grid : ScaleGrid, optional
        The scale grid; otherwise built from ``min_period``/``max_period`` (s) and ``dj``,
        or from pycwt's ``s0``/``J``/``dj`` (see :func:`period_grid`).
    wavelet, preset, boundary, dtype, tol
        As :func:`bioxen_dask.wavelet_coherence`: naming a preset selects its tool's boundary
        unless ``boundary`` is given; neither given: pycwt's conventions, ``linear``
        (``boundary='valid'`` is not offered: the reductions are taken outside the cone of
        influence already). Long records are cut into time blocks only with
        ``boundary='linear'``.
    normalize : bool
        Standardise every trace (and the reference) ``(y - mean) / std`` first, as pycwt's
        ``wct``; coherence does not depend on it, phase and lag neither.
    nan_policy : {"raise", "interpolate"}
        Missing samples (NaN/inf, e.g. from ``ingest(..., nan_policy="keep")``). Before any
        computation the analysed traces are scanned once (one read of the data).
        ``"raise"`` (default): any missing sample is an error naming the roi and frame.
        ``"interpolate"``: gaps of at most ``max_gap`` seconds are filled by linear
        interpolation (a gap touching an end of the record takes the nearest finite value),
        *before* normalisation; every filled sample then counts as an internal edge of the
        record, and at each scale the samples within its cone of influence (the reach of
        :func:`bioxen_dask.kernels.gap_mask`: ``sqrt(2) * scale`` on each side for Morlet,
        the rule the COI applies at the record's ends) are NaN in the ``coherence``/``phase``
        maps and left out of every reduction (means, counts, ``significant_fraction``) of
        the pairs the trace belongs to. Longer gaps, and traces with no finite sample, are
        errors. External and stored references must be finite; the population mean
        (``reference="mean"``) is taken over the filled traces.
    max_gap : float, optional
        Longest gap (seconds) filled with ``nan_policy="interpolate"`` (required there).
    constant : {"nan", "raise"}
        Constant traces: their pairs give NaN (default) or they are an error naming them
        (pipelines use ``"raise"``).
    maps : bool
        Also return the full ``coherence`` and ``phase`` maps ``(pair, period, time)``
        (large: 8 bytes per pair, scale and sample in float32).
    map_step : float, optional
        Time step (s) of the maps, for long records: each map value is the mean coherence
        (and the circular mean phase) over a window of ``round(map_step / dt)`` samples
        (attribute ``map_step_s``), the time coordinate the window's centre. Windows start at
        the first sample; time blocks are cut at whole windows, so each block writes its own
        region of a Zarr store (``ds.to_zarr(...)``). A map at 30 kHz for a day is 2.6e9
        samples per scale; at the largest scale's own resolution it is a figure. Default:
        every sample.
    significance : {"ar1", None} or array-like
        ``"ar1"``: Monte Carlo thresholds from AR(1) surrogate pairs as long as the record,
        or as one extended time block when the record is cut into blocks (computed now, see
        the module notes for what that assumes); ``None``: no ``threshold``/``significant_fraction``; an array
        ``(period,)`` or ``(pair, period)``: thresholds to use as given.
    mc_count, level, seed
        Surrogate pairs per AR(1) bucket pair, significance level (preset default 0.95),
        seed of the surrogates.
    ar1_bucket : float, optional
        Width of the AR(1) buckets that share one threshold curve, in ``atanh(g)``
        (default: the significance stage's, 0.1; see
        :mod:`bioxen_dask.significance.threshold_cache` for the bias it implies).
    threshold_cache : ThresholdCache or path, optional
        Where threshold null distributions are cached (default ``$BIOXEN_DASK_CACHE`` or
        ``~/.cache/bioxen-dask/thresholds``).
    progress : bool
        Show progress of the significance stage.
    roi_chunk, pair_chunk, time_chunk, block_bytes
        Task sizes: rois per reference-mode task, pairs per list-mode task (also the tile
        size in all-pairs mode is derived from ``block_bytes``), samples per time block
        (long records), working-memory target of one task. Without maps, the time blocks
        of a long record run in bounded waves from one graph task (two blocks per worker
        thread in flight; on a ``distributed`` cluster each block a task of its own, spread
        over every worker), so the graph does not grow with the record's length.
    workers : int, optional
        FFT threads inside each task.
    device : {"cpu", "gpu"}
        Where the blocks are computed. ``"gpu"``: CuPy on the worker's current CUDA device
        (e.g. a ``--cluster cuda`` worker), with roi/pair batches sized from the device's free
        memory; inputs go to the device and results come back to the host at the end of each
        task, so the written dataset is the same (float32 to ~1e-4 relative). Without CuPy or
        a CUDA device the tasks raise :class:`bioxen_dask.kernels.GPUUnavailableError`,
        never falling back to the CPU.
    method : {"exact", "multirate"}
        How each pair's maps are computed: ``"exact"`` (full-rate transforms and smoothing;
        in reference mode the reference is transformed once per time block, once per
        block and roi chunk when the blocks run in waves) or
        ``"multirate"`` (:func:`bioxen_dask.kernels.multirate_coherence` on each pair's
        time block, on decimated grids wherever the scale allows: far less work on grids
        whose smallest period spans a few samples or more; the same coherence to ~3e-6; in
        reference mode the reference's share is computed once per task, otherwise both
        traces of every pair are transformed). ``"multirate"`` needs a Morlet grid,
        ``dtype="float32"`` and ``device="cpu"``.
    p_values : {False, True, "empirical", "beta"}
        With ``significance="ar1"``: also ``p_value`` on ``(pair, period)``, the p-value of
        each pair's ``coherence_mean`` against the null of the time-averaged coherence of its
        AR(1) bucket pair (:func:`bioxen_dask.significance.ar1_mean_nulls`: ``mc_count``
        data-length surrogate pairs per bucket pair, not cached). ``True``/``"empirical"``:
        the Monte Carlo rank ``(1 + #{null >= observed}) / (mc_count + 1)`` (exact, but never
        below ``1 / (mc_count + 1)``); ``"beta"``: the upper tail of a beta distribution
        fitted to the null by its mean and variance (fine p-values from few surrogates, for
        FDR control over many pairs; an approximation in the far tail). Control the false
        discovery rate across pairs with :func:`bioxen_dask.significance.fdr_bh` (e.g. on
        one period's p-values of every pair); with empirical p-values, ``m`` tests and ``k``
        discoveries need ``mc_count + 1 >= m / (0.05 k)``.

    Returns
    -------
    xarray.Dataset
        Lazy (dask-backed) variables on ``(pair, period)``: ``coherence_mean`` (mean squared
        coherence outside the COI), ``phase_mean`` (circular mean of the phase outside the
        COI, rad), ``phase_consistency`` (mean resultant length, 0..1), ``lag`` (s, see
        :data:`LAG_CONVENTION`), and with significance ``significant_fraction`` (share of
        the time outside the COI with coherence >= threshold) and ``threshold``; with
        ``maps`` also ``coherence`` and ``phase`` on ``(pair, period, time)``; with
        ``nan_policy="interpolate"`` also ``samples`` (the samples behind each pair's
        reductions: ``coi_samples`` less those a gap reaches). Coordinates:
        ``roi_a``, ``roi_b`` (roi ids, or the reference's name), ``index_a``, ``index_b``
        (positions; -1 = reference) on ``pair``, and ``period``, ``scale``, ``frequency``,
        ``coi_samples`` on ``period`` (samples outside the COI). ``ds.set_index(pair=["roi_a",
        "roi_b"])`` gives a pair MultiIndex for ``.sel``. Attributes record every parameter,
        the package version and the input store and its fingerprint when known.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> t = np.arange(3000) / 10
    >>> rng = np.random.default_rng(0)
    >>> stim = np.sin(2 * np.pi * t / 5)
    >>> x = np.stack([np.sin(2 * np.pi * (t + 1.25) / 5), rng.standard_normal(t.size)])
    >>> sig = xr.DataArray(x + 0.3 * rng.standard_normal(x.shape), dims=("roi", "time"),
    ...                    coords={"time": t})
    >>> ds = coherence(sig, reference=stim, min_period=1, max_period=20, significance=None)
    >>> at5 = ds.sel(period=5, method="nearest").compute()
    >>> at5.coherence_mean.values.round(1).tolist()  # noise: the bias of smoothed coherence
    [1.0, 0.3]
    >>> round(float(at5.lag[0]), 2)  # roi 0 leads the stimulus by 1.25 s
    1.27
    """
    mode = _mode_of(reference, pairs, all_pairs)
    if detrend not in (None, "none", "linear"):
        raise ValueError(f"detrend must be None, 'none' or 'linear'; got {detrend!r}.")
    detrend = detrend == "linear"
    p, boundary = resolve_conventions(preset, boundary)
    if boundary == "valid":
        raise ValueError(
            "boundary='valid' is not offered for pair coherence: reductions are taken outside the "
            "cone of influence already; use 'linear' (default)."
        )
    real, _ = kernels.resolve_dtype(dtype)
    dtype = str(real)
    sig, ds_in, store_path = _unwrap_signals(signals, dim)
    n_rois, n = sig.shape
    dt = dt_of(sig, _interval(dt, fs), fix="pass dt= or fs=")
    if grid is None:
        grid = period_grid(n, dt, min_period=min_period, max_period=max_period, dj=dj, s0=s0, J=J,
                           wavelet=wavelet, preset=p)
    elif abs(grid.dt - dt) > 1e-9 * dt:
        raise ValueError(f"the grid's dt ({grid.dt:g}) differs from the signals' ({dt:g}).")
    check_length(n, grid, "signals")
    if grid.wavelet.deltaj0 is None:
        raise ValueError(f"coherence needs a wavelet with a known deltaj0 (Morlet, Paul, DOG); got {grid.wavelet!r}.")
    level = p.significance_level if level is None else float(level)
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), e.g. 0.95; got {level!r}.")
    if isinstance(significance, str) and significance != "ar1":
        raise ValueError(f"significance must be 'ar1', None or an array of thresholds; got {significance!r}.")
    _warn_few_surrogates(significance, mc_count, level)
    if block_bytes < 2**20:
        raise ValueError(f"block_bytes must be at least 1 MiB, got {block_bytes}.")
    device = check_device(device)
    map_samples = 1
    if map_step is not None:
        if not maps:
            raise ValueError("map_step= sets the time step of the maps; pass maps=True as well.")
        step = _positive_float(map_step, "map_step")
        map_samples = max(1, int(round(step / dt)))
    method = check_method(method, "bioxen", dtype, boundary)
    if method == "multirate":
        if not isinstance(grid.wavelet, Morlet):
            raise ValueError(f"method='multirate' supports the Morlet wavelet, not {grid.wavelet!r}; use "
                             "method='exact'.")
        if device != "cpu":
            raise ValueError("method='multirate' runs on the CPU; use method='exact' with device='gpu'.")

    # --- pairs
    roi_chunk, pair_chunk = (None if v is None else whole_number(v, name, hint="or None for the default")
                             for name, v in (("roi_chunk", roi_chunk), ("pair_chunk", pair_chunk)))
    if mode == "pairs" and (rois is not None or roi_positions is not None):
        raise ValueError("rois= selects rois for reference and all-pairs modes; in list mode give the pairs only.")
    sel = select_rois(np.asarray(sig["roi"].values) if "roi" in sig.coords else np.arange(n_rois), rois,
                      roi_positions)
    sel = np.arange(n_rois) if sel is None else sel
    if mode == "all_pairs":
        uniq, counts = np.unique(sel, return_counts=True)
        if (counts > 1).any():
            pos = int(uniq[counts > 1][0])
            ids = np.asarray(sig["roi"].values) if "roi" in sig.coords else np.arange(n_rois)
            raise ValueError(
                f"all_pairs: rois lists roi {ids[pos].item()!r} (position {pos}) more than once; its pairs would "
                "be repeated and it would be paired with itself. Pass each roi once (e.g. np.unique(rois))."
            )
        sel = uniq  # every pair (a, b) with a before b in the signals' roi order

    # --- time plan
    single = time_chunk is None and n <= MAX_SINGLE_TIME_BLOCK
    halo = grid.halo(tol, smoothing=True)
    if single or (time_chunk is not None and time_chunk >= n):
        t_chunks, halo = (n,), 0
    else:
        if boundary != "linear":
            raise ValueError(
                f"records cut into time blocks need boundary='linear' (got {boundary!r}; a named preset "
                "selects its tool's boundary); pass boundary='linear', or time_chunk >= the record length "
                "to keep one block."
            )
        from .graph import plan_chunks, regular_chunks

        tp = plan_chunks(1, n, grid, dtype=dtype, tol=tol, smoothing=True, time_chunk=time_chunk)
        t_chunks = regular_chunks(n, tp.time_chunk, min_last=halo)
        if map_samples > 1 and len(t_chunks) > 1:  # blocks of whole map windows
            size = -(-max(t_chunks) // map_samples) * map_samples
            while 0 < n % size < halo and size - map_samples >= max(halo, 1):  # a halo must fit in the last block
                size -= map_samples
            t_chunks = (size,) * (n // size) + ((n % size,) if n % size else ())
            if 0 < t_chunks[-1] < halo:
                t_chunks = t_chunks[:-2] + (t_chunks[-2] + t_chunks[-1],)
        if len(t_chunks) == 1:
            halo = 0
    n_ext_max = max(t_chunks) + 2 * halo

    # --- task sizes
    per_row = grid.n_scales * n_ext_max * _ROW_BYTES_PER_POINT
    if mode == "reference":
        roi_chunk = roi_chunk or max(1, min(len(sel), 64))
        plan = _reference_plan(sel, int(roi_chunk))
    elif mode == "pairs":
        table = pair_table(pairs, n_rois)
        order = np.lexsort((table[:, 1], table[:, 0]))
        if pair_chunk is None:
            pair_chunk = max(1, min(64, block_bytes // 2 // max(1, per_row) // 2))
        plan = _list_plan(table[order], int(pair_chunk))
        plan.index_a, plan.index_b = table[:, 0], table[:, 1]  # report in the user's order ...
        plan_order = order  # ... after un-permuting the chunk outputs
    else:
        if len(sel) < 2:
            raise ValueError("all_pairs needs at least two rois in the selection.")
        tile = roi_chunk or _all_pairs_tile(grid, n_ext_max, p.scale_kernel, tol, method, block_bytes, per_row)
        plan = _all_pairs_plan(sel, int(tile))
    if mode != "pairs":
        plan_order = None
    given_thr = None
    if significance is not None and not isinstance(significance, str):  # checked before any computing
        given = np.asarray(significance.values if isinstance(significance, xr.DataArray) else significance, float)
        P = len(plan.index_a)
        if given.shape == (grid.n_scales,):
            given_thr = np.broadcast_to(given, (P, grid.n_scales)).copy()
        elif given.shape == (P, grid.n_scales):
            given_thr = given.copy()
        else:
            raise ValueError(
                f"thresholds must have shape (period,) = ({grid.n_scales},) or (pair, period) = "
                f"({P}, {grid.n_scales}); got {given.shape}."
            )

    # --- lazy inputs, scanned once for missing samples and constant traces
    x = sig.data
    if not isinstance(x, da.Array):
        x = da.from_array(np.asarray(x), chunks=(max(1, min(n_rois, 256)), n))
    if x.dtype.kind not in "fiu":
        raise ValueError(f"signals must be real numbers, got dtype {x.dtype}.")
    if nan_policy not in NAN_POLICIES:
        raise ValueError(f"nan_policy must be one of {list(NAN_POLICIES)}, got {nan_policy!r}.")
    gap_samples = max_gap_samples(nan_policy, max_gap, dt)
    need = np.unique(np.concatenate([plan.index_a, plan.index_b[plan.index_b >= 0]]))
    scan = scan_traces(x[need] if len(need) < n_rois else x)
    roi_ids = np.asarray(sig["roi"].values) if "roi" in sig.coords else np.arange(n_rois)
    scan.check(nan_policy=nan_policy, max_gap=gap_samples, roi_ids=roi_ids[need], positions=need, dt=dt,
               constant=constant, where=f"the signals{'' if store_path is None else f' of {store_path}'}")
    missing = None
    if scan.n_missing.any():  # nan_policy == "interpolate" here
        missing = ~da.isfinite(x)
        if len(need) < n_rois:  # rows outside the analysis may hold any gaps: never filled, never read
            keep = np.zeros((n_rois, 1), bool)
            keep[need] = True
            x = da.where(keep, x, 0.0)
        x = _fill_gaps(x, gap_samples)
    gap_attrs = {"nan_policy": nan_policy, "max_gap_s": "none" if max_gap is None else float(max_gap),
                 "missing_samples": int(scan.n_missing.sum()), "rois_with_gaps": int((scan.n_missing > 0).sum()),
                 "constant_rois": [v.item() if hasattr(v, "item") else v for v in roi_ids[need][scan.constant]],
                 "constant_rois_reason": "zero variance: coherence is 0/0, so every pair with one of these rois "
                                         "is NaN (constant='nan')"}
    single_mean = halo == 0 and p.remove_mean  # cwt removes the block mean itself, as in-memory
    streamed = ref_streamed = None  # time blocks: the records' moments from one streaming pass, as numbers
    if halo == 0:
        x_norm = _normalise(x.rechunk({1: -1}), normalize, p.remove_mean and not single_mean, detrend)
    else:
        from ._stream import stream_normalise

        x_norm, streamed = stream_normalise(x, normalize, p.remove_mean, detrend, rows=need)
    ref_trace, ref_name = None, None
    if mode == "reference":
        x_for_mean = x_norm[sel] if len(sel) < n_rois else x_norm
        ref_trace, ref_name = _resolve_reference(reference, sig, ds_in, x_for_mean, n)
        if not (isinstance(reference, str) and reference.strip().lower() in MEAN_REFERENCES):
            check_reference(ref_trace, ref_name, constant=constant, dt=dt)
        if halo == 0:
            ref_trace = _normalise(ref_trace, normalize, p.remove_mean and not single_mean, detrend)
        else:
            ref_trace, ref_streamed = stream_normalise(ref_trace.rechunk(x.chunks[1]).reshape(1, n), normalize,
                                                       p.remove_mean, detrend)
            ref_trace = ref_trace[0]

    # --- thresholds
    sig_attrs: dict[str, Any] = {}
    thr = ar1_a = ar1_b = None
    if isinstance(significance, str):
        from .significance import DEFAULT_BUCKET_WIDTH

        thr, ar1_a, ar1_b, sig_attrs = _significance(
            x_norm, ref_trace, _PairPlan(plan.mode, plan.index_a, plan.index_b, plan.rows, (), [], [], []),
            grid, p, mc_count=mc_count, level=level, seed=seed,
            bucket=DEFAULT_BUCKET_WIDTH if ar1_bucket is None else ar1_bucket, boundary=boundary,
            dtype=dtype, cache=threshold_cache, progress=progress, streamed=(streamed, ref_streamed),
            n_samples=n if halo == 0 else min(n, n_ext_max))
    elif significance is not None:
        thr = given_thr
        sig_attrs = {"significance": "thresholds given by the caller", "significance_level": level}
    thr_planned = None if thr is None else (thr[plan_order] if plan_order is not None else thr)
    nulls = None
    if p_values not in (False, True, "empirical", "beta"):
        raise ValueError(f"p_values must be False, True, 'empirical' or 'beta'; got {p_values!r}.")
    if p_values:
        if significance != "ar1":
            raise ValueError("p_values=True needs significance='ar1' (the AR(1) bucket nulls).")
        nulls = _mean_nulls(grid, p, ar1_a, ar1_b, n=int(n), mc_count=mc_count, seed=seed, boundary=boundary,
                            dtype=dtype, bucket=sig_attrs.get("ar1_bucket_width"), progress=progress)
        sig_attrs["p_value_bucket_pairs"] = int(nulls[0].shape[0])

    # --- graph
    ctx = _Ctx(grid=grid, scale_kernel=p.scale_kernel, boundary=boundary, tol=tol, dtype=dtype,
               remove_mean=single_mean, n=int(n), coi_convention=p.coi, maps=bool(maps),
               block_bytes=int(block_bytes), workers=workers, device=device, method=method,
               map_step=map_samples)
    J1 = grid.n_scales
    thr_key, curve_of_pair = None, None
    waves = bool(halo) and not maps
    if waves:  # a long record's reductions: the time blocks run in bounded waves (flat graph)
        token = dask.base.tokenize(x.name, None if missing is None else missing.name,
                                   None if ref_trace is None else ref_trace.name, ctx, plan.chunk_blocks,
                                   [a.tolist() for a in plan.chunk_ia], [b.tolist() for b in plan.chunk_ib],
                                   thr_planned, t_chunks)
        curves = None
        if thr_planned is not None:
            curves, curve_of_pair = _distinct_rows(thr_planned)
        r_starts = np.cumsum((0,) + tuple(plan.row_chunks[:-1]))
        p_starts = np.cumsum((0,) + plan.pair_chunks[:-1])
        src = _BlockSource(
            x=x, streamed=streamed, missing=missing, ref=ref_trace,
            chunk_rows=tuple(np.concatenate([plan.rows[r_starts[b] : r_starts[b] + plan.row_chunks[b]] for b in blocks])
                             for blocks in plan.chunk_blocks),
            chunk_ia=tuple(plan.chunk_ia), chunk_ib=tuple(plan.chunk_ib), curves=curves,
            chunk_curves=tuple(None if curve_of_pair is None else curve_of_pair[p_starts[c] : p_starts[c] + k]
                               for c, k in enumerate(plan.pair_chunks)),
            block_runs=_runs(t_chunks), halo=int(halo), ctx=ctx, token=token)
        res_name = f"coherence-blocks-{token}"
        sum_name = f"coherence-sums-{token}"
        n_t = len(t_chunks)
        dsk: dict[Any, Any] = {res_name: (partial(_wave_sums, src),)}
        for c in range(len(plan.chunk_blocks)):
            dsk[(sum_name, c, 0, 0)] = (_wave_chunk, res_name, c)
        sums = da.Array(HighLevelGraph.from_collections(sum_name, dsk, dependencies=[]), sum_name,
                        chunks=(plan.pair_chunks, (_N_SUMS,), (J1,)), dtype=np.float64, meta=np.empty((0, 0, 0)))
    else:
        rows = x_norm if (len(plan.rows) == n_rois and np.array_equal(plan.rows, np.arange(n_rois))) else x_norm[plan.rows]
        rows = rows.rechunk({0: plan.row_chunks, 1: t_chunks})
        ov = da.overlap.overlap(rows, depth={0: 0, 1: halo}, boundary="none") if halo else rows
        deps: list[Any] = [ov]
        gap_ov = None
        if missing is not None:
            gap_rows = missing if len(need) == n_rois and np.array_equal(plan.rows, np.arange(n_rois)) \
                else missing[plan.rows]
            gap_rows = gap_rows.rechunk({0: plan.row_chunks, 1: t_chunks})
            gap_ov = da.overlap.overlap(gap_rows, depth={0: 0, 1: halo}, boundary="none") if halo else gap_rows
            deps.append(gap_ov)
        token = dask.base.tokenize(ov.name, gap_ov.name if gap_ov is not None else None,
                                   ref_trace.name if ref_trace is not None else None, ctx,
                                   plan.chunk_blocks, [a.tolist() for a in plan.chunk_ia],
                                   [b.tolist() for b in plan.chunk_ib], thr_planned)
        ref_name_key = f"coherence-reference-{token}"
        res_name = f"coherence-block-{token}"
        sum_name = f"coherence-sums-{token}"
        dsk = {}
        n_t = len(t_chunks)
        t_starts = np.cumsum((0,) + t_chunks[:-1])
        lefts = [0 if (tj == 0 or not halo) else halo for tj in range(n_t)]
        if ref_trace is not None:
            ref_rows = ref_trace.reshape(1, n).rechunk({0: 1, 1: t_chunks})
            ref_ov = da.overlap.overlap(ref_rows, depth={0: 0, 1: halo}, boundary="none") if halo else ref_rows
            deps.append(ref_ov)
            for tj in range(n_t):
                dsk[(ref_name_key, tj)] = (partial(_ref_task, ctx=ctx), (ref_ov.name, 0, tj))
        # the thresholds enter the graph once, as their distinct curves (one per AR(1) bucket pair:
        # a few dozen), and each task gets the curve number of its pairs (not (pairs, scales) floats
        # per task: 10,000 rois made a graph of 6 MB, and distributed warned of its size)
        if thr_planned is not None:
            thr_key = f"coherence-thresholds-{token}"
            dsk[thr_key], curve_of_pair = _distinct_rows(thr_planned)
        p_starts = np.cumsum((0,) + plan.pair_chunks[:-1])
        for c, blocks in enumerate(plan.chunk_blocks):
            curves_c = None if curve_of_pair is None else curve_of_pair[p_starts[c] : p_starts[c] + plan.pair_chunks[c]]
            for tj in range(n_t):
                task = partial(_chunk_task, ia=plan.chunk_ia[c], ib=plan.chunk_ib[c], curve_of_pair=curves_c,
                               left=lefts[tj], t0=int(t_starts[tj]), n_own=int(t_chunks[tj]), ctx=ctx)
                ref_key = (ref_name_key, tj) if ref_trace is not None else None
                gap_keys = None if gap_ov is None else [(gap_ov.name, b, tj) for b in blocks]
                dsk[(res_name, c, tj)] = (task, [(ov.name, b, tj) for b in blocks], ref_key, gap_keys, thr_key)
            _sum_tree(dsk, [(res_name, c, tj) for tj in range(n_t)], (sum_name, c, 0, 0), f"coherence-partial-{token}")
        graph = HighLevelGraph.from_collections(sum_name, dsk, dependencies=deps)
        sums = da.Array(graph, sum_name, chunks=(plan.pair_chunks, (_N_SUMS,), (J1,)), dtype=np.float64,
                        meta=np.empty((0, 0, 0)))
    map_arrays = {}
    if maps:
        for var in ("coherence", "phase"):
            vname = f"coherence-{var}-{token}"
            vdsk = {(vname, c, 0, tj): (_get, (res_name, c, tj), var)
                    for c in range(len(plan.chunk_blocks)) for tj in range(n_t)}
            vgraph = HighLevelGraph.from_collections(vname, vdsk, dependencies=[sums])
            map_chunks = tuple(-(-c // map_samples) for c in t_chunks)
            map_arrays[var] = da.Array(vgraph, vname, chunks=(plan.pair_chunks, (J1,), map_chunks),
                                       dtype=real, meta=np.empty((0, 0, 0), real))
    if plan_order is not None:  # back to the user's pair order
        inverse = np.empty_like(plan_order)
        inverse[plan_order] = np.arange(len(plan_order))
        sums = sums[inverse].rechunk({0: plan.pair_chunks})
        map_arrays = {k: v[inverse].rechunk({0: plan.pair_chunks}) for k, v in map_arrays.items()}

    ds = _assemble(
        sums, map_arrays, plan=plan, grid=grid, p=p, sig=sig, n=n, dt=dt, thr=thr, ar1=(ar1_a, ar1_b),
        ref_name=ref_name, store_path=store_path, sig_attrs=sig_attrs,
        params=dict(mode=mode, boundary=boundary, dtype=dtype, tol=tol, normalize=bool(normalize),
                    detrend="linear" if detrend else "none", **gap_attrs,
                    maps=bool(maps), map_step_s=map_samples * dt if maps else "none", preset=p.name, scale_kernel=p.scale_kernel, coi_convention=p.coi, method=method,
                    time_blocks=n_t, halo=int(halo), tasks=len(dsk),
                    **({"all_pairs_tile": int(tile)} if mode == "all_pairs" else {})),
    )
    if nulls is not None:
        how = "beta" if p_values == "beta" else "empirical"
        ds["p_value"] = (("pair", "period"), _pvalue_array(ds.coherence_mean.data, *nulls, how), {
            "long_name": "p-value of coherence_mean under the pair's AR(1) bucket null", "units": "1",
            "valid_range": [0.0, 1.0], "method": {"empirical": "Monte Carlo rank (1 + #null >= x) / (m + 1)",
                                                 "beta": "upper tail of a beta fitted to the null's mean and "
                                                         "variance"}[how]})
    return ds


def _assemble(
    sums: da.Array, map_arrays: dict[str, da.Array], *, plan: _PairPlan, grid: ScaleGrid, p: Preset,
    sig: xr.DataArray, n: int, dt: float, thr: np.ndarray | None, ar1: tuple, ref_name: str | None,
    store_path: str | None, sig_attrs: dict[str, Any], params: dict[str, Any],
) -> xr.Dataset:
    roi_ids = np.asarray(sig["roi"].values) if "roi" in sig.coords else np.arange(sig.shape[0])
    if roi_ids.dtype.kind not in "iuf":  # strings: variable-length (Zarr v3 'string') on disk
        roi_ids = np.array([str(v) for v in roi_ids], dtype=object)
    P = len(plan.index_a)
    roi_a = roi_ids[plan.index_a]
    if plan.mode == "reference":
        roi_b = np.full(P, str(ref_name), dtype=object)
    else:
        roi_b = roi_ids[plan.index_b]
    n_out = sums[:, _N_OUT]
    with np.errstate(divide="ignore", invalid="ignore"):
        safe = da.where(n_out > 0, n_out, np.nan)
        mean_r2 = sums[:, _SUM_R2] / safe
        res_re = sums[:, _SUM_COS] / safe
        res_im = sums[:, _SUM_SIN] / safe
        phase_mean = da.arctan2(res_im, res_re)
        consistency = da.hypot(res_re, res_im)
        lag = phase_mean / (2 * np.pi) * grid.periods[None, :]
        frac = sums[:, _N_SIG] / safe
    coi_samples = np.diff(grid.outside_coi(n, p.coi), axis=1)[:, 0]  # no (scale, time) mask
    dims = ("pair", "period")
    data_vars: dict[str, Any] = {
        "coherence_mean": (dims, mean_r2, {
            "long_name": "mean squared wavelet coherence outside the cone of influence", "units": "1",
            "valid_range": [0.0, 1.0]}),
        "phase_mean": (dims, phase_mean, {
            "long_name": "circular mean of the cross-wavelet phase outside the cone of influence",
            "units": "rad", "convention": PHASE_CONVENTION}),
        "phase_consistency": (dims, consistency, {
            "long_name": "phase consistency (mean resultant length of the phase outside the COI)",
            "units": "1", "valid_range": [0.0, 1.0]}),
        "lag": (dims, lag, {"long_name": "time lag from the mean phase", "units": "s",
                            "convention": LAG_CONVENTION}),
    }
    if params.get("nan_policy") == "interpolate":  # gaps take samples out of each pair's reductions
        data_vars["samples"] = (dims, n_out.astype(np.int64), {
            "long_name": "samples behind each reduction: outside the COI and not reached by a gap", "units": "1"})
    if thr is not None:
        data_vars["significant_fraction"] = (dims, frac, {
            "long_name": "share of the time outside the COI with coherence above the threshold",
            "units": "1", "valid_range": [0.0, 1.0]})
        data_vars["threshold"] = (dims, thr, {
            "long_name": f"{sig_attrs.get('significance_level', 0.95):g} significance threshold of the "
                         "squared coherence", "units": "1"})
    for var, arr in map_arrays.items():
        attrs = ({"long_name": "squared wavelet coherence", "units": "1", "valid_range": [0.0, 1.0]}
                 if var == "coherence" else
                 {"long_name": "cross-wavelet phase", "units": "rad", "convention": PHASE_CONVENTION})
        data_vars[var] = (("pair", "period", "time"), arr, attrs)
    coords: dict[str, Any] = dict(grid_coords(grid))
    coords["coi_samples"] = ("period", coi_samples, {"long_name": "samples outside the cone of influence"})
    coords["roi_a"] = ("pair", roi_a, {"long_name": "first roi of the pair"})
    coords["roi_b"] = ("pair", roi_b, {"long_name": "second roi of the pair (or the reference)"})
    coords["index_a"] = ("pair", plan.index_a.astype(np.int64), {"long_name": "position of roi_a"})
    coords["index_b"] = ("pair", plan.index_b.astype(np.int64),
                         {"long_name": "position of roi_b (-1: the reference)"})
    if ar1[0] is not None:
        coords["ar1_a"] = ("pair", ar1[0], {"long_name": "AR(1) coefficient of roi_a"})
        coords["ar1_b"] = ("pair", ar1[1], {"long_name": "AR(1) coefficient of roi_b"})
    if map_arrays:
        k = int(round(params["map_step_s"] / dt)) if isinstance(params.get("map_step_s"), float) else 1
        centre = np.arange(0, n, k) + (np.minimum(np.arange(0, n, k) + k, n) - 1 - np.arange(0, n, k)) / 2
        if "time" in sig.coords:  # the window's centre: its first time plus half its span
            time = np.asarray(sig["time"].values[::k], dtype=float) + (centre - np.arange(0, n, k)) * dt
        else:
            time = centre * dt
        coords["time"] = ("time", time, {"units": "s", "long_name": "time" if k == 1 else
                                         f"time (centre of each {k}-sample map window)", "standard_name": "time"})
        coords["coi"] = ("time", grid._coi_at(centre, n, p.coi),
                         {"long_name": "cone of influence (period)", "units": "s"})
    attrs: dict[str, Any] = {
        "title": "wavelet coherence",
        "bioxen_dask_version": __version__,
        "history": f"bioxen_dask.coherence ({params['mode']} mode)",
        **{k: v for k, v in grid.describe().items() if k != "wavelet"},
        "wavelet": grid.wavelet.name,
        "wavelet_params": str(grid.wavelet),
        "period_min": float(grid.periods[0]),
        "period_max": float(grid.periods[-1]),
        "n_rois": int(sig.shape[0]),
        "n_samples": int(n),
        **params,
        "phase_convention": PHASE_CONVENTION,
        "lag_convention": LAG_CONVENTION,
        "significance": "none",
        **sig_attrs,
    }
    if plan.mode == "reference":
        attrs["reference"] = ref_name
    if store_path is not None:
        attrs["input_store"] = str(store_path)
        try:
            from .io import fingerprint

            attrs["input_fingerprint"] = fingerprint(store_path)
        except (OSError, ValueError):
            pass
    for key in ("units", "source", "fs"):
        if key in sig.attrs:
            attrs[f"input_{key}"] = sig.attrs[key] if isinstance(sig.attrs[key], (int, float, str)) else str(sig.attrs[key])
    return xr.Dataset(data_vars, coords=coords, attrs=_jsonable_attrs(attrs))


def _jsonable_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in attrs.items():
        if isinstance(v, (np.floating, np.integer)):
            v = v.item()
        if isinstance(v, (str, int, float, bool)) or v is None:
            out[k] = "none" if v is None else v
        elif isinstance(v, Sequence) and all(isinstance(i, (str, int, float, bool)) for i in v):
            out[k] = list(v)
        else:
            out[k] = str(v)
    return out
