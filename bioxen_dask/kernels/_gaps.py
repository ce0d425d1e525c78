"""Gaps in traces: linear interpolation of short runs of missing samples, and where they reach.

A *gap* is a run of consecutive non-finite samples (NaN or +-inf) in one trace. The policy
``nan_policy="interpolate"`` of :func:`bioxen_dask.coherence` fills gaps of at most
``max_gap`` samples and then treats every filled sample as an *internal edge* of the record:
its influence on the transform is bounded by the same cone of influence (COI) that bounds the
influence of the record's two ends, so the outputs are masked there, scale by scale.

Rules (numbers are samples):

* a gap with finite samples on both sides is filled by linear interpolation between them;
  a gap that touches the start or the end of the record is filled with the nearest finite
  sample (there is nothing to interpolate towards);
* a gap longer than ``max_gap``, or a trace with no finite sample, is an error;
* sample ``t`` is *reached* by a gap at scale ``s`` when ``d(t) - 1/2 < s / (coi_factor * dt)``,
  ``d(t)`` being the distance from ``t`` to the nearest filled sample: exactly the COI rule
  ``period > fourier_factor * coi_factor * dt * (d - 1/2)`` that pycwt applies at the record's
  ends (where ``d - 1/2`` is the distance to the edge half a sample beyond the last sample).
  Filled samples themselves (``d = 0``) are reached at every scale. For Morlet(6) the reach
  is ``sqrt(2) * s / dt`` samples on each side of the gap.

Everything here works on plain arrays along the last (time) axis; it never touches Dask.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..grid import ScaleGrid

__all__ = ["fill_gaps", "gap_distance", "gap_mask", "gap_reach", "gap_runs"]


def gap_runs(missing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(starts, lengths)`` of the runs of ``True`` in a 1-D boolean array.

    Examples
    --------
    >>> gap_runs(np.array([0, 1, 1, 0, 0, 1], bool))
    (array([1, 5]), array([2, 1]))
    """
    m = np.asarray(missing, dtype=bool).ravel()
    if not m.any():
        empty = np.zeros(0, np.int64)
        return empty, empty
    edges = np.diff(np.concatenate([[0], m.view(np.int8), [0]]))
    starts = np.flatnonzero(edges == 1)
    stops = np.flatnonzero(edges == -1)
    return starts, stops - starts


def fill_gaps(x: Any, max_gap: int, *, what: str = "trace") -> tuple[np.ndarray, np.ndarray]:
    """Fill runs of non-finite samples along the last axis (see the module rules).

    Parameters
    ----------
    x : array-like, shape ``(..., time)``
        Real traces; NaN and +-inf mark missing samples.
    max_gap : int
        Longest run of missing samples that may be filled (>= 0; 0 fills nothing).
    what : str
        How rows are named in errors (e.g. ``"roi"``).

    Returns
    -------
    filled : ndarray
        A float copy of ``x`` (same dtype if floating) with every gap filled.
    missing : ndarray of bool
        Where ``x`` was not finite.

    Raises
    ------
    ValueError
        A gap longer than ``max_gap`` or a row with no finite sample (naming the row, the
        first sample of the gap and its length).

    Examples
    --------
    >>> filled, missing = fill_gaps(np.array([1.0, np.nan, np.nan, 4.0, np.inf]), 2)
    >>> filled.tolist(), missing.tolist()
    ([1.0, 2.0, 3.0, 4.0, 4.0], [False, True, True, False, True])
    """
    arr = np.asarray(x)
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    max_gap = int(max_gap)
    if max_gap < 0:
        raise ValueError(f"max_gap must be >= 0 samples, got {max_gap}.")
    missing = ~np.isfinite(arr)
    filled = arr.copy()
    if not missing.any():
        return filled, missing
    flat = filled.reshape(-1, arr.shape[-1])
    flat_missing = missing.reshape(-1, arr.shape[-1])
    t = np.arange(arr.shape[-1])
    for i in np.flatnonzero(flat_missing.any(axis=-1)):
        m = flat_missing[i]
        starts, lengths = gap_runs(m)
        if m.all():
            raise ValueError(f"{what} {i} has no finite sample; drop it from the analysis.")
        k = int(np.argmax(lengths))
        if lengths[k] > max_gap:
            raise ValueError(
                f"{what} {i} has a gap of {int(lengths[k])} missing samples starting at sample "
                f"{int(starts[k])}, longer than max_gap={max_gap}; drop the {what}, cut the record, "
                "or raise max_gap."
            )
        good = ~m
        flat[i, m] = np.interp(t[m], t[good], flat[i, good])  # clamps at the ends: nearest value
    return filled, missing


def gap_distance(missing: Any) -> np.ndarray:
    """Distance (samples) from every sample to the nearest missing one along the last axis.

    ``0`` at missing samples, ``inf`` in rows without any.

    Examples
    --------
    >>> gap_distance(np.array([0, 0, 1, 0, 0, 0], bool)).tolist()
    [2.0, 1.0, 0.0, 1.0, 2.0, 3.0]
    """
    m = np.asarray(missing, dtype=bool)
    n = m.shape[-1]
    t = np.arange(n, dtype=np.float64)
    big = np.inf
    last = np.where(m, t, -big)
    np.maximum.accumulate(last, axis=-1, out=last)
    nxt = np.where(m, t, big)
    nxt = np.flip(np.minimum.accumulate(np.flip(nxt, axis=-1), axis=-1), axis=-1)
    return np.minimum(t - last, nxt - t)


def gap_reach(grid: ScaleGrid) -> np.ndarray:
    """Per scale, the distance (samples) below which a gap reaches a sample: ``d - 1/2 < reach``.

    ``reach = scale / (coi_factor * dt)``, i.e. the COI of the record's ends applied to gaps.

    Examples
    --------
    >>> from bioxen_dask.grid import ScaleGrid
    >>> gap_reach(ScaleGrid.from_s0(1.0, 2.0, 1.0, 1)).round(3).tolist()  # Morlet: sqrt(2) s / dt
    [2.828, 5.657]
    """
    return grid.scales / (grid.wavelet.coi_factor * grid.dt)


def gap_mask(distance: Any, grid: ScaleGrid) -> np.ndarray:
    """``(..., n_scales, time)`` boolean: the samples a gap reaches at each scale.

    ``distance`` is :func:`gap_distance` of the missing samples (of one trace, or the
    element-wise minimum over the two traces of a pair).
    """
    d = np.asarray(distance)[..., None, :]
    return (d - 0.5) < gap_reach(grid)[:, None]

