"""Soak test (not CI): many small pipelines back to back on one cluster; memory must stay flat.

One ``LocalCluster`` (worker processes, as ``bioxen-dask run`` starts it) serves every run.
Each run is a complete pipeline -- significance stage, region writes, completion marker --
into a fresh output that is deleted afterwards. After every run the script records the RSS
of this process (client and scheduler), of every worker, and the scheduler's task and
client-side future counts. After ``--warmup`` runs (imports, caches, allocator pools), the
least-squares slope of each memory series over the remaining runs must stay below
``--max-slope-mib`` MiB per run, and no task may be left on the scheduler: a leak of a few
hundred KiB per run (a cached graph, a held future, an unclosed store) shows up over 50 runs.

    python benchmarks/soak.py                         # 60 runs, 32 rois x 3,000 frames
    python benchmarks/soak.py --runs 200 --out soak.json

Exit status 0 when flat, 1 when a series grows (the JSON report says which).

distributed itself keeps a record of every computation it ever ran: the scheduler's spans
(each holding its task groups) are never forgotten, and every worker adds fine-performance
metrics keyed by span to ``digests_total`` (distributed 2026.8). That grows by roughly half a
MiB per pipeline here, whatever bioxen-dask does, and would hide a leak of ours; so between
runs, while the cluster is idle, the script drops those records (``--keep-spans`` keeps them,
to measure distributed's own growth: the report counts spans and digest entries either way).
distributed's *bounded* records fill up over the first minutes of a cluster's life and would
read as growth in a short soak: the worker's statistical profiler keeps one call tree per
second up to ``distributed.admin.low-level-log-length`` (1,000 by default, ~17 minutes), and
the scheduler keeps the last ``distributed.diagnostics.computations.max-history`` (100)
computations with their graphs, and the system monitor 7,200 samples (an hour). The soak caps
them (``--log-length``, default 10) and turns the profiler off, so that they are full by the end of the warm-up;
``--log-length 0`` leaves distributed's defaults. The report also counts the scheduler's task
prefixes and groups, which would grow without bound if task names carried a per-run token.

With ``--trace-top`` (2026-12-01, 45 runs, 32 rois x 3,000 frames, 2 workers) the sites that
grew most after the warm-up were all distributed's: comm frame buffers, the system monitor's
samples, ``key_split``'s LRU cache (one entry per new key, bounded) and the worker state
machine's task records; no bioxen_dask allocation was among the top ten.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def rss_mib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def slope(values: list[float]) -> float:
    """Least-squares slope per run (0 for fewer than 2 points)."""
    if len(values) < 2:
        return 0.0
    x = np.arange(len(values), dtype=float)
    return float(np.polyfit(x, np.asarray(values, dtype=float), 1)[0])


def forget_spans(dask_scheduler) -> int:
    """Drop the scheduler's record of finished computations (spans); returns how many there were.

    Only called when no task is left on the scheduler, so no live task refers to a span.
    """
    ext = dask_scheduler.extensions.get("spans")
    if ext is None or dask_scheduler.tasks:
        return 0
    n = len(ext.spans)
    ext.spans.clear()
    ext.root_spans.clear()
    ext.spans_search_by_name.clear()
    ext.spans_search_by_tag.clear()
    return n


def forget_metrics(dask_worker) -> int:
    """Drop a worker's per-span performance metrics; returns how many entries there were.

    The metrics not yet sent with a heartbeat go too: the scheduler would look up their
    spans (``KeyError`` there closes the worker) once :func:`forget_spans` has dropped them.
    Called before :func:`forget_spans`, while the cluster is idle.
    """
    n = len(dask_worker.digests_total)
    dask_worker.digests_total.clear()
    dask_worker.digests_max.clear()
    dask_worker.digests_total_since_heartbeat.clear()
    ext = dask_worker.extensions.get("spans")
    if ext is not None:
        ext.digests_total_since_heartbeat = {}
    return n


_SNAPSHOT: list = []


def trace_start() -> None:
    """Start tracing allocations in this process (a worker) and keep a first snapshot."""
    import tracemalloc

    tracemalloc.start(8)
    _SNAPSHOT[:] = [tracemalloc.take_snapshot()]


def trace_growth(top: int = 10) -> list[str]:
    """The ``top`` allocation sites that grew most since :func:`trace_start` (tracebacks)."""
    import tracemalloc

    stats = tracemalloc.take_snapshot().compare_to(_SNAPSHOT[0], "traceback")
    out = []
    for st in stats[:top]:
        frames = [f"{f.filename.split('site-packages/')[-1]}:{f.lineno}" for f in st.traceback[-4:]]
        out.append(f"{st.size_diff / 2**10:+.0f} KiB in {st.count_diff:+d} blocks at " + " <- ".join(reversed(frames)))
    return out


def count_spans(dask_scheduler) -> int:
    ext = dask_scheduler.extensions.get("spans")
    return 0 if ext is None else len(ext.spans)


def count_metrics(dask_worker) -> int:
    return len(dask_worker.digests_total)


def count_prefixes(dask_scheduler) -> tuple[int, int]:
    return len(dask_scheduler.task_prefixes), len(dask_scheduler.task_groups)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=10, help="runs left out of the slope")
    ap.add_argument("--rois", type=int, default=32)
    ap.add_argument("--frames", type=int, default=3000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--maps", action="store_true", help="also write coherence/phase maps")
    ap.add_argument("--max-slope-mib", type=float, default=0.1, help="allowed growth, MiB per run")
    ap.add_argument("--keep-spans", action="store_true",
                    help="keep distributed's per-computation records (spans, span metrics) between runs")
    ap.add_argument("--trace-top", type=int, default=0, metavar="N",
                    help="after the warm-up, trace allocations (tracemalloc) in this process and the workers "
                         "and report the N sites that grew most (slows the runs)")
    ap.add_argument("--log-length", type=int, default=10, metavar="N",
                    help="cap distributed's bounded logs and computation history at N and turn the worker "
                         "profiler off (0: distributed's defaults)")
    ap.add_argument("--dir", default=None, help="working folder (default: a temporary one)")
    ap.add_argument("--out", default=None, help="write the JSON report here too")
    args = ap.parse_args(argv)
    if args.runs <= args.warmup + 2:
        ap.error("--runs must exceed --warmup by at least 3")

    from bioxen_dask.cluster import ClusterConfig, connect
    from bioxen_dask.io import write_synthetic
    from bioxen_dask.pipeline import load_pipeline, run_pipeline

    work = Path(tempfile.mkdtemp(prefix="bioxen_soak_", dir=args.dir))
    t_start = time.perf_counter()
    samples: list[dict] = []
    try:
        store = write_synthetic(work / "signals.zarr", n_rois=args.rois, n_frames=args.frames, seed=1)
        base = {
            "input": {"store": str(store)},
            "grid": {"min_period": 1.0, "max_period": 12.0, "dj": 0.25},
            "pairs": {"mode": "reference", "reference": "stimulus"},
            "significance": {"mc_count": 20, "cache": str(work / "cache")},
            "outputs": {"path": str(work / "out.zarr"), "maps": bool(args.maps)},
            "compute": {"roi_chunk": 4},
        }
        config = ClusterConfig(kind="local", n_workers=args.workers, threads_per_worker=1)
        import dask

        bounded = {} if args.log_length <= 0 else {
            "distributed.admin.low-level-log-length": args.log_length,
            "distributed.diagnostics.computations.max-history": args.log_length,
            "distributed.admin.system-monitor.log-length": args.log_length,
            "distributed.worker.profile.enabled": False,
        }
        with dask.config.set(bounded), connect(config) as client:
            scheduler = client.cluster.scheduler
            for i in range(args.runs):
                if args.trace_top and i == args.warmup:
                    trace_start()
                    client.run(trace_start)
                out = work / f"out-{i}.zarr"
                t0 = time.perf_counter()
                summary = run_pipeline(load_pipeline(base, [("outputs.path", str(out))]), progress=False)
                wall = time.perf_counter() - t0
                write = summary["write"]
                if write["written"] != write["regions"]:
                    raise RuntimeError(f"run {i}: {write}")
                shutil.rmtree(out)
                time.sleep(0.2)  # let released keys reach the scheduler
                spans = client.run_on_scheduler(count_spans)
                metrics = sum(client.run(count_metrics).values())
                if not args.keep_spans:
                    client.run(forget_metrics)  # workers first: nothing left to report on a forgotten span
                    client.run_on_scheduler(forget_spans)
                gc.collect()
                client.run(gc.collect)
                workers = client.run(rss_mib)
                prefixes, groups = client.run_on_scheduler(count_prefixes)
                samples.append({
                    "run": i, "wall_s": round(wall, 3), "client_scheduler_mib": round(rss_mib(), 2),
                    "workers_mib": {k: round(v, 2) for k, v in sorted(workers.items())},
                    "scheduler_tasks": len(scheduler.tasks), "client_futures": len(client.futures),
                    "scheduler_spans": spans, "worker_metric_entries": metrics,
                    "scheduler_task_prefixes": prefixes, "scheduler_task_groups": groups,
                })
                print(json.dumps(samples[-1]), file=sys.stderr, flush=True)
            traced = ({"client_scheduler": trace_growth(args.trace_top),
                       **client.run(trace_growth, args.trace_top)} if args.trace_top else None)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    steady = samples[args.warmup:]
    series = {"client_scheduler_mib": [s["client_scheduler_mib"] for s in steady]}
    for name in samples[0]["workers_mib"]:
        series[f"worker {name}"] = [s["workers_mib"].get(name, np.nan) for s in steady]
    slopes = {k: round(slope(v), 4) for k, v in series.items()}
    growth = {k: round(v[-1] - v[0], 2) for k, v in series.items()}
    leftover = max(s["scheduler_tasks"] for s in steady), max(s["client_futures"] for s in steady)
    flat = all(abs(v) <= args.max_slope_mib for v in slopes.values()) and leftover == (0, 0)
    report = {
        "benchmark": "soak: back-to-back pipelines on one LocalCluster",
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "runs": args.runs, "warmup": args.warmup, "rois": args.rois, "frames": args.frames,
        "workers": args.workers, "maps": bool(args.maps), "keep_spans": bool(args.keep_spans),
        "log_length": args.log_length,
        "task_prefixes_first_last": [samples[0]["scheduler_task_prefixes"], samples[-1]["scheduler_task_prefixes"]],
        "task_groups_first_last": [samples[0]["scheduler_task_groups"], samples[-1]["scheduler_task_groups"]],
        "spans_per_run": round(float(np.median(np.diff([s["scheduler_spans"] for s in samples])))
                               if args.keep_spans else float(np.median([s["scheduler_spans"] for s in samples])), 1),
        "median_run_s": round(float(np.median([s["wall_s"] for s in samples])), 3),
        "total_s": round(time.perf_counter() - t_start, 1),
        "slope_mib_per_run": slopes,
        "growth_mib_over_steady_runs": growth,
        "start_mib": {k: v[0] for k, v in series.items()},
        "max_scheduler_tasks_after_a_run": leftover[0],
        "max_client_futures_after_a_run": leftover[1],
        "max_slope_mib": args.max_slope_mib,
        "flat": flat,
    }
    if traced is not None:
        report["allocation_growth_after_warmup"] = traced
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0 if flat else 1


if __name__ == "__main__":
    sys.exit(main())
