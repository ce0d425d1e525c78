"""Monte Carlo significance of wavelet coherence: surrogate batches -> mergeable partials -> levels.

One Monte Carlo run is described by a :class:`MonteCarloSpec` (grid, null model, conventions,
what to collect, root seed). A *batch* ``[start, stop)`` of surrogate indices is turned into a
:class:`Partial` by :meth:`MonteCarloSpec.run`; partials merge exactly and associatively
(:func:`merge_partials`), so any split of the indices into batches, in any order, on any
number of workers, gives bit-identical results:

- pooled histograms are integer counts, which add exactly;
- per-(scale, time) statistics keep the ``k`` largest surrogate values of every point, and
  the top ``k`` of a union is one multiset whatever the merge order;
- per-surrogate time averages are stored by surrogate index.

Two engines produce partials:

- ``"multirate"`` (:mod:`._multirate`): pooled histograms only, band-limited and with
  short records for small scales; ~100x cheaper than transforming the whole record.
- ``"exact"``: the coherence field of every surrogate with :mod:`bioxen_dask.kernels`
  (any boundary, float32/64); needed for per-(scale, time) thresholds and for the null
  distribution of time-averaged coherence.

Levels are read off only at the end (:func:`levels_from_histograms`,
:func:`pointwise_levels`, :func:`pvalues_from_null`).
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from .._validation import whole_number
from ..grid import DEFAULT_TOL, ScaleGrid
from ..kernels import Smoother, coherence, cwt
from ..kernels._device import batch_size_for, device_namespace, free_memory
from ..kernels._xp import to_numpy
from ._multirate import DEFAULT_INTERIOR, N_CLASSES, multirate_plan
from ._surrogates import NullModel, surrogate_seed

__all__ = [
    "NBINS",
    "MonteCarloSpec",
    "Partial",
    "SignificanceResult",
    "check_mc_count",
    "levels_array",
    "levels_from_histograms",
    "make_result",
    "merge_partials",
    "outside_coi_mask",
    "pointwise_levels",
    "pvalues_from_null",
    "surrogate_length",
    "time_averaged_coherence",
    "topk_size",
]

#: Histogram bins on [0, 1] (pycwt's 1000); coherence 1.0 falls in the last bin.
NBINS = 1000
#: Bumped whenever a change alters the numbers a given spec produces (part of cache keys).
ENGINE_VERSION = 2  # 2: the multirate engine smooths each power by its own real FFTs
#: Working-memory budget per task used to pick default batch sizes (bytes).
TASK_MEMORY_BUDGET = 1 << 30
#: Skip the (unused) phase of surrogate coherence where the kernels allow it.
_NO_PHASE = {"with_phase": False} if "with_phase" in inspect.signature(coherence).parameters else {}


def surrogate_length(grid: ScaleGrid) -> int:
    """Samples per surrogate in pycwt's test: ``ceil(6 * largest scale / dt)``.

    Parameters
    ----------
    grid : ScaleGrid
        Scale grid of the test.

    Returns
    -------
    int
        Samples per surrogate.

    Examples
    --------
    >>> from bioxen_dask.grid import make_grid
    >>> surrogate_length(make_grid(18000, 1 / 30))
    106814
    """
    return int(math.ceil(6 * grid.scales[-1] / grid.dt))


def outside_coi_mask(grid: ScaleGrid, n: int) -> np.ndarray:
    """Where the period is outside the cone of influence (the points pycwt's test counts).

    Parameters
    ----------
    grid : ScaleGrid
        Scale grid.
    n : int
        Record length.

    Returns
    -------
    ndarray of bool, shape ``(n_scales, n)``
        True outside the COI.
    """
    return grid.periods[:, None] <= grid.coi(n)[None, :]


def time_averaged_coherence(R2: Any, grid: ScaleGrid) -> np.ndarray:
    """Mean coherence per scale over the points outside the COI (NaN where there are none).

    Parameters
    ----------
    R2 : array-like, shape ``(..., n_scales, n)``
        Coherence of one or many pairs.
    grid : ScaleGrid

    Returns
    -------
    ndarray, shape ``(..., n_scales)``
    """
    R2 = np.asarray(R2, dtype=float)
    mask = outside_coi_mask(grid, R2.shape[-1]) & np.isfinite(R2)
    num = np.where(mask, R2, 0.0).sum(axis=-1)
    den = mask.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.maximum(den, 1), np.nan)


def levels_array(levels: float | Iterable[float]) -> np.ndarray:
    try:
        lv = np.atleast_1d(np.asarray(levels if np.ndim(levels) else [levels], dtype=float))
    except (TypeError, ValueError):
        raise ValueError(f"significance levels must be numbers in (0, 1), e.g. 0.95; got {levels!r}.") from None
    if lv.ndim != 1 or lv.size == 0 or np.any(~np.isfinite(lv)) or np.any((lv <= 0) | (lv >= 1)):
        raise ValueError(f"significance levels must be numbers in (0, 1), e.g. 0.95; got {lv.tolist()}.")
    return lv


def levels_from_histograms(counts: np.ndarray, levels: float | Iterable[float]) -> np.ndarray:
    """Coherence thresholds at the given levels from per-scale histograms.

    pycwt's reading: the cumulative count at each non-empty bin centre, ``(P - 0.5)/P[-1]``,
    interpolated linearly at the level. Scales with no counts get NaN.

    Parameters
    ----------
    counts : ndarray, shape ``(n_scales, nbins)``
        Integer or (pycwt-equivalent) weighted counts.
    levels : float or sequence of float

    Returns
    -------
    ndarray, shape ``(len(levels), n_scales)``

    Examples
    --------
    >>> h = np.zeros((1, 10)); h[0, :] = 1
    >>> levels_from_histograms(h, [0.5]).round(3).tolist()
    [[0.5]]
    """
    lv = levels_array(levels)
    counts = np.asarray(counts)
    n_scales, nbins = counts.shape
    centres = (np.arange(nbins) + 0.5) / nbins
    out = np.full((lv.size, n_scales), np.nan)
    for j in range(n_scales):
        sel = counts[j] > 0
        if not sel.any():
            continue
        P = np.cumsum(counts[j, sel]).astype(float)
        P = (P - 0.5) / P[-1]
        out[:, j] = np.interp(lv, P, centres[sel])
    return out


def topk_size(mc_count: int, levels: np.ndarray) -> int:
    """Largest values per point needed to read every level (Hazen positions, as pycwt)."""
    lo = int(math.floor(float(levels.min()) * mc_count + 0.5))
    return int(min(mc_count, max(1, mc_count - lo + 1)))


def pointwise_levels(topk: np.ndarray, mc_count: int, levels: float | Iterable[float]) -> np.ndarray:
    """Per-point thresholds from the ``k`` largest of ``mc_count`` surrogate values.

    The quantile uses pycwt's plotting positions ``(i - 0.5)/m`` for the ``i``-th smallest
    of ``m`` values with linear interpolation (``numpy.quantile(method="hazen")``).

    Parameters
    ----------
    topk : ndarray, shape ``(k, ...)``
        The ``k`` largest values at every point, any order (``-inf`` for missing).
    mc_count : int
        Number of surrogates ``m`` the values were drawn from.
    levels : float or sequence of float

    Returns
    -------
    ndarray, shape ``(len(levels), ...)``; NaN where a needed value is missing.
    """
    lv = levels_array(levels)
    m = int(mc_count)
    k = topk.shape[0]
    desc = -np.sort(-np.asarray(topk, dtype=np.float64), axis=0)  # descending
    out = np.empty((lv.size,) + desc.shape[1:])
    for a, q in enumerate(lv):
        pos = q * m + 0.5  # 1-based ascending rank
        pos = min(max(pos, 1.0), float(m))
        lo = int(math.floor(pos))
        hi = min(lo + 1, m)
        frac = pos - lo
        r_lo, r_hi = m - lo, m - hi  # 0-based descending indices
        if r_lo >= k:
            raise ValueError(f"level {q} needs the {m - lo + 1} largest values, only {k} kept.")
        v = desc[r_lo] + frac * (desc[r_hi] - desc[r_lo]) if frac else desc[r_lo]
        out[a] = np.where(np.isfinite(v), v, np.nan)
    return out


def pvalues_from_null(null: np.ndarray, observed: Any) -> np.ndarray:
    """Monte Carlo p-values ``(1 + #{null >= observed}) / (m + 1)`` per scale.

    Parameters
    ----------
    null : ndarray, shape ``(m, n_scales)``
        The statistic for each surrogate.
    observed : array-like, shape ``(..., n_scales)``

    Returns
    -------
    ndarray, shape ``(..., n_scales)``; NaN where the observed value or the null is NaN.

    Examples
    --------
    >>> pvalues_from_null(np.arange(9.0)[:, None], np.array([7.5])).tolist()
    [0.2]
    """
    null = np.asarray(null, dtype=float)
    obs = np.asarray(observed, dtype=float)
    m = null.shape[0]
    ge = (null[(slice(None),) + (None,) * (obs.ndim - 1)] >= obs[None]).sum(axis=0)
    p = (1.0 + ge) / (m + 1.0)
    bad = ~np.isfinite(obs) | ~np.isfinite(null).all(axis=0)
    return np.where(bad, np.nan, p)


# ---------------------------------------------------------------------------------------------
# Partials


@dataclass
class Partial:
    """What one batch of surrogates contributes; merged exactly by :func:`merge_partials`.

    Attributes
    ----------
    counts : ndarray of int64, shape ``(n_scales, n_classes, nbins)``
        Pooled outside-COI histograms per position class (3 for the multirate engine, 1 for
        the exact engine).
    topk : ndarray of float32, shape ``(k, n_scales, n)`` or None
        The ``k`` largest surrogate coherences at every point.
    index : ndarray of int64
        Surrogate indices covered.
    means : ndarray, shape ``(len(index), n_scales)`` or None
        Time-averaged outside-COI coherence per surrogate.
    """

    counts: np.ndarray | None
    topk: np.ndarray | None
    index: np.ndarray
    means: np.ndarray | None


def _keep_top(values: np.ndarray, k: int) -> np.ndarray:
    if values.shape[0] <= k:
        return values
    return np.partition(values, values.shape[0] - k, axis=0)[values.shape[0] - k :]


def _pad_top(values: np.ndarray, k: int) -> np.ndarray:
    """``values`` with ``-inf`` rows appended up to ``k`` rows.

    A batch of fewer than ``k`` surrogates must still hand on ``k`` rows: the merge keeps as
    many rows as its largest part, and a level that needs the ``k`` largest of all values
    would otherwise find fewer. ``-inf`` never displaces a real value.
    """
    if values.shape[0] >= k:
        return values
    pad = np.full((k - values.shape[0],) + values.shape[1:], -np.inf, dtype=values.dtype)
    return np.concatenate([values, pad], axis=0)


def merge_partials(*parts: Partial) -> Partial:
    """Merge partials: sums counts, keeps the top ``k``, concatenates per-surrogate values.

    Exact and order-independent: any tree of merges gives the same final result.
    """
    parts = tuple(p for p in parts if p is not None)
    if not parts:
        raise ValueError("nothing to merge")
    if len(parts) == 1:
        return parts[0]
    counts = None
    if parts[0].counts is not None:
        counts = parts[0].counts.copy()
        for p in parts[1:]:
            counts += p.counts
    topk = None
    if parts[0].topk is not None:
        k = max(p.topk.shape[0] for p in parts)
        topk = _keep_top(np.concatenate([p.topk for p in parts], axis=0), k)
    index = np.concatenate([p.index for p in parts])
    means = None
    if parts[0].means is not None:
        means = np.concatenate([p.means for p in parts], axis=0)
    return Partial(counts, topk, index, means)


# ---------------------------------------------------------------------------------------------
# The run description


ENGINES = ("auto", "multirate", "exact")


@dataclass(frozen=True, eq=False)
class MonteCarloSpec:
    """Everything one Monte Carlo run depends on (picklable; one per run).

    Parameters
    ----------
    grid : ScaleGrid
        Scale grid of the coherence being tested.
    null : NullModel
        Surrogate generator.
    n_samples : int
        Samples per surrogate.
    root : SeedSequence
        Surrogate ``i`` uses child ``i`` (:func:`surrogate_seed`).
    engine : {"multirate", "exact"}
    scale_kernel, boundary, dtype, remove_mean, tol :
        Coherence conventions (as for :mod:`bioxen_dask.kernels`).
    nbins : int
        Pooled histogram bins.
    interior : int or None
        Multirate engine: stationary interior per surrogate in units of scale (None: whole
        records at every scale).
    topk : int
        Values kept per point for per-(scale, time) thresholds (0: none).
    time_averaged : bool
        Keep every surrogate's time-averaged outside-COI coherence (for p-values).
    pooled : bool
        Accumulate pooled histograms.
    device : {"cpu", "gpu"}
        Where the surrogate pairs are transformed and histogrammed (``"gpu"``: CuPy on the
        task's current CUDA device; surrogates are still drawn on the host from the same
        seeds, and partials come back as NumPy).
    cwt_engine : str
        Exact engine: who computes the surrogates' transforms (:data:`bioxen_dask.engines.ENGINES`;
        default ``"bioxen"``, the native kernels). Others run on the host through
        :func:`bioxen_dask.engines.engine_cwt`, in pycwt's convention.
    """

    grid: ScaleGrid
    null: NullModel
    n_samples: int
    root: np.random.SeedSequence
    engine: str = "multirate"
    scale_kernel: str = "pycwt"
    boundary: str = "pycwt"
    dtype: str = "float32"
    remove_mean: bool = False
    tol: float = DEFAULT_TOL
    nbins: int = NBINS
    interior: int | None = DEFAULT_INTERIOR
    topk: int = 0
    time_averaged: bool = False
    pooled: bool = True
    device: str = "cpu"
    cwt_engine: str = "bioxen"

    @property
    def n_classes(self) -> int:
        return N_CLASSES if self.engine == "multirate" else 1

    def plan(self):
        """The (cached) multirate plan of this run."""
        return multirate_plan(self.grid, self.n_samples, self.boundary, self.scale_kernel, self.nbins,
                              self.interior)

    def class_weights(self) -> np.ndarray:
        """pycwt positions each counted point stands for, ``(n_scales, n_classes)``."""
        if self.engine == "multirate":
            return self.plan().class_weights
        return np.ones((self.grid.n_scales, 1))

    def memory_per_pair(self) -> int:
        """Peak working bytes of one surrogate pair inside a task."""
        n, S = self.n_samples, self.grid.n_scales
        rec = 2 * n * 8
        if self.engine == "multirate":
            return self.plan().bytes_per_pair + rec
        nfft = 2 ** math.ceil(math.log2(n)) if self.boundary == "pycwt" else 2 * n
        item = 8 if self.dtype == "float32" else 16
        # two CWTs + three smoothed spectra + temporaries of the smoother
        return rec + 10 * S * n * item + 4 * S * nfft * item

    def memory_per_task(self, batch_size: int) -> int:
        """Bytes a task of ``batch_size`` surrogate pairs holds at most (its result included)."""
        S, n = self.grid.n_scales, self.n_samples
        out = 0
        if self.pooled:
            out += S * self.n_classes * self.nbins * 8
        if self.topk:
            out += (self.topk + batch_size) * S * n * 4  # kept values + the batch's fields
        if self.time_averaged:
            out += batch_size * S * 8
        return int(self.memory_per_pair() + out)

    # -----------------------------------------------------------------------------------------
    def run(self, start: int, stop: int) -> Partial:
        """Compute surrogates ``start .. stop-1`` into a :class:`Partial`."""
        idx = np.arange(int(start), int(stop), dtype=np.int64)
        if self.engine == "multirate":
            return self._run_multirate(idx)
        return self._run_exact(idx)

    def _pair(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(surrogate_seed(self.root, int(i)))
        return self.null.pair(rng, self.n_samples)

    def _namespace(self):
        """NumPy, or CuPy with ``device='gpu'`` once one pair is known to fit on the device."""
        xp = device_namespace(self.device, "significance(device='gpu')")
        if xp is not np:  # pairs run one at a time: the device working set is one pair
            batch_size_for(self.memory_per_pair(), free_memory(xp), what="surrogate pair",
                           reduce="the surrogate length (largest period) or the number of scales")
        return xp

    def _run_multirate(self, idx: np.ndarray) -> Partial:
        plan = self.plan()
        xp = self._namespace()
        counts = xp.zeros(self.grid.n_scales * N_CLASSES * self.nbins, dtype=np.int64)
        for i in idx:
            y1, y2 = self._pair(i)
            plan.accumulate(xp.asarray(y1), xp.asarray(y2), counts)
        counts = to_numpy(counts)
        return Partial(counts.reshape(self.grid.n_scales, N_CLASSES, self.nbins), None, idx, None)

    def _transform(self, xp, kw: dict):
        """The CWT of one surrogate: the native kernels, or ``cwt_engine`` on the host."""
        if self.cwt_engine == "bioxen":
            return lambda y: cwt(y, self.grid, **kw)
        if xp is not np:
            raise ValueError(f"cwt_engine={self.cwt_engine!r} runs on the CPU only; use device='cpu' "
                             "or cwt_engine='bioxen' on a GPU.")
        from ..engines import engine_cwt
        from ..kernels import resolve_dtype

        cplx = resolve_dtype(self.dtype)[1]
        return lambda y: engine_cwt(y, self.grid, self.cwt_engine, **kw).astype(cplx, copy=False)

    def _run_exact(self, idx: np.ndarray) -> Partial:
        grid, n, nb = self.grid, self.n_samples, self.nbins
        S = grid.n_scales
        smoother = Smoother(grid, scale_kernel=self.scale_kernel, boundary=self.boundary, tol=self.tol)
        # valid: linear transforms, the smoother masks the maps (NaN-edged transforms would
        # leave no finite sample to count)
        kw = dict(boundary="linear" if self.boundary == "valid" else self.boundary, dtype=self.dtype,
                  remove_mean=self.remove_mean, tol=self.tol)
        xp = self._namespace()
        transform = self._transform(xp, kw)
        outside = xp.asarray(outside_coi_mask(grid, n))
        offsets = xp.asarray((np.arange(S, dtype=np.int64) * nb)[:, None])
        counts = xp.zeros(S * nb, dtype=np.int64) if self.pooled else None
        fields = [] if self.topk else None
        means = np.empty((idx.size, S)) if self.time_averaged else None
        for a, i in enumerate(idx):
            y1, y2 = (xp.asarray(y) for y in self._pair(i))
            R2, _ = coherence(transform(y1), transform(y2), smoother, clip=True, **_NO_PHASE)
            if counts is not None:  # histogram on the device; fields and means on the host
                ok = outside & xp.isfinite(R2)
                b = xp.minimum((xp.where(ok, R2, 0) * nb).astype(np.int64), nb - 1) + offsets
                counts += xp.bincount(b[ok], minlength=S * nb)
            R2 = to_numpy(R2)
            if fields is not None:
                fields.append(np.where(np.isfinite(R2), R2, -np.inf).astype(np.float32))
            if means is not None:
                means[a] = time_averaged_coherence(R2, grid)
        topk = _pad_top(_keep_top(np.stack(fields), self.topk), self.topk) if fields else None
        counts = to_numpy(counts).reshape(S, 1, nb) if counts is not None else None
        return Partial(counts, topk, idx, means)


# ---------------------------------------------------------------------------------------------
# The result


@dataclass(frozen=True, eq=False)
class SignificanceResult:
    """Monte Carlo null distribution of wavelet coherence and the thresholds read from it.

    Attributes
    ----------
    levels : ndarray, shape ``(n_levels,)``
    thresholds : ndarray, shape ``(n_levels, n_scales)``
        Pooled per-scale thresholds (pycwt's test); NaN for scales with no point outside
        the COI. ``None`` when pooled histograms were not collected.
    histogram : ndarray, shape ``(n_scales, nbins)``
        Pooled outside-COI histogram, in pycwt-equivalent counts.
    pointwise : ndarray, shape ``(n_levels, n_scales, n)`` or None
        Per-(scale, time) thresholds (data-length surrogates only).
    null_time_averaged : ndarray, shape ``(mc_count, n_scales)`` or None
        Each surrogate's time-averaged outside-COI coherence, by surrogate index.
    grid : ScaleGrid
    attrs : dict
        Provenance: method, null parameters, seed (entropy), counts, engine, memory per task.
    """

    levels: np.ndarray
    thresholds: np.ndarray | None
    histogram: np.ndarray | None
    pointwise: np.ndarray | None
    null_time_averaged: np.ndarray | None
    grid: ScaleGrid
    attrs: dict[str, Any] = field(default_factory=dict)

    def threshold(self, level: float = 0.95) -> np.ndarray:
        """Pooled thresholds at one of the computed levels (or any level, from the histogram)."""
        hit = np.nonzero(np.isclose(self.levels, level, rtol=0, atol=1e-12))[0]
        if hit.size and self.thresholds is not None:
            return self.thresholds[hit[0]]
        if self.histogram is None:
            raise ValueError("no pooled histogram was collected.")
        return levels_from_histograms(self.histogram, [level])[0]

    def pvalues(self, coherence: Any = None, *, time_averaged: Any = None) -> np.ndarray:
        """p-values of the time-averaged (outside-COI) coherence per scale.

        Parameters
        ----------
        coherence : array-like, shape ``(..., n_scales, n)``, optional
            The data's coherence, computed with the same conventions as the surrogates.
        time_averaged : array-like, shape ``(..., n_scales)``, optional
            Or its time averages (:func:`time_averaged_coherence`).

        Returns
        -------
        ndarray, shape ``(..., n_scales)``
            ``(1 + #{surrogates >= observed}) / (mc_count + 1)``.
        """
        if self.null_time_averaged is None:
            raise ValueError("this result has no null distribution of time-averaged coherence; "
                             "run with time_averaged=True (data-length surrogates).")
        if time_averaged is None:
            if coherence is None:
                raise ValueError("pass the data's coherence or its time averages.")
            coh = np.asarray(coherence)
            if coh.shape[-1] != self.attrs.get("n_samples", coh.shape[-1]):
                raise ValueError(f"the coherence has {coh.shape[-1]} samples but the surrogates "
                                 f"{self.attrs.get('n_samples')}: p-values need data-length surrogates.")
            time_averaged = time_averaged_coherence(coh, self.grid)
        return pvalues_from_null(self.null_time_averaged, time_averaged)

    def significant(self, coherence: Any, level: float = 0.95, *, pointwise: bool | None = None) -> np.ndarray:
        """Boolean map: coherence above the threshold (per point if available, else per scale)."""
        coh = np.asarray(coherence)
        use_pw = self.pointwise is not None if pointwise is None else pointwise
        hit = np.nonzero(np.isclose(self.levels, level, rtol=0, atol=1e-12))[0]
        if use_pw:
            if self.pointwise is None or not hit.size:
                raise ValueError(f"no per-point thresholds at level {level}.")
            thr = self.pointwise[hit[0]]
        else:
            thr = self.threshold(level)[:, None]
        with np.errstate(invalid="ignore"):
            return coh > thr

    def to_dataset(self):
        """An :class:`xarray.Dataset` with named dimensions and provenance attributes."""
        import json

        import xarray as xr

        g = self.grid
        coords = {"level": ("level", self.levels), "scale": ("scale", g.scales),
                  "period": ("scale", g.periods)}
        data = {}
        if self.thresholds is not None:
            data["threshold"] = (("level", "scale"), self.thresholds,
                                 {"long_name": "pooled coherence threshold (outside the COI)"})
        if self.histogram is not None:
            data["histogram"] = (("scale", "bin"), self.histogram,
                                 {"long_name": "pooled outside-COI coherence histogram"})
            coords["bin"] = ("bin", (np.arange(self.histogram.shape[1]) + 0.5) / self.histogram.shape[1])
        if self.pointwise is not None:
            data["pointwise_threshold"] = (("level", "scale", "time"), self.pointwise)
        if self.null_time_averaged is not None:
            data["null_time_averaged"] = (("surrogate", "scale"), self.null_time_averaged)
        attrs = {k: (json.dumps(v) if isinstance(v, (dict, list, tuple)) else v)
                 for k, v in self.attrs.items() if v is not None}
        return xr.Dataset(data, coords=coords, attrs=attrs)


def make_result(spec: MonteCarloSpec, merged: Partial, levels: np.ndarray, mc_count: int,
                attrs: dict[str, Any]) -> SignificanceResult:
    """The :class:`SignificanceResult` of ``spec`` from its merged partials."""
    histogram = thresholds = pointwise = null_means = None
    if merged.counts is not None:
        histogram = (merged.counts * spec.class_weights()[:, :, None]).sum(axis=1)
        thresholds = levels_from_histograms(histogram, levels)
    if merged.topk is not None:
        pointwise = pointwise_levels(merged.topk, mc_count, levels)
    if merged.means is not None:
        null_means = np.empty_like(merged.means)
        null_means[merged.index] = merged.means
    return SignificanceResult(levels, thresholds, histogram, pointwise, null_means, spec.grid, attrs)


def check_mc_count(mc_count: Any) -> int:
    """``mc_count`` as a positive whole number (a clear error otherwise)."""
    return whole_number(mc_count, "mc_count")
