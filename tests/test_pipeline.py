"""Pipelines: schema validation naming keys, checks before computing, resumable Zarr writes,
and recovery of planted groups on synthetic data."""

from __future__ import annotations

from pathlib import Path

import dask
import numpy as np
import pytest
import xarray as xr
import zarr

import bioxen_dask.pipeline
from bioxen_dask import coherence
from bioxen_dask.datasets import (
    IncompleteResultError,
    OutputExistsError,
    open_result,
    result_status,
    verify_result,
    write_result,
)
from bioxen_dask.io import write_synthetic
from bioxen_dask.pipeline import PipelineError, check, evaluate_recovery, load_pipeline, run_pipeline

REPO = Path(__file__).resolve().parents[1]
DEMO_PIPELINE = REPO / "pipelines" / "calcium_coherence.yaml"
SMALL_PIPELINE = REPO / "pipelines" / "small_test.yaml"


@pytest.fixture(scope="module")
def small_store(tmp_path_factory):
    return write_synthetic(tmp_path_factory.mktemp("pipe") / "small.zarr", n_rois=24, n_frames=3000, seed=5)


def _base(store, tmp_path, **extra):
    cfg = {
        "input": {"store": str(store)},
        "grid": {"min_period": 1.0, "max_period": 12.0, "dj": 0.25},
        "pairs": {"mode": "reference", "reference": "stimulus"},
        "significance": {"mc_count": 20, "cache": str(tmp_path / "cache")},
        "outputs": {"path": str(tmp_path / "out.zarr")},
        "compute": {"roi_chunk": 5},
    }
    for dotted, value in extra.items():
        section, key = dotted.split("__")
        cfg.setdefault(section, {})[key] = value
    return cfg


def _no_compute(*args, **kwargs):  # pragma: no cover - only runs on a bug
    raise AssertionError("a bad pipeline started a computation")


# ----------------------------------------------------------------------------- schema


def test_shipped_pipelines_are_valid():
    for path in (DEMO_PIPELINE, SMALL_PIPELINE):
        p = load_pipeline(path)
        assert p.get("pairs.mode") == "reference" and p.get("outputs.path")
    demo = load_pipeline(DEMO_PIPELINE)
    assert (demo.get("grid.min_period"), demo.get("grid.max_period")) == (0.5, 30)
    assert demo.get("significance.enabled") is True


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda c: c["grid"].update(min_perod=1), r"grid\.min_perod: unknown key\. Did you mean 'grid\.min_period'"),
        (lambda c: c.update(outputz={}), r"outputz: unknown key\. Did you mean 'outputs'"),
        (lambda c: c["grid"].update(dj="fine"), r"grid\.dj: must be a number, got 'fine' \(str\)"),
        (lambda c: c["significance"].update(mc_count=10.5), r"significance\.mc_count: must be an integer"),
        (lambda c: c["outputs"].update(maps="yes"), r"outputs\.maps: must be true or false"),
        (lambda c: c["pairs"].update(mode="every"), r"pairs\.mode: 'every' is not allowed"),
        (lambda c: c["significance"].update(level=1.5), r"significance\.level: must be between 0 and 1"),
        (lambda c: c["input"].pop("store"), r"input\.store: required key is missing"),
        (lambda c: c["pairs"].update(mode="list"), r"pairs\.list: mode 'list' needs a list"),
        (lambda c: c["pairs"].update(list=[[0, 1]]), r"pairs\.list: only used with pairs\.mode 'list'"),
        (lambda c: c["compute"].update(block_bytes="lots"), r"compute\.block_bytes: must be a byte count"),
        (lambda c: c["compute"].update(method="fast"), r"compute\.method: 'fast' is not allowed\. Choose one of"),
        (lambda c: (c["compute"].update(method="multirate"), c["grid"].update(wavelet="paul")),
         r"compute\.method: 'multirate' needs grid\.wavelet 'morlet', not 'paul'"),
        (lambda c: (c["compute"].update(method="multirate"), c["grid"].update(dtype="float64")),
         r"compute\.method: 'multirate' computes in float32"),
        (lambda c: (c["compute"].update(method="multirate"), c["compute"].update(device="gpu")),
         r"compute\.method: 'multirate' runs on the CPU"),
        (lambda c: c["cluster"].update(kind="slrum") if "cluster" in c else c.update(cluster={"kind": "slrum"}),
         r"cluster\.kind: 'slrum' is not allowed\. Did you mean 'slurm'"),
    ],
)
def test_schema_errors_name_the_key(small_store, tmp_path, mutate, message):
    cfg = _base(small_store, tmp_path)
    mutate(cfg)
    with pytest.raises(PipelineError, match=message):
        check(load_pipeline(cfg))


