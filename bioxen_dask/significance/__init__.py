"""Significance of wavelet coherence: null models, distributed Monte Carlo, thresholds, cache.

Surrogate pairs (:class:`AR1Null`, :class:`FourierNull`, :class:`IAAFTNull`) are generated
and transformed in batches, one Dask task per batch; each task returns mergeable partial
results (integer histograms per scale, the largest values per point, per-surrogate time
averages) that are tree-merged exactly, so one ``seed`` gives bit-identical thresholds
whatever the number of workers, threads or the batch size. Levels are read off at the end.

- :func:`surrogate_significance`: the general stage, returning a :class:`SignificanceResult`
  (pooled per-scale thresholds, per-(scale, time) thresholds, p-values of time-averaged
  coherence).
- :func:`ar1_thresholds`: pycwt/Grinsted's AR(1) test, per-scale thresholds.
- :func:`ar1_thresholds_many` / :func:`cached_ar1_thresholds`: the same through an on-disk
  cache keyed by AR(1) bucket pair, so many rois share a few Monte Carlo runs.
- :func:`ar1_mean_nulls`: per AR(1) bucket pair, the null of the time-averaged coherence
  (p-values of many pairs' ``coherence_mean``); :func:`fdr_bh`: Benjamini-Hochberg
  discoveries across pairs.

Examples
--------
>>> import numpy as np
>>> from bioxen_dask.grid import make_grid
>>> from bioxen_dask.significance import FourierNull, surrogate_significance
>>> rng = np.random.default_rng(0)
>>> x1, x2 = rng.standard_normal((2, 128)).cumsum(axis=1)
>>> res = surrogate_significance(make_grid(128, 1.0, dj=0.5), FourierNull(x1, x2),
...                              mc_count=19, pointwise=True, time_averaged=True,
...                              boundary="linear", scheduler="sync")
>>> res.pointwise.shape, res.null_time_averaged.shape
((1, 13, 128), (19, 13))
"""

from . import threshold_cache
from ._api import ar1_thresholds, surrogate_significance
from ._ar1 import ar1_allen_smith, ar1_from_covariances, ar1_naive, ar1_spectrum, estimate_ar1, rednoise
from ._montecarlo import (
    NBINS,
    SignificanceResult,
    levels_from_histograms,
    outside_coi_mask,
    pointwise_levels,
    pvalues_from_null,
    surrogate_length,
    time_averaged_coherence,
)
from ._multirate import DEFAULT_INTERIOR
from ._fdr import fdr_bh
from ._pvalues import ar1_mean_nulls
from ._surrogates import AR1Null, FourierNull, IAAFTNull, NullModel, surrogate_seed, surrogate_seeds
from .threshold_cache import (
    DEFAULT_BUCKET_WIDTH,
    ThresholdCache,
    ar1_bucket,
    ar1_thresholds_many,
    bucket_centre,
    cached_ar1_thresholds,
)

__all__ = [
    "AR1Null",
    "DEFAULT_BUCKET_WIDTH",
    "DEFAULT_INTERIOR",
    "FourierNull",
    "IAAFTNull",
    "NBINS",
    "NullModel",
    "SignificanceResult",
    "ThresholdCache",
    "ar1_allen_smith",
    "ar1_from_covariances",
    "ar1_bucket",
    "ar1_mean_nulls",
    "ar1_naive",
    "ar1_spectrum",
    "ar1_thresholds",
    "ar1_thresholds_many",
    "bucket_centre",
    "cached_ar1_thresholds",
    "estimate_ar1",
    "fdr_bh",
    "levels_from_histograms",
    "outside_coi_mask",
    "pointwise_levels",
    "pvalues_from_null",
    "rednoise",
    "surrogate_length",
    "surrogate_seed",
    "surrogate_seeds",
    "surrogate_significance",
    "threshold_cache",
    "time_averaged_coherence",
]
