"""The ``bioxen-dask`` command line."""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Iterator, Sequence

__all__ = ["main"]


def _demo_ao_baltic(args: argparse.Namespace) -> int:
    """Single-pair analysis of Grinsted's AO/Baltic pair with Monte Carlo significance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from . import wavelet_coherence
    from .grid import make_grid
    from .plot import plot_coherence
    from .sample_data import load_ao_baltic
    from .significance import ar1_allen_smith, ar1_thresholds

    out = Path(args.out)
    pair_dir = out / "ao_baltic"
    if pair_dir.exists():
        shutil.rmtree(pair_dir)
    pair_dir.mkdir(parents=True)
    t0 = time.perf_counter()
    years, ao, baltic = load_ao_baltic()
    ds = wavelet_coherence(ao, baltic, dt=1.0, dtype="float64")
    g1, g2 = ar1_allen_smith(ao)[0], ar1_allen_smith(baltic)[0]
    grid = make_grid(ao.size, 1.0)
    threshold = ar1_thresholds(grid, g1, g2, mc_count=args.surrogates, levels=0.95, seed=args.seed,
                               progress=not args.no_progress, scale_kernel="pycwt", boundary="pycwt")
    ds = ds.assign_coords(time=years)
    ds["threshold"] = ("period", threshold, {"long_name": "95% coherence threshold (AR(1) Monte Carlo)"})
    outside = ds.period <= ds.coi
    ds["significant_fraction"] = ((ds.coherence >= ds.threshold) & outside).sum("time") / outside.sum("time")
    ds.attrs.update(ar1_ao=g1, ar1_baltic=g2, surrogates=args.surrogates, seed=args.seed)
    tmp = pair_dir / "coherence.zarr.partial"
    ds.to_zarr(tmp, mode="w", consolidated=False)
    tmp.rename(pair_dir / "coherence.zarr")  # complete only once fully written
    fig, ax = plt.subplots(figsize=(10, 4.8), constrained_layout=True)
    plot_coherence(ds, threshold=threshold, ax=ax, time_units="yr",
                   title="Arctic Oscillation vs Baltic ice extent: wavelet coherence (95% AR(1) contour)")
    fig.savefig(pair_dir / "coherence.png", dpi=120)
    plt.close(fig)
    sig = ds.significant_fraction
    best = sig.idxmax().item()
    summary = {
        "pair": "AO vs Baltic ice extent (Grinsted et al. 2004), annual",
        "years": [int(years[0]), int(years[-1])],
        "ar1": {"ao": round(g1, 4), "baltic": round(g2, 4)},
        "surrogates": args.surrogates,
        "period_with_most_significant_coherence_yr": round(float(best), 2),
        "significant_fraction_there": round(float(sig.max()), 3),
        "wall_time_s": round(time.perf_counter() - t0, 2),
        "outputs": sorted(str(p) for p in pair_dir.iterdir()),
    }
    (pair_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    return 0


def _cmd_synth(args: argparse.Namespace) -> int:
    """Synthetic calcium data with planted coherent groups, written as a signals store."""
    from .io import write_synthetic

    path = write_synthetic(args.out, n_rois=args.rois, n_frames=args.frames, fs=args.fs,
                           seed=args.seed, overwrite=args.overwrite)
    print(json.dumps(_info(path), indent=2, default=str))
    return 0


def _cmd_ingest(args: argparse.Namespace) -> int:
    """Convert suite2p / NWB / CaImAn / npy / HDF5 / Zarr / CSV-TSV traces into a signals store."""
    from .io import ingest

    dff_options = {k: v for k, v in (("dff_window_s", args.dff_window), ("dff_percentile", args.dff_percentile))
                   if v is not None}
    if dff_options and not args.dff:
        raise ValueError("--dff-window and --dff-percentile set the dF/F baseline: add --dff, or drop them.")
    path = ingest(args.source, args.out, format=args.format, fs=args.fs,
                  neuropil_coefficient=args.neuropil, cells_only=not args.all_rois, dff=args.dff,
                  dataset=args.dataset, overwrite=args.overwrite, allow_pickle=args.allow_pickle,
                  nan_policy=args.nan_policy, layout=args.layout, **dff_options)
    print(json.dumps(_info(path), indent=2, default=str))
    return 0


def _info(path: str | Path) -> dict:
    from .io import store_info

    return store_info(path)


def _cmd_info(args: argparse.Namespace) -> int:
    """What a signals store (or a coherence result store) holds: a summary, or JSON (--json)."""
    from .datasets import damaged_regions, result_info, result_status

    if result_status(args.store)["is_result"]:
        info = result_info(args.store)
        if args.verify:
            info["damaged_regions"] = damaged_regions(args.store) if info.get("complete") is True else []
            info["verified"] = info.get("complete") is True and not info["damaged_regions"]
        print(json.dumps(info, indent=2, default=str) if args.json else _result_summary(info))
        if args.verify and info["damaged_regions"]:
            from .pipeline import _region_list

            _eprint(f"{args.store}: {len(info['damaged_regions'])} of {info['regions']} regions no longer match "
                    f"their checksums: {_region_list(info['damaged_regions'])}. A re-run of the pipeline that "
                    "wrote it recomputes these regions only.")
        return 0 if not args.verify or info["verified"] else 1
    if args.verify:
        raise ValueError(f"--verify re-reads a coherence result against its checksums; {args.store} is not one "
                         "(a signals store is checked whenever it is opened).")
    info = _info(args.store)
    print(json.dumps(info, indent=2, default=str) if args.json else _store_summary(info))
    return 0


def _result_summary(info: dict) -> str:
    """``info`` of a coherence result, for a person."""
    par = info.get("parameters", {})
    state = "complete" if info.get("complete") else (f"INCOMPLETE ({info.get('regions_done')} of "
                                                     f"{info.get('regions')} regions written; re-run to resume)")
    if "verified" in info:
        state += ", verified" if info["verified"] else f", DAMAGED ({len(info['damaged_regions'])} regions)"
    sizes = {d: n for v in info.get("variables", {}).values() for d, n in zip(v["dims"], v["shape"])}
    mode = par.get("mode", "?") + (f" against {par['reference']!r}" if par.get("reference") else "")
    lines = [
        f"coherence result {info['path']}: {state}",
        f"  {mode}: {sizes.get('pair', '?')} pairs x {sizes.get('period', '?')} periods "
        f"({par.get('period_min', 0):.4g}..{par.get('period_max', 0):.4g} s), {par.get('n_rois', '?')} rois x "
        f"{par.get('n_samples', '?')} samples in the input",
        f"  input: {par.get('input_store', 'not recorded')} ({str(par.get('input_fingerprint', ''))[:19] or '-'})",
        f"  significance: {par.get('significance', 'none')}"
        + (f", level {par['significance_level']:g}, mc_count {par.get('mc_count')}"
           if "significance_level" in par else ""),
        f"  grid: preset {par.get('preset')}, boundary {par.get('boundary')}, {par.get('dtype')}; written by "
        f"bioxen-dask {par.get('bioxen_dask_version', '?')}",
        "  variables: " + ", ".join(f"{k} ({', '.join(v['dims'])})" for k, v in info.get("variables", {}).items()),
    ]
    return "\n".join(lines)


def _store_summary(info: dict) -> str:
    """``store_info`` of a signals store, for a person."""
    state = "complete" if info.get("complete") else "INCOMPLETE (an interrupted write: ingest or synth it again)"
    lines = [
        f"signals store {info['path']}: {state}",
        f"  {info['n_rois']} rois x {info['n_frames']} frames at {info['fs']:g} Hz ({info['duration_s']:g} s), "
        f"{info['dtype']}, units {info.get('units')}",
        f"  source: {info.get('source') or '-'} ({info.get('source_format') or '-'})",
        f"  references: {', '.join(info.get('references') or []) or 'none'}",
        f"  preprocessing: {'; '.join(info.get('preprocessing') or []) or 'none'}",
        f"  missing samples: {info.get('missing_samples')}; {info['size_bytes'] / 2**20:.1f} MiB in "
        f"{info['n_chunks']} chunks",
    ]
    return "\n".join(lines)


def _eprint(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _cluster_overrides(args: argparse.Namespace) -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    if getattr(args, "scheduler", None):
        out += [("cluster.kind", "address"), ("cluster.address", args.scheduler)]
    if getattr(args, "cluster", None):
        if args.scheduler and args.cluster != "address":
            raise ValueError(f"--scheduler needs --cluster address (or no --cluster), not {args.cluster!r}.")
        out.append(("cluster.kind", args.cluster))
    return out


def _cpu_seconds() -> float:
    import psutil

    t = psutil.Process().cpu_times()
    return float(t.user + t.system)


def _worker_cpu(client) -> float | None:
    """CPU seconds (user + system) used so far by all worker processes (None if unknown)."""
    try:
        return float(sum(client.run(_cpu_seconds).values()))
    except Exception:  # pragma: no cover - workers without psutil, or gone
        return None


#: Loggers whose shutdown noise (AllExit, CancelledError, worker KeyboardInterrupt) follows a Ctrl-C.
_NOISY_LOGGERS = ("distributed", "tornado", "asyncio")

#: Exit status of a run stopped by Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130


class _Silencer:
    """Raise the level of :data:`_NOISY_LOGGERS` (and every ``distributed.*`` logger) to CRITICAL
    while a cluster shuts down after an interrupt; :meth:`restore` puts the levels back."""

    def __init__(self) -> None:
        self._saved: dict[str, int] | None = None

    def silence(self) -> None:
        import logging

        if self._saved is not None:
            return
        names = set(_NOISY_LOGGERS) | {n for n in logging.root.manager.loggerDict
                                       if n.startswith(tuple(f"{x}." for x in _NOISY_LOGGERS))}
        self._saved = {}
        for name in sorted(names):
            logger = logging.getLogger(name)
            self._saved[name] = logger.level
            logger.setLevel(logging.CRITICAL + 1)

    def restore(self) -> None:
        import logging

        for name, level in (self._saved or {}).items():
            logging.getLogger(name).setLevel(level)
        self._saved = None


def _silence_here() -> None:
    """On a worker: no more log records from :data:`_NOISY_LOGGERS` (it is about to be shut down)."""
    _Silencer().silence()


def _silence_workers(client, timeout: float = 2.0) -> None:
    """Silence the workers' own distributed logging (their "ended with CancelledError" warnings)
    before the cluster is torn down; gives up after ``timeout`` seconds (a stuck scheduler)."""

    def run() -> None:
        with contextlib.suppress(BaseException):
            client.run(_silence_here, on_error="ignore")

    thread = threading.Thread(target=run, name="bioxen-dask-silence-workers", daemon=True)
    thread.start()
    thread.join(timeout)


@contextlib.contextmanager
def _sigint_ignored_in_children() -> Iterator[None]:
    """Ignore SIGINT while worker processes are started, so they inherit "ignore": Ctrl-C reaches
    the whole process group, and only this process should handle it (it shuts the workers down)
    instead of every worker printing its own KeyboardInterrupt traceback."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _interrupted_message(pipeline) -> str:
    """The one line printed after Ctrl-C: what state the result is in and how to go on."""
    from .datasets import result_status

    out = Path(pipeline.config["outputs"]["path"])
    try:
        status = result_status(out)
    except Exception:  # pragma: no cover - unreadable output: the generic advice still holds
        status = {"exists": out.exists(), "is_result": False, "complete": False}
    if status.get("is_result") and status.get("complete"):
        return (f"interrupted: the result in {out} is complete, its summary or figures may not be; re-run "
                "the same command to write them (nothing is recomputed)")
    if status.get("is_result"):
        return (f"interrupted: the partial result in {out} is marked incomplete; re-run the same command "
                "to resume")
    return f"interrupted before anything was written to {out}; re-run the same command to start again"


