"""AR(1) estimators and red-noise surrogates."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.signal import lfilter

__all__ = ["ar1_allen_smith", "ar1_from_covariances", "ar1_naive", "estimate_ar1", "rednoise", "ar1_spectrum"]


def _lag_covariances(x: Any) -> tuple[np.ndarray, float, float, int]:
    x = np.asarray(x, dtype=float)
    if x.ndim != 1:
        raise ValueError(f"AR(1) estimation needs a 1-D series, got shape {x.shape}.")
    n = x.size
    if n < 3:
        raise ValueError(f"AR(1) estimation needs at least 3 samples, got {n}.")
    if not np.all(np.isfinite(x)):
        raise ValueError("AR(1) estimation needs finite samples; remove NaN/inf first.")
    x = x - x.mean()
    c0 = float(x @ x) / n
    c1 = float(x[:-1] @ x[1:]) / (n - 1)
    if c0 == 0:
        raise ValueError("the series is constant (zero variance): its AR(1) coefficient is undefined.")
    return x, c0, c1, n


def ar1_allen_smith(x: Any) -> tuple[float, float, float]:
    """Bias-corrected lag-1 autocorrelation of Allen & Smith (1996), as pycwt's ``ar1``.

    Parameters
    ----------
    x : array-like, 1-D
        Finite, non-constant series of at least 3 samples (not modified).

    Returns
    -------
    g : float
        AR(1) coefficient.
    a : float
        Innovation amplitude (``var(x) ~ a**2/(1-g**2)``).
    mu2 : float
        Normalised squared mean of a finite AR(1) segment.

    Raises
    ------
    ValueError
        When no unbiased estimate exists (the series is too short or dominated by a trend).

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.signal import lfilter
    >>> x = lfilter([1], [1, -0.7], np.random.default_rng(0).standard_normal(5000))
    >>> round(ar1_allen_smith(x)[0], 2)
    0.7
    """
    _, c0, c1, N = _lag_covariances(x)
    return _allen_smith(c0, c1, N)


def _allen_smith(c0: float, c1: float, N: int) -> tuple[float, float, float]:
    """Allen & Smith's ``(g, a, mu2)`` from the lag covariances of an ``N``-sample series."""
    B = -c1 * N - c0 * N**2 - 2 * c0 + 2 * c1 - c1 * N**2 + c0 * N
    A = c0 * N**2
    C = N * (c0 + c1 * N - c1)
    D = B**2 - 4 * A * C
    if not D > 0:
        raise ValueError(
            "cannot place an upper bound on the unbiased AR(1) coefficient: the series is too "
            "short or a trend dominates it; detrend it, use a longer record, or use "
            "ar1_estimator='naive'."
        )
    g = (-B - math.sqrt(D)) / (2 * A)
    mu2 = -1 / N + (2 / N**2) * ((N - g**N) / (1 - g) - g * (1 - g ** (N - 1)) / (1 - g) ** 2)
    c0t = c0 / (1 - mu2)
    a = math.sqrt((1 - g**2) * c0t)
    return g, a, mu2


def ar1_naive(x: Any) -> tuple[float, float]:
    """Naive lag-1 autocorrelation ``g = c1/c0`` (Grinsted's ``ar1nv``).

    Parameters
    ----------
    x : array-like, 1-D
        Finite, non-constant series of at least 3 samples (not modified).

    Returns
    -------
    g : float
        AR(1) coefficient.
    a : float
        Innovation amplitude ``sqrt((1 - g**2) * c0)``.

    Raises
    ------
    ValueError
        When the estimate is outside ``(-1, 1)`` (a trend or a non-stationary series).

    Examples
    --------
    >>> x = rednoise(5000, 0.7, rng=0)
    >>> round(ar1_naive(x)[0], 2)
    0.7
    """
    _, c0, c1, _ = _lag_covariances(x)
    return _naive(c0, c1)


def _naive(c0: float, c1: float) -> tuple[float, float]:
    g = c1 / c0
    if not -1 < g < 1:
        raise ValueError(f"the naive AR(1) estimate {g:g} is outside (-1, 1); the series is not stationary.")
    return g, math.sqrt((1 - g**2) * c0)


def estimate_ar1(x: Any, estimator: str = "allen_smith") -> float:
    """AR(1) coefficient by name: ``"allen_smith"`` (pycwt) or ``"naive"`` (Grinsted).

    Parameters
    ----------
    x : array-like, 1-D
        The series (not modified).
    estimator : {"allen_smith", "naive"}
        :func:`ar1_allen_smith` or :func:`ar1_naive`.

    Returns
    -------
    float
        The lag-1 coefficient ``g``.
    """
    if estimator == "allen_smith":
        return ar1_allen_smith(x)[0]
    if estimator == "naive":
        return ar1_naive(x)[0]
    raise ValueError(f"unknown AR(1) estimator {estimator!r}; choose 'allen_smith' or 'naive'.")


