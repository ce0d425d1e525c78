#!/usr/bin/env python
"""CWT benchmark: pycwt 0.5.0b0 against bioxen-dask's native kernels, side by side.

Everything runs in one process on one machine: pycwt's ``cwt`` (float64, its only
precision) and :func:`bioxen_dask.kernels.cwt` on the same 100-scale Morlet grid, in float32
and float64, with the ``linear`` (default), ``circular`` and ``pycwt`` boundaries, for records
of N = 1e3 ... 1e6 samples. Each configuration gets a warm-up call (which also fills the
filter-bank cache; its time is reported as ``first_s``) and ``--repeat`` timed calls; the table
shows the median wall time, the median CPU time (all threads) and the peak of Python/NumPy
allocations during one extra call (``tracemalloc``). At the largest size fCWT, ssqueezepy and
PyWavelets are timed too when installed (a missing or failing engine is reported, never
dropped).

The grid: ``ScaleGrid.from_s0(dt=1, s0=2*dt/fourier_factor, dj, J=99)`` (100 scales, the
smallest period 2 samples, pycwt's default ``s0``) with ``dj = min(1/12, log2(N/(8*s0))/99)``
so the largest scale stays at most N/8 (dj = 1/12 from N = 1e4 on; largest scale 589 samples).

Targets checked at the end (issue text): native float32 CWT at N = 1e6 at least 5x faster than
pycwt's ``cwt``; the ``linear`` boundary at most 10% dearer than ``circular``; throughput in
samples x scales per second against fCWT's ~110 M/s (100 scales, N = 1e6, float32).

Usage::

    python benchmarks/bench_cwt.py                    # N = 1e3..1e6, 5 repeats
    python benchmarks/bench_cwt.py --quick            # N = 1e3..1e5, 3 repeats
    python benchmarks/bench_cwt.py --sizes 1e5 1e6 --repeat 3 --workers 1 -1

``--workers -1`` adds rows with all CPU threads (the kernel default, ``None``, is one thread:
inside Dask workers the threads already run blocks in parallel).
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import gc
import math
import os
import platform
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

from bioxen_dask.grid import ScaleGrid  # noqa: E402
from bioxen_dask.kernels import cwt as native_cwt  # noqa: E402
from bioxen_dask.kernels import filter_cache  # noqa: E402
from bioxen_dask.wavelets import Morlet  # noqa: E402

N_SCALES = 100
FCWT_CLAIM = 110e6  # samples x scales per second, fCWT paper figure (N=1e6, 100 scales, float32)
FIELDS = [
    "engine", "n", "n_scales", "dtype", "boundary", "workers", "repeat",
    "wall_median_s", "wall_min_s", "cpu_median_s", "first_s", "peak_mem_mb",
    "msamples_scales_per_s", "pycwt_over_this", "pycwt_over_this_cpu", "note",
]


# --- machine -------------------------------------------------------------------------------
def machine_info() -> dict[str, str]:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = os.cpu_count() or 1
    info = {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": model,
        "cores": f"{os.cpu_count()} logical, {usable} usable",
        "python": platform.python_version(),
        "numpy": np.__version__,
    }
    try:
        info["load_avg"] = "%.2f %.2f %.2f" % os.getloadavg()
    except OSError:  # pragma: no cover
        pass
    from importlib import metadata

    for dist in ("scipy", "pycwt", "fCWT", "ssqueezepy", "PyWavelets"):
        try:
            info[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            info[dist] = "not installed"
    return info


# --- timing --------------------------------------------------------------------------------
def measure(fn: Callable[[], Any], repeat: int, *, memory: bool = True, before_first: Callable[[], None] | None = None):
    """(wall medians/min, cpu median, first-call time, peak traced MB) of ``fn``."""
    gc.collect()
    if before_first is not None:
        before_first()
    t = time.perf_counter()
    fn()  # warm-up: FFT plans, filter banks, JIT compilers
    first = time.perf_counter() - t
    walls, cpus = [], []
    for _ in range(repeat):
        gc.collect()
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        cpus.append(time.process_time() - c0)
        walls.append(time.perf_counter() - w0)
    peak = float("nan")
    if memory:
        gc.collect()
        tracemalloc.start()
        try:
            fn()
            peak = tracemalloc.get_traced_memory()[1] / 2**20
        finally:
            tracemalloc.stop()
    return statistics.median(walls), min(walls), statistics.median(cpus), first, peak


def grid_for(n: int, dt: float = 1.0) -> ScaleGrid:
    s0 = 2 * dt / Morlet().fourier_factor
    dj = min(1 / 12, math.log2(n * dt / (8 * s0)) / (N_SCALES - 1))
    grid = ScaleGrid.from_s0(dt, s0=s0, dj=dj, J=N_SCALES - 1)
    assert grid.n_scales == N_SCALES and grid.scales[-1] <= n / 8 + 1e-9
    return grid


def row(engine, n, dtype, boundary, workers, repeat, res, note="") -> dict[str, Any]:
    wall, wmin, cpu, first, peak = res
    return {
        "engine": engine, "n": n, "n_scales": N_SCALES, "dtype": dtype, "boundary": boundary,
        "workers": workers, "repeat": repeat, "wall_median_s": wall, "wall_min_s": wmin,
        "cpu_median_s": cpu, "first_s": first, "peak_mem_mb": peak,
        "msamples_scales_per_s": n * N_SCALES / wall / 1e6, "pycwt_over_this": float("nan"),
        "pycwt_over_this_cpu": float("nan"), "note": note,
    }


def _ratios(r, ref) -> None:
    if ref is not None:
        r["pycwt_over_this"] = ref["wall_median_s"] / r["wall_median_s"]
        r["pycwt_over_this_cpu"] = ref["cpu_median_s"] / r["cpu_median_s"]


# --- engines ---------------------------------------------------------------------------------
def bench_pycwt(x, grid, repeat, memory):
    import pycwt

    s0, dj = float(grid.scales[0]), float(grid.dj)
    fn = lambda: pycwt.cwt(x, grid.dt, dj, s0, N_SCALES - 1, pycwt.Morlet(6))  # noqa: E731
    return measure(fn, repeat, memory=memory)


def bench_native(x, grid, dtype, boundary, workers, repeat, memory):
    fn = lambda: native_cwt(x, grid, boundary=boundary, dtype=dtype, workers=workers)  # noqa: E731
    return measure(fn, repeat, memory=memory, before_first=filter_cache.clear)


def bench_external(name, x, grid, repeat, memory, threads):
    """Time an optional engine on the same scales; returns (result, note) or raises."""
    n = x.size
    if name == "fcwt":
        import fcwt

        f = grid.frequencies / grid.dt
        morl = fcwt.Morlet(2.0)
        fs = int(round(1.0 / grid.dt))  # fCWT takes an integer sampling rate (dt = 1 here)
        scales = fcwt.Scales(morl, fcwt.FCWT_LOGSCALES, fs, float(f.min()), float(f.max()), N_SCALES)
        obj = fcwt.FCWT(morl, int(threads), False, True)
        x32 = x.astype(np.float32)
        out = np.zeros((N_SCALES, n), np.complex64)
        res = measure(lambda: obj.cwt(x32, scales, out), repeat, memory=False)  # C++ buffers: untraced
        return res, f"fCWT Morlet(2.0), log scales over the same frequencies, output preallocated, {threads} OpenMP thread(s)"
    if name == "ssqueezepy":
        import ssqueezepy

        x32 = x.astype(np.float32)
        sc = grid.scales.astype(np.float32)
        fn = lambda: ssqueezepy.cwt(x32, wavelet="morlet", scales=sc, padtype="zero", l1_norm=False, astensor=False)  # noqa: E731
        return measure(fn, repeat, memory=memory), "ssqueezepy morlet, same scales, float32"
    if name == "pywavelets":
        import pywt

        fn = lambda: pywt.cwt(x, grid.scales, "cmor1.5-1.0", method="fft")  # noqa: E731
        return measure(fn, repeat, memory=memory), "PyWavelets cmor1.5-1.0, method='fft', complex128"
    raise ValueError(name)


# --- report ----------------------------------------------------------------------------------
def fmt(v, spec):
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def print_table(rows):
    head = (f"{'engine':<12}{'N':>9} {'dtype':<8}{'boundary':<9}{'thr':>4} {'wall med':>9} {'cpu med':>9} {'first':>8} "
            f"{'peak MB':>8} {'M s*sc/s':>9} {'pycwt/x':>8} {'(cpu)':>6}  note")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['engine']:<12}{r['n']:>9} {r['dtype']:<8}{r['boundary']:<9}{str(r['workers']):>4} "
            f"{fmt(r['wall_median_s'], '9.4f')} {fmt(r['cpu_median_s'], '9.4f')} {fmt(r['first_s'], '8.3f')} "
            f"{fmt(r['peak_mem_mb'], '8.0f')} {fmt(r['msamples_scales_per_s'], '9.1f')} {fmt(r['pycwt_over_this'], '8.2f')} "
            f"{fmt(r['pycwt_over_this_cpu'], '6.2f')}  {r['note']}"
        )


def summarise(rows, sizes):
    native = [r for r in rows if r["engine"] == "bioxen-dask"]
    print("\nlinear / circular wall-time ratio (target <= 1.10):")
    for n in sizes:
        for dt in ("float32", "float64"):
            for w in sorted({r["workers"] for r in native}, key=str):
                lin = [r for r in native if (r["n"], r["dtype"], r["boundary"], r["workers"]) == (n, dt, "linear", w)]
                cir = [r for r in native if (r["n"], r["dtype"], r["boundary"], r["workers"]) == (n, dt, "circular", w)]
                if lin and cir:
                    ratio = lin[0]["wall_median_s"] / cir[0]["wall_median_s"]
                    cpu_ratio = lin[0]["cpu_median_s"] / cir[0]["cpu_median_s"]
                    print(f"  N={n:>8} {dt:<8} workers={w!s:>3}: {ratio:5.2f} (cpu {cpu_ratio:5.2f})  "
                          f"{'OK' if ratio <= 1.10 else 'ABOVE TARGET'}")
    big = max(sizes)
    print(f"\ntargets at N={big}:")
    for w in sorted({r["workers"] for r in native}, key=str):
        for b in ("linear", "circular", "pycwt"):
            r = [r for r in native if (r["n"], r["dtype"], r["boundary"], r["workers"]) == (big, "float32", b, w)]
            if r:
                r = r[0]
                sp, sp_cpu = r["pycwt_over_this"], r["pycwt_over_this_cpu"]
                thr = r["msamples_scales_per_s"] * 1e6
                thr_cpu = big * N_SCALES / r["cpu_median_s"]
                print(f"  float32 {b:<8} workers={w!s:>3}: {fmt(sp, '.1f')}x pycwt by wall time, {fmt(sp_cpu, '.1f')}x by CPU time "
                      f"({'meets' if sp >= 5 else 'misses'} >= 5x); {thr / 1e6:.0f} M samples*scales/s "
                      f"({'>=' if thr >= FCWT_CLAIM else '<'} fCWT's ~110 M/s claim; {thr_cpu / 1e6:.0f} M per CPU-second)")
    for r in rows:
        if r["engine"].startswith("fcwt") and r["n"] == big:
            print(f"  {r['engine']} measured here: {r['msamples_scales_per_s']:.0f} M samples*scales/s, "
                  f"{big * N_SCALES / r['cpu_median_s'] / 1e6:.0f} M per CPU-second ({r['note']})")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", type=float, default=None, help="record lengths (default 1e3 1e4 1e5 1e6)")
    ap.add_argument("--repeat", type=int, default=None, help="timed calls per configuration (default 5; --quick 3)")
    ap.add_argument("--out", default="bench-output/cwt.csv", help="CSV path (default bench-output/cwt.csv)")
    ap.add_argument("--quick", action="store_true", help="N up to 1e5, 3 repeats (external engines at the largest N)")
    ap.add_argument("--workers", nargs="+", type=int, default=[1], help="thread counts for bioxen-dask rows (-1: all CPUs)")
    ap.add_argument("--no-external", action="store_true", help="skip fCWT/ssqueezepy/PyWavelets")
    ap.add_argument("--no-memory", action="store_true", help="skip the tracemalloc pass")
    args = ap.parse_args(argv)
    sizes = sorted(int(s) for s in (args.sizes or ([1e3, 1e4, 1e5] if args.quick else [1e3, 1e4, 1e5, 1e6])))
    repeat = args.repeat or (3 if args.quick else 5)
    memory = not args.no_memory
    info = machine_info()
    print("bioxen-dask CWT benchmark")
    for k, v in info.items():
        print(f"  {k:<9} {v}")
    print(f"  grid      {N_SCALES} Morlet(6) scales, s0 = 2 dt / fourier_factor, dj = min(1/12, log2(N/(8 s0))/99); "
          f"repeat {repeat} (median)\n")

    rng = np.random.default_rng(20240601)
    rows: list[dict[str, Any]] = []
    missing: list[str] = []
    for n in sizes:
        x = rng.standard_normal(n)
        grid = grid_for(n)
        print(f"N={n}: dj={grid.dj:.4f}, largest scale {grid.scales[-1]:.0f} samples ...", flush=True)
        try:
            ref = row("pycwt", n, "float64", "pycwt", 1, repeat, bench_pycwt(x, grid, repeat, memory), "pycwt.cwt, scipy.fftpack, 2**k padding")
            rows.append(ref)
        except ImportError as exc:
            ref = None
            missing.append(f"pycwt: not installed ({exc})")
        for w in args.workers:
            for dtype in ("float32", "float64"):
                for b in ("linear", "circular", "pycwt"):
                    r = row("bioxen-dask", n, dtype, b, w, repeat, bench_native(x, grid, dtype, b, w, repeat, memory))
                    _ratios(r, ref)
                    rows.append(r)
        if n == sizes[-1] and not args.no_external:
            threads = sorted({1, os.cpu_count() or 1})
            for name, variants in (("fcwt", threads), ("ssqueezepy", [None]), ("pywavelets", [None])):
                for th in variants:
                    label = name if th is None else f"{name}[{th}t]"
                    try:
                        res, note = bench_external(name, x, grid, repeat if n < 10**6 or name != "pywavelets" else max(1, repeat // 2), memory, th or 1)
                    except ImportError as exc:
                        missing.append(f"{name}: not installed ({type(exc).__name__}: {exc})")
                        break
                    except Exception as exc:  # reported, never dropped silently
                        missing.append(f"{label}: failed ({type(exc).__name__}: {exc})")
                        continue
                    r = row(label, n, "float32" if name != "pywavelets" else "float64", "-", th if th else "-", repeat, res, note)
                    _ratios(r, ref)
                    rows.append(r)

    print()
    print_table(rows)
    if missing:
        print("\nengines not timed:")
        for m in missing:
            print(f"  {m}")
    summarise(rows, sizes)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as fh:
        fh.write("# " + "; ".join(f"{k}={v}" for k, v in info.items()) + "\n")
        for m in missing:
            fh.write(f"# not timed: {m}\n")
        wr = csv.DictWriter(fh, fieldnames=FIELDS)
        wr.writeheader()
        for r in rows:
            wr.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