def _run_checked(pipeline, args: argparse.Namespace) -> dict:
    """Start (or reach) the cluster the pipeline names, run it there, shut down what was started.

    After Ctrl-C the cluster is shut down with distributed's logging silenced (its shutdown
    prints hundreds of lines of tracebacks otherwise) and the KeyboardInterrupt goes on to the
    caller.
    """
    from .cluster import connect, dashboard_link, worker_environment

    config = pipeline.cluster_config()
    silencer = _Silencer()
    with contextlib.ExitStack() as stack:
        stack.callback(silencer.restore)  # last, after the cluster is shut down
        stack.enter_context(worker_environment(config))
        with _sigint_ignored_in_children():
            client = stack.enter_context(connect(config))
        try:
            return _run_on(client, config, pipeline, args, dashboard_link)
        except KeyboardInterrupt:
            silencer.silence()  # before the stack shuts the cluster down
            _silence_workers(client)
            raise


def _run_on(client, config, pipeline, args: argparse.Namespace, dashboard_link) -> dict:
    """Run a checked pipeline on ``client``'s cluster; the summary with the cluster's size."""
    from .pipeline import run_pipeline

    link = dashboard_link(client)
    workers = client.scheduler_info(n_workers=-1)["workers"]
    threads = sum(w.get("nthreads", 0) for w in workers.values())
    _eprint(f"dask {config.kind} cluster at {client.scheduler.address}: {len(workers)} workers, "
            f"{threads} threads; dashboard: {link or 'disabled'}")
    before = _worker_cpu(client)
    summary = run_pipeline(pipeline, progress=not args.no_progress, log=_eprint)
    after = _worker_cpu(client)
    summary["cluster"] = {"kind": config.kind, "workers": len(workers), "threads": threads,
                          "dashboard": link}
    if before is not None and after is not None:
        summary["worker_cpu_time_s"] = round(after - before, 1)
    return summary


