"""Input checks shared by the public API: each error names the problem and the fix."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .grid import ScaleGrid

__all__ = [
    "as_signal",
    "check_dt",
    "check_same_length",
    "check_variance",
    "min_samples",
    "check_length",
    "NAN_POLICIES",
    "TraceScan",
    "scan_traces",
]


def as_signal(x: Any, name: str = "x", *, one_d: bool = True) -> np.ndarray:
    """A float view of a real, finite signal (never a modified input).

    Raises
    ------
    ValueError
        Non-numeric, complex, empty, wrong dimensionality, NaN or infinite samples.
    """
    try:
        arr = np.asarray(x)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise ValueError(f"{name} could not be read as an array: {exc}") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}; convert it with np.asarray(..., float).")
    if np.iscomplexobj(arr):
        raise ValueError(f"{name} must be real-valued, got complex dtype {arr.dtype}; pass x.real or np.abs(x).")
    if one_d and arr.ndim != 1:
        raise ValueError(
            f"{name} must be 1-D (time), got shape {arr.shape}; for many signals use "
            "bioxen_dask.wavelet_transform, or pass one row at a time."
        )
    if arr.ndim == 0 or arr.shape[-1] == 0:
        raise ValueError(f"{name} is empty; it needs samples along its last (time) axis.")
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        first = np.unravel_index(int(np.argmax(bad)), arr.shape)
        n_nan = int(np.isnan(arr).sum())
        n_inf = int(bad.sum()) - n_nan
        raise ValueError(
            f"{name} has {n_nan} NaN and {n_inf} infinite samples (first at index "
            f"{first if len(first) > 1 else first[0]}); wavelet transforms need finite samples: "
            "interpolate short gaps or cut the record before the transform."
        )
    return arr


def check_dt(dt: Any) -> float:
    """A positive finite sampling interval."""
    try:
        v = float(dt)
    except (TypeError, ValueError):
        raise ValueError(f"dt must be a positive number (sampling interval), got {dt!r}.") from None
    if not (math.isfinite(v) and v > 0):
        raise ValueError(
            f"dt must be a positive finite sampling interval, got {dt!r}; e.g. dt=1/30 for 30 Hz."
        )
    return v


def check_same_length(x: np.ndarray, y: np.ndarray, names: tuple[str, str] = ("x", "y")) -> None:
    if x.shape[-1] != y.shape[-1]:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same number of samples, got "
            f"{x.shape[-1]} and {y.shape[-1]}; cut both to their common time span."
        )


def check_variance(x: np.ndarray, name: str = "x") -> None:
    """Refuse records too short to transform, constant signals (coherence is 0/0 there) and
    values whose variance float64 cannot hold (``std`` underflows to 0 or overflows)."""
    if x.shape[-1] < 2:
        raise ValueError(f"{name} has {x.shape[-1]} sample: too short for a wavelet transform; "
                         "record a longer series.")
    constant = np.ptp(x, axis=-1) == 0
    if np.any(constant):
        where = "" if np.ndim(constant) == 0 else f" (rows {np.flatnonzero(np.ravel(constant))[:5].tolist()})"
        raise ValueError(
            f"{name} is constant{where}: zero variance, so coherence and normalisation are "
            "undefined; drop constant traces before the analysis."
        )
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        std = np.std(x, axis=-1)
    if np.any(std == 0) or not np.all(np.isfinite(std)):
        peak = float(np.max(np.abs(x)))
        raise ValueError(
            f"{name} varies, but its variance {'underflows to 0' if np.any(std == 0) else 'overflows'} in "
            f"float64 (largest |value| {peak:.3g}); rescale it first (e.g. x / np.abs(x).max())."
        )


def whole_number(value: Any, name: str, *, minimum: int = 1, hint: str = "") -> int:
    """``value`` as an int if it is a whole number ``>= minimum`` (integral floats allowed;
    booleans, strings, NaN and fractions refused), else a ``ValueError`` naming ``name``.

    Examples
    --------
    >>> whole_number(4.0, "mc_count")
    4
    >>> whole_number(2.5, "nbins", minimum=2)
    Traceback (most recent call last):
    ...
    ValueError: nbins must be an integer of at least 2, got 2.5.
    """
    ok = (not isinstance(value, (bool, np.bool_, str, bytes))
          and isinstance(value, (int, float, np.integer, np.floating)))
    if not ok or not math.isfinite(value) or value != int(value) or value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer of at least {minimum}"
        raise ValueError(f"{name} must be {what}{f' ({hint})' if hint else ''}, got {value!r}.")
    return int(value)


def float32_bound(dtype: Any, grid: ScaleGrid) -> float | None:
    """Largest ``|value|`` whose wavelet power stays inside float32 on ``grid``
    (``|W|**2 <= max|x|**2 * s/dt``; the bound keeps 1e36, room for the smoothing sums), or
    None when ``dtype`` is not single precision."""
    if str(np.dtype(dtype)) not in ("float32", "complex64"):
        return None
    return 1e18 / math.sqrt(max(1.0, float(grid.scales[-1]) / grid.dt))


def check_float32_range(x: np.ndarray, dtype: Any, grid: ScaleGrid, name: str = "x",
                        bound: float | None = None) -> None:
    """Refuse values whose wavelet power overflows float32 (:func:`float32_bound`; ``bound``:
    that value, computed once). Inf/NaN coefficients would otherwise come back without a word."""
    bound = float32_bound(dtype, grid) if bound is None else bound
    if bound is None:
        return
    peak = float(np.max(np.abs(x))) if np.size(x) else 0.0
    if peak > bound:
        raise ValueError(
            f"{name} reaches |value| {peak:.3g}: its wavelet power at the largest scales would overflow "
            f"float32 (3.4e38); rescale it (e.g. x / np.abs(x).max()) or pass dtype='float64'."
        )


def min_samples(grid: ScaleGrid) -> int:
    """Fewest samples for which the smallest scale has a coefficient outside the COI."""
    w = grid.wavelet
    return max(4, int(math.ceil(2 * grid.scales[0] / (w.coi_factor * grid.dt))))


def check_length(n: int, grid: ScaleGrid, name: str = "x") -> None:
    need = min_samples(grid)
    if n < need:
        raise ValueError(
            f"{name} has {n} samples, fewer than the smallest wavelet needs ({need} at "
            f"s0={grid.scales[0]:g}, dt={grid.dt:g}); record a longer series or use a smaller s0."
        )


# ----------------------------------------------------------------------------- trace scans

#: ``nan_policy`` values understood by :func:`scan_traces` users (coherence, pipelines).
NAN_POLICIES = ("raise", "interpolate")
_SCAN_COLUMNS = 7  # n_missing, longest run, leading run, trailing run, first missing, min, max


def _scan_block(block: np.ndarray, block_info: dict | None = None) -> np.ndarray:
    """Per-row summary of one ``(roi, time)`` block (see :func:`scan_traces`)."""
    from .kernels._gaps import gap_runs

    x = np.asarray(block)
    t0 = 0 if not block_info else int(block_info[0]["array-location"][1][0])
    out = np.zeros((x.shape[0], _SCAN_COLUMNS))
    missing = ~np.isfinite(x)
    n = x.shape[1]
    out[:, 0] = missing.sum(axis=1)
    out[:, 4] = -1
    with np.errstate(invalid="ignore"):
        finite = np.where(missing, np.nan, x)
        if finite.size:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows
                out[:, 5] = np.nanmin(finite, axis=1)
                out[:, 6] = np.nanmax(finite, axis=1)
    for i in np.flatnonzero(out[:, 0]):
        starts, lengths = gap_runs(missing[i])
        out[i, 1] = lengths.max()
        out[i, 2] = lengths[0] if starts[0] == 0 else 0
        out[i, 3] = lengths[-1] if starts[-1] + lengths[-1] == n else 0
        out[i, 4] = t0 + starts[0]
    return out


class TraceScan:
    """Per-trace facts from one pass over ``(roi, time)`` signals: gaps and constancy.

    Attributes
    ----------
    n_missing : ndarray of int
        Non-finite samples per trace.
    longest_gap : ndarray of int
        Longest run of consecutive non-finite samples per trace (exact across time chunks).
    first_missing : ndarray of int
        Index of the first non-finite sample (-1: none).
    constant : ndarray of bool
        Traces whose finite samples are all equal (or that have none).
    """

    def __init__(self, summaries: np.ndarray, block_lengths: tuple[int, ...]) -> None:
        s = summaries.reshape(summaries.shape[0], len(block_lengths), _SCAN_COLUMNS)
        rows = s.shape[0]
        self.n_missing = s[:, :, 0].sum(axis=1).astype(np.int64)
        longest = s[:, :, 1].max(axis=1)
        run = np.zeros(rows)
        for b, length in enumerate(block_lengths):  # join runs across block boundaries
            lead, trail = s[:, b, 2], s[:, b, 3]
            whole = lead == length
            longest = np.maximum(longest, np.where(whole, 0, run + lead))
            run = np.where(whole, run + length, trail)
            longest = np.maximum(longest, run)
        self.longest_gap = longest.astype(np.int64)
        firsts = np.where(s[:, :, 4] >= 0, s[:, :, 4], np.inf).min(axis=1)
        self.first_missing = np.where(np.isfinite(firsts), firsts, -1).astype(np.int64)
        with np.errstate(invalid="ignore"):
            lo = np.nanmin(np.where(np.isnan(s[:, :, 5]), np.inf, s[:, :, 5]), axis=1)
            hi = np.nanmax(np.where(np.isnan(s[:, :, 6]), -np.inf, s[:, :, 6]), axis=1)
        self.constant = ~(hi > lo)

    def check(
        self, *, nan_policy: str = "raise", max_gap: int = 0, roi_ids: Any = None,
        positions: Any = None, dt: float | None = None, constant: str = "raise",
        where: str = "the signals",
    ) -> None:
        """Raise a ``ValueError`` naming the first bad trace, the problem and the fix.

        Parameters
        ----------
        nan_policy : {"raise", "interpolate"}
            ``"raise"``: any non-finite sample is an error. ``"interpolate"``: gaps of at most
            ``max_gap`` samples are allowed (they will be filled and masked).
        max_gap : int
            Longest allowed gap (samples) with ``"interpolate"``.
        roi_ids, positions : array-like, optional
            Roi ids and positions of the scanned rows, for the messages.
        dt : float, optional
            Sampling interval, to give times in the messages.
        constant : {"raise", "nan"}
            Whether constant traces (coherence 0/0) are an error or left to give NaN (with a
            ``UserWarning`` naming them).
        where : str
            What the signals are, for the messages.
        """
        if nan_policy not in NAN_POLICIES:
            raise ValueError(f"nan_policy must be one of {list(NAN_POLICIES)}, got {nan_policy!r}.")
        if constant not in ("raise", "nan"):
            raise ValueError(f"constant must be 'raise' or 'nan', got {constant!r}.")
        count = len(self.n_missing)
        ids = np.arange(count) if roi_ids is None else np.asarray(roi_ids)
        pos = np.arange(count) if positions is None else np.asarray(positions)

        def at(frame: int) -> str:
            return f"frame {frame}" + ("" if dt is None else f" (t = {frame * dt:.6g} s)")

        def roi(i: int) -> str:
            return f"roi {ids[i].item()!r} (position {int(pos[i])})"

        bad = np.flatnonzero(self.n_missing > 0)
        if bad.size and nan_policy == "raise":
            i = int(bad[0])
            raise ValueError(
                f"{where} contain non-finite samples (NaN/inf) in {bad.size} traces, first {roi(i)} at "
                f"{at(int(self.first_missing[i]))}, in gaps of up to {int(self.longest_gap[i])} samples. "
                "Fix: interpolate or cut them in the source, exclude those rois, or use "
                "nan_policy='interpolate' (with max_gap) to fill short gaps and mask them in the outputs."
            )
        long = np.flatnonzero(self.longest_gap > max_gap)
        if long.size and nan_policy == "interpolate":
            i = int(long[0])
            raise ValueError(
                f"{where}: {roi(i)} has a gap of {int(self.longest_gap[i])} missing samples, longer than "
                f"max_gap={max_gap} samples ({long.size} traces have one). Fix: exclude those rois, cut "
                "the record, or raise max_gap."
            )
        const = np.flatnonzero(self.constant)
        listed = ", ".join(repr(ids[i].item()) for i in const[:5]) + (" ..." if const.size > 5 else "")
        if const.size and constant == "nan":
            import warnings

            warnings.warn(
                f"{where}: {const.size} traces are constant (zero variance): rois {listed} (positions "
                f"{', '.join(str(int(p)) for p in pos[const[:5]])}); their pairs are NaN (coherence is 0/0). "
                "Exclude them (rois= in the API, input.rois in a pipeline) or pass constant='raise' to refuse them.",
                UserWarning, stacklevel=3,
            )
        if const.size and constant == "raise":
            raise ValueError(
                f"{where}: {const.size} traces are constant (zero variance: coherence is 0/0), rois "
                f"{listed} (positions {pos[const[:5]].tolist()}). Fix: exclude them (input.rois in a "
                "pipeline, rois= in the API)."
            )


def scan_traces(x: Any) -> TraceScan:
    """One pass over ``(roi, time)`` signals (NumPy or Dask) for gaps and constant traces.

    Blocks are summarised independently (each a few numbers per row) and the summaries are
    joined in order, so runs of missing samples that cross time chunks are measured exactly.
    On a Dask array this computes (on the active scheduler); nothing else is kept.

    Examples
    --------
    >>> s = scan_traces(np.array([[0, np.nan, np.nan, 3.0], [1.0, 1.0, 1.0, 1.0]]))
    >>> s.longest_gap.tolist(), s.first_missing.tolist(), s.constant.tolist()
    ([2, 0], [1, -1], [False, True])
    """
    if hasattr(x, "dask") and hasattr(x, "chunks"):
        import dask.array as da

        if x.ndim != 2:
            raise ValueError(f"signals must be 2-D (roi, time), got shape {x.shape}.")
        nt = len(x.chunks[1])
        out = x.map_blocks(_scan_block, dtype=np.float64, chunks=(x.chunks[0], (_SCAN_COLUMNS,) * nt),
                           meta=np.empty((0, 0)))
        summaries = np.asarray(da.compute(out)[0])
        return TraceScan(summaries, tuple(int(c) for c in x.chunks[1]))
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(f"signals must be 2-D (roi, time), got shape {arr.shape}.")
    return TraceScan(_scan_block(arr), (arr.shape[1],))
