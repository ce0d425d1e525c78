"""All pairs: what one pair of rois costs in bioxen-dask, pycwt's pair loop and mne-connectivity.

One process (``bioxen-dask bench allpairs``), one thread each (BLAS/OpenMP pools limited to
one thread; process CPU time), on one synthetic population with planted networks
(:func:`bioxen_dask.io.synthesize_networks`: groups of rois sharing a rhythm at 2, 5 and 10 s,
no stimulus), on the grid of ``pipelines/calcium_coherence.yaml`` (72 periods 0.5-30 s at
30 Hz), no significance:

- **bioxen-dask**: :func:`bioxen_dask.coherence` with ``all_pairs=True`` and the pipeline's
  ``compute.method`` (multirate) and ``block_bytes``, computed on the synchronous scheduler:
  the (pair, period) reductions (``coherence_mean`` outside the COI, phase, lag) of every pair;
- **pycwt**: ``pycwt.wct(x, y, ..., sig=False)`` on a few pairs of the same rois and grid (the
  pair loop a pycwt user writes), per pair;
- **mne-connectivity**: ``spectral_connectivity_time(data, freqs, method="coh",
  mode="cwt_morlet", n_cycles=6)`` on every pair of the same rois (``freqs`` = 1 / the grid's
  periods; 6 cycles is the Morlet ``omega0 = 6`` of the grid), at two population sizes, so its
  cost splits into a part per roi (the transforms) and a part per pair (``a n + b n(n-1)/2``).
  It gives one number per (pair, frequency): ``|mean_t Sxy| / sqrt(mean_t Sxx mean_t Syy)``
  over the whole epoch, edges included (no COI), with a fixed smoothing kernel (none by
  default), no time resolution and no significance, and it holds every roi's transform in
  memory at once.

The JSON (``allpairs.json``) carries the measured times, the ratios of the others' CPU per pair
over bioxen-dask's (from those times), their agreement (the correlation of the two tools'
(pair, period) coherence, and the share of each planted network's pairs among the highest
coherences at its period), the cost of 10,000 rois (49,995,000 pairs) and the simulated
worker scaling of that all-pairs job (:func:`bioxen_dask.bench.pipeline.simulate`: the plan's
tile tasks, the graph's other tasks counted at small sizes, and the scheduler's per-task costs
measured on a LocalCluster run of trivial tasks).
:func:`summary_markdown` turns it into the all-pairs section of ``docs/performance.md``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ._harness import machine_info, measure
from .pipeline import SIMULATED_WORKERS, simulate

__all__ = ["DEFAULT_SIZE", "QUICK_SIZE", "WHOLE_BRAIN_ROIS", "run", "scaling_models", "summary_markdown"]

#: (rois, frames) of a full run and of ``quick=True``.
DEFAULT_SIZE = (56, 18_000)
QUICK_SIZE = (6, 9_000)
#: The whole-brain population the cost is extrapolated to.
WHOLE_BRAIN_ROIS = 10_000
FS = 30.0
#: Cores of the wall-time extrapolation (one 64-core node is the last).
CORES = (1, 16, 64)
JSON_NAME = "allpairs.json"
MNE_WHAT = ("one coherence per (pair, frequency): |mean_t Sxy| / sqrt(mean_t Sxx mean_t Syy) over the whole epoch "
            "of Morlet transforms, edges included")
MNE_LACKS = ("no time resolution (averages over the epoch)", "a fixed smoothing kernel (sm_times/sm_freqs, none by "
             "default) instead of the scale-dependent smoothing of wavelet coherence",
             "no cone of influence (edge samples enter the mean)", "no significance test",
             "every roi's transform in memory at once")


# ----------------------------------------------------------------------------- inputs


def shipped_grid(pipeline_file: str | os.PathLike | None = None) -> dict[str, Any]:
    """The grid and compute keys of ``pipelines/calcium_coherence.yaml`` (or ``pipeline_file``)."""
    import yaml
    from dask.utils import parse_bytes

    from ..pipeline import repo_file

    path = Path(pipeline_file) if pipeline_file else repo_file("pipelines", "calcium_coherence.yaml")
    if path is None or not Path(path).is_file():
        raise FileNotFoundError("pipelines/calcium_coherence.yaml not found; run from the repository root or pass "
                                "pipeline_file=.")
    cfg = yaml.safe_load(Path(path).read_text())
    g, c = cfg["grid"], cfg.get("compute") or {}
    return {"file": Path(path).name, "min_period": float(g["min_period"]), "max_period": float(g["max_period"]),
            "dj": float(g["dj"]), "preset": g.get("preset"), "boundary": g.get("boundary", "linear"),
            "dtype": g.get("dtype", "float32"), "method": c.get("method", "exact"),
            "block_bytes": int(parse_bytes(str(c.get("block_bytes", "512MiB")))), "roi_chunk": c.get("roi_chunk")}


def _population(rois: int, frames: int, seed: int = 0):
    from ..io import synthesize_networks

    return synthesize_networks(n_rois=rois, n_frames=frames, fs=FS, seed=seed)


def _bioxen(signals: Any, grid: Mapping[str, Any]):
    from ..coherence import coherence

    return coherence(signals, all_pairs=True, min_period=grid["min_period"], max_period=grid["max_period"],
                     dj=grid["dj"], preset=grid["preset"], boundary=grid["boundary"], dtype=grid["dtype"],
                     method=grid["method"], block_bytes=grid["block_bytes"], significance=None, workers=1)


@contextlib.contextmanager
def _one_thread():
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


# ----------------------------------------------------------------------------- candidates


def _time_bioxen(signals: Any, grid: Mapping[str, Any]) -> tuple[dict[str, Any], Any]:
    ds = _bioxen(signals, grid)
    result = {}

    def call() -> None:
        result["ds"] = ds.compute(scheduler="sync")

    m = measure(call, repeat=1, memory=False)
    P = int(ds.sizes["pair"])
    return {"pairs": P, "cpu_s": m.cpu_median, "wall_s": m.wall_median, "cpu_ms_per_pair": 1e3 * m.cpu_median / P,
            "wall_ms_per_pair": 1e3 * m.wall_median / P, "tasks": int(ds.attrs["tasks"]),
            "all_pairs_tile": int(ds.attrs["all_pairs_tile"]),
            "what": f"coherence(all_pairs=True, method={grid['method']!r}): coherence_mean outside the COI, phase, "
                    "lag, phase consistency per (pair, period); synchronous scheduler, one thread"}, result["ds"]


def _time_pycwt(x: np.ndarray, attrs: Mapping[str, Any], n_pairs: int) -> dict[str, Any]:
    try:
        import pycwt
    except ImportError as exc:
        return {"status": f"missing: {exc}"}
    dt, dj, s0, J = 1 / FS, float(attrs["dj"]), float(attrs["s0"]), int(attrs["J"])
    pairs = [(i, i + 1) for i in range(min(n_pairs, x.shape[0] - 1))]
    m = measure(lambda: [pycwt.wct(x[a], x[b], dt, dj=dj, s0=s0, J=J, sig=False) for a, b in pairs], repeat=1,
                memory=False)
    k = len(pairs)
    return {"status": "ok", "pairs": k, "cpu_s": m.cpu_median, "wall_s": m.wall_median,
            "cpu_ms_per_pair": 1e3 * m.cpu_median / k, "wall_ms_per_pair": 1e3 * m.wall_median / k,
            "version": _version("pycwt"),
            "what": f"pycwt.wct(sig=False) on {k} pair(s) of the same rois and grid (s0, dj, J), one after the other; "
                    "per pair"}


def _mne_coherence(x: np.ndarray, freqs: np.ndarray, ia: np.ndarray, ib: np.ndarray) -> np.ndarray:
    from mne_connectivity import spectral_connectivity_time

    order = np.argsort(freqs)  # mne wants increasing frequencies; the result in the given order
    con = spectral_connectivity_time(x[None].astype(np.float64), freqs=freqs[order], method="coh",
                                     mode="cwt_morlet", sfreq=FS, n_cycles=6.0, indices=(ia, ib), n_jobs=1,
                                     verbose=False)
    out = np.empty((ia.size, freqs.size))
    out[:, order] = np.asarray(con.get_data())[0]  # (pair, freq)
    return out


def _time_mne(x: np.ndarray, periods: np.ndarray, ia: np.ndarray, ib: np.ndarray
              ) -> tuple[dict[str, Any], np.ndarray | None]:
    """mne-connectivity on every pair of the first half of the rois, then on ``(ia, ib)`` (every
    pair, in bioxen-dask's order, so the coherences compare row by row)."""
    try:
        import mne_connectivity  # noqa: F401
    except ImportError as exc:
        return {"status": f"missing: {exc}"}, None
    freqs = 1.0 / np.asarray(periods, float)
    n = x.shape[0]
    runs, coh = [], None
    for m_rois, pairs in ((max(2, n // 2), np.triu_indices(max(2, n // 2), 1)), (n, (ia, ib))):
        out = {}
        meas = measure(lambda: out.__setitem__("coh", _mne_coherence(x[:m_rois], freqs, *pairs)), repeat=1,
                       memory=False)
        runs.append({"rois": m_rois, "pairs": int(pairs[0].size), "cpu_s": meas.cpu_median, "wall_s": meas.wall_median})
        coh = out["coh"]
    full = runs[-1]
    res = {"status": "ok", "version": _version("mne-connectivity"), "runs": runs, "pairs": full["pairs"],
           "cpu_s": full["cpu_s"], "wall_s": full["wall_s"], "cpu_ms_per_pair": 1e3 * full["cpu_s"] / full["pairs"],
           "wall_ms_per_pair": 1e3 * full["wall_s"] / full["pairs"], "what": MNE_WHAT, "lacks": list(MNE_LACKS),
           "call": "spectral_connectivity_time(data, freqs=1/periods, method='coh', mode='cwt_morlet', sfreq=30, "
                   "n_cycles=6, indices=every pair, n_jobs=1)",
           "memory_bytes_at_whole_brain": WHOLE_BRAIN_ROIS * len(freqs) * x.shape[1] * (16 + 8)}
    if len(runs) == 2:  # cpu = a n + b n(n-1)/2: a per roi (its transform), b per pair
        (n1, p1, c1), (n2, p2, c2) = ((r["rois"], r["pairs"], r["cpu_s"]) for r in runs)
        b = (c2 - c1 * n2 / n1) / (p2 - p1 * n2 / n1)
        res["cpu_s_per_roi"], res["cpu_ms_per_pair_asymptotic"] = (c1 - b * p1) / n1, 1e3 * b
    return res, coh


def _version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


# ----------------------------------------------------------------------------- agreement


def _agreement(ds: Any, mne_coh: np.ndarray | None, syn: Any) -> dict[str, Any]:
    """How far the two tools agree on the same pairs: the correlation of their (pair, period)
    coherence, and, at each planted network's period, the share of its planted pairs among the
    pairs of highest coherence (as many as it has planted pairs)."""
    ours = np.asarray(ds.coherence_mean.values, float)
    ia, ib = ds.index_a.values, ds.index_b.values
    group = syn.truth_group.values
    out: dict[str, Any] = {"networks": []}
    if mne_coh is not None:
        ok = np.isfinite(ours) & np.isfinite(mne_coh)
        out["pearson_r"] = float(np.corrcoef(ours[ok], mne_coh[ok])[0, 1])
        out["compared"] = "coherence_mean (bioxen-dask, outside the COI) against mne-connectivity's coh, every pair " \
                          "and period"
    periods = ds.period.values
    for g in syn.attrs["truth_groups"]:
        k, period = g["group"], g["period_s"]
        j = int(np.argmin(np.abs(periods - period)))
        truth = (group[ia] == k) & (group[ib] == k)
        K = int(truth.sum())
        row = {"network": k, "period_s": period, "planted_pairs": K}
        for name, values in (("bioxen-dask", ours[:, j]), ("mne-connectivity", None if mne_coh is None
                                                             else mne_coh[:, j])):
            if values is None or K == 0:
                continue
            top = np.argsort(-np.nan_to_num(values, nan=-np.inf))[:K]
            row[name] = round(float(truth[top].mean()), 4)
        out["networks"].append(row)
    out["rule"] = ("at each planted period, the planted pairs' share of the K pairs of highest coherence (K = the "
                   "network's planted pairs): 1 means the network's pairs are exactly the most coherent ones")
    return out


# ----------------------------------------------------------------------------- scaling


def _tile_pairs(rois: int, tile: int) -> list[int]:
    """Pairs of each all-pairs task of ``rois`` rois in blocks of ``tile`` (the diagonal
    blocks half-filled), as :func:`bioxen_dask.coherence` plans them."""
    sizes = [min(tile, rois - i) for i in range(0, rois, tile)]
    pairs = [a * (a - 1) // 2 if i == j else a * b for i, a in enumerate(sizes) for j, b in enumerate(sizes) if j >= i]
    return [p for p in pairs if p]  # a one-roi diagonal block has no task


def scaling_models(cpu_per_pair_s: float, tile: int, *, rois: int = WHOLE_BRAIN_ROIS,
                   overhead_s: float = 0.0, scheduler_s: float = 0.0, serial_s: float = 0.0
                   ) -> list[dict[str, Any]]:
    """The all-pairs job of ``rois`` as :func:`bioxen_dask.bench.pipeline.simulate` stages: one
    task per tile of the plan, each its pairs times ``cpu_per_pair_s``, plus the per-task gap,
    scheduler cost and serial part given.

    Examples
    --------
    >>> [st["durations"] for st in scaling_models(0.5, 2, rois=4)]
    [[0.5, 2.0, 0.5]]
    """
    durations = [p * cpu_per_pair_s for p in _tile_pairs(rois, tile)]
    return [{"name": "pair", "serial_s": serial_s, "durations": durations, "overhead_s": overhead_s,
             "scheduler_s": scheduler_s}]


def _whole_brain(ours: Mapping[str, Any], graph: Mapping[str, Any], costs: Mapping[str, Any] | None
                 ) -> dict[str, Any]:
    """The all-pairs job of :data:`WHOLE_BRAIN_ROIS` rois: CPU-hours from the measured CPU per
    pair, and its wall time on 1 .. 64 workers simulated from the plan's tiles (each its pairs
    times that CPU per pair), the graph's other tasks (``graph``: counted at small sizes, per
    tile) as tasks of no duration, and the scheduler's per-task costs measured on trivial tasks."""
    P = WHOLE_BRAIN_ROIS * (WHOLE_BRAIN_ROIS - 1) // 2
    tile = int(ours["all_pairs_tile"])
    per_pair = ours["cpu_ms_per_pair"] / 1e3
    c = costs or {}
    models = scaling_models(per_pair, tile, overhead_s=c.get("overhead_s", 0.0), scheduler_s=c.get("scheduler_s", 0.0),
                            serial_s=c.get("serial_s", 0.0))
    tiles = len(models[0]["durations"])
    extra = max(0, round(graph["fixed"] + (graph["per_tile"] - 1) * tiles))
    models[0]["durations"] = models[0]["durations"] + [0.0] * extra
    sim = {r["workers"]: r for r in simulate(models, sorted(set(SIMULATED_WORKERS) | set(CORES)))}
    return {"rois": WHOLE_BRAIN_ROIS, "pairs": P, "cpu_hours": P * per_pair / 3600, "tile": tile,
            "tile_tasks": tiles, "other_tasks": extra, "cpu_ms_per_pair": ours["cpu_ms_per_pair"],
            "wall_hours": {str(w): sim[w]["job_s"] / 3600 for w in CORES},
            "simulated": [{k: sim[w][k] for k in ("workers", "job_s", "speedup", "efficiency")}
                          for w in SIMULATED_WORKERS]}


def _task_costs(lazy: Any, workers: int) -> dict[str, Any]:
    """Per-task costs of computing ``lazy`` on a LocalCluster of ``workers`` single-threaded
    worker processes (:func:`bioxen_dask.bench.pipeline.stage_model` of its task stream):
    the serial part, the gap between consecutive tasks on a worker and the client-and-scheduler
    CPU per task. On many trivial tasks these are what the scheduler adds to every task."""
    from distributed import get_task_stream

    from .pipeline import bench_cluster, stage_model

    stack, client = bench_cluster(workers)
    with stack:
        c0, t0 = time.process_time(), time.perf_counter()
        with get_task_stream(client) as ts:
            lazy.compute()
        wall, client_cpu = time.perf_counter() - t0, time.process_time() - c0
    model = stage_model("pair", wall, list(ts.data), client_cpu)
    return {"workers": workers, "wall_s": wall, "client_cpu_s": client_cpu, "tasks": len(model["durations"]),
            "serial_s": model["serial_s"], "overhead_s": model["overhead_s"], "scheduler_s": model["scheduler_s"]}


def _trivial_tasks(n: int) -> Any:
    """``n`` tasks that do nothing (and their reduction): what the scheduler costs per task."""
    import dask.array as da

    return (da.ones(n, chunks=1) + 1).sum(split_every=n)


def _graph_tasks(signals: Any, grid: Mapping[str, Any], sizes: Sequence[int]) -> dict[str, Any]:
    """Tasks of the all-pairs graph (optimised, as a scheduler receives it) at a few population
    sizes, and the least-squares line ``tasks = fixed + per_tile x tiles`` through them."""
    import dask

    counts = []
    for m in sizes:
        ds = _bioxen(signals[:m], grid)
        arrays = [v.data for v in ds.data_vars.values() if hasattr(v.data, "__dask_graph__")]
        (opt,) = dask.optimize(arrays)
        keys = set()
        for a in opt:
            keys.update(a.__dask_graph__().keys())
        counts.append({"rois": int(m), "tiles": len(_tile_pairs(int(m), int(ds.attrs["all_pairs_tile"]))),
                       "tasks": len(keys)})
    tiles = np.array([c["tiles"] for c in counts], float)
    tasks = np.array([c["tasks"] for c in counts], float)
    per_tile, fixed = np.polyfit(tiles, tasks, 1) if len(set(tiles)) > 1 else (tasks[-1] / tiles[-1], 0.0)
    return {"sizes": counts, "per_tile": float(per_tile), "fixed": float(fixed)}


# ----------------------------------------------------------------------------- run


def run(out_dir: str | os.PathLike = "bench-output", *, quick: bool = False, rois: int | None = None,
        frames: int | None = None, pycwt_pairs: int | None = None, cluster_workers: int | None = 2,
        pipeline_file: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """Time all-pairs coherence in bioxen-dask, pycwt and mne-connectivity; write ``allpairs.json``.

    Parameters
    ----------
    out_dir : path
    quick : bool
        Smoke test: :data:`QUICK_SIZE` rois x frames, one pycwt pair.
    rois, frames : int, optional
        The synthetic population (30 Hz); default :data:`DEFAULT_SIZE` (56 x 18,000: two
        full all-pairs tiles of the shipped grid).
    pycwt_pairs : int, optional
        Pairs pycwt is timed on (default 3, quick 1).
    cluster_workers : int or None
        Worker processes of the LocalCluster run of trivial tasks that measures the scheduler's
        per-task costs for the simulation (None: no cluster run; nothing is charged per task).
    pipeline_file : path, optional
        Default ``pipelines/calcium_coherence.yaml`` (its grid and compute keys).
    progress : bool
        Print a line per candidate.

    Returns
    -------
    Path
        The JSON.
    """
    d_rois, d_frames = QUICK_SIZE if quick else DEFAULT_SIZE
    rois, frames = int(rois or d_rois), int(frames or d_frames)
    if rois < 4:
        raise ValueError(f"rois must be at least 4 (two halves of two rois for mne-connectivity), got {rois}.")
    pycwt_pairs = int(pycwt_pairs or (1 if quick else 3))
    grid = shipped_grid(pipeline_file)
    info = machine_info()
    syn = _population(rois, frames)
    x = np.asarray(syn.signals.values, np.float64)

    def say(msg: str) -> None:
        if progress:
            print(f"allpairs {msg}", flush=True)

    with _one_thread():
        ours, ds = _time_bioxen(syn.signals, grid)
        say(f"bioxen-dask {ours['cpu_ms_per_pair']:.2f} ms CPU per pair ({ours['pairs']} pairs)")
        py = _time_pycwt(x, ds.attrs, pycwt_pairs)
        say(f"pycwt {py.get('cpu_ms_per_pair', float('nan')):.1f} ms CPU per pair")
        mne, mne_coh = _time_mne(x, ds.period.values, ds.index_a.values, ds.index_b.values)
        say(f"mne-connectivity {mne.get('cpu_ms_per_pair', float('nan')):.2f} ms CPU per pair")
    ratios = {}
    for name, r in (("pycwt", py), ("mne-connectivity", mne)):
        if r.get("status") == "ok":
            ratios[name] = {"cpu_over_bioxen": r["cpu_ms_per_pair"] / ours["cpu_ms_per_pair"],
                            "wall_over_bioxen": r["wall_ms_per_pair"] / ours["wall_ms_per_pair"]}
    tile = int(ds.attrs["all_pairs_tile"])
    graph = _graph_tasks(syn.signals, grid, sorted({min(rois, tile * k) for k in (1, 2, 3)} | {rois}))
    costs = None
    if cluster_workers:
        costs = _task_costs(_trivial_tasks(200 if quick else 2000), int(cluster_workers))
        say(f"LocalCluster({cluster_workers}), {costs['tasks']} trivial tasks: {costs['overhead_s'] * 1e3:.2f} ms gap, "
            f"{costs['scheduler_s'] * 1e3:.2f} ms client and scheduler CPU per task")
    result = {
        "benchmark": "allpairs",
        "machine": info,
        "contention": "timings taken on a shared machine (other jobs may run beside this one: see load_avg); "
                      "the ratios come from one run, side by side",
        "data": {"rois": rois, "frames": frames, "fs_hz": FS, "synthetic": "io.synthesize_networks(seed=0)",
                 "networks": syn.attrs["truth_groups"]},
        "grid": {**grid, "periods": int(ds.sizes["period"]), "s0": float(ds.attrs["s0"]), "J": int(ds.attrs["J"])},
        "candidates": {"bioxen-dask": ours, "pycwt": py, "mne-connectivity": mne},
        "ratios": ratios,
        "agreement": _agreement(ds, mne_coh, syn),
        "graph": graph,
        "task_costs": costs,
        "whole_brain": _whole_brain(ours, graph, costs),
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / JSON_NAME
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(result, indent=2, default=_json_default))
    os.replace(tmp, path)
    return path


def _json_default(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    raise TypeError(f"not JSON serialisable: {type(v).__name__}")


# ----------------------------------------------------------------------------- report


def _ms(v: Any) -> str:
    return "-" if not isinstance(v, (int, float)) or not math.isfinite(v) else f"{v:.3g}"


def _hours(h: float) -> str:
    return f"{h * 60:.0f} min" if h < 2 else f"{h:,.1f} h"


def summary_markdown(path: str | os.PathLike) -> str:
    """The all-pairs section of ``docs/performance.md`` from an ``allpairs.json``."""
    from ._harness import machine_label

    r = json.loads(Path(path).read_text())
    info, data, grid = r["machine"], r["data"], r["grid"]
    c, ratios = r["candidates"], r["ratios"]
    ours, mne = c["bioxen-dask"], c["mne-connectivity"]
    out = [f"*Measured on {machine_label(info)} (load average at start {info.get('load_avg', '?')}: a shared "
           f"machine, other jobs ran beside this one; the ratios come from one run, side by side); "
           f"`{Path(path).name}`.*", "",
           f"{data['rois']} synthetic rois x {data['frames']:,} frames at {data['fs_hz']:g} Hz "
           f"(`io.synthesize_networks`: {len(data['networks'])} planted networks at "
           + ", ".join(f"{g['period_s']:g} s" for g in data["networks"])
           + f", no stimulus), `{grid['file']}`'s grid ({grid['periods']} periods "
           f"{grid['min_period']:g}-{grid['max_period']:g} s, `compute.method: {grid['method']}`), no significance, "
           "one thread each (CPU time of the process).", ""]
    rows = []
    for name, cand in c.items():
        if cand.get("status", "ok") != "ok":
            rows.append((name, "-", "-", "-", "-", cand["status"]))
            continue
        ratio = ratios.get(name, {})
        rows.append((name, f"{cand['pairs']:,}", _ms(cand["cpu_ms_per_pair"]), _ms(cand["wall_ms_per_pair"]),
                     "1" if name == "bioxen-dask" else _ms(ratio.get("cpu_over_bioxen")), cand["what"]))
    out += ["| tool | pairs timed | CPU ms / pair | wall ms / pair | CPU / pair over bioxen-dask's | what it computes |",
            "|---|---|---|---|---|---|"] + ["| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |"
                                                for row in rows] + [""]
    if mne.get("status", "ok") == "ok":
        runs = ", ".join(f"{m['rois']} rois {m['cpu_s']:.2f} s" for m in mne["runs"])
        asym = mne.get("cpu_ms_per_pair_asymptotic")
        split = (f"about {mne['cpu_s_per_roi'] * 1e3:.0f} ms per roi and {_ms(asym)} ms per pair once the "
                 f"transforms are amortised (many rois), {_ms(asym / ours['cpu_ms_per_pair'])}x bioxen-dask's"
                 if asym and mne.get("cpu_s_per_roi", 0) > 0 else
                 f"the part per roi is lost in the noise of the two runs: its cost is per pair ({_ms(asym)} ms "
                 "fitted)")
        out += [f"**mne-connectivity {mne['version']}** (`{mne['call']}`) computes {mne['what']}. It lacks what "
                "wavelet coherence gives: " + "; ".join(mne["lacks"]) + ". Its cost is a transform per roi and a "
                f"product and two means per pair: CPU {runs}, so {split}. Holding every roi's "
                f"transform and power, 10,000 rois would need {mne['memory_bytes_at_whole_brain'] / 1e9:,.0f} GB "
                "in one process.", ""]
    ag = r["agreement"]
    nets = [n for n in ag["networks"] if n["planted_pairs"]]
    line = []
    if "pearson_r" in ag:
        line.append(f"The two tools' (pair, period) coherence correlates with r = {ag['pearson_r']:.2f} "
                    "(bioxen-dask's mean outside the COI of a smoothed coherence, mne's ratio of epoch means: "
                    "not the same estimator, so not equal numbers)")
    if nets:
        line.append("at each planted period, the share of a network's pairs among the most coherent pairs (as "
                    "many as it has) is " + "; ".join(
                        f"{n['period_s']:g} s ({n['planted_pairs']} pairs): bioxen-dask {n.get('bioxen-dask', '-')}, "
                        f"mne {n.get('mne-connectivity', '-')}" for n in nets))
    if line:
        out += ["; ".join(line) + ". Equality with pycwt pair by pair is tested (`tests/test_allpairs.py`).", ""]
    wb = r["whole_brain"]
    out += [f"**{wb['rois']:,} rois ({wb['pairs']:,} pairs)** at the measured {wb['cpu_ms_per_pair']:.3g} ms of CPU "
            f"per pair: {wb['cpu_hours']:,.0f} CPU-hours; wall "
            + ", ".join(f"{_hours(h)} on {k} core{'s' if k != '1' else ''}" for k, h in wb["wall_hours"].items())
            + " (the last: one 64-core node), simulated as below.", ""]
    tc, gr = r.get("task_costs"), r["graph"]
    how = (f"each of the plan's {wb['tile_tasks']:,} tile tasks ({wb['tile']} rois a block, from `block_bytes`) its "
           f"pairs times the CPU per pair, and the graph's {wb['other_tasks']:,} other tasks (counted on these rois at "
           + ", ".join(f"{g['rois']}" for g in gr["sizes"]) + f" rois: {gr['per_tile']:.1f} tasks per tile) as tasks "
           "of no duration"
           + (f"; every task lengthened by {tc['overhead_s'] * 1e3:.2f} ms and the stage bounded below by "
              f"{tc['scheduler_s'] * 1e3:.2f} ms of client and scheduler CPU per task, both measured on "
              f"{tc['tasks']:,} trivial tasks on a {tc['workers']}-worker LocalCluster" if tc else
              "; nothing charged per task (no cluster run)"))
    out += [f"Simulated scaling of the all-pairs job (`bioxen_dask.bench.pipeline.simulate`, LPT list schedule): {how}. "
            f"A full tile is {wb['tile'] ** 2 * wb['cpu_ms_per_pair'] / 1e3:,.0f} s of CPU, so neither the scheduler nor "
            "the serial part bounds the speed-up; the 10,000-roi reference job's simulated scaling, and what bounds it, "
            "are in *The whole dataset, and scaling with workers*.",
            "", "| workers P | all pairs, 10,000 rois (h) | speedup | efficiency T1/(P TP) |", "|---|---|---|---|"]
    out += [f"| {s['workers']} | {s['job_s'] / 3600:,.2f} | {s['speedup']:.3g} | {s['efficiency']:.3f} |"
            for s in wb["simulated"]]
    out += ["", "Regenerate: `bioxen-dask bench allpairs --out docs/benchmarks` (then `bioxen-dask bench report "
            "--only allpairs` rewrites this section alone).", ""]
    return "\n".join(out)
