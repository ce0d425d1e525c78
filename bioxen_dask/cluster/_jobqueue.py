"""``kind='slurm'|'pbs'``: batch jobs through dask-jobqueue.

Turns one section of a dask-jobqueue YAML file (``deploy/jobqueue.yaml``) plus
per-run overrides into explicit ``SLURMCluster`` / ``PBSCluster`` keyword
arguments.  Every value is passed explicitly so that a run does not silently
depend on whatever happens to sit in ``~/.config/dask/jobqueue.yaml``; only keys
left ``null`` fall through to dask's own configuration (dask-jobqueue's
behaviour).
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import logging
import numbers
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dask
import dask.utils
import yaml
from dask.utils import parse_timedelta

from ._client import client_for, wait_for_workers
from ._config import ClusterConfig, coerce_config, require_extra

if TYPE_CHECKING:  # pragma: no cover
    from distributed import Client

__all__ = [
    "DEFAULT_JOBQUEUE_FILE",
    "JOBQUEUE_KINDS",
    "cluster_class",
    "jobqueue_kwargs",
    "load_jobqueue_section",
    "job_script",
    "start_jobqueue",
    "validated_items",
]

logger = logging.getLogger("bioxen_dask.cluster")

#: ``deploy/jobqueue.yaml`` of a source checkout (absent from an installed wheel).
DEFAULT_JOBQUEUE_FILE = Path(__file__).resolve().parents[2] / "deploy" / "jobqueue.yaml"

#: Cluster kinds served by dask-jobqueue, and the class that serves each one.
JOBQUEUE_KINDS = {"slurm": "SLURMCluster", "pbs": "PBSCluster"}

# Keys dask-jobqueue renamed; the old names still "work" with a FutureWarning and
# are silently ignored when the new one is also set, so we refuse them outright.
_DEPRECATED = {
    "extra": "worker-extra-args",
    "env-extra": "job-script-prologue",
    "job-extra": "job-extra-directives",
    "header-skip": "job-directives-skip",
    "project": "account",
}


def _import_dask_jobqueue() -> Any:
    return require_extra("dask_jobqueue", "'slurm'/'pbs'")


def cluster_class(kind: str) -> type:
    """Return the dask-jobqueue cluster class for ``kind`` ('slurm' or 'pbs')."""
    dask_jobqueue = _import_dask_jobqueue()
    return getattr(dask_jobqueue, JOBQUEUE_KINDS[kind])


def _packaged_defaults(kind: str) -> dict[str, Any]:
    """dask-jobqueue's own defaults for ``kind`` (its packaged jobqueue.yaml)."""
    dask_jobqueue = _import_dask_jobqueue()
    path = Path(dask_jobqueue.__file__).parent / "jobqueue.yaml"
    with open(path) as f:
        return dict(yaml.safe_load(f)["jobqueue"][kind])


def _canonical(key: str) -> str:
    return str(key).replace("_", "-")


def validated_items(
    kind: str,
    layer: Mapping[str, Any],
    origin: str,
    allowed: set[str] | None = None,
) -> dict[str, Any]:
    """Check one layer of dask-jobqueue options; return it in hyphenated spelling.

    Raises
    ------
    ValueError
        ``layer`` is not a mapping, or holds an unknown or deprecated key.
    """
    if allowed is None:
        allowed = set(_packaged_defaults(kind)) - set(_DEPRECATED)
    if not isinstance(layer, Mapping):
        raise ValueError(f"{origin} must be a mapping, got {type(layer).__name__}")
    out: dict[str, Any] = {}
    for raw_key, value in layer.items():
        key = _canonical(raw_key)
        if key in _DEPRECATED:
            if value in (None, [], {}):
                continue
            raise ValueError(
                f"{origin}: key {raw_key!r} is deprecated in dask-jobqueue (and ignored "
                f"when the new key is also set); use {_DEPRECATED[key]!r} instead."
            )
        if key not in allowed:
            close = difflib.get_close_matches(key, sorted(allowed), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"{origin}: unknown dask-jobqueue key {raw_key!r} for kind {kind!r}."
                f"{hint} Allowed keys: {sorted(allowed)}."
            )
        out[key] = copy.deepcopy(value)
    return out


