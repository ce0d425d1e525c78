"""Generate the example notebooks (run: ``python notebooks/_build.py``).

The notebooks are written from this script with ``nbformat`` so that they stay reviewable
(diff this file, not JSON) and regenerable; they are stored without outputs.  The first code
cell of every notebook is tagged ``parameters`` and holds the sizes (small by default);
``tests/test_notebooks.py`` injects smaller ones after it, papermill style.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent


def _nb(cells: list[tuple[str, str]]) -> nbformat.NotebookNode:
    out = []
    first_code = True
    for i, (kind, src) in enumerate(cells):
        src = src.strip("\n")
        cell_id = f"cell-{i:02d}"  # stable ids: regenerating changes only what the cells say
        if kind == "md":
            out.append(new_markdown_cell(src, id=cell_id))
        else:
            cell = new_code_cell(src, id=cell_id)
            if first_code:
                cell.metadata["tags"] = ["parameters"]
                first_code = False
            out.append(cell)
    nb = new_notebook(cells=out)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


# A cell shared by the notebooks that use a cluster: gateway, else scheduler, else local.
CONNECT = '''
import contextlib
import os

from bioxen_dask.cluster import ClusterConfig, connect, dashboard_link


def cluster_config():
    """A gateway if DASK_GATEWAY_ADDRESS is set, else the scheduler at DASK_SCHEDULER_ADDRESS,
    else a LocalCluster on this machine."""
    gateway = os.environ.get("DASK_GATEWAY_ADDRESS") or os.environ.get("DASK_GATEWAY__ADDRESS")
    scheduler = os.environ.get("DASK_SCHEDULER_ADDRESS")
    if gateway:
        # auth, proxy address and cluster options come from dask config (daskhub sets them)
        return ClusterConfig.from_dask_config({"kind": "gateway", "gateway": {"address": gateway}})
    if scheduler:
        return ClusterConfig.from_dask_config({"kind": "address", "address": scheduler})
    return ClusterConfig.from_dask_config({"kind": "local", "n_workers": N_WORKERS, "threads_per_worker": 1})


stack = contextlib.ExitStack()  # closed in the last cell: shuts down what connect() started
config = cluster_config()
client = stack.enter_context(connect(config))
print(f"{config.kind} cluster: {len(client.scheduler_info(n_workers=-1)['workers'])} workers; "
      f"dashboard: {dashboard_link(client)}")
'''

CLOSE = '''
stack.close()  # shuts the cluster down (a scheduler reached by address keeps running)
'''


QUICKSTART = [
    ("md", """
# bioxen-dask quickstart: whole-brain coherence with a stimulus

Synthetic calcium imaging with planted ground truth: a few groups of rois whose firing follows
the stimulus at 2 s, 5 s and 10 s periods with known lags, the rest unrelated.  We compute the
wavelet coherence of every roi with the stimulus (*reference mode*), with AR(1) Monte Carlo
significance, store it in Zarr, and check that the planted groups come back at their periods.

The cluster is a dask-gateway cluster if `DASK_GATEWAY_ADDRESS` is set, else the scheduler at
`DASK_SCHEDULER_ADDRESS`, else a LocalCluster started here.
"""),
    ("code", """
# Parameters (small by default; a real recording is 10^4-10^5 rois x 10^4-10^5 frames)
N_ROIS = 120          # rois
N_FRAMES = 9000       # frames (5 min at 30 Hz)
FS = 30.0             # Hz
MC_COUNT = 50         # surrogate pairs per AR(1) bucket pair
SEED = 0
N_WORKERS = 2         # LocalCluster workers (ignored for a gateway / scheduler)
WORKDIR = "quickstart-output"
"""),
    ("code", """
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from bioxen_dask import coherence, plot
from bioxen_dask.datasets import open_result, write_result
from bioxen_dask.io import open_signals_store, write_synthetic
from bioxen_dask.pipeline import evaluate_recovery

work = Path(WORKDIR).absolute()  # absolute: workers may run with another working directory
work.mkdir(parents=True, exist_ok=True)
figures = work / "figures"
figures.mkdir(exist_ok=True)
"""),
    ("md", "## 1. Synthetic whole-brain data with planted groups"),
    ("code", """
store = write_synthetic(work / "signals.zarr", n_rois=N_ROIS, n_frames=N_FRAMES, fs=FS, seed=SEED, overwrite=True)
signals = open_signals_store(store)
truth = {"group": signals["truth_group"].values, "groups": list(signals.attrs["truth_groups"]),
         "roi": signals["roi"].values}
