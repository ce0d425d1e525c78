"""Public entry points of the Monte Carlo significance stage."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .._validation import whole_number
from ..engines import check_engine_options, require_engine
from ..grid import DEFAULT_TOL, ScaleGrid
from ._distributed import default_batch_size, run_specs
from ._montecarlo import (
    ENGINE_VERSION,
    ENGINES,
    NBINS,
    MonteCarloSpec,
    SignificanceResult,
    check_mc_count,
    levels_array,
    make_result,
    surrogate_length,
    topk_size,
)
from ._multirate import DEFAULT_INTERIOR
from ._surrogates import AR1Null, NullModel, as_seed_sequence

__all__ = ["surrogate_significance", "ar1_thresholds", "make_spec"]

_MULTIRATE_NULL_BOUNDARIES = ("pycwt", "linear")

_SHARED_DOC = """
    mc_count : int
        Number of surrogate pairs (default 300, as pycwt).
    levels : float or sequence of float
        Significance level(s), e.g. ``0.95`` or ``(0.95, 0.99)``.
    seed : int, SeedSequence or None
        Root seed; surrogate ``i`` draws from its child ``i``, so the result is bit-identical
        for any ``batch_size``, number of workers or threads. ``None`` draws fresh entropy
        (recorded in ``attrs["seed_entropy"]``, so the run can be repeated).
    scale_kernel : {"pycwt", "grinsted"}
        Scale smoothing of the coherence (must match the data's).
    boundary : {"pycwt", "linear", "symmetric", "circular", "valid"}
        Time boundary of the transforms (must match the data's). pycwt's test uses
        ``"pycwt"``. The ``multirate`` engine supports ``"pycwt"`` and ``"linear"``.
    engine : {"auto", "multirate", "exact"}
        ``multirate`` (pooled histograms only; band-limited, short records at small scales;
        fast), ``exact`` (every surrogate's full coherence field via
        :mod:`bioxen_dask.kernels`). ``auto`` picks ``multirate`` when it can. Known
        limit: with ``boundary="linear"``, ``multirate`` builds the smallest scales' wavelets
        and Gaussians in frequency, the data's coherence samples them in time; below about
        3 dt (where the wavelet reaches the Nyquist band) its thresholds come out too high
        (conservative: AR(1) noise exceeds the 95% threshold less than 5% of the time at
        periods of 2-2.8 dt); ``exact`` matches the data there (:func:`ar1_thresholds_many`,
        and so :func:`bioxen_dask.coherence` and pipelines, take those scales' thresholds from it).
    interior : int or None
        ``multirate`` only: stationary samples per surrogate and scale band, in units of the
        band's largest scale (default 512). Larger is more precise at small scales and
        slower; ``None`` transforms whole records at every scale (pycwt's precision per
        surrogate; ~10x slower).
    batch_size : int, optional
        Surrogate pairs per task (default: about 16 tasks, within 1 GiB per task). Does
        not change the result.
    scheduler : distributed.Client, str or None
        Where tasks run: a ``distributed.Client``; ``None`` for the active default client
        if there is one, else Dask's local threaded scheduler; or a name accepted by
        :func:`dask.compute` (``"threads"``, ``"sync"``, ``"processes"``). The library
        never creates a client.
    progress : bool
        Show progress (``distributed.progress`` on a client, tqdm locally)."""


def make_spec(
    grid: ScaleGrid,
    null: NullModel,
    *,
    mc_count: int,
    levels: Any = 0.95,
    seed: Any = 0,
    n_samples: int | None = None,
    pooled: bool = True,
    pointwise: bool = False,
    time_averaged: bool = False,
    scale_kernel: str = "pycwt",
    boundary: str = "pycwt",
    dtype: str = "float32",
    remove_mean: bool = False,
    engine: str = "auto",
    interior: int | None = DEFAULT_INTERIOR,
    nbins: int = NBINS,
    tol: float = DEFAULT_TOL,
    cwt_engine: str = "bioxen",
) -> MonteCarloSpec:
    """Validate options and build the :class:`MonteCarloSpec` of one run."""
    if not isinstance(grid, ScaleGrid):
        raise TypeError(f"grid must be a ScaleGrid (see bioxen_dask.grid.make_grid), got {type(grid).__name__}.")
    if not isinstance(null, NullModel):
        raise TypeError(f"null must be a NullModel (AR1Null, FourierNull, IAAFTNull), got {type(null).__name__}.")
    mc = check_mc_count(mc_count)
    lv = levels_array(levels)
    try:
        own_length = null.n_samples
    except ValueError:  # AR(1) without a length
        own_length = None
    if n_samples is None:
        if own_length is None and (pointwise or time_averaged):
            raise ValueError(
                "per-(scale, time) thresholds and time-averaged p-values need surrogates as long as "
                "the data: pass n_samples=len(data) (or AR1Null(g1, g2, length=len(data)))."
            )
        n_samples = surrogate_length(grid) if own_length is None else own_length
    else:
        try:
            n_samples = whole_number(n_samples, "n_samples", minimum=4)
        except ValueError:
            raise ValueError(f"surrogates need a whole number of at least 4 samples, got n_samples={n_samples!r}.") from None
        if own_length is not None and n_samples != own_length:
            raise ValueError(f"{type(null).__name__} surrogates have {own_length} samples, not n_samples={n_samples}.")
    n_samples = int(n_samples)
    if n_samples < 4:
        raise ValueError(f"surrogates need at least 4 samples, got n_samples={n_samples}.")
    if not pooled and not pointwise and not time_averaged:
        raise ValueError("nothing to compute: enable pooled, pointwise or time_averaged.")
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose one of {list(ENGINES)}.")
    cwt_engine = check_engine_options(cwt_engine, grid, str(boundary).lower())
    if cwt_engine != "bioxen":
        if engine == "multirate":
            raise ValueError(f"cwt_engine={cwt_engine!r} runs with the exact engine only; pass engine='exact' "
                             "(or 'auto'), or cwt_engine='bioxen' for the multirate engine.")
        require_engine(cwt_engine)  # fail here, with the install hint, not inside a task
        engine = "exact"
    nbins = whole_number(nbins, "nbins", minimum=2)
    if interior is not None:
        try:
            interior = whole_number(interior, "interior")
        except ValueError:
            raise ValueError(f"interior must be a positive integer or None, got {interior!r}.") from None
    needs_fields = pointwise or time_averaged
    dtype = str(np.dtype(dtype))
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}.")
    multirate_ok = not needs_fields and str(boundary).lower() in _MULTIRATE_NULL_BOUNDARIES and null.stationary
    if engine == "auto":
        engine = "multirate" if multirate_ok else "exact"
    elif engine == "multirate" and not multirate_ok:
        raise ValueError(
            "engine='multirate' computes pooled histograms only, for the 'pycwt' and 'linear' "
            "boundaries; use engine='exact' for per-time thresholds, time averages or other boundaries."
        )
    spec = MonteCarloSpec(
        grid=grid, null=null, n_samples=n_samples, root=as_seed_sequence(seed), engine=engine,
        scale_kernel=str(scale_kernel).lower(), boundary=str(boundary).lower(), dtype=dtype,
        remove_mean=bool(remove_mean), tol=float(tol), nbins=int(nbins),
        interior=None if interior is None else int(interior),
        topk=topk_size(mc, lv) if pointwise else 0, time_averaged=bool(time_averaged), pooled=bool(pooled),
        cwt_engine=cwt_engine,
    )
    if engine == "multirate" and remove_mean and spec.plan().dc_in_band:
        # the mean would reach the transform: only the exact engine removes it per record
        spec = MonteCarloSpec(**{**spec.__dict__, "engine": "exact"})
    return spec


def _attrs(spec: MonteCarloSpec, mc_count: int, batch_size: int) -> dict[str, Any]:
    return {
        **spec.null.describe(),
        "mc_count": int(mc_count),
        "n_samples": spec.n_samples,
        "seed_entropy": str(spec.root.entropy),
        "seed_spawn_key": list(spec.root.spawn_key),
        "engine": spec.engine,
        "cwt_engine": spec.cwt_engine,
        "engine_version": ENGINE_VERSION,
        "interior": spec.interior if spec.engine == "multirate" else None,
        "scale_kernel": spec.scale_kernel,
        "boundary": spec.boundary,
        "dtype": spec.dtype if spec.engine == "exact" else "float32",
        "nbins": spec.nbins,
        "batch_size": int(batch_size),
        "memory_per_task_bytes": spec.memory_per_task(batch_size),
        "grid": spec.grid.describe(),
    }


def surrogate_significance(
    grid: ScaleGrid,
    null: NullModel,
    *,
    mc_count: int = 300,
    levels: float | Sequence[float] = 0.95,
    seed: int | np.random.SeedSequence | None = 0,
    n_samples: int | None = None,
    pooled: bool = True,
    pointwise: bool = False,
    time_averaged: bool = False,
    scale_kernel: str = "pycwt",
    boundary: str = "pycwt",
    dtype: str = "float32",
    remove_mean: bool = False,
    engine: str = "auto",
    interior: int | None = DEFAULT_INTERIOR,
    nbins: int = NBINS,
    batch_size: int | None = None,
    scheduler: Any = None,
    progress: bool = False,
    cwt_engine: str = "bioxen",
) -> SignificanceResult:
    """Monte Carlo null distribution of wavelet coherence from surrogate pairs.

    Surrogate pairs are drawn from ``null``, transformed in batches (one task per batch,
    many surrogates per task), and reduced into pooled per-scale histograms of the
    coherence outside the cone of influence (pycwt's/Grinsted's test), optionally the
    largest values at every (scale, time) point (per-point thresholds) and every
    surrogate's time-averaged coherence (p-values). Partial results merge exactly in a
    tree, so the result is bit-identical whatever the batching and the number of workers.

    Parameters
    ----------
    grid : ScaleGrid
        Scale grid of the coherence being tested.
    null : NullModel
        :class:`AR1Null`, :class:`FourierNull` or :class:`IAAFTNull`.
    n_samples : int, optional
        Samples per surrogate. Default: the null's own length (the traces' for Fourier
        surrogates, ``AR1Null(length=)``), else pycwt's ``ceil(6 * largest scale / dt)``.
        Per-point thresholds and p-values are only meaningful for surrogates as long as the
        data (their edge effects must match the data's).
    pooled : bool
        Pooled per-scale thresholds (default True).
    pointwise : bool
        Per-(scale, time) thresholds (exact engine; memory per task grows with
        ``mc_count * (1 - min(levels)) * n_scales * n_samples``).
    time_averaged : bool
        Keep each surrogate's time-averaged outside-COI coherence, for
        :meth:`SignificanceResult.pvalues` (exact engine).
    dtype : {"float32", "float64"}
        Precision of the exact engine. The multirate engine always works in float32 (its
        rounding, ~1e-6 in coherence, is far below the 1/nbins histogram resolution), so
        ``dtype`` does not change its result.
    remove_mean : bool
        Remove each surrogate's mean before transforming (Grinsted preset).
    nbins : int
        Bins of the pooled histograms on [0, 1] (default 1000, as pycwt).
    cwt_engine : {"bioxen", "pycwt", "pywavelets", "ssqueezepy", "fcwt"}
        Who computes the surrogates' transforms (default ``"bioxen"``). Another engine
        (:func:`bioxen_dask.engines.engine_cwt`, pycwt's convention, Morlet grids, boundary
        ``"pycwt"`` or ``"linear"``) forces ``engine="exact"``; the result is still
        reproducible from ``seed``.
    {shared}

    Returns
    -------
    SignificanceResult
        ``thresholds`` ``(n_levels, n_scales)``, ``pointwise`` ``(n_levels, n_scales, n)``,
        ``null_time_averaged`` ``(mc_count, n_scales)``, ``histogram`` and ``attrs``
        (including ``memory_per_task_bytes``).

    Notes
    -----
    Memory per task is ``spec.memory_per_task(batch_size)`` and is recorded in
    ``attrs``: about 13 MiB per task for the multirate engine on the 159-scale grid of an
    18,000-sample trace (independent of the batch size), and
    ``~14 * n_scales * n_samples * 8`` bytes per pair for the exact engine.

    Examples
    --------
    >>> from bioxen_dask.grid import make_grid
    >>> from bioxen_dask.significance import AR1Null, surrogate_significance
    >>> grid = make_grid(128, 1.0, dj=0.25)
    >>> res = surrogate_significance(grid, AR1Null(0.5, 0.3), mc_count=20, levels=(0.95, 0.99),
    ...                              seed=1, scheduler="sync")
    >>> res.thresholds.shape
    (2, 25)
    >>> bool(np.all(res.thresholds[1][:20] >= res.thresholds[0][:20]))
    True
    """
    spec = make_spec(
        grid, null, mc_count=mc_count, levels=levels, seed=seed, n_samples=n_samples, pooled=pooled,
        pointwise=pointwise, time_averaged=time_averaged, scale_kernel=scale_kernel, boundary=boundary,
        dtype=dtype, remove_mean=remove_mean, engine=engine, interior=interior, nbins=nbins,
        cwt_engine=cwt_engine,
    )
    mc = int(mc_count)
    bs = default_batch_size(spec, mc) if batch_size is None else whole_number(batch_size, "batch_size")
    (merged,) = run_specs([(spec, mc, bs)], scheduler=scheduler, progress=progress)
    return make_result(spec, merged, levels_array(levels), mc, _attrs(spec, mc, bs))


surrogate_significance.__doc__ = surrogate_significance.__doc__.replace("    {shared}", _SHARED_DOC.strip("\n"))


def ar1_thresholds(
    grid: ScaleGrid,
    g1: float,
    g2: float,
    *,
    mc_count: int = 300,
    levels: float | Sequence[float] = 0.95,
    seed: int | np.random.SeedSequence | None = 0,
    n_samples: int | None = None,
    batch_size: int | None = None,
    scheduler: Any = None,
    progress: bool = False,
    **options: Any,
) -> np.ndarray:
    """Per-scale coherence thresholds against AR(1) red noise (pycwt/Grinsted's test).

    Pairs of independent AR(1) surrogates with coefficients ``g1`` and ``g2``, of pycwt's
    length ``ceil(6 * largest scale / dt)`` by default; coherence outside the COI pooled per
    scale into 1000 bins; levels read off by interpolation, as pycwt.

    Parameters
    ----------
    grid : ScaleGrid
    g1, g2 : float
        AR(1) coefficients of the two null processes, in ``(-1, 1)``.
    n_samples : int, optional
        Surrogate length (default pycwt's). Pass the data length to match the data's edge
        effects exactly: pycwt-length surrogates are dominated by points far from the record
        ends, while at the few largest scales of the data every outside-COI point is near an
        end, where coherence runs higher. Measured on independent AR(1) pairs of 256 samples
        (dj=1/4, 1000 surrogates): pycwt-length thresholds are exceeded at 12%, 18% and 22% of
        the points of the three largest valid scales instead of 5% (5% overall), data-length
        thresholds at 5-7% everywhere.
    {shared}
    **options
        ``scale_kernel``, ``boundary``, ``engine``, ``interior``, ``nbins``, ``dtype``,
        ``remove_mean`` (see :func:`surrogate_significance`).

    Returns
    -------
    ndarray
        ``(n_scales,)`` for a scalar level, else ``(n_levels, n_scales)``. NaN where a scale
        has no point outside the COI.

    Examples
    --------
    >>> from bioxen_dask.grid import make_grid
    >>> thr = ar1_thresholds(make_grid(128, 1.0, dj=0.25), 0.6, 0.2, mc_count=20, seed=0)
    >>> thr.shape, bool(0 < thr[0] < 1)
    ((25,), True)
    """
    res = surrogate_significance(
        grid, AR1Null(g1, g2), mc_count=mc_count, levels=levels, seed=seed, n_samples=n_samples,
        batch_size=batch_size, scheduler=scheduler, progress=progress, **options,
    )
    return res.thresholds[0] if np.ndim(levels) == 0 else res.thresholds


ar1_thresholds.__doc__ = ar1_thresholds.__doc__.replace("    {shared}", _SHARED_DOC.strip("\n"))
