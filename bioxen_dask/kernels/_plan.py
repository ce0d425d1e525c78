"""FFT length planning per boundary mode.

A transform is computed in *bands* of scales that share one FFT length. For the ``linear``
and ``symmetric`` modes each band's length is long enough for the widest wavelet (or
smoothing Gaussian) in it, so nothing wraps around; grouping scales whose supports are
within a factor of two keeps the padding cost close to the per-scale minimum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.fft

__all__ = ["Band", "plan_bands", "BOUNDARIES"]

#: Boundary modes understood by the kernels.
BOUNDARIES = ("linear", "symmetric", "circular", "valid", "pycwt", "grinsted")


@dataclass(frozen=True)
class Band:
    """Scales ``[start, stop)`` transformed with FFT length ``nfft``.

    The signal is placed at offset ``left`` inside the FFT frame (``left > 0`` only for the
    ``symmetric`` mode, whose mirrored extension occupies ``[0, left)``); ``pad`` samples are
    mirrored on each side.
    """

    start: int
    stop: int
    nfft: int
    left: int
    pad: int


def check_boundary(boundary: str) -> str:
    b = str(boundary).strip().lower()
    if b not in BOUNDARIES:
        raise ValueError(f"unknown boundary {boundary!r}; choose one of {list(BOUNDARIES)}.")
    return b


def plan_bands(n: int, supports: np.ndarray, boundary: str) -> list[Band]:
    """Split scales into FFT bands for a record of ``n`` samples.

    Parameters
    ----------
    n : int
        Samples in the record.
    supports : ndarray of int
        Per-scale half-width (samples) of the kernel applied at that scale, non-decreasing.
    boundary : str
        One of :data:`BOUNDARIES`.
    """
    boundary = check_boundary(boundary)
    n_scales = len(supports)
    if boundary == "pycwt":
        return [Band(0, n_scales, int(2 ** math.ceil(math.log2(n))), 0, 0)]
    if boundary == "grinsted":  # Torrence & Compo wavelet.m: 2^(fix(log2(n) + 0.4999) + 1)
        return [Band(0, n_scales, int(2 ** (math.floor(math.log2(n) + 0.4999) + 1)), 0, 0)]
    if boundary == "circular":
        return [Band(0, n_scales, n, 0, 0)]
    mirror = boundary == "symmetric"
    bands: list[Band] = []
    i = 0
    while i < n_scales:
        h_target = 2 * int(supports[i])  # one band per doubling of the support
        j = i
        while j < n_scales and int(supports[j]) <= max(h_target, int(supports[i])):
            j += 1
        h = int(supports[j - 1])
        if mirror:
            nfft = scipy.fft.next_fast_len(n + 2 * h)
            bands.append(Band(i, j, nfft, h, h))
        else:
            nfft = scipy.fft.next_fast_len(n + h)
            bands.append(Band(i, j, nfft, 0, 0))
        i = j
    return bands
