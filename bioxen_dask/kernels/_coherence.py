"""Cross-wavelet spectrum, wavelet coherence and phase from wavelet coefficients."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..grid import DEFAULT_TOL, ScaleGrid
from ._cwt import _run, mask_edges, resolve_workers
from ._smooth import smooth
from ._xp import array_namespace

__all__ = ["Smoother", "cross_spectrum", "coherence", "phase", "power", "scaled_power"]


@dataclass(frozen=True)
class Smoother:
    """The smoothing operator of coherence on one grid, with its conventions.

    Examples
    --------
    >>> import numpy as np
    >>> from bioxen_dask.grid import make_grid
    >>> sm = Smoother(make_grid(128, 1.0), boundary="pycwt")
    >>> sm(np.ones((sm.grid.n_scales, 128))).shape
    (74, 128)
    """

    grid: ScaleGrid
    scale_kernel: str = "pycwt"
    boundary: str = "linear"
    tol: float = DEFAULT_TOL
    workers: int | None = None

    def __call__(self, values: Any, *, out: Any = None) -> Any:
        """Smooth ``values`` (already divided by scale), optionally into ``out``."""
        return self._smooth(values, False, out)

    def scaled(self, values: Any, *, out: Any = None) -> Any:
        """Smooth ``values / scale`` (the division folded into the scale product)."""
        return self._smooth(values, True, out)

    def _smooth(self, values: Any, divide_by_scale: bool, out: Any) -> Any:
        mode = "linear" if self.boundary == "valid" else self.boundary
        return smooth(values, self.grid, scale_kernel_kind=self.scale_kernel, boundary=mode, tol=self.tol,
                      workers=self.workers, divide_by_scale=divide_by_scale, out=out)

    def valid_supports(self) -> np.ndarray:
        """Per-scale samples lost at each edge in ``valid`` mode (wavelet + Gaussian)."""
        return self.grid.wavelet_support(self.tol) + self.grid.smoothing_support(self.tol)


def _inverse_scales(grid: ScaleGrid, like: Any) -> Any:
    xp = array_namespace(like)
    real = like.real.dtype if xp.iscomplexobj(like) else like.dtype
    return xp.asarray((1.0 / grid.scales)[:, None].astype(real))


def _by_rows(fn: Any, shape: tuple[int, ...], workers: int | None, xp) -> None:
    """``fn(rows)`` for slices covering the scale axis (-2) of an array of ``shape``, split
    over ``workers`` threads (elementwise NumPy work releases the GIL). One call with every
    row on one thread."""
    n_rows = shape[-2]
    nthreads = resolve_workers(workers, xp, points=math.prod(shape))
    if nthreads <= 1 or n_rows < 2:
        fn(slice(None))
        return
    step = -(-n_rows // (2 * nthreads))
    _run([slice(j, j + step) for j in range(0, n_rows, step)], lambda rows, scratch: fn(rows), nthreads)


def power(W: Any, out: Any = None, tmp: Any = None, *, workers: int | None = None) -> Any:
    """``|W|**2`` (real) in two passes, into ``out`` (and ``tmp``, same shape) when given.

    ``workers``: CPU threads over the scale axis (``W`` of shape ``(..., scale, time)``).

    Examples
    --------
    >>> import numpy as np
    >>> power(np.array([3 + 4j])).tolist()
    [25.0]
    """
    xp = array_namespace(W)
    if W.ndim < 2 or resolve_workers(workers, xp, points=W.size) <= 1:
        out = xp.multiply(W.real, W.real, out=out)
        out += xp.multiply(W.imag, W.imag, out=tmp)
        return out
    out = xp.empty(W.shape, dtype=W.real.dtype) if out is None else out

    def rows(sl):
        re, im, o = W.real[..., sl, :], W.imag[..., sl, :], out[..., sl, :]
        xp.multiply(re, re, out=o)
        o += im * im

    _by_rows(rows, W.shape, workers, xp)
    return out


def scaled_power(W: Any, grid: ScaleGrid) -> Any:
    """``|W|**2 / scale`` (the quantity smoothed for coherence)."""
    p = power(W)
    p *= _inverse_scales(grid, W)
    return p


def cross_spectrum(W1: Any, W2: Any, *, workers: int | None = None) -> Any:
    """Cross-wavelet spectrum ``W1 * conj(W2)`` (one new array of the broadcast shape).

    ``workers``: CPU threads over the scale axis when both have the same shape.
    """
    xp = array_namespace(W1, W2)
    if W1.shape == W2.shape and W1.dtype == W2.dtype and W1.ndim >= 2:
        out = xp.empty_like(W1)

        def rows(sl):
            o = out[..., sl, :]
            xp.conj(W2[..., sl, :], out=o)
            o *= W1[..., sl, :]

        _by_rows(rows, W1.shape, workers, xp)
        return out
    c = xp.conj(W2)
    if c.shape == np.broadcast_shapes(W1.shape, W2.shape) and c.dtype == np.result_type(W1.dtype, W2.dtype):
        return xp.multiply(W1, c, out=c)
    return W1 * c


def phase(W12: Any, workers: int | None = None) -> Any:
    """Phase of the cross spectrum in radians, ``angle(W1 * conj(W2))``: positive when the
    first signal leads the second. ``workers``: CPU threads.

    On the CPU the real and imaginary parts are copied a few rows at a time into cache-sized
    contiguous buffers first: NumPy's vectorised ``arctan2`` needs contiguous operands and is
    ~3x faster than on the interleaved views.
    """
    xp = array_namespace(W12)
    if W12.ndim < 2 or (xp is not np and resolve_workers(workers, xp) <= 1):
        return xp.angle(W12)
    out = xp.empty(W12.shape, dtype=W12.real.dtype)
    lead, n_rows, n = W12.shape[:-2], W12.shape[-2], W12.shape[-1]
    step = max(1, _PHASE_STEP_BYTES // max(1, 2 * n * out.itemsize))

    def rows(sl):
        if xp is not np:
            xp.arctan2(W12.imag[..., sl, :], W12.real[..., sl, :], out=out[..., sl, :])
            return
        lo, hi = sl.indices(n_rows)[:2]
        buf_re = np.empty(lead + (min(step, hi - lo), n), dtype=out.dtype)  # reused for every step
        buf_im = np.empty_like(buf_re)
        for j in range(lo, hi, step):
            rr = slice(j, min(j + step, hi))
            re, im = buf_re[..., : rr.stop - j, :], buf_im[..., : rr.stop - j, :]
            re[...] = W12.real[..., rr, :]
            im[...] = W12.imag[..., rr, :]
            np.arctan2(im, re, out=out[..., rr, :])

    _by_rows(rows, W12.shape, workers, xp)
    return out


#: Bytes of the contiguous copies :func:`phase` works through at a time (about an L2).
_PHASE_STEP_BYTES = 512 * 1024


def coherence_ratio(re: Any, im: Any, S1: Any, S2: Any, out: Any = None, tmp: Any = None) -> Any:
    """``(re**2 + im**2) / (S1 * S2)``, the coherence of smoothed spectra ``S12 = re + i im``,
    ``S1``, ``S2`` (broadcast), dividing before multiplying: ``re / S1`` is of order
    ``sqrt(S2 / S1)``, so no intermediate underflows. In float32 the product ``S1 * S2`` of two
    powers below ~1e-19 is 0 (a noiseless trace far from its band), and ``0 / 0`` made NaN
    coherence from finite records. Where both spectra still vanish (underflowed, or flushed to
    zero by a BLAS or FFT kernel) on a row (last axis) that has power, or where a spectrum is at
    its rounding floor (a coherence above 1 sent there: :func:`_vanished_to_zero`), the
    coherence is 0; a silent row (``S1`` or ``S2`` zero throughout: a constant trace) stays
    NaN. ``out``/``tmp``:
    optional buffers of the result's shape, none of them an input."""
    xp = array_namespace(re)
    with np.errstate(divide="ignore", invalid="ignore", under="ignore"):
        r = xp.divide(re, S1, out=out)
        r *= re
        t = xp.divide(im, S1, out=tmp)
        t *= im
        r += t
        r /= S2
        # a NaN anywhere makes the max NaN, and a spectrum at its rounding floor makes it > 1:
        # the masks below are built only then, not on every call of this hot path
        top = r.max() if r.size else 0.0
        if not top <= _RATIO_CHECK:
            _vanished_to_zero(r, S1, S2, xp)
    return r


