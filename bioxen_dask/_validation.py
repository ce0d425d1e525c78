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
    """Refuse constant signals (coherence is 0/0 there)."""
    std = np.std(x, axis=-1)
    if np.any(std == 0) or not np.all(np.isfinite(std)):
        where = "" if np.ndim(std) == 0 else f" (rows {np.flatnonzero(np.ravel(std == 0))[:5].tolist()})"
        raise ValueError(
            f"{name} is constant{where}: zero variance, so coherence and normalisation are "
            "undefined; drop constant traces before the analysis."
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
