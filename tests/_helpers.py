"""Helpers the tests import (``from _helpers import ...``): synthetic traces and error measures.

Fixtures live in ``conftest.py``; a conftest is pytest's, not a module to import from.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import xarray as xr


def lagged_traces(n: int, n_rois: int, lags: list[float], seed: int, dt: float, period: float = 3.0):
    """``(x, ref)``: ``n_rois`` AR(1) (g = 0.6) traces of ``n`` samples, the first ``len(lags)``
    plus a sine of ``period`` delayed by ``lags`` seconds, and that sine plus noise as the
    reference."""
    from scipy.signal import lfilter

    rng = np.random.default_rng(seed)
    t = np.arange(n) * dt
    x = lfilter([1.0], [1.0, -0.6], rng.standard_normal((n_rois, n)), axis=-1)
    x[: len(lags)] += np.sin(2 * np.pi * (t[None, :] - np.asarray(lags)[:, None]) / period)
    ref = np.sin(2 * np.pi * t / period) + 0.5 * rng.standard_normal(n)
    return x, ref


def rel_err(a, b) -> float:
    """max |a - b| / max |b| (global relative error)."""
    a = np.asarray(a)
    b = np.asarray(b)
    return float(np.nanmax(np.abs(a - b)) / np.nanmax(np.abs(b)))


def phase_err(a, b, weight) -> float:
    """Largest wrapped phase difference where ``weight`` is above 1e-6 of its maximum."""
    d = np.angle(np.exp(1j * (np.asarray(a) - np.asarray(b))))
    w = np.abs(weight)
    return float(np.abs(d[w > 1e-6 * w.max()]).max())


def tree_digest(root: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every file under ``root`` (plus folders, as '<dir>')."""
    out = {}
    for f in sorted(root.rglob("*")):
        rel = f.relative_to(root).as_posix()
        out[rel] = hashlib.sha256(f.read_bytes()).hexdigest() if f.is_file() else "<dir>"
    return out


def assert_same_result(a: xr.Dataset, b: xr.Dataset) -> None:
    """Bit-identical data, coordinates and attributes, except the attribute recording the
    pipeline itself (which names the output path)."""
    a, b = a.compute(), b.compute()
    for ds in (a, b):
        ds.attrs.pop("pipeline", None)
    xr.testing.assert_identical(a, b)