#: A coherence above this (or NaN) sends a ratio through :func:`_vanished_to_zero`.
_RATIO_CHECK = 1.0 + 1e-3
#: A smoothed power at most this many of its dtype's eps times its row's peak is rounding.
_FLOOR_EPS = 4


def _vanished_to_zero(r: Any, S1: Any, S2: Any, xp: Any) -> None:
    """Coherence 0 where a spectrum has vanished: NaN (``0 / 0``) on a row with power, and a
    coherence above 1 where a smoothed power is at its rounding floor (at most ``_FLOOR_EPS``
    eps of its row's largest value: a float32 ratio of two such noise values gave coherence
    1e8 where a noiseless reference had no power at a scale; clipped, it would read as full
    coherence). Tiny powers that give a coherence within [0, 1] are kept: they are values."""
    live = (xp.max(S1, axis=-1, keepdims=True) > 0) & (xp.max(S2, axis=-1, keepdims=True) > 0)
    r[xp.isnan(r) & live] = 0
    over = r > _RATIO_CHECK
    if not bool(over.any()):
        return
    for S in (S1, S2):
        floor = _FLOOR_EPS * float(np.finfo(S.dtype).eps) * xp.max(S, axis=-1, keepdims=True)
        r[over & xp.broadcast_to((S <= floor) & live, r.shape)] = 0


