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
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import logging
import math
import numbers
import os
import socket
import sys
import urllib.parse
import weakref
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dask

from . import _cluster_jobqueue as _jq
from .kernels._device import GPUUnavailableError, gpu_problem

if TYPE_CHECKING:  # pragma: no cover
    from distributed import Client

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

logger = logging.getLogger(__name__)

#: The deployment kinds :func:`connect` understands.
CLUSTER_KINDS: tuple[str, ...] = ("local", "address", "slurm", "pbs", "gateway", "cuda")

#: Memory a local worker thread should have (bytes) before another thread is added.
#: [derived] A 16-roi block with 159 scales × 18,000 samples is ~366 MB as complex64;
#: the fused CWT → smoothing → coherence kernel holds about five arrays of that size.
MIN_MEMORY_PER_THREAD: int = 2 * 2**30

#: Smallest per-worker ``memory_limit`` accepted (bytes). [measured] An idle worker with
#: ``bioxen_dask.kernels`` imported holds ~121 MiB; distributed pauses a worker at 80 % of
#: its limit and restarts it at 95 %, so below this no task gets to run.
MIN_WORKER_MEMORY: int = 256 * 2**20

_SCHEDULER_SCHEMES = ("tcp", "tls", "ucx", "ucxx", "inproc", "ws", "wss")
_GATEWAY_AUTH = ("basic", "kerberos", "jupyterhub")
_LOOPBACK = {"127.0.0.1", "localhost", "::1", "0:0:0:0:0:0:0:1"}

# Clients whose scheduler was started with the dashboard disabled.  Its HTTP server
# (health, metrics) still listens, on 127.0.0.1 and a free port: distributed binds
# ":8787" on every interface when given no address, so "no dashboard" must not mean
# "no address".
_NO_DASHBOARD: weakref.WeakSet[Any] = weakref.WeakSet()
_QUIET_HTTP_ADDRESS = "127.0.0.1:0"


class ClusterConnectionError(ConnectionError):
    """A scheduler or gateway could not be reached within ``connect_timeout``."""


class _NotADaskScheduler(ConnectionError):
    """The address answers, but not with distributed's protocol."""


# --------------------------------------------------------------------------- validation


def _fail(where: str, message: str) -> ValueError:
    return ValueError(f"{where}: {message}")


def _check_int(where: str, value: Any, *, minimum: int, allow_none: bool = True) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        null = " or null" if allow_none else ""
        raise _fail(
            where, f"must be an integer >= {minimum}{null}, got {value!r} ({type(value).__name__})"
        )
    return int(value)


def _check_positive(where: str, value: Any, *, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or value <= 0
    ):
        null = " or null" if allow_none else ""
        raise _fail(
            where, f"must be a number of seconds > 0{null}, got {value!r} ({type(value).__name__})"
        )
    return float(value)


def _check_str(where: str, value: Any, *, allow_none: bool = True) -> str | None:
    if value is None and allow_none:
        return None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if not isinstance(value, str) or not value:
        raise _fail(where, f"must be a non-empty string, got {value!r} ({type(value).__name__})")
    return value