def test_yaml_file_and_set_overrides(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("input: {store: a.zarr}\noutputs: {path: b.zarr}\npairs: {reference: mean}\n")
    p = load_pipeline(f, ["grid.max_period=20", "outputs.maps=true", "input.rois=[1, 2]", "cluster.n_workers=2"])
    assert p.get("grid.max_period") == 20 and p.get("outputs.maps") is True and p.get("input.rois") == [1, 2]
    assert p.config["cluster"] == {"n_workers": 2}
    with pytest.raises(PipelineError, match=r"grid\.max_perod: unknown key"):
        load_pipeline(f, ["grid.max_perod=20"])
    with pytest.raises(PipelineError, match="expected KEY=VALUE"):
        load_pipeline(f, ["grid.max_period"])
    f.write_text("input: [unclosed\n")
    with pytest.raises(PipelineError, match="not valid YAML"):
        load_pipeline(f)
    f.write_text("input: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(PipelineError, match="not valid YAML"):  # the safe loader refuses it
        load_pipeline(f)
    with pytest.raises(FileNotFoundError, match="no pipeline file"):
        load_pipeline(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    "extra, error, message",
    [
        ({"input__store": "nowhere.zarr"}, FileNotFoundError, r"input\.store: no signals store at nowhere\.zarr"),
        ({"grid__min_period": 0.01}, PipelineError, r"grid: min_period=0\.01 s is below the Nyquist period"),
        ({"grid__max_period": 1000.0}, PipelineError, r"grid: max_period=1000 s is longer than the record"),
        ({"input__rois": [0, 99]}, PipelineError, r"input\.rois: roi id 99 is not in the store \(24 rois, ids 0, 1"),
        ({"input__roi_positions": [0, 99]}, PipelineError, r"input\.roi_positions: roi index 99 is out of range"),
        ({"input__rois": [0, 3, 1, 3]}, PipelineError, r"input\.rois: roi 3 \(position 3\) is listed more than once"),
        ({"pairs__reference": "behaviour"}, PipelineError, r"pairs\.reference: 'behaviour' is not in the store"),
    ],
)
def test_bad_pipelines_fail_before_computing(small_store, tmp_path, extra, error, message):
    p = load_pipeline(_base(small_store, tmp_path, **extra))
    with dask.config.set(scheduler=_no_compute):
        with pytest.raises(error, match=message):
            run_pipeline(p, progress=False)
    assert not (tmp_path / "out.zarr").exists()


def test_pair_indices_out_of_range_fail_before_computing(small_store, tmp_path):
    cfg = _base(small_store, tmp_path)
    cfg["pairs"] = {"mode": "list", "list": [[0, 1], [3, 24]]}
    with dask.config.set(scheduler=_no_compute):
        with pytest.raises(PipelineError, match=r"pairs\.list: pairs\[1\] = \(3, 24\): roi index 24 is out of range"):
            run_pipeline(load_pipeline(cfg), progress=False)


def test_existing_output_fails_before_computing(small_store, tmp_path):
    (tmp_path / "out.zarr").mkdir()
    (tmp_path / "out.zarr" / "precious.txt").write_text("keep me")
    with dask.config.set(scheduler=_no_compute):
        with pytest.raises(OutputExistsError, match="is not a bioxen-dask result"):
            run_pipeline(load_pipeline(_base(small_store, tmp_path, outputs__overwrite=True)), progress=False)
    assert (tmp_path / "out.zarr" / "precious.txt").read_text() == "keep me"


# ----------------------------------------------------------------------------- writing


def test_run_writes_a_complete_verified_result_and_refuses_to_overwrite(small_store, tmp_path, monkeypatch):
    p = load_pipeline(_base(small_store, tmp_path))
    summary = run_pipeline(p, progress=False)
    out = tmp_path / "out.zarr"
    assert summary["write"] == {"path": str(out.absolute()), "regions": 5, "written": 5, "skipped": 0,
                                "resumed": False}
    ds = open_result(out)
    assert ds.attrs["complete"] == 1 and verify_result(out)  # 0/1: netCDF has no boolean attributes
    assert ds.attrs["input_store"] == str(Path(small_store).absolute())
    assert set(ds.data_vars) >= {"coherence_mean", "phase_mean", "phase_consistency", "lag",
                                 "significant_fraction", "threshold"}
    assert ds.lag.attrs["units"] == "s" and "leads" in ds.lag.attrs["convention"]
    # the same run again finds its complete result: nothing is recomputed (tests/test_pipeline_recovery.py)
    with monkeypatch.context() as m:
        m.setattr(bioxen_dask.pipeline, "build_dataset", _no_compute)
        same = run_pipeline(load_pipeline(_base(small_store, tmp_path)), progress=False)
    assert same["write"]["written"] == 0 and same["write"]["complete_already"] is True
    with dask.config.set(scheduler=_no_compute):
        with pytest.raises(OutputExistsError, match="already holds a complete result of a different run"):
            run_pipeline(load_pipeline(_base(small_store, tmp_path, grid__max_period=10.0)), progress=False)
    again = run_pipeline(load_pipeline(_base(small_store, tmp_path, outputs__overwrite=True)), progress=False)
    assert again["write"]["written"] == 5
    xr.testing.assert_identical(open_result(out).compute().drop_attrs(), ds.compute().drop_attrs())


def test_interrupted_write_resumes_verified_regions_only(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((9, 800))
    sig = xr.DataArray(x, dims=("roi", "time"), coords={"time": np.arange(800) * 0.1})
    ds = coherence(sig, reference="mean", min_period=0.5, max_period=8, dj=0.5, roi_chunk=2, maps=True,
                   significance=np.full(9, 0.5))
    expect = ds.compute()
    out = tmp_path / "r.zarr"
    first = write_result(ds, out, max_regions=3)  # "interrupted" after 3 of 5 regions
    assert (first.regions, first.written) == (5, 3)
    status = result_status(out)
    assert status["complete"] is False and status["regions_done"] == 3
    with pytest.raises(IncompleteResultError, match="3 of 5 regions"):
        open_result(out)
    # corrupt one finished region: it must be detected and recomputed, not trusted
    zarr.open_group(str(out), mode="r+")["coherence_mean"][2:4] = 7.0
    with pytest.raises(OutputExistsError, match="different run"):
        write_result(ds, out, key="another-run")
    second = write_result(ds, out)
    assert second.resumed and second.skipped == 2 and second.written == 3
    got = open_result(out).compute()
    for name in expect.data_vars:
        np.testing.assert_array_equal(got[name].values, expect[name].values)
    assert verify_result(out)
    assert "_region_checksum" not in zarr.open_group(str(out), mode="r")


# ----------------------------------------------------------------------------- recovery


def test_demo_pipeline_recovers_planted_groups_on_a_smaller_set(tmp_path):
    """The demo's own pipeline (grid 0.5-30 s, 100 surrogates) on 150 rois x 200 s."""
    store = write_synthetic(tmp_path / "syn.zarr", n_rois=150, n_frames=6000, seed=11)
    p = load_pipeline(DEMO_PIPELINE, [
        ("input.store", str(store)), ("outputs.path", str(tmp_path / "coh.zarr")),
        ("outputs.figures", str(tmp_path / "fig")), ("outputs.summary", str(tmp_path / "summary.json")),
        ("significance.cache", str(tmp_path / "cache")),
    ])
    summary = run_pipeline(p, progress=False)
    assert summary["recall"] >= 0.9 and summary["precision"] >= 0.9, summary
    groups = summary["groups"]
    assert [g["planted_period_s"] for g in groups] == [2.0, 5.0, 10.0]
    assert all(g["planted"] == 12 for g in groups)
    for g in groups:  # the lag of the rois behind the stimulus is recovered too
        assert g["median_abs_lag_error_s"] < 0.1 * g["planted_period_s"], g
    assert sorted(Path(f).name for f in summary["figures"]) == ["coherence_summary.png", "pair_coherence.png",
                                                               "recovery.png"]
    assert all(Path(f).stat().st_size > 10_000 for f in summary["figures"])
    assert (tmp_path / "summary.json").is_file()


def test_evaluate_recovery_counts_false_positives():
    ds = xr.Dataset(
        {"significant_fraction": (("pair", "period"), np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.0], [0.1, 0.1]])),
         "lag": (("pair", "period"), np.zeros((4, 2)))},
        coords={"period": [2.0, 5.0], "index_a": ("pair", [0, 1, 2, 3])},
    )
    truth = {"group": np.array([0, 1, -1, 1]), "groups": [
        {"group": 0, "period_s": 2.0, "lag_s": 0.0}, {"group": 1, "period_s": 5.0, "lag_s": 0.0}]}
    r = evaluate_recovery(ds, truth)
    # calls: (roi0, 2 s) TP, (roi2, 2 s) FP, (roi1, 5 s) TP, (roi3, 5 s) FN
    assert r["precision"] == pytest.approx(2 / 3, abs=1e-4) and r["recall"] == pytest.approx(2 / 3, abs=1e-4)


