"""Long records: pair coherence in halo-exact time blocks with flat memory (issue 20).

The records' moments and AR(1)s come from one streaming pass (one-sample overlap between
blocks), the cone of influence is never built record-long, and the blocked results equal
the one-block in-memory path (float64) to 1e-9.
"""

from __future__ import annotations

import tracemalloc

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr
from scipy.signal import lfilter

from bioxen_dask._stream import stream_normalise
from bioxen_dask.coherence import coherence
from bioxen_dask.grid import make_grid
from bioxen_dask.kernels._moments import block_moments, join_moments
from bioxen_dask.significance import ar1_from_covariances, estimate_ar1
from bioxen_dask.significance._ar1 import _lag_covariances


def _ar1_traces(n, rows, g=0.7, seed=0, offset=5.0, trend=0.0):
    rng = np.random.default_rng(seed)
    x = lfilter([1.0], [1.0, -g], rng.standard_normal((rows, n)), axis=-1)
    return x + offset + trend * np.arange(n) / n


@pytest.mark.parametrize("cuts", [[0, 1000], [0, 1, 2, 500, 999, 1000], [0, 313, 626, 1000]])
def test_block_moments_join_to_the_whole_records(cuts):
    x = _ar1_traces(1000, 3, trend=40.0) * np.array([[1.0], [1e-3], [1e4]])
    m = join_moments([block_moments(x[:, a:b]) for a, b in zip(cuts[:-1], cuts[1:])], cuts[:-1])
    n, tc = x.shape[1], np.arange(1000) - 999 / 2
    np.testing.assert_allclose(m.mean, x.mean(1), rtol=1e-13)
    np.testing.assert_allclose(m.std(False), x.std(1), rtol=1e-12)
    for detrend in (False, True):
        y = x - x.mean(1, keepdims=True)
        if detrend:
            y = y - ((y @ tc) / (tc @ tc))[:, None] * tc
            np.testing.assert_allclose(m.std(True), y.std(1), rtol=1e-11)
        c0, c1 = m.lag_covariances(detrend)
        for i in range(3):
            _, e0, e1, _ = _lag_covariances(y[i])
            assert c0[i] == pytest.approx(e0, rel=1e-11) and c1[i] == pytest.approx(e1, rel=1e-10)
    assert not m.constant.any()
    assert join_moments([block_moments(np.full((1, 7), 2.5))], [0]).constant.all()


def test_ar1_from_covariances_equals_the_estimators_on_the_series():
    x = _ar1_traces(4000, 4, g=0.5, seed=2)
    x[3] = np.arange(4000.0)  # a trend: Allen & Smith has no root, the naive estimate is taken
    y = x - x.mean(1, keepdims=True)
    c0, c1 = (y * y).sum(1) / 4000, (y[:, :-1] * y[:, 1:]).sum(1) / 3999
    for est in ("allen_smith", "naive"):
        g, fallback = ar1_from_covariances(c0, c1, 4000, est)
        for i in range(3):
            assert g[i] == pytest.approx(estimate_ar1(x[i], est), abs=1e-12)
    g, fallback = ar1_from_covariances(c0, c1, 4000, "allen_smith")
    assert fallback.tolist() == [False, False, False, True]
    assert g[3] == pytest.approx(estimate_ar1(x[3], "naive"), abs=1e-12)
    assert np.isnan(ar1_from_covariances([0.0], [0.0], 10)[0][0])  # a constant record
    with pytest.raises(ValueError, match="unknown AR\\(1\\) estimator"):
        ar1_from_covariances(c0, c1, 4000, "burg")


@pytest.mark.parametrize("convention", ["pycwt", "grinsted"])
def test_outside_coi_intervals_equal_the_mask(convention):
    for n in (5, 6, 7, 100, 101, 4097):
        g = make_grid(n, 0.1, dj=0.25)
        mask = g.periods[:, None] <= g.coi(n, convention)[None, :]
        iv = g.outside_coi(n, convention)
        assert (iv[:, 1] - iv[:, 0] == mask.sum(1)).all()
        for j in np.flatnonzero(mask.any(1)):
            assert (np.flatnonzero(mask[j])[[0, -1]] == (iv[j, 0], iv[j, 1] - 1)).all()
        assert (iv[~mask.any(1)] == 0).all()
    assert (g.coi(4097, convention, start=100, stop=200) == g.coi(4097, convention)[100:200]).all()


