"""Peak memory of streamed reductions over a very long record: band power, or pair coherence.

Generates an N-sample record into Zarr chunk by chunk (never whole in memory) and reports
the peak RSS of the process and the wall time.

``--kind band_power`` (default): white noise, the scale-averaged power of two period bands
with 24 scales through ``bioxen_dask.graph.band_power``, against the size the full complex64
transform would have.

``--kind coherence``: 4 float32 rois at 1 kHz (AR(1) noise, the pairs sharing a 0.1 s
oscillation with a lag), 2 pairs in list mode through :func:`bioxen_dask.coherence` with
0.01-1 s periods at dj 1/8 (55 periods), no significance, the reductions (means, phase, lag)
computed in halo-exact time blocks, each an independent task (run in bounded waves);
throughput in pair-samples/s. ``--pairs 1`` keeps the first pair (2 rois: half the store).

    python benchmarks/bench_memory.py --samples 1e9            # the issue's 1e9-sample case
    python benchmarks/bench_memory.py --samples 2e7 --out docs/benchmarks/memory.md
    python benchmarks/bench_memory.py --kind coherence --samples 1e7 --json docs/benchmarks/coherence_long.json
    python benchmarks/bench_memory.py --kind coherence --pairs 1 --samples 1e9 --dir /work/tmp-long \
        --json docs/benchmarks/coherence_long.json                # one pair of 1e9 samples (an 8 GB store)
    python benchmarks/bench_memory.py --kind coherence --samples 2e6 --workers 1,2   # 1 -> 2 workers
"""

from __future__ import annotations

import argparse
import os
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

#: Sampling rate (Hz), pairs (of rois 0-3) and periods (s) of the coherence case.
FS, PAIRS, PERIODS = 1000.0, [(0, 1), (2, 3)], (0.01, 1.0)


def write_coherence_record(path: Path, n: int, chunk: int, seed: int = 0, rois: int = 4) -> None:
    """``rois`` (4 or 2) rois of AR(1) noise (g = 0.9) plus a 10 Hz oscillation, roi 1 lagging
    roi 0 by 20 ms and roi 3 lagging roi 2 by 30 ms, written chunk by chunk (the AR(1) state
    carried)."""
    from scipy.signal import lfilter

    arr = zarr.create_array(path, shape=(rois, n), chunks=(rois, chunk), dtype="float32")
    rng = np.random.default_rng(seed)
    zi = np.zeros((rois, 1))
    lag = np.array([0.0, 0.02, 0.0, 0.03])[:rois, None]
    for i in range(0, n, chunk):
        m = min(chunk, n - i)
        noise, zi = lfilter([1.0], [1.0, -0.9], rng.standard_normal((rois, m)), axis=-1, zi=zi)
        t = (i + np.arange(m)) / FS
        arr[:, i : i + m] = (noise + 3.0 * np.sin(2 * np.pi * 10.0 * (t[None, :] - lag))).astype("float32")


#: Samples of the issue's recording (30 kHz for 24 h) and the core counts its cost is simulated on.
DAY_SAMPLES, CORES = 2.6e9, (1, 16, 64)


