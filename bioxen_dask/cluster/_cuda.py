"""``kind='cuda'``: a LocalCUDACluster with an RMM pool; no GPU is an error, never a CPU fallback."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from ..kernels._device import GPUUnavailableError, gpu_problem
from ._client import client_for, dashboard_kwargs
from ._config import ClusterConfig, CudaOptions

if TYPE_CHECKING:  # pragma: no cover
    from distributed import Client

__all__ = ["start_cuda"]


def _gpu_problem(options: CudaOptions) -> str | None:
    """Why ``kind='cuda'`` cannot run here, or ``None`` when it can."""
    problem = gpu_problem()  # CuPy and a CUDA device (shared with device='gpu')
    if problem is not None:
        return problem
    import cupy

    count = int(cupy.cuda.runtime.getDeviceCount())
    if options.devices is not None:
        missing = [d for d in options.devices if d >= count]
        if missing:
            return (
                f"cluster.cuda.devices asks for GPU(s) {missing} but only {count} "
                f"device(s) are visible (indices 0..{count - 1})"
            )
    try:
        import dask_cuda  # noqa: F401
    except Exception as exc:
        return f"dask-cuda cannot be imported ({type(exc).__name__}: {exc})"
    if options.rmm_pool_size is not None:
        try:
            import rmm  # noqa: F401
        except Exception as exc:
            return (
                f"cluster.cuda.rmm_pool_size needs RMM, which cannot be imported "
                f"({type(exc).__name__}: {exc}); pip install rmm-cu12"
            )
    return None


def start_cuda(config: ClusterConfig, stack: contextlib.ExitStack) -> Client:
    problem = _gpu_problem(config.cuda)
    if problem is not None:
        raise GPUUnavailableError(
            f"cluster kind 'cuda': no GPU was found that Dask can use: {problem}. "
            "bioxen-dask never falls back to the CPU silently. Fix: on a machine with "
            "an NVIDIA GPU, check that `nvidia-smi` lists it (and that "
            "CUDA_VISIBLE_DEVICES does not hide it), then install the GPU stack with "
            "pip install 'bioxen-dask[gpu]' (CuPy + dask-cuda). To run on CPUs "
            "instead, use cluster kind 'local'."
        )
    from dask_cuda import LocalCUDACluster

    kwargs: dict[str, Any] = {
        "CUDA_VISIBLE_DEVICES": list(config.cuda.devices) if config.cuda.devices else None,
        "n_workers": config.n_workers or None,
        "threads_per_worker": config.threads_per_worker or 1,
        "memory_limit": config.memory_limit,
        "rmm_pool_size": config.cuda.rmm_pool_size,
        "rmm_allocator_external_lib_list": ["cupy"],
        "host": "127.0.0.1",
        **dashboard_kwargs(config),
    }
    if config.cuda.device_memory_limit is not None:
        kwargs["device_memory_limit"] = config.cuda.device_memory_limit
    if config.cuda.protocol is not None:
        kwargs["protocol"] = config.cuda.protocol
    cluster = stack.enter_context(LocalCUDACluster(**kwargs))
    return client_for(cluster, config, stack)
