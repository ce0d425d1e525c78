"""Long records on Dask: the per-record statistics of pair coherence in one streaming pass.

Pair coherence of a record too long for one task is computed in halo-exact time blocks
(:func:`bioxen_dask.coherence`), each an independent task. What each block needs of the
*whole* record -- the normalisation ``(x - mean - slope * tc) / std`` and the AR(1)
coefficient of the significance test -- is computed here, when the graph is built, in one
pass over the record (:func:`bioxen_dask.kernels._moments.block_moments` per block, joined
with their first and last samples: a one-sample overlap) and enters the graph as numbers. A
lazy whole-record reduction (``x.mean()``, ``x.std()``, or an AR(1) of the rechunked row)
would make every block wait for it, and Dask would hold the record's blocks meanwhile:
memory growing with the record (2.2-2.5 GB at 2e7 samples; tens of GB at 1e9).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np

from .kernels._moments import N_COLUMNS, RecordMoments, block_moments, join_moments

__all__ = ["Normalisation", "StreamedRecords", "stream_normalise"]


@dataclass(frozen=True)
class Normalisation:
    """``(x - offset - slope * tc) / scale`` per row, ``tc`` a sample's time from the record's
    centre (``t - (n - 1) / 2``): the streamed normalisation as numbers, applied alike to a lazy
    record and to one time block of it (a NumPy array) read inside a task."""

    offset: np.ndarray  # (rows, 1)
    scale: np.ndarray | None  # (rows, 1); None: not standardised
    slope: np.ndarray | None  # (rows, 1); None: not detrended
    n: int  # samples in the record

    def apply(self, x: Any, start: int = 0, rows: np.ndarray | None = None) -> Any:
        """``x`` (float64) normalised: ``x`` holds ``rows`` (default all) of the record from
        sample ``start``, a NumPy or a Dask array."""
        sel = slice(None) if rows is None else np.asarray(rows)
        y = x.astype(np.float64) - self.offset[sel]
        if self.slope is not None:
            if isinstance(x, da.Array):
                tc = da.arange(start, start + x.shape[1], chunks=x.chunks[1], dtype=np.float64)
            else:
                tc = np.arange(start, start + x.shape[1], dtype=np.float64)
            y = y - self.slope[sel] * (tc - (self.n - 1) / 2)[None, :]
        return y / self.scale[sel] if self.scale is not None else y


@dataclass(frozen=True)
class StreamedRecords:
    """The streamed statistics of some rows of a ``(row, time)`` array."""

    rows: np.ndarray  # the rows summarised (positions)
    moments: RecordMoments
    detrend: bool
    normalisation: Normalisation | None = None  # None: the rows are only cast to float64

    def ar1(self, estimator: str) -> tuple[np.ndarray, np.ndarray]:
        """AR(1) coefficient of each summarised row (of the normalised, detrended series) and
        whether Allen & Smith fell back to the naive estimate; NaN for a constant row."""
        from .significance import ar1_from_covariances

        c0, c1 = self.moments.lag_covariances(self.detrend)
        c0 = np.where(self.moments.constant, 0.0, c0)
        return ar1_from_covariances(c0, c1, self.moments.n, estimator)

    def apply(self, x: Any, start: int = 0, rows: np.ndarray | None = None) -> Any:
        """``x`` (rows ``rows`` of the record from sample ``start``) as float64, normalised."""
        return x.astype(np.float64) if self.normalisation is None else self.normalisation.apply(x, start, rows)


def _summaries(x: da.Array) -> RecordMoments:
    """:func:`join_moments` of every time block of ``x`` (computes now, one read)."""
    nt = len(x.chunks[1])
    summ = x.map_blocks(block_moments, dtype=np.float64, chunks=(x.chunks[0], (N_COLUMNS,) * nt),
                        meta=np.empty((0, 0)))
    S = np.asarray(summ.compute())
    starts = np.cumsum((0,) + x.chunks[1][:-1]).tolist()
    return join_moments([S[:, k * N_COLUMNS : (k + 1) * N_COLUMNS] for k in range(nt)], starts)


def stream_normalise(
    x: da.Array, normalize: bool, remove_mean: bool, detrend: bool = False, rows: np.ndarray | None = None,
) -> tuple[da.Array, StreamedRecords]:
    """``x`` (float64) less its line with ``detrend``, standardised with ``normalize``, or less
    its mean with ``remove_mean``, the moments computed now in one streaming pass over
    ``rows`` (default all) and applied as numbers; the result stays lazy, block by block.

    Equals :func:`bioxen_dask.coherence._normalise` to rounding; rows outside ``rows`` are
    only cast (never analysed). The returned records' :meth:`StreamedRecords.apply` applies
    the same numbers to a block of ``x`` read elsewhere (a time-block task).

    Examples
    --------
    >>> x = da.from_array(np.random.default_rng(0).standard_normal((2, 1000)) + 3, chunks=(2, 300))
    >>> y, st = stream_normalise(x, True, False)
    >>> bool(np.allclose(y.compute(), (x - x.mean(1, keepdims=True)).compute() / x.std(1, keepdims=True).compute()))
    True
    """
    n_rows, n = x.shape
    rows = np.arange(n_rows) if rows is None else np.asarray(rows, dtype=np.int64)
    xf = x.astype(np.float64)
    m = _summaries(xf if len(rows) == n_rows and np.array_equal(rows, np.arange(n_rows)) else xf[rows])
    norm = None
    if detrend or normalize or remove_mean:
        offset = np.zeros((n_rows, 1))
        offset[rows, 0] = m.mean
        slope = scale = None
        if detrend:
            slope = np.zeros((n_rows, 1))
            slope[rows, 0] = m.slope(True)
        if normalize:
            sd = m.std(detrend)
            scale = np.ones((n_rows, 1))
            scale[rows, 0] = np.where((sd > 0) & ~m.constant, sd, 1.0)
        norm = Normalisation(offset, scale, slope, int(n))
    st = StreamedRecords(rows, m, bool(detrend), norm)
    return st.apply(x), st
