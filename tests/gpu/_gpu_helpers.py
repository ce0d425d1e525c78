"""Shared helpers of the GPU tests: the skip condition and tolerances.

Every GPU test module sets ``pytestmark = GPU`` so that it is marked ``gpu`` and skipped,
with the reason, where CuPy or a CUDA device is missing (the CPU suite stays green).
"""

from __future__ import annotations

import numpy as np
import pytest

from bioxen_dask.kernels._device import gpu_problem

#: Why the GPU tests cannot run here (``None``: they can).
SKIP_REASON = gpu_problem()

#: Marks a test (or, as ``pytestmark``, a module) as a GPU test skipped without a device.
GPU = [pytest.mark.gpu, pytest.mark.skipif(SKIP_REASON is not None, reason=f"needs CuPy and a CUDA device: {SKIP_REASON}")]

#: Largest relative difference allowed between CuPy and NumPy results, per working precision.
RTOL = {"float64": 1e-9, "float32": 1e-4}


def rel_err(a, b) -> float:
    """``max |a - b| / max |b|`` over finite entries, after bringing ``a`` to the host."""
    import cupy

    a = cupy.asnumpy(a) if isinstance(a, cupy.ndarray) else np.asarray(a)
    b = np.asarray(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))  # same NaN (valid-mode) masks
    ok = np.isfinite(b)
    return float(np.abs(a[ok] - b[ok]).max() / np.abs(b[ok]).max())