def test_stream_normalise_equals_the_lazy_normalisation():
    from bioxen_dask.coherence import _normalise

    x = da.from_array(_ar1_traces(3000, 3, trend=10.0), chunks=(2, 700))
    for normalize, remove_mean, detrend in [(True, False, False), (True, True, True), (False, True, False),
                                            (False, False, True), (False, False, False)]:
        got, st = stream_normalise(x, normalize, remove_mean, detrend)
        want = _normalise(x, normalize, remove_mean, detrend)
        np.testing.assert_allclose(got.compute(), want.compute(), rtol=0, atol=1e-10)
        assert got.chunks == x.chunks


def _zarr_signals(tmp_path, x, chunk):
    import zarr

    store = zarr.create_array(str(tmp_path / "x.zarr"), shape=x.shape, chunks=(x.shape[0], chunk), dtype=x.dtype)
    store[...] = x
    return xr.DataArray(da.from_zarr(str(tmp_path / "x.zarr")), dims=("roi", "time"),
                        coords={"roi": np.arange(x.shape[0])}, attrs={"fs": 10.0})


@pytest.mark.parametrize("mode", ["pairs", "reference", "mean_reference"])
def test_time_blocks_from_zarr_equal_the_in_memory_record(tmp_path, mode):
    """float64, Zarr chunks of 1,100 samples against time blocks of 900 (+ halos): every
    reduction (and the fraction above given thresholds) equals the one-block in-memory path."""
    n = 9000
    t = np.arange(n) / 10
    x = _ar1_traces(n, 4, seed=5, trend=3.0) + np.sin(2 * np.pi * t / 2)[None, :] * np.array([[1], [1], [0], [2]])
    x[2] += np.sin(2 * np.pi * (t - 0.4) / 2)
    ref = np.sin(2 * np.pi * (t + 0.3) / 2) + 0.5 * np.random.default_rng(1).standard_normal(n)
    kw = {"pairs": dict(pairs=[(0, 2), (3, 1), (2, 3)]), "reference": dict(reference=ref),
          "mean_reference": dict(reference="mean", rois=[0, 2, 3])}[mode]
    common = dict(min_period=0.4, max_period=3.0, dj=1 / 6, dtype="float64", significance=np.full(19, 0.5),
                  detrend="linear", **kw)
    one = coherence(xr.DataArray(x, dims=("roi", "time"), attrs={"fs": 10.0}), time_chunk=n, **common)
    assert one.attrs["time_blocks"] == 1
    blocked = coherence(_zarr_signals(tmp_path, x, 1100), time_chunk=900, **common)
    assert blocked.attrs["time_blocks"] == 10 and blocked.attrs["halo"] > 0
    one, blocked = one.compute(scheduler="sync"), blocked.compute(scheduler="threads")
    assert (one.coi_samples == blocked.coi_samples).all()
    for name in ("coherence_mean", "phase_consistency", "significant_fraction"):
        assert float(np.abs(blocked[name] - one[name]).max()) <= 1e-9, name
    keep = one.phase_consistency > 1e-6
    dphi = np.angle(np.exp(1j * (blocked.phase_mean - one.phase_mean)))[keep.values]
    assert float(np.abs(dphi).max()) <= 1e-9
    assert float(np.abs((blocked.lag - one.lag).where(keep)).max()) <= 1e-9 * 3.0


def test_long_record_ar1_from_the_stream_and_block_long_surrogates(tmp_path):
    """significance='ar1' on a blocked record: the AR(1)s from the streaming pass equal the
    whole rows' (both presets' estimators), the surrogates are one (extended) block long."""
    n = 6000
    x = _ar1_traces(n, 3, g=0.6, seed=9)
    for preset in ("pycwt", "grinsted"):
        kw = dict(pairs=[(0, 1), (1, 2)], min_period=0.4, max_period=2.0, dj=1 / 4, mc_count=20, preset=preset, boundary="linear",
                  threshold_cache=tmp_path / "cache")
        one = coherence(xr.DataArray(x, dims=("roi", "time"), attrs={"fs": 10.0}), time_chunk=n, **kw)
        (tmp_path / preset).mkdir()
        blocked = coherence(_zarr_signals(tmp_path / preset, x, 1000), time_chunk=1000, **kw)
        np.testing.assert_allclose(blocked.ar1_a, one.ar1_a, rtol=0, atol=1e-12)
        np.testing.assert_allclose(blocked.ar1_b, one.ar1_b, rtol=0, atol=1e-12)
        assert one.attrs["surrogate_length"] == n
        assert blocked.attrs["surrogate_length"] == 1000 + 2 * blocked.attrs["halo"] < n
        assert np.isfinite(blocked.threshold).all()


