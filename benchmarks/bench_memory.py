"""Peak memory of streamed reductions over a very long record: band power, or pair coherence.

Generates an N-sample record into Zarr chunk by chunk (never whole in memory) and reports
the peak RSS of the process and the wall time.

``--kind band_power`` (default): white noise, the scale-averaged power of two period bands
with 24 scales through ``bioxen_dask.graph.band_power``, against the size the full complex64
transform would have.

``--kind coherence``: 4 float32 rois at 1 kHz (AR(1) noise, the pairs sharing a 0.1 s
oscillation with a lag), 2 pairs in list mode through :func:`bioxen_dask.coherence` with
0.01-1 s periods at dj 1/8 (55 periods), no significance, the reductions (means, phase, lag)
computed in halo-exact time blocks, each an independent task; throughput in pair-samples/s.

    python benchmarks/bench_memory.py --samples 1e9            # the issue's 1e9-sample case
    python benchmarks/bench_memory.py --samples 2e7 --out docs/benchmarks/memory.md
    python benchmarks/bench_memory.py --kind coherence --samples 1e7 --method multirate --out docs/benchmarks/memory.md
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import xarray as xr
import zarr

from bioxen_dask.bench import machine_info, machine_label, peak_rss_mb
from bioxen_dask.graph import band_power
from bioxen_dask.grid import make_grid

#: Sampling rate (Hz), rois, pairs and periods (s) of the coherence case.
FS, ROIS, PAIRS, PERIODS = 1000.0, 4, [(0, 1), (2, 3)], (0.01, 1.0)


def write_coherence_record(path: Path, n: int, chunk: int, seed: int = 0) -> None:
    """4 rois of AR(1) noise (g = 0.9) plus a 10 Hz oscillation, roi 1 lagging roi 0 by 20 ms
    and roi 3 lagging roi 2 by 30 ms, written chunk by chunk (the AR(1) state carried)."""
    from scipy.signal import lfilter

    arr = zarr.create_array(path, shape=(ROIS, n), chunks=(ROIS, chunk), dtype="float32")
    rng = np.random.default_rng(seed)
    zi = np.zeros((ROIS, 1))
    lag = np.array([0.0, 0.02, 0.0, 0.03])[:, None]
    for i in range(0, n, chunk):
        m = min(chunk, n - i)
        noise, zi = lfilter([1.0], [1.0, -0.9], rng.standard_normal((ROIS, m)), axis=-1, zi=zi)
        t = (i + np.arange(m)) / FS
        arr[:, i : i + m] = (noise + 3.0 * np.sin(2 * np.pi * 10.0 * (t[None, :] - lag))).astype("float32")


def run_coherence(args, n: int, workdir: Path) -> str:
    from bioxen_dask.coherence import coherence

    path = workdir / "pairs.zarr"
    t0 = time.perf_counter()
    write_coherence_record(path, n, args.chunk)
    t_gen = time.perf_counter() - t0
    sig = xr.DataArray(da.from_zarr(str(path)), dims=("roi", "time"), attrs={"fs": FS})
    t0 = time.perf_counter()
    with dask.config.set(scheduler="threads", num_workers=args.threads):
        ds = coherence(sig, pairs=PAIRS, min_period=PERIODS[0], max_period=PERIODS[1], dj=1 / 8,
                       significance=None, method=args.method, time_chunk=args.time_chunk, workers=1)
        res = ds.compute()
    t_run = time.perf_counter() - t0
    peak = peak_rss_mb()
    lag_ms = 1e3 * res.lag.sel(period=0.1, method="nearest").values
    print(f"lag at 0.1 s (ms): {lag_ms.round(2).tolist()}  (record generated in {t_gen:.1f} s; "
          f"{ds.attrs['time_blocks']} time blocks, halo {ds.attrs['halo']})")
    rate = len(PAIRS) * n / t_run
    print("| samples | pairs | periods | method | time blocks | peak RSS | wall time | pair-samples/s | machine, date |")
    print("|---|---|---|---|---|---|---|---|---|")
    return (f"| {n:.0e} | {len(PAIRS)} | {ds.sizes['period']} | {args.method} | {ds.attrs['time_blocks']} "
            f"| {peak:,.0f} MB | {t_run:,.1f} s | {rate:,.3g} | {machine_label(machine_info())} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kind", choices=("band_power", "coherence"), default="band_power")
    ap.add_argument("--method", choices=("exact", "multirate"), default="multirate", help="coherence only")
    ap.add_argument("--samples", type=float, default=1e9)
    ap.add_argument("--chunk", type=int, default=1_000_000, help="Zarr chunk (samples)")
    ap.add_argument("--time-chunk", type=int, default=None,
                    help="transform block (samples); default 250,000 (band power), the planner's (coherence)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dir", default=None, help="where to write the temporary Zarr record")
    ap.add_argument("--out", default=None, help="append a Markdown result row to this file")
    args = ap.parse_args()
    n = int(args.samples)
    workdir = Path(tempfile.mkdtemp(dir=args.dir, prefix="bench_memory_"))
    try:
        if args.kind == "coherence":
            row = run_coherence(args, n, workdir)
            print(row)
            if args.out:
                Path(args.out).parent.mkdir(parents=True, exist_ok=True)
                with open(args.out, "a") as fh:
                    fh.write(row + "\n")
            return
        path = workdir / "long.zarr"
        arr = zarr.create_array(path, shape=(1, n), chunks=(1, args.chunk), dtype="float32")
        rng = np.random.default_rng(0)
        t0 = time.perf_counter()
        for i in range(0, n, args.chunk):
            arr[0, i : i + args.chunk] = rng.standard_normal(min(args.chunk, n - i)).astype("float32")
        t_gen = time.perf_counter() - t0
        sig = xr.DataArray(da.from_zarr(str(path)), dims=("roi", "time"))
        grid = make_grid(n, 1.0, dj=0.25, J=23)
        out = band_power(sig, [(4.0, 16.0), (16.0, 64.0)], dt=1.0, dj=0.25, J=23, time_chunk=args.time_chunk or 250_000)
        t0 = time.perf_counter()
        with dask.config.set(scheduler="threads", num_workers=args.threads):
            means = out.mean("time").compute()
        t_run = time.perf_counter() - t0
        peak = peak_rss_mb()
        full_gb = n * grid.n_scales * 8 / 1e9
        row = (f"| {n:.0e} | {grid.n_scales} | {full_gb:,.1f} GB | {peak:,.0f} MB | {t_run:,.1f} s "
               f"| {n * grid.n_scales / t_run / 1e6:,.1f} M | {machine_label(machine_info())} |")
        print(f"band means: {means.values.ravel().tolist()}  (record generated in {t_gen:.1f} s)")
        print("| samples | scales | full complex64 transform | peak RSS | wall time | samples*scales/s | machine, date |")
        print("|---|---|---|---|---|---|---|")
        print(row)
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            with open(args.out, "a") as fh:
                fh.write(row + "\n")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
