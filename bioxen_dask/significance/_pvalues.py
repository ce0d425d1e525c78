"""p-values of many pairs' mean coherence from AR(1) bucket nulls, and Benjamini-Hochberg FDR.

:func:`ar1_mean_nulls`: per distinct AR(1) bucket pair (the buckets of
:func:`~bioxen_dask.significance.ar1_bucket`, so thousands of rois share a few nulls), the
Monte Carlo null distribution of the *time-averaged* outside-COI coherence per scale, from
``mc_count`` data-length AR(1) surrogate pairs (:func:`surrogate_significance` with
``time_averaged=True``, exact engine). A pair's p-value per period is then
``(1 + #{null >= observed}) / (mc_count + 1)`` (:func:`pvalues_from_null`): its smallest
value is ``1 / (mc_count + 1)``, which bounds what an FDR procedure over many pairs can
reject (:func:`bioxen_dask.significance.fdr_bh`: with ``m`` tests, the ``k`` smallest p-values are discoveries only if
``k / (mc_count + 1) <= alpha k / m`` can hold, i.e. ``mc_count + 1 >= m / (alpha k)``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..grid import ScaleGrid
from ._api import surrogate_significance
from ._surrogates import AR1Null
from .threshold_cache import ar1_bucket, bucket_centre

__all__ = ["ar1_mean_nulls"]


def ar1_mean_nulls(
    grid: ScaleGrid, g1: Any, g2: Any, *, n_samples: int, mc_count: int = 300, seed: int = 0,
    bucket_width: float | None = 0.1, scheduler: Any = None, progress: bool = False, **options: Any,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Null distributions of the time-averaged coherence for many pairs, one per AR(1) bucket pair.

    Parameters
    ----------
    grid : ScaleGrid
    g1, g2 : array-like, shape ``(pairs,)``
        AR(1) coefficients of each pair's two traces, in ``(-1, 1)``.
    n_samples : int
        The record's length (the surrogates are as long, so their edge effects are the data's).
    mc_count, seed, scheduler, progress
        As :func:`surrogate_significance`; bucket pair ``(b1, b2)`` draws from
        ``SeedSequence(seed, spawn_key=(b1, b2))`` (shifted to non-negative keys).
    bucket_width : float or None
        Width of the AR(1) buckets in ``atanh(g)`` (``None``: each distinct coefficient pair).
    **options
        ``scale_kernel``, ``boundary``, ``dtype``, ``remove_mean`` of the data's coherence.

    Returns
    -------
    nulls : ndarray, shape ``(bucket_pairs, mc_count, n_scales)``
    index : ndarray of int, shape ``(pairs,)``
        Each pair's null.
    bucket_pairs : int

    Examples
    --------
    >>> from bioxen_dask.grid import make_grid
    >>> nulls, index, k = ar1_mean_nulls(make_grid(256, 1.0, dj=0.5), [0.5, 0.48, 0.1], [0.3, 0.3, 0.3],
    ...                                  n_samples=256, mc_count=9, scheduler="sync")
    >>> nulls.shape[0], index.tolist()  # 0.5 and 0.48 share a bucket
    (2, [1, 1, 0])
    """
    g1, g2 = np.broadcast_arrays(np.asarray(g1, float), np.asarray(g2, float))
    if bucket_width is None:
        c1, c2 = g1, g2
        k1, k2 = g1, g2
    else:
        k1, k2 = ar1_bucket(g1, bucket_width), ar1_bucket(g2, bucket_width)
        c1, c2 = bucket_centre(k1, bucket_width), bucket_centre(k2, bucket_width)
    lo_k, hi_k = np.minimum(k1, k2), np.maximum(k1, k2)
    keys, first, index = np.unique(np.stack([lo_k, hi_k], axis=1), axis=0, return_index=True, return_inverse=True)
    lo_c, hi_c = np.minimum(c1, c2), np.maximum(c1, c2)
    nulls = np.empty((len(keys), int(mc_count), grid.n_scales))
    for b, f in enumerate(first):
        key = (int(b) if bucket_width is None else int(lo_k[f]) + 2**20, int(b) if bucket_width is None
               else int(hi_k[f]) + 2**20)
        res = surrogate_significance(
            grid, AR1Null(float(lo_c[f]), float(hi_c[f]), length=int(n_samples)), mc_count=int(mc_count),
            seed=np.random.SeedSequence(int(seed), spawn_key=key), n_samples=int(n_samples), pooled=False,
            time_averaged=True, engine="exact", scheduler=scheduler, progress=progress, **options)
        nulls[b] = res.null_time_averaged
    return nulls, np.asarray(index, np.int64).reshape(-1), len(keys)