def _traced_peak(path, n):
    """Traced peak (bytes) of coherence() of a 2-roi float32 Zarr record of ``n`` samples, built
    and computed (synchronous scheduler) in time blocks of 2**15 samples."""
    import zarr

    store = zarr.create_array(str(path), shape=(2, n), chunks=(2, 2**17), dtype="float32")
    store[...] = _ar1_traces(n, 2, g=0.5, seed=3).astype("float32")
    sig = xr.DataArray(da.from_zarr(str(path)), dims=("roi", "time"), attrs={"fs": 1.0})
    tracemalloc.start()
    try:
        with dask.config.set(scheduler="sync"):  # the threaded peak moves with the machine's load
            ds = coherence(sig, pairs=[(0, 1)], min_period=2.0, max_period=8.0, dj=1 / 2, significance=None,
                           time_chunk=2**15, workers=1)
            res = ds.compute()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert ds.attrs["time_blocks"] == n // 2**15
    assert np.all((res.coherence_mean > 0) & (res.coherence_mean < 0.5))  # independent noise
    return peak


def test_pair_coherence_of_a_zarr_record_does_not_hold_the_record(tmp_path):
    """Doubling a Zarr record (2 rois, 2**21 -> 2**22 samples, 64 -> 128 time blocks) leaves the
    traced peak about where it was: measured +3 MB (35 -> 38 MB; the graph of 64 more blocks).
    The old graph held the record for its lazy mean/std, built the record-long COI and a
    (scale, time) COI mask, and one task summed every block (Dask then ran the blocks out of
    order, holding halo pieces): +85 MB (101 -> 186 MB), more than the added record's float64
    size (34 MB)."""
    small = _traced_peak(tmp_path / "small.zarr", 2**21)
    large = _traced_peak(tmp_path / "large.zarr", 2**22)
    added = 2 * 2**21 * 8
    assert large - small < 0.25 * added, f"traced peak {small / 1e6:.1f} -> {large / 1e6:.1f} MB"


