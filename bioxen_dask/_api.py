"""The native public API: labelled wavelet transforms and single-pair coherence."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from . import kernels
from ._labels import grid_coords
from ._labels import result_attrs as _attrs
from ._labels import time_axis as _time_axis
from ._validation import as_signal, check_dt, check_float32_range, check_length, check_variance
from .grid import DEFAULT_TOL, ScaleGrid, make_grid
from .kernels._multirate_cwt import check_method, check_multirate
from .presets import resolve_conventions
from .wavelets import MotherWavelet

__all__ = ["wavelet_transform", "wavelet_coherence", "grid_coords", "PHASE_CONVENTION"]

PHASE_CONVENTION = (
    "phase = angle(W_x * conj(W_y)) of the unsmoothed cross-wavelet transform, radians in "
    "(-pi, pi]; positive when x leads y (Grinsted et al. 2004: arrows pointing right = in "
    "phase, left = anti-phase, down = x leads y by 90 degrees)"
)


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
    method: str = "exact",
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
    method : {"exact", "multirate"}
        ``"exact"`` (default): every scale computed at the full sampling rate, the exact
        (linear) convolution of the Boundaries convention; chunked results equal in-memory
        ones to rounding. ``"multirate"`` (opt-in): a Morlet coefficient at scale ``s`` is
        band-limited (it carries only frequencies up to about ``12/s`` rad/s), so each scale
        whose band fits in 40% of the Nyquist band of a copy of the record decimated by a
        power of two ``R >= 2`` (at most ``n/256``) is computed on that copy and interpolated
        back to every sample (:mod:`bioxen_dask.kernels._multirate_cwt`); the smaller scales
        (periods under ~20 samples) stay exact. Its coefficients differ from the exact transform's by at
        most **1e-6 of each scale's largest coefficient** (measured 4e-7 to 7e-7 on white
        noise, sines, steps, a membrane-potential recording and the analytic transform of
        cosines; the exact float32 transform's own rounding is 3e-7 to 8e-7),
        bounded in ``tests/test_multirate_cwt.py`` and recorded per run by ``bioxen-dask
        bench cwt`` (``err_vs_exact``). It needs ``dtype="float32"``, a Morlet wavelet, NumPy
        input and boundary ``linear`` or ``valid`` (a clear error otherwise); it is faster
        on grids that reach long scales (pycwt's default grid, up to the record length).
        Records of fewer than 512 samples have no decimated scale (multirate equals exact). :mod:`bioxen_dask.compat` always computes exactly (pycwt's numbers).

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
    method = check_method(method, "bioxen", dtype, boundary)
    data, dt, time, lead_dims = _time_axis(x, dt)
    if isinstance(x, xr.DataArray) and _is_dask(data):  # chunked, halo-exact (1-D records too)
        from . import graph

        return graph.wavelet_transform_dask(
            x, dt, dj=dj, s0=s0, J=J, wavelet=wavelet, preset=p, boundary=boundary,
            dtype=dtype, tol=tol, method=method,
        )
    arr = as_signal(data, "x", one_d=False)
    n = arr.shape[-1]
    grid = make_grid(n, dt, dj=dj, s0=s0, J=J, wavelet=wavelet, preset=p)
    if method == "multirate":
        check_multirate(boundary, grid.wavelet)
    check_length(n, grid)
    check_float32_range(arr, dtype, grid)
    W = kernels.cwt(arr, grid, boundary=boundary, tol=tol, remove_mean=p.remove_mean, dtype=dtype, workers=workers,
                    method=method)
    dims = (lead_dims or tuple(f"dim_{i}" for i in range(arr.ndim - 1))) + ("period", "time")
    coords: dict[str, Any] = dict(grid_coords(grid))
    coords["time"] = ("time", time if time is not None else np.arange(n) * dt, {"units": "s"})
    coords["coi"] = ("time", grid.coi(n, p.coi), {"long_name": "cone of influence (period)", "units": "s"})
    if isinstance(x, xr.DataArray):
        coords.update({k: v for k, v in x.coords.items() if set(v.dims) <= set(lead_dims)})
    return xr.DataArray(
        W, dims=dims, coords=coords, name="wavelet",
        attrs=_attrs(grid, preset=p.name, boundary=boundary, dtype=str(dtype), tol=tol, method=method,
                     long_name="continuous wavelet transform"),
    )


def _is_dask(data: Any) -> bool:
    return type(data).__module__.split(".")[0] == "dask"


def wavelet_coherence(
    x: Any,
    y: Any,
    dt: float | None = None,
    *,
    preset: str | None = None,
    boundary: str | None = None,
    span: str | None = None,
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
    x, y : array-like or xarray.DataArray
        Real, finite, non-constant signals: 1-D arrays of the same length sampled every
        ``dt``, or series with their own time axes, possibly on **different spans**: 1-D
        DataArrays with a ``time`` coordinate (numbers or datetimes), or ``(t, value)``
        two-column arrays ``(n, 2)`` as Grinsted's toolbox takes them. Their
        axes must share ``dt`` and lie on one sampling grid (to 1% of a sample over the
        records), or it is an error; the result is on their common span.
    dt : float, optional
        Sampling interval (seconds); read from the time axes when they are given (a ``dt``
        given as well must agree), required for plain arrays.
    preset : {"pycwt", "grinsted"}, optional
        Conventions: grid defaults, scale smoothing kernel (14 vs 9 taps at ``dj=1/12``),
        mean removal, and, unless ``boundary`` is given, that tool's own boundary, so that
        naming a preset gives that tool's numbers (``preset="grinsted"`` equals the toolbox's
        ``wtc``, on equal and on different spans). Not named: pycwt's conventions with the
        ``linear`` boundary.
    boundary : {"linear", "symmetric", "circular", "valid", "pycwt", "grinsted"}, optional
        Edge handling of the transform and of the time smoothing; given explicitly it always
        wins. Default: the named preset's own, else ``linear``.
    span : {"whole", "common"}, optional
        Series on different spans. ``"whole"``: each series is transformed, and its power
        smoothed, over its whole record, then cut to the common span (the cone of influence
        is each record's, the smaller of the two): what the toolbox's ``wtc`` does, so the
        default under ``preset="grinsted"``. ``"common"``: both are cut to the common span
        first and analysed as equal-length records: what one passes to pycwt's ``wct``,
        which has no such mode, so the default otherwise (no preset, or ``"pycwt"``). On
        equal spans both are the same. The scale grid follows the common span's length
        either way (as ``wtc``'s does).
    dj, s0, J, wavelet
        The scale grid, pycwt's meanings.
    dtype : {"float32", "float64"}
    tol : float
        Truncation tolerance (padding, ``valid`` region).
    normalize : bool
        Standardise each input ``(y - mean)/std`` first (each whole record with
        ``span="whole"``), as pycwt's ``wct`` (coherence does not depend on it; the
        cross-wavelet power does).
    workers : int, optional
        FFT threads.
    engine : {"bioxen", "pycwt", "pywavelets", "ssqueezepy", "fcwt"}
        Who computes the two transforms (:func:`bioxen_dask.engines.engine_cwt`, converted
        to pycwt's convention); smoothing and coherence are always bioxen-dask's. External
        engines need a Morlet grid and ``boundary`` ``"pycwt"`` or ``"linear"``.
    method : {"exact", "multirate"}
        ``"multirate"`` (:func:`bioxen_dask.kernels.multirate_coherence`: float32, Morlet,
        ``linear``/``valid``, series on one span) computes the same maps on decimated grids.

    Returns
    -------
    xarray.Dataset
        ``coherence`` (squared coherence, 0..1) and ``phase`` (radians; see
        :data:`PHASE_CONVENTION`) and ``cross_power`` ``|W_x W_y*|`` on ``(period, time)``,
        ``coi`` on ``time``; coords ``period``, ``scale``, ``frequency``, ``time`` (the
        inputs' own times on the common span, else ``0, dt, ...``); attrs recording every
        parameter.

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

    Two series on different spans (Grinsted's toolbox's ``wtc(jao, jbaltic)``):

    >>> ao = np.c_[np.arange(1851, 1998), rng.standard_normal(147)]          # (t, value)
    >>> ice = xr.DataArray(rng.standard_normal(280), dims="time", coords={"time": np.arange(1720, 2000)})
    >>> ds = wavelet_coherence(ao, ice, preset="grinsted")
    >>> int(ds.time[0]), int(ds.time[-1]), ds.attrs["span"], ds.attrs["boundary"]
    (1851, 1997, 'whole', 'grinsted')
    """
    p, boundary = resolve_conventions(preset, boundary)
    pair = _pair_axes(x, y, dt)
    dt = pair.dt
    span = _check_span(span, p)
    if pair.same_span or span == "common":
        a, b = pair.x[pair.in_x], pair.y[pair.in_y]
        sa = sb = slice(None)
    else:
        a, b = pair.x, pair.y
        sa, sb = pair.in_x, pair.in_y
    check_variance(a, "x")
    check_variance(b, "y")
    n = pair.n
    grid = make_grid(n, dt, dj=dj, s0=s0, J=J, wavelet=wavelet, preset=p)
    check_length(n, grid)
    if normalize:
        a = (a - a.mean()) / a.std()
        b = (b - b.mean()) / b.std()
    else:
        check_float32_range(a, dtype, grid, "x")
        check_float32_range(b, dtype, grid, "y")
    method = check_method(method, engine, dtype, boundary)
    if method == "multirate" and not a.size == b.size == n:
        raise ValueError("method='multirate' needs the two series on one span; with span='whole' on different "
                         "spans use method='exact', or span='common'.")
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
        S1 = S2 = None
        if a.size != n or b.size != n:  # whole records: each power smoothed over its record, then cut
            S1 = np.ascontiguousarray(smoother.scaled(kernels.power(W1))[:, sa])
            S2 = np.ascontiguousarray(smoother.scaled(kernels.power(W2))[:, sb])
            W1, W2 = np.ascontiguousarray(W1[:, sa]), np.ascontiguousarray(W2[:, sb])
        R2, ang = kernels.coherence(W1, W2, smoother, S1=S1, S2=S2)
        cross = np.abs(kernels.cross_spectrum(W1, W2))
        if boundary == "valid":
            kernels.mask_edges(cross, grid.wavelet_support(tol), np)
    coi = np.minimum(grid.coi(a.size, p.coi)[sa], grid.coi(b.size, p.coi)[sb])
    coords: dict[str, Any] = dict(grid_coords(grid))
    time = np.arange(n) * dt if pair.time is None else pair.time
    coords["time"] = ("time", time, {"units": "s"} if np.issubdtype(time.dtype, np.number) else {})
    dims = ("period", "time")
    return xr.Dataset(
        {
            "coherence": (dims, R2, {"long_name": "squared wavelet coherence", "units": "1"}),
            "phase": (dims, ang, {"long_name": "cross-wavelet phase", "units": "rad",
                                  "convention": PHASE_CONVENTION}),
            "cross_power": (dims, cross, {"long_name": "cross-wavelet power |Wx Wy*|", "units": "1"}),
            "coi": ("time", coi, {"long_name": "cone of influence (period)", "units": "s"}),
        },
        coords=coords,
        attrs=_attrs(grid, preset=p.name, boundary=boundary, span=span, dtype=str(dtype), tol=tol,
                     normalize=normalize, scale_kernel=p.scale_kernel, engine=str(engine).lower(), method=method),
    )