def _check_bool(where: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _fail(where, f"must be true or false, got {value!r} ({type(value).__name__})")
    return value


def _check_choice(where: str, value: Any, choices: Iterable[str], *, allow_none: bool) -> Any:
    choices = tuple(choices)
    if value is None and allow_none:
        return None
    if value not in choices:
        allowed = ", ".join(repr(c) for c in choices) + (", null" if allow_none else "")
        close = [c for c in choices if c.lower() == str(value).lower()]
        close = close or difflib.get_close_matches(str(value), choices, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise _fail(where, f"{value!r} is not allowed.{hint} Allowed values: {allowed}.")
    return value


def _check_bytes(where: str, value: Any, *, allow_auto: bool = True) -> Any:
    """None, 'auto', bytes (int), a fraction of total memory (float <= 1) or '4GiB'."""
    if value is None or (allow_auto and value == "auto"):
        return value
    if isinstance(value, bool):
        pass
    elif isinstance(value, numbers.Real) and value >= 0:
        return value
    elif isinstance(value, str):
        try:
            dask.utils.parse_bytes(value)
        except (ValueError, TypeError):
            pass
        else:
            return value
    auto = "'auto', " if allow_auto else ""
    raise _fail(
        where,
        f"must be null, {auto}a byte count, a fraction of total memory (0-1] or a "
        f"size string like '4GiB'; got {value!r} ({type(value).__name__})",
    )


def _check_worker_memory(where: str, value: Any) -> None:
    """Reject a (valid-looking) per-worker limit that distributed reads as a few bytes.

    distributed reads a number (or numeric string) up to 1 as a fraction of the machine's
    memory and anything larger as bytes, so ``memory_limit: 1.5`` meant 1 byte per worker:
    the nanny restarted its worker forever and every compute hung.
    """
    if value is None or value == "auto" or isinstance(value, bool):
        return
    number: Any = value
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    if number is not None:
        if 0 <= number <= 1:
            return  # a fraction of the machine's memory (0: no limit)
        nbytes = int(number)
    else:
        nbytes = dask.utils.parse_bytes(value)
    if nbytes < MIN_WORKER_MEMORY:
        raise _fail(
            where,
            f"{value!r} means {nbytes} bytes per worker to distributed (numbers up to 1 are "
            "fractions of the machine's memory, larger ones byte counts), below the "
            f"{MIN_WORKER_MEMORY // 2**20} MiB a worker needs to run at all. Write a size like "
            "'1.5GiB' or a fraction like 0.5.",
        )


def _check_mapping(where: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _fail(where, f"must be a mapping, got {value!r} ({type(value).__name__})")
    return {str(k): v for k, v in value.items()}


def _check_address_host_port(where: str, value: str) -> str:
    parsed = urllib.parse.urlsplit(value if "://" in value else f"tcp://{value}")
    if parsed.scheme not in _SCHEDULER_SCHEMES:
        raise _fail(
            where,
            f"{value!r} has scheme {parsed.scheme!r}; a scheduler address looks like "
            f"'tcp://HOST:PORT' (schemes: {', '.join(_SCHEDULER_SCHEMES)}).",
        )
    if parsed.scheme != "inproc" and not parsed.hostname:
        raise _fail(where, f"{value!r} has no host; expected 'tcp://HOST:PORT'.")
    return value


def _normalise_keys(where: str, mapping: Any, allowed: Iterable[str]) -> dict[str, Any]:
    """Accept ``snake_case`` or ``kebab-case`` keys; reject unknown ones with a hint."""
    if mapping is None:
        return {}
    if not isinstance(mapping, Mapping):
        raise _fail(where, f"must be a mapping, got {mapping!r} ({type(mapping).__name__})")
    allowed = tuple(allowed)
    out: dict[str, Any] = {}
    for raw, value in mapping.items():
        key = str(raw).replace("-", "_")
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise _fail(
                where, f"unknown key {raw!r}.{hint} Allowed keys: {', '.join(allowed)}."
            )
        out[key] = value
    return out


def _snake(mapping: Mapping[Any, Any]) -> dict[str, Any]:
    return {str(k).replace("-", "_"): v for k, v in mapping.items()}


def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


# --------------------------------------------------------------------------- options


@dataclass(frozen=True)
class JobqueueOptions:
    """How to submit SLURM/PBS jobs through dask-jobqueue (``kind='slurm'|'pbs'``).

    Parameters
    ----------
    config_file : str, optional
        A dask-jobqueue YAML file (top-level ``jobqueue:``).  ``None`` uses the
        repository's ``deploy/jobqueue.yaml`` when running from a source checkout,
        otherwise dask's configuration (``~/.config/dask/``, ``/etc/dask/``; the
        Docker image installs ``deploy/jobqueue.yaml`` there).
    section : str, optional
        Section of that file; defaults to the kind (``slurm`` or ``pbs``).  Use
        e.g. ``slurm-gpu`` for a GPU profile.
    overrides : mapping, optional
        Per-run replacements in dask-jobqueue spelling, e.g.
        ``{"walltime": "04:00:00", "job-extra-directives": ["--qos=long"]}``.
    scale : int, default 1
        Number of batch jobs to submit (each job runs ``processes`` workers).
    adapt_maximum_jobs : int, optional
        If set, scale adaptively between ``scale`` and this many jobs instead.

    Examples
    --------
    >>> JobqueueOptions(scale=4, overrides={"walltime": "02:00:00"}).scale
    4
    """

    config_file: str | None = None
    section: str | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict, hash=False)
    scale: int = 1
    adapt_maximum_jobs: int | None = None

    def __post_init__(self) -> None:
        w = "cluster.jobqueue"
        object.__setattr__(self, "config_file", _check_str(f"{w}.config_file", self.config_file))
        object.__setattr__(self, "section", _check_str(f"{w}.section", self.section))
        object.__setattr__(self, "overrides", _check_mapping(f"{w}.overrides", self.overrides))
        scale = _check_int(f"{w}.scale", self.scale, minimum=0, allow_none=False)
        object.__setattr__(self, "scale", scale)
        amax = _check_int(f"{w}.adapt_maximum_jobs", self.adapt_maximum_jobs, minimum=1)
        if amax is not None and amax < scale:
            raise _fail(
                f"{w}.adapt_maximum_jobs",
                f"({amax}) must be >= cluster.jobqueue.scale ({scale}), the adaptive minimum.",
            )


@dataclass(frozen=True)
class GatewayOptions:
    """How to reach a dask-gateway server (``kind='gateway'``, JupyterHub/daskhub).

    Parameters
    ----------
    address : str, optional
        The gateway's HTTP address, e.g. ``http://127.0.0.1:8000``.  ``None``
        uses dask config ``gateway.address`` (daskhub sets
        ``DASK_GATEWAY__ADDRESS`` in every notebook pod).
    proxy_address : str, optional
        The scheduler proxy, e.g. ``gateway://127.0.0.1:8001``; ``None`` uses
        ``gateway.proxy-address`` from dask config, else ``address``'s port.
    public_address : str, optional
        Browser-facing address used for dashboard links.
    auth : {'basic', 'kerberos', 'jupyterhub'}, optional
        ``None`` uses dask config ``gateway.auth`` (daskhub: ``jupyterhub``).
    username, password : str, optional
        For ``auth='basic'``.  ``password=None`` reads ``DASK_GATEWAY_PASSWORD``;
        keep passwords out of pipeline files.
    cluster_options : mapping, optional
        Options the gateway exposes, e.g. ``{"worker_cores": 2,
        "worker_memory": 8, "image": "ghcr.io/...:0.1.0"}``; the names are set
        by the server's ``c.Backend.cluster_options`` (see
        ``deploy/gateway/daskhub-values.yaml``).
    n_workers : int, optional
        Workers to scale to; ``None`` uses ``ClusterConfig.n_workers``, else 1.
    adapt_maximum : int, optional
        If set, scale adaptively between ``n_workers`` and this many workers.
    cluster_name : str, optional
        Connect to this existing gateway cluster instead of creating one; it is
        never shut down on exit (it is not ours).
    shutdown_on_exit : bool, default True
        Shut a cluster created by :func:`connect` down when the block ends.

    Examples
    --------
    >>> GatewayOptions(address="http://127.0.0.1:8000", auth="basic").auth
    'basic'
    """

    address: str | None = None
    proxy_address: str | None = None
    public_address: str | None = None
    auth: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    cluster_options: Mapping[str, Any] = field(default_factory=dict, hash=False)
    n_workers: int | None = None
    adapt_maximum: int | None = None
    cluster_name: str | None = None
    shutdown_on_exit: bool = True

    def __post_init__(self) -> None:
        w = "cluster.gateway"
        for name in ("address", "proxy_address", "public_address", "username", "password",
                     "cluster_name"):
            object.__setattr__(self, name, _check_str(f"{w}.{name}", getattr(self, name)))
        if self.address is not None and urllib.parse.urlsplit(self.address).scheme not in (
            "http", "https"
        ):
            raise _fail(
                f"{w}.address",
                f"{self.address!r} is not an http(s) URL; a gateway address looks like "
                "'http://HOST:PORT' (the scheduler proxy goes in proxy_address).",
            )
        _check_choice(f"{w}.auth", self.auth, _GATEWAY_AUTH, allow_none=True)
        object.__setattr__(
            self, "cluster_options", _check_mapping(f"{w}.cluster_options", self.cluster_options)
        )
        n = _check_int(f"{w}.n_workers", self.n_workers, minimum=0)
        object.__setattr__(self, "n_workers", n)
        amax = _check_int(f"{w}.adapt_maximum", self.adapt_maximum, minimum=1)
        if amax is not None and n is not None and amax < n:
            raise _fail(f"{w}.adapt_maximum", f"({amax}) must be >= n_workers ({n}).")
        _check_bool(f"{w}.shutdown_on_exit", self.shutdown_on_exit)


@dataclass(frozen=True)
class CudaOptions:
    """GPU workers through dask-cuda (``kind='cuda'``).

    Parameters
    ----------
    rmm_pool_size : str, int or float, optional
        Per-worker RMM pool, e.g. ``"30GB"`` or ``0.8`` (fraction of device
        memory).  Leave 200-500 MB of the device for the CUDA context.  CuPy is
        pointed at the pool (``rmm_allocator_external_lib_list=["cupy"]``).
    devices : sequence of int or str, optional
        GPUs to use (``CUDA_VISIBLE_DEVICES``), e.g. ``[0, 1]`` or ``"0,1"``;
        ``None`` uses every visible GPU, one worker per GPU.
    device_memory_limit : str, int or float, optional
        Spill device memory to host above this (dask-cuda default: 0.8).
    protocol : {'tcp', 'ucx'}, optional
        ``'ucx'`` enables NVLink/InfiniBand transfers (needs UCX installed).

    Examples
    --------
    >>> CudaOptions(rmm_pool_size="30GB", devices="0,1").devices
    (0, 1)
    """

    rmm_pool_size: str | int | float | None = None
    devices: tuple[int, ...] | None = None
    device_memory_limit: str | int | float | None = None
    protocol: str | None = None

    def __post_init__(self) -> None:
        w = "cluster.cuda"
        _check_bytes(f"{w}.rmm_pool_size", self.rmm_pool_size, allow_auto=False)
        _check_bytes(f"{w}.device_memory_limit", self.device_memory_limit)
        _check_choice(f"{w}.protocol", self.protocol, ("tcp", "ucx", "ucxx"), allow_none=True)
        devices = self.devices
        if devices is not None:
            if isinstance(devices, str):
                parts = [p.strip() for p in devices.split(",") if p.strip()]
                try:
                    devices = tuple(int(p) for p in parts)
                except ValueError:
                    raise _fail(
                        f"{w}.devices", f"{self.devices!r} is not a list of GPU indices like '0,1'"
                    ) from None
            elif isinstance(devices, Iterable):
                devices = tuple(devices)
            else:
                raise _fail(f"{w}.devices", f"must be a list of GPU indices, got {devices!r}")
            if not devices:
                raise _fail(f"{w}.devices", "is empty; use null for all visible GPUs")
            for d in devices:
                _check_int(f"{w}.devices[]", d, minimum=0, allow_none=False)
            object.__setattr__(self, "devices", tuple(int(d) for d in devices))


_SUBOPTIONS: dict[str, type] = {
    "jobqueue": JobqueueOptions,
    "gateway": GatewayOptions,
    "cuda": CudaOptions,
}


def _suboptions(name: str, value: Any) -> Any:
    cls = _SUBOPTIONS[name]
    if isinstance(value, cls):
        return value
    if value is None:
        return cls()
    kwargs = _normalise_keys(f"cluster.{name}", value, _field_names(cls))
    return cls(**kwargs)


@dataclass(frozen=True)
class ClusterConfig:
    """Where and how Dask runs; the ``cluster:`` section of a pipeline file.

    Parameters
    ----------
    kind : {'local', 'address', 'slurm', 'pbs', 'gateway', 'cuda'}, default 'local'
        The deployment; see the module docstring.
    address : str, optional
        Scheduler address for ``kind='address'`` (``tcp://host:8786``).  When
        ``None``, ``DASK_SCHEDULER_ADDRESS`` (or dask config ``scheduler-address``)
        is used.
    scheduler_file : str, optional
        For ``kind='address'``: a scheduler file written by
        ``dask scheduler --scheduler-file`` (common under ``srun``/``mpirun``).
    n_workers : int, optional
        ``local``/``cuda``: worker processes (``None``: :func:`local_cluster_layout`;
        cuda: one per GPU).  ``address``: the number of workers to wait for when
        ``wait_timeout`` is set.  ``gateway``: default for ``gateway.n_workers``.
    threads_per_worker : int, optional
        Threads per worker process (``local``/``cuda``).
    memory_limit : str, int or float, default 'auto'
        Per-worker memory limit (``local``/``cuda``): ``'auto'`` splits the
        machine's memory evenly, or ``'8GiB'``, bytes, or a fraction of memory.
    processes : bool, default True
        ``local`` only: worker processes (``True``) or threads in this process.
    dashboard_address : str, optional, default '127.0.0.1:0'
        Dashboard bind address for schedulers this process starts (``local``,
        ``cuda``, ``slurm``, ``pbs``): loopback and a free port by default, so
        nothing is exposed to the network; reach it through an SSH tunnel or
        JupyterHub's ``/proxy/``.  ``None`` disables the dashboard (the
        scheduler's health/metrics HTTP server then stays on 127.0.0.1).
    connect_timeout : float, default 30
        Seconds to wait when connecting to a scheduler or gateway before failing
        with :class:`ClusterConnectionError`.
    wait_timeout : float, optional
        If set, block after start-up until the requested workers have joined,
        failing after this many seconds.  ``None`` does not wait (batch jobs
        may queue for hours; the computation simply starts when they arrive).
    jobqueue, gateway, cuda : options or mapping
        Kind-specific options: :class:`JobqueueOptions`, :class:`GatewayOptions`,
        :class:`CudaOptions` (a mapping is converted).

    Raises
    ------
    ValueError
        A value has the wrong type, ``kind`` is unknown, or options contradict
        each other.  The message names the key and the allowed values.

    Examples
    --------
    >>> ClusterConfig().kind
    'local'
    >>> cfg = ClusterConfig.from_mapping({"kind": "slurm", "jobqueue": {"scale": 4}})
    >>> cfg.jobqueue.scale
    4
    >>> ClusterConfig(kind="slrum")
    Traceback (most recent call last):
    ...
    ValueError: cluster.kind: 'slrum' is not allowed. Did you mean 'slurm'? Allowed values: \
'local', 'address', 'slurm', 'pbs', 'gateway', 'cuda'.
    """

    kind: str = "local"
    address: str | None = None
    scheduler_file: str | None = None
    n_workers: int | None = None
    threads_per_worker: int | None = None
    memory_limit: str | int | float | None = "auto"
    processes: bool = True
    dashboard_address: str | None = "127.0.0.1:0"
    connect_timeout: float = 30.0
    wait_timeout: float | None = None
    jobqueue: JobqueueOptions = field(default_factory=JobqueueOptions)
    gateway: GatewayOptions = field(default_factory=GatewayOptions)
    cuda: CudaOptions = field(default_factory=CudaOptions)

    def __post_init__(self) -> None:
        _check_choice("cluster.kind", self.kind, CLUSTER_KINDS, allow_none=False)
        address = _check_str("cluster.address", self.address)
        if address is not None:
            _check_address_host_port("cluster.address", address)
        object.__setattr__(self, "address", address)
        object.__setattr__(
            self, "scheduler_file", _check_str("cluster.scheduler_file", self.scheduler_file)
        )
        object.__setattr__(
            self, "n_workers", _check_int("cluster.n_workers", self.n_workers, minimum=0)
        )
        object.__setattr__(
            self,
            "threads_per_worker",
            _check_int("cluster.threads_per_worker", self.threads_per_worker, minimum=1),
        )
        _check_bytes("cluster.memory_limit", self.memory_limit)
        _check_worker_memory("cluster.memory_limit", self.memory_limit)
        _check_bool("cluster.processes", self.processes)
        dash = _check_str("cluster.dashboard_address", self.dashboard_address)
        if dash is not None and ":" not in dash:
            raise _fail(
                "cluster.dashboard_address",
                f"{dash!r} should be 'HOST:PORT' or ':PORT' (e.g. '127.0.0.1:0'), or null.",
            )
        object.__setattr__(
            self,
            "connect_timeout",
            _check_positive("cluster.connect_timeout", self.connect_timeout),
        )
        object.__setattr__(
            self,
            "wait_timeout",
            _check_positive("cluster.wait_timeout", self.wait_timeout, allow_none=True),
        )
        for name in _SUBOPTIONS:
            object.__setattr__(self, name, _suboptions(name, getattr(self, name)))

        # Cross-checks: options that only make sense for one kind.
        if self.kind != "address" and (self.address or self.scheduler_file):
            key = "address" if self.address else "scheduler_file"
            raise _fail(
                f"cluster.{key}",
                f"is only used with kind 'address', but kind is {self.kind!r}. "
                "Fix: set kind: address to use an existing scheduler, or remove the key.",
            )
        if self.address and self.scheduler_file:
            raise _fail("cluster", "set either address or scheduler_file, not both.")
        if self.kind == "local" and self.n_workers == 0:
            raise _fail("cluster.n_workers", "must be >= 1 for kind 'local'.")
        if self.kind == "cuda" and not self.processes:
            raise _fail("cluster.processes", "must be true for kind 'cuda' (one process per GPU).")

    # -- construction -------------------------------------------------------------------

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any] | None) -> ClusterConfig:
        """Build a config from the ``cluster:`` section of a pipeline YAML file.

        Keys may be ``snake_case`` or ``kebab-case``.  When ``kind`` is missing it is
        ``'address'`` if ``address`` or ``scheduler_file`` is given, else ``'local'``.

        Parameters
        ----------
        mapping : mapping or None
            The section; ``None`` or ``{}`` gives the defaults (a local cluster).

        Returns
        -------
        ClusterConfig

        Raises
        ------
        ValueError
            Unknown keys (named, with the allowed keys) or invalid values.

        Examples
        --------
        >>> import yaml
        >>> section = yaml.safe_load('''
        ... kind: gateway
        ... gateway:
        ...   address: http://127.0.0.1:8000
        ...   cluster-options: {worker_cores: 2}
        ...   n-workers: 4
        ... ''')
        >>> ClusterConfig.from_mapping(section).gateway.n_workers
        4
        >>> ClusterConfig.from_mapping({"address": "tcp://10.0.0.5:8786"}).kind
        'address'
        """
        kwargs = _normalise_keys("cluster", mapping, _field_names(cls))
        if "kind" not in kwargs and (kwargs.get("address") or kwargs.get("scheduler_file")):
            kwargs["kind"] = "address"
        return cls(**kwargs)

    @classmethod
    def from_dask_config(cls, overrides: Mapping[str, Any] | None = None) -> ClusterConfig:
        """Site defaults from dask config ``bioxen-dask.cluster``, updated by ``overrides``.

        Sites put their default deployment in ``/etc/dask/*.yaml`` or
        ``~/.config/dask/*.yaml`` (see ``deploy/dask-config.yaml``) or in
        environment variables such as ``DASK_BIOXEN_DASK__CLUSTER__KIND=gateway``;
        a pipeline's ``cluster:`` section (``overrides``) wins key by key, one
        level deep for the ``jobqueue``/``gateway``/``cuda`` sub-sections.

        Examples
        --------
        >>> import dask
        >>> with dask.config.set({"bioxen-dask.cluster": {"kind": "local", "n-workers": 2}}):
        ...     ClusterConfig.from_dask_config({"threads_per_worker": 1}).n_workers
        2
        """
        names = _field_names(cls)
        base = _normalise_keys(
            "dask config bioxen-dask.cluster",
            dask.config.get("bioxen-dask.cluster", default=None),
            names,
        )
        mine = _normalise_keys("cluster", overrides, names)
        if "kind" in mine and mine["kind"] != base.get("kind", mine["kind"]):
            # Another kind than the site's: its scheduler address no longer applies.
            for key in ("address", "scheduler_file"):
                base.pop(key, None)
        merged = dict(base)
        for key, value in mine.items():
            if key in _SUBOPTIONS and isinstance(value, Mapping) and isinstance(
                base.get(key), Mapping
            ):
                merged[key] = {**_snake(base[key]), **_snake(value)}
            else:
                merged[key] = value
        return cls.from_mapping(merged)

    def to_dict(self) -> dict[str, Any]:
        """A plain, secret-free dict (for provenance attributes and logs).

        Examples
        --------
        >>> ClusterConfig(kind="local", n_workers=2).to_dict()["n_workers"]
        2
        """
        out = dataclasses.asdict(self)
        if out["gateway"].get("password") is not None:
            out["gateway"]["password"] = "***"
        return out


