""":func:`connect`: one configuration in, a client out; the starter of each kind."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import dask

from ._address import start_address
from ._client import dashboard_link, jupyterhub_link_template
from ._config import ClusterConfig, coerce_config
from ._cuda import start_cuda
from ._gateway import start_gateway
from ._jobqueue import start_jobqueue
from ._local import start_local

if TYPE_CHECKING:  # pragma: no cover
    from distributed import Client

__all__ = ["connect"]

logger = logging.getLogger("bioxen_dask.cluster")

_STARTERS = {
    "local": start_local,
    "address": start_address,
    "slurm": start_jobqueue,
    "pbs": start_jobqueue,
    "gateway": start_gateway,
    "cuda": start_cuda,
}

# Kinds whose scheduler (and dashboard) runs in this process.
_SCHEDULER_IN_PROCESS = ("local", "cuda", "slurm", "pbs")


@contextlib.contextmanager
def connect(config: ClusterConfig | Mapping[str, Any] | None = None) -> Iterator[Client]:
    """Start or reach the Dask cluster ``config`` describes; yield a client.

    Everything :func:`connect` started (cluster, scheduler, batch jobs, gateway
    cluster) is shut down when the ``with`` block ends, also on error; a
    scheduler reached by address is left running (only the client closes).
    The client is the default client inside the block, so ``.compute()`` and
    ``dask.compute`` use it.  Only the CLI and notebooks call this: library
    functions accept dask collections and never create clients.

    Inside JupyterHub (``JUPYTERHUB_SERVICE_PREFIX`` set), for kinds whose
    scheduler runs in this process (local, cuda, slurm, pbs), the dashboard link
    is set to ``{JUPYTERHUB_SERVICE_PREFIX}proxy/{port}/status`` for the duration
    of the block (``distributed.dashboard.link``).

    Parameters
    ----------
    config : ClusterConfig, mapping or None
        ``None`` gives a local cluster sized to this machine; a mapping is passed
        to :meth:`ClusterConfig.from_mapping`.

    Yields
    ------
    distributed.Client

    Raises
    ------
    ClusterConnectionError
        A scheduler or gateway is unreachable within ``connect_timeout``.
    GPUUnavailableError
        ``kind='cuda'`` without CuPy, dask-cuda or a CUDA device.
    ValueError
        Invalid configuration (see :class:`ClusterConfig`).
    TimeoutError
        ``wait_timeout`` expired before the requested workers joined.

    Examples
    --------
    >>> import dask.array as da
    >>> with connect({"kind": "local", "n_workers": 2}) as client:  # doctest: +SKIP
    ...     print(dashboard_link(client))
    ...     da.ones((1000, 1000), chunks=250).sum().compute()
    1000000.0
    >>> cfg = {"kind": "address", "address": "tcp://10.0.0.5:8786"}
    >>> with connect(cfg) as client:  # doctest: +SKIP
    ...     ...
    """
    config = coerce_config(config)
    with contextlib.ExitStack() as stack:
        template = jupyterhub_link_template()
        if template is not None and config.kind in _SCHEDULER_IN_PROCESS:
            stack.enter_context(dask.config.set({"distributed.dashboard.link": template}))
        client = _STARTERS[config.kind](config, stack)
        link = dashboard_link(client)
        logger.info(
            "Dask %s cluster ready: %s (dashboard: %s)",
            config.kind,
            client.scheduler.address,
            link or "disabled",
        )
        yield client
