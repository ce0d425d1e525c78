"""CPU vs GPU benchmark: where the GPU starts to pay off, transfers included.

Two workloads, each timed on the CPU (NumPy/SciPy, all cores) and on the GPU (CuPy, the
same kernels through the array namespace):

- ``cwt``: the transform of one white-noise record of ``N = 1e4 ... 1e8`` samples on
  ``CWT_SCALES`` Morlet scales (float32, ``linear`` boundary);
- ``coherence``: a batch of ``10 ... 10,000`` traces of ``ROI_SAMPLES`` samples against one
  reference (float32, pycwt grid at ``dj = 1/4``), reduced as the pipeline reduces it, to the
  mean coherence per (roi, scale); sub-batches are sized from free device memory
  (:func:`bioxen_dask.kernels.batch_size_for`) on the GPU and from ``CPU_BLOCK_BYTES`` on
  the CPU.

On the GPU the host-to-device copy of the input, the computation and the device-to-host
copy of the result are timed separately *and* together (``gpu_total_s``, one call doing all
three, which is what a user waits for); every GPU call ends with a device synchronisation.
The *break-even* of a workload is the smallest size at which ``gpu_total_s < cpu_s``; it is
written into the CSV notes and :func:`summary_markdown`. ``max_rel_diff`` is the largest
difference between the GPU and CPU results relative to the largest CPU value.

Without CuPy or a CUDA device :func:`run` raises :class:`RuntimeError` (a
:class:`bioxen_dask.kernels.GPUUnavailableError`) and measures nothing: there is no CPU-only
version of a CPU/GPU comparison. Run it with ``bioxen-dask bench gpu`` or
``deploy/gpu/check-gpu.sh`` on a GPU machine.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..grid import make_grid
from ..kernels import Smoother, batch_size_for, coherence, cwt, free_memory, scaled_power
from ..kernels._device import require_gpu, rows_per_batch
from ..kernels._xp import array_namespace, to_numpy
from ._harness import machine_info, machine_label, measure, read_csv, write_csv

__all__ = ["CWT_SIZES", "ROI_BATCHES", "break_even", "figure", "run", "summary_markdown"]

#: Record lengths of the ``cwt`` workload.
CWT_SIZES = (10**4, 10**5, 10**6, 10**7, 10**8)
#: Scales of the ``cwt`` workload (fixed, so the size axis is the record length alone).
CWT_SCALES = 16
#: Traces per batch of the ``coherence`` workload.
ROI_BATCHES = (10, 100, 1_000, 10_000)
#: Samples per trace of the ``coherence`` workload (~2.3 min at 30 Hz).
ROI_SAMPLES = 4096
#: Working memory of one CPU sub-batch of the ``coherence`` workload (the pipeline's default).
CPU_BLOCK_BYTES = 512 * 2**20
#: Bytes of working memory per (roi, scale, sample) of the coherence workload (W, S, S12,
#: R2 and temporaries; the pipeline's estimate).
_BYTES_PER_POINT = 40

_QUICK_CWT = (2**12, 2**14)
_QUICK_ROIS = (4, 16)
_QUICK_SAMPLES = 1024

FIELDS = ("workload", "size", "unit", "n_samples", "n_scales", "cpu_s", "gpu_h2d_s", "gpu_compute_s",
          "gpu_d2h_s", "gpu_total_s", "speedup", "max_rel_diff", "repeat")

_HOW = ("run `bioxen-dask bench gpu` (or deploy/gpu/check-gpu.sh, which also runs the GPU "
        "tests) on a machine with an NVIDIA GPU, after pip install 'bioxen-dask[gpu]'.")


def _sync(xp) -> None:
    if xp is not np:
        xp.cuda.runtime.deviceSynchronize()


def _timed(fn: Callable[[], Any], xp, repeat: int) -> float:
    """Median wall time of ``fn`` (synchronised on the device), after one warm-up call."""

    def call():
        out = fn()
        _sync(xp)
        return out

    return measure(call, repeat=repeat, memory=False).wall_median


def _repeat_for(work: float, quick: bool) -> int:
    """Fewer repeats for big configurations (``work``: samples x scales x traces)."""
    if quick:
        return 1
    return 5 if work < 1e8 else (3 if work < 1e9 else 1)


def _rel_diff(a: Any, b: np.ndarray) -> float:
    a = to_numpy(a)
    scale = float(np.nanmax(np.abs(b))) or 1.0
    return float(np.nanmax(np.abs(a - b)) / scale)


# --------------------------------------------------------------------------------- workloads
def _cwt_row(n: int, xp, quick: bool) -> dict[str, Any]:
    grid = make_grid(n, 1.0, dj=0.5, J=CWT_SCALES - 1)
    x = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    rep = _repeat_for(n * CWT_SCALES, quick)
    kw = dict(dtype="float32", boundary="linear")
    ref = cwt(x, grid, workers=-1, **kw)
    cpu = _timed(lambda: cwt(x, grid, workers=-1, **kw), np, rep)
    x_dev = xp.asarray(x)
    W_dev = cwt(x_dev, grid, **kw)
    diff = _rel_diff(W_dev, ref)
    del ref
    h2d = _timed(lambda: xp.asarray(x), xp, rep)
    comp = _timed(lambda: cwt(x_dev, grid, **kw), xp, rep)
    d2h = _timed(W_dev.get, xp, rep)
    W_dev = None  # free the device copy before the end-to-end timing
    total = _timed(lambda: cwt(xp.asarray(x), grid, **kw).get(), xp, rep)
    return _row("cwt", n, "samples", n, CWT_SCALES, cpu, h2d, comp, d2h, total, diff, rep)


def _mean_coherence(X: Any, Wr: Any, Sr: Any, smoother: Smoother, batch: int) -> Any:
    """Mean coherence per (trace, scale) of ``X`` against the reference, ``batch`` traces at a time."""
    xp = array_namespace(X)
    grid = smoother.grid
    out = xp.empty((X.shape[0], grid.n_scales), dtype=np.float32)
    for r0 in range(0, X.shape[0], batch):
        W = cwt(X[r0 : r0 + batch], grid, dtype="float32", boundary="linear", workers=smoother.workers)
        S = smoother(scaled_power(W, grid))
        R2, _ = coherence(W, Wr, smoother, S1=S, S2=Sr, with_phase=False)
        out[r0 : r0 + batch] = R2.mean(axis=-1)
    return out


def _coherence_row(n_rois: int, n: int, xp, quick: bool) -> dict[str, Any]:
    grid = make_grid(n, 1 / 30, dj=0.25)
    rng = np.random.default_rng(n_rois)
    ref = rng.standard_normal(n).astype(np.float32)
    X = (0.5 * ref + rng.standard_normal((n_rois, n))).astype(np.float32)
    per_roi = grid.n_scales * n * _BYTES_PER_POINT
    rep = _repeat_for(n_rois * n * grid.n_scales, quick)

    def setup(ns, workers):
        sm = Smoother(grid, boundary="linear", workers=workers)
        Wr = cwt(ns.asarray(ref)[None], grid, dtype="float32", boundary="linear", workers=workers)
        return sm, Wr, sm(scaled_power(Wr, grid))

    sm_c, Wr_c, Sr_c = setup(np, -1)
    b_cpu = rows_per_batch(per_roi, CPU_BLOCK_BYTES, np, limit=n_rois)
    expect = _mean_coherence(X, Wr_c, Sr_c, sm_c, b_cpu)
    cpu = _timed(lambda: _mean_coherence(X, Wr_c, Sr_c, sm_c, b_cpu), np, rep)
    sm_g, Wr_g, Sr_g = setup(xp, None)
    fixed = int(Wr_g.nbytes + Sr_g.nbytes)
    b_gpu = batch_size_for(per_roi, free_memory(xp), fixed_bytes=fixed, limit=n_rois, what="roi")
    X_dev = xp.asarray(X)
    got = _mean_coherence(X_dev, Wr_g, Sr_g, sm_g, b_gpu)
    diff = _rel_diff(got, expect)
    h2d = _timed(lambda: xp.asarray(X), xp, rep)
    comp = _timed(lambda: _mean_coherence(X_dev, Wr_g, Sr_g, sm_g, b_gpu), xp, rep)
    d2h = _timed(lambda: got.get(), xp, rep)
    total = _timed(lambda: _mean_coherence(xp.asarray(X), Wr_g, Sr_g, sm_g, b_gpu).get(), xp, rep)
    return _row("coherence", n_rois, "rois", n, grid.n_scales, cpu, h2d, comp, d2h, total, diff, rep)


def _row(workload, size, unit, n, n_scales, cpu, h2d, comp, d2h, total, diff, rep) -> dict[str, Any]:
    return {"workload": workload, "size": int(size), "unit": unit, "n_samples": int(n), "n_scales": int(n_scales),
            "cpu_s": cpu, "gpu_h2d_s": h2d, "gpu_compute_s": comp, "gpu_d2h_s": d2h, "gpu_total_s": total,
            "speedup": cpu / total if total > 0 else float("nan"), "max_rel_diff": diff, "repeat": rep}


# --------------------------------------------------------------------------------- reading
def break_even(rows: Sequence[dict[str, Any]], workload: str) -> dict[str, Any] | None:
    """The row of the smallest size where ``gpu_total_s < cpu_s`` (``None``: never).

    Examples
    --------
    >>> rows = [{"workload": "cwt", "size": 10, "cpu_s": 1.0, "gpu_total_s": 2.0},
    ...         {"workload": "cwt", "size": 100, "cpu_s": 3.0, "gpu_total_s": 2.0}]
    >>> break_even(rows, "cwt")["size"]
    100
    """
    hits = [r for r in rows if r["workload"] == workload and r["gpu_total_s"] < r["cpu_s"]]
    return min(hits, key=lambda r: r["size"]) if hits else None


def _break_even_note(rows: Sequence[dict[str, Any]], workload: str) -> str:
    sizes = sorted(r["size"] for r in rows if r["workload"] == workload)
    if not sizes:
        return f"break-even {workload}: not measured"
    unit = next(r["unit"] for r in rows if r["workload"] == workload)
    hit = break_even(rows, workload)
    if hit is None:
        return f"break-even {workload}: none up to {sizes[-1]:,} {unit} (the CPU was faster at every size)"
    return (f"break-even {workload}: {hit['size']:,} {unit} (GPU total {hit['gpu_total_s']:.4g} s, transfers "
            f"included, < CPU {hit['cpu_s']:.4g} s)")


def summary_markdown(csv_path: str | os.PathLike) -> str:
    """A Markdown section of a GPU benchmark CSV: machine, break-evens, one table per workload.

    Examples
    --------
    >>> import tempfile
    >>> rows = [_row("cwt", 10**4, "samples", 10**4, 16, 0.01, 1e-4, 2e-3, 1e-4, 3e-3, 1e-7, 1)]
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = write_csv(Path(d) / "gpu.csv", rows, {"cpu": "X", "gpu": "Y"}, [_break_even_note(rows, "cwt")],
    ...                   fields=FIELDS)
    ...     text = summary_markdown(p)
    >>> "break-even cwt: 10,000 samples" in text
    True
    """
    rows, info, notes = read_csv(csv_path)
    lines = ["## CPU vs GPU", "",
             f"{machine_label(info)}; GPU: {info.get('gpu', '?')}; CuPy {info.get('cupy', '?')}. "
             f"Command: `bioxen-dask bench gpu`.", ""]
    lines += [f"- {n}" for n in notes if n.startswith("break-even")]
    for workload, title in (("cwt", "CWT of one record (float32, linear boundary)"),
                            ("coherence", "Coherence of a roi batch against a reference (float32)")):
        sel = [r for r in rows if r["workload"] == workload]
        if not sel:
            continue
        lines += ["", f"### {title}", "",
                  "| size | scales | CPU s | GPU h2d s | GPU compute s | GPU d2h s | GPU total s | speed-up | max rel diff |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in sorted(sel, key=lambda r: r["size"]):
            lines.append(f"| {r['size']:,} {r['unit']} | {r['n_scales']} | {r['cpu_s']:.4g} | {r['gpu_h2d_s']:.3g} | "
                         f"{r['gpu_compute_s']:.4g} | {r['gpu_d2h_s']:.3g} | {r['gpu_total_s']:.4g} | "
                         f"{r['speedup']:.2f}x | {r['max_rel_diff']:.1e} |")
    return "\n".join(lines) + "\n"


def figure(csv_path: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """CPU and GPU (total, compute only) time against size, one panel per workload (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, info, _ = read_csv(csv_path)
    out = Path(out) if out is not None else Path(csv_path).with_suffix(".png")
    workloads = [w for w in ("cwt", "coherence") if any(r["workload"] == w for r in rows)]
    fig, axes = plt.subplots(1, max(1, len(workloads)), figsize=(5.5 * max(1, len(workloads)), 4), squeeze=False)
    for ax, w in zip(axes[0], workloads):
        sel = sorted((r for r in rows if r["workload"] == w), key=lambda r: r["size"])
        size = [r["size"] for r in sel]
        for key, label, style in (("cpu_s", "CPU", "o-"), ("gpu_total_s", "GPU incl. transfers", "s-"),
                                  ("gpu_compute_s", "GPU compute only", "s--")):
            ax.loglog(size, [r[key] for r in sel], style, label=label)
        hit = break_even(sel, w)
        if hit is not None:
            ax.axvline(hit["size"], color="0.5", lw=0.8, ls=":")
        ax.set_xlabel(f"{sel[0]['unit']} ({sel[0]['n_scales']} scales)")
        ax.set_ylabel("wall time (s)")
        ax.set_title(w)
        ax.legend(fontsize=8)
    fig.suptitle(f"{info.get('gpu', '?')} vs {machine_label(info)}", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


# --------------------------------------------------------------------------------- entry
def run(out_dir: str | os.PathLike = "bench-output", *, quick: bool = False,
        cwt_sizes: Sequence[int] | None = None, roi_batches: Sequence[int] | None = None,
        roi_samples: int | None = None) -> Path:
    """Measure CPU vs GPU and write ``out_dir/gpu.csv`` (and ``gpu.png``).

    Parameters
    ----------
    out_dir : path
        Folder for the CSV and the figure.
    quick : bool
        Tiny sizes, one repeat (a smoke test of the whole benchmark, seconds).
    cwt_sizes, roi_batches, roi_samples : optional
        Override the record lengths, batch sizes and samples per trace.

    Returns
    -------
    Path
        The CSV, whose notes carry the break-even of each workload.

    Raises
    ------
    RuntimeError
        (:class:`bioxen_dask.kernels.GPUUnavailableError`) without CuPy or a CUDA device.
    """
    xp = require_gpu("bioxen-dask bench gpu", instead=f"To measure CPU vs GPU, {_HOW}")
    sizes = tuple(cwt_sizes or (_QUICK_CWT if quick else CWT_SIZES))
    batches = tuple(roi_batches or (_QUICK_ROIS if quick else ROI_BATCHES))
    n_roi = int(roi_samples or (_QUICK_SAMPLES if quick else ROI_SAMPLES))
    rows = [_cwt_row(int(n), xp, quick) for n in sizes]
    rows += [_coherence_row(int(b), n_roi, xp, quick) for b in batches]
    info = machine_info()
    props = xp.cuda.runtime.getDeviceProperties(xp.cuda.runtime.getDevice())
    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    info["gpu"] = f"{name}, {props['totalGlobalMem'] / 2**30:.0f} GiB"
    info["cupy"] = xp.__version__
    info["cuda_runtime"] = str(xp.cuda.runtime.runtimeGetVersion())
    notes = [_break_even_note(rows, "cwt"), _break_even_note(rows, "coherence"),
             "gpu_total_s: host->device copy + compute + device->host copy in one call (what a user waits "
             "for); the parts are timed separately; every GPU call ends with a device synchronisation",
             f"cwt: one white-noise record, {CWT_SCALES} Morlet scales (dj=1/2), float32, linear boundary; "
             "CPU with all cores (workers=-1)",
             f"coherence: traces of {n_roi} samples at 30 Hz against one reference, pycwt grid at dj=1/4, "
             "reduced to the mean coherence per (roi, scale); GPU sub-batches sized from free device memory"]
    path = write_csv(Path(out_dir) / "gpu.csv", rows, info, notes, fields=FIELDS)
    figure(path)
    return path
