#!/usr/bin/env python
"""Experiment (not a default): multi-rate CWT, large scales on a decimated time grid.

DESIGN section 5: large scales are band-limited, so they need not be computed at full rate.
This script measures the one form of it that is *exact*: the decimated samples ``W[j, ::D]``
of a frequency-defined (``circular``) transform, obtained by folding the product spectrum
``Y = X * B_j`` into ``M/D`` bins and one inverse FFT of that length::

    W[j, k*D] = (1/D) * ifft_{M/D}( sum_r Y[m + r*M/D] )[k]        (D divides M)

an identity of the DFT, so equal to the full transform's samples to rounding for any ``D``.
``D_j`` is chosen per scale as the largest power of two dividing ``M`` with
``D <= pi*s_j/((f0 + sqrt(2 ln(1/tol)))*dt)``, i.e. the filter's spectrum fits in the decimated
Nyquist band: there the decimated series also determines ``W[j]`` at full rate to ``tol``
(band-limited interpolation) — but rebuilding full rate costs a full-length FFT again, so the
saving is real only for consumers of decimated output (scale-averaged power, time-averaged
coherence, significance histograms, plots).

It is not the kernel default: ``cwt`` returns every sample, and nothing downstream takes a
per-scale stride yet. Run::

    python benchmarks/experiment_multirate_cwt.py [--n 1000000] [--dtype float32]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import scipy.fft

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bioxen_dask.grid import ScaleGrid  # noqa: E402
from bioxen_dask.kernels import cwt  # noqa: E402
from bioxen_dask.kernels._cwt import _trimmed_wavelet_filters  # noqa: E402
from bioxen_dask.kernels._plan import Band  # noqa: E402
from bioxen_dask.wavelets import Morlet  # noqa: E402


def strides(grid: ScaleGrid, m: int, tol: float = 1e-10) -> np.ndarray:
    """Per-scale decimation: largest power of two dividing ``m`` within the band limit."""
    reach = grid.wavelet.f0 + math.sqrt(2 * math.log(1 / tol))  # |s*w - f0| beyond: < tol
    pow2 = m & -m  # largest power of two dividing m
    out = []
    for s in grid.scales:
        d = max(1, int(math.pi * s / (reach * grid.dt)))
        d = 1 << (d.bit_length() - 1)
        out.append(min(d, pow2))
    return np.asarray(out)


def cwt_decimated(x: np.ndarray, grid: ScaleGrid, dtype: str = "float32"):
    """``[W[j, ::D_j] for j]`` of the circular transform, by spectral folding.

    Scales with ``D_j == 1`` go through :func:`bioxen_dask.kernels.cwt` (batched, four-step);
    the others fold only the non-zero part of their (trimmed) filter row.
    """
    real = np.dtype(dtype)
    m = x.size
    d = strides(grid, m)
    k = int(np.sum(d == 1))
    head = ScaleGrid(grid.dt, grid.scales_[:k], grid.dj, grid.wavelet)
    out = list(cwt(x, head, boundary="circular", dtype=dtype)) if k else []
    if k == grid.n_scales:
        return out, d
    bank = _trimmed_wavelet_filters(grid, Band(k, grid.n_scales, m, 0, 0), real, np, False)
    spec = scipy.fft.fft(x.astype(real))
    for r, j in enumerate(range(k, grid.n_scales)):
        start, vals = bank.starts[r], bank.values[r]
        idx = (start + np.arange(vals.size)) % m
        prod = spec[idx] * vals
        bins = idx % (m // d[j])
        fold = np.bincount(bins, prod.real, m // d[j]) + 1j * np.bincount(bins, prod.imag, m // d[j])
        out.append((scipy.fft.ifft(fold.astype(prod.dtype), overwrite_x=True) / d[j]))
    return out, d


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=10**6)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    n = args.n
    s0 = 2 / Morlet().fourier_factor
    grid = ScaleGrid.from_s0(1.0, s0, min(1 / 12, math.log2(n / (8 * s0)) / 99), 99)
    x = np.random.default_rng(0).standard_normal(n)

    def timed(fn):
        fn()
        ts = []
        for _ in range(args.repeat):
            t = time.process_time()
            fn()
            ts.append(time.process_time() - t)
        return float(np.median(ts))

    full = cwt(x, grid, boundary="circular", dtype=args.dtype)
    dec, d = cwt_decimated(x, grid, args.dtype)
    err = max(float(np.abs(w - full[j, :: d[j]]).max()) for j, w in enumerate(dec)) / float(np.abs(full).max())
    t_full = timed(lambda: cwt(x, grid, boundary="circular", dtype=args.dtype))
    t_dec = timed(lambda: cwt_decimated(x, grid, args.dtype))
    kept = sum(w.size for w in dec) / full.size
    print(f"N={n}, {grid.n_scales} scales, {args.dtype}; strides D_j from {d.min()} to {d.max()} "
          f"({np.sum(d == 1)} scales at full rate)")
    print(f"decimated samples == full transform's samples to {err:.1e} (relative to max |W|)")
    print(f"CPU time: full-rate circular cwt {t_full:.3f} s, decimated {t_dec:.3f} s "
          f"({t_full / t_dec:.1f}x), output {kept:.1%} of the full-rate samples")
    return 0


if __name__ == "__main__":
    sys.exit(main())
