"""Figures: a pair's coherence map with COI shading, significance contour and phase arrows."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

__all__ = ["plot_coherence"]


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
