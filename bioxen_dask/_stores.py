"""What every store the package writes shares: plain-JSON attribute values, the digest that
names a run, and consolidating a Zarr store's metadata (the signals store, :mod:`bioxen_dask.io`,
and the result store, :mod:`bioxen_dask.datasets`)."""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import zarr

__all__ = ["consolidate", "json_digest", "jsonable"]


def jsonable(value: Any, other: Callable[[Any], Any] | None = None) -> Any:
    """Plain-JSON copy of ``value``: mappings (keys as strings) and sequences recursively, NumPy
    scalars and arrays as Python numbers and lists, paths as strings. Any other value goes
    through ``other`` (e.g. ``str``); without it, it is a :class:`TypeError`."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, other) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, other) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist(), other)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if other is not None:
        return other(value)
    raise TypeError(f"attribute value {value!r} ({type(value).__name__}) is not JSON-serialisable")


def json_digest(desc: Mapping[str, Any]) -> str:
    """``"sha256:<hex>"`` of ``desc`` as sorted-key JSON (other values as ``str``): the identity
    of a run, stable across processes and machines."""
    blob = json.dumps(desc, sort_keys=True, default=str).encode()
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def consolidate(path: Path) -> None:
    """Write the consolidated metadata of the Zarr store at ``path``."""
    with warnings.catch_warnings():  # "consolidated metadata is not part of the v3 spec"
        warnings.simplefilter("ignore", category=UserWarning)
        zarr.consolidate_metadata(str(path))
