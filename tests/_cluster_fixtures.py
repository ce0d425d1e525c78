"""Real Dask deployments on 127.0.0.1 for tests (pytest fixtures).

* ``dask_subprocess_cluster``: a ``dask scheduler`` and two ``dask worker`` processes
  started as subprocesses (kind ``address``).
* ``gateway_server``: a real ``dask-gateway-server`` with ``UnsafeLocalBackend`` and
  ``SimpleAuthenticator`` (kind ``gateway``).

Both are session-scoped, bind only to 127.0.0.1, wait until they are usable, and tear
down every process they started (SIGTERM to its process group, then SIGKILL), also
when a test fails.  Import them into a ``conftest.py`` (or a test module)::

    from _cluster_fixtures import dask_subprocess_cluster, gateway_server  # noqa: F401

and connect with :func:`bioxen_dask.cluster.connect`::

    def test_x(gateway_server):
        with connect(gateway_server.cluster_config(n_workers=1)) as client: ...

Subprocesses get the repository root on ``PYTHONPATH`` so that workers can unpickle
``bioxen_dask`` functions even when the project is not pip-installed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

__all__ = [
    "GatewayServer",
    "SubprocessCluster",
    "dask_command",
    "dask_subprocess_cluster",
    "free_port",
    "gateway_server",
    "subprocess_env",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT = 60.0  # seconds; generous for a loaded 2-core CI machine


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def dask_command(*args: str) -> list[str]:
    """``dask <args>`` from this interpreter's environment (works without activation)."""
    exe = Path(sys.executable).parent / "dask"
    if exe.exists():
        return [str(exe), *args]
    return [sys.executable, "-m", "dask", *args]


def subprocess_env() -> dict[str, str]:
    """The environment for child processes: this venv first on PATH, repo on PYTHONPATH."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in [str(REPO_ROOT), env.get("PYTHONPATH", "")] if p
    )
    env.pop("DASK_SCHEDULER_ADDRESS", None)
    # Keep loopback traffic away from any HTTP proxy configured in the environment.
    no_proxy = ",".join(p for p in [env.get("NO_PROXY", ""), "127.0.0.1", "localhost"] if p)
    env["NO_PROXY"] = env["no_proxy"] = no_proxy
    return env


def _tail(path: Path, n: int = 60) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "<no log>"
    return "\n".join(lines[-n:])


@dataclass
class _Processes:
    """Subprocesses this fixture started, each in its own session (pgid == pid)."""

    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, cmd: list[str], log: Path, **kwargs: Any) -> subprocess.Popen[bytes]:
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=subprocess_env(),
                **kwargs,
            )
        self.procs.append(proc)
        return proc

    @staticmethod
    def _signal(proc: subprocess.Popen[bytes], sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)  # the group we created with start_new_session

    def stop(self, grace: float = 15.0) -> None:
        """Stop in reverse start order (workers before their scheduler), each with
        SIGTERM, then SIGKILL to its process group after ``grace`` seconds."""
        for proc in reversed(self.procs):
            if proc.poll() is None:
                self._signal(proc, signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=grace)
            # Children that outlived their leader share its process group.
            self._signal(proc, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        self.procs.clear()


def _wait_for(
    predicate: Any, timeout: float, proc: subprocess.Popen[bytes], log: Path, what: str
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(
                f"{what}: process exited with code {proc.returncode}; log:\n{_tail(log)}",
                pytrace=False,
            )
        result = predicate()
        if result:
            return result
        time.sleep(0.1)
    pytest.fail(f"{what}: not ready after {timeout:g} s; log:\n{_tail(log)}", pytrace=False)


# --------------------------------------------------------------------------- address


@dataclass(frozen=True)
class SubprocessCluster:
    """A running ``dask scheduler`` + workers on 127.0.0.1."""

    address: str
    dashboard_port: int | None
    n_workers: int
    scheduler_file: Path
    log_dir: Path


@pytest.fixture(scope="session")
def dask_subprocess_cluster(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[SubprocessCluster]:
    """A real ``dask scheduler`` and two ``dask worker`` subprocesses on 127.0.0.1.

    Waits until both workers are connected; yields a :class:`SubprocessCluster`.
    """
    from distributed import Client

    n_workers = 2
    root = tmp_path_factory.mktemp("dask-subprocess")
    scheduler_file = root / "scheduler.json"
    procs = _Processes()
    try:
        scheduler_log = root / "scheduler.log"
        scheduler = procs.start(
            dask_command(
                "scheduler",
                "--host", "127.0.0.1",
                "--port", "0",
                "--dashboard-address", "127.0.0.1:0",
                "--scheduler-file", str(scheduler_file),
            ),
            scheduler_log,
            cwd=root,
        )

        def read_address() -> str | None:
            try:
                return json.loads(scheduler_file.read_text())["address"]
            except (OSError, ValueError, KeyError):
                return None

        address = _wait_for(read_address, START_TIMEOUT, scheduler, scheduler_log, "dask scheduler")
        workers = []
        for i in range(n_workers):
            log = root / f"worker-{i}.log"
            workers.append(
                (
                    procs.start(
                        dask_command(
                            "worker", address,
                            "--name", f"subprocess-worker-{i}",
                            "--host", "127.0.0.1",
                            "--nthreads", "1",
                            "--memory-limit", "1GiB",
                            "--no-nanny",
                            "--no-dashboard",
                            "--dashboard-address", "127.0.0.1:0",  # its HTTP server too
                            "--local-directory", str(root / f"worker-{i}"),
                        ),
                        log,
                        cwd=root,
                    ),
                    log,
                )
            )
        with Client(address, timeout=START_TIMEOUT) as client:
            deadline = time.monotonic() + START_TIMEOUT
            while len(client.scheduler_info(n_workers=-1)["workers"]) < n_workers:
                for proc, log in workers:
                    if proc.poll() is not None:
                        pytest.fail(
                            f"dask worker exited with code {proc.returncode}; log:\n{_tail(log)}",
                            pytrace=False,
                        )
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"only {len(client.scheduler_info()['workers'])} of {n_workers} "
                        f"workers connected; scheduler log:\n{_tail(scheduler_log)}",
                        pytrace=False,
                    )
                time.sleep(0.1)
            dashboard = client.scheduler_info(n_workers=0)["services"].get("dashboard")
        yield SubprocessCluster(
            address=address,
            dashboard_port=dashboard,
            n_workers=n_workers,
            scheduler_file=scheduler_file,
            log_dir=root,
        )
    finally:
        procs.stop()


# --------------------------------------------------------------------------- gateway

_GATEWAY_CONFIG = """\
# dask-gateway-server config written by tests/_cluster_fixtures.py
from dask_gateway_server.options import Float, Integer, Options, String