def _coherence_ratio(S12: Any, S1: Any, S2: Any, clip: bool, workers: int | None) -> Any:
    """``|S12|**2 / (S1 * S2)`` (clipped to [0, 1] if ``clip``) by :func:`coherence_ratio`."""
    xp = array_namespace(S12)
    same = S1.shape == S2.shape == S12.shape and S12.ndim >= 2 and S12.flags.c_contiguous
    if not same:
        R2 = coherence_ratio(S12.real, S12.imag, S1, S2)
        return xp.clip(R2, 0.0, 1.0, out=R2) if clip else R2
    R2 = xp.empty(S12.shape, dtype=S12.real.dtype)

    def rows(sl):
        s12, r = S12[..., sl, :], R2[..., sl, :]
        coherence_ratio(s12.real, s12.imag, S1[..., sl, :], S2[..., sl, :], out=r)
        if clip:
            xp.clip(r, 0.0, 1.0, out=r)

    _by_rows(rows, S12.shape, workers, xp)
    return R2


def coherence(
    W1: Any,
    W2: Any,
    smoother: Smoother,
    *,
    S1: Any = None,
    S2: Any = None,
    clip: bool = True,
    with_phase: bool = True,
) -> tuple[Any, Any]:
    """Wavelet coherence and phase of two sets of coefficients (broadcast over leading axes).

    ``R2 = |S(W1 W2*/s)|**2 / (S(|W1|**2/s) S(|W2|**2/s))`` with the smoother ``S``
    (Torrence & Webster 1999; Grinsted et al. 2004), and the phase of the *unsmoothed*
    cross spectrum, as pycwt and Grinsted's toolbox report it.

    Parameters
    ----------
    W1, W2 : ndarray, shape ``(..., n_scales, time)``
        Wavelet coefficients on ``smoother.grid`` (broadcastable against each other). With a
        ``valid`` smoother, pass the ``linear`` transforms (the result is masked); NaN-edged
        ``valid`` transforms are an error.
    smoother : Smoother
    S1, S2 : ndarray, optional
        Already smoothed scaled powers of ``W1``/``W2`` (reuse them across many pairs).
    clip : bool
        Clip rounding excursions to ``[0, 1]`` (on by default; pycwt compatibility turns it
        off).
    with_phase : bool
        Compute the phase (default). ``False`` returns ``None`` in its place and saves the
        ``arctan2`` pass, ~30% of a coherence given ``S1``/``S2`` (Monte Carlo surrogates).

    Returns
    -------
    coherence, phase : ndarray
        Real arrays of the broadcast shape; NaN in ``valid`` mode where an edge is in reach.
    """
    workers = smoother.workers
    if smoother.boundary == "valid":  # NaN edges would spread through the smoothing FFTs to every sample
        xp = array_namespace(W1, W2)
        if bool(xp.isnan(W1).any()) or bool(xp.isnan(W2).any()):
            raise ValueError("coherence with a 'valid' smoother takes linear-mode coefficients "
                             "(cwt(..., boundary='linear')): the valid mask is applied to the smoothed maps, "
                             "and the NaN edges of valid-mode transforms would spread to every sample.")
    if S1 is None:
        S1 = smoother.scaled(power(W1, workers=workers))
    if S2 is None:
        S2 = smoother.scaled(power(W2, workers=workers))
    W12 = cross_spectrum(W1, W2, workers=workers)
    ang = phase(W12, workers) if with_phase else None
    S12 = smoother.scaled(W12)
    del W12
    xp = array_namespace(S12)
    R2 = _coherence_ratio(S12, S1, S2, clip, workers)
    del S12
    if smoother.boundary == "valid":
        sup = smoother.valid_supports()
        mask_edges(R2, sup, xp)
        if ang is not None:
            mask_edges(ang, sup, xp)
    return R2, ang
