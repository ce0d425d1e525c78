"""Drop-in replacements for pycwt 0.5.0b0's ``cwt``, ``xwt``, ``wct``, ``wct_significance``, ``ar1``.

Same signatures, same return tuples and the same numbers (to rounding; float64 with pycwt's
power-of-two padding), computed by bioxen-dask's kernels. What differs, on purpose:

- Bad input raises a :class:`ValueError` naming the problem (NaN/inf, too short, constant,
  2-D, mismatched lengths, unknown wavelet, ``dt <= 0``) instead of silently producing NaN
  or crashing later.
- ``wct_significance`` runs bioxen-dask's distributed Monte Carlo stage
  (:mod:`bioxen_dask.significance`; hundreds of times faster than pycwt's Python loop). Its
  surrogates are true AR(1) red noise: pycwt 0.5.0b0's ``rednoise`` filters along a length-1
  axis (``lfilter`` of an ``(N, 1)`` array), so pycwt's "AR(1)" surrogates are white noise
  whatever the coefficients; ``al1 = al2 = 0`` reproduces pycwt's numbers. It accepts a
  wavelet *name* (pycwt crashes on its own default), clamps coherence 1.0 into the last
  histogram bin (pycwt raises ``IndexError``), estimates the largest scale with points
  outside the COI (pycwt leaves it NaN), returns NaN (not 0) for scales entirely inside the
  COI, and is reproducible: it draws one seed from NumPy's global generator, so
  ``np.random.seed(n)`` fixes it as in pycwt, or pass ``seed=``. Its ``cache`` is
  bioxen-dask's threshold cache, whose key includes ``mc_count`` and the seed.
- ``rednoise(N, 0)`` returns white noise (pycwt crashes).
- The Paul wavelet keeps every requested scale: pycwt's ``psi_ft`` overflows to NaN at large
  scales of long records and pycwt then silently drops those scales.
- Any wavelet with a known ``deltaj0`` works in ``wct`` (pycwt only smooths Morlet).

Examples
--------
>>> import numpy as np
>>> from bioxen_dask import compat
>>> x = np.sin(2 * np.pi * np.arange(256) / 16)
>>> W, scales, freqs, coi, fft, fftfreqs = compat.cwt(x, 1.0)
>>> W.shape
(86, 256)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.fft
from scipy.stats import chi2

from . import kernels
from ._validation import as_signal, check_dt, check_length, check_same_length, check_variance
from .grid import ScaleGrid, make_grid
from .significance import _ar1

__all__ = ["cwt", "xwt", "wct", "wct_significance", "ar1", "rednoise", "ar1_spectrum"]

_PRESET = "pycwt"


def _pycwt_J(J: float) -> int:
    """pycwt's scale count for a given ``J``: ``arange(0, J + 1)``, so a fractional ``J``
    rounds up (``J=1.5``: 3 scales), where ``int(J)`` would drop one."""
    if J == -1:
        return -1
    if not (isinstance(J, (int, float, np.integer, np.floating)) and math.isfinite(J) and J >= 0):
        raise ValueError(f"J must be -1 or a non-negative number (scales minus one), got {J!r}.")
    return int(np.arange(0, J + 1).size - 1)


def _grid(n: int, dt: float, dj: float, s0: float, J: float, wavelet: Any, freqs: Any = None) -> ScaleGrid:
    return make_grid(n, dt, dj=dj, s0=s0, J=_pycwt_J(J), wavelet=wavelet, preset=_PRESET, freqs=freqs)


def _standardise(y: np.ndarray, normalize: bool) -> np.ndarray:
    return (y - y.mean()) / y.std() if normalize else y


def cwt(
    signal: Any,
    dt: float,
    dj: float = 1 / 12,
    s0: float = -1,
    J: int = -1,
    wavelet: Any = "morlet",
    freqs: Any = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Continuous wavelet transform, as ``pycwt.cwt``.

    Parameters
    ----------
    signal : array-like, 1-D
    dt : float
        Sampling interval.
    dj : float
        Scale spacing in octaves (default 1/12).
    s0 : float
        Smallest scale; -1 means ``2*dt/flambda`` (smallest period 2 dt).
    J : int
        Number of scales minus one; -1 means ``round(log2(n*dt/s0)/dj)``.
    wavelet : str or wavelet object
    freqs : array-like, optional
        Explicit Fourier frequencies instead of ``s0``/``J``.

    Returns
    -------
    W : ndarray (n_scales, n) complex
    sj : ndarray
        Scales.
    freqs : ndarray
        Fourier frequencies.
    coi : ndarray
        Cone of influence (period).
    fft : ndarray
        Normalised FFT of the signal (positive frequencies).
    fftfreqs : ndarray
        Its frequencies.

    Examples
    --------
    >>> W, sj, f, coi, _, _ = cwt(np.random.default_rng(0).standard_normal(100), 0.5)
    >>> W.shape, sj.shape, coi.shape
    ((69, 100), (69,), (100,))
    """
    x = as_signal(signal, "signal")
    dt = check_dt(dt)
    grid = _grid(x.size, dt, dj, s0, J, wavelet, freqs)
    check_length(x.size, grid, "signal")
    W = kernels.cwt(x, grid, boundary="pycwt", dtype="float64")
    N = int(2 ** math.ceil(math.log2(x.size)))
    signal_ft = scipy.fft.fft(x, n=N)
    ftfreqs = 2 * np.pi * scipy.fft.fftfreq(N, dt)
    freqs_out = np.asarray(freqs, float) if freqs is not None else grid.frequencies
    return (
        W,
        np.array(grid.scales),
        freqs_out,
        grid.coi(x.size),
        signal_ft[1 : N // 2] / N**0.5,
        ftfreqs[1 : N // 2] / (2 * np.pi),
    )


def _pair_transforms(y1: Any, y2: Any, dt: float, dj: float, s0: float, J: int, wavelet: Any, normalize: bool):
    a = as_signal(y1, "y1")
    b = as_signal(y2, "y2")
    check_same_length(a, b, ("y1", "y2"))
    dt = check_dt(dt)
    if normalize:
        check_variance(a, "y1")
        check_variance(b, "y2")
    grid = _grid(a.size, dt, dj, s0, J, wavelet)
    check_length(a.size, grid, "y1")
    W1 = kernels.cwt(_standardise(a, normalize), grid, boundary="pycwt", dtype="float64")
    W2 = kernels.cwt(_standardise(b, normalize), grid, boundary="pycwt", dtype="float64")
    return a, b, grid, W1, W2


def xwt(
    y1: Any,
    y2: Any,
    dt: float,
    dj: float = 1 / 12,
    s0: float = -1,
    J: int = -1,
    significance_level: float = 0.95,
    wavelet: Any = "morlet",
    normalize: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cross-wavelet transform, as ``pycwt.xwt``.

    Returns
    -------
    W12 : ndarray (n_scales, n) complex
        ``W1 * conj(W2)``.
    coi : ndarray
    freq : ndarray
    signif : ndarray
        Theoretical significance of ``|W12|`` against two AR(1) backgrounds (Torrence &
        Compo 1998 §4, with pycwt's Allen & Smith AR(1) of the raw inputs).

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> W12, coi, freq, signif = xwt(rng.standard_normal(200), rng.standard_normal(200), 1.0)
    >>> W12.shape == (freq.size, 200)
    True
    """
    a, b, grid, W1, W2 = _pair_transforms(y1, y2, dt, dj, s0, J, wavelet, normalize)
    std1, std2 = (1.0, 1.0) if normalize else (a.std(), b.std())
    a1 = _ar1.ar1_allen_smith(a)[0]
    a2 = _ar1.ar1_allen_smith(b)[0]
    freq = grid.frequencies
    Pk1 = _ar1.ar1_spectrum(freq * grid.dt, a1)
    Pk2 = _ar1.ar1_spectrum(freq * grid.dt, a2)
    dof = grid.wavelet.dofmin
    signif = std1 * std2 * (Pk1 * Pk2) ** 0.5 * chi2.ppf(significance_level, dof) / dof
    return kernels.cross_spectrum(W1, W2), grid.coi(a.size), freq, signif


def wct(
    y1: Any,
    y2: Any,
    dt: float,
    dj: float = 1 / 12,
    s0: float = -1,
    J: int = -1,
    sig: bool = True,
    significance_level: float = 0.95,
    wavelet: Any = "morlet",
    normalize: bool = True,
    **kwargs: Any,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Wavelet coherence, as ``pycwt.wct``.

    Returns
    -------
    WCT : ndarray (n_scales, n)
        Squared wavelet coherence.
    aWCT : ndarray (n_scales, n)
        Phase of the unsmoothed cross spectrum (radians).
    coi : ndarray
    freq : ndarray
    sig : ndarray
        Per-scale Monte Carlo threshold at ``significance_level`` (``[0]`` if ``sig=False``).
        ``**kwargs`` go to :func:`wct_significance` (``mc_count``, ``progress``, ``cache``,
        ``seed``, ``scheduler``).

    Examples
    --------
    >>> rng = np.random.default_rng(2)
    >>> x = rng.standard_normal(300)
    >>> WCT, aWCT, coi, freq, _ = wct(x, x + rng.standard_normal(300), 1.0, sig=False)
    >>> bool(WCT.max() <= 1 + 1e-12)
    True
    """
    unknown = sorted(set(kwargs) - set(_SIGNIFICANCE_OPTIONS))
    if unknown:  # pycwt ignores them silently; a typo would then change nothing unnoticed
        raise TypeError(f"wct() got unknown keyword(s) {unknown}; the Monte Carlo options are "
                        f"{list(_SIGNIFICANCE_OPTIONS)}.")
    a, b, grid, W1, W2 = _pair_transforms(y1, y2, dt, dj, s0, J, wavelet, normalize)
    smoother = kernels.Smoother(grid, scale_kernel="pycwt", boundary="pycwt")
    WCT, aWCT = kernels.coherence(W1, W2, smoother, clip=False)
    if sig:
        a1 = _ar1.ar1_allen_smith(a)[0]
        a2 = _ar1.ar1_allen_smith(b)[0]
        signif = wct_significance(
            a1, a2, dt=grid.dt, dj=grid.dj, s0=grid.scales[0], J=grid.n_scales - 1,
            significance_level=significance_level, wavelet=grid.wavelet, **kwargs,
        )
    else:
        signif = np.asarray([0])
    return WCT, aWCT, grid.coi(a.size), grid.frequencies, signif


def wct_significance(
    al1: float,
    al2: float,
    dt: float,
    dj: float,
    s0: float,
    J: int,
    significance_level: float = 0.95,
    wavelet: Any = "morlet",
    mc_count: int = 300,
    progress: bool = True,
    cache: bool = True,
    seed: int | None = None,
    scheduler: Any = None,
) -> np.ndarray:
    """Monte Carlo significance level of wavelet coherence, as ``pycwt.wct_significance``.

    AR(1) surrogate pairs of length ``ceil(6 * largest scale / dt)``; coherence outside the
    COI pooled per scale in 1000 bins; the level read off by interpolation. Computed by
    :func:`bioxen_dask.significance.ar1_thresholds` (batched, distributed, multirate).

    Parameters
    ----------
    al1, al2 : float
        AR(1) coefficients of the two series.
    dt, dj, s0, J : float, float, float, int
        The scale grid (pass the values your ``wct`` used; -1 is not accepted).
    significance_level : float
    wavelet : str or wavelet object
    mc_count : int
        Surrogate pairs (default 300).
    progress : bool
        Progress bar.
    cache : bool
        Reuse the null distribution from bioxen-dask's threshold cache when every input of
        the Monte Carlo run matches (coefficients, grid, wavelet, ``mc_count``, seed).
    seed : int, optional
        Seed; by default one is drawn from NumPy's global generator (``np.random.seed``).
    scheduler : distributed.Client or str, optional
        Where the surrogate batches run (default: the active Dask client, else local threads).

    Returns
    -------
    ndarray (J+1,)
        Coherence threshold per scale; NaN where the scale lies entirely inside the COI.

    Examples
    --------
    >>> sig = wct_significance(0.5, 0.5, 1.0, 1/4, 2.0, 8, mc_count=20, progress=False, cache=False, seed=1)
    >>> sig.shape
    (9,)
    """
    from .significance import ar1_thresholds, threshold_cache

    dt = check_dt(dt)
    if s0 == -1 or J == -1:
        raise ValueError("pass the s0 and J your wct used (pycwt needs them too); -1 is not defined here.")
    for name, g in (("al1", al1), ("al2", al2)):
        if not (isinstance(g, (int, float, np.integer, np.floating)) and -1 < g < 1):
            raise ValueError(f"{name} must be an AR(1) coefficient in (-1, 1) (compat.ar1(x)[0]), got {g!r}.")
    grid = ScaleGrid.from_s0(dt, float(s0), float(dj), _pycwt_J(J), wavelet)
    if seed is None:
        seed = int(np.random.randint(0, 2**31 - 1))
    kw = dict(levels=float(significance_level), mc_count=mc_count, seed=seed, scheduler=scheduler,
              progress=progress, scale_kernel="pycwt", boundary="pycwt")
    if cache:
        return threshold_cache.cached_ar1_thresholds(grid, float(al1), float(al2), bucket_width=None, **kw)
    return ar1_thresholds(grid, float(al1), float(al2), **kw)


#: Keywords :func:`wct` passes on to :func:`wct_significance`.
_SIGNIFICANCE_OPTIONS = ("mc_count", "progress", "cache", "seed", "scheduler")


def ar1(x: Any) -> tuple[float, float, float]:
    """Allen & Smith AR(1) estimate ``(g, a, mu2)``, as ``pycwt.ar1`` (raises ``ValueError``)."""
    return _ar1.ar1_allen_smith(x)


def rednoise(N: int, g: float, a: float = 1.0) -> np.ndarray:
    """AR(1) red noise as ``pycwt.rednoise`` (draws from NumPy's global generator)."""
    return _ar1.rednoise(N, float(g), float(a), rng=np.random.randint(0, 2**31 - 1))


def ar1_spectrum(freqs: Any, ar1: float = 0.0) -> np.ndarray:
    """Theoretical AR(1) spectrum, as ``pycwt.ar1_spectrum``."""
    return _ar1.ar1_spectrum(freqs, ar1)