def run_coherence(args, n: int, workdir: Path) -> str:
    """The issue's coherence case on ``n`` samples; prints the measured row and the cost of one
    2.6e9-sample pair on 1, 16 and 64 cores simulated from the measured per-block costs."""
    from bioxen_dask.bench.pipeline import simulate
    from bioxen_dask.coherence import coherence

    pairs = PAIRS[: args.pairs]
    rois = 2 * len(pairs)
    path = workdir / "pairs.zarr"
    t0 = time.perf_counter()
    write_coherence_record(path, n, args.chunk, rois=rois)
    t_gen = time.perf_counter() - t0
    print(f"record of {rois} rois x {n:,} samples written in {t_gen:.1f} s (peak RSS so far "
          f"{peak_rss_mb():,.0f} MB)", flush=True)
    sig = xr.DataArray(da.from_zarr(str(path)), dims=("roi", "time"), attrs={"fs": FS})
    import logging

    class _Rss(logging.Filter):  # progress lines of the blocks with the peak so far
        def filter(self, record: logging.LogRecord) -> bool:
            record.rss = f"{time.perf_counter() - t0:,.0f} s, peak RSS {peak_rss_mb():,.0f} MB"
            return True

    handler = logging.StreamHandler()
    handler.addFilter(_Rss())
    handler.setFormatter(logging.Formatter("%(message)s (%(rss)s)"))
    log = logging.getLogger("bioxen_dask.coherence")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    cpu0 = time.process_time()  # CPU time of every thread: not inflated by waiting for a shared core
    t0 = time.perf_counter()
    with dask.config.set(scheduler="threads", num_workers=args.threads):
        ds = coherence(sig, pairs=pairs, min_period=PERIODS[0], max_period=PERIODS[1], dj=1 / 8,
                       significance=None, method=args.method, time_chunk=args.time_chunk, workers=1)
        t_build = time.perf_counter() - t0  # the scan and the streaming pass of moments
        cpu_build = time.process_time() - cpu0
        print(f"graph built (scan + moments pass) in {t_build:.1f} s: {ds.attrs['time_blocks']:,} time blocks, "
              f"{ds.attrs['tasks']} tasks; peak RSS so far {peak_rss_mb():,.0f} MB", flush=True)
        res = ds.compute()
    t_run = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    peak = peak_rss_mb()
    lag_ms = 1e3 * res.lag.sel(period=0.1, method="nearest").values
    # a block's cost is the CPU time of the computation (reads, halos, pairs, sums: every
    # thread) per block task: one pair chunk on one time block (the blocks run in waves on
    # a thread pool, not as tasks of this graph)
    chunks = len(ds.coherence_mean.chunks[0])
    n_tasks = ds.attrs["time_blocks"] * chunks
    cpu_compute = cpu - cpu_build
    n_own = n / ds.attrs["time_blocks"]
    print(f"lag at 0.1 s (ms): {lag_ms.round(2).tolist()}  ({ds.attrs['time_blocks']} time blocks of "
          f"{n_own:,.0f} samples + halo {ds.attrs['halo']})")
    per_block = cpu_compute / n_tasks  # one task: every pair of a pair chunk on one block
    k = DAY_SAMPLES / n_own  # blocks of one 2.6e9-sample pair
    # the pre-passes (scan, moments) read the record twice with the cheap per-chunk work
    # measured here, spread like the blocks; per task 1 ms of scheduler time
    pre = cpu_build / n * DAY_SAMPLES / len(pairs)
    stages = [{"name": "prepass", "durations": [pre / k] * int(k), "scheduler_s": 1e-3},
              {"name": "pair", "durations": [per_block / (len(pairs) / chunks)] * int(k), "scheduler_s": 1e-3}]
    print(f"per block: {per_block:.3f} CPU s for {len(pairs) / chunks:g} pair(s) ({n_tasks} block tasks); "
          f"one {DAY_SAMPLES:.2g}-sample pair = {int(k):,} blocks:")
    simulated = simulate(stages, CORES)
    for r in simulated:
        print(f"  {r['workers']:>3} cores: {r['job_s'] / 3600:,.2f} h (pair blocks {r['pair_s'] / 3600:,.2f} h, "
              f"pre-passes {r['prepass_s'] / 3600:,.2f} h)")
    rate = len(pairs) * n / t_run
    load = os.getloadavg()[0]
    print(f"load average during the run: {load:.1f} (timings under contention are pessimistic); CPU time "
          f"{cpu:,.1f} s: {len(pairs) * n / cpu:.3g} pair-samples per CPU second")
    if args.json:  # the report's long-record section (bioxen_dask.bench.report) reads this file
        import json

        path = Path(args.json)
        runs = json.loads(path.read_text()) if path.is_file() else {}
        import subprocess

        import bioxen_dask

        rev = subprocess.run(["git", "-C", str(Path(bioxen_dask.__file__).parent), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True).stdout.strip() or "unknown"
        runs[f"{n:.0e}-{args.method}-{args.threads}{'-1pair' if len(pairs) == 1 else ''}-{rev}"] = {
            "commit": rev,
            "samples": n, "pairs": len(pairs), "periods": int(ds.sizes["period"]), "method": args.method,
            "threads": args.threads, "time_blocks": int(ds.attrs["time_blocks"]), "halo": int(ds.attrs["halo"]),
            "peak_rss_mb": round(peak, 1), "wall_s": round(t_run, 2), "build_s": round(t_build, 2),
            "pair_samples_per_s": rate, "cpu_s": round(cpu, 2), "pair_samples_per_cpu_s": len(pairs) * n / cpu, "load_avg": round(load, 2), "machine": machine_label(machine_info()),
            "lag_ms": lag_ms.round(3).tolist(), "block_s": round(per_block, 4),
            "day_pair_h": {str(r["workers"]): round(r["job_s"] / 3600, 3) for r in simulated},
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(runs, indent=1, sort_keys=True) + "\n")
    print("| samples | pairs | periods | method | time blocks | threads | peak RSS | wall time | pair-samples/s "
          "| machine, date |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    return (f"| {n:.0e} | {len(pairs)} | {ds.sizes['period']} | {args.method} | {ds.attrs['time_blocks']} "
            f"| {args.threads} | {peak:,.0f} MB | {t_run:,.1f} s | {rate:,.3g} | {machine_label(machine_info())} |")


def run_workers(args, n: int, workdir: Path) -> None:
    """The coherence case on a local cluster of 1, then 2, ... single-thread worker processes
    (``--workers 1,2``): wall time side by side, the speedup, and each worker's peak RSS (its
    ``VmHWM``; the time blocks are tasks of their own, spread over the workers)."""
    import distributed

    from bioxen_dask.bench import peak_rss_mb as worker_peak
    from bioxen_dask.coherence import coherence

    pairs = PAIRS[: args.pairs]
    path = workdir / "pairs.zarr"
    write_coherence_record(path, n, args.chunk, rois=2 * len(pairs))
    walls = {}
    for w in [int(v) for v in args.workers.split(",")]:
        with distributed.LocalCluster(n_workers=w, threads_per_worker=1, processes=True, dashboard_address=None,
                                      memory_limit=0) as cluster, distributed.Client(cluster) as client:
            sig = xr.DataArray(da.from_zarr(str(path)), dims=("roi", "time"), attrs={"fs": FS})
            t0 = time.perf_counter()
            ds = coherence(sig, pairs=pairs, min_period=PERIODS[0], max_period=PERIODS[1], dj=1 / 8,
                           significance=None, method=args.method, time_chunk=args.time_chunk, workers=1)
            res = ds.compute()
            walls[w] = time.perf_counter() - t0
            peaks = sorted(client.run(worker_peak).values())
        lag = (1e3 * res.lag.sel(period=0.1, method="nearest").values).round(2).tolist()
        print(f"{w} worker(s) x 1 thread: {walls[w]:,.1f} s (scan, moments and blocks), "
              f"{len(pairs) * n / walls[w]:,.3g} pair-samples/s, {ds.attrs['time_blocks']} time blocks, "
              f"peak RSS per worker {', '.join(f'{v:,.0f}' for v in peaks)} MB, lag at 0.1 s {lag} ms", flush=True)
    ws = sorted(walls)
    for a, b in zip(ws[:-1], ws[1:]):
        print(f"from {a} to {b} workers: {walls[a] / walls[b]:.2f}x faster (load average "
              f"{os.getloadavg()[0]:.1f}; {machine_label(machine_info())})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kind", choices=("band_power", "coherence"), default="band_power")
    ap.add_argument("--method", choices=("exact", "multirate"), default="multirate", help="coherence only")
    ap.add_argument("--samples", type=float, default=1e9)
    ap.add_argument("--chunk", type=int, default=1_000_000, help="Zarr chunk (samples)")
    ap.add_argument("--time-chunk", type=int, default=None,
                    help="transform block (samples); default 250,000 (band power), the planner's (coherence)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", default=None, help="coherence: run on local clusters of these worker "
                    "counts (e.g. 1,2; 1 thread each) and print the speedup, instead of the threaded row")
    ap.add_argument("--pairs", type=int, choices=(1, 2), default=2, help="coherence: pairs (of 2 rois each)")
    ap.add_argument("--dir", default=None, help="where to write the temporary Zarr record")
    ap.add_argument("--out", default=None, help="append a Markdown result row to this file")
    ap.add_argument("--json", default=None, help="coherence: merge the run into this JSON file "
                    "(docs/benchmarks/coherence_long.json feeds docs/performance.md)")
    args = ap.parse_args()
    n = int(args.samples)
    workdir = Path(tempfile.mkdtemp(dir=args.dir, prefix="bench_memory_"))
    try:
        if args.kind == "coherence" and args.workers:
            run_workers(args, n, workdir)
            return
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
