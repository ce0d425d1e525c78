"""Record moments from time blocks: mean, variance, linear trend and lag-1 covariance.

A long record is summarised block by block (:func:`block_moments`: a few numbers per row,
each block centred on its own mean, so nothing cancels catastrophically) and the summaries
are joined exactly (:func:`join_moments`; Chan et al.'s pairwise update, extended to the
lag-1 products and the trend). The lag-1 products across a block boundary need one sample
of the neighbouring block: each summary carries its first and last sample, so the blocks
need no overlap of their own and none waits for another. From the joined moments come the
normalisation of coherence (``(x - mean - slope * tc) / std``) and the ``c0``/``c1`` an
AR(1) estimator takes (:func:`bioxen_dask.significance.ar1_from_covariances`), equal to
those of the whole record in memory to rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["RecordMoments", "block_moments", "decimate_maps", "join_moments"]

#: Columns of a block summary.
_N, _MEAN, _M2, _LAG, _TREND, _FIRST, _LAST, _MIN, _MAX = range(9)
N_COLUMNS = 9


def block_moments(block: np.ndarray) -> np.ndarray:
    """Summary ``(rows, 9)`` of a ``(rows, time)`` block, in float64.

    Columns: samples, mean ``m``, ``sum (x - m)**2``, ``sum (x_t - m)(x_{t+1} - m)`` over the
    block's own consecutive pairs, ``sum (x - m) (t - t_mid)`` (``t_mid`` the block's middle),
    first and last sample, smallest and largest sample.

    Examples
    --------
    >>> block_moments(np.array([[1.0, 2.0, 3.0]])).tolist()
    [[3.0, 2.0, 2.0, 0.0, 2.0, 1.0, 3.0, 1.0, 3.0]]
    """
    x = np.asarray(block, dtype=np.float64)
    n = x.shape[-1]
    out = np.empty(x.shape[:-1] + (N_COLUMNS,))
    m = x.mean(axis=-1)
    a = x - m[..., None]
    out[..., _N] = n
    out[..., _MEAN] = m
    out[..., _M2] = np.einsum("...t,...t->...", a, a)
    out[..., _LAG] = np.einsum("...t,...t->...", a[..., :-1], a[..., 1:])
    out[..., _TREND] = a @ (np.arange(n) - (n - 1) / 2)
    out[..., _FIRST] = x[..., 0]
    out[..., _LAST] = x[..., -1]
    out[..., _MIN] = x.min(axis=-1)
    out[..., _MAX] = x.max(axis=-1)
    return out


@dataclass(frozen=True)
class RecordMoments:
    """Moments of whole records (one value per row), joined from block summaries.

    Attributes
    ----------
    n : int
        Samples per record.
    mean, m2, lag, trend : ndarray
        Mean, ``sum (x - mean)**2``, ``sum (x_t - mean)(x_{t+1} - mean)`` and
        ``sum (x - mean) * tc`` with ``tc = t - (n - 1)/2``.
    first, last : ndarray
        First and last sample.
    constant : ndarray of bool
        Whether every sample is the same (no variance: no normalisation, no AR(1)).
    """

    n: int
    mean: np.ndarray
    m2: np.ndarray
    lag: np.ndarray
    trend: np.ndarray
    first: np.ndarray
    last: np.ndarray
    constant: np.ndarray

    @property
    def _tc2(self) -> float:
        """``sum tc**2``."""
        return self.n * (self.n**2 - 1) / 12.0

    def slope(self, detrend: bool) -> np.ndarray:
        """Least-squares slope per sample (0 without ``detrend``)."""
        if not detrend or self.n < 2:
            return np.zeros_like(self.mean)
        return self.trend / self._tc2

    def std(self, detrend: bool) -> np.ndarray:
        """Standard deviation (``ddof=0``) of the record, less its line with ``detrend``."""
        ss = self.m2 - (self.trend**2 / self._tc2 if detrend and self.n > 1 else 0.0)
        return np.sqrt(np.maximum(ss, 0.0) / self.n)

    def lag_covariances(self, detrend: bool) -> tuple[np.ndarray, np.ndarray]:
        """``(c0, c1)`` of the (detrended) record as the AR(1) estimators define them:
        ``sum y**2 / n`` and ``sum y_t y_{t+1} / (n - 1)`` of ``y = x - mean (- slope*tc)``."""
        n = self.n
        if not detrend:
            return self.m2 / n, self.lag / (n - 1)
        s, h = self.slope(True), (n - 1) / 2
        a0, a1 = self.first - self.mean, self.last - self.mean
        cross = (self.trend - a1 * h - a1) + (self.trend + a0 * h + a0)  # sum a_t tc_{t+1} + a_{t+1} tc_t
        tc_lag = self._tc2 - h * h - h  # sum tc_t tc_{t+1}
        c1 = self.lag - s * cross + s * s * tc_lag
        return self.std(True) ** 2, c1 / (n - 1)


def join_moments(parts: list[np.ndarray], starts: list[int]) -> RecordMoments:
    """Join the summaries of consecutive blocks (``parts[k]`` :func:`block_moments` of the
    block starting at sample ``starts[k]``) into the moments of the whole records.

    Examples
    --------
    >>> x = np.random.default_rng(0).standard_normal((2, 1000))
    >>> m = join_moments([block_moments(x[:, :300]), block_moments(x[:, 300:])], [0, 300])
    >>> bool(np.allclose(m.lag, ((x - x.mean(1, keepdims=True))[:, :-1] * (x - x.mean(1, keepdims=True))[:, 1:]).sum(1)))
    True
    """
    S = np.stack(parts)  # (blocks, rows, 7)
    nb = S[..., _N]
    n = float(nb[:, 0].sum()) if S.ndim == 3 else float(nb.sum())
    mean = (nb * S[..., _MEAN]).sum(axis=0) / n
    d = S[..., _MEAN] - mean  # block mean less the record mean
    m2 = S[..., _M2].sum(axis=0) + (nb * d * d).sum(axis=0)
    a_first = S[..., _FIRST] - S[..., _MEAN]
    a_last = S[..., _LAST] - S[..., _MEAN]
    lag = (S[..., _LAG] - d * (a_first + a_last) + (nb - 1) * d * d).sum(axis=0)
    lag = lag + ((S[:-1, ..., _LAST] - mean) * (S[1:, ..., _FIRST] - mean)).sum(axis=0)  # the boundary pairs
    centre = np.asarray(starts, dtype=np.float64).reshape((-1,) + (1,) * (S.ndim - 2)) + (nb - 1) / 2 - (n - 1) / 2
    trend = (S[..., _TREND] + nb * d * centre).sum(axis=0)
    constant = S[..., _MIN].min(axis=0) == S[..., _MAX].max(axis=0)
    return RecordMoments(int(n), mean, m2, lag, trend, S[0, ..., _FIRST], S[-1, ..., _LAST], constant)


def decimate_maps(R2: np.ndarray, phase: np.ndarray, step: int) -> tuple[np.ndarray, np.ndarray]:
    """Coherence and phase maps ``(..., time)`` averaged over windows of ``step`` samples.

    Coherence: the mean over each window; phase: the circular mean (angle of the mean unit
    phasor). Samples that are NaN (gap-masked) are left out; a window of NaN stays NaN. The
    last window may be shorter. The maps' dtype is kept.

    Examples
    --------
    >>> r, p = decimate_maps(np.array([[0.2, 0.4, 1.0]]), np.array([[3.0, -3.0, 0.5]]), 2)
    >>> r.round(6).tolist(), round(abs(float(p[0, 0])), 6), round(float(p[0, 1]), 6)
    ([[0.3, 1.0]], 3.141593, 0.5)
    """
    if step == 1:
        return R2, phase
    n = R2.shape[-1]
    m = -(-n // step)
    pad = m * step - n

    def windows(a: np.ndarray) -> np.ndarray:
        if pad:
            a = np.concatenate([a, np.full(a.shape[:-1] + (pad,), np.nan, a.dtype)], axis=-1)
        return a.reshape(a.shape[:-1] + (m, step))

    with np.errstate(invalid="ignore"):
        w = windows(R2)
        valid = ~np.isnan(w)
        count = valid.sum(axis=-1)
        r = np.where(valid, w, 0).sum(axis=-1, dtype=np.float64) / np.where(count, count, np.nan)
        ph = windows(phase)
        z = np.where(valid & ~np.isnan(ph), np.exp(1j * np.where(np.isnan(ph), 0, ph)), 0).sum(axis=-1)
    return r.astype(R2.dtype), np.where(count > 0, np.angle(z), np.nan).astype(phase.dtype)
