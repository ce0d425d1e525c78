"""The client of a started cluster: its dashboard link, the dashboard settings of schedulers
started here, and waiting for workers."""

from __future__ import annotations

import contextlib
import os
import socket
import urllib.parse
import weakref
from typing import TYPE_CHECKING, Any

from ._config import ClusterConfig

if TYPE_CHECKING:  # pragma: no cover
    from distributed import Client

__all__ = ["client_for", "dashboard_kwargs", "dashboard_link", "jupyterhub_link_template", "wait_for_workers"]

_LOOPBACK = {"127.0.0.1", "localhost", "::1", "0:0:0:0:0:0:0:1"}


# Clients whose scheduler was started with the dashboard disabled.  Its HTTP server
# (health, metrics) still listens, on 127.0.0.1 and a free port: distributed binds
# ":8787" on every interface when given no address, so "no dashboard" must not mean
# "no address".
_NO_DASHBOARD: weakref.WeakSet[Any] = weakref.WeakSet()
_QUIET_HTTP_ADDRESS = "127.0.0.1:0"



def jupyterhub_link_template() -> str | None:
    """``{prefix}proxy/{port}/status`` when running inside a JupyterHub server."""
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX")
    if not prefix:
        return None
    if not prefix.endswith("/"):
        prefix += "/"
    # Literal prefix (braces escaped): robust to a prefix without a trailing slash.
    return prefix.replace("{", "{{").replace("}", "}}") + "proxy/{port}/status"


def _is_gateway_cluster(cluster: Any) -> bool:
    return type(cluster).__module__.split(".")[0] == "dask_gateway"


def _scheduler_is_here(client: Any) -> bool:
    """Does the scheduler (and so its dashboard) run on this machine?"""
    cluster = getattr(client, "cluster", None)
    if cluster is not None and not _is_gateway_cluster(cluster):
        return True  # LocalCluster, LocalCUDACluster, JobQueueCluster: in this process
    try:
        host = urllib.parse.urlsplit(client.scheduler.address).hostname or ""
    except Exception:  # pragma: no cover - defensive
        return False
    if host in _LOOPBACK:
        return True
    with contextlib.suppress(OSError):
        names = {socket.gethostname(), socket.getfqdn()}
        return host in names or host in {socket.gethostbyname(n) for n in names}
    return False


def dashboard_link(client: Client) -> str | None:
    """The URL of the scheduler's dashboard as the user can open it, or ``None``.

    * dask-gateway clusters: the gateway's proxied dashboard URL.
    * Inside JupyterHub (``JUPYTERHUB_SERVICE_PREFIX`` set) with the scheduler on
      the same machine: ``{JUPYTERHUB_SERVICE_PREFIX}proxy/{port}/status``, served
      by jupyter-server-proxy.
    * Otherwise ``client.dashboard_link`` (``distributed.dashboard.link``).

    ``None`` means the scheduler serves no dashboard (disabled with
    ``dashboard_address=None``).  Rendering the dashboard's plots needs
    ``bokeh>=3.1`` in the scheduler's environment.

    Parameters
    ----------
    client : distributed.Client

    Returns
    -------
    str or None

    Examples
    --------
    >>> with connect(ClusterConfig(n_workers=1)) as client:  # doctest: +SKIP
    ...     print(dashboard_link(client))
    http://127.0.0.1:40123/status
    """
    if client in _NO_DASHBOARD:
        return None
    cluster = getattr(client, "cluster", None)
    if cluster is not None and _is_gateway_cluster(cluster):
        return cluster.dashboard_link
    info = client.scheduler_info(n_workers=0)
    port = (info.get("services") or {}).get("dashboard")
    if port is None:
        return None
    template = jupyterhub_link_template()
    if template is not None and _scheduler_is_here(client):
        return template.format(port=port)
    try:
        return client.dashboard_link
    except KeyError:
        # distributed.dashboard.link names an environment variable that is unset.
        host = urllib.parse.urlsplit(client.scheduler.address).hostname
        return f"http://{host}:{port}/status"


def wait_for_workers(client: Client, n: int, config: ClusterConfig) -> None:
    if config.wait_timeout is None or n <= 0:
        return
    try:
        client.wait_for_workers(n, timeout=config.wait_timeout)
    except TimeoutError as exc:
        have = len(client.scheduler_info(n_workers=-1).get("workers", {}))
        raise TimeoutError(
            f"only {have} of {n} Dask workers joined within wait_timeout="
            f"{config.wait_timeout:g} s (cluster kind {config.kind!r}). Check the "
            "worker logs (batch-job output, gateway/pod logs) or raise wait_timeout."
        ) from exc


def dashboard_kwargs(config: ClusterConfig) -> dict[str, Any]:
    """LocalCluster/LocalCUDACluster keywords for ``config.dashboard_address``."""
    if config.dashboard_address is None:
        return {
            "dashboard_address": _QUIET_HTTP_ADDRESS,
            "scheduler_kwargs": {"dashboard": False},
        }
    return {"dashboard_address": config.dashboard_address}


def client_for(cluster: Any, config: ClusterConfig, stack: contextlib.ExitStack) -> Client:
    from distributed import Client

    client = stack.enter_context(Client(cluster, timeout=config.connect_timeout))
    if config.dashboard_address is None:
        _NO_DASHBOARD.add(client)
    return client
