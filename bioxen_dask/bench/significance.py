"""Monte Carlo significance: pycwt's ``wct_significance`` against bioxen-dask's surrogate stage.

pycwt's test of one coherence map transforms ``mc_count`` AR(1) surrogate pairs of
``ceil(6 * largest scale / dt)`` samples and histograms their coherence outside the COI in
a Python loop per scale. For records of ``N`` samples on pycwt's default grid and
``mc_count`` in (0, 100, 1000) this benchmark times, in one process:

- ``pycwt``: its one-off transform of the geometry surrogate and **one** surrogate pair
  (about 80 s at N = 18,000 on a 2-core machine), then the totals for 100 and 1000
  surrogates *extrapolated* from them (``setup + k * per_surrogate``; the rows say so).
  Configurations whose extrapolated single surrogate exceeds ``max_seconds`` are skipped
  with that reason.
- bioxen-dask's ``multirate`` engine (the default for pooled thresholds) and the ``exact``
  engine (every surrogate transformed whole, as pycwt does), on Dask's local threaded
  scheduler (all cores), measured at every count;
- the hybrids: the exact engine with every other installed CWT engine
  (``surrogate_significance(..., cwt_engine=name)``), at the smallest record length and
  surrogate count only (they are as slow as their transforms).

``mc_count = 0`` rows are the coherence of the data pair alone (what a test without
significance costs). Run it with ``bioxen-dask bench significance``.

:func:`bucket_bias` measures the bias of the AR(1)-bucket threshold cache
(``python -m bioxen_dask.bench.significance --bucket-bias``).
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..grid import make_grid
from ._harness import counts_option, machine_info, measure, write_csv

__all__ = ["DEFAULT_COUNTS", "DEFAULT_SIZES", "bucket_bias", "run"]

DEFAULT_SIZES = (1_000, 4_000, 18_000)
DEFAULT_COUNTS = (0, 100, 1000)
QUICK_SIZES = (256,)
QUICK_COUNTS = (0, 10)
DT = 1 / 30
G1, G2 = 0.72, 0.45
FIELDS = ["benchmark", "engine", "n", "n_scales", "surrogate_length", "mc_count", "status", "measured",
          "wall_s", "cpu_s", "per_surrogate_s", "pycwt_over_this", "note"]


def _pycwt_per_surrogate(grid) -> tuple[float, float, float]:
    """(setup wall, per-surrogate wall, per-surrogate CPU) of pycwt.wct_significance, one surrogate."""
    import pycwt

    dt, dj, s0, J = grid.dt, grid.dj, float(grid.scales[0]), grid.n_scales - 1
    N = int(math.ceil(s0 * 2 ** (J * dj) / dt * 6))
    np.random.seed(0)
    t0 = time.perf_counter()
    pycwt.cwt(np.random.randn(N), dt=dt, dj=dj, s0=s0, J=J, wavelet=pycwt.Morlet())
    setup = time.perf_counter() - t0
    np.random.seed(0)
    t0, c0 = time.perf_counter(), time.process_time()
    pycwt.wct_significance(G1, G2, dt, dj, s0, J, wavelet=pycwt.Morlet(), mc_count=1, progress=False, cache=False)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return setup, max(wall - setup, 1e-9), max(cpu - setup, 1e-9)


def _ours(grid, mc: int, engine: str, cwt_engine: str = "bioxen") -> tuple[float, float, dict]:
    from ..significance import AR1Null, surrogate_significance

    t0, c0 = time.perf_counter(), time.process_time()
    res = surrogate_significance(grid, AR1Null(G1, G2), mc_count=mc, levels=(0.95,), seed=0, engine=engine,
                                 scheduler="threads", cwt_engine=cwt_engine)
    return time.perf_counter() - t0, time.process_time() - c0, res.attrs


def _data_coherence(n: int, grid) -> dict[str, float]:
    """Wall seconds of the data pair's coherence alone: pycwt and bioxen-dask (mc_count = 0)."""
    from .. import compat

    rng = np.random.default_rng(1)
    x, y = rng.standard_normal(n), rng.standard_normal(n)
    s0, dj, J = float(grid.scales[0]), grid.dj, grid.n_scales - 1
    out = {"multirate": measure(lambda: compat.wct(x, y, DT, dj, s0, J, sig=False), 1, memory=False).wall_median}
    out["exact"] = out["multirate"]
    try:
        import pycwt
    except ImportError:
        return out
    out["pycwt"] = measure(lambda: pycwt.wct(x, y, DT, dj, s0, J, sig=False), 1, memory=False).wall_median
    return out


