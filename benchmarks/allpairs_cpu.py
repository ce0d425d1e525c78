"""CPU seconds per pair of all-pairs coherence on the shipped pipeline's grid (single thread).

    PYTHONPATH=. python benchmarks/allpairs_cpu.py --rois 12 --frames 18000 [--profile out.prof]

72 periods 0.5-30 s at 30 Hz (pipelines/calcium_coherence.yaml), ``method='multirate'``,
no significance, the synchronous scheduler (one thread): process CPU time / pairs.
"""
import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import xarray as xr

from bioxen_dask import coherence


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rois", type=int, default=12)
    ap.add_argument("--frames", type=int, default=18000)
    ap.add_argument("--roi-chunk", type=int, default=None)
    ap.add_argument("--profile", default=None)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((a.rois, a.frames))
    sig = xr.DataArray(x, dims=("roi", "time"), coords={"time": np.arange(a.frames) / 30})
    ds = coherence(sig, all_pairs=True, min_period=0.5, max_period=30, dj=1 / 12, method="multirate",
                   significance=None, roi_chunk=a.roi_chunk, workers=1)
    P = ds.sizes["pair"]
    t0, c0 = time.perf_counter(), time.process_time()
    if a.profile:
        import cProfile
        cProfile.runctx("ds.compute(scheduler='sync')", globals(), locals(), a.profile)
    else:
        ds.compute(scheduler="sync")
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"rois={a.rois} frames={a.frames} pairs={P} tasks={ds.attrs['tasks']} wall={wall:.2f}s cpu={cpu:.2f}s "
          f"cpu/pair={1e3 * cpu / P:.2f} ms")


if __name__ == "__main__":
    main()
