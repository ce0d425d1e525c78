"""The ``linear`` CWT with its band-limited scales on decimated grids (``method="multirate"``).

At scale ``s`` (``sigma = s/dt`` samples) a Morlet coefficient carries frequencies only in
``[u_lo, u_hi] / sigma`` rad per sample (``u`` where ``|psi_ft(u)|`` exceeds ``tol`` of its
peak, :func:`._multirate.mother_band`). Such a scale is computed here on a copy of the record
decimated by a power of two ``R`` (the largest with ``u_hi R / sigma <= 0.4 pi``: the band
within 40% of the copy's Nyquist band; the planner :func:`cwt_strides`, built from
:mod:`._multirate`'s blocks):

1. **Pyramid**: the record (zero-padded, so the filters' tails past its ends are kept) is
   low-passed and halved repeatedly (``scipy.signal.resample_poly``'s 41 taps, Kaiser
   ``beta=16.7``: flat to 1.4e-8 up to ``0.225 pi`` of each stage's input rate, i.e. 45% of
   its output's Nyquist band, and below 1.3e-8 from ``0.775 pi``, the frequencies that
   alias into that band), so every stage holds the record's content in the bands of the
   scales computed from it; what aliases lies above ``0.45 pi`` of every stage's rate.
2. **Transform**: the exact ``linear`` kernels (:func:`._cwt.cwt`) on that copy, with the scale
   grid at ``dt*R``: the sampled wavelet and the record are band-limited far below the copy's
   Nyquist, so by Poisson summation the copy's linear convolution times ``sqrt(R)`` *is*
   the full-rate one at every ``R``-th sample, outside the record too (the padding).
3. **Interpolation** to every sample: polyphase least-squares filters (:mod:`._coherence_map`'s
   ``_Upsampler``) for the band after demodulation by the scale's centre frequency, with
   the modulation folded into complex taps (one GEMM per scale).

Scales whose stride would be 1 (below ``0.4 pi`` only at full rate: periods under ~20
samples) are the exact transform's, written straight into the output. Against the exact
float64 transform the multirate one differs by at most 1e-6 of each scale's largest
coefficient (measured 4e-7 to 6e-7 on noise, sines, steps, a membrane-potential recording
and cosines against their analytic transform; float32 rounding alone is 3e-7 to 8e-7):
``tests/test_multirate_cwt.py`` bounds it, ``bioxen-dask bench cwt`` records it
(``err_vs_exact``). It is opt-in; the exact ``linear`` transform stays the default.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np

from ..grid import DEFAULT_TOL, ScaleGrid
from ..wavelets import Morlet
from ._coherence_map import _gemm, _Upsampler
from ._cwt import _run, exact_cwt_into, mask_edges, resolve_dtype, resolve_workers
from ._multirate import mother_band, pow2_floor

__all__ = ["check_multirate", "cwt_strides", "multirate_cwt"]

#: Largest fraction of a copy's Nyquist band a coefficient's band may reach (the halving
#: filters are flat to 1.4e-8 up to 0.45 of it).
_BAND_FRACTION = 0.4
#: Strides below this stay with the exact transform. At 1e6 samples interpolating one scale
#: (~4 ms) costs less than its full-rate overlap-save (~10 ms) from stride 2 up.
_MIN_STRIDE = 2
#: At least this many decimated samples per record (caps the stride).
_MIN_LOW_RATE = 256
#: Interpolation taps (decimated samples) per output.
_TAPS = 8
#: Zeros added at each side of every pyramid stage (at its rate): the filters' tails and the
#: interpolation's reach past the record's ends.
_PAD = 64
#: Kaiser window of the halving filters (``resample_poly``'s 41 taps): stopband ~1e-8.
_KAISER_BETA = 16.7
#: Spectral tolerance floor (the output is float32).
_MIN_TOL = 1e-8


def _band(wavelet: Morlet, tol: float) -> tuple[float, float]:
    """:func:`._multirate.mother_band` (cached there) at the float32 tolerance floor."""
    return mother_band(wavelet, max(tol, _MIN_TOL))


def cwt_strides(grid: ScaleGrid, n: int, tol: float = DEFAULT_TOL) -> np.ndarray:
    """Per scale, the decimation of the copy it is computed on (1: the exact transform).

    The largest power of two ``R`` with ``u_hi R / sigma <= 0.4 pi`` (the coefficient's band
    within 40% of the copy's Nyquist band), at most ``n / 256``.

    Examples
    --------
    >>> from bioxen_dask.grid import make_grid
    >>> cwt_strides(make_grid(4096, 1.0, dj=1.0), 4096).tolist()
    [1, 1, 1, 1, 2, 4, 8, 16, 16, 16, 16, 16]
    """
    u_hi = _band(grid.wavelet, float(tol))[1]
    sigma = grid.scales / grid.dt
    cap = pow2_floor(max(n / _MIN_LOW_RATE, 1))
    R = np.array([min(pow2_floor(_BAND_FRACTION * math.pi * s / u_hi), cap) for s in sigma], dtype=np.int64)
    R[R < _MIN_STRIDE] = 1
    return R


class _BandpassUpsampler(_Upsampler):
    """:class:`._coherence_map._Upsampler` for complex band-pass channels: the taps of the band
    demodulated by ``omega_c`` (rad per full-rate sample), remodulated inside the taps, times
    ``gain``; applied as one *real* GEMM on the interleaved (re, im) values (a complex GEMM of
    these shapes starts BLAS threads, which stall under load)."""

    def __init__(self, stride: int, taps: int, frac: float, n_lo: int, n: int, omega_c: float, gain: float) -> None:
        super().__init__(stride, taps, frac, n_lo, n)
        if stride == 1:  # pragma: no cover - strides below _MIN_STRIDE stay exact
            raise ValueError("a band-pass upsampler needs a stride above 1")
        width, outs = self.GT.shape
        j = np.arange(width)[:, None]
        p = np.arange(outs)[None, :]
        G = self.GT * np.exp(1j * omega_c * (p - (j - self.lead) * stride)) * gain
        GR = np.empty((2 * width, 2 * outs))  # rows (j, re|im) of the input, columns (p, re|im) of the output
        GR[0::2, 0::2], GR[1::2, 0::2] = G.real, -G.imag
        GR[0::2, 1::2], GR[1::2, 1::2] = G.imag, G.real
        self.GT = np.ascontiguousarray(GR, dtype=np.float32)

    def __call__(self, V: np.ndarray, out: np.ndarray, offset: int = 0) -> None:
        """Interpolate ``V (C, n_lo)``, circular with time 0 at sample ``offset``, into
        ``out (C, n)`` (complex64, rows contiguous)."""
        C = V.shape[0]
        ext = np.empty((C, self.span), dtype=np.complex64)
        pos, src = 0, (offset - self.lead) % self.n_lo
        while pos < self.span:  # ext[:, k] = V[:, (offset - lead + k) % n_lo]
            m = min(self.span - pos, self.n_lo - src)
            ext[:, pos : pos + m] = V[:, src : src + m]
            pos, src = pos + m, 0
        f = ext.view(np.float32)
        # the filters' far tails in the padding are subnormal: ~100x slower arithmetic
        f[np.abs(f) < np.finfo(np.float32).tiny] = 0
        width = 2 * (self.b + self.taps - 1)
        block = self.b * self.O
        full = self.n // block  # windows whose outputs all lie in the record: straight into out
        for c in range(C):
            win = np.ndarray((self.nq, width), f.dtype, f[c], 0, (2 * self.b * f.itemsize, f.itemsize))
            row = out[c].view(np.float32)
            if full:
                _gemm(win[:full], self.GT, out=row[: 2 * full * block].reshape(full, 2 * block))
            if full < self.nq:
                tail = _gemm(win[full:], self.GT).view(np.complex64).reshape(-1)
                out[c, full * block :] = tail[: self.n - full * block]


#: How a transform or a coherence computes its maps: ``exact`` (every scale at full rate) or
#: ``multirate`` (band-limited long scales on decimated copies, float32, Morlet).
METHODS = ("exact", "multirate")


def check_method(method: str, engine: str, dtype: Any, boundary: str) -> str:
    """``method`` normalised, or a ``ValueError`` naming the fix (an unknown method; multirate
    with another engine than ``bioxen``, float64, or a boundary it does not support)."""
    m = str(method).strip().lower()
    if m not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {list(METHODS)}.")
    if m == "multirate":
        if str(engine).lower() != "bioxen":
            raise ValueError(f"method='multirate' computes its own transforms; it cannot take engine={engine!r} "
                             "(use method='exact' for hybrid engines).")
        if resolve_dtype(dtype)[0] != np.float32:
            raise ValueError("method='multirate' computes in float32; pass dtype='float32' or use method='exact' "
                             "for float64.")
        check_multirate(boundary)
    return m


def check_multirate(boundary: str, wavelet: Any = None) -> None:
    """Raise a ``ValueError`` naming the fix unless ``method="multirate"`` can run with
    ``boundary`` (``linear`` or ``valid``) and ``wavelet`` (Morlet; not checked when ``None``)."""
    if boundary not in ("linear", "valid"):
        raise ValueError(f"method='multirate' supports boundary 'linear' or 'valid', not {boundary!r} (a named "
                         "preset selects its tool's boundary); pass boundary='linear' or use method='exact'.")
    if wavelet is not None and not isinstance(wavelet, Morlet):
        raise ValueError(f"method='multirate' supports the Morlet wavelet, not {wavelet!r}; use method='exact'.")


@lru_cache(maxsize=1)
def _halving_fir() -> np.ndarray:
    """The 41 taps ``resample_poly(x, 1, 2, window=("kaiser", beta))`` designs (built once)."""
    from scipy.signal import firwin

    return firwin(41, 0.5, window=("kaiser", _KAISER_BETA))


def _halve(x: np.ndarray) -> np.ndarray:
    from scipy.signal import resample_poly

    return resample_poly(x, 1, 2, axis=-1, window=_halving_fir())


def _pyramid(x: np.ndarray, max_stride: int) -> dict[int, tuple[np.ndarray, int]]:
    """``stride -> (copy, offset)``: the copy's sample ``offset + u`` is time ``u * stride``."""
    levels = {}
    cur, off, R = x, 0, 1
    while R < max_stride:
        left = _PAD + (off + _PAD) % 2  # resample_poly's sample u is its input's 2u: keep t=0 on it
        cur = _halve(np.pad(cur, ((0, 0), (left, _PAD))))
        off, R = (off + left) // 2, 2 * R
        levels[R] = (cur, off)
    return levels


@lru_cache(maxsize=1024)  # more than the scales of a grid: an LRU cycled by more keys than it holds never hits
def _upsampler(stride: int, frac: float, n_lo: int, n: int, omega_c: float, gain: float) -> _BandpassUpsampler:
    return _BandpassUpsampler(stride, _TAPS, frac, n_lo, n, omega_c, gain)


def multirate_cwt(x: np.ndarray, grid: ScaleGrid, *, boundary: str = "linear", tol: float = DEFAULT_TOL,
                  remove_mean: bool = False, workers: int | None = None) -> np.ndarray:
    """The ``linear`` (or ``valid``) CWT of ``x (..., n)`` in float32, band-limited scales by
    multirate evaluation (see the module notes); ``(..., n_scales, n)`` complex64.

    Examples
    --------
    >>> import numpy as np
    >>> from bioxen_dask.grid import make_grid
    >>> from bioxen_dask.kernels import cwt
    >>> x = np.random.default_rng(0).standard_normal(20_000)
    >>> g = make_grid(x.size, 1.0, dj=0.5)
    >>> W, ref = multirate_cwt(x, g), cwt(x, g)
    >>> err = np.abs(W - ref).max(axis=-1) / np.abs(ref).max(axis=-1)
    >>> bool(err.max() < 1e-5), int((cwt_strides(g, x.size) > 1).sum())
    (True, 21)
    """
    from ._cwt import cwt

    check_multirate(boundary, grid.wavelet)
    x = np.asarray(x, dtype=np.float64)
    if remove_mean:
        x = x - x.mean(axis=-1, keepdims=True)
    lead, n = x.shape[:-1], x.shape[-1]
    x2 = x.reshape(-1, n)
    nb = x2.shape[0]
    strides = cwt_strides(grid, n, tol)
    first = int(np.argmax(strides > 1)) if np.any(strides > 1) else grid.n_scales
    out = np.empty((nb, grid.n_scales, n), dtype=np.complex64)
    if first:
        small = ScaleGrid(grid.dt, tuple(grid.scales[:first]), grid.dj, grid.wavelet)
        exact_cwt_into(out[:, :first], x2, small, boundary="linear", tol=tol, dtype="float32", workers=workers)
    if first < grid.n_scales:
        u_lo, u_hi = _band(grid.wavelet, float(tol))
        levels = _pyramid(x2, int(strides.max()))
        tasks = []
        for R in np.unique(strides[first:]):
            js = np.flatnonzero(strides == R)
            copy, off = levels[int(R)]
            sub = ScaleGrid(grid.dt * R, tuple(grid.scales[js]), grid.dj, grid.wavelet)
            W = cwt(copy, sub, boundary="linear", tol=tol, dtype="float32", workers=workers)
            sigma = grid.scales[js] / grid.dt
            frac = float(round((u_hi - u_lo) / (2 * sigma.min()) * R / math.pi, 6))
            for r, j in enumerate(js):
                omega_c = float((u_hi + u_lo) / (2 * sigma[r]))
                up = _upsampler(int(R), frac, W.shape[-1], n, omega_c, math.sqrt(R))
                tasks.append((up, W[:, r], int(j), off))  # time 0 at the copy's sample off

        def run(task, scratch):
            up, V, j, off = task
            up(V, out[:, j], off)

        _run(tasks, run, resolve_workers(workers, points=nb * n * len(tasks)))
    if boundary == "valid":
        mask_edges(out, grid.wavelet_support(tol), np)
    return out.reshape(lead + (grid.n_scales, n))
