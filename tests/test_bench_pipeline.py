"""bioxen_dask.bench.pipeline: the whole-dataset benchmark at smoke-test size."""

from __future__ import annotations

import math

import pytest

from bioxen_dask.bench import pipeline as bench
from bioxen_dask.bench._harness import read_csv


def test_lpt_and_simulation_are_bounded_by_the_ideal():
    assert bench.lpt_makespan([5, 4, 3, 3, 3], 2) == 10.0  # LPT: {5, 3} and {4, 3, 3}
    stages = [{"name": "check", "serial_s": 1.0},
              {"name": "pair", "serial_s": 0.5, "durations": [2.0, 1.0, 1.0, 0.5] * 8, "overhead_s": 0.01}]
    rows = bench.simulate(stages, [1, 2, 4, 64])
    assert rows[0]["speedup"] == 1.0 and rows[0]["efficiency"] == 1.0
    for r in rows:
        assert 0 < r["efficiency"] <= 1 and 0 < r["efficiency_pair"] <= 1
        assert math.isclose(r["job_s"], r["check_s"] + r["pair_s"])
    assert rows[-1]["pair_s"] >= 0.5 + 2.01  # never shorter than the serial part plus the longest task
    with pytest.raises(ValueError, match="workers"):
        bench.lpt_makespan([1.0], 0)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench-pipeline")
    return bench.run(out, quick=True, rois=8, frames=1200, workers=(1, 2))


def test_quick_run_writes_consistent_csv_and_figure(quick_run):
    path = quick_run
    assert path.is_file() and (path.parent / "pipeline_scaling.png").stat().st_size > 0
    assert not (path.parent / "pipeline-work").exists()  # work stores removed
    rows, info, _ = read_csv(path)
    assert "cpu" in info and "load_avg" in info
    by = {}
    for r in rows:
        by.setdefault(r["kind"], []).append(r)
    assert {"synth", "stage", "tasks", "pycwt", "workers", "simulated", "target", "method", "model"} <= set(by)
    (other,) = by["method"]  # the shipped pipeline's method, and the other one side by side
    assert other["stage"] == "pair, compute.method exact" and other["workers"] == 2 and other["wall_s"] > 0
    assert math.isclose(other["speedup"], other["wall_s"] / by["workers"][-1]["wall_s"], rel_tol=1e-4)
    stages = {r["stage"]: r for r in by["stage"]}
    assert set(stages) == {"check", "significance", "pair", "total"}
    parts = [stages[s] for s in ("check", "significance", "pair")]
    assert math.isclose(stages["total"]["wall_s"], sum(r["wall_s"] for r in parts), rel_tol=1e-4)
    assert stages["total"]["tasks"] == sum(r["tasks"] for r in parts) and stages["pair"]["tasks"] > 0
    assert all(r["wall_s"] > 0 and r["cpu_s"] > 0 for r in parts if r["stage"] != "check")
    assert stages["total"]["value"] == 8  # pairs
    task_sum = sum(r["wall_s"] for r in by["tasks"] if r["stage"].startswith("pair: "))
    assert task_sum <= stages["pair"]["wall_s"] * stages["pair"]["workers"] * 1.05
    assert [r["workers"] for r in by["workers"]] == [1, 2]
    for r in by["workers"]:
        assert r["wall_s"] > 0 and r["efficiency"] > 0 and math.isfinite(r["speedup"])
    assert by["workers"][0]["efficiency"] == 1.0 and by["workers"][0]["value"] == 1.0  # CPU ratio
    sim = by["simulated"]
    assert [r["workers"] for r in sim] == list(bench.SIMULATED_WORKERS)
    assert all(0 < r["efficiency"] <= 1 for r in sim)
    assert all(a["wall_s"] >= b["wall_s"] for a, b in zip(sim, sim[1:]))  # more workers never slower
    model = {r["stage"]: r for r in by["model"]}  # what bounds the simulation, per stage
    assert set(model) == {"check", "significance", "pair"}
    pair = model["pair"]
    assert 0 < pair["value"] <= pair["tasks"] <= stages["pair"]["tasks"] and 0 < pair["efficiency"] <= 1
    assert pair["cpu_s"] <= task_sum * 1.0001 + pair["tasks"] * 1.0  # task time: durations + gaps
    py = {r["stage"]: r for r in by["pycwt"]}
    assert py["wct per pair"]["wall_s"] > 0
    assert math.isclose(py["wct per pair"]["value"], py["wct per pair"]["wall_s"] * 8, rel_tol=1e-4)


def test_summary_markdown_has_the_tables(quick_run):
    md = bench.summary_markdown(quick_run)
    for heading in ("The whole dataset", "pycwt", "Scaling, measured", "Scaling, simulated", "compute.method exact",
                    "What bounds the simulated scaling"):
        assert heading in md
    assert "| workers P |" in md and "cores" in md


def test_scaling_limits_name_the_bound():
    stage = {"name": "pair", "serial_s": 2.0, "durations": [1.0] * 100, "overhead_s": 0.0, "scheduler_s": 0.05}
    lim = bench.scaling_limits(stage)
    assert lim["tasks"] == 100 and lim["task_s"] == 100.0
    assert lim["scheduler_bound_workers"] == pytest.approx(20.0)  # 1 s tasks, 50 ms each to hand out
    rows = bench.simulate([stage], [16, 64])
    assert rows[1]["pair_s"] == pytest.approx(2.0 + 100 * 0.05)  # beyond 20 workers: the scheduler's bound
    assert lim["serial_bound_efficiency_64"] == pytest.approx(102 / (64 * (2 + 100 / 64)))


def test_simulation_is_bounded_by_the_scheduler():
    stage = {"name": "pair", "serial_s": 0.0, "durations": [0.01] * 1000, "overhead_s": 0.0, "scheduler_s": 0.001}
    rows = bench.simulate([stage], [1, 64])
    assert rows[1]["pair_s"] == pytest.approx(1.0)  # 1000 tasks x 1 ms, not 10 s / 64
    assert 0 < rows[1]["efficiency"] <= 1
