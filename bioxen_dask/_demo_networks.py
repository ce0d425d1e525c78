"""``bioxen-dask demo --all-pairs``: planted networks recovered from all-pairs coherence.

A synthetic population (:func:`bioxen_dask.io.synthesize_networks`: groups of rois sharing a
narrowband rhythm at known periods, each roi at its own lag, no stimulus) goes through
all-pairs coherence (multirate tiles, AR(1) significance, beta-tail p-values), the
connectivity matrices are written to Zarr with one band per planted period, and each
network is recovered from its band: a pair is *found* at a planted period when its
significant fraction there is at least ``min_fraction`` (the reference demo's rule) and,
separately, when Benjamini-Hochberg at 5% across all pairs keeps its p-value.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

#: Share of the time outside the COI above the 95% threshold that makes a pair found.
MIN_FRACTION = 0.5
#: Half-width of each planted period's band (relative).
BAND_HALF_WIDTH = 0.15


def _scores(found: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    tp = int((found & truth).sum())
    fp = int((found & ~truth).sum())
    fn = int((~found & truth).sum())
    return {"true_positives": tp, "false_positives": fp, "false_negatives": fn,
            "precision": round(tp / (tp + fp), 4) if tp + fp else None,
            "recall": round(tp / (tp + fn), 4) if tp + fn else None}


def run_demo(out: str | Path, *, n_rois: int = 48, n_frames: int = 9000, fs: float = 30.0, seed: int = 0,
             mc_count: int = 30, progress: bool = True) -> dict[str, Any]:
    """Run the all-pairs demo into ``out``; returns (and writes) ``summary.json``'s content."""
    import dask
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .coherence import coherence
    from .connectivity import band_matrix, connectivity, write_connectivity
    from .datasets import open_result, write_result
    from .io import synthesize_networks
    from .plot import cluster_order, plot_connectivity
    from .significance import fdr_bh

    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    syn = synthesize_networks(n_rois=n_rois, n_frames=n_frames, fs=fs, seed=seed)
    networks = syn.attrs["truth_groups"]
    group, lag_truth = syn.truth_group.values, syn.truth_lag.values
    sig = syn.signals.chunk({"roi": n_rois})
    pairs = coherence(sig, all_pairs=True, min_period=0.5, max_period=30, dj=1 / 12, method="multirate",
                      significance="ar1", mc_count=mc_count, p_values="beta", progress=progress)
    write_result(pairs, out / "coherence.zarr", overwrite=True, progress=progress)
    pairs = open_result(out / "coherence.zarr")  # computed once: everything below reads the store
    t_pairs = time.perf_counter() - t0
    bands = {f"{g['period_s']:g} s": (g["period_s"] * (1 - BAND_HALF_WIDTH), g["period_s"] * (1 + BAND_HALF_WIDTH))
             for g in networks}
    conn = connectivity(pairs, bands=bands)
    write_connectivity(conn, out / "connectivity.zarr", overwrite=True, progress=progress)
    ds = pairs.compute()
    ia, ib = ds.index_a.values, ds.index_b.values
    per_network, found_all, fdr_all, truth_all = [], [], [], []
    matrices, truths, titles = [], [], []
    for g in networks:
        k, period = g["group"], g["period_s"]
        at = ds.sel(period=period, method="nearest")
        truth = (group[ia] == k) & (group[ib] == k)
        found = np.nan_to_num(at.significant_fraction.values, nan=0.0) >= MIN_FRACTION
        fdr = fdr_bh(at.p_value.values, 0.05)
        lag_err = np.abs(at.lag.values - (lag_truth[ib] - lag_truth[ia]))[truth & found]
        per_network.append({
            "network": k, "period_s": period, "lag_spread_s": g["lag_spread_s"], "rois": int(g["n_rois"]),
            "planted_pairs": int(truth.sum()), "significant_fraction_rule": _scores(found, truth),
            "fdr_bh_5pct": _scores(fdr, truth),
            "lag_error_s": {"median": round(float(np.median(lag_err)), 4) if lag_err.size else None,
                            "max": round(float(lag_err.max()), 4) if lag_err.size else None},
        })
        found_all.append(found)
        fdr_all.append(fdr)
        truth_all.append(truth)
        name = f"{period:g} s"
        matrices.append(band_matrix(out / "connectivity.zarr", name).values)
        truths.append((group[:, None] == k) & (group[None, :] == k))
        titles.append(f"band {bands[name][0]:.3g}-{bands[name][1]:.3g} s")
    overall = _scores(np.concatenate(found_all), np.concatenate(truth_all))
    fig = plot_connectivity(matrices, truths, titles, order=[cluster_order(m) for m in matrices])
    fig.suptitle(f"All-pairs coherence of {n_rois} synthetic rois ({n_frames / fs:g} s at {fs:g} Hz): "
                 "planted networks, no stimulus")
    fig.savefig(out / "connectivity.png", dpi=110)
    plt.close(fig)
    summary = {
        "demo": f"all-pairs coherence of {n_rois} synthetic rois x {n_frames} frames ({n_frames / fs:g} s at "
                f"{fs:g} Hz) with {len(networks)} planted networks and no stimulus; AR(1) significance "
                f"({mc_count} surrogate pairs per bucket pair)",
        "rule": f"a pair is found at a planted period when its significant_fraction there is >= {MIN_FRACTION} "
                "(fdr_bh_5pct: Benjamini-Hochberg at 5% over all pairs' beta-tail p-values at that period); "
                "precision and recall over (pair, planted period)",
        "precision": overall["precision"], "recall": overall["recall"],
        "fdr_bh_5pct": _scores(np.concatenate(fdr_all), np.concatenate(truth_all)),
        "networks": per_network,
        "pairs": int(ds.sizes["pair"]), "tasks": int(ds.attrs["tasks"]), "all_pairs_tile": ds.attrs.get("all_pairs_tile"),
        "ar1_bucket_pairs": ds.attrs.get("ar1_bucket_pairs"),
        "wall_time_s": round(time.perf_counter() - t0, 2), "coherence_and_write_s": round(t_pairs, 2),
        "machine": {"cpus": dask.system.CPU_COUNT},
        "outputs": [str(out / n) for n in ("coherence.zarr", "connectivity.zarr", "connectivity.png", "summary.json")],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
