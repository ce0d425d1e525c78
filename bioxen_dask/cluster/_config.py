"""The ``cluster:`` configuration: :class:`ClusterConfig`, its per-kind options and their validators."""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import math
import numbers
import os
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import dask

__all__ = [
    "CLUSTER_KINDS",
    "MIN_MEMORY_PER_THREAD",
    "MIN_WORKER_MEMORY",
    "ClusterConfig",
    "ClusterConnectionError",
    "CudaOptions",
    "GatewayOptions",
    "JobqueueOptions",
    "check_address_host_port",
    "coerce_config",
    "require_extra",
]

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


class ClusterConnectionError(ConnectionError):
    """A scheduler or gateway could not be reached within ``connect_timeout``."""


# --------------------------------------------------------------------------- validation


def _fail(where: str, message: str) -> ValueError:
    return ValueError(f"{where}: {message}")


def _wrong(where: str, wanted: str, value: Any, allow_none: bool) -> ValueError:
    null = " or null" if allow_none else ""
    return _fail(where, f"must be {wanted}{null}, got {value!r} ({type(value).__name__})")


def _check_int(where: str, value: Any, *, minimum: int, allow_none: bool = True) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise _wrong(where, f"an integer >= {minimum}", value, allow_none)
    return int(value)


def _check_positive(where: str, value: Any, *, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
        raise _wrong(where, "a number of seconds > 0", value, allow_none)
    return float(value)


def _check_str(where: str, value: Any, *, allow_none: bool = True) -> str | None:
    if value is None and allow_none:
        return None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if not isinstance(value, str) or not value:
        raise _wrong(where, "a non-empty string", value, False)
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


def check_address_host_port(where: str, value: str) -> str:
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
            check_address_host_port("cluster.address", address)
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


def coerce_config(config: ClusterConfig | Mapping[str, Any] | None) -> ClusterConfig:
    if isinstance(config, ClusterConfig):
        return config
    if config is None or isinstance(config, Mapping):
        return ClusterConfig.from_mapping(config)
    raise TypeError(
        f"expected a ClusterConfig or a mapping (a pipeline's cluster: section), "
        f"got {type(config).__name__}"
    )


def require_extra(module: str, kinds: str) -> ModuleType:
    """Import ``module`` of the ``cluster`` extra, or say which cluster kinds need it and how to
    install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        dist = module.split(".")[0].replace("_", "-")
        raise RuntimeError(
            f"cluster kind {kinds} needs {dist}, which is not installed. "
            f"Fix: pip install 'bioxen-dask[cluster]' (or pip install {dist})."
        ) from exc
