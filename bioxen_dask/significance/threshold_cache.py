"""On-disk cache of Monte Carlo coherence thresholds, keyed by everything they depend on.

The key covers the AR(1) coefficients, the scale grid (dt, scales, dj, wavelet), the preset,
the surrogate count, the level and the seed, so a cached curve is only reused for exactly
the computation that produced it (pycwt's key misses ``mc_count`` and the level, and is NaN
for AR(1) > 0.25). Files are written atomically: an interrupted write leaves no entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..grid import ScaleGrid

__all__ = ["cache_dir", "threshold_key", "cached_ar1_thresholds"]


def cache_dir() -> Path:
    """``$BIOXEN_DASK_CACHE`` or ``~/.cache/bioxen-dask/thresholds``."""
    root = os.environ.get("BIOXEN_DASK_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "bioxen-dask" / "thresholds"


def threshold_key(grid: ScaleGrid, g1: float, g2: float, **params: Any) -> str:
    """Stable hex digest of every input of a threshold computation."""
    desc = {
        "g1": float(g1),
        "g2": float(g2),
        "dt": grid.dt,
        "dj": grid.dj,
        "scales": [float(s) for s in grid.scales],
        "wavelet": grid.wavelet.describe(),
        **{k: (float(v) if isinstance(v, (np.floating, float)) else v) for k, v in params.items()},
    }
    blob = json.dumps(desc, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


def cached_ar1_thresholds(
    grid: ScaleGrid,
    g1: float,
    g2: float,
    *,
    compute: Callable[[], np.ndarray],
    directory: str | os.PathLike | None = None,
    **params: Any,
) -> np.ndarray:
    """Return cached thresholds for this exact computation, or compute and store them."""
    folder = Path(directory) if directory is not None else cache_dir()
    path = folder / f"ar1_{threshold_key(grid, g1, g2, **params)}.npy"
    if path.exists():
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            path.unlink(missing_ok=True)  # corrupt entry: recompute
    value = np.asarray(compute())
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, value, allow_pickle=False)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return value
