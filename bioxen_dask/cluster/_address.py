"""``kind='address'``: a running scheduler, reached by address or scheduler file (probed first)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dask

from ._client import wait_for_workers
from ._config import ClusterConfig, ClusterConnectionError, check_address_host_port

if TYPE_CHECKING:  # pragma: no cover
    from distributed import Client

__all__ = ["start_address"]


class _NotADaskScheduler(ConnectionError):
    """The address answers, but not with distributed's protocol."""


def _address_error(
    target: str, config: ClusterConfig, exc: BaseException
) -> ClusterConnectionError:
    return ClusterConnectionError(
        f"could not connect to the Dask scheduler at {target} within "
        f"connect_timeout={config.connect_timeout:g} s ({type(exc).__name__}: {exc}). "
        "Check that the scheduler is running and reachable from this machine "
        "(`dask scheduler` prints its address; mind firewalls and SSH tunnels), and "
        "that the address is right: `--scheduler tcp://HOST:PORT` on the command "
        "line, cluster.address in the pipeline file, or DASK_SCHEDULER_ADDRESS."
    )


def _probe_scheduler(address: str, timeout: float) -> None:
    """Open one comm to ``address`` and finish distributed's handshake within ``timeout`` s.

    ``distributed.Client(timeout=...)`` bounds the TCP connect but not the handshake read that
    follows (distributed 2026.8: ``comm.core.connect`` awaits ``comm.read()`` without a
    timeout), so a port that accepts connections and never answers -- a hung scheduler, a
    proxy, another service -- would block it forever. This probe runs the same connect with
    an overall deadline, on its own event loop in a helper thread (so it also works where the
    calling thread runs a loop, e.g. Jupyter), and raises on silence.
    """
    import asyncio
    import concurrent.futures

    from distributed.comm import connect as comm_connect
    from distributed.security import Security

    async def probe() -> None:
        kwargs = Security().get_connection_args("client")
        try:
            comm = await asyncio.wait_for(comm_connect(address, timeout=timeout, **kwargs), timeout)
        except (OSError, asyncio.TimeoutError, TimeoutError):
            raise
        except Exception:  # bytes that are not Dask's protocol (e.g. an SSH banner read
            # as a frame size: "MemoryError: Unable to allocate 3.07 EiB")
            raise _NotADaskScheduler(
                f"something answered at {address}, but it is not a Dask scheduler (its reply is "
                "not Dask's protocol); is it another service's port (SSH, "
                "HTTP, a proxy) instead of the scheduler's (8786 by default)?"
            ) from None
        await comm.close()

    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="bioxen-probe") as pool:
        try:
            pool.submit(asyncio.run, probe()).result(timeout=timeout + 5)
        except concurrent.futures.TimeoutError:
            raise TimeoutError(
                f"no handshake from {address} within {timeout:g} s: something accepted the "
                "connection but did not answer as a Dask scheduler -- a hung scheduler, or "
                "another port, e.g. the dashboard's (8787) instead of the scheduler's (8786)"
            ) from None


def start_address(config: ClusterConfig, stack: contextlib.ExitStack) -> Client:
    from distributed import Client

    if config.scheduler_file is not None:
        path = Path(config.scheduler_file).expanduser()
        if not path.exists():
            raise FileNotFoundError(
                f"scheduler file {str(path)!r} does not exist. Start the scheduler with "
                "`dask scheduler --scheduler-file PATH` first, or fix cluster.scheduler_file."
            )
        target = f"scheduler file {str(path)!r}"
        kwargs: dict[str, Any] = {"scheduler_file": str(path)}
    else:
        address = (
            config.address
            or os.environ.get("DASK_SCHEDULER_ADDRESS")
            or dask.config.get("scheduler-address", default=None)
        )
        if not address:
            raise ValueError(
                "cluster kind 'address' needs a scheduler address, and none was given. "
                "Fix: pass `--scheduler tcp://HOST:PORT`, set cluster.address in the "
                "pipeline file, or export DASK_SCHEDULER_ADDRESS=tcp://HOST:PORT."
            )
        check_address_host_port("cluster.address (or DASK_SCHEDULER_ADDRESS)", address)
        target = repr(address)
        kwargs = {"address": address}
    try:
        probe_address = kwargs.get("address")
        if probe_address is None:
            import json

            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                probe_address = json.loads(Path(kwargs["scheduler_file"]).read_text())["address"]
        if probe_address:
            _probe_scheduler(probe_address, config.connect_timeout)
        client = Client(timeout=config.connect_timeout, **kwargs)
    except _NotADaskScheduler as exc:
        raise ClusterConnectionError(
            f"could not connect to the Dask scheduler at {target}: {exc} Fix the address: "
            "`--scheduler tcp://HOST:PORT` on the command line, cluster.address in the "
            "pipeline file, or DASK_SCHEDULER_ADDRESS."
        ) from None
    except Exception as exc:  # OSError/TimeoutError, or garbage from a non-Dask port
        raise _address_error(target, config, exc) from exc
    stack.enter_context(client)  # the scheduler is not ours: only the client is closed
    wait_for_workers(client, 1 if config.n_workers is None else config.n_workers, config)
    return client
