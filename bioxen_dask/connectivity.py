"""Connectivity matrices from all-pairs coherence: ``(roi_i, roi_j, period)`` and per band.

:func:`bioxen_dask.coherence` returns one row per pair (the pair-list layout, also that of list
mode). :func:`connectivity` lays an all-pairs result out as square matrices a neuroscientist
can use directly: ``coherence_mean``, ``phase_consistency``, ``significant_fraction`` and
``p_value`` symmetric; ``phase_mean`` and ``lag`` antisymmetric (``lag[i, j]`` > 0 when roi
``i`` leads roi ``j``, the convention of :data:`bioxen_dask.coherence.LAG_CONVENTION`). On
the diagonal a roi with itself: coherence and phase consistency 1, phase and lag 0,
significant fraction and p-value NaN (not tested). Pairs absent from the input (list mode)
are NaN.

Bands (``bands={"slow": (5, 30)}``, periods in seconds, both ends included) reduce the
periods of each band, weighted by the samples outside the cone of influence behind each
period's mean (``coi_samples``), so a band's ``coherence_mean`` is the mean coherence over
every (period, time) point of the band outside the COI; its phase is the circular mean of the
periods' mean phasors (``phase_consistency`` its length), its lag that phase at the band's
geometric mid-period, its ``significant_fraction`` the share of its points above threshold.

The matrices stay lazy (dask), in blocks of rois; :func:`write_connectivity` writes them to
Zarr by strips of rows (each task its own region, the result marked complete last) and
:func:`band_matrix` reads one band's matrix back (or reduces a new band on the fly).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr

__all__ = ["SYMMETRIC", "ANTISYMMETRIC", "band_matrix", "connectivity", "write_connectivity"]

#: Variables with ``M[i, j] == M[j, i]``.
SYMMETRIC = ("coherence_mean", "phase_consistency", "significant_fraction", "p_value")
#: Variables with ``M[i, j] == -M[j, i]``.
ANTISYMMETRIC = ("phase_mean", "lag")
_DIAGONAL = {"coherence_mean": 1.0, "phase_consistency": 1.0, "phase_mean": 0.0, "lag": 0.0}
#: Largest matrix block (bytes of one variable) one task fills.
_BLOCK_BYTES = 64 * 2**20


def _block_of(pairs: xr.Dataset, n: int, J: int, block: int | None) -> int:
    if block is not None:
        return max(1, int(block))
    tile = int(pairs.attrs.get("all_pairs_tile", 0)) or 64
    k = max(1, int(np.sqrt(_BLOCK_BYTES / 4 / max(1, J))) // tile)
    return min(n, tile * k)


def _fill(chunks: list[np.ndarray], where: list[tuple[np.ndarray, ...]], shape: tuple[int, int, int],
          sign: float, diagonal: float | None, offset: tuple[int, int]) -> np.ndarray:
    """One matrix block from the pair chunks it needs: ``where[c] = (pos, r, q, flip)``."""
    out = np.full(shape, np.nan, dtype=np.float32)
    for values, (pos, r, q, flip) in zip(chunks, where):
        v = np.asarray(values)[pos].astype(np.float32)
        out[r, q] = np.where(flip[:, None], sign * v, v)
    if diagonal is not None:
        i0, j0 = offset
        d = np.arange(max(i0, j0), min(i0 + shape[0], j0 + shape[1]))
        out[d - i0, d - j0] = diagonal
    return out


def connectivity(pairs: xr.Dataset, *, bands: Mapping[str, tuple[float, float]] | None = None,
                 block: int | None = None) -> xr.Dataset:
    """All-pairs coherence as ``(roi_i, roi_j, period)`` matrices (and ``(band, roi_i, roi_j)``).

    Parameters
    ----------
    pairs : xarray.Dataset
        A pair-list result of :func:`bioxen_dask.coherence` (``all_pairs=True``, or a list of
        pairs: missing pairs are NaN), lazy or computed, or its store opened with
        :func:`bioxen_dask.datasets.open_result`.
    bands : mapping of name to (min_period, max_period), optional
        Period bands (seconds, ends included) to reduce; each must hold at least one period.
    block : int, optional
        Rois per matrix block (one task each); default a multiple of the all-pairs tile with
        blocks of at most 64 MiB per variable.

    Returns
    -------
    xarray.Dataset
        Lazy float32 variables ``coherence_mean``, ``phase_mean``, ``phase_consistency``,
        ``lag`` and, when the input has them, ``significant_fraction`` and ``p_value`` on
        ``(roi_i, roi_j, period)``; per band the same names with ``_band`` on
        ``(band, roi_i, roi_j)`` (no ``p_value_band``). Coordinates: ``roi_i``/``roi_j``
        (roi ids), ``index`` (positions in the signals), ``period``, ``band_min_period``,
        ``band_max_period``, ``band_period`` (geometric mid-period, the lag's).

    Raises
    ------
    ValueError
        Not a pair-list result (reference mode, or no ``index_a``/``index_b``), or an empty
        or unknown band.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from bioxen_dask import coherence
    >>> t = np.arange(2000) / 10
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((3, t.size))
    >>> x[1] += 2 * np.sin(2 * np.pi * t / 4)
    >>> x[2] += 2 * np.sin(2 * np.pi * (t - 0.5) / 4)
    >>> sig = xr.DataArray(x, dims=("roi", "time"), coords={"time": t})
    >>> ds = coherence(sig, all_pairs=True, min_period=1, max_period=20, significance=None)
    >>> conn = connectivity(ds, bands={"4 s": (3, 5)}).compute()
    >>> m = conn.coherence_mean_band.sel(band="4 s").values
    >>> bool(m[1, 2] > 0.8 > m[0, 1]), bool(np.allclose(m, m.T))
    (True, True)
    >>> round(float(conn.lag_band.sel(band="4 s")[1, 2]), 1)  # roi 1 leads roi 2 by 0.5 s
    0.5
    """
    if "pair" not in pairs.dims or "index_a" not in pairs.coords or "index_b" not in pairs.coords:
        raise ValueError("connectivity needs a pair-list result of coherence() (all_pairs=True or pairs=...), "
                         "with index_a/index_b coordinates.")
    ia = np.asarray(pairs.index_a.values, np.int64)
    ib = np.asarray(pairs.index_b.values, np.int64)
    if (ib < 0).any():
        raise ValueError("connectivity is for roi-roi pairs; a reference-mode result has one roi per row already.")
    positions, first = np.unique(np.concatenate([ia, ib]), return_index=True)
    ids = np.concatenate([pairs.roi_a.values, pairs.roi_b.values])[first]
    I, Jq = np.searchsorted(positions, ia), np.searchsorted(positions, ib)
    n, J = positions.size, pairs.sizes["period"]
    size = _block_of(pairs, n, J, block)
    starts = list(range(0, n, size))
    names = [v for v in (*SYMMETRIC, *ANTISYMMETRIC) if v in pairs.data_vars]
    arrays = {v: pairs[v].data if isinstance(pairs[v].data, da.Array) else da.from_array(pairs[v].values,
              chunks=(max(1, pairs.sizes["pair"]), J)) for v in names}
    bounds = np.cumsum((0,) + next(iter(arrays.values())).chunks[0])
    chunk_of = np.searchsorted(bounds, np.arange(len(ia)), side="right") - 1
    nb, nc = len(starts), len(bounds) - 1
    # per block (a, b): the pair positions that land in it, by chunk: straight (row I, column J)
    # and flipped (row J, column I)
    where: dict[tuple[int, int], list] = {}
    for flip, (r, q) in enumerate(((I, Jq), (Jq, I))):
        key = ((r // size) * nb + q // size) * nc + chunk_of
        order = np.argsort(key, kind="stable")
        cuts = np.flatnonzero(np.diff(key[order])) + 1
        for g in np.split(order, cuts):
            k = int(key[g[0]])
            c, ab = k % nc, k // nc
            a, b = divmod(ab, nb)
            where.setdefault((a, b), []).append(
                (c, (g - bounds[c], r[g] - starts[a], q[g] - starts[b], np.full(g.size, bool(flip)))))
    out: dict[str, Any] = {}
    for v in names:
        sign = -1.0 if v in ANTISYMMETRIC else 1.0
        rows = []
        for a, i0 in enumerate(starts):
            row = []
            for b, j0 in enumerate(starts):
                shape = (min(size, n - i0), min(size, n - j0), J)
                parts = where.get((a, b), [])
                diag = _DIAGONAL.get(v, np.nan) if a == b else None
                blk = dask.delayed(_fill, pure=True)([arrays[v].blocks[c] for c, _ in parts], [w for _, w in parts],
                                                     shape, sign, diag, (i0, j0))
                row.append([da.from_delayed(blk, shape, dtype=np.float32)])  # depth 3: (roi_i, roi_j, period)
            rows.append(row)
        attrs = dict(pairs[v].attrs)
        out[v] = (("roi_i", "roi_j", "period"), da.block(rows), attrs)
    coords = {"roi_i": ("roi_i", ids), "roi_j": ("roi_j", ids), "index": ("roi_i", positions),
              "period": pairs.period.values}
    for c in ("scale", "frequency", "coi_samples"):
        if c in pairs.coords:
            coords[c] = ("period", pairs[c].values)
    attrs = {**pairs.attrs, "layout": "connectivity matrices (roi_i, roi_j, period)", "matrix_block": int(size),
             "diagonal": "a roi with itself: coherence 1, phase 0, significance NaN"}
    conn = xr.Dataset(out, coords=coords, attrs=attrs)
    if bands:
        conn = _with_bands(conn, bands)
    return conn


def _band_slice(conn: xr.Dataset, name: str, lo: float, hi: float) -> np.ndarray:
    p = np.asarray(conn.period.values)
    if not (np.isfinite(lo) and np.isfinite(hi) and 0 < lo <= hi):
        raise ValueError(f"band {name!r}: give (min_period, max_period) in seconds with 0 < min <= max; got "
                         f"({lo!r}, {hi!r}).")
    keep = (p >= lo * (1 - 1e-9)) & (p <= hi * (1 + 1e-9))
    if not keep.any():
        raise ValueError(f"band {name!r} ({lo:g}-{hi:g} s) holds no period of the grid ({p[0]:.3g}-{p[-1]:.3g} s); "
                         "widen it or choose periods inside the grid.")
    return np.flatnonzero(keep)


def _reduce_band(conn: xr.Dataset, idx: np.ndarray) -> dict[str, xr.DataArray]:
    sub = conn.isel(period=idx)
    w = xr.DataArray(np.asarray(conn.coi_samples.values, float)[idx] if "coi_samples" in conn.coords
                     else np.ones(idx.size), dims="period")
    w = w / w.sum()
    out = {"coherence_mean": (sub.coherence_mean * w).sum("period")}
    if "significant_fraction" in sub:
        out["significant_fraction"] = (sub.significant_fraction * w).sum("period")
    if "phase_mean" in sub and "phase_consistency" in sub:
        re = (sub.phase_consistency * np.cos(sub.phase_mean) * w).sum("period")
        im = (sub.phase_consistency * np.sin(sub.phase_mean) * w).sum("period")
        phase = xr.apply_ufunc(np.arctan2, im, re, dask="allowed")
        mid = float(np.exp(np.log(np.asarray(conn.period.values)[idx]).mean()))
        out["phase_mean"] = phase
        out["phase_consistency"] = np.hypot(re, im)
        out["lag"] = phase / (2 * np.pi) * mid
    return {k: v.astype(np.float32) for k, v in out.items()}


def _with_bands(conn: xr.Dataset, bands: Mapping[str, tuple[float, float]]) -> xr.Dataset:
    if not isinstance(bands, Mapping) or not bands:
        raise ValueError("bands must be a mapping of name to (min_period, max_period) in seconds, e.g. "
                         "{'slow': (5, 30)}.")
    per = []
    lo_hi = []
    for name, spec in bands.items():
        try:
            lo, hi = (float(v) for v in spec)
        except (TypeError, ValueError):
            raise ValueError(f"band {name!r}: give (min_period, max_period) in seconds, got {spec!r}.") from None
        per.append(_reduce_band(conn, _band_slice(conn, str(name), lo, hi)))
        lo_hi.append((lo, hi))
    out = conn.copy()
    for v in per[0]:
        out[f"{v}_band"] = xr.concat([b[v] for b in per], dim="band").transpose("band", "roi_i", "roi_j")
        out[f"{v}_band"].attrs = {**conn[v].attrs, "reduced": "over the band's periods, weighted by coi_samples"}
    mids = [float(np.exp(np.log(np.asarray(conn.period.values)[_band_slice(conn, str(k), *v)]).mean()))
            for k, v in zip(bands, lo_hi)]
    return out.assign_coords(band=("band", np.array([str(k) for k in bands], dtype=object)),  # Zarr v3 string
                             band_min_period=("band", [a for a, _ in lo_hi]),
                             band_max_period=("band", [b for _, b in lo_hi]),
                             band_period=("band", mids))


def write_connectivity(conn: xr.Dataset, path: str | os.PathLike[str], *, overwrite: bool = False,
                       resume: bool = True, progress: bool = False) -> Any:
    """Write :func:`connectivity` matrices to Zarr, one task per strip of ``matrix_block`` rows.

    Through :func:`bioxen_dask.datasets.write_result` (regions along ``roi_i``: no two tasks
    write one chunk; checksummed, resumable, marked complete last, so an interrupted write
    never looks complete). Read back with :func:`band_matrix` or
    :func:`bioxen_dask.datasets.open_result`.

    Returns
    -------
    bioxen_dask.datasets.WriteReport
    """
    from .datasets import write_result

    if "roi_i" not in conn.dims:
        raise ValueError("write_connectivity writes the output of connectivity() (dims roi_i, roi_j, period).")
    return write_result(conn, path, dim="roi_i", region_size=int(conn.attrs.get("matrix_block", conn.sizes["roi_i"])),
                        overwrite=overwrite, resume=resume, progress=progress)


def band_matrix(source: Any, band: str | tuple[float, float], variable: str = "coherence_mean") -> xr.DataArray:
    """One band's ``(roi_i, roi_j)`` matrix of a connectivity result.

    Parameters
    ----------
    source : xarray.Dataset or path
        :func:`connectivity` output, or the Zarr store :func:`write_connectivity` wrote.
    band : str or (min_period, max_period)
        A band stored with it (by name), or periods in seconds to reduce now.
    variable : str
        ``coherence_mean``, ``phase_mean``, ``phase_consistency``, ``lag`` or
        ``significant_fraction``.

    Returns
    -------
    xarray.DataArray
        Lazy when the source is; ``.values`` for the NumPy matrix.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from bioxen_dask import coherence
    >>> rng = np.random.default_rng(1)
    >>> sig = xr.DataArray(rng.standard_normal((3, 1500)), dims=("roi", "time"),
    ...                    coords={"time": np.arange(1500) / 10})
    >>> conn = connectivity(coherence(sig, all_pairs=True, min_period=1, max_period=10, significance=None))
    >>> band_matrix(conn, (2, 4)).shape
    (3, 3)
    """
    if isinstance(source, (str, os.PathLike)):
        from .datasets import open_result

        source = open_result(source)
    if not isinstance(source, xr.Dataset) or "roi_i" not in source.dims:
        raise ValueError("band_matrix reads connectivity() output or the store write_connectivity() wrote.")
    if isinstance(band, str):
        if "band" not in source.coords or band not in [str(b) for b in source.band.values]:
            have = [] if "band" not in source.coords else [str(b) for b in source.band.values]
            raise ValueError(f"band {band!r} is not stored (stored: {have}); pass (min_period, max_period) in "
                             "seconds to reduce it now.")
        name = f"{variable}_band"
        if name not in source:
            raise ValueError(f"no variable {variable!r} per band; choose one of "
                             f"{sorted(v[:-5] for v in source.data_vars if v.endswith('_band'))}.")
        return source[name].sel(band=band)
    try:
        lo, hi = (float(v) for v in band)
    except (TypeError, ValueError):
        raise ValueError(f"band must be a stored band's name or (min_period, max_period); got {band!r}.") from None
    red = _reduce_band(source, _band_slice(source, f"{lo:g}-{hi:g} s", lo, hi))
    if variable not in red:
        raise ValueError(f"no variable {variable!r} per band; choose one of {sorted(red)}.")
    return red[variable]
