"""Significance of wavelet coherence: AR(1) estimators, red noise, Monte Carlo thresholds."""

from . import threshold_cache
from ._ar1 import ar1_allen_smith, ar1_naive, ar1_spectrum, estimate_ar1, rednoise
from ._montecarlo import (
    NBINS,
    ar1_histograms,
    ar1_thresholds,
    levels_from_histograms,
    outside_coi_mask,
    surrogate_length,
    surrogate_seeds,
)

__all__ = [
    "NBINS",
    "ar1_allen_smith",
    "ar1_histograms",
    "ar1_naive",
    "ar1_spectrum",
    "ar1_thresholds",
    "estimate_ar1",
    "levels_from_histograms",
    "outside_coi_mask",
    "rednoise",
    "surrogate_length",
    "surrogate_seeds",
    "threshold_cache",
]