print(signals)
print(json.dumps(truth["groups"], indent=1))
"""),
    ("md", "## 2. Connect to a cluster"),
    ("code", CONNECT),
    ("md", """
## 3. Reference-mode coherence with significance

Lazy: `coherence` builds the graph (and runs the significance stage: thresholds from AR(1)
surrogates, cached on disk); `write_result` computes it region by region into Zarr.
"""),
    ("code", """
result = coherence(signals, reference="stimulus", min_period=1.0, max_period=min(16.0, N_FRAMES / FS / 6),
                   dj=0.25, significance="ar1", mc_count=MC_COUNT, seed=SEED,
                   threshold_cache=str(work / "threshold-cache"))
report = write_result(result, work / "coherence.zarr", overwrite=True)
result = open_result(work / "coherence.zarr").compute()
print(report.describe())
result
"""),
    ("md", "## 4. Are the planted groups recovered at their periods?"),
    ("code", """
recovery = evaluate_recovery(result, truth)
(work / "recovery.json").write_text(json.dumps(recovery, indent=2))
print(f"precision {recovery['precision']:.2f}, recall {recovery['recall']:.2f}  ({recovery['rule']})")
for g in recovery["groups"]:
    print(f"  {g['planted_period_s']:>5g} s: {g['recovered']}/{g['planted']} recovered, "
          f"{g['false_positives']} false positives, median lag {g['median_lag_s']} s "
          f"(expected {g['expected_lag_s']} s)")
"""),
    ("md", "## 5. Maps and population figures"),
    ("code", """
member = truth["group"][result["index_a"].values]
order = np.argsort(np.where(member < 0, np.iinfo(np.int64).max, member), kind="stable")
fig = plot.plot_summary(result, order=order, title="mean coherence with the stimulus (rois sorted by group)")
fig.savefig(figures / "coherence_summary.png", dpi=100)
fig = plot.plot_recovery(result, truth)
fig.savefig(figures / "recovery.png", dpi=100)
"""),
    ("code", """
# population: mean coherence and significant fraction per planted group, against period
VARIABLES = {  # result variable -> axis label (both are unitless fractions in [0, 1])
    "coherence_mean": "squared wavelet coherence with the stimulus\\n(time mean outside the COI)",
    "significant_fraction": f"fraction of time significant\\n(AR(1) Monte Carlo, {result.attrs['significance_level']:g} level)",
}
fig, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True, sharex=True)
period = result["period"].values
for g in [-1] + [int(x["group"]) for x in truth["groups"]]:
    sel = member == g
    label = "unrelated" if g < 0 else f"group {g} ({truth['groups'][g]['period_s']:g} s)"
    for ax, var in zip(axes, VARIABLES):
        ax.plot(period, np.nanmean(result[var].values[sel], axis=0), label=f"{label}, {sel.sum()} rois")
for ax, (var, ylabel) in zip(axes, VARIABLES.items()):
    ax.set_xscale("log", base=2)
    ax.set_xlabel("period (s)")
    ax.set_ylabel(ylabel)
    ax.set_ylim(-0.02, 1.02)
    for i, x in enumerate(truth["groups"]):
        ax.axvline(x["period_s"], color="0.7", lw=0.8, ls="--", label="planted periods" if i == 0 else None)
axes[0].legend(fontsize=8)
fig.suptitle("population mean per planted group")
fig.savefig(figures / "population.png", dpi=100)
"""),
    ("code", """
# the time-period map of the most coherent roi (maps are recomputed for one roi only)
k = int(np.nanargmax(np.nanmean(result["coherence_mean"].values, axis=1)))
one = coherence(signals, reference="stimulus", roi_positions=[int(result["index_a"].values[k])],
                min_period=1.0, max_period=float(result["period"].max()), dj=0.25, maps=True,
                significance=result["threshold"].values[k:k + 1]).compute()
fig, ax = plt.subplots(figsize=(10, 4.5), constrained_layout=True)
plot.plot_pair(one, pair=0, ax=ax, title=f"roi {result['roi_a'].values[k]} vs stimulus")
fig.savefig(figures / "pair_coherence.png", dpi=100)
"""),
    ("code", CLOSE),
]


SUITE2P = [
    ("md", """
# From a suite2p folder to coherence

