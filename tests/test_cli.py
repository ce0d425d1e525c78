"""The CLI's pipeline commands: run (LocalCluster and a real scheduler), demo, info (bench: tests/test_bench.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bioxen_dask.cli import main
from bioxen_dask.datasets import open_result
from bioxen_dask.io import write_synthetic

REPO = Path(__file__).resolve().parents[1]
SMALL = str(REPO / "pipelines" / "small_test.yaml")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return write_synthetic(tmp_path_factory.mktemp("cli") / "small.zarr", n_rois=30, n_frames=3000, seed=8)


def _sets(store, out, cache, *extra):
    args = ["--set", f"input.store={store}", "--set", f"outputs.path={out}", "--set", f"significance.cache={cache}"]
    for item in extra:
        args += ["--set", item]
    return args


def _run(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_run_on_a_real_scheduler_equals_the_local_cluster(store, tmp_path, capsys, dask_subprocess_cluster):
    cache = tmp_path / "cache"
    local = tmp_path / "local.zarr"
    code, out, err = _run(["run", SMALL, "--cluster", "local", "--no-progress", *_sets(store, local, cache)], capsys)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["cluster"]["kind"] == "local" and summary["cluster"]["workers"] == 2
    assert "dashboard: http://127.0.0.1:" in err  # the dashboard link is printed
    assert summary["recall"] == 1.0  # (a 100 s record: precision is the demo test's business)

    remote = tmp_path / "remote.zarr"
    address = dask_subprocess_cluster.address
    code, out, err = _run(["run", SMALL, "--scheduler", address, "--no-progress", *_sets(store, remote, cache)],
                          capsys)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["cluster"]["kind"] == "address" and summary["cluster"]["workers"] == 2
    assert address in err

    a, b = open_result(local).compute(), open_result(remote).compute()
    assert set(a.data_vars) == set(b.data_vars) and a.sizes == b.sizes
    for name in a.coords:
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
    np.testing.assert_array_equal(a.threshold.values, b.threshold.values)  # bit-identical significance
    # The coherence is float32 work whose last bits depend on BLAS threading (the nanny of the
    # LocalCluster pins one BLAS thread, the --no-nanny workers here do not): equal to rounding.
    for name in ("coherence_mean", "phase_consistency"):
        np.testing.assert_allclose(a[name].values, b[name].values, rtol=0, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(np.exp(1j * a.phase_mean.values), np.exp(1j * b.phase_mean.values), atol=1e-5)
    step = 1.0 / a.coi_samples.values  # one sample outside the COI
    assert np.all(np.abs(a.significant_fraction.values - b.significant_fraction.values) <= step + 1e-12)
    drop = {"run_key", "regions", "pipeline"}
    assert {k: v for k, v in a.attrs.items() if k not in drop} == {k: v for k, v in b.attrs.items() if k not in drop}


def test_run_check_only_and_errors_exit_2(store, tmp_path, capsys):
    code, out, err = _run(["run", SMALL, "--check", *_sets(store, tmp_path / "o.zarr", tmp_path / "c")], capsys)
    assert code == 0 and json.loads(out)["action"] == "create"
    assert not (tmp_path / "o.zarr").exists()
    code, out, err = _run(["run", SMALL, "--check", *_sets(store, tmp_path / "o.zarr", tmp_path / "c",
                                                            "grid.max_perod=3")], capsys)
    assert code == 2 and "grid.max_perod: unknown key. Did you mean 'grid.max_period'?" in err
    code, out, err = _run(["run", SMALL, *_sets(tmp_path / "none.zarr", tmp_path / "o.zarr", tmp_path / "c")], capsys)
    assert code == 2 and "input.store: no signals store" in err
    code, out, err = _run(["run", str(tmp_path / "missing.yaml")], capsys)
    assert code == 2 and "no pipeline file" in err
    code, out, err = _run(["run", SMALL, "--scheduler", "tcp://127.0.0.1:1", "--cluster", "local",
                           *_sets(store, tmp_path / "o.zarr", tmp_path / "c")], capsys)
    assert code == 2 and "--scheduler needs --cluster address" in err


def test_demo_on_a_small_recording(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the demo finds pipelines/ next to the package
    out = tmp_path / "demo"
    code, stdout, err = _run(["demo", "--out", str(out), "--rois", "60", "--frames", "4500", "--no-progress",
                              "--set", "cluster.n_workers=1", "--set", "cluster.threads_per_worker=2",
                              "--set", f"significance.cache={tmp_path / 'cache'}"], capsys)
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["precision"] >= 0.9 and summary["recall"] >= 0.9
    assert summary["wall_time_s"] > 0 and summary["cluster"]["threads"] == 2
    assert json.loads((out / "summary.json").read_text())["precision"] == summary["precision"]
    for name in ("signals.zarr", "coherence.zarr", "coherence_summary.png", "recovery.png", "pair_coherence.png"):
        assert (out / name).exists(), name
    assert str(out / "recovery.png") in summary["outputs"] and all(Path(p).exists() for p in summary["outputs"])
    assert main(["info", str(out / "coherence.zarr"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["complete"] is True and info["parameters"]["mode"] == "reference"
    assert info["variables"]["coherence_mean"]["dims"] == ["pair", "period"]


def test_demo_ao_baltic_writes_what_its_summary_lists(tmp_path, capsys):
    out = tmp_path / "ao"
    code, stdout, err = _run(["demo", "--ao-baltic", "--surrogates", "10", "--out", str(out)], capsys)
    assert code == 0, err
    summary = json.loads(stdout)
    assert str(out / "ao_baltic" / "coherence.png") in summary["outputs"]
    assert all(Path(p).exists() for p in summary["outputs"])
    import pycwt

    from bioxen_dask import sample_data

    _, ao, baltic = sample_data.load_ao_baltic()
    assert summary["ar1"] == {"ao": round(float(pycwt.ar1(ao)[0]), 4), "baltic": round(float(pycwt.ar1(baltic)[0]), 4)}


def test_run_progress_goes_to_stderr_and_stdout_is_the_summary_alone(store, tmp_path, capsys):
    """``bioxen-dask run ... > s.json`` gives a JSON file: bars and logs go to stderr, and to a
    stderr that is not a terminal (a log file) a bar writes a few lines, not one every 0.1 s."""
    code, out, err = _run(["run", SMALL, *_sets(store, tmp_path / "p.zarr", tmp_path / "c", "cluster.n_workers=1",
                                                 "outputs.region_size=2")], capsys)
    assert code == 0, err
    summary = json.loads(out)  # nothing but the summary
    assert summary["write"]["written"] == summary["write"]["regions"] == 15
    assert "100% Completed" in err  # the bars were shown, on stderr
    bar_updates = err.count("% Completed")
    assert 2 <= bar_updates <= 8, err  # start and end of each stage's bar, not a redraw per 0.1 s
    assert "\r" not in err  # lines, not carriage-return redraws, in a log file


def test_demo_ao_baltic_no_progress_shows_no_bar(tmp_path, capsys):
    code, stdout, err = _run(["demo", "--ao-baltic", "--surrogates", "10", "--no-progress",
                              "--out", str(tmp_path / "ao")], capsys)
    assert code == 0, err
    assert json.loads(stdout)["surrogates"] == 10
    assert "%" not in err and "batch" not in err, err  # no tqdm bar of the surrogate batches
