"""Continuous wavelet transform of plain arrays, batched over leading axes."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..grid import DEFAULT_TOL, ScaleGrid
from ._cache import filter_cache
from ._plan import Band, check_boundary, plan_bands
from ._xp import array_namespace, device_key, fft_kwargs, fft_namespace

__all__ = ["cwt", "resolve_dtype"]

#: Bytes of temporary spectrum a kernel may hold at once (per call), beyond its output.
_TEMP_BYTES = 64 * 2**20


def resolve_dtype(dtype: Any) -> tuple[np.dtype, np.dtype]:
    """(real, complex) dtypes for ``"float32"``/``"float64"`` (or NumPy equivalents)."""
    try:
        real = np.dtype(dtype)
    except TypeError:
        real = None
    if real not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}.")
    return real, np.result_type(real, np.complex64)


def _wavelet_filters(
    grid: ScaleGrid, band: Band, nfft: int, real: np.dtype, xp, sampled_support: np.ndarray | None = None,
    positive_nyquist: bool = False,
) -> Any:
    """Conjugated, normalised wavelet spectra ``(n_band_scales, nfft)``, cached per device.

    Frequency-defined (``sampled_support is None``, the ``pycwt``/``circular`` modes):
    ``sqrt(s * w[1] * N) * conj(psi_ft(s * w))`` with ``w = 2*pi*fftfreq(N, dt)`` — pycwt's
    formula, normalisation ``sqrt(2*pi*s/dt)`` (Torrence & Compo eq. 6). Its time kernel is
    band-limited: at the smallest scales the Morlet spectrum is cut at Nyquist and the kernel
    decays only like 1/t, so no finite padding contains it.

    Time-defined (``linear``/``symmetric``/``valid``): the DFT of the wavelet sampled in time,
    ``h[t] = sqrt(dt/s) * conj(psi(-t*dt/s))`` for ``|t| <= support`` (samples) and zero
    beyond. Its support is compact, so padding by the support gives an exact linear
    convolution and halos of that width make chunked transforms exact. Above ~4 samples
    per scale both definitions agree to ~1e-9.
    """

    def build():
        s = grid.scales[band.start : band.stop, None]
        if sampled_support is None:
            w = 2 * np.pi * np.fft.fftfreq(nfft, grid.dt)
            if positive_nyquist and nfft % 2 == 0:
                w[nfft // 2] = -w[nfft // 2]  # wave_bases.m puts Nyquist at +pi/dt
            bank = (s * w[1] * nfft) ** 0.5 * np.conjugate(grid.wavelet.psi_ft(s * w, np))
        else:
            h = np.asarray(sampled_support[band.start : band.stop])
            taus = np.arange(-int(h.max()), int(h.max()) + 1)
            kern = np.sqrt(grid.dt / s) * np.conjugate(grid.wavelet.psi(-taus[None, :] * grid.dt / s))
            kern = np.where(np.abs(taus)[None, :] <= h[:, None], kern, 0)
            frame = np.zeros((s.shape[0], nfft), dtype=complex)
            frame[:, taus % nfft] = kern
            bank = np.fft.fft(frame, axis=-1)
        if np.iscomplexobj(bank) and not np.any(bank.imag):
            bank = bank.real
        cdt = real if not np.iscomplexobj(bank) else np.result_type(real, np.complex64)
        return xp.asarray(bank.astype(cdt, copy=False))

    key = ("cwt", grid.key, band.start, band.stop, nfft, real.str, sampled_support is not None,
           positive_nyquist, device_key(xp))
    return filter_cache.get(key, build)


def cwt(
    x: Any,
    grid: ScaleGrid,
    *,
    boundary: str = "linear",
    tol: float = DEFAULT_TOL,
    remove_mean: bool = False,
    dtype: Any = "float32",
    workers: int | None = None,
) -> Any:
    """Continuous wavelet transform of real signals along their last axis.

    Parameters
    ----------
    x : ndarray (NumPy or CuPy), shape ``(..., time)``
        Real, finite samples. Leading axes (rois, surrogates) are batched.
    grid : ScaleGrid
        Scales, ``dt`` and mother wavelet.
    boundary : {"linear", "symmetric", "circular", "valid", "pycwt"}
        ``linear`` (default): zero padding long enough that nothing wraps around, i.e. a
        linear convolution with the wavelet truncated at ``tol``. ``symmetric``: the record
        is mirrored at both ends (``numpy.pad(mode="symmetric")``). ``circular``: no padding,
        the record wraps around. ``valid``: as ``linear``, then NaN wherever the wavelet
        overhangs an edge. ``pycwt``: zero padding to the next power of two, bit-compatible
        with pycwt 0.5.0b0 (partial wrap-around when the wavelet is long). ``grinsted``: zero
        padding to ``2**(fix(log2(n) + 0.4999) + 1)`` with the Nyquist frequency taken as
        positive, as Torrence & Compo's ``wavelet.m`` in Grinsted's toolbox.
    tol : float
        Relative envelope tolerance that sets padding lengths (``linear``/``symmetric``) and
        the ``valid`` region.
    remove_mean : bool
        Subtract each signal's mean first (Grinsted/Torrence & Compo). pycwt does not.
    dtype : {"float32", "float64"}
        Working precision; output is complex64 or complex128.
    workers : int, optional
        Threads for SciPy's FFT (CPU only).

    Returns
    -------
    ndarray, shape ``(..., n_scales, time)``, complex
        Wavelet coefficients, on the same device as ``x``.

    Examples
    --------
    >>> import numpy as np
    >>> from bioxen_dask.grid import make_grid
    >>> t = np.arange(512)
    >>> W = cwt(np.sin(2 * np.pi * t / 32), make_grid(512, 1.0), dtype="float64")
    >>> W.shape
    (98, 512)
    """
    boundary = check_boundary(boundary)
    real, cplx = resolve_dtype(dtype)
    xp = array_namespace(x)
    fft = fft_namespace(xp)
    kw = fft_kwargs(xp, workers)
    x = xp.asarray(x)
    if x.ndim < 1 or x.shape[-1] < 1:
        raise ValueError("x must have a non-empty last (time) axis.")
    x = x.astype(real, copy=False)
    if remove_mean:
        x = x - x.mean(axis=-1, keepdims=True)
    n = x.shape[-1]
    lead = x.shape[:-1]
    supports = grid.wavelet_support(tol)
    frequency_defined = boundary in ("pycwt", "circular", "grinsted")
    out = xp.empty(lead + (grid.n_scales, n), dtype=cplx)
    for band in plan_bands(n, supports, boundary):
        xb = x
        if band.pad:
            xb = xp.pad(x, [(0, 0)] * len(lead) + [(band.pad, band.pad)], mode="symmetric")
        spec = fft.fft(xb, n=band.nfft, axis=-1, **kw)[..., None, :]
        bank = _wavelet_filters(grid, band, band.nfft, real, xp, None if frequency_defined else supports,
                                positive_nyquist=boundary == "grinsted")
        rows = max(1, int(_TEMP_BYTES // max(1, band.nfft * cplx.itemsize * max(1, _prod(lead)))))
        for j0 in range(0, band.stop - band.start, rows):
            j1 = min(j0 + rows, band.stop - band.start)
            coef = fft.ifft(spec * bank[j0:j1], axis=-1, overwrite_x=True, **kw)
            out[..., band.start + j0 : band.start + j1, :] = coef[..., band.left : band.left + n]
    if boundary == "valid":
        mask_edges(out, supports, xp)
    return out


def mask_edges(values: Any, supports: np.ndarray, xp) -> Any:
    """Set NaN, per scale (axis -2), the first and last ``supports[j]`` samples (in place)."""
    n = values.shape[-1]
    for j, h in enumerate(np.asarray(supports)):
        h = int(min(h, n))
        values[..., j, :h] = np.nan
        values[..., j, n - h :] = np.nan
    return values


def _prod(shape: tuple[int, ...]) -> int:
    p = 1
    for s in shape:
        p *= int(s)
    return p
