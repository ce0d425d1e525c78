"""FFT length planning per boundary mode.

A transform is computed in *bands* of scales that share one FFT length. For the ``linear``
and ``symmetric`` modes each band's length is long enough for the widest wavelet (or
smoothing Gaussian) in it, so nothing wraps around; grouping scales whose supports are
within a factor of two keeps the padding cost close to the per-scale minimum.

Long records in those modes are transformed by **overlap-save**: the record is cut into
segments of ``hop`` samples, each extended by the kernel support ``h`` on both sides, and
every segment is convolved with an FFT of length ``nfft = hop + 2h`` chosen so the working
set stays in the CPU caches. Because the kernels of these modes have compact support (they
are sampled in time and truncated at ``tol``), the result is the same linear convolution as
one long FFT, to rounding; it is ~3x faster on CPUs (pocketfft runs at ~3-5 ns per point
for lengths up to ~1e5, against ~14-20 ns at 1e6, where every pass streams from memory)
and its filter banks are ``nfft`` long instead of record-long, so they fit in the cache.
The frequency-defined modes (``pycwt``, ``circular``, ``grinsted``) need the whole record
in one FFT.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import scipy.fft

__all__ = ["Band", "plan_bands", "reach", "BOUNDARIES"]

#: Boundary modes understood by the kernels.
BOUNDARIES = ("linear", "symmetric", "circular", "valid", "pycwt", "grinsted")

#: Segment lengths considered by the overlap-save planner (not too short: per-call overhead).
_MIN_SEGMENT = 512
_MAX_SEGMENT = 2**18
#: Segment lengths with factors 2, 3, 5 only (pocketfft's radix-7/11 passes are slower).
_SMOOTH5 = True


@dataclass(frozen=True)
class Band:
    """Scales ``[start, stop)`` transformed with FFT length ``nfft``.

    The signal is placed at offset ``left`` inside the FFT frame (``left > 0`` for the
    ``symmetric`` mode, whose mirrored extension occupies ``[0, left)``, and for segmented
    bands); ``pad`` samples are mirrored on each side (``symmetric`` only; zeros otherwise).

    ``hop > 0`` marks an overlap-save band: segment ``i`` is the extended record's samples
    ``[i*hop, i*hop + nfft)``, and its circular convolution holds output samples
    ``[i*hop, (i+1)*hop)`` at ``[left, left + hop)``. ``hop == 0``: one frame of ``nfft``
    samples holds the whole record.
    """

    start: int
    stop: int
    nfft: int
    left: int
    pad: int
    hop: int = 0


def check_boundary(boundary: str) -> str:
    b = str(boundary).strip().lower()
    if b not in BOUNDARIES:
        raise ValueError(f"unknown boundary {boundary!r}; choose one of {list(BOUNDARIES)}.")
    return b


def _point_cost(m: int) -> float:
    """Relative cost per point of a batched complex FFT of length ``m`` (pocketfft, CPU).

    Calibrated on batched complex64 transforms: ~3.2 ns/point at 1e3, ~5 ns at 1.3e5, and
    ~14-20 ns at 1e6 (out of cache); powers of two above 2**14 run ~15% slower
    (cache-set aliasing).
    """
    c = 0.3 * math.log2(max(m, 2)) + 0.2
    if m > 2**17:
        c *= 2.0
    if m > 2**14 and m & (m - 1) == 0:
        c *= 1.15
    return c


def reach(supports: np.ndarray, n: int, boundary: str) -> np.ndarray:
    """Per-scale kernel half-widths a record of ``n`` samples actually needs.

    An output sample of a linear convolution of an ``n``-sample record only meets the
    kernel's taps at lags ``|t| <= n - 1``; taps beyond meet the zero padding. So in the
    ``linear``/``valid`` modes a kernel wider than the record is cut at ``n - 1`` and its
    frame padded by that much, not by its support -- the same linear convolution, for a
    fraction of the FFT length at the largest scales (whose support is several times the
    record at pycwt's default grid). Other modes keep their supports (``symmetric`` mirrors
    ``support`` samples; the frequency-defined modes do not pad by support).

    Examples
    --------
    >>> reach(np.array([10, 500, 4000]), 1000, "linear").tolist()
    [10, 500, 999]
    >>> reach(np.array([10, 500, 4000]), 1000, "symmetric").tolist()
    [10, 500, 4000]
    """
    supports = np.asarray(supports)
    if check_boundary(boundary) in ("linear", "valid"):
        return np.minimum(supports, max(int(n) - 1, 0))
    return supports


@functools.lru_cache(maxsize=4096)
def _segment_length(h: int) -> tuple[int, int]:
    """(nfft, hop) of overlap-save segments for a kernel of half-width ``h``.

    Minimises the modelled cost per output sample, ``nfft/hop * cost(nfft)``. It does not
    depend on the record length, so records of different lengths (the chunks of one long
    recording, the last one shorter) share their filter banks.
    """
    best = (math.inf, 0, 0)
    m = max(_MIN_SEGMENT, 4 * h)
    while m <= max(_MAX_SEGMENT, 4 * h):
        nfft = scipy.fft.next_fast_len(m, real=_SMOOTH5)
        hop = nfft - 2 * h
        cost = nfft / hop * _point_cost(nfft)
        if cost < best[0]:
            best = (cost, nfft, hop)
        m = int(m * 1.25) + 1
    return best[1], best[2]


@functools.lru_cache(maxsize=4096)
def _best_length(n: int, h: int, mirror: bool, segmented: bool) -> tuple[int, int]:
    """(nfft, hop) for one band: one frame (``hop == 0``) or overlap-save segments."""
    single = scipy.fft.next_fast_len(n + (2 * h if mirror else h), real=_SMOOTH5)
    if not segmented:
        return single, 0
    nfft, hop = _segment_length(h)
    n_seg = -(-n // hop)
    if n_seg > 1 and n_seg * nfft * _point_cost(nfft) < single * _point_cost(single):
        return nfft, hop
    return single, 0


def plan_bands(n: int, supports: np.ndarray, boundary: str, *, segmented: bool = True) -> list[Band]:
    """Split scales into FFT bands for a record of ``n`` samples.

    Parameters
    ----------
    n : int
        Samples in the record.
    supports : ndarray of int
        Per-scale half-width (samples) of the kernel applied at that scale, non-decreasing.
    boundary : str
        One of :data:`BOUNDARIES`.
    segmented : bool
        Allow overlap-save bands (``linear``/``symmetric``/``valid`` only). The caller must
        then honour :attr:`Band.hop`.

    Examples
    --------
    >>> [b.hop > 0 for b in plan_bands(10**6, np.array([10, 20, 4000]), "linear")]
    [True, True]
    >>> plan_bands(300, np.array([10, 20]), "pycwt")
    [Band(start=0, stop=2, nfft=512, left=0, pad=0, hop=0)]
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
        nfft, hop = _best_length(int(n), h, mirror, bool(segmented))
        if hop:
            band = Band(i, j, nfft, h, h if mirror else 0, hop)
        elif mirror:
            band = Band(i, j, nfft, h, h)
        else:
            band = Band(i, j, nfft, 0, 0)
        if bands and not band.hop and not bands[-1].hop and bands[-1].nfft == band.nfft \
                and bands[-1].left == band.left and bands[-1].pad == band.pad:
            band = Band(bands.pop().start, j, nfft, band.left, band.pad)  # same frame: merge
        bands.append(band)
        i = j
    return bands
