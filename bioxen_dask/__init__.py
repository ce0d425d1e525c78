"""bioxen-dask: wavelet coherence with honest significance testing, at whole-brain scale.

The public API is small:

- :func:`wavelet_transform`, :func:`wavelet_coherence` — labelled (xarray) results for one or
  many signals, pycwt-exact numerics with linear-convolution boundaries by default;
- :func:`coherence` — the main job: lazy coherence of many pairs (every roi against a
  reference, a list of pairs, or all pairs) with reductions and significance, as a Dataset;
- :mod:`bioxen_dask.connectivity` — all-pairs results as ``(roi, roi, period)`` and band
  matrices, written to Zarr and read back by band;
- :mod:`bioxen_dask.compat` — drop-in replacements for pycwt's ``cwt``, ``xwt``, ``wct``,
  ``wct_significance`` and ``ar1``;
- :mod:`bioxen_dask.wavelets`, :mod:`bioxen_dask.grid` — mother wavelets and scale grids;
- :mod:`bioxen_dask.kernels` — the array kernels (NumPy or CuPy) everything is built on.
"""

from ._api import PHASE_CONVENTION, wavelet_coherence, wavelet_transform
from .coherence import LAG_CONVENTION, coherence
from ._version import __version__
from .grid import ScaleGrid, make_grid
from .wavelets import DOG, MexicanHat, Morlet, Paul

__all__ = [
    "DOG",
    "LAG_CONVENTION",
    "MexicanHat",
    "Morlet",
    "PHASE_CONVENTION",
    "Paul",
    "ScaleGrid",
    "__version__",
    "coherence",
    "make_grid",
    "wavelet_coherence",
    "wavelet_transform",
]
