"""``kind='gateway'``: a dask-gateway cluster (JupyterHub/daskhub), created or joined."""

from __future__ import annotations

import contextlib
import os
import socket
import urllib.parse
from typing import TYPE_CHECKING, Any

import dask

from ._client import wait_for_workers
from ._config import ClusterConfig, ClusterConnectionError, GatewayOptions, require_extra

if TYPE_CHECKING:  # pragma: no cover
    from distributed import Client

__all__ = ["start_gateway"]


def _check_reachable(url: str, timeout: float, what: str) -> None:
    """Fail fast (within ``timeout``) when nothing listens at ``url``'s host:port."""
    parts = urllib.parse.urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    if not parts.hostname or port is None:
        return
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            pass
    except OSError as exc:
        raise ClusterConnectionError(
            f"could not reach the {what} at {url!r} within connect_timeout={timeout:g} s "
            f"({type(exc).__name__}: {exc}). Check that the gateway is running and the "
            "address is right (cluster.gateway.address or DASK_GATEWAY__ADDRESS; on "
            "daskhub it is set for you in every notebook)."
        ) from exc


def _gateway_auth(options: GatewayOptions) -> Any:
    if options.auth is None:
        return None  # dask config gateway.auth decides (daskhub: jupyterhub)
    if options.auth == "basic":
        from dask_gateway import BasicAuth

        password = options.password
        if password is None:
            password = os.environ.get("DASK_GATEWAY_PASSWORD")
        return BasicAuth(username=options.username, password=password)
    return options.auth  # 'kerberos' / 'jupyterhub': dask-gateway builds it


def _forget_gateway_client(gateway: Any) -> None:
    """Stop ``Gateway.__del__`` from closing an already closed gateway client again.

    With dask-gateway 2026.3 and distributed 2026.8 a second ``Gateway.close()``
    raises "Accessing the loop property while the loop is not running", which
    ``__del__`` reports at garbage collection; ``__del__`` skips objects without a
    ``_loop_runner``.
    """
    gateway.__dict__.pop("_loop_runner", None)


def _close_gateway_client(gateway: Any) -> None:
    try:
        gateway.close()
    finally:
        _forget_gateway_client(gateway)


def start_gateway(config: ClusterConfig, stack: contextlib.ExitStack) -> Client:
    Gateway = require_extra("dask_gateway", "'gateway'").Gateway
    format_template = require_extra("dask_gateway.utils", "'gateway'").format_template

    options = config.gateway
    address = options.address or format_template(dask.config.get("gateway.address", None))
    if not address:
        raise ValueError(
            "cluster kind 'gateway' needs the gateway's address and none was found. Fix: "
            "set cluster.gateway.address (http://HOST:PORT) or DASK_GATEWAY__ADDRESS "
            "(daskhub sets it in every notebook pod)."
        )
    _check_reachable(address, config.connect_timeout, "dask-gateway server")
    gateway = Gateway(
        address=address,
        proxy_address=options.proxy_address,
        public_address=options.public_address,
        auth=_gateway_auth(options),
    )
    stack.callback(_close_gateway_client, gateway)  # registered first, so closed last

    if options.cluster_name is not None:
        cluster = gateway.connect(options.cluster_name, shutdown_on_close=False)
        stack.callback(_forget_gateway_client, cluster.gateway)
        stack.callback(cluster.close)  # not ours: disconnect only
    else:
        if options.cluster_options:
            # Check names here: a refused option otherwise surfaces from inside
            # GatewayCluster's constructor, which leaks its internal client.
            offered = None
            with contextlib.suppress(Exception):  # auth/server errors: new_cluster reports
                offered = sorted(gateway.cluster_options(use_local_defaults=False))
            unknown = sorted(set(options.cluster_options) - set(offered or options.cluster_options))
            if unknown:
                raise ValueError(
                    f"cluster.gateway.cluster_options: {unknown} not offered by the gateway "
                    f"at {address}; it offers {offered} (its c.Backend.cluster_options)."
                )
        try:
            cluster = gateway.new_cluster(
                shutdown_on_close=options.shutdown_on_exit, **options.cluster_options
            )
        except ValueError as exc:
            offered = "unknown"
            with contextlib.suppress(Exception):
                offered = str(sorted(gateway.cluster_options(use_local_defaults=False)))
            raise ValueError(
                f"dask-gateway refused cluster.gateway.cluster_options="
                f"{dict(options.cluster_options)!r}: {exc}. Options this gateway "
                f"offers: {offered}."
            ) from exc
        stack.callback(_forget_gateway_client, cluster.gateway)
        stack.callback(cluster.shutdown if options.shutdown_on_exit else cluster.close)

    n_workers = options.n_workers
    if n_workers is None:
        n_workers = config.n_workers if config.n_workers is not None else 1
    if options.adapt_maximum is not None:
        cluster.adapt(minimum=n_workers, maximum=options.adapt_maximum)
    else:
        cluster.scale(n_workers)
    client = stack.enter_context(cluster.get_client(set_as_default=True))
    wait_for_workers(client, n_workers, config)
    return client
