"""An on-disk cache of AR(1) Monte Carlo null distributions, shared by every roi pair.

The AR(1) test depends on the data only through the two AR(1) coefficients. Coefficients
are bucketed (:func:`ar1_bucket`, uniform in ``atanh(g)``) and each bucket is represented by
its centre, so 10,000 rois tested against one reference need one Monte Carlo run per
*bucket pair* that occurs (a few dozen), not one per roi; :func:`ar1_thresholds_many` runs
the missing ones concurrently in one Dask graph.

What is stored is the pooled per-scale histogram of the null coherence (Zarr, one group per
entry, written to a temporary name and renamed, so a crash never leaves a half entry), keyed
by a digest of *every* input of the Monte Carlo run: both (bucketed) coefficients, the scale
grid (dt, every scale, dj, mother wavelet and its parameters), the conventions (scale
kernel, boundary, dtype, mean removal), the surrogate length and count, the seed, the
histogram bins, the engine and its version (and the transform engine and spectral tolerance
where they are not the defaults). Each entry also stores a SHA-256 digest of its histogram,
checked on every read: an entry that is unreadable, has the wrong shape or whose numbers do
not match the digest (a lost chunk reads back as the fill value) is deleted and recomputed,
never used. The significance *level* is deliberately not
part of the key: it is not an input of the Monte Carlo run but of reading levels off its
histogram, so one cached run serves 0.95, 0.99 or any other level exactly as a fresh run
with the same seed would (pycwt's cache key, by contrast, ignores ``mc_count`` and the
level, and is NaN for coefficients above 0.25).

Bucketing bias
--------------
A roi whose coefficient ``g`` lies inside a bucket is tested against the bucket centre's
null. The threshold's sensitivity to ``g`` was measured with common random numbers by
``python -m bioxen_dask.bench.significance --bucket-bias --surrogates 150`` (159-scale grid of an
18,000-sample 30 Hz trace, pycwt geometry, other coefficient 0.5): for the default width 0.1
the largest threshold shift, over all scales, between a bucket centre and its edge
(``|atanh(g) - centre| = 0.05``) is {bias} in coherence: 0.0022 at g = 0, 0.0023 at 0.5,
0.0025 at 0.8, 0.0042 at 0.9 and 0.0061 at 0.95 (the measurement's own noise floor, from
histogram binning, is ~0.002). For comparison, the Monte Carlo standard error of the
thresholds themselves on that grid (300 surrogates, jackknife over 15 groups) is
0.0013-0.0023 at periods up to 10 s, 0.004-0.009 at 1-5 min and 0.017 at the largest
periods. So for ``g <= 0.8`` bucketing costs about one standard error at the most precise
scales and nothing visible elsewhere; near ``g = 0.95`` it reaches three, and a width of
0.05 is advisable there. To first order the shift is proportional to the width (pycwt's
implicit width, 0.25, would give about 2.5 times as much).

The default directory is ``$BIOXEN_DASK_CACHE`` or ``~/.cache/bioxen-dask/thresholds``;
pass ``cache=ThresholdCache(directory)`` to keep it next to an analysis' outputs.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import uuid
from functools import partial
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..grid import DEFAULT_TOL, ScaleGrid
from ._api import make_spec
from ._distributed import default_batch_size, run_specs
from ._montecarlo import ENGINE_VERSION, levels_array, levels_from_histograms
from ._surrogates import AR1Null, as_seed_sequence

__all__ = [
    "DEFAULT_BUCKET_WIDTH",
    "ThresholdCache",
    "ar1_bucket",
    "ar1_thresholds_many",
    "bucket_centre",
    "cache_dir",
    "cached_ar1_thresholds",
    "threshold_key",
]

#: Default AR(1) bucket width in ``atanh(g)`` (see the module notes for the bias it implies).
DEFAULT_BUCKET_WIDTH = 0.1
#: Largest threshold shift (coherence) between a bucket centre and its edge at the default width,
#: for g <= 0.95, measured by ``python -m bioxen_dask.bench.significance --bucket-bias --surrogates 150``.
MEASURED_BUCKET_BIAS = "at most 0.006"

__doc__ = __doc__.replace("{bias}", MEASURED_BUCKET_BIAS)


def cache_dir() -> Path:
    """``$BIOXEN_DASK_CACHE`` or ``~/.cache/bioxen-dask/thresholds``."""
    root = os.environ.get("BIOXEN_DASK_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "bioxen-dask" / "thresholds"


def ar1_bucket(g: Any, width: float = DEFAULT_BUCKET_WIDTH) -> Any:
    """Bucket index of AR(1) coefficients: ``round(atanh(g) / width)``.

    Uniform in ``atanh(g)``, so buckets are narrow where thresholds change fastest (``g``
    near 1) and wide near 0.

    Parameters
    ----------
    g : float or array-like
        AR(1) coefficients in ``(-1, 1)``.
    width : float
        Bucket width in ``atanh(g)``.

    Returns
    -------
    int or ndarray of int64
        Bucket indices.

    Examples
    --------
    >>> int(ar1_bucket(0.5)), round(bucket_centre(ar1_bucket(0.5)), 4)
    (5, 0.4621)
    """
    g = np.asarray(g, dtype=float)
    if np.any(~np.isfinite(g)) or np.any(np.abs(g) >= 1):
        raise ValueError("AR(1) coefficients must be finite and in (-1, 1).")
    if not (width > 0 and math.isfinite(width)):
        raise ValueError(f"bucket width must be a positive number, got {width!r}.")
    b = np.rint(np.arctanh(g) / width).astype(np.int64)
    return b if b.ndim else int(b)


def bucket_centre(index: Any, width: float = DEFAULT_BUCKET_WIDTH) -> Any:
    """Representative coefficient of a bucket: ``tanh(index * width)``.

    Parameters
    ----------
    index : int or array-like
        Bucket indices (:func:`ar1_bucket`).
    width : float
        Bucket width in ``atanh(g)``.

    Returns
    -------
    float or ndarray
        The bucket centres.
    """
    c = np.tanh(np.asarray(index, dtype=float) * width)
    return c if c.ndim else float(c)


def _grid_desc(grid: ScaleGrid) -> dict[str, Any]:
    return {"dt": grid.dt, "dj": grid.dj, "scales": [float(s) for s in grid.scales],
            "wavelet": grid.wavelet.describe()}


def _digest(histogram: np.ndarray) -> str:
    a = np.ascontiguousarray(histogram, dtype=np.float64)
    return hashlib.sha256(str(a.shape).encode() + a.tobytes()).hexdigest()


def _expected_shape(desc: dict[str, Any]) -> tuple[int, int]:
    return len(desc["grid"]["scales"]), int(desc["nbins"])


#: Options of :func:`ar1_thresholds_many` passed on to the Monte Carlo run (all in the key).
_RUN_OPTIONS = ("scale_kernel", "boundary", "engine", "interior", "nbins", "dtype", "remove_mean",
                "cwt_engine", "tol")


def threshold_key(desc: dict[str, Any]) -> str:
    """Stable hex digest of a JSON-able description of every input."""
    blob = json.dumps(desc, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


class ThresholdCache:
    """A directory of cached null histograms, with hit/miss counters.

    Parameters
    ----------
    directory : path, optional
        Where entries live (default :func:`cache_dir`).

    Attributes
    ----------
    hits, misses : int
        Lookups answered from disk / not found.
    computed : int
        Monte Carlo runs executed because of misses.

    Examples
    --------
    >>> import tempfile
    >>> from bioxen_dask.grid import make_grid
    >>> cache = ThresholdCache(tempfile.mkdtemp())
    >>> g = make_grid(64, 1.0, dj=0.5)
    >>> a = cached_ar1_thresholds(g, 0.3, 0.5, mc_count=10, cache=cache, scheduler="sync")
    >>> b = cached_ar1_thresholds(g, 0.31, 0.49, mc_count=10, cache=cache, scheduler="sync")
    >>> (cache.hits, cache.misses, cache.computed), bool(np.array_equal(a, b, equal_nan=True))
    ((1, 1, 1), True)
    """

    def __init__(self, directory: str | os.PathLike | None = None) -> None:
        self.directory = Path(directory) if directory is not None else cache_dir()
        self.hits = 0
        self.misses = 0
        self.computed = 0

    def path(self, desc: dict[str, Any]) -> Path:
        return self.directory / f"coherence-null-{threshold_key(desc)}.zarr"

    def load(self, desc: dict[str, Any]) -> np.ndarray | None:
        """The stored histogram for exactly ``desc``, or None (counts a hit or a miss).

        An entry that cannot be read, has the wrong shape, or whose histogram does not match
        the digest stored with it, is deleted (and so recomputed by the caller).
        """
        path = self.path(desc)
        if path.exists():
            valid = False
            try:
                import xarray as xr

                with xr.open_zarr(path, consolidated=False) as ds:
                    if ds.attrs.get("description") == json.dumps(desc, sort_keys=True, default=str):
                        hist = np.asarray(ds["histogram"].values, dtype=np.float64)
                        stored = ds.attrs.get("histogram_sha256")
                        valid = (hist.shape == _expected_shape(desc) and bool(np.isfinite(hist).all())
                                 and stored == json.dumps(_digest(hist)))
                        if valid:
                            self.hits += 1
                            return hist
            except Exception:  # unreadable entry
                valid = False
            if not valid:  # damaged or incomplete: drop it, the caller recomputes and stores it again
                shutil.rmtree(path, ignore_errors=True)
        self.misses += 1
        return None

    def store(self, desc: dict[str, Any], histogram: np.ndarray, attrs: dict[str, Any] | None = None) -> Path:
        """Write an entry atomically (temporary name, then rename)."""
        import xarray as xr

        path = self.path(desc)
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".tmp-{uuid.uuid4().hex[:8]}")
        histogram = np.asarray(histogram, dtype=np.float64)
        if histogram.shape != _expected_shape(desc):
            raise ValueError(f"histogram of shape {histogram.shape} does not match the description "
                             f"{_expected_shape(desc)} (scales, bins).")
        ds = xr.Dataset(
            {"histogram": (("scale", "bin"), histogram)},
            coords={"scale": desc["grid"]["scales"]},
            attrs={"description": json.dumps(desc, sort_keys=True, default=str),
                   **{k: json.dumps(v, default=str) for k, v in {**(attrs or {}),
                                                                 "histogram_sha256": _digest(histogram)}.items()}},
        )
        try:
            ds.to_zarr(tmp, mode="w", consolidated=False)
            try:
                os.rename(tmp, path)
            except OSError:  # another process stored it first: keep theirs
                pass
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return path


def _resolve_cache(cache: ThresholdCache | str | os.PathLike | None) -> ThresholdCache:
    if isinstance(cache, ThresholdCache):
        return cache
    return ThresholdCache(cache)


def _description(spec, mc_count: int) -> dict[str, Any]:
    desc = {
        "kind": "coherence-null/ar1/pooled",
        "g": [spec.null.g1, spec.null.g2],
        "grid": _grid_desc(spec.grid),
        "scale_kernel": spec.scale_kernel,
        "boundary": spec.boundary,
        "dtype": spec.dtype if spec.engine == "exact" else "float32",  # multirate: always float32
        "remove_mean": spec.remove_mean,
        "n_samples": spec.n_samples,
        "mc_count": int(mc_count),
        "seed": {"entropy": str(spec.root.entropy), "spawn_key": list(spec.root.spawn_key)},
        "nbins": spec.nbins,
        "engine": spec.engine,
        "engine_version": ENGINE_VERSION,
        "interior": spec.interior if spec.engine == "multirate" else None,
    }
    # inputs added later: only where they differ from the defaults, so existing keys still hold
    if spec.cwt_engine != "bioxen":
        desc["cwt_engine"] = spec.cwt_engine
    if spec.engine == "exact" and spec.tol != DEFAULT_TOL:  # the multirate engine has its own
        desc["tol"] = spec.tol
    return desc


def ar1_thresholds_many(
    grid: ScaleGrid,
    g1: Any,
    g2: Any,
    *,
    levels: float | Sequence[float] = 0.95,
    mc_count: int = 300,
    seed: int | np.random.SeedSequence = 0,
    bucket_width: float | None = DEFAULT_BUCKET_WIDTH,
    cache: ThresholdCache | str | os.PathLike | None = None,
    n_samples: int | None = None,
    batch_size: int | None = None,
    scheduler: Any = None,
    progress: bool = False,
    **options: Any,
) -> np.ndarray:
    """AR(1) coherence thresholds for many pairs, one Monte Carlo run per bucket pair.

    Coefficients are bucketed (:func:`ar1_bucket`) and replaced by their bucket centres;
    each distinct (unordered) bucket pair is looked up in the cache, and all missing ones
    are computed together in one Dask graph (so 10,000 rois against one reference cost as
    many runs as there are distinct buckets among them), then stored.

    Parameters
    ----------
    grid : ScaleGrid
    g1, g2 : array-like
        AR(1) coefficients of the two signals of each pair (broadcast together).
    levels : float or sequence of float
    mc_count, seed, n_samples, batch_size, scheduler, progress :
        As for :func:`bioxen_dask.significance.ar1_thresholds`; ``seed`` must be fixed (an
        int or SeedSequence) for results to be cacheable.
    bucket_width : float or None
        Width in ``atanh(g)`` (default 0.1). ``None`` uses the coefficients as given (no
        sharing between different coefficients).
    cache : ThresholdCache or path, optional
        Default: a :class:`ThresholdCache` in :func:`cache_dir`.
    **options
        ``scale_kernel``, ``boundary``, ``engine``, ``interior``, ``nbins``, ... With
        ``boundary="linear"`` and ``engine="auto"`` (the default), the smallest scales whose
        wavelets reach the Nyquist band (:func:`~bioxen_dask.significance._multirate.broadband_scales`)
        take their thresholds from the exact engine, run on those scales and the neighbours
        their scale smoothing reaches; the others from the fast multirate engine.

    Returns
    -------
    ndarray, shape ``broadcast(g1, g2).shape + (n_scales,)`` for a scalar level, else
    ``broadcast.shape + (n_levels, n_scales)``.

    Examples
    --------
    >>> import tempfile
    >>> from bioxen_dask.grid import make_grid
    >>> cache = ThresholdCache(tempfile.mkdtemp())
    >>> rois = np.linspace(0.1, 0.3, 50)
    >>> thr = ar1_thresholds_many(make_grid(64, 1.0, dj=0.5), 0.5, rois, mc_count=10,
    ...                           cache=cache, scheduler="sync")
    >>> thr.shape, cache.computed   # 50 rois, 3 distinct buckets among them
    ((50, 11), 3)
    """
    if seed is None:
        raise ValueError("cached thresholds need a fixed seed (an int or SeedSequence), not None.")
    unknown = sorted(set(options) - set(_RUN_OPTIONS))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for cached AR(1) thresholds; the options are "
                         f"{list(_RUN_OPTIONS)} (pooled thresholds only: per-point thresholds and "
                         "p-values come from surrogate_significance).")
    run = partial(_thresholds_many, g1=g1, g2=g2, levels=levels, mc_count=mc_count, seed=seed,
                  bucket_width=bucket_width, cache=cache, n_samples=n_samples, batch_size=batch_size,
                  scheduler=scheduler, progress=progress)
    out = run(grid, **options)
    broadband = exact_engine_scales(grid, **options)
    if broadband:
        from ..kernels._smooth import scale_kernel

        reach = (len(scale_kernel(options.get("scale_kernel", "pycwt"), grid)) - 1) // 2
        sub = ScaleGrid(grid.dt, tuple(grid.scales[: min(grid.n_scales, broadband + reach)]), grid.dj, grid.wavelet)
        out[..., :broadband] = run(sub, **{**options, "engine": "exact"})[..., :broadband]
    return out


def exact_engine_scales(grid: ScaleGrid, **options: Any) -> int:
    """How many of ``grid``'s smallest scales :func:`ar1_thresholds_many` takes from the exact
    engine with these run options (0 unless ``boundary="linear"`` and ``engine="auto"``)."""
    from ._multirate import broadband_scales

    if (str(options.get("boundary", "pycwt")).lower() != "linear" or options.get("engine", "auto") != "auto"
            or options.get("cwt_engine", "bioxen") != "bioxen"):
        return 0
    return broadband_scales(grid)


def _thresholds_many(grid: ScaleGrid, *, g1: Any, g2: Any, levels: Any, mc_count: int, seed: Any,
                     bucket_width: float | None, cache: Any, n_samples: int | None, batch_size: int | None,
                     scheduler: Any, progress: bool, **options: Any) -> np.ndarray:
    """:func:`ar1_thresholds_many` on one engine choice (``options`` as given)."""
    lv = levels_array(levels)
    store = _resolve_cache(cache)
    G1, G2 = np.broadcast_arrays(np.asarray(g1, dtype=float), np.asarray(g2, dtype=float))
    if bucket_width is None:
        c1, c2 = G1, G2
    else:
        c1 = np.asarray(bucket_centre(ar1_bucket(G1, bucket_width), bucket_width))
        c2 = np.asarray(bucket_centre(ar1_bucket(G2, bucket_width), bucket_width))
    lo, hi = np.minimum(c1, c2), np.maximum(c1, c2)
    pairs = sorted({(float(a), float(b)) for a, b in zip(lo.ravel(), hi.ravel())})
    root = as_seed_sequence(seed)
    hists: dict[tuple[float, float], np.ndarray] = {}
    jobs, pending = [], []
    for pair in pairs:
        spec = make_spec(grid, AR1Null(*pair), mc_count=mc_count, levels=lv, seed=root,
                         n_samples=n_samples, **options)
        desc = _description(spec, mc_count)
        hist = store.load(desc)
        if hist is not None:
            hists[pair] = hist
            continue
        bs = default_batch_size(spec, int(mc_count)) if batch_size is None else int(batch_size)
        jobs.append((spec, int(mc_count), bs))
        pending.append((pair, spec, desc, bs))
    if jobs:
        merged = run_specs(jobs, scheduler=scheduler, progress=progress,
                           desc=f"coherence significance ({len(jobs)} AR(1) bucket pairs)")
        for (pair, spec, desc, bs), part in zip(pending, merged):
            hist = (part.counts * spec.class_weights()[:, :, None]).sum(axis=1)
            store.store(desc, hist, {"memory_per_task_bytes": spec.memory_per_task(bs)})
            store.computed += 1
            hists[pair] = hist
    table = {p: levels_from_histograms(h, lv) for p, h in hists.items()}
    out = np.empty(lo.shape + (lv.size, grid.n_scales))
    for index in np.ndindex(lo.shape):
        out[index] = table[(float(lo[index]), float(hi[index]))]
    return out[..., 0, :] if np.ndim(levels) == 0 else out


def cached_ar1_thresholds(
    grid: ScaleGrid,
    g1: float,
    g2: float,
    *,
    levels: float | Sequence[float] = 0.95,
    mc_count: int = 300,
    seed: int | np.random.SeedSequence = 0,
    bucket_width: float | None = DEFAULT_BUCKET_WIDTH,
    cache: ThresholdCache | str | os.PathLike | None = None,
    **kwargs: Any,
) -> np.ndarray:
    """AR(1) thresholds of one pair through the cache (see :func:`ar1_thresholds_many`).

    Parameters
    ----------
    grid : ScaleGrid
        Scale grid of the coherence being tested.
    g1, g2 : float
        AR(1) coefficients of the two signals.
    levels, mc_count, seed, bucket_width, cache :
        As for :func:`ar1_thresholds_many`.
    **kwargs
        ``n_samples``, ``batch_size``, ``scheduler``, ``progress`` and the run options of
        :func:`ar1_thresholds_many`.

    Returns
    -------
    ndarray
        ``(n_scales,)`` for a scalar level, else ``(n_levels, n_scales)``.
    """
    return ar1_thresholds_many(grid, g1, g2, levels=levels, mc_count=mc_count, seed=seed,
                               bucket_width=bucket_width, cache=cache, **kwargs)

