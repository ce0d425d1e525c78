"""Figures: a pair's coherence map with COI shading, significance contour and phase arrows."""

from __future__ import annotations

import textwrap
from typing import Any

import numpy as np
import xarray as xr

__all__ = ["ARROW_CONVENTION", "plot_coherence", "plot_pair", "plot_recovery", "plot_summary"]


def plot_coherence(
    ds: xr.Dataset,
    *,
    threshold: Any = None,
    ax: Any = None,
    title: str | None = None,
    arrows: bool = True,
    arrow_density: tuple[int, int] = (30, 30),
    arrow_min_coherence: float = 0.5,
    time_units: str = "s",
) -> Any:
    """Coherence map of one pair (Grinsted et al. 2004 style).

    Parameters
    ----------
    ds : xarray.Dataset
        Output of :func:`bioxen_dask.wavelet_coherence` (``coherence``, ``phase``, ``coi``).
    threshold : array-like (period,), optional
        Per-period significance threshold of the coherence; drawn as a black contour
        where ``coherence >= threshold``.
    ax : matplotlib Axes, optional
    title : str, optional
    arrows : bool
        Draw phase arrows where coherence >= ``arrow_min_coherence``, in Grinsted's
        convention: right = in phase, left = anti-phase, down = x leads y by 90 degrees
        (``phase = angle(Wx Wy*)`` is positive when x leads).
    arrow_density : (int, int)
        Number of arrows along time and period.
    arrow_min_coherence : float
    time_units : str

    Returns
    -------
    matplotlib Axes
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(9, 4.5), constrained_layout=True)
    t = np.asarray(ds["time"], dtype=float)
    period = np.asarray(ds["period"], dtype=float)
    R2 = np.asarray(ds["coherence"], dtype=float)
    mesh = ax.pcolormesh(t, period, R2, vmin=0, vmax=1, cmap="viridis", shading="nearest")
    ax.set_yscale("log", base=2)
    ax.set_ylim(period.max(), period.min())
    if threshold is not None:
        thr = np.asarray(threshold, dtype=float)[:, None]
        with np.errstate(invalid="ignore"):
            ratio = R2 / thr
        ax.contour(t, period, np.nan_to_num(ratio, nan=0.0), levels=[1.0], colors="k", linewidths=1.2)
    coi = np.asarray(ds["coi"], dtype=float)
    ax.fill_between(t, np.minimum(coi, period.max()), period.max(), color="white", alpha=0.55,
                    hatch="x", edgecolor="0.4", linewidth=0)
    if arrows and "phase" in ds:
        ti = np.linspace(0, t.size - 1, arrow_density[0]).astype(int)
        pj = np.linspace(0, period.size - 1, arrow_density[1]).astype(int)
        T, P = np.meshgrid(t[ti], period[pj])
        ph = np.asarray(ds["phase"], dtype=float)[np.ix_(pj, ti)]
        keep = R2[np.ix_(pj, ti)] >= arrow_min_coherence
        ax.quiver(T[keep], P[keep], np.cos(ph[keep]), -np.sin(ph[keep]), angles="uv",
                  scale=40, width=0.0025, headwidth=4, color="k")
    ax.set_xlabel(f"time ({time_units})")
    ax.set_ylabel(f"period ({time_units})")
    plt.colorbar(mesh, ax=ax, label="squared wavelet coherence")
    if title:
        ax.set_title(title)
    return ax


ARROW_CONVENTION = (
    "arrows (Grinsted et al. 2004): right = in phase, left = anti-phase, "
    "down = roi_a leads roi_b by 90 degrees, up = roi_a lags by 90 degrees"
)


def plot_pair(
    ds: xr.Dataset,
    pair: int = 0,
    *,
    ax: Any = None,
    title: str | None = None,
    caption: bool = True,
    **kwargs: Any,
) -> Any:
    """Coherence map of one pair of a :func:`bioxen_dask.coherence` result computed with maps.

    COI shading, the significance contour (the pair's ``threshold``) and phase arrows in
    Grinsted's convention (stated under the axes when ``caption``).

    Parameters
    ----------
    ds : xarray.Dataset
        With ``coherence``, ``phase`` (pair, period, time) and ``coi`` (time); ``threshold``
        (pair, period) when significance was computed.
    pair : int
        Position along ``pair``.
    **kwargs
        Passed to :func:`plot_coherence`.

    Returns
    -------
    matplotlib Axes
    """
    if "coherence" not in ds:
        raise ValueError("this result has no coherence maps; compute it with maps=True (outputs.maps: true).")
    one = ds.isel(pair=pair)
    threshold = one["threshold"].values if "threshold" in one else None
    ax = plot_coherence(one, threshold=threshold, ax=ax, title=title, **kwargs)
    if caption:
        text = ARROW_CONVENTION + ("; black contour: significant at the pair's threshold"
                                   if threshold is not None else "")
        ax.set_xlabel(ax.get_xlabel() + "\n\n")  # room for the caption below, inside the layout
        ax.text(0.0, -0.13, textwrap.fill(text, 110), transform=ax.transAxes, fontsize=7.5, va="top",
                in_layout=False)
    return ax


def plot_summary(
    ds: xr.Dataset,
    var: str = "coherence_mean",
    *,
    order: Any = None,
    ax: Any = None,
    title: str | None = None,
    ylabel: str | None = None,
    boundaries: Any = None,
    max_ticks: int = 25,
) -> Any:
    """Roi (pair) x period heatmap of a reduction, e.g. ``coherence_mean``.

    Rows are pairs in ``order``; the y ticks name each labelled row's roi id (reference mode)
    or ``roi_a-roi_b`` (list / all mode), never its row position, so a reordered figure does
    not read as roi numbers.

    Parameters
    ----------
    ds : xarray.Dataset
        A :func:`bioxen_dask.coherence` result.
    var : str
        The ``(pair, period)`` variable to show.
    order : array of int, optional
        Row order (e.g. rois sorted by planted group).
    ax : matplotlib Axes, optional
    title : str, optional
    ylabel : str, optional
        Default ``"roi id"`` / ``"pair (roi_a-roi_b)"``, with ``"(reordered)"`` when ``order``
        is given; e.g. ``"roi id (sorted by planted group)"``.
    boundaries : sequence of int, optional
        Row counts after which a white line is drawn (e.g. the ends of the planted groups).
    max_ticks : int
        At most this many labelled rows (evenly spread).

    Returns
    -------
    matplotlib Figure
    """
    import matplotlib.pyplot as plt

    values = np.asarray(ds[var].values, dtype=float)
    order = np.arange(values.shape[0]) if order is None else np.asarray(order)
    reordered = not np.array_equal(order, np.arange(values.shape[0]))
    period = np.asarray(ds["period"].values, dtype=float)
    if ax is None:
        fig, ax = plt.subplots(figsize=(7.5, 6), constrained_layout=True)
    else:
        fig = ax.figure
    edges = np.sqrt(period[1:] * period[:-1])
    edges = np.concatenate([[period[0] ** 2 / edges[0]], edges, [period[-1] ** 2 / edges[-1]]])
    vmax = 1.0 if var in ("coherence_mean", "phase_consistency", "significant_fraction") else np.nanmax(values)
    mesh = ax.pcolormesh(edges, np.arange(len(order) + 1), values[order], cmap="viridis", vmin=0,
                         vmax=vmax, shading="flat")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("period (s)")
    mode = ds.attrs.get("mode", "")
    if ylabel is None:
        ylabel = ("roi id" if mode == "reference" else "pair (roi_a-roi_b)") + (" (reordered)" if reordered else "")
    ax.set_ylabel(ylabel)
    if len(order):
        rows = np.unique(np.linspace(0, len(order) - 1, min(len(order), max(1, max_ticks))).round().astype(int))
        roi_a = np.asarray(ds["roi_a"].values)[order[rows]] if "roi_a" in ds.coords else order[rows]
        if mode == "reference" or "roi_b" not in ds.coords:
            labels = [str(a) for a in roi_a]
        else:
            roi_b = np.asarray(ds["roi_b"].values)[order[rows]]
            labels = [f"{a}-{b}" for a, b in zip(roi_a, roi_b)]
        ax.set_yticks(rows + 0.5, labels, fontsize=7 if len(rows) > 15 else None)
    for b in () if boundaries is None else boundaries:
        if 0 < b < len(order):
            ax.axhline(b, color="w", lw=1)
    ax.set_ylim(0, len(order))
    ax.invert_yaxis()
    fig.colorbar(mesh, ax=ax, label=ds[var].attrs.get("long_name", var))
    ref = f" vs {ds.attrs['reference']}" if mode == "reference" and "reference" in ds.attrs else ""
    ax.set_title(title or f"{var}{ref} ({len(order)} {'rois' if mode == 'reference' else 'pairs'})")
    return fig


def plot_recovery(ds: xr.Dataset, truth: Any, *, min_fraction: float = 0.5) -> Any:
    """Recovered vs planted groups of a synthetic recording (reference mode).

    Left: ``significant_fraction`` at each planted period, rois sorted by planted group
    (white lines between groups; the recovery rule is ``>= min_fraction``). Right: the lag
    recovered for each group's rois against the planted one (rate lag plus calcium delay;
    the rois follow the stimulus, so the expected lag is negative).

    Parameters
    ----------
    ds : xarray.Dataset
        Reference-mode result with ``significant_fraction`` and ``lag``.
    truth : mapping
        ``group`` per roi position and ``groups`` (the store's ``truth_groups``).

    Returns
    -------
    matplotlib Figure
    """
    import matplotlib.pyplot as plt

    member = np.asarray(truth["group"])[np.asarray(ds["index_a"].values)]
    groups = list(truth["groups"])
    order = np.argsort(np.where(member < 0, np.iinfo(np.int64).max, member), kind="stable")
    frac = np.stack([np.asarray(ds["significant_fraction"].sel(period=g["period_s"], method="nearest").values)
                     for g in groups], axis=1)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 5.5), constrained_layout=True,
                                 gridspec_kw={"width_ratios": [1, 1.3]})
    mesh = a1.imshow(frac[order], aspect="auto", interpolation="nearest", cmap="magma", vmin=0, vmax=1)
    a1.set_xticks(range(len(groups)), [f"{g['period_s']:g} s" for g in groups])
    a1.set_xlabel("planted period")
    a1.set_ylabel("roi (sorted by planted group; last: none)")
    bounds = np.cumsum([int((member == g["group"]).sum()) for g in groups])
    for b in bounds:
        a1.axhline(b - 0.5, color="w", lw=1)
    fig.colorbar(mesh, ax=a1, label=f"significant fraction (recovered if >= {min_fraction:g})")
    a1.set_title("recovery at the planted periods")
    for i, g in enumerate(groups):
        sel = member == g["group"]
        at = ds.sel(period=g["period_s"], method="nearest")
        lag = np.asarray(at["lag"].values)[sel]
        ok = np.nan_to_num(np.asarray(at["significant_fraction"].values)[sel], nan=0) >= min_fraction
        expected = -(g["lag_s"] + g.get("calcium_delay_s", 0.0))
        jitter = np.random.default_rng(i).uniform(-0.15, 0.15, lag.size)
        a2.scatter(i + jitter[ok], lag[ok], s=6, alpha=0.6, label=None)
        a2.scatter(i + jitter[~ok], lag[~ok], s=6, alpha=0.6, marker="x", color="0.5")
        a2.plot([i - 0.3, i + 0.3], [expected, expected], color="k", lw=2)
    a2.set_xticks(range(len(groups)), [f"{g['period_s']:g} s\n(lag {g['lag_s']:g} s)" for g in groups])
    a2.set_xlabel("planted group (its period and planted lag)")
    a2.set_ylabel("recovered lag (s); negative: roi follows the stimulus")
    a2.set_title("lag at the planted period (black: planted + calcium delay)")
    a2.axhline(0, color="0.7", lw=0.8)
    return fig


def plot_connectivity(matrices: Any, truth: Any, titles: Any, *, order: Any = None) -> Any:
    """Band coherence matrices, rois ordered by a clustering, beside the planted truth.

    Parameters
    ----------
    matrices : sequence of ndarray ``(roi, roi)``
        One band's ``coherence_mean`` each (:func:`bioxen_dask.connectivity.band_matrix`).
    truth : sequence of ndarray ``(roi, roi)`` of bool
        The planted pairs of each band (same roi order as ``matrices``).
    titles : sequence of str
    order : sequence of ndarray, optional
        Roi order per band; default average-linkage hierarchical clustering
        (:func:`scipy.cluster.hierarchy.linkage`) of ``1 - coherence``, leaves in
        dendrogram order.

    Returns
    -------
    matplotlib Figure
    """
    import matplotlib.pyplot as plt

    n = len(matrices)
    orders = list(order) if order is not None else [cluster_order(m) for m in matrices]
    fig, axes = plt.subplots(n, 2, figsize=(9.5, 4.3 * n), constrained_layout=True, squeeze=False)
    for k, (m, tr, title, o) in enumerate(zip(matrices, truth, titles, orders)):
        mesh = axes[k, 0].imshow(np.asarray(m)[np.ix_(o, o)], cmap="viridis", vmin=0, vmax=1,
                                 interpolation="nearest")
        axes[k, 0].set_title(f"{title}: coherence (rois ordered by clustering)")
        fig.colorbar(mesh, ax=axes[k, 0], label="band coherence_mean", shrink=0.85)
        axes[k, 1].imshow(np.asarray(tr, float)[np.ix_(o, o)], cmap="Greys", vmin=0, vmax=1, interpolation="nearest")
        axes[k, 1].set_title(f"{title}: planted network (same order)")
        for ax in axes[k]:
            ax.set_xlabel("roi (clustered order)")
            ax.set_ylabel("roi (clustered order)")
    return fig


def cluster_order(matrix: Any) -> np.ndarray:
    """Rois in the leaf order of an average-linkage clustering of ``1 - matrix`` (a symmetric
    similarity in [0, 1], e.g. a band's coherence; NaN taken as 0)."""
    from scipy.cluster.hierarchy import leaves_list, linkage
    from scipy.spatial.distance import squareform

    m = np.nan_to_num(np.asarray(matrix, float), nan=0.0)
    d = np.clip(1.0 - 0.5 * (m + m.T), 0.0, None)
    np.fill_diagonal(d, 0.0)
    return leaves_list(linkage(squareform(d, checks=False), method="average"))