def test_list_and_all_pair_pipelines_agree_where_they_overlap(small_store, tmp_path):
    sel = [0, 3, 4, 7, 9]
    allp = _base(small_store, tmp_path / "a")
    allp["pairs"] = {"mode": "all"}
    allp["input"]["rois"] = sel
    allp["outputs"]["path"] = str(tmp_path / "all.zarr")
    listed = _base(small_store, tmp_path / "l")
    listed["pairs"] = {"mode": "list", "list": [[9, 3], [0, 4], [7, 9]]}
    listed["outputs"]["path"] = str(tmp_path / "list.zarr")
    s_all = run_pipeline(load_pipeline(allp), progress=False)
    s_list = run_pipeline(load_pipeline(listed), progress=False)
    assert s_all["pairs"] == 10 and s_list["pairs"] == 3 and "precision" not in s_all
    a = open_result(tmp_path / "all.zarr").compute().set_index(pair=["index_a", "index_b"])
    b = open_result(tmp_path / "list.zarr").compute()
    for k, (i, j) in enumerate([(9, 3), (0, 4), (7, 9)]):
        lo, hi = min(i, j), max(i, j)
        ref = a.sel(pair=(lo, hi))
        np.testing.assert_allclose(b.coherence_mean.values[k], ref.coherence_mean.values, atol=1e-6)
        np.testing.assert_array_equal(b.threshold.values[k], ref.threshold.values)
        # swapping the pair flips the sign of the phase and the lag
        sign = 1 if (i, j) == (lo, hi) else -1
        keep = ref.phase_consistency.values > 0.05
        np.testing.assert_allclose(b.lag.values[k][keep], sign * ref.lag.values[keep], atol=1e-4)


