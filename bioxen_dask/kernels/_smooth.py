"""Smoothing of wavelet spectra for coherence: Gaussian in time, boxcar across scales."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..grid import DEFAULT_TOL, ScaleGrid
from ._cache import filter_cache
from ._cwt import resolve_dtype
from ._plan import Band, check_boundary, plan_bands
from ._xp import array_namespace, device_key, fft_kwargs, fft_namespace

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
    grid: ScaleGrid, band: Band, real: np.dtype, xp, half: bool, sampled_support: np.ndarray | None = None
) -> Any:
    """Spectra of the time-smoothing Gaussians (σ = s/dt samples), cached per device.

    Frequency-defined (pycwt ``Morlet.smooth``): ``exp(-0.5 * (s/dt)**2 * k**2)`` with ``k`` in
    rad/sample. Time-defined (``linear``/``symmetric``): the DFT of the sampled Gaussian,
    truncated at ``sampled_support`` samples and normalised to unit sum, whose compact support
    makes padding and chunk halos exact.
    """

    def build():
        snorm = grid.scales[band.start : band.stop, None] / grid.dt
        if sampled_support is None:
            f = np.fft.rfftfreq(band.nfft) if half else np.fft.fftfreq(band.nfft)
            return xp.asarray(np.exp(-0.5 * snorm**2 * (2 * np.pi * f) ** 2).astype(real))
        h = np.asarray(sampled_support[band.start : band.stop])
        taus = np.arange(-int(h.max()), int(h.max()) + 1)
        kern = np.where(np.abs(taus)[None, :] <= h[:, None], np.exp(-0.5 * (taus[None, :] / snorm) ** 2), 0.0)
        kern /= kern.sum(axis=1, keepdims=True)
        frame = np.zeros((snorm.shape[0], band.nfft))
        frame[:, taus % band.nfft] = kern
        spec = np.fft.rfft(frame, axis=-1) if half else np.fft.fft(frame, axis=-1)
        return xp.asarray(spec.real.astype(real))  # even kernel: real spectrum

    key = ("gauss", grid.key, band.start, band.stop, band.nfft, half, real.str,
           sampled_support is not None, device_key(xp))
    return filter_cache.get(key, build)


def smooth_time(
    values: Any,
    grid: ScaleGrid,
    *,
    boundary: str = "linear",
    tol: float = DEFAULT_TOL,
    workers: int | None = None,
) -> Any:
    """Gaussian smoothing along time (last axis), σ = scale/dt samples per scale (axis -2)."""
    boundary = check_boundary(boundary)
    xp = array_namespace(values)
    fft = fft_namespace(xp)
    kw = fft_kwargs(xp, workers)
    is_complex = xp.iscomplexobj(values)
    real, _ = resolve_dtype(values.real.dtype if is_complex else values.dtype)
    n = values.shape[-1]
    lead = values.shape[:-2]
    out = xp.empty_like(values)
    mode = {"valid": "linear", "grinsted": "pycwt"}.get(boundary, boundary)  # smoothwavelet.m pads as pycwt
    supports = grid.smoothing_support(tol)
    sampled = None if mode in ("pycwt", "circular") else supports
    for band in plan_bands(n, supports, mode):
        v = values[..., band.start : band.stop, :]
        if band.pad:
            v = xp.pad(v, [(0, 0)] * (len(lead) + 1) + [(band.pad, band.pad)], mode="symmetric")
        gauss = _gaussian_filters(grid, band, real, xp, half=not is_complex, sampled_support=sampled)
        if is_complex:
            sm = fft.ifft(fft.fft(v, n=band.nfft, axis=-1, **kw) * gauss, axis=-1, **kw)
        else:
            sm = fft.irfft(fft.rfft(v, n=band.nfft, axis=-1, **kw) * gauss, n=band.nfft, axis=-1, **kw)
        out[..., band.start : band.stop, :] = sm[..., band.left : band.left + n]
    return out


def smooth_scale(values: Any, weights: np.ndarray) -> Any:
    """Zero-filled 'same' convolution across scales (axis -2), as ``scipy.signal.convolve2d``."""
    xp = array_namespace(values)
    taps = len(weights)
    if taps == 1:
        return values * float(weights[0])
    n_scales = values.shape[-2]
    pad = [(0, 0)] * (values.ndim - 2) + [(taps - 1, taps - 1), (0, 0)]
    padded = xp.pad(values, pad)
    centre = (taps - 1) // 2
    out = xp.zeros_like(values)
    for k, wk in enumerate(np.asarray(weights, dtype=float)):
        start = centre - k + taps - 1
        out += padded[..., start : start + n_scales, :] * wk
    return out


def smooth(
    values: Any,
    grid: ScaleGrid,
    *,
    scale_kernel_kind: str = "pycwt",
    boundary: str = "linear",
    tol: float = DEFAULT_TOL,
    workers: int | None = None,
) -> Any:
    """Smooth a wavelet spectrum in time then across scales (the coherence smoother).

    Parameters
    ----------
    values : ndarray, shape ``(..., n_scales, time)``
        Real (power) or complex (cross spectrum) values, already divided by scale.
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
        SciPy FFT threads.

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
    return smooth_scale(t, scale_kernel(scale_kernel_kind, grid))
