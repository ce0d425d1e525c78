"""Devices: asking for the GPU, free memory on it, and batch sizes that fit.

``device="gpu"`` means CuPy on the current CUDA device; without CuPy or a device that is a
:class:`GPUUnavailableError` naming what is missing, never a silent fall back to the CPU.
CuPy is imported only when the GPU is asked for.

Batch sizes for device arrays come from the memory free on the device *now*
(:func:`free_memory`) rather than from a constant: :func:`batch_size_for` divides a share
of it (``safety``) by the bytes one item (roi, pair, surrogate) needs, and raises
:class:`BatchDoesNotFitError` with the sizes and what to reduce when not even one item fits.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

__all__ = [
    "DEVICES",
    "BatchDoesNotFitError",
    "GPUUnavailableError",
    "MemoryInfo",
    "batch_size_for",
    "check_device",
    "device_namespace",
    "free_memory",
    "gpu_problem",
    "memory_info",
    "require_gpu",
    "rows_per_batch",
]

#: Values of the ``device`` option.
DEVICES: tuple[str, ...] = ("cpu", "gpu")
#: Share of the free memory a batch may use by default: FFT plans, CuPy's pool rounding,
#: other tasks' arrays and the estimate's own error take the rest.
DEFAULT_SAFETY = 0.5

_GPU_FIX = (
    "bioxen-dask never falls back to the CPU silently. Fix: on a machine with an NVIDIA GPU, "
    "check that `nvidia-smi` lists it (and that CUDA_VISIBLE_DEVICES does not hide it), then "
    "install the GPU stack with pip install 'bioxen-dask[gpu]' (CuPy + dask-cuda)."
)


class GPUUnavailableError(RuntimeError):
    """The GPU was asked for (``device='gpu'``, cluster kind ``cuda``, the GPU benchmark) but
    no usable CUDA device or GPU stack was found."""


class BatchDoesNotFitError(MemoryError):
    """Not even one item of a batch fits in the memory that is free."""


def gpu_problem() -> str | None:
    """Why CuPy cannot compute on a CUDA device here, or ``None`` when it can.

    Examples
    --------
    >>> reason = gpu_problem()
    >>> reason is None or isinstance(reason, str)
    True
    """
    try:
        import cupy
    except Exception as exc:  # ImportError, or a broken CUDA install raising on import
        return f"CuPy cannot be imported ({type(exc).__name__}: {exc})"
    try:
        count = int(cupy.cuda.runtime.getDeviceCount())
    except Exception as exc:  # cupy_backends...CUDARuntimeError: no driver / no device
        return f"CuPy finds no CUDA device ({type(exc).__name__}: {exc})"
    if count < 1:
        return "CuPy reports 0 CUDA devices"
    return None


def require_gpu(what: str = "device='gpu'", *,
                instead: str = "To run on CPUs instead, use device='cpu' (the default).") -> ModuleType:
    """The ``cupy`` module, or :class:`GPUUnavailableError` saying why there is none.

    Parameters
    ----------
    what : str
        What asked for the GPU (starts the error message), e.g. ``"coherence(device='gpu')"``.
    instead : str
        The last sentence of the error: what to do instead.

    Examples
    --------
    >>> try:
    ...     xp = require_gpu("the example")
    ... except GPUUnavailableError as err:
    ...     assert "never falls back to the CPU" in str(err)
    """
    problem = gpu_problem()
    if problem is not None:
        raise GPUUnavailableError(
            f"{what}: no GPU was found: {problem}. {_GPU_FIX} {instead}"
        )
    import cupy

    return cupy


def check_device(device: Any) -> str:
    """``device`` normalised to ``"cpu"`` or ``"gpu"`` (a ValueError names the choices).

    Examples
    --------
    >>> check_device("GPU"), check_device("cpu")
    ('gpu', 'cpu')
    """
    d = str(device).lower() if isinstance(device, str) else device
    if d == "cuda":
        d = "gpu"
    if d not in DEVICES:
        raise ValueError(f"device must be one of {list(DEVICES)}, got {device!r}.")
    return d


def device_namespace(device: str, what: str = "device='gpu'") -> ModuleType:
    """``numpy`` for ``"cpu"``; ``cupy`` for ``"gpu"`` (or :class:`GPUUnavailableError`).

    Examples
    --------
    >>> device_namespace("cpu").__name__
    'numpy'
    """
    return np if check_device(device) == "cpu" else require_gpu(what)


# ------------------------------------------------------------------------------ free memory
@dataclass(frozen=True)
class MemoryInfo:
    """Memory of one device in bytes, and where the figures come from."""

    free: int
    total: int
    source: str


def _host_memory() -> MemoryInfo:
    try:
        import psutil

        vm = psutil.virtual_memory()
        return MemoryInfo(int(vm.available), int(vm.total), "psutil.virtual_memory().available")
    except ImportError:  # pragma: no cover - psutil ships with distributed
        pages, size = os.sysconf("SC_AVPHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        total = os.sysconf("SC_PHYS_PAGES") * size
        return MemoryInfo(int(pages * size), int(total), "sysconf(SC_AVPHYS_PAGES)")


def _rmm_pool_free() -> tuple[int, str] | None:
    """Free bytes inside an active RMM pool that CuPy allocates from, or ``None``."""
    try:
        import cupy
        import rmm

        if "rmm" not in repr(cupy.cuda.get_allocator()).lower():
            return None
        mr = rmm.mr.get_current_device_resource()
        while not hasattr(mr, "pool_size") and hasattr(mr, "get_upstream"):
            mr = mr.get_upstream()  # adaptors (statistics, logging) wrap the pool
        if not hasattr(mr, "pool_size"):
            return None
        pool = int(mr.pool_size())
    except Exception:
        return None
    try:  # rmm.statistics (RMM >= 24.08) knows what is allocated from the pool
        stats = rmm.statistics.get_statistics()
        if stats is not None:
            return max(0, pool - int(stats.current_bytes)), "RMM pool size - allocated"
    except Exception:
        pass
    # Without statistics the pool's own usage is unknown: count it all (an upper bound that
    # the safety factor of batch_size_for covers, and dask-cuda spills beyond).
    return pool, "RMM pool size (usage untracked)"


def memory_info(xp: ModuleType = np) -> MemoryInfo:
    """Free and total memory for new arrays of namespace ``xp``.

    CPU (``numpy``): available RAM (``psutil``). CuPy: ``cudaMemGetInfo`` of the current
    device, plus the free blocks CuPy's default memory pool holds (reusable without a new
    allocation) or, when CuPy allocates from an RMM pool (``--cluster cuda`` with
    ``rmm_pool_size``), the pool's unused part.

    Examples
    --------
    >>> info = memory_info()
    >>> 0 < info.free <= info.total
    True
    """
    if xp is np:
        return _host_memory()
    free, total = (int(v) for v in xp.cuda.runtime.memGetInfo())
    rmm_free = _rmm_pool_free()
    if rmm_free is not None:
        return MemoryInfo(free + rmm_free[0], total, f"cudaMemGetInfo + {rmm_free[1]}")
    pool_free = int(xp.get_default_memory_pool().free_bytes())
    return MemoryInfo(free + pool_free, total, "cudaMemGetInfo + CuPy pool free blocks")


def free_memory(xp: ModuleType = np) -> int:
    """Bytes free for new arrays of ``xp`` (see :func:`memory_info`).

    Examples
    --------
    >>> free_memory() > 0
    True
    """
    return memory_info(xp).free


# ------------------------------------------------------------------------------ batch sizing
def _mib(v: float) -> str:
    return f"{v / 2**20:,.1f} MiB"


def batch_size_for(
    bytes_per_item: int,
    free_bytes: int,
    *,
    safety: float = DEFAULT_SAFETY,
    fixed_bytes: int = 0,
    limit: int | None = None,
    what: str = "item",
    reduce: str = "the record length or the number of scales",
) -> int:
    """Items per batch so that the batch uses at most ``safety * free_bytes``.

    Parameters
    ----------
    bytes_per_item : int
        Working memory one item needs (peak, temporaries included).
    free_bytes : int
        Memory free now (:func:`free_memory`; pass a number to plan for another device).
    safety : float
        Share of ``free_bytes`` a batch may use, in ``(0, 1]``.
    fixed_bytes : int
        Memory the batch needs whatever its size (filter banks, a reference transform).
    limit : int, optional
        No more items than this (e.g. the rois there are).
    what : str
        Name of an item in the error message (``"roi"``, ``"surrogate pair"``).
    reduce : str
        What the user can reduce, for the error message.

    Returns
    -------
    int
        At least 1, at most ``limit``.

    Raises
    ------
    BatchDoesNotFitError
        When ``fixed_bytes + bytes_per_item`` exceeds ``safety * free_bytes``.

    Examples
    --------
    >>> batch_size_for(100 * 2**20, 8 * 2**30)  # 100 MiB per item, 8 GiB free, half usable
    40
    >>> batch_size_for(100 * 2**20, 8 * 2**30, limit=16)
    16
    """
    if not 0 < safety <= 1:
        raise ValueError(f"safety must be in (0, 1], got {safety!r}.")
    per = int(bytes_per_item)
    if per < 1:
        raise ValueError(f"bytes_per_item must be a positive byte count, got {bytes_per_item!r}.")
    usable = math.floor(safety * int(free_bytes)) - int(fixed_bytes)
    if usable < per:
        raise BatchDoesNotFitError(
            f"one {what} needs {_mib(per)} of working memory"
            + (f" on top of {_mib(fixed_bytes)} fixed" if fixed_bytes else "")
            + f", but only {_mib(max(usable + int(fixed_bytes), 0))} of {_mib(int(free_bytes))} free "
            f"may be used (safety {safety:g}). Reduce {reduce}, use dtype='float32' if it is "
            "float64, free device memory (other processes, a smaller RMM pool), or run on a "
            "device with more memory."
        )
    n = usable // per
    return int(max(1, min(n, limit) if limit is not None else n))


def rows_per_batch(bytes_per_item: int, budget_bytes: int, xp: ModuleType, *, limit: int | None = None,
                   what: str = "roi") -> int:
    """Items per batch on ``xp``'s device.

    CPU: the task's ``budget_bytes`` divided by the bytes per item (at least 1, the behaviour
    the CPU graph always had). GPU: sized from the memory free on the device now
    (:func:`batch_size_for`, which raises :class:`BatchDoesNotFitError` when one item does
    not fit).

    Examples
    --------
    >>> rows_per_batch(10 * 2**20, 512 * 2**20, np)
    51
    """
    per = max(1, int(bytes_per_item))
    if xp is np:
        n = max(1, int(budget_bytes) // per)
        return int(min(n, limit)) if limit is not None else int(n)
    return batch_size_for(per, free_memory(xp), limit=limit, what=what)