def ar1_from_covariances(c0: Any, c1: Any, n: int, estimator: str = "allen_smith") -> tuple[np.ndarray, np.ndarray]:
    """AR(1) coefficients of records known by their lag covariances, as :func:`estimate_ar1`.

    ``c0 = sum y**2 / n`` and ``c1 = sum y_t y_{t+1} / (n - 1)`` of each mean-removed record
    (e.g. from a streaming pass over a long record:
    :meth:`bioxen_dask.kernels._moments.RecordMoments.lag_covariances`), one value per record.

    Returns
    -------
    g : ndarray
        The coefficient; NaN for a constant record (``c0 == 0``) or where no estimate exists.
    fallback : ndarray of bool
        Where Allen & Smith has no root and the naive estimate ``c1/c0`` was taken.

    Examples
    --------
    >>> x = rednoise(5000, 0.7, rng=0)
    >>> y = x - x.mean()
    >>> g, _ = ar1_from_covariances([y @ y / 5000], [y[:-1] @ y[1:] / 4999], 5000)
    >>> bool(abs(g[0] - estimate_ar1(x)) < 1e-12)
    True
    """
    if estimator not in ("allen_smith", "naive"):
        raise ValueError(f"unknown AR(1) estimator {estimator!r}; choose 'allen_smith' or 'naive'.")
    c0, c1 = np.atleast_1d(np.asarray(c0, float)), np.atleast_1d(np.asarray(c1, float))
    g = np.full(c0.shape, np.nan)
    fallback = np.zeros(c0.shape, bool)
    for i, (a, b) in enumerate(zip(c0.tolist(), c1.tolist())):
        if not (np.isfinite(a) and np.isfinite(b)) or a <= 0:
            continue
        try:
            g[i] = _allen_smith(a, b, int(n))[0] if estimator == "allen_smith" else _naive(a, b)[0]
        except ValueError:  # Allen & Smith has no root: fall back to the naive estimate
            try:
                g[i] = _naive(a, b)[0]
                fallback[i] = estimator == "allen_smith"
            except ValueError:
                pass
    return g, fallback


def rednoise(
    n: int, g: float, a: float = 1.0, *, size: int | tuple[int, ...] = (), rng: Any = None
) -> np.ndarray:
    """AR(1) red noise ``y[t] = g*y[t-1] + a*e[t]`` with a burn-in of twice the decorrelation time.

    Parameters
    ----------
    n : int
        Samples per series.
    g : float
        AR(1) coefficient in ``(-1, 1)``; ``0`` gives white noise (pycwt crashes there).
    a : float
        Innovation amplitude.
    size : int or tuple
        Leading batch shape.
    rng : numpy.random.Generator or seed, optional
        Source of the innovations.

    Returns
    -------
    ndarray, shape ``size + (n,)``
        The series, starting after the burn-in.

    Examples
    --------
    >>> rednoise(5, 0.5, size=2, rng=0).shape
    (2, 5)
    """
    if not -1 < g < 1:
        raise ValueError(f"AR(1) coefficient must be in (-1, 1), got {g!r}.")
    if not math.isfinite(a):
        raise ValueError(f"the innovation amplitude a must be a finite number, got {a!r}.")
    if isinstance(n, bool) or not float(n).is_integer() or n < 1:
        raise ValueError(f"n must be a positive whole number of samples, got {n!r}.")
    n = int(n)
    rng = np.random.default_rng(rng)
    size = (size,) if isinstance(size, int) else tuple(size)
    tau = 0 if g == 0 else int(math.ceil(-2 / math.log(abs(g))))
    e = rng.standard_normal(size + (n + tau,)) * a
    if g == 0:
        return e
    return lfilter([1.0, 0.0], [1.0, -g], e, axis=-1)[..., tau:]


def ar1_spectrum(freqs: Any, g: float) -> np.ndarray:
    """Theoretical normalised AR(1) power spectrum at frequencies in cycles per sample.

    Parameters
    ----------
    freqs : array-like
        Frequencies in cycles per sample.
    g : float
        AR(1) coefficient.

    Returns
    -------
    ndarray
        ``(1 - g**2) / |1 - g exp(-2 pi i f)|**2`` (1 for white noise).
    """
    f = np.asarray(freqs, dtype=float)
    return (1 - g**2) / np.abs(1 - g * np.exp(-2j * np.pi * f)) ** 2