def run(out_dir: str | os.PathLike = "bench-output", *, quick: bool = False,
        sizes: Sequence[int] | None = None, counts: Sequence[int] | None = None,
        max_seconds: float | None = None, progress: bool = True) -> Path:
    """Time Monte Carlo significance per engine, record length and surrogate count.

    Parameters
    ----------
    out_dir : path
    quick : bool
        One short record, 0 and 10 surrogates.
    sizes, counts : sequences of int, optional
        Record lengths (default :data:`DEFAULT_SIZES`) and surrogate counts
        (:data:`DEFAULT_COUNTS`).
    max_seconds : float, optional
        Skip a measurement predicted to take longer (default 200 s; 20 s with ``quick``):
        pycwt's single surrogate, predicted from the previous size by
        ``n_scales * surrogate length``; the exact engine's run, from its 100-surrogate time.
    progress : bool

    Returns
    -------
    Path
        ``significance.csv``; ``measured`` is ``yes`` or ``extrapolated``.
    """
    sizes = counts_option(sizes or (QUICK_SIZES if quick else DEFAULT_SIZES), "sizes", 64)
    counts = counts_option(counts or (QUICK_COUNTS if quick else DEFAULT_COUNTS), "counts", 0)
    max_seconds = float(max_seconds if max_seconds is not None else (20.0 if quick else 200.0))
    from ..significance import surrogate_length

    info = machine_info()
    rows: list[dict[str, Any]] = []
    notes = [f"AR(1) null g1={G1}, g2={G2}; pycwt default grid make_grid(N, dt={DT:.6g}); ours on Dask threads "
             f"({os.cpu_count()} cores)"]
    pycwt_prev: tuple[float, float] | None = None  # (work, per-surrogate seconds) of the last pycwt run
    for n in sorted(sizes):
        grid = make_grid(n, DT)
        L = surrogate_length(grid)
        base = {"benchmark": "significance", "n": n, "n_scales": grid.n_scales, "surrogate_length": L}
        zero = _data_coherence(n, grid)
        pycwt_total: dict[int, float] = {}
        # pycwt: one measured surrogate, the rest extrapolated
        work = grid.n_scales * L
        guess = pycwt_prev[1] * work / pycwt_prev[0] if pycwt_prev else 0.0
        pyc: tuple[float, float, float] | None = None
        status = "ok"
        if "pycwt" not in zero:
            status = "missing: pycwt not installed (pip install pycwt==0.5.0b0)"
        elif guess > max_seconds:
            status = f"skipped: one surrogate predicted {guess:.0f} s > {max_seconds:.0f} s"
        else:
            pyc = _pycwt_per_surrogate(grid)
            pycwt_prev = (work, pyc[1])
        for mc in counts:
            row = {**base, "engine": "pycwt", "mc_count": mc}
            if mc == 0 and "pycwt" in zero:
                pycwt_total[0] = zero["pycwt"]
                rows.append({**row, "status": "ok", "measured": "yes", "wall_s": zero["pycwt"],
                             "note": "pycwt.wct(sig=False): the data pair alone"})
            elif pyc is None:
                rows.append({**row, "status": status})
            else:
                setup, per, per_cpu = pyc
                total = zero["pycwt"] + setup + mc * per
                pycwt_total[mc] = total
                rows.append({**row, "status": "ok", "measured": "yes" if mc == 1 else "extrapolated",
                             "wall_s": total, "cpu_s": zero["pycwt"] + setup + mc * per_cpu, "per_surrogate_s": per,
                             "note": f"1 surrogate measured ({per:.2f} s wall, setup {setup:.2f} s); "
                                     f"total = wct + setup + {mc} x per surrogate"})
        if progress and pyc:
            print(f"significance pycwt N={n}: {pyc[1]:.2f} s per surrogate (measured one)", flush=True)
        exact_per: float | None = None
        for engine in ("multirate", "exact"):
            setup = _ours(grid, 1, engine)[0]  # warm-up: the multirate plan and filter banks, once per grid
            for mc in counts:
                row = {**base, "engine": f"bioxen-dask {engine}", "mc_count": mc}
                if mc == 0:
                    rows.append({**row, "status": "ok", "measured": "yes", "wall_s": zero[engine],
                                 "note": "compat.wct(sig=False): the data pair alone"})
                    continue
                if engine == "exact" and exact_per is not None and exact_per * mc > max_seconds:
                    rows.append({**row, "status": f"skipped: predicted {exact_per * mc:.0f} s > {max_seconds:.0f} s"})
                    continue
                wall, cpu, attrs = _ours(grid, mc, engine)
                if engine == "exact":
                    exact_per = wall / mc
                total = zero[engine] + wall
                r = {**row, "status": "ok", "measured": "yes", "wall_s": total, "cpu_s": cpu,
                     "per_surrogate_s": wall / mc,
                     "note": f"engine={attrs.get('engine')}, one-off set-up {setup:.2f} s not included, "
                             f"batch {attrs.get('batch_size')}, "
                             f"{attrs.get('memory_per_task_bytes', 0) / 2**20:.0f} MiB per task"}
                if pyc is not None:
                    r["pycwt_over_this"] = pyc[1] / (wall / mc)
                rows.append(r)
                if progress:
                    print(f"significance {engine:<9} N={n:<6} mc={mc:<5} {wall:8.2f} s "
                          f"({wall / mc * 1e3:.1f} ms per surrogate)", flush=True)
    rows += _hybrid_rows(sizes[0], [c for c in counts if c > 0][:1], max_seconds, progress)
    return write_csv(Path(out_dir) / "significance.csv", rows, info, notes, FIELDS)


