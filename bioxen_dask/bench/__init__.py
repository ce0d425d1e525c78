"""The benchmark harness: bioxen-dask side by side with pycwt, PyWavelets, ssqueezepy and fCWT.

Each benchmark runs its candidates in one process on one machine, writes a CSV whose header
records that machine (:func:`machine_info`), and the report (:mod:`bioxen_dask.bench.report`)
turns the CSVs into figures and ``docs/performance.md``. Run them with ``bioxen-dask bench``.
Nothing here is imported by the package itself.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from ._harness import (Measurement, machine_info, machine_label, measure, peak_rss_mb, pycwt_fft_mode, read_csv,
                       write_csv)

__all__ = ["BENCHMARKS", "Measurement", "machine_info", "machine_label", "measure", "peak_rss_mb", "pycwt_fft_mode",
           "read_csv", "run_benchmark", "write_csv"]

#: Benchmark name -> what it measures. Each is a module ``bioxen_dask.bench.<name>`` with
#: ``run(out_dir, *, quick=False) -> Path`` (its CSV; ``allpairs``: its JSON).
BENCHMARKS = {
    "cwt": "CWT of one record: every engine, N = 1e2 .. 1e7, 10 .. 500 scales",
    "wct": "coherence of one pair, and its cost over two transforms",
    "significance": "Monte Carlo significance with 0, 100, 1000 surrogates",
    "equivalence": "each engine's transform and hybrid coherence against pycwt",
    "pipeline": "the whole dataset (10,000 rois x 18,000 frames) and scaling with workers",
    "gpu": "CPU against GPU, transfers included (needs CuPy and a CUDA device)",
    "allpairs": "all-pairs coherence per pair against pycwt's pair loop and mne-connectivity; 10,000 rois",
}


def run_benchmark(name: str, out_dir: str | os.PathLike = "bench-output", *, quick: bool = False,
                  **options) -> Path:
    """Run benchmark ``name`` of :data:`BENCHMARKS`; returns the file (CSV, or JSON) it wrote. ``options`` go
    to its ``run`` (e.g. ``sizes=``/``scales=`` of :func:`bioxen_dask.bench.cwt.run`).

    Raises
    ------
    ValueError
        For an unknown name.
    RuntimeError
        Where the benchmark cannot run here (``gpu`` without a CUDA device).
    """
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; choose one of {sorted(BENCHMARKS)}.")
    module = importlib.import_module(f"{__name__}.{name}")
    return module.run(out_dir, quick=quick, **options)