def test_multirate_pipeline_equals_the_exact_one(small_store, tmp_path):
    """compute.method multirate: the same thresholds, and the same reductions to float32 rounding."""
    results = {}
    for method in ("exact", "multirate"):
        cfg = _base(small_store, tmp_path / method, compute__method=method)
        cfg["outputs"]["path"] = str(tmp_path / f"{method}.zarr")
        run_pipeline(load_pipeline(cfg), progress=False)
        results[method] = open_result(tmp_path / f"{method}.zarr").compute()
    exact, multi = results["exact"], results["multirate"]
    assert multi.attrs["method"] == "multirate" and exact.attrs["method"] == "exact"
    np.testing.assert_array_equal(multi.threshold.values, exact.threshold.values)
    np.testing.assert_allclose(multi.coherence_mean.values, exact.coherence_mean.values, atol=1e-5)
    np.testing.assert_allclose(multi.significant_fraction.values, exact.significant_fraction.values, atol=2e-3)
    keep = exact.phase_consistency.values > 0.1
    assert keep.sum() > 20
    dphi = np.angle(np.exp(1j * (multi.phase_mean.values - exact.phase_mean.values)))[keep]
    assert np.abs(dphi).max() < 1e-3


# ----------------------------------------------------------------------------- issue 23: roi ids


@pytest.fixture(scope="module")
def id_store(tmp_path_factory):
    """A store whose roi ids are not positions (as suite2p's cells: ids 0, 2, 3, 5, ...)."""
    from bioxen_dask.io import open_signals_store, write_signals

    syn = open_signals_store(write_synthetic(tmp_path_factory.mktemp("ids") / "syn.zarr", n_rois=12,
                                             n_frames=3000, seed=5))
    ids = np.array([0, 2, 3, 5, 8, 9, 13, 17, 21, 29, 33, 40])
    path = tmp_path_factory.mktemp("ids") / "ids.zarr"
    return write_signals(path, syn["signals"].values, fs=float(syn.attrs["fs"]), roi=ids,
                         references={"stimulus": syn["references"].values[0]})


