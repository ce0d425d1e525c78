"""The native public API: labelled wavelet transforms and single-pair coherence."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from . import kernels
from ._validation import as_signal, check_dt, check_float32_range, check_length, check_same_length, check_variance
from .grid import DEFAULT_TOL, ScaleGrid, make_grid
from .presets import resolve_conventions
from .wavelets import MotherWavelet

__all__ = ["wavelet_transform", "wavelet_coherence", "grid_coords", "PHASE_CONVENTION"]

PHASE_CONVENTION = (
    "phase = angle(W_x * conj(W_y)) of the unsmoothed cross-wavelet transform, radians in "
    "(-pi, pi]; positive when x leads y (Grinsted et al. 2004: arrows pointing right = in "
    "phase, left = anti-phase, down = x leads y by 90 degrees)"
)


def _version() -> str:
    from . import __version__

    return __version__


def grid_coords(grid: ScaleGrid) -> dict[str, Any]:
    """The ``period``/``scale``/``frequency`` coordinates of a grid, with CF-style attrs."""
    return {
        "period": ("period", grid.periods, {"long_name": "Fourier period", "units": "s"}),
        "scale": ("period", grid.scales, {"long_name": "wavelet scale", "units": "s"}),
        "frequency": ("period", grid.frequencies, {"long_name": "Fourier frequency", "units": "Hz"}),
    }


def _time_axis(x: Any, dt: float | None) -> tuple[Any, float, np.ndarray | None, tuple[str, ...]]:
    """Unwrap a DataArray (time last) and work out ``dt``; returns values, dt, time, dims."""
    if isinstance(x, xr.DataArray):
        if "time" not in x.dims:
            raise ValueError(f"the DataArray needs a 'time' dimension, got dims {x.dims}.")
        x = x.transpose(..., "time")
        if dt is None:
            if "time" in x.coords and x.sizes["time"] > 1:
                steps = np.diff(np.asarray(x["time"], dtype=float))
                if not np.allclose(steps, steps[0], rtol=1e-6, atol=0):
                    raise ValueError("the time coordinate is not evenly spaced; resample it or pass dt=.")
                dt = float(steps[0])
            elif "fs" in x.attrs:
                dt = 1.0 / float(x.attrs["fs"])
            else:
                raise ValueError("dt is not given and cannot be read from the DataArray; pass dt=.")
        time = np.asarray(x["time"], dtype=float) if "time" in x.coords else None
        return x.data, check_dt(dt), time, tuple(x.dims[:-1])
    if dt is None:
        raise ValueError("dt (the sampling interval) is required for array input; e.g. dt=1/30.")
    return x, check_dt(dt), None, ()


def _attrs(grid: ScaleGrid, **params: Any) -> dict[str, Any]:
    attrs = {
        "bioxen_dask_version": _version(),
        "wavelet": grid.wavelet.name,
        "wavelet_params": str(grid.wavelet),
        "dt": grid.dt,
        "dj": grid.dj,
        "s0": float(grid.scales[0]),
        "J": grid.n_scales - 1,
    }
    attrs.update({k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in params.items()})
    return attrs


def wavelet_transform(
    x: Any,
    dt: float | None = None,
    *,
    dj: float = 1 / 12,
    s0: float | None = None,
    J: int | None = None,
    wavelet: str | MotherWavelet = "morlet",
    preset: str | None = None,
    boundary: str | None = None,
    dtype: str = "float32",
    tol: float = DEFAULT_TOL,
    workers: int | None = None,
) -> xr.DataArray:
    """Continuous wavelet transform of one or many signals, labelled.

    Parameters
    ----------
    x : array-like or xarray.DataArray, shape ``(..., time)``
        Real, finite signals. A DataArray keeps its leading dims and coords (e.g. ``roi``);
        its ``time`` coordinate (or ``fs`` attr) gives ``dt`` when ``dt`` is omitted.
    dt : float, optional
        Sampling interval (seconds). Required for plain arrays.
    dj, s0, J, wavelet
        The scale grid, with pycwt's meanings; ``s0``/``J`` default to the preset's rules.
    preset : {"pycwt", "grinsted"}, optional
        Reference conventions (grid defaults, mean removal, Heaviside). Naming one also
        selects that tool's boundary unless ``boundary`` is given (the README's Conventions;
        :func:`bioxen_dask.presets.resolve_conventions`). Not named: pycwt's conventions with
        the ``linear`` boundary.
    boundary : {"linear", "symmetric", "circular", "valid", "pycwt", "grinsted"}, optional
        Edge handling (see :func:`bioxen_dask.kernels.cwt`); given explicitly it always wins.
        Default: the named preset's own, else ``linear``.
    dtype : {"float32", "float64"}
        Working precision.
    tol : float
        Wavelet truncation tolerance for padding lengths and the ``valid`` region.
    workers : int, optional
        FFT threads.

    Returns
    -------
    xarray.DataArray
        Complex ``wavelet`` with dims ``(..., period, time)``, coords ``period``, ``scale``,
        ``frequency``, ``time`` and ``coi`` (on ``time``), attrs recording every parameter.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(0, 60, 1 / 30)
    >>> W = wavelet_transform(np.sin(2 * np.pi * t / 2.0), dt=1 / 30)
    >>> W.dims, W.sizes["period"]
    (('period', 'time'), 119)
    >>> round(float(abs(W).mean("time").idxmax()), 1)  # period (s) of strongest power
    2.0
    """
    p, boundary = resolve_conventions(preset, boundary)
    data, dt, time, lead_dims = _time_axis(x, dt)
    if isinstance(x, xr.DataArray) and _is_dask(data):  # chunked, halo-exact (1-D records too)
        from . import graph

        return graph.wavelet_transform_dask(
            x, dt, dj=dj, s0=s0, J=J, wavelet=wavelet, preset=p, boundary=boundary,
            dtype=dtype, tol=tol,
        )
    arr = as_signal(data, "x", one_d=False)
    n = arr.shape[-1]
    grid = make_grid(n, dt, dj=dj, s0=s0, J=J, wavelet=wavelet, preset=p)
    check_length(n, grid)
    check_float32_range(arr, dtype, grid)
    W = kernels.cwt(arr, grid, boundary=boundary, tol=tol, remove_mean=p.remove_mean, dtype=dtype, workers=workers)
    dims = (lead_dims or tuple(f"dim_{i}" for i in range(arr.ndim - 1))) + ("period", "time")
    coords: dict[str, Any] = dict(grid_coords(grid))
    coords["time"] = ("time", time if time is not None else np.arange(n) * dt, {"units": "s"})
    coords["coi"] = ("time", grid.coi(n, p.coi), {"long_name": "cone of influence (period)", "units": "s"})
    if isinstance(x, xr.DataArray):
        coords.update({k: v for k, v in x.coords.items() if set(v.dims) <= set(lead_dims)})
    return xr.DataArray(
        W, dims=dims, coords=coords, name="wavelet",
        attrs=_attrs(grid, preset=p.name, boundary=boundary, dtype=str(dtype), tol=tol,
                     long_name="continuous wavelet transform"),
    )


def _is_dask(data: Any) -> bool:
    return type(data).__module__.split(".")[0] == "dask"


def wavelet_coherence(
    x: Any,
    y: Any,
    dt: float,
    *,
    preset: str | None = None,
    boundary: str | None = None,
    dj: float = 1 / 12,
    s0: float | None = None,
    J: int | None = None,
    wavelet: str | MotherWavelet = "morlet",
    dtype: str = "float32",
    tol: float = DEFAULT_TOL,
    normalize: bool = True,
    workers: int | None = None,
    engine: str = "bioxen",
    method: str = "exact",
) -> xr.Dataset:
    """Wavelet coherence, phase and cross-wavelet power of one pair of signals.

    Parameters
    ----------
    x, y : array-like, 1-D, same length
        Real, finite, non-constant signals sampled every ``dt``.
    dt : float
        Sampling interval (seconds).
    preset : {"pycwt", "grinsted"}, optional
        Conventions: grid defaults, scale smoothing kernel (14 vs 9 taps at ``dj=1/12``),
        mean removal, and, unless ``boundary`` is given, that tool's own boundary, so that
        naming a preset gives that tool's numbers (``preset="grinsted"`` equals the toolbox's
        ``wtc``). Not named: pycwt's conventions with the ``linear`` boundary.
    boundary : {"linear", "symmetric", "circular", "valid", "pycwt", "grinsted"}, optional
        Edge handling of the transform and of the time smoothing; given explicitly it always
        wins. Default: the named preset's own, else ``linear``.
    dj, s0, J, wavelet
        The scale grid, pycwt's meanings.
    dtype : {"float32", "float64"}
    tol : float
        Truncation tolerance (padding, ``valid`` region).
    normalize : bool
        Standardise each input ``(y - mean)/std`` first, as pycwt's ``wct`` (coherence does
        not depend on it; the cross-wavelet power does).
    workers : int, optional
        FFT threads.
    engine : {"bioxen", "pycwt", "pywavelets", "ssqueezepy", "fcwt"}
        Who computes the two transforms (:func:`bioxen_dask.engines.engine_cwt`, converted
        to pycwt's convention); smoothing and coherence are always bioxen-dask's. External
        engines need a Morlet grid and ``boundary`` ``"pycwt"`` or ``"linear"``.

    Returns
    -------
    xarray.Dataset
        ``coherence`` (squared coherence, 0..1) and ``phase`` (radians; see
        :data:`PHASE_CONVENTION`) and ``cross_power`` ``|W_x W_y*|`` on ``(period, time)``,
        ``coi`` on ``time``; coords ``period``, ``scale``, ``frequency``, ``time``; attrs
        recording every parameter.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> t = np.arange(0, 120, 0.1)
    >>> x = np.sin(2 * np.pi * t / 5) + 0.5 * rng.standard_normal(t.size)
    >>> y = np.sin(2 * np.pi * (t - 1.25) / 5) + 0.5 * rng.standard_normal(t.size)
    >>> ds = wavelet_coherence(x, y, dt=0.1)
    >>> near5 = ds.sel(period=5, method="nearest")
    >>> bool(near5.coherence.mean() > 0.8), round(float(np.median(near5.phase)), 1)  # x leads by 1/4 cycle
    (True, 1.6)
    """
    p, boundary = resolve_conventions(preset, boundary)
    a = as_signal(x, "x")
    b = as_signal(y, "y")
    check_same_length(a, b)
    dt = check_dt(dt)
    check_variance(a, "x")
    check_variance(b, "y")
    n = a.size
    grid = make_grid(n, dt, dj=dj, s0=s0, J=J, wavelet=wavelet, preset=p)
    check_length(n, grid)
    if normalize:
        a = (a - a.mean()) / a.std()
        b = (b - b.mean()) / b.std()
    else:
        check_float32_range(a, dtype, grid, "x")
        check_float32_range(b, dtype, grid, "y")
    method = _check_method(method, engine, dtype, boundary)
    # valid: the transforms run in linear mode and the maps are masked once smoothed (NaN
    # coefficients at the edges would spread through the smoothing FFTs to every sample)
    kw = dict(boundary="linear" if boundary == "valid" else boundary, tol=tol, remove_mean=p.remove_mean,
              dtype=dtype, workers=workers)
    if method == "multirate":
        if p.remove_mean and not normalize:
            a, b = a - a.mean(), b - b.mean()
        R2, ang, cross = kernels.multirate_coherence(a, b, grid, scale_kernel=p.scale_kernel, boundary=boundary,
                                                     tol=tol, workers=workers, with_cross=True)
    elif str(engine).lower() == "bioxen":
        W1 = kernels.cwt(a, grid, **kw)
        W2 = kernels.cwt(b, grid, **kw)
    else:
        from .engines import engine_cwt

        cplx = kernels.resolve_dtype(dtype)[1]
        W1 = engine_cwt(a, grid, engine, **kw).astype(cplx, copy=False)
        W2 = engine_cwt(b, grid, engine, **kw).astype(cplx, copy=False)
    if method == "exact":
        smoother = kernels.Smoother(grid, scale_kernel=p.scale_kernel, boundary=boundary, tol=tol, workers=workers)
        R2, ang = kernels.coherence(W1, W2, smoother)
        cross = np.abs(kernels.cross_spectrum(W1, W2))
        if boundary == "valid":
            kernels.mask_edges(cross, grid.wavelet_support(tol), np)
    coords: dict[str, Any] = dict(grid_coords(grid))
    coords["time"] = ("time", np.arange(n) * dt, {"units": "s"})
    dims = ("period", "time")
    return xr.Dataset(
        {
            "coherence": (dims, R2, {"long_name": "squared wavelet coherence", "units": "1"}),
            "phase": (dims, ang, {"long_name": "cross-wavelet phase", "units": "rad",
                                  "convention": PHASE_CONVENTION}),
            "cross_power": (dims, cross, {"long_name": "cross-wavelet power |Wx Wy*|", "units": "1"}),
            "coi": ("time", grid.coi(n, p.coi), {"long_name": "cone of influence (period)", "units": "s"}),
        },
        coords=coords,
        attrs=_attrs(grid, preset=p.name, boundary=boundary, dtype=str(dtype), tol=tol,
                     normalize=normalize, scale_kernel=p.scale_kernel, engine=str(engine).lower(), method=method),
    )


#: How :func:`wavelet_coherence` computes its maps.
METHODS = ("exact", "multirate")


def _check_method(method: str, engine: str, dtype: Any, boundary: str) -> str:
    m = str(method).strip().lower()
    if m not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {list(METHODS)}.")
    if m == "multirate":
        if str(engine).lower() != "bioxen":
            raise ValueError(f"method='multirate' computes its own transforms; it cannot take engine={engine!r} "
                             "(use method='exact' for hybrid engines).")
        if kernels.resolve_dtype(dtype)[0] != np.float32:
            raise ValueError("method='multirate' computes in float32; pass dtype='float32' or use method='exact' "
                             "for float64.")
        if boundary not in ("linear", "valid"):
            raise ValueError(f"method='multirate' supports boundary 'linear' or 'valid', not {boundary!r} (a named "
                             "preset selects its tool's boundary); pass boundary='linear' or use method='exact'.")
    return m
