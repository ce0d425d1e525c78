"""Wavelet kernels on plain arrays (NumPy or CuPy, chosen from the input).

Nothing here imports Dask or touches files: the graph layer maps these functions over
blocks. Shapes are ``(..., time) -> (..., scale, time)``; leading axes are batched.
"""

from ._cache import filter_cache
from ._coherence import Smoother, coherence, cross_spectrum, phase, power, scaled_power
from ._coherence_map import multirate_coherence
from ._cwt import cwt, mask_edges, resolve_dtype
from ._device import BatchDoesNotFitError, GPUUnavailableError, batch_size_for, free_memory, memory_info
from ._gaps import fill_gaps, gap_distance, gap_mask, gap_reach, gap_runs
from ._plan import BOUNDARIES, plan_bands
from ._smooth import scale_kernel, smooth, smooth_scale, smooth_time

__all__ = [
    "BOUNDARIES",
    "BatchDoesNotFitError",
    "GPUUnavailableError",
    "Smoother",
    "batch_size_for",
    "coherence",
    "cross_spectrum",
    "cwt",
    "fill_gaps",
    "filter_cache",
    "free_memory",
    "gap_distance",
    "gap_mask",
    "gap_reach",
    "gap_runs",
    "mask_edges",
    "memory_info",
    "multirate_coherence",
    "phase",
    "plan_bands",
    "power",
    "resolve_dtype",
    "scale_kernel",
    "scaled_power",
    "smooth",
    "smooth_scale",
    "smooth_time",
]