def _cmd_run(args: argparse.Namespace) -> int:
    """Run a pipeline YAML: check it, connect to the cluster, compute, write results."""
    from .pipeline import check, damage_report, load_pipeline, parse_overrides, scan_inputs

    overrides = parse_overrides(args.set) + _cluster_overrides(args)
    pipeline = load_pipeline(args.pipeline, overrides)
    check(pipeline)  # everything verifiable without computing, before any cluster starts
    if args.check:
        facts = pipeline.facts
        report = {"pipeline": args.pipeline, "ok": True, "action": facts["action"], "n_rois": facts["n_rois"],
                  "n_rois_selected": facts["n_rois"] if facts["rois"] is None else int(facts["rois"].size),
                  "n_pairs": facts["n_pairs"], "n_frames": facts["n_frames"], "n_scales": facts["n_scales"]}
        if args.no_scan:
            report["data"] = "not read (--no-scan: metadata only)"
        else:
            report.update(scan_inputs(pipeline, progress=not args.no_progress))
            damaged = damage_report(pipeline)
            if damaged:
                from .pipeline import _region_list

                report.update(action="repair", damaged_regions=damaged)
                _eprint(f"{pipeline.config['outputs']['path']}: {len(damaged)} of "
                        f"{_result_regions(pipeline)} regions damaged since written "
                        f"({_region_list(damaged)}); the run recomputes those only")
        print(json.dumps(report, indent=2))
        return 0
    try:
        summary = _run_checked(pipeline, args)
    except KeyboardInterrupt:
        _eprint(_interrupted_message(pipeline))
        return EXIT_INTERRUPTED
    print(json.dumps(summary, indent=2, default=str))
    return 0


