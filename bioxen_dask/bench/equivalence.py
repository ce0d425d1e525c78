"""Equivalence report: every CWT engine, converted to pycwt's convention, against pycwt itself.

For each signal (a chirp in noise, NINO3 from pycwt's wheel, PyWavelets' ECG) and each engine
of :data:`bioxen_dask.engines.ENGINES`, on pycwt's default Morlet grid with pycwt's boundary,
:func:`run` records, outside the cone of influence:

- ``power_corr``: Pearson correlation of ``|W|**2`` with pycwt's;
- ``power_relerr_mean`` / ``power_relerr_max``: ``|P - P_pycwt|`` divided by pycwt's mean
  power at that scale (pointwise ratios blow up near the zeros of ``|W|``), over all scales,
  and ``power_relerr_max_4s`` from 4 samples per scale up (where time-sampled wavelets stop
  aliasing);
- ``coef_relerr_max``: ``max |W - W_pycwt| / max |W_pycwt|``;
- ``wct_max_abs`` / ``wct_mean_abs``: the hybrid coherence (that engine's transforms,
  bioxen-dask's smoothing, :func:`bioxen_dask.wavelet_coherence` with ``engine=``) against
  ``pycwt.wct``, and ``wct_max_abs_8dt`` from periods of 8 dt up;
- ``cwt_wall_s``: the engine's transform time (one warm-up call, median of the timed calls).

A missing engine gets a row saying why (``status`` ``missing``, the reason in ``note``); a
failing one ``status`` ``failed``. Figures (PNG): power-difference maps per engine for
NINO3 and coherence-difference maps per engine for the synthetic pair, captioned with the
machine and date.

Examples
--------
>>> import tempfile
>>> path = run(tempfile.mkdtemp(), quick=True)  # doctest: +SKIP
>>> print(summary_markdown(path))  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..engines import ENGINES, available_engines, engine_cwt
from ..grid import ScaleGrid, make_grid
from ._harness import machine_info, machine_label, measure, read_csv, write_csv

__all__ = ["FIELDS", "run", "summary_markdown"]

FIELDS = [
    "signal", "n", "n_scales", "engine", "version", "status", "power_corr", "power_relerr_mean",
    "power_relerr_max", "power_relerr_max_4s", "coef_relerr_max", "wct_max_abs", "wct_mean_abs",
    "wct_max_abs_8dt", "cwt_wall_s", "note",
]

NOTES = (
    "all comparisons outside the cone of influence, pycwt 0.5.0b0's default Morlet(6) grid "
    "(dj=1/12; quick: dj=1/4), boundary='pycwt' (zero padding to the next power of two, as pycwt)",
    "power_relerr_*: |P - P_pycwt| / (pycwt's mean outside-COI power at that scale); *_4s: scales "
    ">= 4 samples; wct_*: hybrid wavelet_coherence(engine=) vs pycwt.wct, *_8dt: periods >= 8 dt",
)

#: The signal whose power-difference maps are drawn, and the pair whose coherence ones are.
POWER_MAP_SIGNAL = "nino3"
WCT_MAP_SIGNAL = "synthetic"


def _signals(quick: bool) -> dict[str, tuple[np.ndarray, np.ndarray, float]]:
    """``{name: (x, y, dt)}``: each signal and a partner (lagged copy plus noise) for coherence."""
    from ..sample_data import load_ecg, load_nino3

    rng = np.random.default_rng(20261201)
    n = 512 if quick else 2048
    t = np.arange(n, dtype=float)
    chirp = np.sin(2 * np.pi * t / 40.0 * (1 + t / (2 * n))) + 0.5 * rng.standard_normal(n)
    _, sst, dt_sst = load_nino3()
    ecg, dt_ecg = load_ecg()
    out = {}
    for name, x, dt in (("synthetic", chirp, 1.0), ("nino3", sst, dt_sst), ("ecg", ecg, dt_ecg)):
        x = (x - x.mean()) / x.std()
        y = np.roll(x, 3) + 0.5 * rng.standard_normal(x.size)
        out[name] = (x, y, dt)
    return out


def _outside(grid: ScaleGrid, n: int) -> np.ndarray:
    return grid.periods[:, None] <= grid.coi(n)[None, :]


def _power_metrics(W: np.ndarray, ref: np.ndarray, grid: ScaleGrid, mask: np.ndarray) -> dict[str, float]:
    P, Pr = np.abs(W) ** 2, np.abs(ref) ** 2
    rows = mask.any(axis=1)
    scale_mean = np.where(mask, Pr, 0).sum(axis=1) / np.maximum(mask.sum(axis=1), 1)
    rel = np.abs(P - Pr)[rows] / scale_mean[rows, None]
    m = mask[rows]
    big = (grid.scales / grid.dt >= 4)[rows]
    return {
        "power_corr": float(np.corrcoef(P[mask], Pr[mask])[0, 1]),
        "power_relerr_mean": float(rel[m].mean()),
        "power_relerr_max": float(rel[m].max()),
        "power_relerr_max_4s": float(rel[m & big[:, None]].max()) if (m & big[:, None]).any() else math.nan,
        "coef_relerr_max": float(np.abs(W - ref)[mask].max() / np.abs(ref)[mask].max()),
    }


def _wct_metrics(R2: np.ndarray, ref: np.ndarray, grid: ScaleGrid, mask: np.ndarray) -> dict[str, float]:
    d = np.abs(R2 - ref)
    p8 = mask & (grid.periods >= 8 * grid.dt)[:, None]
    return {"wct_max_abs": float(d[mask].max()), "wct_mean_abs": float(d[mask].mean()),
            "wct_max_abs_8dt": float(d[p8].max()) if p8.any() else math.nan}


def run(out_dir: str | os.PathLike, *, quick: bool = False) -> Path:
    """Compare every engine with pycwt; write ``equivalence.csv`` and PNG maps into ``out_dir``.

    Parameters
    ----------
    out_dir : path
        Where the CSV and figures go (created if needed).
    quick : bool
        Shorter synthetic signal (512 samples), ``dj = 1/4`` and one timed call: the test
        suite's setting. The full run uses 2048 samples, ``dj = 1/12``, three timed calls.

    Returns
    -------
    Path
        The CSV (rows as :data:`FIELDS`, machine record in its ``#`` header).

    Raises
    ------
    ImportError
        pycwt (the reference) is not installed.

    Examples
    --------
    >>> import tempfile
    >>> path = run(tempfile.mkdtemp(), quick=True)  # doctest: +SKIP
    >>> path.name  # doctest: +SKIP
    'equivalence.csv'
    """
    try:
        import pycwt
    except ImportError as exc:  # pragma: no cover - pycwt is in the test extras
        raise ImportError("the equivalence report compares with pycwt: pip install pycwt==0.5.0b0 "
                          "(or pip install 'bioxen-dask[bench]').") from exc
    from .._api import wavelet_coherence

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    info = machine_info()
    versions = available_engines()
    dj = 0.25 if quick else 1 / 12
    repeat = 1 if quick else 3
    rows: list[dict[str, Any]] = []
    maps: dict[str, dict[str, Any]] = {"power": {}, "wct": {}}
    for name, (x, y, dt) in _signals(quick).items():
        n = x.size
        grid = make_grid(n, dt, dj=dj)
        s0, J = float(grid.scales[0]), grid.n_scales - 1
        ref = pycwt.cwt(x, dt, dj, s0, J, pycwt.Morlet(6))[0]
        ref_wct = pycwt.wct(x, y, dt, dj=dj, s0=s0, J=J, sig=False)[0]
        mask = _outside(grid, n)
        base = {"signal": name, "n": n, "n_scales": grid.n_scales}
        if name == POWER_MAP_SIGNAL:
            maps["power"]["_grid"] = (grid, np.abs(ref) ** 2)
        if name == WCT_MAP_SIGNAL:
            maps["wct"]["_grid"] = (grid, ref_wct)
        for engine in ENGINES:
            version = versions[engine]
            if version.startswith("unavailable"):
                rows.append({**base, "engine": engine, "version": "", "status": "missing", "note": version})
                continue
            try:
                kept: dict[str, np.ndarray] = {}

                def transform() -> None:
                    kept["W"] = engine_cwt(x, grid, engine)

                timing = measure(transform, repeat, memory=False)
                W = kept["W"]
                ds = wavelet_coherence(x, y, dt, dj=dj, boundary="pycwt", dtype="float64", engine=engine)
                R2 = ds.coherence.values
            except Exception as exc:  # reported, never dropped
                rows.append({**base, "engine": engine, "version": version, "status": "failed",
                             "note": f"{type(exc).__name__}: {exc}"})
                continue
            rows.append({**base, "engine": engine, "version": version, "status": "ok",
                         **_power_metrics(W, ref, grid, mask), **_wct_metrics(R2, ref_wct, grid, mask),
                         "cwt_wall_s": timing.wall_median, "note": ""})
            if name == POWER_MAP_SIGNAL:
                maps["power"][engine] = np.abs(W) ** 2
            if name == WCT_MAP_SIGNAL:
                maps["wct"][engine] = R2
    path = write_csv(out / "equivalence.csv", rows, info, notes=NOTES, fields=FIELDS)
    label = machine_label(info)
    _difference_maps(out / f"equivalence_power_{POWER_MAP_SIGNAL}.png", maps["power"], label,
                     f"power difference |P - P_pycwt| / mean scale power, {POWER_MAP_SIGNAL}",
                     lambda P, ref, grid: np.abs(P - ref) / ref.mean(axis=1, keepdims=True))
    _difference_maps(out / f"equivalence_wct_{WCT_MAP_SIGNAL}.png", maps["wct"], label,
                     f"coherence difference |WCT - pycwt.wct|, {WCT_MAP_SIGNAL} pair",
                     lambda R2, ref, grid: np.abs(R2 - ref))
    return path


def _difference_maps(path: Path, fields: dict[str, Any], label: str, what: str,
                     diff: Callable[[np.ndarray, np.ndarray, ScaleGrid], np.ndarray]) -> Path:
    """One panel per engine: log10 of the difference against pycwt, with the COI."""
    from matplotlib.figure import Figure

    grid, ref = fields["_grid"]
    engines = [e for e in ENGINES if e in fields]
    n = ref.shape[-1]
    t = np.arange(n) * grid.dt
    fig = Figure(figsize=(3.2 * max(1, len(engines)), 3.6), layout="constrained")
    axes = fig.subplots(1, max(1, len(engines)), sharey=True, squeeze=False)[0]
    tiny = 1e-16
    mesh = None
    for ax, engine in zip(axes, engines):
        d = np.log10(np.maximum(diff(fields[engine], ref, grid), tiny))
        mesh = ax.pcolormesh(t, grid.periods, d, vmin=-16, vmax=0, cmap="magma", shading="auto")
        ax.plot(t, grid.coi(n), color="w", lw=1)
        ax.fill_between(t, grid.coi(n), grid.periods[-1], color="w", alpha=0.35)
        ax.set_yscale("log")
        ax.set_ylim(grid.periods[-1], grid.periods[0])
        ax.set_title(engine, fontsize=9)
        ax.set_xlabel("time")
    axes[0].set_ylabel("period")
    if mesh is not None:
        fig.colorbar(mesh, ax=list(axes), label="log10 difference")
    fig.suptitle(f"{what}\n{label}", fontsize=9)
    fig.savefig(path, dpi=90)
    return path


def _fmt(v: Any, spec: str = ".2e") -> str:
    if isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v)):
        return format(v, spec)
    return "-"


def summary_markdown(csv_path: str | os.PathLike) -> str:
    """A markdown table of an :func:`run` CSV, captioned with its machine and date.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from bioxen_dask.bench import write_csv
    >>> p = write_csv(pathlib.Path(tempfile.mkdtemp()) / "e.csv",
    ...               [{"signal": "nino3", "engine": "fcwt", "status": "missing", "note": "unavailable: x"}],
    ...               {"cpu": "CPU", "cores": "2", "memory": "8 GiB", "date": "2026-12-01"})
    >>> print(summary_markdown(p).splitlines()[-1])
    | nino3 | fcwt | - | not available: unavailable: x | | | | | |
    """
    rows, info, notes = read_csv(csv_path)
    lines = [
        f"CWT engines against pycwt 0.5.0b0, outside the cone of influence ({machine_label(info)}).",
        "",
        "| signal | engine | version | power corr. | power rel. err. mean / max | max from 4 samples "
        "| coef. rel. err. | hybrid WCT max / mean abs | WCT max from 8 dt |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        head = f"| {r.get('signal', '')} | {r.get('engine', '')} | {r.get('version') or '-'} |"
        if r.get("status") != "ok":
            reason = str(r.get("note", "")).replace("|", "/")
            status = "not available" if r.get("status") == "missing" else "failed"
            lines.append(f"{head} {status}: {reason} | | | | | |")
            continue
        lines.append(
            f"{head} {_fmt(r.get('power_corr'), '.8f')} | {_fmt(r.get('power_relerr_mean'))} / "
            f"{_fmt(r.get('power_relerr_max'))} | {_fmt(r.get('power_relerr_max_4s'))} | "
            f"{_fmt(r.get('coef_relerr_max'))} | {_fmt(r.get('wct_max_abs'))} / {_fmt(r.get('wct_mean_abs'))} | "
            f"{_fmt(r.get('wct_max_abs_8dt'))} |"
        )
    return "\n".join(lines)
