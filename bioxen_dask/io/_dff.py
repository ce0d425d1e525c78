"""ΔF/F with a running-percentile baseline, exact when computed block by block.

``dF/F = (F - F0) / F0`` where ``F0[t]`` is the ``percentile``-th order statistic of
``F`` over a centred window of ``window`` frames (odd), mirrored (``reflect``) at the
ends of the recording. An output frame depends only on the frames within
``window // 2`` of it, so a time block read with that halo on each side (clipped at
the recording's ends) gives exactly the whole-trace result.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from ._blocks import BlockReader


def dff_window_frames(window_s: float, fs: float, n_frames: int) -> int:
    """Window length in frames (odd, >= 3) for ``window_s`` seconds at ``fs`` Hz."""
    if not math.isfinite(window_s) or window_s <= 0:
        raise ValueError(f"dff_window_s must be > 0 seconds, got {window_s!r}")
    window = max(3, int(round(window_s * fs)) | 1)
    if window > n_frames:
        raise ValueError(
            f"dff_window_s={window_s} s ({window} frames) is longer than the recording "
            f"({n_frames} frames = {n_frames / fs:.6g} s); pass a shorter dff_window_s"
        )
    return window


def _check_percentile(percentile: float) -> float:
    if not 0 < percentile < 100:
        raise ValueError(f"dff_percentile must be between 0 and 100 (exclusive), got {percentile!r}")
    return float(percentile)


def running_percentile_baseline(x: np.ndarray, window: int, percentile: float) -> np.ndarray:
    """``F0``: the running ``percentile`` of each row of ``x`` over ``window`` frames (reflect at ends)."""
    percentile = _check_percentile(percentile)
    x = np.asarray(x, dtype=np.float32)
    # scipy's 1-D rank filter is fast; over a 2-D array with a (1, w) footprint it is not
    return np.stack([
        ndimage.percentile_filter(row, percentile, size=window, mode="reflect") for row in x.reshape(-1, x.shape[-1])
    ]).reshape(x.shape)


def _dff_or_raise(x: np.ndarray, baseline: np.ndarray, roi: np.ndarray, frame0: int) -> np.ndarray:
    bad = baseline <= 0
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ValueError(
            f"dF/F baseline is {baseline[row, col]:.4g} <= 0 at roi {roi[row].item()!r}, frame {frame0 + col} "
            f"({int(bad.any(axis=1).sum())} rois in this block); dF/F needs a positive baseline. "
            "Fix: lower neuropil_coefficient, keep only cells (cells_only=True), or ingest without "
            "dff and normalise later"
        )
    b = baseline.astype(np.float64)
    return ((x - b) / b).astype(np.float32)


def dff(x: np.ndarray, window: int, percentile: float = 8.0) -> np.ndarray:
    """ΔF/F of whole traces ``x`` (roi × time) with a running-percentile baseline.

    Examples
    --------
    >>> import numpy as np
    >>> f = np.full((1, 200), 100.0, dtype="float32"); f[0, 50] = 150.0
    >>> float(dff(f, window=31)[0, 50]), float(dff(f, window=31)[0, 0])
    (0.5, 0.0)
    """
    x = np.atleast_2d(np.asarray(x, dtype=np.float32))
    baseline = running_percentile_baseline(x, window, percentile)
    return _dff_or_raise(x, baseline, np.arange(x.shape[0]), 0)


def dff_reader(read: BlockReader, n_frames: int, window: int, percentile: float,
               roi: np.ndarray) -> BlockReader:
    """Block reader of ΔF/F over ``read``: each time block is read with a ``window // 2`` halo."""
    percentile = _check_percentile(percentile)
    halo = window // 2

    def read_dff(rows: slice, times: slice) -> np.ndarray:
        start, stop, _ = times.indices(n_frames)
        lo, hi = max(0, start - halo), min(n_frames, stop + halo)
        x = np.asarray(read(rows, slice(lo, hi)), dtype=np.float32)
        baseline = running_percentile_baseline(x, window, percentile)
        inner = slice(start - lo, stop - lo)
        return _dff_or_raise(x[:, inner], baseline[:, inner], roi[rows], start)

    return read_dff


def dff_description(window: int, window_s: float, percentile: float) -> str:
    """The ``preprocessing`` entry recorded for this ΔF/F."""
    return (
        f"dF/F = (F - F0) / F0, F0 = running {percentile:g}th percentile over {window} frames "
        f"({window_s:g} s), reflected at the ends"
    )
