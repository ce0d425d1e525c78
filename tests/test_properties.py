"""Property-based tests of the kernels (hypothesis): valid input never crashes, coherence stays
in [0, 1], chunked equals unchunked.

Examples are derandomized (the same every run, so CI is reproducible) and few: each property
draws lengths, ``dt``, scale grids, wavelets, boundary modes and chunkings across their valid
ranges rather than a fixed handful of cases.
"""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from bioxen_dask import kernels  # noqa: E402
from bioxen_dask._validation import min_samples  # noqa: E402
from bioxen_dask.coherence import coherence, period_grid  # noqa: E402
from bioxen_dask.graph import wavelet_transform_dask  # noqa: E402
from bioxen_dask.grid import ScaleGrid  # noqa: E402

#: One profile for every property: reproducible, no wall-clock deadline (2-core CI machines).
PROFILE = dict(derandomize=True, deadline=None, database=None, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

WAVELETS = ("morlet", "paul", "dog")


@st.composite
def grids(draw, *, max_scales=12, wavelets=WAVELETS):
    """A valid (n, grid) pair: the record is long enough for the smallest wavelet."""
    dt = draw(st.sampled_from([1e-3, 1 / 30, 0.1, 1.0, 7.5]))
    dj = draw(st.sampled_from([1 / 12, 1 / 4, 1 / 2, 1.0]))
    J = draw(st.integers(0, max_scales - 1))
    wavelet = draw(st.sampled_from(wavelets))
    s0_samples = draw(st.floats(0.3, 6.0))  # smallest scale in samples, below Nyquist included
    grid = ScaleGrid.from_s0(dt, s0_samples * dt, dj, J, wavelet)
    # the grid fits the record (largest period <= duration), as every grid builder ensures
    n_min = max(min_samples(grid), int(np.ceil(grid.periods[-1] / dt)))
    n = draw(st.integers(n_min, max(n_min, 700)))
    return n, grid


def signals(n, seed, rows=1):
    """Red noise plus a sinusoid (never constant), float64."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, n)).cumsum(axis=-1) * 0.1 + rng.standard_normal((rows, n))
    return x + np.sin(2 * np.pi * np.arange(n) / rng.uniform(4, 40))


@settings(max_examples=40, **PROFILE)
@given(g=grids(), boundary=st.sampled_from(kernels.BOUNDARIES), dtype=st.sampled_from(["float32", "float64"]),
       seed=st.integers(0, 2**16), rows=st.integers(1, 3))
def test_cwt_never_crashes_on_valid_input(g, boundary, dtype, seed, rows):
    n, grid = g
    x = signals(n, seed, rows)
    W = kernels.cwt(x, grid, boundary=boundary, dtype=dtype)
    assert W.shape == (rows, grid.n_scales, n)
    assert W.dtype == (np.complex64 if dtype == "float32" else np.complex128)
    if boundary == "valid":  # NaN exactly where the wavelet overhangs an edge, finite elsewhere
        h = np.minimum(grid.wavelet_support(), n)
        inside = np.arange(n)[None, :]
        expect_nan = (inside < h[:, None]) | (inside >= n - h[:, None])
        np.testing.assert_array_equal(np.isnan(W[0]), expect_nan)
    else:
        assert np.all(np.isfinite(W))


@settings(max_examples=40, **PROFILE)
@given(g=grids(), boundary=st.sampled_from(kernels.BOUNDARIES), preset_kernel=st.sampled_from(["pycwt", "grinsted"]),
       seed=st.integers(0, 2**16), scale_y=st.floats(1e-6, 1e6))
def test_coherence_stays_within_0_and_1(g, boundary, preset_kernel, seed, scale_y):
    n, grid = g
    x = signals(n, seed, 2)
    transform = "linear" if boundary == "valid" else boundary  # valid: linear transforms, masked maps
    W1 = kernels.cwt(x[0], grid, boundary=transform, dtype="float64")
    W2 = kernels.cwt(x[1] * scale_y, grid, boundary=transform, dtype="float64")
    sm = kernels.Smoother(grid, scale_kernel=preset_kernel, boundary=boundary)
    R2, ang = kernels.coherence(W1, W2, sm)
    finite = np.isfinite(R2)
    if boundary != "valid":
        assert finite.all()
    assert np.all((R2[finite] >= 0) & (R2[finite] <= 1))
    assert np.all(np.abs(ang[np.isfinite(ang)]) <= np.pi)
    if boundary in ("pycwt", "circular", "grinsted"):
        return  # frequency-defined Gaussians have negative lobes: only the clipped value is bounded
    # time-defined modes smooth with non-negative weights, so the unclipped estimator itself
    # stays in [0, 1] up to rounding (Cauchy-Schwarz)
    raw, _ = kernels.coherence(W1, W2, sm, clip=False, with_phase=False)
    ok = np.isfinite(raw)
    assert np.all((raw[ok] >= -1e-9) & (raw[ok] <= 1 + 1e-9))


@st.composite
def chunked_cases(draw):
    """A record, a small grid whose halo fits several chunks, and a time chunking."""
    dt = draw(st.sampled_from([1 / 30, 0.1, 1.0]))
    dj = draw(st.sampled_from([1 / 4, 1 / 2]))
    J = draw(st.integers(0, 6))
    wavelet = draw(st.sampled_from(WAVELETS))
    grid = ScaleGrid.from_s0(dt, draw(st.floats(0.6, 2.5)) * dt, dj, J, wavelet)
    halo = grid.halo()
    n = draw(st.integers(3 * halo + 10, 3 * halo + 400))
    time_chunk = draw(st.integers(halo, min(n - 2 * halo - 1, n // 2)))  # really cut: >= 2 chunks
    roi_chunk = draw(st.integers(1, 3))
    return n, grid, time_chunk, roi_chunk


@settings(max_examples=25, **PROFILE)
@given(case=chunked_cases(), boundary=st.sampled_from(["linear", "symmetric", "valid"]),
       seed=st.integers(0, 2**16))
def test_chunked_transform_equals_unchunked(case, boundary, seed):
    n, grid, time_chunk, roi_chunk = case
    x = signals(n, seed, 3)
    ref = kernels.cwt(x, grid, boundary=boundary, dtype="float64")
    lazy = wavelet_transform_dask(
        xr.DataArray(da.from_array(x, chunks=(2, max(1, n // 3))), dims=("roi", "time")), grid.dt,
        s0=grid.scales[0], J=grid.n_scales - 1, dj=grid.dj, wavelet=grid.wavelet, boundary=boundary,
        dtype="float64", time_chunk=time_chunk, roi_chunk=roi_chunk)
    assert lazy.attrs["halo"] > 0 and len(lazy.data.chunks[2]) > 1
    got = lazy.data.compute(scheduler="sync")
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    scale = np.nanmax(np.abs(ref), axis=-1, keepdims=True)
    assert float(np.nanmax(np.abs(got - ref) / scale)) <= 1e-8


@st.composite
def coherence_cases(draw):
    dt = draw(st.sampled_from([1 / 30, 0.1, 1.0]))
    lo = draw(st.floats(2.0, 4.0)) * dt
    hi = lo * draw(st.floats(1.5, 4.0))
    dj = draw(st.sampled_from([1 / 4, 1 / 2]))
    probe = period_grid(10**6, dt, min_period=lo, max_period=hi, dj=dj)
    halo = probe.halo(smoothing=True)
    n = draw(st.integers(3 * halo + 50, 3 * halo + 800))
    time_chunk = draw(st.integers(halo, min(n - 2 * halo - 1, n // 2)))
    mode = draw(st.sampled_from(["reference", "all_pairs", "pairs"]))
    return dt, lo, hi, dj, n, time_chunk, mode


@settings(max_examples=12, **PROFILE)
@given(case=coherence_cases(), seed=st.integers(0, 2**16))
def test_chunked_coherence_equals_unchunked(case, seed):
    dt, lo, hi, dj, n, time_chunk, mode = case
    x = signals(n, seed, 4)
    sig = xr.DataArray(da.from_array(x, chunks=(2, n)), dims=("roi", "time"), coords={"time": np.arange(n) * dt})
    kw = dict(min_period=lo, max_period=hi, dj=dj, dtype="float64", significance=None, maps=True)
    if mode == "reference":
        kw["reference"] = signals(n, seed + 1)[0]
    elif mode == "pairs":
        kw["pairs"] = [(0, 1), (3, 2), (1, 3)]
    else:
        kw["all_pairs"] = True
    one = coherence(sig, **kw).compute(scheduler="sync")
    blocks = coherence(sig, time_chunk=time_chunk, roi_chunk=2, **kw)
    assert blocks.attrs["time_blocks"] > 1 and blocks.attrs["halo"] > 0
    blocks = blocks.compute(scheduler="sync")
    for name in ("coherence", "coherence_mean", "phase_consistency"):
        a, b = blocks[name].values, one[name].values
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=name)
        assert float(np.nanmax(np.abs(a - b), initial=0.0)) <= 1e-8, name
    cm = one.coherence_mean.values
    assert np.all((cm[np.isfinite(cm)] >= 0) & (cm[np.isfinite(cm)] <= 1))
    c = one.coherence.values
    assert np.all((c >= 0) & (c <= 1))


@settings(max_examples=60, **PROFILE)
@given(n=st.integers(1, 80), seed=st.integers(0, 2**16), density=st.floats(0, 0.6), max_gap=st.integers(0, 30))
def test_gap_helpers_match_their_definitions(n, seed, density, max_gap):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, n))
    missing = rng.random((2, n)) < density
    x[missing] = np.where(rng.random(missing.sum()) < 0.5, np.nan, np.inf)
    # distance to the nearest missing sample, by brute force
    t = np.arange(n)
    for i in range(2):
        d = kernels.gap_distance(missing[i])
        idx = np.flatnonzero(missing[i])
        want = np.abs(t[:, None] - idx[None, :]).min(axis=1) if idx.size else np.full(n, np.inf)
        np.testing.assert_array_equal(d, want)
    longest = max((len(r) for row in missing for r in "".join("1" if v else "0" for v in row).split("0")), default=0)
    if longest > max_gap or missing.all(axis=1).any():
        with pytest.raises(ValueError, match="gap of|no finite sample"):
            kernels.fill_gaps(x, max_gap)
        return
    filled, m = kernels.fill_gaps(x, max_gap)
    np.testing.assert_array_equal(m, missing)
    assert np.all(np.isfinite(filled)) and np.array_equal(filled[~missing], x[~missing])
    for i in range(2):  # linear between the neighbours, nearest value beyond the ends
        good = np.flatnonzero(~missing[i])
        np.testing.assert_allclose(filled[i], np.interp(t, good, x[i, good]), rtol=0, atol=1e-12)


@settings(max_examples=10, **PROFILE)
@given(case=coherence_cases(), seed=st.integers(0, 2**16), offsets=st.lists(st.integers(-40, 40), min_size=1,
                                                                           max_size=4))
def test_interpolated_gaps_chunked_equal_unchunked(case, seed, offsets):
    """Filling (overlap of max_gap + 1) and masking (halo) are exact across time blocks: gaps are
    planted across and around the block boundaries, where a wrong overlap would show."""
    from bioxen_dask.graph import plan_chunks, regular_chunks

    dt, lo, hi, dj, n, time_chunk, mode = case
    grid = period_grid(n, dt, min_period=lo, max_period=hi, dj=dj)
    halo = grid.halo(smoothing=True)
    t_chunks = regular_chunks(n, plan_chunks(1, n, grid, dtype="float64", smoothing=True,
                                              time_chunk=time_chunk).time_chunk, min_last=halo)
    bounds = np.cumsum(t_chunks)[:-1]
    rng = np.random.default_rng(seed)
    x = signals(n, seed, 4)
    max_gap = 5
    for b in bounds:
        for off in offsets:  # one gap straddling or near each boundary per offset, in a random roi
            start = int(np.clip(b + off - rng.integers(0, max_gap), 0, n - max_gap))
            x[rng.integers(0, 4), start : start + rng.integers(1, max_gap + 1)] = np.nan
    clean = signals(n, seed, 4)
    for row in range(4):  # gaps that ran into each other: cut them back to at most max_gap
        starts, lengths = kernels.gap_runs(np.isnan(x[row]))
        for s0, length in zip(starts, lengths):
            x[row, s0 + max_gap : s0 + length : max_gap + 1] = clean[row, s0 + max_gap : s0 + length : max_gap + 1]
    sig = xr.DataArray(da.from_array(x, chunks=(2, n)), dims=("roi", "time"), coords={"time": np.arange(n) * dt})
    kw = dict(min_period=lo, max_period=hi, dj=dj, dtype="float64", significance=None, maps=True,
              nan_policy="interpolate", max_gap=max_gap * dt, all_pairs=True)
    one = coherence(sig, **kw).compute(scheduler="sync")
    if np.isnan(x).reshape(4, -1).all(axis=1).any():  # pragma: no cover - never with these sizes
        return
    blocks = coherence(sig.chunk({"time": t_chunks}), time_chunk=time_chunk, roi_chunk=2, **kw)  # filled per block
    assert blocks.attrs["time_blocks"] == len(t_chunks) > 1 and blocks.attrs["missing_samples"] > 0
    blocks = blocks.compute(scheduler="sync")
    for name in ("coherence", "phase", "coherence_mean", "phase_consistency"):
        a, b = blocks[name].values, one[name].values
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=name)
        assert float(np.nanmax(np.abs(a - b), initial=0.0)) <= 1e-8, name
    assert np.isnan(one.coherence.values).any()  # something was masked
