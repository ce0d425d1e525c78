"""Turn one configuration into a Dask client: the only place bioxen-dask starts clusters.

The library itself never creates a :class:`distributed.Client`; the CLI and the
notebooks call :func:`connect`, which yields a client and shuts down whatever it
started when the ``with`` block ends.  Six kinds of deployment are served from one
:class:`ClusterConfig` (the ``cluster:`` section of a pipeline YAML file):

=========  ================================================================
kind       what :func:`connect` does
=========  ================================================================
local      ``distributed.LocalCluster`` on this machine, bound to 127.0.0.1,
           sized by :func:`local_cluster_layout` (the default)
address    connect to a running scheduler (``--scheduler tcp://host:8786``,
           ``DASK_SCHEDULER_ADDRESS`` or a scheduler file)
slurm/pbs  ``dask_jobqueue.SLURMCluster`` / ``PBSCluster`` from
           ``deploy/jobqueue.yaml``, then ``scale(jobs=...)``
gateway    ``dask_gateway.Gateway(...).new_cluster(...)`` (JupyterHub/daskhub)
cuda       ``dask_cuda.LocalCUDACluster`` with an RMM pool that CuPy draws
           from; no GPU is an error, never a silent CPU fallback
=========  ================================================================

See ``deploy/README.md`` for the matching recipes (Dockerfile, Helm values,
Kubernetes operator manifest, SLURM/PBS profiles, GPU workers).

Examples
--------
>>> import dask.array as da
>>> from bioxen_dask.cluster import ClusterConfig, connect
>>> with connect(ClusterConfig(kind="local", n_workers=1)) as client:  # doctest: +SKIP
...     total = da.ones(1000, chunks=100).sum().compute()

Layout: :mod:`._config` (the configuration and its validators), one module per kind
(:mod:`._local`, :mod:`._address`, :mod:`._jobqueue` for slurm/pbs, :mod:`._gateway`,
:mod:`._cuda`), :mod:`._client` (dashboard links, waiting for workers), :mod:`._connect`;
progress bars and the active client live below the cluster layer, in
:mod:`bioxen_dask._progress`, for the library code that needs them without starting clusters.
"""

from __future__ import annotations

from .._progress import LOG_PROGRESS_INTERVAL, active_client, bar_options, cluster_progress, progress
from ..kernels._device import GPUUnavailableError
from ._client import dashboard_link
from ._config import (
    CLUSTER_KINDS,
    MIN_MEMORY_PER_THREAD,
    MIN_WORKER_MEMORY,
    ClusterConfig,
    ClusterConnectionError,
    CudaOptions,
    GatewayOptions,
    JobqueueOptions,
)
from ._connect import connect
from ._jobqueue import job_script
from ._local import local_cluster_layout, worker_environment

__all__ = [
    "CLUSTER_KINDS",
    "active_client",
    "MIN_MEMORY_PER_THREAD",
    "MIN_WORKER_MEMORY",
    "ClusterConfig",
    "ClusterConnectionError",
    "CudaOptions",
    "GPUUnavailableError",
    "GatewayOptions",
    "JobqueueOptions",
    "connect",
    "dashboard_link",
    "job_script",
    "worker_environment",
    "local_cluster_layout",
    "bar_options",
    "cluster_progress",
    "progress",
]
