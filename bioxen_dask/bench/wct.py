"""Wavelet coherence of one pair, and what it costs on top of two transforms.

For records of ``N`` samples (default 1e3, 4e3, 18,000 -- ten minutes at 30 Hz -- and 1e5)
on pycwt's default grid (``make_grid(N, dt)``: smallest period ``2 dt``, ``dj = 1/12``; 159
scales at 18,000), one process times:

- ``pycwt.wct(..., sig=False)`` -- the reference, float64;
- ``bioxen_dask.compat.wct(..., sig=False)`` -- the drop-in, same numbers, float64;
- bioxen-dask's kernels in float32 with the ``linear`` boundary (the pipeline's path: two
  transforms, three smoothings, coherence and phase), on one thread and on every core
  (``workers=-1``, engine ``"bioxen-dask all cores"``);
- the same maps by multirate evaluation (:func:`bioxen_dask.kernels.multirate_coherence`,
  ``wavelet_coherence(method="multirate")``), on one thread and on every core, with their
  largest coherence difference from the exact float64 path in the note, and its parts
  (stages ``"multirate part: ..."``, one thread): the fused small-scale tiles and each band;
- each engine's two transforms alone (``2 x CWT``), so ``wct / (2 x cwt)`` is the overhead
  of smoothing and coherence per engine;
- the parts of the native time (stages ``"part: ..."``): each step of the coherence alone,
  and the whole coherence on the smallest scales (short overlap-save FFTs) and on the rest;
- the *hybrid* pipelines: ``wavelet_coherence(..., engine=name)`` for every other installed
  engine (its CWT converted to pycwt's convention by :mod:`bioxen_dask.engines`, then
  bioxen-dask's smoothing and coherence), float64, in pycwt's frame (``boundary="pycwt"``) --
  what each engine gives end to end. Missing engines get a row saying why.

Run it with ``bioxen-dask bench wct``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import scipy.fft

from ..grid import ScaleGrid, make_grid
from ._harness import counts_option, machine_info, measure, write_csv

__all__ = ["ALL_CORES", "DEFAULT_SIZES", "MULTIRATE", "MULTIRATE_ALL_CORES", "MULTIRATE_PART_PREFIX", "PART_PREFIX",
           "run"]

#: Engine label of the native kernels run with every core (``workers=-1``).
ALL_CORES = "bioxen-dask all cores"
#: Engine labels of the multirate maps, one thread and every core.
MULTIRATE, MULTIRATE_ALL_CORES = "bioxen-dask multirate", "bioxen-dask multirate all cores"

DEFAULT_SIZES = (1_000, 4_000, 18_000, 100_000)
QUICK_SIZES = (1_000, 2_000)
DT = 1 / 30
FIELDS = ["benchmark", "engine", "stage", "n", "n_scales", "status", "wall_median_s", "wall_min_s",
          "cpu_median_s", "first_s", "peak_mem_mb", "repeat", "pycwt_over_this", "wct_over_2cwt", "note"]


def _pair(n: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(n) * DT
    x = np.sin(2 * np.pi * t / 5) + rng.standard_normal(n)
    return x, np.roll(x, 12) + rng.standard_normal(n)


def _callers(x: np.ndarray, y: np.ndarray, grid: ScaleGrid) -> dict[tuple[str, str], tuple[Callable[[], Any], str]]:
    """``(engine, stage) -> (call, note)`` for the pair ``x``, ``y``."""
    from .. import compat
    from ..kernels import Smoother, coherence, cwt, multirate_coherence

    s0, dj, J = float(grid.scales[0]), float(grid.dj), grid.n_scales - 1

    def native_wct(workers=None, smoother=Smoother(grid), threaded=Smoother(grid, workers=-1)):
        sm = smoother if workers is None else threaded
        return coherence(cwt(x, grid, workers=workers), cwt(y, grid, workers=workers), sm)

    cores = os.cpu_count() or 1
    calls = {
        ("bioxen-dask", "wct"): (native_wct, "kernels: cwt x2 + Smoother + coherence/phase, float32, linear, 1 thread"),
        ("bioxen-dask", "2 x cwt"): (lambda: (cwt(x, grid), cwt(y, grid)), "kernels.cwt float32 linear, twice"),
        (ALL_CORES, "wct"): (lambda: native_wct(-1), f"the same with workers=-1 ({cores} threads)"),
        (ALL_CORES, "2 x cwt"): (lambda: (cwt(x, grid, workers=-1), cwt(y, grid, workers=-1)),
                                 f"kernels.cwt float32 linear, twice, workers=-1 ({cores} threads)"),
        ("bioxen-dask compat", "wct"): (lambda: compat.wct(x, y, DT, dj, s0, J, sig=False),
                                        "compat.wct(sig=False): pycwt's numbers, float64"),
        ("bioxen-dask compat", "2 x cwt"): (lambda: (compat.cwt(x, DT, dj, s0, J), compat.cwt(y, DT, dj, s0, J)),
                                            "compat.cwt twice, float64"),
    }
    exact, _ = coherence(cwt(x, grid, dtype="float64"), cwt(y, grid, dtype="float64"), Smoother(grid))
    err = float(np.abs(multirate_coherence(x, y, grid)[0] - exact).max())
    for engine, workers in ((MULTIRATE, None), (MULTIRATE_ALL_CORES, -1)):
        calls[(engine, "wct")] = (
            lambda workers=workers: multirate_coherence(x, y, grid, workers=workers),
            f"kernels.multirate_coherence, float32, linear, {'1 thread' if workers is None else f'workers=-1 ({cores} threads)'}"
            f"; max |coherence - exact float64 path| = {err:.1e}")
    calls.update({(MULTIRATE, stage): v for stage, v in _multirate_part_callers(x, y, grid).items()})
    for engine, workers in (("bioxen-dask", None), (ALL_CORES, -1)):
        calls.update({(engine, stage): (fn, note) for stage, (fn, note) in _part_callers(x, y, grid, workers).items()})
    from .._api import wavelet_coherence
    from ..engines import ENGINES, require_engine

    for name in ENGINES:
        if name == "bioxen":
            continue
        try:
            require_engine(name)
        except ImportError as exc:
            calls[(f"hybrid {name}", "wct")] = (None, f"missing: {exc}")
            continue
        calls[(f"hybrid {name}", "wct")] = (
            lambda name=name: wavelet_coherence(x, y, DT, dj=dj, s0=s0, J=J, engine=name, dtype="float64",
                                                boundary="pycwt"),
            f"wavelet_coherence(engine={name!r}, boundary='pycwt'): {name} CWT in pycwt's convention and frame "
            "+ bioxen-dask coherence, float64")
    try:
        import pycwt
    except ImportError:
        return calls
    calls[("pycwt", "wct")] = (lambda: pycwt.wct(x, y, DT, dj, s0, J, sig=False), "pycwt.wct(sig=False)")
    calls[("pycwt", "2 x cwt")] = (lambda: (pycwt.cwt(x, DT, dj, s0, J), pycwt.cwt(y, DT, dj, s0, J)),
                                   "pycwt.cwt twice")
    return calls


#: Stage names of the rows that split the native one-pair time into its parts.
PART_PREFIX = "part: "
#: Stage names of the rows that split the multirate one-pair time (one thread) into its parts.
MULTIRATE_PART_PREFIX = "multirate part: "


def _multirate_part_callers(x: np.ndarray, y: np.ndarray, grid: ScaleGrid) -> dict[str, tuple[Callable[[], Any], str]]:
    """Where the multirate one-pair time goes (one thread): the fused small-scale tiles, and each
    multirate band (its frame's FFT of the pair included), each timed alone."""
    from ..grid import DEFAULT_TOL
    from ..kernels._coherence_map import RecordShare, coherence_plan

    plan = coherence_plan(grid, x.size, "pycwt", DEFAULT_TOL)
    xs = np.stack([x, y]).astype(np.float32)
    R2 = np.empty((grid.n_scales, x.size), dtype=np.float32)
    ang = np.empty_like(R2)
    s1, s2 = (RecordShare(filled=True, plan=plan, power=np.empty_like(R2)) for _ in range(2))
    parts: dict[str, tuple[Callable[[], Any], str]] = {}
    if plan.small is not None:
        sm, c = plan.small, plan.cut
        ext = sm.extended(xs)
        parts[f"{MULTIRATE_PART_PREFIX}fused tiles, scales 0-{c - 1}"] = (
            lambda: [(sm.tile_share(ext[:1], i, s1), sm.tile_share(ext[1:], i, s2),
                      sm.tile_cross(i, s1, s2, R2[:c], ang[:c], None)) for i in range(sm.n_tiles)],
            f"{sm.n_tiles} overlap-save tiles of {sm.T} samples (the scales that cannot be decimated)")
    for fr in plan.frames:
        for b in fr.bands:
            parts[f"{MULTIRATE_PART_PREFIX}band {b.own[0]}-{b.own[1] - 1}, stride {b.O}"] = (
                lambda fr=fr, b=b: _band_pair(plan, fr, b, xs, s1, s2, R2, ang),
                f"scales {b.own[0]}..{b.own[1] - 1} (periods {grid.periods[b.own[0]]:.3g}.."
                f"{grid.periods[b.own[1] - 1]:.3g} s), decimations {sorted({g.D for g in b.groups})}, frame {fr.F}")
    return parts


def _band_pair(plan: Any, fr: Any, b: Any, xs: np.ndarray, s1: Any, s2: Any, R2: np.ndarray, ang: np.ndarray) -> None:
    """One multirate band of one pair: the frame's FFT of the pair, both records' shares, the pair's."""
    X = scipy.fft.rfft(xs.astype(np.float64), n=fr.F, axis=-1).astype(np.complex64)
    plan._band_share(b, X[:1], s1)
    plan._band_share(b, X[1:], s2)
    plan._band_cross(b, s1, s2, R2, ang, None)


def _part_callers(x: np.ndarray, y: np.ndarray, grid: ScaleGrid, workers: int | None
                  ) -> dict[str, tuple[Callable[[], Any], str]]:
    """Where the native one-pair time goes: each step of :func:`bioxen_dask.kernels.coherence`
    alone (on inputs computed once here), and the whole coherence on the smallest scales --
    those the planner runs by overlap-save -- and on the rest."""
    from ..grid import ScaleGrid as Grid
    from ..kernels import Smoother, coherence, cross_spectrum, cwt, phase, power, scale_kernel, smooth_scale, smooth_time
    from ..kernels._plan import plan_bands, reach

    W1, W2 = cwt(x, grid), cwt(y, grid)
    P1, P2, W12 = power(W1), power(W2), cross_spectrum(W1, W2)
    T = [smooth_time(v, grid) for v in (P1, P2, W12)]
    w, inv = scale_kernel("pycwt", grid), 1.0 / grid.scales
    threads = f"workers={workers}" if workers else "1 thread"
    parts: dict[str, tuple[Callable[[], Any], str]] = {
        f"{PART_PREFIX}|W|^2 x2, W1 W2*": (
            lambda: (power(W1, workers=workers), power(W2, workers=workers), cross_spectrum(W1, W2, workers=workers)),
            f"kernels.power twice and kernels.cross_spectrum, float32, {threads}"),
        f"{PART_PREFIX}time smoothing x3": (
            lambda: [smooth_time(v, grid, workers=workers) for v in (P1, P2, W12)],
            f"kernels.smooth_time of the two powers (real FFTs) and the cross spectrum (complex), {threads}"),
        f"{PART_PREFIX}scale smoothing x3": (
            lambda: [smooth_scale(v, w, column_weights=inv, workers=workers) for v in T],
            f"kernels.smooth_scale (banded GEMMs, 1/scale folded in) of the three, {threads}"),
        f"{PART_PREFIX}phase": (lambda: phase(W12, workers), f"kernels.phase (arctan2), {threads}"),
    }
    n = x.shape[-1]
    bands = plan_bands(n, reach(grid.wavelet_support(), n, "linear"), "linear")
    k = max([b.stop for b in bands if b.hop] or [0])  # scales below k: short overlap-save FFTs
    for lo, hi, what in ((0, k, "smallest"), (k, grid.n_scales, "largest")):
        if not 0 < hi - lo < grid.n_scales:
            continue
        sub = Grid.from_s0(dt=grid.dt, s0=float(grid.scales[lo]), dj=grid.dj, J=hi - lo - 1, wavelet=grid.wavelet)
        sm = Smoother(sub, workers=workers)
        parts[f"{PART_PREFIX}wct, {hi - lo} {what} scales"] = (
            lambda sub=sub, sm=sm: coherence(cwt(x, sub, workers=workers), cwt(y, sub, workers=workers), sm),
            f"the whole native coherence on scales {lo}..{hi - 1} only (periods {grid.periods[lo]:.3g}.."
            f"{grid.periods[hi - 1]:.3g} s), {threads}")
    return parts


def run(out_dir: str | os.PathLike = "bench-output", *, quick: bool = False,
        sizes: Sequence[int] | None = None, repeat: int | None = None, memory: bool = True,
        max_seconds: float = 30.0, progress: bool = True) -> Path:
    """Time one-pair coherence per engine and record length; write ``wct.csv`` in ``out_dir``.

    Parameters
    ----------
    out_dir : path
    quick : bool
        Two short records, one timed call each.
    sizes : sequence of int, optional
        Record lengths (default :data:`DEFAULT_SIZES`).
    repeat : int, optional
        Timed calls per configuration (default 5, or 3 where a call takes over a second).
    memory : bool
        Trace peak allocations (one extra call).
    max_seconds : float
        Skip an engine at a size where its time, extrapolated from its previous size
        (``~ n_scales * N``), exceeds this; the row says so.
    progress : bool
        Print a line per configuration.

    Returns
    -------
    Path
        The CSV: one row per (engine, stage, N), with ``pycwt_over_this`` (speed-up over
        pycwt for the same stage) and ``wct_over_2cwt`` on the ``wct`` rows.
    """
    sizes = counts_option(sizes or (QUICK_SIZES if quick else DEFAULT_SIZES), "sizes", 64)
    info = machine_info()
    rows: list[dict[str, Any]] = []
    missing = []
    last: dict[tuple[str, str], tuple[float, float]] = {}  # (engine, stage) -> (n_scales * n, wall) at its last size
    for n in sizes:
        x, y = _pair(n)
        grid = make_grid(n, DT)
        calls = _callers(x, y, grid)
        if ("pycwt", "wct") not in calls:
            missing.append("pycwt: not installed (pip install pycwt==0.5.0b0); no speed-up ratios")
        block = []
        for (engine, stage), (fn, note) in calls.items():
            base = {"benchmark": "wct", "engine": engine, "stage": stage, "n": n, "n_scales": grid.n_scales}
            if fn is None:  # an engine that is not installed: said, not dropped
                block.append({**base, "status": note[:300]})
                continue
            work = grid.n_scales * n
            if (engine, stage) in last and last[engine, stage][1] * work / last[engine, stage][0] > max_seconds:
                guess = last[engine, stage][1] * work / last[engine, stage][0]
                block.append({**base, "status": f"skipped: extrapolated {guess:.0f} s > {max_seconds:.0f} s"})
                continue
            res = measure(fn, repeat or (1 if quick else "auto"), memory=memory)
            last[engine, stage] = (work, res.wall_median)
            block.append({**base, "status": "ok", **res.as_row(), "note": note})
            if progress:
                print(f"wct {engine:<20} {stage:<8} N={n:<7} scales={grid.n_scales:<4} {res.wall_median:9.4f} s",
                      flush=True)
        by = {(r["engine"], r["stage"]): r for r in block if r["status"] == "ok"}
        for r in by.values():
            ref = by.get(("pycwt", r["stage"]))
            if ref is not None:
                r["pycwt_over_this"] = ref["wall_median_s"] / r["wall_median_s"]
            two = by.get((r["engine"], "2 x cwt"))
            if r["stage"] == "wct" and two is not None:
                r["wct_over_2cwt"] = r["wall_median_s"] / two["wall_median_s"]
        rows += block
    notes = [f"pycwt default grid: make_grid(N, dt={DT:.6g}), dj=1/12, smallest period 2 dt"] + sorted(set(missing))
    return write_csv(Path(out_dir) / "wct.csv", rows, info, notes, FIELDS)