suite2p writes one folder per plane with `F.npy` (roi fluorescence), `Fneu.npy` (neuropil) and
`iscell.npy` (classifier).  Here we build a tiny one with NumPy (synthetic traces, so we know the
answer), `ingest` it into a signals store (neuropil correction, cells only, dF/F), and run a
pipeline on it against the stimulus saved as a `.npy` reference.
"""),
    ("code", """
# Parameters
N_ROIS = 60           # suite2p rois (cells and non-cells)
N_FRAMES = 6000       # frames
FS = 30.0             # Hz
MC_COUNT = 30
SEED = 1
N_WORKERS = 2
WORKDIR = "suite2p-output"
"""),
    ("code", """
import json
from pathlib import Path

import numpy as np

from bioxen_dask.io import ingest, open_signals_store, store_info, synthesize

work = Path(WORKDIR).absolute()
plane = work / "suite2p" / "plane0"
plane.mkdir(parents=True, exist_ok=True)
"""),
    ("md", "## 1. A tiny suite2p plane folder"),
    ("code", """
syn = synthesize(n_rois=N_ROIS, n_frames=N_FRAMES, fs=FS, seed=SEED)
rng = np.random.default_rng(SEED)
clean = syn["signals"].values.astype(np.float32)                       # what ingest should recover
neuropil = (0.3 * rng.standard_normal((1, N_FRAMES)) + 0.1 * rng.standard_normal((N_ROIS, N_FRAMES)) + 1.0)
F = (clean + 2.0 + 0.7 * neuropil).astype(np.float32)                  # baseline 2 + neuropil leak
iscell = np.column_stack([np.ones(N_ROIS), rng.uniform(0.6, 1.0, N_ROIS)])
not_cells = rng.choice(N_ROIS, size=max(1, N_ROIS // 10), replace=False)
iscell[not_cells, 0] = 0
np.save(plane / "F.npy", F)
np.save(plane / "Fneu.npy", neuropil.astype(np.float32))
np.save(plane / "iscell.npy", iscell)
np.save(work / "stimulus.npy", syn["references"].sel(reference="stimulus").values.astype(np.float64))
print(sorted(p.name for p in plane.iterdir()), F.shape, f"{int(iscell[:, 0].sum())} cells")
"""),
    ("md", "## 2. Ingest into a signals store"),
    ("code", """
store = ingest(plane, work / "signals.zarr", fs=FS, neuropil_coefficient=0.7, cells_only=True, overwrite=True)
print(json.dumps(store_info(store), indent=1, default=str))
signals = open_signals_store(store)
rows = signals["roi"].values                                            # suite2p indices of the cells
assert np.allclose(signals["signals"].values, clean[rows] + 2.0, atol=1e-4)
"""),
    ("md", "## 3. Run a pipeline on the store"),
    ("code", """
from bioxen_dask.cluster import connect
from bioxen_dask.datasets import open_result
from bioxen_dask.pipeline import load_pipeline, run_pipeline

pipeline = load_pipeline({
    "input": {"store": str(store)},
    "preprocessing": {"normalize": True, "detrend": "linear"},
    "grid": {"min_period": 1.0, "max_period": 12.0, "dj": 0.25},
    "pairs": {"mode": "reference", "reference_file": str(work / "stimulus.npy")},
    "significance": {"mc_count": MC_COUNT, "seed": SEED, "cache": str(work / "threshold-cache")},
    "outputs": {"path": str(work / "coherence.zarr"), "overwrite": True, "summary": str(work / "summary.json")},
    "compute": {"roi_chunk": 16},
    "cluster": {"kind": "local", "n_workers": N_WORKERS, "threads_per_worker": 1},
})
with connect(pipeline.cluster_config()) as client:
    summary = run_pipeline(pipeline, progress=False, log=print)
result = open_result(work / "coherence.zarr")
print(json.dumps(summary, indent=1))
result
"""),
    ("code", """
# The planted groups, by suite2p roi index (ingest kept the source indices)
truth = syn["truth_group"].values[rows]
best = result["coherence_mean"].sel(period=[g["period_s"] for g in syn.attrs["truth_groups"]], method="nearest")
for j, g in enumerate(syn.attrs["truth_groups"]):
    c = best.values[:, j]
    print(f"{g['period_s']:>4g} s: members {np.nanmean(c[truth == g['group']]):.2f}, "
          f"others {np.nanmean(c[truth != g['group']]):.2f} mean coherence")
"""),
]


LONG = [
    ("md", """
# Long recordings: a chunked transform of one trace stored in Zarr

A multi-hour trace does not need to fit in memory: it is stored in time chunks, and the
wavelet transform is computed block by block with halos (equal to the whole-record transform
with linear-convolution boundaries).  Band power and the global wavelet spectrum are reduced
inside each block, so the (period x time) transform never exists in full.

The synthetic trace holds an 8 s rhythm in its first half and a 20 s rhythm in its second half.
"""),
    ("code", """
# Parameters
FS = 10.0             # Hz
N_FRAMES = 720_000    # 20 h at 10 Hz
TIME_CHUNK = 65_536   # frames per stored chunk and per transform block
WORKDIR = "long-output"
"""),
    ("code", """
from pathlib import Path

import dask
import dask.array as da
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
import xarray as xr

from bioxen_dask.graph import band_power, global_wavelet_spectrum
from bioxen_dask.io import open_signals, write_signals

work = Path(WORKDIR).absolute()
work.mkdir(parents=True, exist_ok=True)
BANDS = [(6.0, 10.0), (15.0, 25.0)]
"""),
    ("md", "## 1. Write the trace to Zarr, chunk by chunk (never whole in memory)"),
    ("code", """
def block(t0, n, seed=0):
    t = (t0 + np.arange(n)) / FS
    half = N_FRAMES / FS / 2
    rng = np.random.default_rng([seed, t0])
    x = np.where(t < half, np.sin(2 * np.pi * t / 8.0), np.sin(2 * np.pi * t / 20.0))
    return (x + 0.5 * rng.standard_normal(n)).astype(np.float32)[None, :]


starts = range(0, N_FRAMES, TIME_CHUNK)
parts = [da.from_delayed(dask.delayed(block)(s, min(TIME_CHUNK, N_FRAMES - s)),
                         shape=(1, min(TIME_CHUNK, N_FRAMES - s)), dtype=np.float32) for s in starts]
trace = da.concatenate(parts, axis=1)
store = write_signals(work / "trace.zarr", trace, fs=FS, units="a.u.", chunks=(1, TIME_CHUNK), overwrite=True)
x = open_signals(store)
print(x)
"""),
    ("md", "## 2. Band power (Torrence & Compo eq. 24), streamed"),
    ("code", """
grid = dict(dj=0.25, s0=2.0, J=int(4 / 0.25))     # periods ~2 s .. ~64 s
bp = band_power(x, BANDS, time_chunk=TIME_CHUNK, **grid)
print(bp.attrs.get("time_chunk"), bp.data.chunks[-1][:3], "...")
# keep one value per minute: small enough to plot and to store next to the trace
step = int(60 * FS)
per_minute = bp.isel(time=slice(0, (N_FRAMES // step) * step)).coarsen(time=step).mean()
per_minute = per_minute.assign_coords(minute=("time", np.arange(per_minute.sizes["time"])))
per_minute.to_dataset(name="band_power").to_zarr(work / "band_power.zarr", mode="w")
per_minute = xr.open_zarr(work / "band_power.zarr")["band_power"].load()
per_minute
"""),
    ("code", """
gws = global_wavelet_spectrum(x, time_chunk=TIME_CHUNK, **grid).compute()
units = x.attrs.get("units", "a.u.")  # the trace's units; wavelet power is in units squared
fig, axes = plt.subplots(1, 2, figsize=(12, 4), constrained_layout=True)
for b, (lo, hi) in enumerate(BANDS):
    axes[0].plot(per_minute["minute"] / 60, per_minute.isel(roi=0, band=b), label=f"periods {lo:g}-{hi:g} s")
axes[0].set_xlabel("time (h)")
axes[0].set_ylabel(f"scale-averaged power ({units}²)\\nper-minute mean")
axes[0].set_title("band power (Torrence & Compo eq. 24)")
axes[0].legend()
axes[1].plot(gws["period"], gws.isel(roi=0))
axes[1].set_xscale("log", base=2)
axes[1].set_yscale("log")
axes[1].xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
axes[1].set_xlabel("period (s)")
axes[1].set_ylabel(f"time-averaged wavelet power ({units}²)")
axes[1].set_title("global wavelet spectrum, outside the COI")
for lo, hi in BANDS:
    axes[1].axvspan(lo, hi, color="0.9", zorder=0)
fig.savefig(work / "long_recording.png", dpi=100)
"""),
]


PERF = [
    ("md", """
# Performance: bioxen-dask against pycwt

Reads the CWT benchmark results (`cwt.csv`, written by `bioxen-dask bench cwt`) and the
generated report (`docs/performance.md`, from `bioxen-dask bench report`) from
`bench-output/` or `docs/`; when there are none it runs a small CWT benchmark first.
Plots the speed-up over pycwt per record length. The full story -- every engine, scaling
fits, significance, the whole dataset, the decision table -- is in `docs/performance.md`.
"""),
    ("code", """
# Parameters
SEARCH_DIRS = ["bench-output", "docs"]   # relative to the repository root
BENCH_KWARGS = {"quick": True}           # bioxen_dask.bench.cwt.run options, used only when no CSV is found
REPO_ROOT = None                          # None: the repository this bioxen_dask comes from
WORKDIR = "performance-output"
"""),
    ("code", """
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

import bioxen_dask
from bioxen_dask.bench import cwt as cwt_bench
from bioxen_dask.bench import read_csv

repo = Path(REPO_ROOT) if REPO_ROOT else Path(bioxen_dask.__file__).resolve().parents[1]
work = Path(WORKDIR).absolute()
work.mkdir(parents=True, exist_ok=True)
"""),
    ("code", """
dirs = [repo / d for d in SEARCH_DIRS]
csvs = sorted(p for d in dirs if d.is_dir() for p in d.rglob("cwt.csv"))
reports = sorted(p for d in dirs if d.is_dir() for p in d.rglob("*.md"))
if not csvs:
    print("no cwt.csv found; running bioxen_dask.bench.cwt.run with", BENCH_KWARGS)
    csvs = [cwt_bench.run(work, progress=False, **BENCH_KWARGS)]
print("results:", [str(p) for p in csvs])
for md in reports:
    display(Markdown(f"### {md.name}\\n\\n" + md.read_text()))
"""),
    ("code", """
frames, machines = [], {}
for path in csvs:
    rows, info, notes = read_csv(path)
    print(path.name, *(f"{k}: {v}" for k, v in info.items()), sep="\\n  ")
    source = str(path.relative_to(repo)) if path.is_relative_to(repo) else path.name
    machines[source] = f"{info.get('cpu', '?')}, {info.get('cores', '?')}, {info.get('date', '?')}"
    frames.append(pd.DataFrame(rows).assign(source=source))
bench = pd.concat(frames, ignore_index=True)
ours = bench[(bench["engine"] == "bioxen-dask") & (bench["status"] == "ok")].copy()
ratios = (ours.groupby(["source", "dtype", "variant", "n_scales", "n"], as_index=False)["pycwt_over_this"]
              .median().rename(columns={"pycwt_over_this": "speedup_over_pycwt"}))
ratios.to_csv(work / "ratios.csv", index=False)
ratios
"""),
    ("code", """
fig, ax = plt.subplots(figsize=(8, 4.5), constrained_layout=True)
for (source, dtype, variant, n_scales), g in ratios.groupby(["source", "dtype", "variant", "n_scales"]):
    prefix = f"{source}: " if len(machines) > 1 else ""
    ax.plot(g["n"], g["speedup_over_pycwt"], marker="o", label=f"{prefix}{dtype} {variant}, {n_scales} scales")
ax.axhline(1, color="0.5", lw=0.8)
ax.set_xscale("log")
ax.set_xlabel("record length N (samples)")
ax.set_ylabel("speed-up over pycwt (pycwt time / bioxen-dask time)")
ax.set_title("CWT benchmark (bioxen-dask bench cwt): " + "; ".join(f"{s} ({m})" for s, m in machines.items()), fontsize=9)
ax.legend(fontsize=8)
fig.savefig(work / "speedup.png", dpi=100)
"""),
]


NOTEBOOKS = {
    "01_quickstart.ipynb": QUICKSTART,
    "02_suite2p_ingest.ipynb": SUITE2P,
    "03_long_recordings.ipynb": LONG,
    "04_performance.ipynb": PERF,
}


def build(folder: Path = HERE) -> list[Path]:
    written = []
    for name, cells in NOTEBOOKS.items():
        nb = _nb(cells)
        nbformat.validate(nb)
        path = folder / name
        nbformat.write(nb, path)
        written.append(path)
    return written


if __name__ == "__main__":
    for p in build():
        print(p)
