"""Array-namespace dispatch: NumPy/SciPy on CPU, CuPy on GPU, chosen from the input.

CuPy is imported lazily, only when a CuPy array is actually passed, so importing
bioxen_dask never needs a GPU.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

__all__ = ["array_namespace", "fft_namespace", "is_cupy", "to_numpy", "device_key"]


def is_cupy(x: Any) -> bool:
    """True for a CuPy array (checked by type, without importing CuPy)."""
    return type(x).__module__.split(".")[0] == "cupy"


def array_namespace(*arrays: Any) -> ModuleType:
    """The array module (``numpy`` or ``cupy``) of the inputs; mixing the two is an error."""
    kinds = {is_cupy(a) for a in arrays if a is not None}
    if kinds == {True}:
        import cupy

        return cupy
    if kinds == {True, False}:
        raise TypeError(
            "inputs mix NumPy and CuPy arrays; move them to one device first "
            "(cupy.asarray(x) or x.get())."
        )
    return np


def fft_namespace(xp: ModuleType) -> ModuleType:
    """FFT module for ``xp``: ``scipy.fft`` (``workers=``, ``overwrite_x=``) or
    ``cupyx.scipy.fft`` (``overwrite_x=``; ``cupy.fft`` has neither)."""
    if xp is np:
        import scipy.fft

        return scipy.fft
    import cupyx.scipy.fft

    return cupyx.scipy.fft


def fft_kwargs(xp: ModuleType, workers: int | None) -> dict[str, Any]:
    """Keyword arguments for the FFT calls (thread count on CPU only)."""
    return {"workers": workers} if (xp is np and workers is not None) else {}


def to_numpy(x: Any) -> np.ndarray:
    """A NumPy view/copy of ``x`` (device arrays are copied to the host)."""
    return x.get() if is_cupy(x) else np.asarray(x)


def device_key(xp: ModuleType) -> tuple[str, int]:
    """Identity of the current device, for device-resident caches."""
    if xp is np:
        return ("cpu", 0)
    return ("cuda", int(xp.cuda.runtime.getDevice()))
