"""Monte Carlo significance of wavelet coherence from AR(1) surrogate pairs.

The test of Grinsted et al. (2004) as pycwt implements it, vectorised: surrogate pairs are
generated and transformed in batches (many surrogates per FFT call), the coherence outside
the cone of influence is binned per scale into integer histograms with ``bincount``, and
levels are read off the pooled histogram at the end. Integer histograms add exactly, so
the result does not depend on how surrogates are batched or distributed; each surrogate
draws from its own ``SeedSequence`` child, so one ``seed`` fixes every number.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import numpy as np

from ..grid import DEFAULT_TOL, ScaleGrid
from ..kernels import Smoother, coherence, cwt
from ._ar1 import rednoise

__all__ = [
    "surrogate_length",
    "outside_coi_mask",
    "ar1_histograms",
    "levels_from_histograms",
    "ar1_thresholds",
    "surrogate_seeds",
]

NBINS = 1000


def surrogate_length(grid: ScaleGrid) -> int:
    """Samples per surrogate: ``ceil(6 * largest scale / dt)`` (pycwt/Grinsted)."""
    return int(math.ceil(6 * grid.scales[-1] / grid.dt))


def outside_coi_mask(grid: ScaleGrid, n: int) -> np.ndarray:
    """``(n_scales, n)`` boolean: True where the period is outside the cone of influence."""
    return grid.periods[:, None] <= grid.coi(n)[None, :]


def surrogate_seeds(seed: int | np.random.SeedSequence, count: int) -> list[np.random.SeedSequence]:
    """One independent ``SeedSequence`` per surrogate index (batch-size independent)."""
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    return ss.spawn(count)


def ar1_histograms(
    grid: ScaleGrid,
    g1: float,
    g2: float,
    seeds: Sequence[np.random.SeedSequence],
    *,
    n_samples: int | None = None,
    nbins: int = NBINS,
    scale_kernel: str = "pycwt",
    boundary: str = "pycwt",
    dtype: Any = "float32",
    tol: float = DEFAULT_TOL,
    workers: int | None = None,
) -> np.ndarray:
    """Per-scale histograms of surrogate coherence outside the COI, for one batch.

    Parameters
    ----------
    grid : ScaleGrid
        Scale grid of the data being tested.
    g1, g2 : float
        AR(1) coefficients of the two signals' null models.
    seeds : sequence of SeedSequence
        One per surrogate pair of this batch (see :func:`surrogate_seeds`).
    n_samples : int, optional
        Surrogate length (default :func:`surrogate_length`).
    nbins : int
        Histogram bins on ``[0, 1]``; coherence 1.0 falls in the last bin.

    Returns
    -------
    ndarray of int64, shape ``(n_scales, nbins)``
    """
    n = surrogate_length(grid) if n_samples is None else int(n_samples)
    batch = len(seeds)
    counts = np.zeros((grid.n_scales, nbins), dtype=np.int64)
    if batch == 0:
        return counts
    x1 = np.empty((batch, n))
    x2 = np.empty((batch, n))
    for i, s in enumerate(seeds):
        rng = np.random.default_rng(s)
        x1[i] = rednoise(n, g1, rng=rng)
        x2[i] = rednoise(n, g2, rng=rng)
    smoother = Smoother(grid, scale_kernel=scale_kernel, boundary=boundary, tol=tol, workers=workers)
    kw = dict(boundary=boundary, dtype=dtype, tol=tol, workers=workers)
    R2, _ = coherence(cwt(x1, grid, **kw), cwt(x2, grid, **kw), smoother, clip=True)
    outside = outside_coi_mask(grid, n)
    bins = np.minimum((R2 * nbins).astype(np.int64), nbins - 1)
    bins += (np.arange(grid.n_scales, dtype=np.int64) * nbins)[:, None]
    flat = np.bincount(bins[:, outside].ravel(), minlength=grid.n_scales * nbins)
    return counts + flat.reshape(grid.n_scales, nbins)


def levels_from_histograms(counts: np.ndarray, levels: Iterable[float]) -> np.ndarray:
    """Coherence thresholds at the given levels from per-scale histograms.

    pycwt's reading: the cumulative count at each non-empty bin centre, ``(P - 0.5)/P[-1]``,
    interpolated linearly at the level. Scales with no counts get NaN.

    Returns
    -------
    ndarray, shape ``(len(levels), n_scales)``
    """
    levels = np.atleast_1d(np.asarray(list(levels) if not np.isscalar(levels) else [levels], float))
    if np.any((levels <= 0) | (levels >= 1)):
        raise ValueError(f"significance levels must be in (0, 1), got {levels.tolist()}.")
    n_scales, nbins = counts.shape
    centres = (np.arange(nbins) + 0.5) / nbins
    out = np.full((levels.size, n_scales), np.nan)
    for j in range(n_scales):
        sel = counts[j] > 0
        if not sel.any():
            continue
        P = np.cumsum(counts[j, sel]).astype(float)
        P = (P - 0.5) / P[-1]
        out[:, j] = np.interp(levels, P, centres[sel])
    return out


def ar1_thresholds(
    grid: ScaleGrid,
    g1: float,
    g2: float,
    *,
    mc_count: int = 300,
    levels: float | Sequence[float] = 0.95,
    seed: int | np.random.SeedSequence | None = 0,
    batch_size: int | None = None,
    progress: bool = False,
    **kwargs: Any,
) -> np.ndarray:
    """Per-scale coherence thresholds of AR(1) surrogate pairs, computed in batches here.

    Parameters
    ----------
    grid : ScaleGrid
    g1, g2 : float
        AR(1) coefficients of the null models.
    mc_count : int
        Number of surrogate pairs.
    levels : float or sequence of float
        Significance level(s), e.g. 0.95.
    seed : int or SeedSequence
        Fixes every surrogate; results do not depend on ``batch_size``.
    batch_size : int, optional
        Surrogate pairs per FFT batch (default: as many as fit in ~256 MB of working memory).
    progress : bool
        Show a progress bar.
    **kwargs
        Passed to :func:`ar1_histograms` (``scale_kernel``, ``boundary``, ``dtype``, ...).

    Returns
    -------
    ndarray, shape ``(n_scales,)`` for a scalar level, else ``(len(levels), n_scales)``.
    """
    if int(mc_count) != mc_count or mc_count < 1:
        raise ValueError(f"mc_count must be a positive integer, got {mc_count!r}.")
    n = kwargs.get("n_samples") or surrogate_length(grid)
    if batch_size is None:
        per_pair = grid.n_scales * n * 8 * 12  # complex64 spectra and temporaries, ~12 arrays
        batch_size = max(1, min(int(mc_count), (256 * 2**20) // per_pair))
    seeds = surrogate_seeds(seed, int(mc_count))
    counts = np.zeros((grid.n_scales, kwargs.get("nbins", NBINS)), dtype=np.int64)
    starts = range(0, int(mc_count), int(batch_size))
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="coherence significance", unit="batch")
    for i0 in starts:
        counts += ar1_histograms(grid, g1, g2, seeds[i0 : i0 + batch_size], **kwargs)
    out = levels_from_histograms(counts, levels)
    return out[0] if np.isscalar(levels) else out