def load_jobqueue_section(
    kind: str,
    config_file: str | Path | None = None,
    section: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Merge dask-jobqueue defaults, one YAML section and overrides.

    Parameters
    ----------
    kind : {'slurm', 'pbs'}
        Which dask-jobqueue cluster the section configures.
    config_file : path, optional
        A dask-jobqueue YAML file with a top-level ``jobqueue:`` key.  ``None``
        uses :data:`DEFAULT_JOBQUEUE_FILE` when it exists (a source checkout),
        otherwise dask's configuration (``~/.config/dask/*.yaml``, ``/etc/dask``).
    section : str, optional
        Section under ``jobqueue:``; defaults to ``kind``.  Custom sections such
        as ``slurm-gpu`` are allowed (dask-jobqueue's ``config_name``).
    overrides : mapping, optional
        Keys to replace, in dask-jobqueue spelling (``job-extra-directives``);
        ``job_extra_directives`` is accepted too.

    Returns
    -------
    dict
        The merged options, keys in dask-jobqueue (hyphenated) spelling.

    Raises
    ------
    FileNotFoundError
        ``config_file`` does not exist.
    ValueError
        The section is missing, or a key is unknown or deprecated.
    """
    section = section or kind
    merged = _packaged_defaults(kind)
    allowed = set(merged) - set(_DEPRECATED)

    if config_file is None and DEFAULT_JOBQUEUE_FILE.exists():
        config_file = DEFAULT_JOBQUEUE_FILE
    if config_file is not None:
        path = Path(config_file).expanduser()
        if not path.exists():
            raise FileNotFoundError(
                f"jobqueue config file {str(path)!r} does not exist. Fix: point "
                "cluster.jobqueue.config_file at a dask-jobqueue YAML file (see "
                "deploy/jobqueue.yaml in the bioxen-dask repository)."
            )
        with open(path) as f:
            content = yaml.safe_load(f) or {}
        sections = content.get("jobqueue") if isinstance(content, Mapping) else None
        if not isinstance(sections, Mapping):
            raise ValueError(
                f"{str(path)!r} has no top-level 'jobqueue:' mapping; a dask-jobqueue "
                "file looks like 'jobqueue: {slurm: {cores: 8, memory: 32GiB, ...}}'."
            )
        if section not in sections:
            raise ValueError(
                f"{str(path)!r} has no 'jobqueue.{section}' section; sections found: "
                f"{sorted(sections)}. Fix: add the section or set "
                "cluster.jobqueue.section to one of them."
            )
        found = sections[section] or {}
        where = f"{path}: jobqueue.{section}"
    else:
        found = dask.config.get(f"jobqueue.{section}", default={}) or {}
        where = f"dask config: jobqueue.{section}"

    merged.update(validated_items(kind, found, where, allowed))
    walltime_before = merged.get("walltime")
    merged.update(validated_items(kind, overrides or {}, "cluster.jobqueue.overrides", allowed))
    given = {_canonical(k) for k in (overrides or {})}
    _check_sizes(merged, lambda key: f"cluster.jobqueue.overrides.{key}" if key in given else f"{where}.{key}")
    if "walltime" in given and "worker-extra-args" not in given:
        merged["worker-extra-args"] = _lifetime_for_walltime(
            merged.get("worker-extra-args"), walltime_before, merged.get("walltime"), kind)
    return merged


def _check_sizes(options: Mapping[str, Any], origin: Any) -> None:
    """Reject cores/processes/memory/walltime values dask-jobqueue or the batch system misread.

    dask-jobqueue accepts ``processes > cores`` or ``cores: 2.5`` and writes ``--nthreads 0``
    workers, fails on ``memory: 0`` or ``cores: 'x'`` with a TypeError, and writes a numeric
    walltime verbatim: YAML 1.1 reads an unquoted ``12:00:00`` as the base-60 integer 43200,
    which SLURM reads as 43200 minutes.
    """
    def is_int(v: Any) -> bool:
        return isinstance(v, numbers.Integral) and not isinstance(v, bool)

    cores, processes = options.get("cores"), options.get("processes")
    if cores is not None and not (is_int(cores) and cores >= 1):
        raise ValueError(
            f"{origin('cores')}: must be a whole number of CPU cores >= 1 per job, got {cores!r}.")
    if processes is not None:
        if not (is_int(processes) and processes >= 1):
            raise ValueError(f"{origin('processes')}: must be a whole number of worker processes >= 1 "
                             f"per job, got {processes!r}.")
        if cores is not None and processes > cores:
            raise ValueError(f"{origin('processes')}: {processes} worker processes cannot share "
                             f"{cores} cores (each needs >= 1 thread); lower processes or raise cores.")
    memory = options.get("memory")
    if memory is not None:
        try:
            nbytes = dask.utils.parse_bytes(memory) if isinstance(memory, str) else memory
            ok = not isinstance(memory, bool) and isinstance(nbytes, numbers.Real) and nbytes > 0
        except (ValueError, TypeError):
            ok = False
        if not ok:
            raise ValueError(f"{origin('memory')}: must be the memory per job as a size like '64GiB', "
                             f"got {memory!r}.")
    walltime = options.get("walltime")
    if walltime is not None and not isinstance(walltime, str):
        hint = ""
        if is_int(walltime) and walltime > 0:
            h, rest = divmod(int(walltime), 3600)
            hint = (f" (YAML reads an unquoted H:MM:SS as a base-60 number: 12:00:00 -> 43200; "
                    f"if you wrote {h:02d}:{rest // 60:02d}:{rest % 60:02d}, quote it: "
                    f"walltime: '{h:02d}:{rest // 60:02d}:{rest % 60:02d}')")
        raise ValueError(f"{origin('walltime')}: must be a string in the batch system's format, e.g. "
                         f"'04:00:00', got the number {walltime!r}{hint}; quote it.")


def _walltime_seconds(value: Any, kind: str = "slurm") -> float | None:
    """A walltime in seconds, read as the batch system does; None if it is not one of its forms.

    SLURM (sbatch ``--time``): ``M``, ``M:S``, ``H:M:S``, ``D-H``, ``D-H:M``, ``D-H:M:S``.
    PBS (``-l walltime``): ``S``, ``M:S``, ``H:M:S``.
    """
    if not isinstance(value, str) or not value.strip():
        return None
    days, dash, clock = value.strip().rpartition("-")
    if dash and (kind != "slurm" or not days):
        return None
    try:
        parts = [float(p) for p in clock.split(":")]
        d = float(days) if days else 0.0
    except ValueError:
        return None
    if not 1 <= len(parts) <= 3 or min(parts + [d]) < 0:
        return None
    if days:  # D-H, D-H:M, D-H:M:S
        h, m, sec = (parts + [0.0, 0.0])[:3]
    elif len(parts) == 3:
        h, m, sec = parts
    elif len(parts) == 2:  # minutes:seconds for both
        h, (m, sec) = 0.0, parts
    elif kind == "slurm":  # minutes
        h, m, sec = 0.0, parts[0], 0.0
    else:  # PBS: seconds
        h, m, sec = 0.0, 0.0, parts[0]
    return d * 86400 + h * 3600 + m * 60 + sec


def _lifetime_for_walltime(args: Any, old_walltime: Any, new_walltime: Any, kind: str = "slurm") -> Any:
    """``worker-extra-args`` with ``--lifetime`` moved with a new walltime: workers keep
    retiring the same margin before the job ends (the YAML's 230m of a 4 h job: 10 min), so
    a longer job is not cut to the old lifetime, nor a shorter one killed mid-task."""
    if not isinstance(args, (list, tuple)) or "--lifetime" not in args:
        return args
    i = list(args).index("--lifetime") + 1
    old, new = _walltime_seconds(old_walltime, kind), _walltime_seconds(new_walltime, kind)
    if i >= len(args) or old is None or new is None:
        return args
    try:
        lifetime = parse_timedelta(args[i], default="s")
    except (ValueError, TypeError, KeyError):
        return args
    margin = max(old - lifetime, 0.0)
    minutes = max(1, int((new - margin) // 60))
    out = list(args)
    out[i] = f"{minutes}m"
    return out


def jobqueue_kwargs(
    options: Mapping[str, Any], *, dashboard_address: str | None
) -> dict[str, Any]:
    """Translate merged options into ``SLURMCluster``/``PBSCluster`` kwargs.

    ``None`` values are dropped (dask-jobqueue then reads its own config, as it
    always does).  ``dashboard_address`` becomes the scheduler's dashboard
    address unless ``scheduler-options`` already sets one; ``None`` disables the
    dashboard and keeps the scheduler's HTTP server on 127.0.0.1.
    """
    kwargs: dict[str, Any] = {}
    for key, value in options.items():
        if key in _DEPRECATED or value is None:
            continue
        if key == "name":
            kwargs["job_name"] = value
        else:
            kwargs[key.replace("-", "_")] = value
    scheduler_options = dict(kwargs.pop("scheduler_options", None) or {})
    if dashboard_address is not None:
        scheduler_options.setdefault("dashboard_address", dashboard_address)
    else:
        # No dashboard, but keep the scheduler's HTTP server (health, metrics) off the
        # network: without an address distributed binds ":8787" on every interface.
        scheduler_options.setdefault("dashboard", False)
        scheduler_options.setdefault("dashboard_address", "127.0.0.1:0")
    kwargs["scheduler_options"] = scheduler_options
    for required in ("cores", "memory"):
        if kwargs.get(required) is None:
            raise ValueError(
                f"dask-jobqueue needs '{required}' (per job) but it is not set. Fix: "
                f"set jobqueue.<section>.{required} in the jobqueue YAML file or "
                f"cluster.jobqueue.overrides.{required}."
            )
    return kwargs


def _build_jobqueue_cluster(config: ClusterConfig) -> Any:
    """The dask-jobqueue cluster object, with no job submitted."""
    options = load_jobqueue_section(
        config.kind,
        config.jobqueue.config_file,
        config.jobqueue.section,
        config.jobqueue.overrides,
    )
    kwargs = jobqueue_kwargs(options, dashboard_address=config.dashboard_address)
    cls = cluster_class(config.kind)
    # n_workers=0: JobQueueCluster submits nothing until scale()/adapt().
    return cls(n_workers=0, **kwargs)


def start_jobqueue(config: ClusterConfig, stack: contextlib.ExitStack) -> Client:
    cluster = stack.enter_context(_build_jobqueue_cluster(config))
    jq = config.jobqueue
    if jq.adapt_maximum_jobs is not None:
        cluster.adapt(minimum_jobs=jq.scale, maximum_jobs=jq.adapt_maximum_jobs)
    elif jq.scale:
        cluster.scale(jobs=jq.scale)
    logger.info("submitted %d %s job(s):\n%s", jq.scale, config.kind, cluster.job_script())
    client = client_for(cluster, config, stack)
    processes = getattr(cluster._dummy_job, "worker_processes", None) or 1
    wait_for_workers(client, jq.scale * processes, config)
    return client


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
    config = coerce_config(config)
    if config.kind not in JOBQUEUE_KINDS:
        raise ValueError(
            f"job_script needs cluster kind 'slurm' or 'pbs', got {config.kind!r}."
        )
    cluster = _build_jobqueue_cluster(config)
    try:
        return cluster.job_script()
    finally:
        cluster.close()
