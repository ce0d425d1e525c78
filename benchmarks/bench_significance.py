"""Monte Carlo coherence significance: pycwt's ``wct_significance`` vs bioxen-dask, per surrogate.

The grid of an 18,000-sample, 30 Hz trace with pycwt's defaults (dj=1/12, smallest period
2 dt, 159 scales); AR(1) surrogate pairs of pycwt's length ceil(6 * largest scale / dt) =
106,814 samples. pycwt is run with a few surrogates (about 80 s each on a 2-core machine) and
its time per surrogate extrapolated (its one-off transform of the geometry surrogate is timed
separately and subtracted); bioxen-dask runs the full 300 surrogates on Dask's local threaded
scheduler (all cores). The ratio of the per-surrogate times is printed.

Usage::

    python benchmarks/bench_significance.py                    # pycwt x2, ours x300
    python benchmarks/bench_significance.py --pycwt-surrogates 1 --ours 300 --interior None
    python benchmarks/bench_significance.py --bucket-bias      # AR(1) bucket-width bias

The machine is shared: the load average before and after each timing is printed.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time

import numpy as np


def _machine() -> str:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import scipy

    return (f"{platform.node()} | {cpu} | {os.cpu_count()} cores | Python {platform.python_version()} | "
            f"numpy {np.__version__} | scipy {scipy.__version__} | "
            f"{datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")


def _load() -> str:
    try:
        return "load %.2f %.2f %.2f" % os.getloadavg()
    except OSError:  # pragma: no cover
        return "load n/a"


def _grid():
    from bioxen_dask.grid import make_grid

    return make_grid(18_000, 1 / 30)


def bench_pycwt(k: int, g1: float, g2: float) -> tuple[float, float]:
    """Seconds per surrogate of pycwt's wct_significance, wall and CPU (setup transform excluded)."""
    import pycwt

    grid = _grid()
    dt, dj, s0, J = grid.dt, grid.dj, float(grid.scales[0]), grid.n_scales - 1
    N = int(np.ceil(s0 * 2 ** (J * dj) / dt * 6))
    print(f"pycwt 0.5.0b0: {grid.n_scales} scales, surrogate length {N} (FFT {2 ** int(np.ceil(np.log2(N)))}), "
          f"{k} surrogate(s) ... [{_load()}]", flush=True)
    np.random.seed(0)
    t0, c0 = time.perf_counter(), time.process_time()
    pycwt.cwt(np.random.randn(N), dt=dt, dj=dj, s0=s0, J=J, wavelet=pycwt.Morlet())
    setup, setup_cpu = time.perf_counter() - t0, time.process_time() - c0
    np.random.seed(0)
    t0, c0 = time.perf_counter(), time.process_time()
    pycwt.wct_significance(g1, g2, dt, dj, s0, J, wavelet=pycwt.Morlet(), mc_count=k, progress=False, cache=False)
    total, cpu = time.perf_counter() - t0, time.process_time() - c0
    per, per_cpu = (total - setup) / k, (cpu - setup_cpu) / k
    print(f"  pycwt total {total:.1f} s wall ({cpu:.1f} s CPU) for {k} surrogate(s), one-off transform "
          f"{setup:.1f} s -> {per:.2f} s ({per_cpu:.2f} s CPU) per surrogate [{_load()}]", flush=True)
    return per, per_cpu


def bench_ours(mc: int, g1: float, g2: float, interior) -> tuple[float, float]:
    from bioxen_dask.significance import AR1Null, surrogate_significance
    from bioxen_dask.significance._multirate import multirate_plan

    grid = _grid()
    print(f"bioxen-dask: {mc} surrogates, interior={interior}, Dask local threads ({os.cpu_count()} cores) "
          f"[{_load()}]", flush=True)
    t0, c0 = time.perf_counter(), time.process_time()
    res = surrogate_significance(grid, AR1Null(g1, g2), mc_count=mc, levels=(0.95, 0.99), seed=0,
                                 interior=interior)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    per, per_cpu = wall / mc, cpu / mc
    print(f"  ours total {wall:.1f} s wall ({cpu:.1f} s CPU, all threads; plan set-up included) -> "
          f"{per * 1e3:.1f} ms per surrogate; "
          f"memory per task {res.attrs['memory_per_task_bytes'] / 2**20:.0f} MiB, "
          f"batch size {res.attrs['batch_size']} [{_load()}]", flush=True)
    print(multirate_plan(grid, res.attrs["n_samples"], "pycwt", "pycwt", 1000, interior).describe())
    th = res.thresholds[0]
    ok = np.isfinite(th)
    print(f"  0.95 thresholds: {ok.sum()} scales, min {np.nanmin(th):.3f}, median {np.nanmedian(th):.3f}, "
          f"max {np.nanmax(th):.3f}")
    return per, per_cpu


def bucket_bias(mc: int, width: float, gs, g_ref: float) -> float:
    """Largest threshold shift between a bucket centre and its edges (common random numbers)."""
    from bioxen_dask.significance import ar1_thresholds

    grid = _grid()
    worst = 0.0
    print(f"bucket bias: width {width} in atanh(g), reference g {g_ref}, {mc} surrogates, common seeds")
    for g in gs:
        c = np.arctanh(g)
        th = {d: ar1_thresholds(grid, g_ref, float(np.tanh(c + d)), mc_count=mc, seed=3)
              for d in (-width / 2, 0.0, width / 2)}
        shift = max(np.nanmax(np.abs(th[d] - th[0.0])) for d in (-width / 2, width / 2))
        worst = max(worst, shift)
        print(f"  g={g:.2f}: largest |threshold(edge) - threshold(centre)| = {shift:.4f}", flush=True)
    print(f"bucket bias at width {width}: {worst:.4f}")
    return worst


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pycwt-surrogates", type=int, default=2)
    p.add_argument("--ours", type=int, default=300)
    p.add_argument("--interior", default="512", help="multirate interior (int) or None")
    p.add_argument("--g1", type=float, default=0.72)
    p.add_argument("--g2", type=float, default=0.45)
    p.add_argument("--skip-pycwt", action="store_true")
    p.add_argument("--pycwt-seconds", type=float, default=None,
                   help="use this pycwt time per surrogate instead of measuring it")
    p.add_argument("--bucket-bias", action="store_true")
    p.add_argument("--width", type=float, default=0.1)
    args = p.parse_args(argv)
    print(_machine())
    if args.bucket_bias:
        bucket_bias(args.ours, args.width, (0.0, 0.5, 0.8, 0.9, 0.95), 0.5)
        return 0
    interior = None if args.interior == "None" else int(args.interior)
    ours, ours_cpu = bench_ours(args.ours, args.g1, args.g2, interior)
    if args.pycwt_seconds is not None:
        theirs = theirs_cpu = args.pycwt_seconds
        print(f"pycwt per surrogate (given): {theirs:.2f} s")
    elif args.skip_pycwt:
        return 0
    else:
        theirs, theirs_cpu = bench_pycwt(args.pycwt_surrogates, args.g1, args.g2)
    print(f"RESULT per surrogate (wall, {os.cpu_count()} cores): pycwt {theirs:.2f} s, bioxen-dask "
          f"{ours * 1e3:.1f} ms, ratio {theirs / ours:.0f}x (target >= 200x)")
    print(f"RESULT per surrogate (CPU seconds): pycwt {theirs_cpu:.2f} s, bioxen-dask {ours_cpu * 1e3:.1f} ms, "
          f"ratio {theirs_cpu / ours_cpu:.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