def _result_regions(pipeline) -> int | None:
    from .datasets import result_status

    return result_status(pipeline.config["outputs"]["path"])["regions"]


def _cmd_demo(args: argparse.Namespace) -> int:
    """The main job on synthetic data: synthesise, run the reference pipeline, report recovery."""
    if args.ao_baltic:
        args.surrogates = 300 if args.surrogates is None else args.surrogates
        return _demo_ao_baltic(args)
    if args.all_pairs:
        from ._demo_networks import run_demo

        summary = run_demo(args.out, n_rois=args.rois or 48, n_frames=args.frames or 9000, fs=args.fs, seed=args.seed,
                           mc_count=30 if args.surrogates is None else args.surrogates, progress=not args.no_progress)
        print(json.dumps(summary, indent=2))
        return 0
    args.rois, args.frames = args.rois or 2000, args.frames or 18000
    import os
    import platform

    import dask

    from .io import write_synthetic
    from .pipeline import check, load_pipeline, parse_overrides, repo_file

    t0 = time.perf_counter()
    cpu0 = _cpu_seconds()
    load0 = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pipeline_file = Path(args.pipeline) if args.pipeline else repo_file("pipelines", "calcium_coherence.yaml")
    if pipeline_file is None or not pipeline_file.is_file():
        raise FileNotFoundError("pipelines/calcium_coherence.yaml not found; run the demo from the repository "
                                "root or pass --pipeline FILE.")
    store = out / "signals.zarr"
    _eprint(f"synthesising {args.rois} rois x {args.frames} frames at {args.fs:g} Hz -> {store}")
    write_synthetic(store, n_rois=args.rois, n_frames=args.frames, fs=args.fs, seed=args.seed, overwrite=True)
    t_synth = time.perf_counter() - t0
    overrides = [
        ("input.store", str(store)), ("outputs.path", str(out / "coherence.zarr")), ("outputs.overwrite", True),
        ("outputs.figures", str(out)), ("outputs.summary", None),
    ] + parse_overrides(args.set) + _cluster_overrides(args)
    pipeline = check(load_pipeline(pipeline_file, overrides))
    try:
        summary = _run_checked(pipeline, args)
    except KeyboardInterrupt:
        _eprint(_interrupted_message(pipeline))
        return EXIT_INTERRUPTED
    wall = time.perf_counter() - t0
    report = {
        "demo": f"reference-mode coherence of {args.rois} synthetic rois x {args.frames} frames "
                f"({args.frames / args.fs:g} s at {args.fs:g} Hz) against the stimulus, with AR(1) significance",
        "precision": summary.get("precision"),
        "recall": summary.get("recall"),
        "wall_time_s": round(wall, 2),
        "cpu_time_s": {"this_process": round(_cpu_seconds() - cpu0, 1),
                       "workers": summary.get("worker_cpu_time_s")},
        "synthesis_s": round(t_synth, 2),
        "pipeline_s": summary.get("wall_time_s"),
        "rule": summary.get("rule"),
        "groups": summary.get("groups"),
        "pipeline": str(pipeline_file),
        "grid": {"periods": summary.get("periods"), "period_range_s": summary.get("period_range_s")},
        "mc_count": pipeline.get("significance.mc_count"),
        "cluster": summary.get("cluster"),
        "machine": {"cpus": dask.system.CPU_COUNT, "python": platform.python_version(),
                    "load_average_1min": {"start": load0, "end": os.getloadavg()[0] if load0 is not None else None}},
        "outputs": sorted(str(p) for p in out.iterdir() if p.name != "summary.json") + [str(out / "summary.json")],
    }
    (out / "summary.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0


def _bench_here(run_benchmark, name: str, out: str, quick: bool, options: dict | None = None
                ) -> tuple[str | None, str | None]:
    """``(csv path, None)``, or ``(None, why)`` for a benchmark that cannot run here."""
    try:
        return str(run_benchmark(name, out, quick=quick, **(options or {}))), None
    except (RuntimeError, ImportError) as exc:
        return None, str(exc)


def _bench_child(name: str, out: str, quick: bool, conn) -> None:
    from .bench import run_benchmark

    conn.send(_bench_here(run_benchmark, name, out, quick))
    conn.close()


def _bench_in_child(name: str, out: str, quick: bool) -> tuple[str | None, str | None]:
    """:func:`_bench_here` in a fresh (spawned) process; a crash is reported as its exit status."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_bench_child, args=(name, out, quick, child), name=f"bench-{name}")
    proc.start()
    child.close()
    try:
        result = parent.recv()
    except EOFError:  # the child died before it could answer
        result = None
    proc.join()
    if result is None or proc.exitcode:
        return None, f"its process ended with status {proc.exitcode} (killed for memory if -9)"
    return result


def _count_list(text: str, option: str) -> list[float]:
    """``"1e4,1e5"`` -> ``[1e4, 1e5]`` (whole numbers checked by the benchmark)."""
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{option} takes comma-separated numbers, e.g. {option} 1e4,1e5,1e6; got {text!r}.") from None


def _cmd_bench(args: argparse.Namespace) -> int:
    """Run benchmarks of :mod:`bioxen_dask.bench` (CSV + figures), then the report."""
    from .bench import BENCHMARKS, run_benchmark
    from .bench.report import REFRESHABLE, build_report, refresh_sections

    names = list(BENCHMARKS) if args.name == "all" else ([] if args.name == "report" else [args.name])
    options = {k: _count_list(v, f"--{k}") for k in ("sizes", "scales") if (v := getattr(args, k, None))}
    if getattr(args, "max_seconds", None) is not None:
        options["max_seconds"] = args.max_seconds
    if options and args.name != "cwt":
        raise ValueError(f"--sizes/--scales/--max-seconds set the matrix of `bench cwt` only, not "
                         f"`bench {args.name}`.")
    only = [s.strip() for s in args.only.split(",")] if getattr(args, "only", None) else None
    sections = [s for s in only or () if s in REFRESHABLE]  # sections rebuilt from their JSON
    if sections:
        if args.name != "report":
            raise ValueError(f"--only goes with `bench report` (got `bench {args.name}`); e.g. "
                             "`bioxen-dask bench report --only allpairs`.")
        _eprint(f"wrote {refresh_sections(sections, args.out, args.docs)}")
        only = [s for s in only if s not in REFRESHABLE]
        if not only:
            return 0
    failed = []
    for name in names:
        _eprint(f"== bench {name}")
        if args.name == "all":  # each in a fresh process: what one leaves (fCWT leaks) cannot crowd the next
            path, error = _bench_in_child(name, args.out, args.quick)
        else:
            path, error = _bench_here(run_benchmark, name, args.out, args.quick, options)
        if error is not None:  # `gpu` without a CUDA device: reported, never a silent fallback
            failed.append(f"{name}: {error}")
            if args.name == "all":  # the others go on; a benchmark asked for alone is an error
                _eprint(f"bench {name}: not run: {error}")
            continue
        _eprint(f"wrote {path}")
    if args.name in ("all", "report") or args.report:
        report = build_report(args.out, args.docs, only=only)
        _eprint(f"wrote {report}" + (f" (sections of {', '.join(only)} only)" if only else ""))
    if failed and args.name != "all":
        raise ValueError("; ".join(failed))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bioxen-dask",
        description="Wavelet coherence with Monte Carlo significance, at whole-brain scale.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a pipeline YAML (coherence of many pairs, with significance)")
    run.add_argument("pipeline", help="pipeline file, e.g. pipelines/calcium_coherence.yaml")
    run.add_argument("--scheduler", metavar="ADDRESS", help="use a running Dask scheduler (tcp://HOST:PORT)")
    run.add_argument("--cluster", choices=("local", "address", "slurm", "pbs", "gateway", "cuda"),
                     help="deployment kind (overrides the pipeline's cluster.kind)")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a pipeline key, e.g. --set grid.max_period=20 (repeatable)")
    run.add_argument("--check", action="store_true",
                     help="only validate the pipeline and its inputs: metadata, then one read of the traces "
                          "it analyses (missing samples, constant traces), without starting a cluster")
    run.add_argument("--no-scan", action="store_true",
                     help="with --check: metadata only, do not read the traces")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.set_defaults(func=_cmd_run)

    demo = sub.add_parser("demo", help="synthesise calcium data, run the reference pipeline, report recovery")
    demo.add_argument("--out", default="demo-output", help="output folder (default demo-output)")
    demo.add_argument("--rois", type=int, default=None, help="synthetic rois (default 2000; --all-pairs: 48)")
    demo.add_argument("--frames", type=int, default=None,
                      help="frames per roi (default 18000: 10 min at 30 Hz; --all-pairs: 9000)")
    demo.add_argument("--fs", type=float, default=30.0, help="frame rate (Hz, default 30)")
    demo.add_argument("--seed", type=int, default=0, help="random seed of the synthetic data (default 0)")
    demo.add_argument("--pipeline", default=None, help="pipeline file (default pipelines/calcium_coherence.yaml)")
    demo.add_argument("--scheduler", metavar="ADDRESS", help="use a running Dask scheduler")
    demo.add_argument("--cluster", choices=("local", "address", "slurm", "pbs", "gateway", "cuda"),
                      help="deployment kind (default: the pipeline's cluster.kind, local)")
    demo.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a pipeline key")
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")
    demo.add_argument("--all-pairs", action="store_true",
                      help="all-pairs demo: planted networks (no stimulus) recovered from the connectivity matrices")
    demo.add_argument("--ao-baltic", action="store_true",
                      help="instead: the single-pair AO/Baltic example (Grinsted et al. 2004)")
    demo.add_argument("--surrogates", type=int, default=None,
                      help="--ao-baltic: Monte Carlo surrogate pairs (default 300, as pycwt); --all-pairs: per AR(1) "
                           "bucket pair (default 30)")
    demo.set_defaults(func=_cmd_demo)

    bench = sub.add_parser("bench", help="benchmarks against pycwt, PyWavelets, ssqueezepy, fCWT and "
                                         "mne-connectivity; the report",
                           description="Run one benchmark (or all, then the report). Each writes a CSV (allpairs: a "
                                       "JSON) with the machine and date into --out; `report` turns them into "
                                       "docs/performance.md with figures.")
    bench.add_argument("name", choices=("cwt", "wct", "significance", "equivalence", "pipeline", "gpu", "allpairs",
                                        "all", "report"),
                       help="which benchmark; `all` runs every one and then the report")
    bench.add_argument("--out", default="bench-output", help="folder of the CSVs and figures (default bench-output)")
    bench.add_argument("--docs", default="docs", help="folder of the generated performance.md (default docs)")
    bench.add_argument("--quick", action="store_true", help="small sizes (minutes, for a smoke test)")
    bench.add_argument("--report", action="store_true", help="rebuild the report after this benchmark")
    bench.add_argument("--sizes", metavar="N,N,...", help="bench cwt: record lengths (default 1e2,...,1e7)")
    bench.add_argument("--scales", metavar="S,S,...", help="bench cwt: scale counts (default 10,50,100,500)")
    bench.add_argument("--max-seconds", type=float, metavar="S",
                       help="bench cwt: skip a configuration extrapolated to take longer (default 10)")
    bench.add_argument("--only", metavar="NAME[,NAME]",
                       help="report: rebuild only the sections of these benchmarks inside the existing report, keeping "
                            "every other section as it is: from their CSVs (cwt) or JSON (allpairs, long-records)")
    bench.set_defaults(func=_cmd_bench)

    synth = sub.add_parser("synth", help="write synthetic calcium data with planted coherent groups")
    synth.add_argument("out", help="output signals store (.zarr)")
    synth.add_argument("--rois", type=int, default=200, help="rois (default 200)")
    synth.add_argument("--frames", type=int, default=18000, help="frames per roi (default 18000)")
    synth.add_argument("--fs", type=float, default=30.0, help="frame rate (Hz, default 30)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    synth.add_argument("--overwrite", action="store_true", help="replace an existing output")
    synth.set_defaults(func=_cmd_synth)

    ing = sub.add_parser("ingest", help="convert traces (suite2p, NWB, CaImAn, npy, HDF5, Zarr, CSV/TSV) to a "
                                        "signals store")
    ing.add_argument("source", help="suite2p folder, .nwb, CaImAn .hdf5, .npy, .h5, .zarr, or .csv/.tsv "
                                    "(time x roi: one column per roi, a header and a time column optional)")
    ing.add_argument("out", help="output signals store (.zarr)")
    ing.add_argument("--format", default="auto", help="source format (default: detected)")
    ing.add_argument("--fs", type=float, default=None, help="frame rate (Hz), when the source lacks it")
    ing.add_argument("--neuropil", type=float, default=0.7,
                     help="suite2p neuropil coefficient c of F - c*Fneu (default 0.7)")
    ing.add_argument("--all-rois", action="store_true", help="keep non-cells too (suite2p iscell)")
    ing.add_argument("--dff", action="store_true", help="convert to dF/F with a running-percentile baseline")
    ing.add_argument("--dff-window", type=float, default=None, metavar="SECONDS",
                     help="with --dff: baseline window in seconds (default 60)")
    ing.add_argument("--dff-percentile", type=float, default=None,
                     help="with --dff: baseline percentile (default 8)")
    ing.add_argument("--layout", choices=("roi,time", "time,roi"), default=None, metavar="ORDER",
                     help="npy/HDF5/Zarr sources: axis order, either 'roi,time' (one row per roi) or "
                          "'time,roi' (one column per roi). Default roi,time; a source with more rows than "
                          "columns is refused until --layout says which it is")
    ing.add_argument("--dataset", default=None, help="dataset/series name inside HDF5/NWB")
    ing.add_argument("--allow-pickle", action="store_true", help="read suite2p ops.npy (a pickle) for fs; only if trusted")
    ing.add_argument("--nan-policy", choices=("raise", "zero", "keep"), default="raise",
                     help="NaN/inf in the source: an error (default), replaced by 0, or kept as missing samples "
                          "for a pipeline with preprocessing.nan_policy: interpolate")
    ing.add_argument("--overwrite", action="store_true", help="replace an existing output")
    ing.set_defaults(func=_cmd_ingest)

    info = sub.add_parser("info", help="describe a signals store or a coherence result")
    info.add_argument("store", help="a signals store or a coherence result (.zarr)")
    info.add_argument("--verify", action="store_true",
                      help="coherence results: re-read every region and compare with the checksums recorded when "
                           "it was written; names the damaged regions (exit status 1 on a mismatch)")
    info.add_argument("--json", action="store_true", help="print the description as JSON (default: a summary)")
    info.set_defaults(func=_cmd_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bioxen-dask`` command."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, OSError) as exc:  # OSError: missing files, full disk, unreachable scheduler
        print(f"bioxen-dask: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # outside a run (synth, ingest, bench): one line, no traceback
        print("bioxen-dask: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