#: How :func:`wavelet_coherence` treats series on different spans (see its ``span``).
SPANS = ("whole", "common")


def _check_span(span: str | None, p: Any) -> str:
    if span is None:
        return "whole" if p.name == "grinsted" else "common"
    s = str(span).strip().lower()
    if s not in SPANS:
        raise ValueError(f"unknown span {span!r}; choose 'whole' (transform each whole record, then cut to the "
                         "common span: Grinsted's wtc) or 'common' (cut first: pycwt's wct).")
    return s


@dataclass(frozen=True)
class _PairAxes:
    """Two series on one sampling grid: their values, ``dt``, and where the common span lies."""

    x: np.ndarray
    y: np.ndarray
    dt: float
    in_x: slice
    in_y: slice
    time: np.ndarray | None  # the common span's own time values (None: plain arrays)

    @property
    def n(self) -> int:
        return self.in_x.stop - self.in_x.start

    @property
    def same_span(self) -> bool:
        return self.x.size == self.y.size == self.n


def _timed_series(v: Any, name: str) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, float | None]:
    """``(values, numeric time or None, time as given or None, dt from an fs attr or None)``."""
    if isinstance(v, xr.DataArray):
        if v.dims != ("time",):
            raise ValueError(f"{name} must be a 1-D DataArray on 'time' (one series), got dims {v.dims}; select "
                             "one series (e.g. .sel(roi=...)) or use bioxen_dask.coherence for many.")
        values = as_signal(v.values, name)
        fs_dt = 1.0 / float(v.attrs["fs"]) if "fs" in v.attrs else None
        if "time" not in v.coords:
            return values, None, None, fs_dt
        given = np.asarray(v["time"].values)
        return values, _numeric_time(given, name), given, fs_dt
    arr = np.asarray(v)
    if arr.ndim == 2:
        if arr.shape[1] != 2:  # (2, n) too could be two stacked signals: only columns are read as (t, value)
            hint = " (if it is (t, value) as rows, pass its transpose)" if arr.shape[0] == 2 else ""
            raise ValueError(f"{name} must be 1-D (time) or two columns (t, value) as Grinsted's toolbox takes, "
                             f"got shape {arr.shape}{hint}; for many signals use bioxen_dask.coherence.")
        t = as_signal(arr[:, 0], f"{name}'s time column")
        return as_signal(arr[:, 1], name), t, t, None
    return as_signal(v, name), None, None, None