def test_input_rois_are_roi_ids_and_roi_positions_positions(id_store, tmp_path):
    """``input.rois: [29]`` analyses roi 29 (an id, as the results show them); position 9
    (``input.roi_positions: [9]``) is the same roi; an id the store lacks is named as such."""
    by_id = run_pipeline(load_pipeline(_base(id_store, tmp_path / "a", input__rois=[29, 13])), progress=False)
    res = open_result(by_id["output"]).compute()
    assert res.roi_a.values.tolist() == [29, 13] and res.index_a.values.tolist() == [9, 6]
    by_pos = run_pipeline(load_pipeline(_base(id_store, tmp_path / "b", input__roi_positions=[9, 6])),
                          progress=False)
    np.testing.assert_array_equal(open_result(by_pos["output"]).coherence_mean.values, res.coherence_mean.values)
    with pytest.raises(PipelineError, match=r"input\.rois: roi id 1 is not in the store \(12 rois, ids 0, 2, 3, 5, "
                                            r"8 \.\.\. 40\).*input\.roi_positions"):
        check(load_pipeline(_base(id_store, tmp_path / "c", input__rois=[1])))
    with pytest.raises(PipelineError, match=r"input: give input\.rois \(roi ids\) or input\.roi_positions"):
        load_pipeline(_base(id_store, tmp_path / "c", input__rois=[2], input__roi_positions=[1]))
    p = check(load_pipeline(_base(id_store, tmp_path / "c", input__rois={"start": 0, "stop": 6})))
    assert p.facts["rois"].tolist() == [0, 1, 2, 3]  # the ids 0, 2, 3 and 5 of range(0, 6) that exist


def test_a_csv_reference_file_is_read_and_other_files_are_named_for_what_they_are(small_store, tmp_path):
    """A CSV/TSV reference (one column, a header and a time column optional) gives the same
    result as the .npy of the same trace; a file that is neither is not called "a pickle"."""
    from bioxen_dask.io import open_signals_store

    stim = np.asarray(open_signals_store(small_store)["references"].values[0], dtype=np.float64)
    np.save(tmp_path / "stim.npy", stim)
    t = np.arange(stim.size) / 30.0
    (tmp_path / "stim.csv").write_text("time,stimulus\n" + "".join(f"{float(a)!r},{float(b)!r}\n" for a, b in zip(t, stim)))
    base = dict(pairs__reference=None, input__rois=[0, 1, 2, 3, 4], outputs__figures=None)
    runs = {}
    for name in ("stim.npy", "stim.csv"):
        cfg = _base(small_store, tmp_path / name.replace(".", "_"), pairs__reference_file=str(tmp_path / name),
                    **base)
        runs[name] = open_result(run_pipeline(load_pipeline(cfg), progress=False)["output"]).compute()
    np.testing.assert_array_equal(runs["stim.csv"].coherence_mean.values, runs["stim.npy"].coherence_mean.values)
    (tmp_path / "fast.csv").write_text("time,stimulus\n" + "".join(f"{float(a) / 2!r},{float(b)!r}\n"
                                                                  for a, b in zip(t, stim)))
    with pytest.raises(PipelineError, match=r"time column of fast\.csv gives 60 Hz, the input store 30 Hz"):
        check(load_pipeline(_base(small_store, tmp_path / "x", pairs__reference_file=str(tmp_path / "fast.csv"),
                                  **base)))
    (tmp_path / "two.csv").write_text("a,b\n" + "".join(f"{float(v)!r},{float(v)!r}\n" for v in stim))
    with pytest.raises(PipelineError, match=r"two\.csv holds 2 columns \('a', 'b'\); a reference file holds one trace"):
        check(load_pipeline(_base(small_store, tmp_path / "x", pairs__reference_file=str(tmp_path / "two.csv"), **base)))
    (tmp_path / "notes.dat").write_text("just text\n")
    with pytest.raises(PipelineError) as err:
        check(load_pipeline(_base(small_store, tmp_path / "x", pairs__reference_file=str(tmp_path / "notes.dat"),
                                  **base)))
    assert "pickle" not in str(err.value) and "not a .npy file" in str(err.value) and ".csv" in str(err.value)


def test_a_reference_file_replaces_the_stored_reference_of_the_shipped_pipeline(small_store, tmp_path):
    """The shipped pipeline names the stored reference ``stimulus``; adding one's own stimulus
    with ``pairs.reference_file`` replaces it, without also setting ``pairs.reference=null``."""
    from bioxen_dask.io import open_signals_store

    stim = np.asarray(open_signals_store(small_store)["references"].values[0], dtype=np.float64)
    np.save(tmp_path / "mine.npy", -stim)
    p = load_pipeline(SMALL_PIPELINE, [f"input.store={small_store}", f"outputs.path={tmp_path / 'o.zarr'}",
                                       f"pairs.reference_file={tmp_path / 'mine.npy'}"])
    assert p.get("pairs.reference") is None and p.get("pairs.reference_file") == str(tmp_path / "mine.npy")
    assert check(p).facts["action"] == "create"
    with pytest.raises(PipelineError, match=r"pairs\.reference: mode 'reference' needs pairs\.reference"):
        load_pipeline(SMALL_PIPELINE, [f"input.store={small_store}", "pairs.reference=null"])
