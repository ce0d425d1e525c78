"""Shared benchmark plumbing: the machine record, timing with warm-up, CSV in and out.

Every benchmark of :mod:`bioxen_dask.bench` times its candidates with :func:`measure` (one
warm-up call, then ``repeat`` timed calls; wall and CPU time; peak traced allocations of one
extra call) and writes its rows with :func:`write_csv`, whose ``#`` header lines carry the
:func:`machine_info` record (CPU, cores, load, library versions, date) that every figure and
table of the generated report quotes.
"""

from __future__ import annotations

import csv
import datetime as _dt
import gc
import math
import os
import platform
import statistics
import time
import tracemalloc
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

__all__ = ["Measurement", "auto_repeat", "counts_option", "peak_rss_mb", "machine_info", "machine_label", "measure",
           "pycwt_fft_mode", "read_csv", "write_csv"]

#: Distributions whose versions go into every machine record.
VERSIONED = ("bioxen-dask", "numpy", "scipy", "dask", "distributed", "pycwt", "PyWavelets",
             "ssqueezepy", "fCWT", "cupy-cuda12x")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:  # pragma: no cover - not Linux
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, str]:
    """The machine and software a measurement comes from (strings, for CSV headers).

    Examples
    --------
    >>> info = machine_info()
    >>> sorted(k for k in info if k in ("cpu", "cores", "date", "memory"))
    ['cores', 'cpu', 'date', 'memory']
    """
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = os.cpu_count() or 1
    info = {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu_model(),
        "cores": f"{os.cpu_count()} logical, {usable} usable",
        "memory": _memory_total(),
        "python": platform.python_version(),
    }
    try:
        info["load_avg"] = "%.2f %.2f %.2f" % os.getloadavg()
    except OSError:  # pragma: no cover
        pass
    for dist in VERSIONED:
        try:
            info[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            info[dist] = "not installed"
    info["pycwt_fft"] = pycwt_fft_mode()
    return info


def pycwt_fft_mode() -> str:
    """Which FFT the installed pycwt uses. pycwt switches to pyFFTW whenever pyFFTW imports,
    and then also drops its power-of-two padding and runs on every core: other numbers and
    other timings than its default install's (SciPy FFTPACK), which bioxen_dask.compat and the
    benchmarks take as the reference.

    Examples
    --------
    >>> pycwt_fft_mode().split(" ")[0] in ("scipy.fftpack", "pyFFTW", "not")
    True
    """
    try:
        from pycwt import helpers
    except ImportError:
        return "not installed"
    name = getattr(helpers.fft, "__name__", "?")
    if name.startswith("pyfftw"):
        return "pyFFTW (no power-of-two padding, every core: not pycwt's default numbers)"
    return f"{name} (power-of-two padding: pycwt's default)"


def _memory_total() -> str:
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        return f"{pages * size / 2**30:.0f} GiB"
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        return "unknown"


def machine_label(info: Mapping[str, str]) -> str:
    """One line naming the machine and date of a record, for captions.

    Examples
    --------
    >>> machine_label({"cpu": "AMD EPYC 7B13", "cores": "2 logical, 2 usable", "memory": "24 GiB",
    ...                "date": "2026-12-01 07:00 UTC"})
    'AMD EPYC 7B13, 2 cores, 24 GiB RAM, 2026-12-01 07:00 UTC'
    """
    cores = str(info.get("cores", "?")).split(" ")[0]
    return f"{info.get('cpu', '?')}, {cores} cores, {info.get('memory', '?')} RAM, {info.get('date', '?')}"


def peak_rss_mb() -> float:
    """This process's peak resident memory (MiB) since it started (``VmHWM``).

    Not ``getrusage().ru_maxrss``: Linux carries a parent's peak RSS into a child across
    fork/vfork and exec, so a subprocess (or a worker spawned by a large client) would report
    its parent's peak. Falls back to ``ru_maxrss`` where ``/proc`` is missing.

    Examples
    --------
    >>> peak_rss_mb() > 0
    True
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:  # pragma: no cover - not Linux
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # pragma: no cover


@dataclass(frozen=True)
class Measurement:
    """Timings of one configuration (seconds; ``peak_mb`` in MiB, NaN when not traced)."""

    wall_median: float
    wall_min: float
    cpu_median: float
    first: float
    peak_mb: float
    repeat: int

    def as_row(self) -> dict[str, float]:
        return {"wall_median_s": self.wall_median, "wall_min_s": self.wall_min,
                "cpu_median_s": self.cpu_median, "first_s": self.first, "peak_mem_mb": self.peak_mb,
                "repeat": self.repeat}


def counts_option(values: Iterable[Any], name: str, minimum: int) -> list[int]:
    """Whole numbers ``>= minimum`` (record lengths, scale or surrogate counts), sorted, or a
    ValueError naming the option and the bad value.

    Examples
    --------
    >>> counts_option([1e3, 100], "sizes", 16)
    [100, 1000]
    """
    out = []
    for v in values:
        try:
            f = float(v)
        except (TypeError, ValueError):
            f = float("nan")
        if not (math.isfinite(f) and f.is_integer() and f >= minimum):
            raise ValueError(f"{name} must be whole numbers of at least {minimum}, got {v!r}.")
        out.append(int(f))
    if not out:
        raise ValueError(f"{name} is empty; give at least one value.")
    return sorted(out)


#: Calls whose warm-up took less than this get a second, untimed warm-up call: the first one
#: builds plans and filter banks, the second still pays for thread-pool start-up and pages
#: touched for the first time (a multirate map's second call is ~10-40% slower than the rest).
SECOND_WARMUP_BELOW_S = 0.5


def auto_repeat(first_s: float) -> int:
    """Timed calls after a warm-up of ``first_s`` seconds: 5 below 0.5 s, 3 below 5 s, else 1."""
    return 5 if first_s < 0.5 else 3 if first_s < 5 else 1


def measure(fn: Callable[[], Any], repeat: int | str = 3, *, memory: bool | float = True,
            before_first: Callable[[], None] | None = None) -> Measurement:
    """Time ``fn``: one warm-up call (FFT plans, filter banks, JIT; two when it took under
    :data:`SECOND_WARMUP_BELOW_S`), then ``repeat`` calls.

    Wall time is ``perf_counter``; CPU time is the process's (all threads, so CPU > wall
    means threads ran in parallel). With ``memory``, one extra call runs under
    :mod:`tracemalloc`: the peak of Python and NumPy allocations (C++ engines' own buffers
    are not traced, and their rows say so). ``repeat="auto"`` picks the count from the
    warm-up (:func:`auto_repeat`); a number for ``memory`` traces only when the warm-up
    took less than that many seconds.

    Examples
    --------
    >>> m = measure(lambda: sum(range(1000)), repeat=2, memory=False)
    >>> m.repeat, m.wall_min <= m.wall_median
    (2, True)
    """
    if repeat != "auto" and (not isinstance(repeat, int) or repeat < 1):
        raise ValueError(f"repeat must be at least 1 or 'auto', got {repeat!r}.")
    gc.collect()
    if before_first is not None:
        before_first()
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    if first < SECOND_WARMUP_BELOW_S:  # cheap calls: a second warm-up (thread pools, caches, first-touch pages)
        fn()
    if repeat == "auto":
        repeat = auto_repeat(first)
    if not isinstance(memory, bool):
        memory = first < float(memory)
    walls, cpus = [], []
    for _ in range(repeat):
        gc.collect()
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        cpus.append(time.process_time() - c0)
        walls.append(time.perf_counter() - w0)
    peak = float("nan")
    if memory:
        gc.collect()
        tracemalloc.start()
        try:
            fn()
            peak = tracemalloc.get_traced_memory()[1] / 2**20
        finally:
            tracemalloc.stop()
    return Measurement(statistics.median(walls), min(walls), statistics.median(cpus), first, peak, repeat)


def _cell(v: Any) -> Any:
    if isinstance(v, (float, np.floating)):
        return "" if math.isnan(v) else f"{float(v):.6g}"
    return v


def write_csv(path: str | os.PathLike, rows: Sequence[Mapping[str, Any]], info: Mapping[str, str],
              notes: Iterable[str] = (), fields: Sequence[str] | None = None) -> Path:
    """Write benchmark rows with the machine record (and notes) as ``#`` lines on top.

    The file is written to a temporary name and renamed, so an interrupted benchmark never
    leaves a CSV that looks complete.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fields is None:
        fields = list(dict.fromkeys(k for r in rows for k in r))
    tmp = path.with_name(path.name + ".partial")
    with tmp.open("w", newline="") as fh:
        for k, v in info.items():
            fh.write(f"# {k}: {v}\n")
        for note in notes:
            fh.write(f"# note: {note}\n")
        wr = csv.DictWriter(fh, fieldnames=list(fields), extrasaction="ignore")
        wr.writeheader()
        for r in rows:
            wr.writerow({k: _cell(v) for k, v in r.items()})
    os.replace(tmp, path)
    return path


def read_csv(path: str | os.PathLike) -> tuple[list[dict[str, Any]], dict[str, str], list[str]]:
    """Rows (numbers parsed), machine record and notes of a :func:`write_csv` file."""
    info: dict[str, str] = {}
    notes: list[str] = []
    body: list[str] = []
    with Path(path).open() as fh:
        for line in fh:
            if line.startswith("# note: "):
                notes.append(line[8:].rstrip("\n"))
            elif line.startswith("# "):
                k, _, v = line[2:].partition(": ")
                info[k] = v.rstrip("\n")
            else:
                body.append(line)
    rows = [{k: _parse(v) for k, v in r.items()} for r in csv.DictReader(body)]
    return rows, info, notes


def _parse(v: str | None) -> Any:
    if v is None or v == "":
        return float("nan") if v == "" else None
    try:
        f = float(v)
    except ValueError:
        return v
    return int(f) if f.is_integer() and "." not in v and "e" not in v.lower() else f