def _axis_name(name: str, v: Any) -> str:
    return name if isinstance(v, xr.DataArray) or np.ndim(v) != 2 else f"{name} (read as (t, value) columns)"


def _numeric_time(t: np.ndarray, name: str) -> np.ndarray:
    if np.issubdtype(t.dtype, np.datetime64):
        return t.astype("datetime64[ns]").astype(np.int64) / 1e9  # seconds: dt and periods in s
    if np.issubdtype(t.dtype, np.timedelta64):
        return t.astype("timedelta64[ns]").astype(np.int64) / 1e9
    return as_signal(t, f"{name}'s time coordinate")


def _grid_step(t: np.ndarray, name: str) -> float:
    """The sampling interval of an increasing, evenly spaced time axis (to 1% of a sample)."""
    if t.size < 2:
        raise ValueError(f"{name} has {t.size} sample: too short for a wavelet transform.")
    if not t[1] > t[0]:
        raise ValueError(f"{name}: its time axis does not increase (t[0]={t[0]:g}, t[1]={t[1]:g}); sort the "
                         "series by time (e.g. x[::-1] if it runs backwards).")
    step = float(np.median(np.diff(t)))  # robust to one gap: the error then names it
    off = np.abs((t - t[0]) / step - np.arange(t.size))
    i = int(np.argmax(off))
    if off[i] > _GRID_TOLERANCE:
        raise ValueError(f"{name}: its time axis is not evenly spaced: sample {i} (t={t[i]:g}) is {off[i]:.3g} "
                         f"samples off the grid of step {step:g} (a gap or jitter?); resample it onto an even "
                         "grid (fill gaps) first.")
    return float((t[-1] - t[0]) / (t.size - 1))