def _coerce(config: ClusterConfig | Mapping[str, Any] | None) -> ClusterConfig:
    if isinstance(config, ClusterConfig):
        return config
    if config is None or isinstance(config, Mapping):
        return ClusterConfig.from_mapping(config)
    raise TypeError(
        f"expected a ClusterConfig or a mapping (a pipeline's cluster: section), "
        f"got {type(config).__name__}"
    )


# --------------------------------------------------------------------------- local sizing


def local_cluster_layout(
    n_workers: int | None = None,
    threads_per_worker: int | None = None,
    *,
    cpu_count: int | None = None,
    memory_bytes: int | None = None,
) -> tuple[int, int]:
    """Workers × threads for a local cluster on this machine.

    The rule:

    1. Thread budget ``T = min(cpus, memory // MIN_MEMORY_PER_THREAD)``, at least 1:
       one thread per core, but no more threads than 2 GiB of memory each can
       feed (a wavelet block is memory-bound long before it is CPU-bound).
    2. Both given: used as is.  Only ``n_workers``: ``threads = max(1, T // n_workers)``.
       Only ``threads_per_worker``: ``workers = max(1, T // threads_per_worker)``.
    3. Neither: distributed's split (``nprocesses_nthreads``): one process per
       thread up to 4, beyond that about ``sqrt(T)`` processes with ``T/processes``
       threads each, balancing GIL contention (Python glue, Zarr codecs) against
       inter-process transfers.  NumPy/SciPy FFTs release the GIL, so threads help.

    ``cpus`` is ``dask.system.CPU_COUNT`` (honours cgroup quotas and CPU affinity)
    and ``memory`` is ``distributed.system.MEMORY_LIMIT`` (honours cgroup and
    ``RLIMIT_RSS`` limits).  Each worker then gets ``memory_limit='auto'``, an
    equal share of the memory.

    Parameters
    ----------
    n_workers, threads_per_worker : int, optional
        Fixed values; ``None`` derives them.
    cpu_count, memory_bytes : int, optional
        Override the detected machine (for tests and planning).

    Returns
    -------
    (n_workers, threads_per_worker) : tuple of int

    Examples
    --------
    >>> local_cluster_layout(cpu_count=2, memory_bytes=16 * 2**30)
    (2, 1)
    >>> local_cluster_layout(cpu_count=32, memory_bytes=256 * 2**30)
    (8, 4)
    >>> local_cluster_layout(cpu_count=32, memory_bytes=8 * 2**30)  # memory-bound
    (4, 1)
    >>> local_cluster_layout(n_workers=2, cpu_count=16, memory_bytes=64 * 2**30)
    (2, 8)
    """
    from distributed.deploy.utils import nprocesses_nthreads

    if cpu_count is None:
        cpu_count = dask.system.CPU_COUNT
    if memory_bytes is None:
        from distributed.system import MEMORY_LIMIT

        memory_bytes = MEMORY_LIMIT
    budget = max(1, min(int(cpu_count), int(memory_bytes) // MIN_MEMORY_PER_THREAD))
    if n_workers is not None and threads_per_worker is not None:
        return int(n_workers), int(threads_per_worker)
    if n_workers is not None:
        return int(n_workers), max(1, budget // int(n_workers))
    if threads_per_worker is not None:
        return max(1, budget // int(threads_per_worker)), int(threads_per_worker)
    processes, threads = nprocesses_nthreads(budget)
    return int(processes), int(threads)


# --------------------------------------------------------------------------- dashboards


def _jupyterhub_link_template() -> str | None:
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
    template = _jupyterhub_link_template()
    if template is not None and _scheduler_is_here(client):
        return template.format(port=port)
    try:
        return client.dashboard_link
    except KeyError:
        # distributed.dashboard.link names an environment variable that is unset.
        host = urllib.parse.urlsplit(client.scheduler.address).hostname
        return f"http://{host}:{port}/status"


# --------------------------------------------------------------------------- starters


def _wait_for_workers(client: Client, n: int, config: ClusterConfig) -> None:
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


def _dashboard_kwargs(config: ClusterConfig) -> dict[str, Any]:
    """LocalCluster/LocalCUDACluster keywords for ``config.dashboard_address``."""
    if config.dashboard_address is None:
        return {
            "dashboard_address": _QUIET_HTTP_ADDRESS,
            "scheduler_kwargs": {"dashboard": False},
        }
    return {"dashboard_address": config.dashboard_address}


def _client_for(cluster: Any, config: ClusterConfig, stack: contextlib.ExitStack) -> Client:
    from distributed import Client

    client = stack.enter_context(Client(cluster, timeout=config.connect_timeout))
    if config.dashboard_address is None:
        _NO_DASHBOARD.add(client)
    return client


def _start_local(config: ClusterConfig, stack: contextlib.ExitStack) -> Client:
    from distributed import LocalCluster

    n_workers, threads = local_cluster_layout(config.n_workers, config.threads_per_worker)
    cluster = stack.enter_context(
        LocalCluster(
            n_workers=n_workers,
            threads_per_worker=threads,
            processes=config.processes,
            memory_limit=config.memory_limit,
            host="127.0.0.1",
            protocol="tcp://",
            **_dashboard_kwargs(config),
        )
    )
    return _client_for(cluster, config, stack)


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


def _start_address(config: ClusterConfig, stack: contextlib.ExitStack) -> Client:
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
        _check_address_host_port("cluster.address (or DASK_SCHEDULER_ADDRESS)", address)
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
    _wait_for_workers(client, 1 if config.n_workers is None else config.n_workers, config)
    return client


def _build_jobqueue_cluster(config: ClusterConfig) -> Any:
    """The dask-jobqueue cluster object, with no job submitted."""
    options = _jq.load_jobqueue_section(
        config.kind,
        config.jobqueue.config_file,
        config.jobqueue.section,
        config.jobqueue.overrides,
    )
    kwargs = _jq.jobqueue_kwargs(options, dashboard_address=config.dashboard_address)
    cls = _jq.cluster_class(config.kind)
    # n_workers=0: JobQueueCluster submits nothing until scale()/adapt().
    return cls(n_workers=0, **kwargs)


def _start_jobqueue(config: ClusterConfig, stack: contextlib.ExitStack) -> Client:
    cluster = stack.enter_context(_build_jobqueue_cluster(config))
    jq = config.jobqueue
    if jq.adapt_maximum_jobs is not None:
        cluster.adapt(minimum_jobs=jq.scale, maximum_jobs=jq.adapt_maximum_jobs)
    elif jq.scale:
        cluster.scale(jobs=jq.scale)
    logger.info("submitted %d %s job(s):\n%s", jq.scale, config.kind, cluster.job_script())
    client = _client_for(cluster, config, stack)
    processes = getattr(cluster._dummy_job, "worker_processes", None) or 1
    _wait_for_workers(client, jq.scale * processes, config)
    return client


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


def _start_gateway(config: ClusterConfig, stack: contextlib.ExitStack) -> Client:
    try:
        from dask_gateway import Gateway
        from dask_gateway.utils import format_template
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise RuntimeError(
            "cluster kind 'gateway' needs dask-gateway, which is not installed. "
            "Fix: pip install 'bioxen-dask[cluster]' (or pip install dask-gateway)."
        ) from exc

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
    _wait_for_workers(client, n_workers, config)
    return client


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


def _start_cuda(config: ClusterConfig, stack: contextlib.ExitStack) -> Client:
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
        **_dashboard_kwargs(config),
    }
    if config.cuda.device_memory_limit is not None:
        kwargs["device_memory_limit"] = config.cuda.device_memory_limit
    if config.cuda.protocol is not None:
        kwargs["protocol"] = config.cuda.protocol
    cluster = stack.enter_context(LocalCUDACluster(**kwargs))
    return _client_for(cluster, config, stack)


_STARTERS = {
    "local": _start_local,
    "address": _start_address,
    "slurm": _start_jobqueue,
    "pbs": _start_jobqueue,
    "gateway": _start_gateway,
    "cuda": _start_cuda,
}

# Kinds whose scheduler (and dashboard) runs in this process.
_SCHEDULER_IN_PROCESS = ("local", "cuda", "slurm", "pbs")


# --------------------------------------------------------------------------- public API


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
    config = _coerce(config)
    with contextlib.ExitStack() as stack:
        template = _jupyterhub_link_template()
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


def job_script(config: ClusterConfig | Mapping[str, Any]) -> str:
    """The batch script dask-jobqueue would submit for ``config``, submitting nothing.

    Builds the ``SLURMCluster``/``PBSCluster`` exactly as :func:`connect` does
    (with no jobs), returns ``cluster.job_script()`` and closes the cluster.
    Use it to check directives before spending allocation hours.

    Parameters
    ----------
    config : ClusterConfig or mapping
        ``kind`` must be ``'slurm'`` or ``'pbs'``.

    Returns
    -------
    str
        The job script, ``#SBATCH``/``#PBS`` header included.

    Examples
    --------
    >>> cfg = {"kind": "slurm", "jobqueue": {"overrides": {"account": "lab"}}}
    >>> print(job_script(cfg))  # doctest: +SKIP
    #!/usr/bin/env bash
    <BLANKLINE>
    #SBATCH -J bioxen-dask
    #SBATCH -A lab
    ...
    """
    config = _coerce(config)
    if config.kind not in _jq.JOBQUEUE_KINDS:
        raise ValueError(
            f"job_script needs cluster kind 'slurm' or 'pbs', got {config.kind!r}."
        )
    cluster = _build_jobqueue_cluster(config)
    try:
        return cluster.job_script()
    finally:
        cluster.close()


def active_client(client: Client | None = None) -> Client | None:
    """``client`` if given, else the active default ``distributed`` client, else ``None``.

    The one place that answers "is there a cluster to run on?" (the library never creates a
    client itself).
    """
    if client is not None:
        return client
    try:
        from distributed import default_client
    except ImportError:  # pragma: no cover - distributed is a dependency
        return None
    try:
        return default_client()
    except ValueError:
        return None


#: Seconds between the lines a progress bar writes when stderr is not a terminal (a log file):
#: a line now and then, not a redraw every 0.1 s.
LOG_PROGRESS_INTERVAL = 30.0


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stream
        return False


def bar_options() -> dict[str, Any]:
    """tqdm keyword arguments for every progress bar of the package: on stderr (stdout carries
    only machine-readable output), redrawn every 0.1 s on a terminal, else a line every
    :data:`LOG_PROGRESS_INTERVAL` seconds."""
    if _stderr_is_terminal():
        return {"file": sys.stderr, "mininterval": 0.1}
    return {"file": sys.stderr, "mininterval": LOG_PROGRESS_INTERVAL, "ascii": True}


def cluster_progress(futures: Any) -> None:
    """``distributed.progress`` of ``futures``, but its text bar on stderr.

    In a notebook: distributed's widget (returns at once). In a terminal: a bar redrawn on
    stderr, blocking until done (distributed's own bar writes to stdout, which would corrupt
    ``bioxen-dask run > summary.json``). Elsewhere (a log file): one line at the start, one
    every :data:`LOG_PROGRESS_INTERVAL` seconds and one at the end.
    """
    import distributed
    from distributed.diagnostics.progressbar import TextProgressBar
    from dask.utils import format_time
    from distributed.utils import is_kernel

    if is_kernel():
        distributed.progress(futures)
        return
    terminal = _stderr_is_terminal()

    class _StderrBar(TextProgressBar):
        _last: float | None = None  # elapsed time of the last line written (log files)

        def _draw_bar(self, remaining: int, all: int, **kwargs: Any) -> None:
            if not terminal:  # the scheduler is polled every 0.1 s; a line is written far less often
                if remaining and self._last is not None and self.elapsed - self._last < LOG_PROGRESS_INTERVAL:
                    return
                if not remaining and self._last == -1.0:
                    return  # the final line is written once
                self._last = self.elapsed if remaining else -1.0
            frac = (1 - remaining / all) if all else 1.0
            bar = "#" * int(self.width * frac)
            msg = f"[{bar:<{self.width}}] | {int(100 * frac)}% Completed | {format_time(self.elapsed)}"
            with contextlib.suppress(ValueError):
                sys.stderr.write(f"\r{msg}" if terminal else f"{msg}\n")
                sys.stderr.flush()

        def _draw_stop(self, **kwargs: Any) -> None:
            if terminal:
                with contextlib.suppress(ValueError):
                    sys.stderr.write("\n")
                    sys.stderr.flush()

    _StderrBar(distributed.client.futures_of(futures))


def progress(
    work: Any,
    client: Client | None = None,
    *,
    desc: str | None = None,
    disable: bool = False,
) -> Any:
    """Show progress for long work, on a cluster or locally; one helper for both.

    ``dask.diagnostics.ProgressBar`` and tqdm's dask callback only see the local
    schedulers, and ``distributed.progress`` only sees a cluster; this picks the
    right one. Bars go to stderr (:func:`bar_options`, :func:`cluster_progress`), a line
    every :data:`LOG_PROGRESS_INTERVAL` seconds when stderr is not a terminal.

    * **Dask collection(s)** (array, dataset, delayed; or a list/tuple/dict of
      them): with a distributed client (``client`` or the default one) they are
      persisted on the cluster and ``distributed.progress`` is shown (a widget
      in notebooks, a text bar that blocks until done in a terminal); without
      one, they are persisted by the local scheduler under a tqdm bar.  Either
      way the persisted collection(s) come back: call ``.compute()`` or write
      them out next.
    * **Futures** (one or an iterable): ``distributed.progress`` is shown and the
      futures come back.
    * **Any other iterable**: wrapped in ``tqdm`` and returned (iterate it).

    Parameters
    ----------
    work : dask collection(s), future(s) or iterable
    client : distributed.Client, optional
        Defaults to the current default client, if any.
    desc : str, optional
        Label for the tqdm bar.
    disable : bool, default False
        Compute/persist without showing anything.

    Returns
    -------
    Persisted collection(s) (same structure), the futures, or a tqdm iterator.

    Examples
    --------
    >>> import dask.array as da
    >>> x = progress(da.ones(10, chunks=5) * 2, disable=True)
    >>> float(x.sum().compute())
    20.0
    >>> [i * i for i in progress(range(3), disable=True)]
    [0, 1, 4]
    """
    from dask import is_dask_collection

    try:
        from distributed import Future
    except ImportError:  # pragma: no cover
        Future = ()  # type: ignore[assignment,misc]

    def is_collection(obj: Any) -> bool:
        if is_dask_collection(obj):
            return True
        if isinstance(obj, Mapping):
            return bool(obj) and all(is_dask_collection(v) for v in obj.values())
        if isinstance(obj, (list, tuple)):
            return bool(obj) and all(is_dask_collection(v) for v in obj)
        return False

    def is_futures(obj: Any) -> bool:
        if isinstance(obj, Future):
            return True
        if isinstance(obj, Mapping):
            return bool(obj) and all(isinstance(v, Future) for v in obj.values())
        if isinstance(obj, (list, tuple, set)):
            return bool(obj) and all(isinstance(v, Future) for v in obj)
        return False

    if is_futures(work):
        if not disable:
            import distributed

            futures = list(work.values()) if isinstance(work, Mapping) else work
            cluster_progress(futures)
        return work

    if is_collection(work):
        active = active_client(client)
        if active is not None:
            persisted = active.persist(work)
            if not disable:
                parts = (
                    list(persisted.values())
                    if isinstance(persisted, Mapping)
                    else persisted
                )
                cluster_progress(parts)
            return persisted

        from tqdm.dask import TqdmCallback

        with TqdmCallback(desc=desc, disable=disable, **bar_options()):
            if isinstance(work, Mapping):
                keys = list(work)
                return dict(zip(keys, dask.persist(*[work[k] for k in keys]), strict=True))
            if isinstance(work, (list, tuple)):
                values = dask.persist(*work)
                return type(work)(values)
            (result,) = dask.persist(work)
            return result

    if isinstance(work, Iterable):
        from tqdm.auto import tqdm

        return tqdm(work, desc=desc, disable=disable, **bar_options())

    raise TypeError(
        f"progress() takes dask collections, distributed futures or an iterable; "
        f"got {type(work).__name__}"
    )


def worker_environment(config: "ClusterConfig"):
    """Let glibc keep its dynamic mmap threshold in workers this process starts.

    distributed's nanny sets ``MALLOC_TRIM_THRESHOLD_=65536`` in every worker by default;
    setting any malloc tunable turns glibc's dynamic mmap threshold off, so every array above
    128 KiB is mmapped and page-faulted afresh. The coherence tasks allocate tens of MB of
    temporaries per batch: measured on 128 rois x 18,000 frames (2 workers x 1 thread), worker
    system time falls from 11.1 s to 2.1 s and wall time halves when the variable is unset.
    Only distributed's default is changed (a site's own setting is kept), and only for
    clusters started here (local, cuda); remote workers keep their deployment's environment.
    """
    import contextlib
    import os

    import dask
    import distributed  # noqa: F401  (loads distributed's config defaults)

    key = "distributed.nanny.pre-spawn-environ"
    if (config.kind in ("local", "cuda") and "MALLOC_TRIM_THRESHOLD_" not in os.environ
            and dask.config.get(key, {}).get("MALLOC_TRIM_THRESHOLD_") == 65536):
        return dask.config.set({f"{key}.MALLOC_TRIM_THRESHOLD_": None})
    return contextlib.nullcontext()
