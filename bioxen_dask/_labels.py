"""Labels shared by every labelled result: scale-grid coordinates, the time axis and ``dt`` of a
DataArray, and the attrs recording a run's parameters.

Below both the one-pair API (:mod:`bioxen_dask._api`) and the dask-graph layer
(:mod:`bioxen_dask.graph`), so that neither imports the other for them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import xarray as xr

from ._validation import check_dt
from ._version import __version__
from .grid import ScaleGrid

__all__ = ["grid_coords", "dt_of", "time_axis", "result_attrs"]


def grid_coords(grid: ScaleGrid) -> dict[str, Any]:
    """The ``period``/``scale``/``frequency`` coordinates of a grid, with CF-style attrs."""
    return {
        "period": ("period", grid.periods, {"long_name": "Fourier period", "units": "s"}),
        "scale": ("period", grid.scales, {"long_name": "wavelet scale", "units": "s"}),
        "frequency": ("period", grid.frequencies, {"long_name": "Fourier frequency", "units": "Hz"}),
    }


def dt_of(sig: xr.DataArray, dt: float | None, *, fix: str = "pass dt=") -> float:
    """The sampling interval of ``sig``: its evenly spaced ``time`` coordinate, else its ``fs``
    attr, else ``dt``; a given ``dt`` that contradicts either is an error (periods and lags would
    be off by the ratio). An unevenly spaced coordinate needs ``dt``. ``fix`` ends the error
    raised when there is nothing to read ``dt`` from."""
    given = None if dt is None else check_dt(dt)
    if "time" in sig.coords and sig.sizes["time"] > 1:
        steps = np.diff(np.asarray(sig["time"], dtype=float))
        if not np.allclose(steps, steps[0], rtol=1e-6, atol=0):
            if given is not None:
                return given
            raise ValueError("the time coordinate is not evenly spaced; resample it or pass dt=.")
        step = check_dt(float(steps[0]))
        if given is not None and not math.isclose(given, step, rel_tol=1e-6):
            raise ValueError(f"dt={given:g} contradicts the signals' time coordinate (steps of {step:g}): periods "
                             "and lags would be off by their ratio; drop dt= (it is read from the coordinate) "
                             "or fix the coordinate.")
        return step
    if "fs" in sig.attrs:
        from_fs = check_dt(1.0 / float(sig.attrs["fs"]))
        if given is not None and not math.isclose(given, from_fs, rel_tol=1e-6):
            raise ValueError(f"dt={given:g} contradicts the signals' fs attribute ({float(sig.attrs['fs']):g} Hz, "
                             f"dt={from_fs:g}): periods and lags would be off by their ratio; drop dt= (it is "
                             "read from fs) or fix the attribute.")
        return from_fs
    if given is not None:
        return given
    raise ValueError(f"dt is not given and cannot be read from the signals (no time coordinate or fs attr); {fix}.")


def time_axis(x: Any, dt: float | None) -> tuple[Any, float, np.ndarray | None, tuple[str, ...]]:
    """Unwrap a DataArray (time last) and work out ``dt`` (:func:`dt_of`); returns values, dt,
    time, leading dims."""
    if isinstance(x, xr.DataArray):
        if "time" not in x.dims:
            raise ValueError(f"the DataArray needs a 'time' dimension, got dims {x.dims}.")
        x = x.transpose(..., "time")
        dt = dt_of(x, dt)
        time = np.asarray(x["time"], dtype=float) if "time" in x.coords else None
        return x.data, dt, time, tuple(x.dims[:-1])
    if dt is None:
        raise ValueError("dt (the sampling interval) is required for array input; e.g. dt=1/30.")
    return x, check_dt(dt), None, ()


def result_attrs(grid: ScaleGrid, **params: Any) -> dict[str, Any]:
    """The attrs of a labelled result: the package version, the grid, and ``params`` (non-scalars
    as strings)."""
    attrs = {
        "bioxen_dask_version": __version__,
        "wavelet": grid.wavelet.name,
        "wavelet_params": str(grid.wavelet),
        "dt": grid.dt,
        "dj": grid.dj,
        "s0": float(grid.scales[0]),
        "J": grid.n_scales - 1,
    }
    attrs.update({k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in params.items()})
    return attrs