#: Largest distance (in samples) of a time stamp from the shared sampling grid.
_GRID_TOLERANCE = 0.01


def _pair_axes(x: Any, y: Any, dt: float | None) -> _PairAxes:
    """Where two series lie on one sampling grid: plain arrays (``dt`` given, equal lengths),
    or series with time axes (DataArrays, ``(t, value)`` columns) on possibly different spans."""
    a, ta, ga, fa = _timed_series(x, "x")
    b, tb, gb, fb = _timed_series(y, "y")
    if ta is None and tb is None:
        dt = dt if dt is not None else (fa if fa is not None else fb)
        if dt is None:
            raise ValueError("dt (the sampling interval) is required for plain arrays, e.g. dt=1/30; or pass the "
                             "series with their times (DataArrays with a 'time' coordinate, or (t, value) columns).")
        if a.size != b.size:
            raise ValueError(f"x and y must have the same number of samples, got {a.size} and {b.size}; cut both "
                             "to their common time span, or pass them with their time axes (DataArrays with a "
                             "'time' coordinate, or (t, value) columns) and the common span is found for you.")
        return _PairAxes(a, b, check_dt(dt), slice(0, a.size), slice(0, b.size), None)
    for name, vals, t in (("x", a, ta), ("y", b, tb)):
        if t is not None and t.size != vals.size:  # pragma: no cover - DataArrays and columns guarantee it
            raise ValueError(f"{name}'s time axis has {t.size} samples for {vals.size} values.")
    if ta is None or tb is None:  # one plain series: it shares the other's axis
        plain, other = ("x", a) if ta is None else ("y", b)
        if a.size != b.size:
            raise ValueError(f"{plain} has no time axis and {other.size} samples, the other series "
                             f"{b.size if ta is None else a.size}; give {plain} its times too (a DataArray with a "
                             "'time' coordinate, or (t, value) columns).")
        ta, ga = (tb, gb) if ta is None else (ta, ga)
        tb, gb = (ta, ga) if tb is None else (tb, gb)
    step_x, step_y = _grid_step(ta, _axis_name("x", x)), _grid_step(tb, _axis_name("y", y))
    longest = max(a.size, b.size)
    if abs(step_x - step_y) * longest > _GRID_TOLERANCE * step_x:
        raise ValueError(f"x and y are sampled at different intervals (dt {step_x:.9g} and {step_y:.9g}); "
                         "resample one onto the other's grid first.")
    if dt is not None and abs(check_dt(dt) - step_x) * longest > _GRID_TOLERANCE * step_x:
        raise ValueError(f"dt={dt:g} disagrees with the series' time axes (dt {step_x:.9g}); leave dt unset to "
                         "take it from the time axes.")
    offset = (tb[0] - ta[0]) / step_x
    k = int(round(offset))
    if abs(offset - k) > _GRID_TOLERANCE:
        raise ValueError(f"x and y are not on the same sampling grid: y's samples fall {offset - math.floor(offset):.3g} "
                         f"of a sample (dt {step_x:g}) between x's; shift or resample one onto the other's grid.")
    start, stop = max(0, k), min(a.size, k + b.size)
    if stop - start < 2:
        raise ValueError(f"x and y do not overlap in time (x spans {ta[0]:g}..{ta[-1]:g}, y {tb[0]:g}..{tb[-1]:g}); "
                         "coherence needs a common span.")
    return _PairAxes(a, b, step_x, slice(start, stop), slice(start - k, stop - k), ga[start:stop])