def _hybrid_rows(n: int, counts: Sequence[int], max_seconds: float, progress: bool) -> list[dict[str, Any]]:
    """The exact engine on each external CWT engine (or why it is missing)."""
    from ..engines import ENGINES, require_engine
    from ..significance import surrogate_length

    grid = make_grid(n, DT)
    base = {"benchmark": "significance", "n": n, "n_scales": grid.n_scales, "surrogate_length": surrogate_length(grid)}
    rows = []
    for name in ENGINES:
        if name == "bioxen":
            continue
        for mc in counts:
            row = {**base, "engine": f"hybrid {name} exact", "mc_count": mc}
            try:
                require_engine(name)
            except ImportError as exc:
                rows.append({**row, "status": f"missing: {exc}"[:300]})
                continue
            one = _ours(grid, 1, "exact", name)[0]
            if one * mc > max_seconds:
                rows.append({**row, "status": f"skipped: predicted {one * mc:.0f} s > {max_seconds:.0f} s"})
                continue
            wall, cpu, attrs = _ours(grid, mc, "exact", name)
            rows.append({**row, "status": "ok", "measured": "yes", "wall_s": wall, "cpu_s": cpu,
                         "per_surrogate_s": wall / mc, "note": f"surrogate_significance(cwt_engine={name!r})"})
            if progress:
                print(f"significance hybrid {name:<10} N={n:<6} mc={mc:<5} {wall:8.2f} s", flush=True)
    return rows


def bucket_bias(mc_count: int = 150, width: float = 0.1, gs: Sequence[float] = (0.0, 0.5, 0.8, 0.9, 0.95),
                g_ref: float = 0.5, n: int = 18_000) -> float:
    """Largest threshold shift between an AR(1) bucket's centre and its edges.

    Thresholds at ``atanh(g) +- width/2`` and at the centre are computed with common random
    numbers (one seed), so the shift is the bias of reading a cached bucket, not Monte Carlo
    noise. Returns the largest shift over ``gs`` (printed per ``g``).
    """
    from ..significance import ar1_thresholds

    grid = make_grid(n, DT)
    worst = 0.0
    print(f"bucket bias: width {width} in atanh(g), reference g {g_ref}, {mc_count} surrogates, common seeds")
    for g in gs:
        c = float(np.arctanh(g))
        th = {d: ar1_thresholds(grid, g_ref, float(np.tanh(c + d)), mc_count=mc_count, seed=3)
              for d in (-width / 2, 0.0, width / 2)}
        shift = max(float(np.nanmax(np.abs(th[d] - th[0.0]))) for d in (-width / 2, width / 2))
        worst = max(worst, shift)
        print(f"  g={g:.2f}: largest |threshold(edge) - threshold(centre)| = {shift:.4f}", flush=True)
    print(f"bucket bias at width {width}: {worst:.4f}")
    return worst


if __name__ == "__main__":  # pragma: no cover - a measurement, run by hand
    import argparse

    ap = argparse.ArgumentParser(description="Monte Carlo significance benchmark (see the module docstring).")
    ap.add_argument("--bucket-bias", action="store_true", help="measure the AR(1)-bucket cache bias instead")
    ap.add_argument("--surrogates", type=int, default=150)
    ap.add_argument("--width", type=float, default=0.1)
    ap.add_argument("--out", default="bench-output")
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    if a.bucket_bias:
        bucket_bias(a.surrogates, a.width)
    else:
        print(run(a.out, quick=a.quick))
