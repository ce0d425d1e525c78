"""CPU seconds per pair of all-pairs coherence on the shipped pipeline's grid (single thread).

    PYTHONPATH=. python benchmarks/allpairs_cpu.py --rois 12 --frames 18000 [--profile out.prof]

72 periods 0.5-30 s at 30 Hz (pipelines/calcium_coherence.yaml), ``method='multirate'``,
no significance, the synchronous scheduler (one thread): process CPU time / pairs.

Without maps the pairs make no full-rate map (``MultirateCoherence.pair_sums`` in batches of
pairs sharing a first roi; phase sums as one complex product per scale of the rois' unit
phasors, ``MultirateCoherence.phasor_sums``). Measured 2026-12-07/08 on the 2-core VM (24 GiB)
while other jobs kept its load at 5-9 (CPU times are inflated by that contention: the old
kernel gave 15.9 ms at 40 rois on a quieter day and 37-47 ms here), old and new run
alternately in one session:

    rois  pairs  main db0bf36 (ms/pair)  allpairs-speed (ms/pair)
    12    66     47.0, 37.1              23.9, 27.1
    40    780    42.1                    25.7

(ratio ~1.6x). Profile after (12 rois): per-pair coherence sums ~71% of the CPU (band
smoothing FFTs and products ~19%, full-rate interpolation GEMMs ~21%, ratio/clip/sums ~14%,
interpolation windows ~5%), phase sums ~13%, the rois' shares ~13%.
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
