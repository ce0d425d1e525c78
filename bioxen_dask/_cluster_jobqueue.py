"""dask-jobqueue plumbing for :mod:`bioxen_dask.cluster` (private).

Turns one section of a dask-jobqueue YAML file (``deploy/jobqueue.yaml``) plus
per-run overrides into explicit ``SLURMCluster`` / ``PBSCluster`` keyword
arguments.  Every value is passed explicitly so that a run does not silently
depend on whatever happens to sit in ``~/.config/dask/jobqueue.yaml``; only keys
left ``null`` fall through to dask's own configuration (dask-jobqueue's
behaviour).
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dask
import yaml
from dask.utils import parse_timedelta

__all__ = [
    "DEFAULT_JOBQUEUE_FILE",
    "JOBQUEUE_KINDS",
    "cluster_class",
    "jobqueue_kwargs",
    "load_jobqueue_section",
    "validated_items",
]

#: ``deploy/jobqueue.yaml`` of a source checkout (absent from an installed wheel).
DEFAULT_JOBQUEUE_FILE = Path(__file__).resolve().parent.parent / "deploy" / "jobqueue.yaml"

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
    try:
        import dask_jobqueue
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise RuntimeError(
            "cluster kind 'slurm'/'pbs' needs dask-jobqueue, which is not installed. "
            "Fix: pip install 'bioxen-dask[cluster]' (or pip install dask-jobqueue)."
        ) from exc
    return dask_jobqueue


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
    if "walltime" in given and "worker-extra-args" not in given:
        merged["worker-extra-args"] = _lifetime_for_walltime(
            merged.get("worker-extra-args"), walltime_before, merged.get("walltime"))
    return merged


def _walltime_seconds(value: Any) -> float | None:
    """``[D-]HH:MM:SS``, ``HH:MM`` or ``MM`` (SLURM/PBS) in seconds; None if not one of those."""
    if not isinstance(value, str) or not value.strip():
        return None
    days, _, clock = value.strip().rpartition("-")
    try:
        parts = [float(p) for p in clock.split(":")]
        d = float(days) if days else 0.0
    except ValueError:
        return None
    if not 1 <= len(parts) <= 3:
        return None
    if len(parts) == 1:  # minutes
        parts = [0.0, parts[0], 0.0]
    elif len(parts) == 2:
        parts = [parts[0], parts[1], 0.0]
    h, m, sec = parts
    return d * 86400 + h * 3600 + m * 60 + sec


def _lifetime_for_walltime(args: Any, old_walltime: Any, new_walltime: Any) -> Any:
    """``worker-extra-args`` with ``--lifetime`` moved with a new walltime: workers keep
    retiring the same margin before the job ends (the YAML's 230m of a 4 h job: 10 min), so
    a longer job is not cut to the old lifetime, nor a shorter one killed mid-task."""
    if not isinstance(args, (list, tuple)) or "--lifetime" not in args:
        return args
    i = list(args).index("--lifetime") + 1
    old, new = _walltime_seconds(old_walltime), _walltime_seconds(new_walltime)
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
