"""Peak memory of a streamed band-power reduction over a very long record.

Generates an N-sample white-noise record into Zarr chunk by chunk (never whole in memory),
computes the scale-averaged power of two period bands with 24 scales through
``bioxen_dask.graph.band_power`` on the threaded scheduler, and reports the peak RSS of the
process and the wall time, against the size the full complex64 transform would have.

    python benchmarks/bench_memory.py --samples 1e9            # the issue's 1e9-sample case
    python benchmarks/bench_memory.py --samples 2e7 --out docs/benchmarks/memory.md
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=float, default=1e9)
    ap.add_argument("--chunk", type=int, default=1_000_000, help="Zarr chunk (samples)")
    ap.add_argument("--time-chunk", type=int, default=250_000, help="transform block (samples)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dir", default=None, help="where to write the temporary Zarr record")
    ap.add_argument("--out", default=None, help="append a Markdown result row to this file")
    args = ap.parse_args()
    n = int(args.samples)
    workdir = Path(tempfile.mkdtemp(dir=args.dir, prefix="bench_memory_"))
    try:
        path = workdir / "long.zarr"
        arr = zarr.create_array(path, shape=(1, n), chunks=(1, args.chunk), dtype="float32")
        rng = np.random.default_rng(0)
        t0 = time.perf_counter()
        for i in range(0, n, args.chunk):
            arr[0, i : i + args.chunk] = rng.standard_normal(min(args.chunk, n - i)).astype("float32")
        t_gen = time.perf_counter() - t0
        sig = xr.DataArray(da.from_zarr(str(path)), dims=("roi", "time"))
        grid = make_grid(n, 1.0, dj=0.25, J=23)
        out = band_power(sig, [(4.0, 16.0), (16.0, 64.0)], dt=1.0, dj=0.25, J=23, time_chunk=args.time_chunk)
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