c.DaskGateway.address = "127.0.0.1:{api_port}"
c.DaskGateway.log_level = "INFO"
c.Proxy.address = "127.0.0.1:{http_port}"
c.Proxy.tcp_address = "127.0.0.1:{tcp_port}"
c.DaskGateway.backend_class = "dask_gateway_server.backends.local.UnsafeLocalBackend"
c.DaskGateway.authenticator_class = "dask_gateway_server.auth.SimpleAuthenticator"
c.SimpleAuthenticator.password = {password!r}
# The defaults ("dask-scheduler", "dask-worker") name console scripts that modern
# distributed no longer ships.
c.ClusterConfig.scheduler_cmd = {scheduler_cmd!r}
c.ClusterConfig.worker_cmd = {worker_cmd!r}
c.ClusterConfig.worker_memory = "1 G"
c.ClusterConfig.scheduler_memory = "1 G"
c.ClusterConfig.cluster_max_workers = 2
c.LocalBackend.clusters_directory = {clusters_dir!r}
c.LocalBackend.sigint_timeout = 5

def _options_handler(options):
    return {{
        "worker_cores": options.worker_cores,
        "worker_memory": int(options.worker_memory * 2**30),
    }}

c.Backend.cluster_options = Options(
    Integer("worker_cores", default=1, min=1, max=2, label="Worker cores"),
    Float("worker_memory", default=1, min=0.25, max=2, label="Worker memory (GiB)"),
    String("image", default="", label="Image (ignored by the local backend)"),
    handler=_options_handler,
)
"""


@dataclass(frozen=True)
class GatewayServer:
    """A running dask-gateway server on 127.0.0.1."""

    address: str
    proxy_address: str
    username: str
    password: str
    log_path: Path
    clusters_dir: Path

    def cluster_config(self, **gateway_options: Any) -> Any:
        """A ``ClusterConfig(kind='gateway')`` for this server.

        Keyword arguments go to :class:`bioxen_dask.cluster.GatewayOptions`
        (e.g. ``n_workers=1``, ``cluster_options={"worker_cores": 1}``).
        """
        from bioxen_dask.cluster import ClusterConfig, GatewayOptions

        options = {
            "address": self.address,
            "proxy_address": self.proxy_address,
            "auth": "basic",
            "username": self.username,
            "password": self.password,
            **gateway_options,
        }
        return ClusterConfig(
            kind="gateway", connect_timeout=10.0, gateway=GatewayOptions(**options)
        )


def _health(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 (loopback only)
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


@pytest.fixture(scope="session")
def gateway_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    """A real ``dask-gateway-server`` (UnsafeLocalBackend + SimpleAuthenticator).

    Listens on free 127.0.0.1 ports (API, HTTP proxy, scheduler proxy); its clusters run
    ``dask scheduler``/``dask worker`` as local processes.  Yields a
    :class:`GatewayServer`; while it runs, ``gateway.http-client.proxy`` is off so no
    HTTP proxy from the environment is used for loopback requests.
    """
    pytest.importorskip("dask_gateway")
    pytest.importorskip("dask_gateway_server")
    pytest.importorskip("sqlalchemy")
    import dask

    root = tmp_path_factory.mktemp("dask-gateway")
    clusters_dir = root / "clusters"
    clusters_dir.mkdir()
    password = "bioxen-test-password"
    procs = _Processes()
    server = None
    try:
        for attempt in range(3):  # a "free" port can be taken between probe and bind
            api_port, http_port, tcp_port = free_port(), free_port(), free_port()
            if len({api_port, http_port, tcp_port}) < 3:
                continue
            config = root / f"gateway_config_{attempt}.py"
            config.write_text(
                textwrap.dedent(
                    _GATEWAY_CONFIG.format(
                        api_port=api_port,
                        http_port=http_port,
                        tcp_port=tcp_port,
                        password=password,
                        scheduler_cmd=dask_command("scheduler"),
                        worker_cmd=dask_command("worker"),
                        clusters_dir=str(clusters_dir),
                    )
                )
            )
            log = root / f"gateway-{attempt}.log"
            proc = procs.start(
                [sys.executable, "-m", "dask_gateway_server", "-f", str(config)], log, cwd=root
            )
            health = f"http://127.0.0.1:{http_port}/api/health"
            deadline = time.monotonic() + START_TIMEOUT
            while time.monotonic() < deadline and proc.poll() is None and not _health(health):
                time.sleep(0.2)
            if proc.poll() is None and _health(health):
                server = GatewayServer(
                    address=f"http://127.0.0.1:{http_port}",
                    proxy_address=f"gateway://127.0.0.1:{tcp_port}",
                    username="alice",
                    password=password,
                    log_path=log,
                    clusters_dir=clusters_dir,
                )
                break
            text = _tail(log, 200)
            procs.stop()
            if "address already in use" not in text.lower():
                pytest.fail(
                    f"dask-gateway-server did not become healthy at {health}; log:\n{text}",
                    pytrace=False,
                )
        if server is None:
            pytest.fail("dask-gateway-server: no free ports after 3 attempts", pytrace=False)
        with dask.config.set({"gateway.http-client.proxy": False}):
            yield server
    finally:
        # SIGTERM makes the gateway stop its clusters (stop_clusters_on_shutdown=True)
        # before it exits; stragglers are killed with the process group.
        procs.stop(grace=30.0)
        _kill_cluster_processes(clusters_dir)


def _kill_cluster_processes(clusters_dir: Path) -> None:
    """Safety net: kill gateway cluster processes (cwd under ``clusters_dir``) left behind.

    The local backend starts schedulers and workers in their own sessions with their
    working directory under ``clusters_dir``, so they are found by cwd, by pid.
    """
    import psutil

    root = str(clusters_dir)
    for proc in psutil.process_iter(["pid", "cwd"]):
        cwd = proc.info.get("cwd") or ""
        if cwd.startswith(root):
            with contextlib.suppress(psutil.Error):
                proc.kill()