def test_decimated_maps_of_time_blocks_equal_window_means_of_the_full_maps(tmp_path):
    """map_step: window means of the coherence (circular means of the phase) over 7 samples,
    computed per time block (cut at whole windows) from Zarr, equal those of the in-memory
    full-rate maps to 1e-9, and each block writes its own region of a Zarr store."""
    n, k = 9001, 7
    t = np.arange(n) / 10
    x = _ar1_traces(n, 3, seed=4) + np.sin(2 * np.pi * t / 2)[None, :]
    common = dict(pairs=[(0, 1), (2, 1)], min_period=0.4, max_period=3.0, dj=1 / 6, dtype="float64",
                  significance=None, maps=True)
    full = coherence(xr.DataArray(x, dims=("roi", "time"), coords={"time": t}), time_chunk=n, **common)
    full = full.compute(scheduler="sync")
    sig = _zarr_signals(tmp_path, x, 1100).assign_coords(time=t)
    dec = coherence(sig, time_chunk=900, map_step=0.7, **common)
    assert dec.attrs["map_step_s"] == pytest.approx(0.7) and dec.attrs["time_blocks"] > 5
    m = -(-n // k)
    assert dec.sizes["time"] == m
    R = np.full(full.coherence.shape[:-1] + (m * k,), np.nan)
    R[..., :n] = full.coherence.values
    want_r = np.nanmean(R.reshape(R.shape[:-1] + (m, k)), axis=-1)
    Z = np.full(R.shape, 0j)
    Z[..., :n] = np.exp(1j * full.phase.values)
    want_p = np.angle(Z.reshape(R.shape[:-1] + (m, k)).sum(-1))
    out = tmp_path / "maps.zarr"
    dec[["coherence", "phase"]].drop_vars(["roi_a", "roi_b"]).to_zarr(out, mode="w", consolidated=False)
    back = xr.open_zarr(out, consolidated=False).compute()
    import zarr

    chunks = dec.coherence.chunks[2]
    assert len(chunks) == dec.attrs["time_blocks"] and len(set(chunks[:-1])) == 1 and chunks[-1] <= chunks[0]
    assert zarr.open_array(out / "coherence", mode="r").chunks[2] == chunks[0]  # a region per time block
    assert float(np.abs(back.coherence.values - want_r).max()) <= 1e-9
    assert float(np.abs(np.angle(np.exp(1j * (back.phase.values - want_p)))).max()) <= 1e-9
    centre = np.arange(0, n, k) + (np.minimum(np.arange(0, n, k) + k, n) - 1 - np.arange(0, n, k)) / 2
    np.testing.assert_allclose(back.time.values, centre / 10, rtol=0, atol=1e-9)
    np.testing.assert_allclose(back.coi.values, np.interp(centre, np.arange(n), full.coi.values), rtol=1e-12)
    # the reductions do not depend on the map step
    assert float(np.abs(dec.coherence_mean.compute() - full.coherence_mean).max()) <= 1e-9
    with pytest.raises(ValueError, match="pass maps=True"):
        coherence(sig, pairs=[(0, 1)], min_period=0.4, max_period=3.0, significance=None, map_step=1.0)


def test_long_record_significance_from_block_long_surrogates_is_calibrated(tmp_path):
    """Independent AR(1) pairs (g = 0.7) of a 32,768-sample record cut into 8 time blocks, with
    thresholds from surrogates one extended block long (4,940 samples), shared by every block:
    the coherence is at or above the 95% threshold about 5% of the time outside the COI."""
    from bioxen_dask.significance import rednoise

    n, pairs = 32768, 6
    x = rednoise(n, 0.7, size=(2 * pairs,), rng=np.random.default_rng(1))
    sig = xr.DataArray(da.from_array(x, chunks=(4, 8192)), dims=("roi", "time"), attrs={"fs": 1.0})
    ds = coherence(sig, pairs=[(2 * i, 2 * i + 1) for i in range(pairs)], min_period=4.0, max_period=32.0, dj=1 / 4,
                   time_chunk=4096, mc_count=100, seed=0, threshold_cache=tmp_path)
    assert ds.attrs["time_blocks"] == 8 and ds.attrs["surrogate_length"] == 4096 + 2 * ds.attrs["halo"]
    ds = ds.compute(scheduler="threads")
    hits = (ds.significant_fraction * ds.coi_samples).values
    rate = float(hits.sum() / (ds.coi_samples.values.sum() * pairs))
    # 6 pairs x 13 scales x ~30,000 correlated samples: the rate's spread is under a point
    assert 0.035 <= rate <= 0.065, rate
    per_scale = hits.sum(0) / (ds.coi_samples.values * pairs)
    assert np.all((per_scale > 0.015) & (per_scale < 0.1)), per_scale.round(3)


def test_the_report_section_renders_the_measured_runs(tmp_path):
    import json

    from bioxen_dask.bench.report import LONG_RECORD_RUNS, long_record_section

    assert "Not measured yet" in long_record_section(tmp_path)
    run = {"samples": 2000000, "commit": "abc1234", "method": "multirate", "threads": 2, "time_blocks": 16,
           "halo": 14142, "peak_rss_mb": 856.0, "wall_s": 6.0, "build_s": 0.5, "pair_samples_per_s": 6.64e5,
           "pair_samples_per_cpu_s": 3.5e5, "load_avg": 1.2, "machine": "test machine", "block_s": 0.7, "day_pair_h": {"1": 8.0, "16": 0.5, "64": 0.125}}
    (tmp_path / LONG_RECORD_RUNS).parent.mkdir(parents=True)
    (tmp_path / LONG_RECORD_RUNS).write_text(json.dumps({"a": run, "b": {**run, "threads": 1, "wall_s": 11.0,
                                                                          "day_pair_h": None}}))
    text = long_record_section(tmp_path)
    assert "| 2e+06 | abc1234 | multirate | 2 | 16 | 856 MB | 6.0 s | 6.64e+05 | 3.5e+05 | 1.2 | test machine |" in text
    assert "1.83x faster" in text  # 11.0 s on 1 thread, 6.0 s on 2
    assert "8.0 h on 1 core, 0.50 h on 16 and 0.12 h on 64" in text
    assert "20,800 blocks" in text  # 2.6e9 / (2e6 / 16)


def _blocked_pair(tmp_path, n, name="x.zarr"):
    import zarr

    path = str(tmp_path / name)
    store = zarr.create_array(path, shape=(2, n), chunks=(2, 2**14), dtype="float32")
    store[...] = _ar1_traces(n, 2, g=0.5, seed=7).astype("float32")
    sig = xr.DataArray(da.from_zarr(path), dims=("roi", "time"), attrs={"fs": 1.0})
    return coherence(sig, pairs=[(0, 1)], min_period=2.0, max_period=8.0, dj=1 / 2, significance=None,
                     time_chunk=2**12)


def test_the_graph_of_a_long_record_does_not_grow_with_its_time_blocks(tmp_path):
    """8x the record (16 -> 128 time blocks): the reductions' graph keeps its 8 tasks and its
    pickled size (what a client sends the scheduler) within 1 KB; the blocks are submitted in
    waves by one task. The per-block graph it replaces grew ~0.5 KB and 8 tasks per block here
    (and ~47 KB per block serialised for a cluster: 375 MB at 1e9 samples)."""
    import cloudpickle

    sizes = {}
    for n in (2**16, 2**19):
        ds = _blocked_pair(tmp_path, n, f"x{n}.zarr")
        graph = dict(ds.coherence_mean.data.__dask_graph__())
        sizes[ds.attrs["time_blocks"]] = (len(graph), len(cloudpickle.dumps(graph)))
    (t16, b16), (t128, b128) = sizes[16], sizes[128]
    assert t16 == t128 < 16, sizes
    assert abs(b128 - b16) < 1024, sizes


def test_long_record_blocks_run_in_bounded_waves_on_threads(tmp_path, monkeypatch):
    """On the local scheduler (2 threads) at most 2 x 2 blocks are submitted and not yet
    folded: when block i starts, every block up to i - 4 has finished; every block runs once."""
    import sys
    import threading

    mod = sys.modules[coherence.__module__]  # the module (the package's name is the function)

    ds = _blocked_pair(tmp_path, 2**17)
    n_t = ds.attrs["time_blocks"]
    lock, started, finished, late = threading.Lock(), [], set(), []
    limit = mod._IN_FLIGHT_PER_THREAD * 2
    inner = mod._block_sums

    def spy(src, c, tj):
        with lock:
            started.append(tj)
            late.extend(j for j in range(tj - limit + 1) if j not in finished)
        out = inner(src, c, tj)
        with lock:
            finished.add(tj)
        return out

    monkeypatch.setattr(mod, "_block_sums", spy)
    with dask.config.set(scheduler="threads", num_workers=2):
        got = ds.compute()
    assert sorted(started) == list(range(n_t)) and n_t == 32
    assert late == []
    monkeypatch.setattr(mod, "_block_sums", inner)
    want = ds.compute(scheduler="sync")
    assert float(np.abs(got.coherence_mean - want.coherence_mean).max()) <= 1e-12


def test_long_record_blocks_spread_over_the_workers_in_bounded_waves(tmp_path):
    """On a 2-worker cluster the 32 blocks are tasks of their own, run on both workers; the
    driver holds at most 2 per worker thread (4), and the scheduler knows at most a few more
    at any time (a folded block's release reaches it a message later); the sums equal the
    threaded scheduler's."""
    distributed = pytest.importorskip("distributed")

    class Watch(distributed.diagnostics.plugin.SchedulerPlugin):
        def __init__(self):
            self.alive, self.most, self.workers = set(), 0, set()

        def transition(self, key, start, finish, *args, **kwargs):
            if not str(key).startswith("coherence-block-"):
                return
            if finish == "forgotten":
                self.alive.discard(key)
            else:
                self.alive.add(key)
                if finish == "memory" and kwargs.get("worker"):
                    self.workers.add(kwargs["worker"])
            self.most = max(self.most, len(self.alive))

    ds = _blocked_pair(tmp_path, 2**17)
    want = ds.compute(scheduler="threads")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        watch = Watch()
        cluster.scheduler.add_plugin(watch, name="watch-blocks")
        got = ds.compute()  # on the client (the default scheduler now)
    assert len(watch.workers) == 2, watch.workers
    assert ds.attrs["time_blocks"] == 32 and 0 < watch.most <= 2 * 2 * 2, watch.most
    assert float(np.abs(got.coherence_mean - want.coherence_mean).max()) <= 1e-12
