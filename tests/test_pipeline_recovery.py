"""Pipelines after an interruption: a complete result of the same run is finished (summary and
figures only), another run's is refused naming what differs; Ctrl-C is one line and exit 130;
figures only where they mean something; YAML errors name the file, line and key."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import signal
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

import bioxen_dask.cluster
import bioxen_dask.datasets
import bioxen_dask.pipeline
from bioxen_dask import cli, plot
from bioxen_dask.datasets import OutputExistsError, result_status
from bioxen_dask.io import write_synthetic
from bioxen_dask.pipeline import PipelineError, check, load_pipeline, run_pipeline


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return write_synthetic(tmp_path_factory.mktemp("recovery") / "syn.zarr", n_rois=24, n_frames=3000, seed=5)


def _cfg(store, folder: Path, **extra):
    cfg = {
        "input": {"store": str(store)},
        "grid": {"min_period": 1.0, "max_period": 12.0, "dj": 0.25},
        "pairs": {"mode": "reference", "reference": "stimulus"},
        "significance": {"mc_count": 20, "cache": str(folder / "cache")},
        "outputs": {"path": str(folder / "out.zarr"), "figures": str(folder / "fig"),
                    "summary": str(folder / "summary.json")},
        "compute": {"roi_chunk": 6},
    }
    for dotted, value in extra.items():
        section, key = dotted.split("__")
        cfg.setdefault(section, {})[key] = value
    return cfg


def _snapshot(path: Path) -> dict[str, tuple[str, int]]:
    """Content hash and mtime of every file of a store."""
    return {str(f.relative_to(path)): (hashlib.sha256(f.read_bytes()).hexdigest(), f.stat().st_mtime_ns)
            for f in sorted(path.rglob("*")) if f.is_file()}


@pytest.fixture(scope="module")
def finished(store, tmp_path_factory):
    """One complete reference-mode run with summary and figures."""
    folder = tmp_path_factory.mktemp("finished")
    summary = run_pipeline(load_pipeline(_cfg(store, folder)), progress=False)
    return folder, summary


def _no_recompute(*args, **kwargs):  # pragma: no cover - only runs on a bug
    raise AssertionError("the complete result of this run was recomputed")


# ----------------------------------------------------------------------------- 1. resume a finished run


def test_rerun_after_an_interrupted_summary_rewrites_it_without_recomputing(finished, store, monkeypatch):
    folder, first = finished
    out, summary, fig = folder / "out.zarr", folder / "summary.json", folder / "fig"
    assert summary.is_file() and (fig / "recovery.png").is_file()
    # what an interrupt after the complete marker leaves: no summary, a figure missing
    summary.unlink()
    (fig / "pair_coherence.png").unlink()
    before = _snapshot(out)
    p = load_pipeline(_cfg(store, folder))
    assert check(p).facts["action"] == "finish"
    monkeypatch.setattr(bioxen_dask.pipeline, "build_dataset", _no_recompute)
    monkeypatch.setattr(bioxen_dask.datasets, "write_result", _no_recompute)
    again = run_pipeline(p, progress=False)
    assert again["write"]["written"] == 0 and again["write"]["complete_already"] is True
    assert again["write"]["regions"] == first["write"]["regions"]
    assert json.loads(summary.read_text())["write"]["complete_already"] is True
    assert (fig / "pair_coherence.png").is_file() and (fig / "coherence_summary.png").is_file()
    assert again["precision"] == first["precision"] and again["recall"] == first["recall"]
    assert _snapshot(out) == before  # the result store is untouched (content and mtimes)


def test_cli_check_reports_finish_for_a_complete_result_of_the_same_run(finished, store, capsys, monkeypatch):
    folder, _ = finished
    (folder / "summary.json").unlink(missing_ok=True)
    p = _cfg(store, folder)
    argv = ["run", str(bioxen_dask.pipeline.repo_file("pipelines", "small_test.yaml")), "--check"]
    for section, keys in p.items():
        for key, value in keys.items():
            argv += ["--set", f"{section}.{key}={json.dumps(value)}"]
    code = cli.main(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert json.loads(captured.out)["action"] == "finish"


def test_a_finish_rerun_verifies_the_stored_result(finished, store, tmp_path, capsys):
    """A complete result changed after it was written is not finished with a summary of wrong
    numbers: ``info --verify`` names the region (exit 1), and the re-run recomputes it."""
    import shutil

    folder, _ = finished
    copy = tmp_path / "out.zarr"
    shutil.copytree(folder / "out.zarr", copy)
    assert cli.main(["info", str(copy), "--verify", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["verified"] is True
    z = zarr.open_group(str(copy), mode="r+")
    z["coherence_mean"][3, 2] = float(z["coherence_mean"][3, 2]) + 0.25  # a value changed on disk
    assert cli.main(["info", str(copy), "--verify", "--json"]) == 1
    info = json.loads(capsys.readouterr().out)
    assert info["verified"] is False and [d["region"] for d in info["damaged_regions"]] == [0]
    assert info["damaged_regions"][0]["problem"].startswith("the data differ from the checksum")
    cfg = _cfg(store, folder, outputs__path=str(copy), outputs__summary=str(tmp_path / "s.json"),
               outputs__figures=None)
    summary = run_pipeline(load_pipeline(cfg), progress=False)
    assert summary["write"]["repaired_regions"] == [0] and summary["write"]["written"] == 1
    np.testing.assert_array_equal(xr.open_zarr(str(copy)).coherence_mean.values,
                                  xr.open_zarr(str(folder / "out.zarr")).coherence_mean.values)
    assert json.loads((tmp_path / "s.json").read_text())["write"]["repaired_regions"] == [0]
    assert cli.main(["info", str(store), "--verify"]) == 2
    assert "is not one (a signals store is checked whenever it is opened)" in capsys.readouterr().err


# ----------------------------------------------------------------------------- 5. refusals in pipeline terms


def test_complete_result_of_another_run_is_refused_naming_the_difference(finished, store):
    folder, _ = finished
    with pytest.raises(OutputExistsError) as err:
        check(load_pipeline(_cfg(store, folder, significance__mc_count=30, grid__max_period=10.0)))
    msg = str(err.value)
    assert "already holds a complete result of a different run" in msg
    assert "grid.max_period (stored 12.0, now 10.0)" in msg and "significance.mc_count (stored 20, now 30)" in msg
    assert "--set outputs.overwrite=true" in msg and "overwrite=True" not in msg
    assert "compute." not in msg and "significance.cache" not in msg  # how/where it runs: not the run's identity
    # the same run with resume off: refused, saying how to go on
    with pytest.raises(OutputExistsError, match=r"outputs\.resume: true") as err:
        check(load_pipeline(_cfg(store, folder, outputs__resume=False)))
    assert "of this same run" in str(err.value) and "overwrite=True" not in str(err.value)


def test_a_result_of_the_other_compute_method_is_not_reused(finished, store):
    """The methods agree only to the float32 limit: a result is neither reused nor completed
    with the other one (task sizes, which change no number, stay out of the run's identity)."""
    folder, _ = finished
    with pytest.raises(OutputExistsError) as err:
        check(load_pipeline(_cfg(store, folder, compute__method="multirate")))
    assert "compute.method (stored 'exact', now 'multirate')" in str(err.value)
    assert check(load_pipeline(_cfg(store, folder, compute__roi_chunk=4))).facts["action"] == "finish"


def test_incomplete_result_refusals_name_pipeline_keys(finished, store, tmp_path):
    folder, _ = finished
    copy = tmp_path / "out.zarr"
    import shutil

    shutil.copytree(folder / "out.zarr", copy)
    zarr.open_group(str(copy), mode="r+").attrs["complete"] = False  # an "interrupted" run
    assert result_status(copy)["complete"] is False
    base = {"outputs__path": str(copy), "outputs__figures": None, "outputs__summary": None}
    with pytest.raises(OutputExistsError) as err:
        check(load_pipeline(_cfg(store, folder, grid__dj=0.5, **base)))
    msg = str(err.value)
    assert "incomplete result of a different run: it differs in grid.dj (stored 0.25, now 0.5)" in msg
    assert "--set outputs.overwrite=true" in msg and "overwrite=True" not in msg
    with pytest.raises(OutputExistsError, match=r"outputs\.resume is false; set outputs\.resume: true") as err:
        check(load_pipeline(_cfg(store, folder, outputs__resume=False, **base)))
    assert "overwrite=True" not in str(err.value)
    # the same run with another task size: its regions do not line up with the stored ones
    p = load_pipeline(_cfg(store, folder, compute__roi_chunk=4, **base))
    assert check(p).facts["action"] == "resume"
    with pytest.raises(OutputExistsError) as err:
        run_pipeline(p, progress=False)
    msg = str(err.value)
    assert "another region layout" in msg and "compute.roi_chunk (stored 6, now 4)" in msg
    assert "overwrite=True" not in msg


def test_cli_refusal_says_the_command_line_flag(finished, store, capsys):
    folder, _ = finished
    argv = ["run", str(bioxen_dask.pipeline.repo_file("pipelines", "small_test.yaml")), "--check"]
    for section, keys in _cfg(store, folder, significance__seed=1).items():
        for key, value in keys.items():
            argv += ["--set", f"{section}.{key}={json.dumps(value)}"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("bioxen-dask: error: outputs.path:")
    assert "significance.seed (stored 0, now 1)" in err and "--set outputs.overwrite=true" in err


# ----------------------------------------------------------------------------- 3./4. figures


def test_all_pairs_mode_writes_no_recovery_figure(store, tmp_path):
    cfg = _cfg(store, tmp_path, pairs__mode="all", pairs__reference=None, input__rois=[0, 1, 2, 3, 20, 21])
    summary = run_pipeline(load_pipeline(cfg), progress=False)
    names = sorted(Path(f).name for f in summary["figures"])
    assert names == ["coherence_summary.png"]
    assert not (tmp_path / "fig" / "recovery.png").exists()
    assert "precision" not in summary


def test_summary_figure_ticks_name_roi_ids_not_row_positions(finished, store, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = 8
    ds = xr.Dataset(
        {"coherence_mean": (("pair", "period"), np.linspace(0, 1, n * 3).reshape(n, 3))},
        coords={"period": [1.0, 2.0, 4.0], "roi_a": ("pair", np.arange(100, 100 + n)),
                "roi_b": ("pair", np.array(["stimulus"] * n))},
        attrs={"mode": "reference", "reference": "stimulus"},
    )
    order = np.array([5, 2, 7, 0, 1, 3, 4, 6])
    fig = plot.plot_summary(ds, order=order, ylabel="roi id (sorted by planted group)", boundaries=[3])
    ax = fig.axes[0]
    assert ax.get_ylabel() == "roi id (sorted by planted group)"
    assert [t.get_text() for t in ax.get_yticklabels()] == [str(100 + k) for k in order]
    np.testing.assert_allclose(ax.get_yticks(), np.arange(n) + 0.5)
    plt.close(fig)
    fig = plot.plot_summary(ds, order=order)
    assert fig.axes[0].get_ylabel() == "roi id (reordered)"
    plt.close(fig)
    pairs = ds.assign_coords(roi_b=("pair", np.arange(200, 200 + n))).assign_attrs(mode="all")
    fig = plot.plot_summary(pairs, max_ticks=4)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert fig.axes[0].get_ylabel() == "pair (roi_a-roi_b)" and len(labels) == 4 and labels[0] == "100-200"
    plt.close(fig)
    # the pipeline's figure says how its rows are sorted
    seen = {}
    real = plot.plot_summary

    def spy(result, **kwargs):
        seen.update(kwargs)
        return real(result, **kwargs)

    monkeypatch.setattr(plot, "plot_summary", spy)
    folder, _ = finished
    from bioxen_dask.datasets import open_result
    from bioxen_dask.pipeline import planted_truth, write_figures

    p = load_pipeline(_cfg(store, folder))
    monkeypatch.setattr(bioxen_dask.pipeline, "_one_pair_map", _no_recompute)
    cfg = {**p.config, "pairs": {**p.config["pairs"], "mode": "list"}}  # list mode: no pair map, no truth order
    write_figures(open_result(folder / "out.zarr"), cfg, planted_truth(store), folder / "fig2")
    assert seen["ylabel"] is None and seen["order"] is None
    assert sorted(f.name for f in (folder / "fig2").iterdir()) == ["coherence_summary.png"]


# ----------------------------------------------------------------------------- 2. Ctrl-C


class _FakeClient:
    class scheduler:  # noqa: N801 - mimics client.scheduler.address
        address = "inproc://fake"

    def scheduler_info(self, **kwargs):
        return {"workers": {}}

    def run(self, fn):
        raise RuntimeError("no workers")


def test_ctrl_c_during_compute_is_one_line_and_exit_130(store, tmp_path, capsys, monkeypatch):
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    keep = Keep()
    logging.getLogger("distributed").addHandler(keep)
    state = {}

    @contextlib.contextmanager
    def fake_connect(config):
        state["sigint_while_starting"] = signal.getsignal(signal.SIGINT)
        try:
            yield _FakeClient()
        finally:  # what a LocalCluster logs while it is torn down mid-computation
            logging.getLogger("distributed.scheduler").error("AllExit: traceback ...")
            logging.getLogger("distributed.worker").warning("KeyboardInterrupt in worker")

    def interrupted(pipeline, **kwargs):
        state["sigint_while_running"] = signal.getsignal(signal.SIGINT)
        raise KeyboardInterrupt

    monkeypatch.setattr(bioxen_dask.cluster, "connect", fake_connect)
    monkeypatch.setattr(bioxen_dask.cluster, "dashboard_link", lambda client: None)
    monkeypatch.setattr(bioxen_dask.pipeline, "run_pipeline", interrupted)
    handler = signal.getsignal(signal.SIGINT)
    import distributed  # noqa: F401  (importing it sets its loggers' levels: before they are read)

    level = logging.getLogger("distributed").level
    out = tmp_path / "o.zarr"
    try:
        code = cli.main(["run", str(bioxen_dask.pipeline.repo_file("pipelines", "small_test.yaml")),
                         "--no-progress", "--set", f"input.store={store}", "--set", f"outputs.path={out}",
                         "--set", f"significance.cache={tmp_path / 'c'}"])
    finally:
        logging.getLogger("distributed").removeHandler(keep)
    err = capsys.readouterr().err
    assert code == 130
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines[-1] == f"interrupted before anything was written to {out}; re-run the same command to start again"
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert records == []  # the shutdown noise was silenced ...
    assert logging.getLogger("distributed").level == level  # ... and the levels are back
    assert state["sigint_while_starting"] == signal.SIG_IGN  # workers start ignoring Ctrl-C
    assert state["sigint_while_running"] == handler == signal.getsignal(signal.SIGINT)


def test_interrupted_message_tells_the_state_of_the_result(finished, store, tmp_path):
    folder, _ = finished
    p = load_pipeline(_cfg(store, folder))
    assert "is complete" in cli._interrupted_message(p) and "nothing is recomputed" in cli._interrupted_message(p)
    import shutil

    shutil.copytree(folder / "out.zarr", tmp_path / "part.zarr")
    zarr.open_group(str(tmp_path / "part.zarr"), mode="r+").attrs["complete"] = False
    p = load_pipeline(_cfg(store, folder, outputs__path=str(tmp_path / "part.zarr")))
    assert cli._interrupted_message(p) == (f"interrupted: the partial result in {tmp_path / 'part.zarr'} is marked "
                                           "incomplete; re-run the same command to resume")


# ----------------------------------------------------------------------------- 6. YAML


def test_yaml_syntax_error_names_the_file_and_line(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("input:\n  store: a.zarr\n grid: [1\noutputs:\n  path: x.zarr\n")
    with pytest.raises(PipelineError, match=rf"^{path}, line 3, column 2: not valid YAML: ") as err:
        load_pipeline(path)
    assert "<unicode string>" not in str(err.value) and " grid: [1" in str(err.value)
    assert cli.main(["run", str(path), "--check"]) == 2
    assert capsys.readouterr().err.startswith(f"bioxen-dask: error: {path}, line 3")


@pytest.mark.parametrize("text, key, line, first", [
    ("input:\n  store: a.zarr\ngrid:\n  dj: 0.5\noutputs:\n  path: x.zarr\ngrid:\n  dj: 0.25\n", "grid", 7, 3),
    ("input:\n  store: a.zarr\ngrid:\n  dj: 0.5\n  max_period: 10\n  dj: 0.25\n", "grid.dj", 6, 4),
    ("pairs:\n  mode: list\n  list:\n  - [0, 1]\n  - {a: 1, a: 2}\n", "pairs.list[1].a", 5, 5),
])
def test_duplicate_keys_are_refused_naming_key_and_lines(tmp_path, capsys, text, key, line, first):
    path = tmp_path / "dup.yaml"
    path.write_text(text)
    with pytest.raises(PipelineError) as err:
        load_pipeline(path)
    assert str(err.value).startswith(f"{path}, line {line}: {key}: duplicate key (first given at line {first})")
    assert cli.main(["run", str(path), "--check"]) == 2
    assert capsys.readouterr().err.startswith("bioxen-dask: error: ")


def test_yaml_merge_keys_may_be_overridden(tmp_path):
    from bioxen_dask.pipeline import read_yaml

    path = tmp_path / "merge.yaml"
    path.write_text("base: &b {dj: 0.5, max_period: 10}\ngrid:\n  <<: *b\n  dj: 0.25\n")
    assert read_yaml(path)["grid"] == {"dj": 0.25, "max_period": 10}


def test_every_panel_of_the_pipeline_figures_says_what_its_axes_are(finished, store, tmp_path, monkeypatch):
    folder, _ = finished
    seen = {}

    def keep(fig, path, plt):
        seen[Path(path).name] = [(ax.get_xlabel(), ax.get_ylabel()) for ax in fig.axes
                                 if ax.get_label() != "<colorbar>"]
        plt.close(fig)
        return str(path)

    monkeypatch.setattr(bioxen_dask.pipeline, "_save", keep)
    cfg = load_pipeline(_cfg(store, folder)).config
    bioxen_dask.pipeline.write_figures(bioxen_dask.datasets.open_result(folder / "out.zarr"), cfg,
                                       bioxen_dask.pipeline.planted_truth(store), tmp_path)
    assert sorted(seen) == ["coherence_summary.png", "pair_coherence.png", "recovery.png"]
    for name, axes in seen.items():
        for x, y in axes:
            assert x.strip() and y.strip(), (name, x, y)


# ----------------------------------------------------------------------------- issue 23: the first hour


def test_resume_accepts_the_same_input_spelled_differently(finished, store, monkeypatch):
    """``input.store=syn.zarr`` and ``./syn.zarr`` (or its absolute path) are the same input: the
    run's identity is the store's content fingerprint, not the text of the path."""
    folder, _ = finished
    monkeypatch.chdir(Path(store).parent)
    for spelling in ("syn.zarr", "./syn.zarr", f"{Path(store).parent}/./syn.zarr"):
        p = load_pipeline(_cfg(spelling, folder))
        assert check(p).facts["action"] == "finish", spelling
    # a store with other content is still another run, named by its fingerprint
    other = write_synthetic(Path(store).parent / "other.zarr", n_rois=24, n_frames=3000, seed=6)
    with pytest.raises(OutputExistsError, match=r"the content of the input store \(fingerprint"):
        check(load_pipeline(_cfg(other, folder)))


def test_a_damaged_result_names_its_regions_and_a_rerun_recomputes_only_those(finished, store, tmp_path, capsys):
    """One chunk truncated: ``info --verify`` names the region (exit 1), ``run --check`` reports
    it, and a re-run of the same pipeline recomputes that region only, giving the original."""
    import shutil

    folder, _ = finished
    copy = tmp_path / "out.zarr"
    shutil.copytree(folder / "out.zarr", copy)
    original = xr.open_zarr(str(folder / "out.zarr")).compute()
    chunk = copy / "coherence_mean" / "c" / "2" / "0"  # region 2 (pairs 12..17, roi_chunk 6)
    chunk.write_bytes(chunk.read_bytes()[:7])
    assert cli.main(["info", str(copy), "--verify", "--json"]) == 1
    info = json.loads(capsys.readouterr().out)
    assert info["verified"] is False
    assert info["damaged_regions"] == [{"region": 2, "dim": "pair", "start": 12, "stop": 18,
                                        "problem": "coherence_mean: a chunk no longer decodes"}]
    cfg = _cfg(store, folder, outputs__path=str(copy), outputs__summary=str(tmp_path / "s.json"),
               outputs__figures=None)
    argv = ["run", str(bioxen_dask.pipeline.repo_file("pipelines", "small_test.yaml")), "--check"]
    for section, keys in cfg.items():
        for key, value in keys.items():
            argv += ["--set", f"{section}.{key}={json.dumps(value)}"]
    assert cli.main(argv) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["action"] == "repair" and [d["region"] for d in report["damaged_regions"]] == [2]
    assert "1 of 4 regions" in captured.err and "recomputes" in captured.err
    summary = run_pipeline(load_pipeline(cfg), progress=False)
    assert summary["write"]["written"] == 1 and summary["write"]["skipped"] == 3
    assert summary["write"]["repaired_regions"] == [2]
    assert bioxen_dask.datasets.verify_result(copy)
    repaired = xr.open_zarr(str(copy)).compute()
    for name in ("coherence_mean", "significant_fraction", "lag"):
        np.testing.assert_array_equal(repaired[name].values, original[name].values, err_msg=name)


def test_info_prints_a_summary_for_a_person_and_json_on_request(finished, store, capsys):
    folder, _ = finished
    assert cli.main(["info", str(folder / "out.zarr")]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"coherence result {folder / 'out.zarr'}: complete")
    assert "reference against 'stimulus': 24 pairs x " in text and "mc_count 20" in text
    assert cli.main(["info", str(store)]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"signals store {store}: complete") and "24 rois x 3000 frames at 30 Hz (100 s)" in text
    assert "references: stimulus" in text
    assert cli.main(["info", str(store), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_rois"] == 24


def test_a_stored_result_exports_to_netcdf_and_reads_back_the_same(finished, tmp_path):
    """Every attribute of a result is netCDF-safe (strings, numbers, lists of one type): the
    stored result goes through ``to_netcdf`` and back unchanged."""
    folder, _ = finished
    ds = bioxen_dask.datasets.open_result(folder / "out.zarr")
    path = tmp_path / "result.nc"
    ds.to_netcdf(path, engine="netcdf4")
    back = xr.open_dataset(path, engine="netcdf4").load()
    ds = ds.compute()
    assert set(back.data_vars) == set(ds.data_vars) and back.sizes == ds.sizes
    for name in list(ds.data_vars) + list(ds.coords):
        np.testing.assert_array_equal(back[name].values, ds[name].values, err_msg=name)
    for key, value in ds.attrs.items():
        got = back.attrs[key]
        got = got.tolist() if isinstance(got, np.ndarray) else got
        want = list(value) if isinstance(value, (list, tuple)) else value
        assert got == want or (isinstance(want, list) and np.atleast_1d(got).tolist() == want), key
    assert json.loads(back.attrs["regions"])["count"] == 4
