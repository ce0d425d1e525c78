"""CWT benchmark: pycwt, PyWavelets, ssqueezepy, fCWT and bioxen-dask on the same scales.

Every engine transforms the same white-noise record on the same Morlet scales, in one
process, for every record length ``N`` and scale count of the matrix (default
``N = 1e2 ... 1e7`` and 10, 50, 100, 500 scales). Each engine is called the way its users
call it (its own conventions: :mod:`bioxen_dask.bench.equivalence` measures how far those
are from pycwt's); bioxen-dask runs in float32 with its default ``linear`` boundary and with
``circular`` (the price of exact linear convolution), and in float64 with pycwt's padding
(the drop-in). fCWT is timed with its output preallocated and no FFTW wisdom file, with one
thread and with all cores.

Nothing is silently dropped: an engine that is not installed or fails gets a ``status``
row saying why, and a configuration that would not fit is recorded as skipped with its
reason -- the output alone (``N * scales`` complex values) over ``memory_budget`` bytes, or
a run time extrapolated from the engine's smaller sizes (``T ~ N * scales``) over
``max_seconds``. Those skips are the memory limits the report tabulates.

Two grids (:data:`GRIDS`), both ``ScaleGrid.from_s0(dt=1, s0=2/fourier_factor, dj,
J=scales-1)`` (the smallest period 2 samples, pycwt's default ``s0``): ``n/8`` with ``dj =
min(1/12, log2(N/(8 s0))/(scales-1))`` so the largest scale stays at most ``N/8`` samples
(at 100 scales and N = 1e6 it stops at ~600), and ``pycwt``, pycwt's own kind, ``dj =
log2(N/s0)/(scales-1)``: periods up to the record length. bioxen-dask's ``linear`` transform
is timed with ``method="exact"`` (the default) and ``method="multirate"`` (variant ``linear
multirate``, whose ``err_vs_exact`` column is its largest difference from the exact float32
transform relative to each scale's largest coefficient); ``pycwt_over_this`` is pycwt's wall
time over each row's, in the same run.

Run it with ``bioxen-dask bench cwt`` (``--quick`` for a small matrix; ``--sizes``,
``--scales`` and ``--max-seconds`` for another one).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from ..grid import ScaleGrid
from ..wavelets import Morlet
from ._harness import counts_option, machine_info, measure, write_csv

__all__ = ["DEFAULT_SCALES", "DEFAULT_SIZES", "ENGINES", "grid_for", "run"]

DEFAULT_SIZES = (1e2, 1e3, 1e4, 1e5, 1e6, 1e7)
DEFAULT_SCALES = (10, 50, 100, 500)
QUICK_SIZES = (1e2, 1e3, 1e4)
QUICK_SCALES = (10, 50)
#: (engine label, dtype, boundary/variant) timed for every configuration.
ENGINES = (
    ("bioxen-dask", "float32", "linear"),
    ("bioxen-dask", "float32", "linear multirate"),
    ("bioxen-dask", "float32", "circular"),
    ("bioxen-dask", "float64", "pycwt"),
    ("pycwt", "float64", "pycwt"),
    ("pywavelets", "float64", "fft"),
    ("ssqueezepy", "float32", "zero-pad"),
    ("fcwt", "float32", "1 thread"),
    ("fcwt", "float32", "all threads"),
)
#: The scale grids timed (see the module notes).
GRIDS = ("n/8", "pycwt")
FIELDS = ["benchmark", "grid", "engine", "variant", "dtype", "n", "n_scales", "status", "wall_median_s",
          "wall_min_s", "cpu_median_s", "first_s", "peak_mem_mb", "repeat", "msamples_scales_per_s",
          "pycwt_over_this", "err_vs_exact", "note"]


def grid_for(n: int, n_scales: int, dt: float = 1.0, kind: str = "n/8") -> ScaleGrid:
    """The benchmark's ``n_scales``-scale Morlet grid for an ``n``-sample record (``kind``:
    ``"n/8"`` or ``"pycwt"``, see the module notes).

    Examples
    --------
    >>> g = grid_for(10_000, 100)
    >>> g.n_scales, round(float(g.periods[0]), 6), bool(g.scales[-1] <= 10_000 / 8)
    (100, 2.0, True)
    >>> round(float(grid_for(10_000, 100, kind="pycwt").scales[-1]))  # pycwt: J = log2(N dt / s0) / dj
    10000
    """
    s0 = 2 * dt / Morlet().fourier_factor
    if kind == "pycwt":
        return ScaleGrid.from_s0(dt, s0=s0, dj=math.log2(n * dt / s0) / max(n_scales - 1, 1), J=n_scales - 1)
    if kind != "n/8":
        raise ValueError(f"unknown grid kind {kind!r}; choose one of {list(GRIDS)}.")
    span = max(math.log2(n * dt / (8 * s0)), 1e-3)
    dj = min(1 / 12, span / max(n_scales - 1, 1))
    return ScaleGrid.from_s0(dt, s0=s0, dj=dj, J=n_scales - 1)


def _caller(engine: str, variant: str, dtype: str, x: np.ndarray, grid: ScaleGrid) -> tuple[Callable[[], Any], str]:
    """A zero-argument call of ``engine`` on ``x`` and ``grid``, and a note on how it is called."""
    n, S = x.size, grid.n_scales
    if engine == "bioxen-dask":
        from ..kernels import cwt

        boundary, _, method = variant.partition(" ")
        method = method or "exact"
        return (lambda: cwt(x, grid, boundary=boundary, dtype=dtype, method=method),
                f"kernels.cwt, boundary={boundary}, method={method}, one thread")
    if engine == "pycwt":
        import pycwt

        s0, dj = float(grid.scales[0]), float(grid.dj)
        return (lambda: pycwt.cwt(x, grid.dt, dj, s0, S - 1, pycwt.Morlet(6)),
                "pycwt.cwt, scipy.fftpack, next power of two padding")
    if engine == "pywavelets":
        import pywt

        wav = f"cmor2.0-{6 / (2 * math.pi):.6f}"
        return (lambda: pywt.cwt(x, grid.scales / grid.dt, wav, method="fft"),
                f"pywt.cwt({wav!r}, method='fft'), complex128")
    if engine == "ssqueezepy":
        import ssqueezepy

        x32, sc = x.astype(np.float32), (grid.scales / grid.dt).astype(np.float32)
        return (lambda: ssqueezepy.cwt(x32, wavelet=("morlet", {"mu": 6.0}), scales=sc, padtype="zero",
                                       l1_norm=False, astensor=False),
                "ssqueezepy.cwt morlet(mu=6), l1_norm=False, zero padding")
    if engine == "fcwt":
        import fcwt

        threads = 1 if variant == "1 thread" else (os.cpu_count() or 1)
        f = grid.frequencies / grid.dt
        morl = fcwt.Morlet(6 / (2 * math.pi))
        scales = fcwt.Scales(morl, fcwt.FCWT_LOGSCALES, int(round(1 / grid.dt)), float(f.min()), float(f.max()), S)
        obj = fcwt.FCWT(morl, int(threads), False, True)
        x32 = x.astype(np.float32)
        out = np.zeros((S, n), np.complex64)
        keep = (morl, scales)  # fcwt.FCWT holds raw pointers to these: they must outlive the call

        return (lambda: obj.cwt(x32, keep[1], out),
                f"fcwt.FCWT Morlet(6/2pi), log scales over the same frequencies, output preallocated, "
                f"{threads} OpenMP thread(s); its own buffers are not traced")
    raise ValueError(f"unknown engine {engine!r}")


def _output_bytes(engine: str, dtype: str, n: int, n_scales: int) -> int:
    item = 16 if dtype == "float64" or engine == "pywavelets" else 8
    return n * n_scales * item


def run(out_dir: str | os.PathLike = "bench-output", *, quick: bool = False,
        sizes: Sequence[float] | None = None, scales: Sequence[int] | None = None,
        engines: Iterable[tuple[str, str, str]] = ENGINES, max_seconds: float | None = None,
        memory_budget: float | None = None, memory: bool = True, progress: bool = True,
        grids: Sequence[str] = GRIDS) -> Path:
    """Run the CWT benchmark matrix and write ``cwt.csv`` in ``out_dir``.

    Parameters
    ----------
    out_dir : path
        Output folder (created).
    quick : bool
        The small matrix (N up to 1e4, 10 and 50 scales, one timed call each).
    sizes, scales : sequences, optional
        Record lengths and scale counts (default :data:`DEFAULT_SIZES`, :data:`DEFAULT_SCALES`).
    engines : iterable of (engine, dtype, variant)
        Default :data:`ENGINES`.
    max_seconds : float, optional
        Skip a configuration whose time, extrapolated from the engine's last measured one
        (``T ~ N * scales``), exceeds this (default 10 s; 5 s with ``quick``).
    memory_budget : float, optional
        Skip a configuration whose memory would exceed this many bytes (default half the
        machine's RAM): its output, or its traced peak per sample and scale at the engine's
        last traced size times ``N * scales``, whichever is larger.
    memory : bool
        Trace the peak of Python/NumPy allocations (one extra call per configuration whose
        warm-up took under 5 s).
    progress : bool
        Print a line per configuration.
    grids : sequence of str
        Grid kinds timed (default both, :data:`GRIDS`).

    Returns
    -------
    Path
        The CSV (one row per configuration, ``status`` ``ok`` / ``skipped: ...`` /
        ``missing: ...`` / ``failed: ...``).
    """
    sizes = counts_option(sizes or (QUICK_SIZES if quick else DEFAULT_SIZES), "sizes", 16)
    scales = counts_option(scales or (QUICK_SCALES if quick else DEFAULT_SCALES), "scales", 2)
    max_seconds = float(max_seconds if max_seconds is not None else (5.0 if quick else 10.0))
    if memory_budget is None:
        memory_budget = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2
    info = machine_info()
    rows: list[dict[str, Any]] = []
    last: dict[tuple, tuple[int, float]] = {}  # engine key -> (n*scales, wall) of its last measurement
    bytes_per_point: dict[tuple, float] = {}  # engine -> traced peak bytes / (n*scales), last traced
    missing: dict[str, str] = {}
    rng = np.random.default_rng(20240601)
    for kind, S, n in ((k, S, n) for k in grids for S in sorted(scales) for n in sorted(sizes)):
            x = rng.standard_normal(n)
            grid = grid_for(n, S, kind=kind)
            pycwt_wall = None
            exact = None
            for engine, dtype, variant in engines:
                key = (kind, engine, dtype, variant, S)
                base = {"benchmark": "cwt", "grid": kind, "engine": engine, "variant": variant, "dtype": dtype,
                        "n": n, "n_scales": S}
                if engine in missing:
                    rows.append({**base, "status": missing[engine]})
                    continue
                need = max(_output_bytes(engine, dtype, n, S), bytes_per_point.get(key[:4], 0.0) * n * S)
                if need > memory_budget:
                    rows.append({**base, "status": f"skipped: needs ~{need / 2**30:.1f} GiB > memory budget "
                                                   f"{memory_budget / 2**30:.1f} GiB"})
                    continue
                if key in last:
                    work, wall = last[key]
                    guess = wall * n * S / work
                    if guess > max_seconds:
                        rows.append({**base, "status": f"skipped: extrapolated {guess:.0f} s > {max_seconds:.0f} s"})
                        continue
                try:
                    fn, note = _caller(engine, variant, dtype, x, grid)
                    res = measure(fn, 1 if quick else "auto", memory=5.0 if memory and engine != "fcwt" else False)
                except ImportError as exc:
                    missing[engine] = f"missing: {type(exc).__name__}: {exc}"
                    rows.append({**base, "status": missing[engine]})
                    continue
                except Exception as exc:  # reported, never dropped
                    rows.append({**base, "status": f"failed: {type(exc).__name__}: {exc}"[:300]})
                    continue
                last[key] = (n * S, res.wall_median)
                if np.isfinite(res.peak_mb) and n * S >= 10**5:
                    bytes_per_point[key[:4]] = res.peak_mb * 2**20 / (n * S)
                row = {**base, "status": "ok", **res.as_row(),
                       "msamples_scales_per_s": n * S / res.wall_median / 1e6, "note": note}
                if engine == "pycwt":
                    pycwt_wall = res.wall_median
                if engine == "bioxen-dask" and variant == "linear":
                    exact = fn()
                elif engine == "bioxen-dask" and variant == "linear multirate" and exact is not None:
                    got = fn()  # the largest difference, relative to each scale's largest coefficient
                    row["err_vs_exact"] = float((np.abs(got - exact).max(axis=-1)
                                                 / np.maximum(np.abs(exact).max(axis=-1), 1e-300)).max())
                    del got
                rows.append(row)
                if progress:
                    print(f"cwt {kind:<5} {engine:<12} {variant:<16} {dtype:<8} N={n:<9} scales={S:<4} "
                          f"{res.wall_median:9.4f} s  {row['msamples_scales_per_s']:8.1f} M/s", flush=True)
            del exact
            for r in rows:
                if (r["grid"], r["n"], r["n_scales"]) == (kind, n, S) and r.get("status") == "ok" and pycwt_wall:
                    r["pycwt_over_this"] = pycwt_wall / r["wall_median_s"]
    notes = [f"grids: Morlet(6), s0 = 2 dt / fourier_factor; n/8: largest scale <= N/8; pycwt: periods up to N dt; "
             f"max_seconds={max_seconds:g}, "
             f"memory_budget={memory_budget / 2**30:.1f} GiB, quick={quick}"]
    return write_csv(Path(out_dir) / "cwt.csv", rows, info, notes, FIELDS)
