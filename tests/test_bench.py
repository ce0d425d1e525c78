"""The benchmark harness on tiny sizes: it runs, its CSVs say what they measured, the report builds.

No timing is asserted (performance lives in the generated report); what is checked is that
the rows are consistent with each other (ratios, throughputs, skips with their reasons) and
that the report's fits and tables come from the CSVs.
"""

from __future__ import annotations

import math
import shutil
import time

import numpy as np
import pytest

from bioxen_dask.bench import machine_info, machine_label, measure, read_csv, write_csv
from bioxen_dask.bench import _harness as bench_harness
from bioxen_dask.bench import cwt as cwt_bench
from bioxen_dask.bench import significance as sig_bench
from bioxen_dask.bench import wct as wct_bench
from bioxen_dask.bench.report import build_report, fit_exponent, nlogn_exponent
from bioxen_dask.cli import main

CWT_ENGINES = [("bioxen-dask", "float32", "linear"), ("bioxen-dask", "float64", "pycwt"),
               ("pycwt", "float64", "pycwt"), ("no-such-engine", "float32", "-")]


def test_csv_round_trip_keeps_machine_notes_and_numbers(tmp_path):
    info = {"cpu": "test cpu", "cores": "2 logical, 2 usable", "memory": "24 GiB", "date": "2026-12-01 07:00 UTC"}
    rows = [{"engine": "a", "n": 1000, "wall": 0.25, "missing": float("nan"), "status": "ok"},
            {"engine": "b", "n": 10, "wall": 1e-7, "status": "skipped: output 3.0 GiB > memory budget"}]
    path = write_csv(tmp_path / "x" / "t.csv", rows, info, ["a note, with a comma"])
    assert not list(path.parent.glob("*.partial"))
    back, info2, notes = read_csv(path)
    assert info2 == info and notes == ["a note, with a comma"]
    assert back[0]["n"] == 1000 and isinstance(back[0]["n"], int) and back[0]["wall"] == 0.25
    assert math.isnan(back[0]["missing"]) and back[1]["wall"] == 1e-7 and back[1]["status"] == rows[1]["status"]
    assert machine_label(info) == "test cpu, 2 cores, 24 GiB RAM, 2026-12-01 07:00 UTC"
    assert {"cpu", "cores", "memory", "date", "numpy", "pycwt"} <= set(machine_info())


def test_measure_counts_calls_and_rejects_zero_repeats():
    calls = []
    m = measure(lambda: calls.append(np.ones(1000)), repeat=3, memory=True)
    assert len(calls) == 2 + 3 + 1  # two warm-ups (a cheap call), timed, traced
    slow = []
    measure(lambda: (slow.append(1), time.sleep(bench_harness.SECOND_WARMUP_BELOW_S if len(slow) == 1 else 0)),
            repeat=2, memory=False)
    assert len(slow) == 1 + 2  # one warm-up for a call slower than the threshold
    assert m.repeat == 3 and 0 <= m.wall_min <= m.wall_median and m.peak_mb > 0
    with pytest.raises(ValueError, match="repeat must be at least 1"):
        measure(lambda: None, repeat=0)


def test_cwt_benchmark_rows_are_consistent(tmp_path):
    path = cwt_bench.run(tmp_path, quick=True, sizes=[256, 1024], scales=[8], engines=CWT_ENGINES, progress=False)
    rows, info, notes = read_csv(path)
    assert "cpu" in info and "date" in info and notes
    ok = [r for r in rows if r["status"] == "ok"]
    assert {(r["grid"], r["engine"], r["n"]) for r in ok} == {
        (k, e, n) for k in cwt_bench.GRIDS for e, _, _ in CWT_ENGINES[:3] for n in (256, 1024)}
    for r in ok:
        assert r["msamples_scales_per_s"] == pytest.approx(r["n"] * 8 / r["wall_median_s"] / 1e6, rel=1e-4)
        ref = next(p for p in ok if p["engine"] == "pycwt" and p["n"] == r["n"] and p["grid"] == r["grid"])
        assert r["pycwt_over_this"] == pytest.approx(ref["wall_median_s"] / r["wall_median_s"], rel=1e-4)
    failed = [r for r in rows if r["engine"] == "no-such-engine"]
    assert len(failed) == 4 and all(r["status"].startswith("failed: ValueError: unknown engine") for r in failed)


def test_cwt_benchmark_skips_with_reasons(tmp_path):
    path = cwt_bench.run(tmp_path, quick=True, sizes=[256, 4096], scales=[8], engines=CWT_ENGINES[:1],
                         memory_budget=4096 * 8 * 8 - 1, progress=False, grids=("n/8",))
    rows, _, _ = read_csv(path)
    by_n = {r["n"]: r["status"] for r in rows}
    assert by_n[256] == "ok" and by_n[4096].startswith("skipped: needs") and "memory budget" in by_n[4096]
    path = cwt_bench.run(tmp_path, quick=True, sizes=[256, 4096], scales=[8], engines=CWT_ENGINES[:1],
                         max_seconds=0.0, progress=False, grids=("n/8",))
    rows, _, _ = read_csv(path)
    assert [r["status"].split(":")[0] for r in sorted(rows, key=lambda r: r["n"])] == ["ok", "skipped"]
    assert "extrapolated" in rows[-1]["status"]


def test_cwt_benchmark_grid():
    g = cwt_bench.grid_for(1000, 50)
    assert g.n_scales == 50 and g.scales[-1] <= 1000 / 8 + 1e-9
    assert g.periods[0] == pytest.approx(2.0)


def test_wct_benchmark_ratios(tmp_path):
    rows, _, _ = read_csv(wct_bench.run(tmp_path, sizes=[512], repeat=1, memory=False, progress=False))
    parts = {(r["engine"], r["stage"]): r for r in rows if r["stage"].startswith(wct_bench.PART_PREFIX)}
    mr_parts = {r["stage"]: r for r in rows if r["stage"].startswith(wct_bench.MULTIRATE_PART_PREFIX)}
    get = {(r["engine"], r["stage"]): r for r in rows if (r["engine"], r["stage"]) not in parts
           and r["stage"] not in mr_parts}
    assert any("fused tiles" in st for st in mr_parts) and any(" band " in st for st in mr_parts)
    assert all(r["engine"] == wct_bench.MULTIRATE and r["status"] == "ok" for r in mr_parts.values())
    hybrids = {(f"hybrid {e}", "wct") for e in ("pycwt", "pywavelets", "ssqueezepy", "fcwt")}
    natives = ("bioxen-dask", wct_bench.ALL_CORES, "bioxen-dask compat")
    multirate = {(e, "wct") for e in (wct_bench.MULTIRATE, wct_bench.MULTIRATE_ALL_CORES)}
    assert set(get) == {(e, s) for e in natives + ("pycwt",) for s in ("wct", "2 x cwt")} | hybrids | multirate
    for key in multirate:  # timed, with its distance from the exact path measured in the note
        err = float(get[key]["note"].rsplit("= ", 1)[1])
        assert get[key]["status"] == "ok" and get[key]["pycwt_over_this"] > 0 and 0 < err < 1e-5
    for key in hybrids:  # each external engine end to end, or the reason it is missing
        assert get[key]["status"] == "ok" or get[key]["status"].startswith("missing: the ")
    for e in natives + ("pycwt",):
        w, two = get[(e, "wct")], get[(e, "2 x cwt")]
        assert w["wct_over_2cwt"] == pytest.approx(w["wall_median_s"] / two["wall_median_s"], rel=1e-4)
        assert w["pycwt_over_this"] == pytest.approx(get[("pycwt", "wct")]["wall_median_s"] / w["wall_median_s"],
                                                     rel=1e-4)
    steps = {wct_bench.PART_PREFIX + p for p in ("|W|^2 x2, W1 W2*", "time smoothing x3", "scale smoothing x3", "phase")}
    for e in natives[:2]:  # the native time split into its steps, and by scale band
        stages = {st for (en, st) in parts if en == e}
        assert steps <= stages and all(parts[e, st]["status"] == "ok" and parts[e, st]["wall_median_s"] > 0
                                       for st in stages)
    from bioxen_dask.grid import make_grid

    grid = make_grid(4000, wct_bench.DT)  # long enough for overlap-save bands at the smallest scales
    x, y = wct_bench._pair(4000)
    bands = sorted(st for st in wct_bench._part_callers(x, y, grid, None) if st not in steps)
    assert len(bands) == 2 and bands[0].endswith("largest scales") and bands[1].endswith("smallest scales")
    assert sum(int(st.split()[2]) for st in bands) == grid.n_scales
    R2, _ = wct_bench._part_callers(x, y, grid, None)[bands[1]][0]()
    assert R2.shape == (int(bands[1].split()[2]), 4000)
    import pycwt

    x, y = wct_bench._pair(512)
    assert get[("pycwt", "wct")]["n_scales"] == len(pycwt.wct(x, y, wct_bench.DT, sig=False)[3])  # pycwt's own grid


def test_significance_benchmark_marks_extrapolations(tmp_path):
    rows, _, notes = read_csv(sig_bench.run(tmp_path, sizes=[128], counts=[0, 4], progress=False))
    get = {(r["engine"], r["mc_count"]): r for r in rows}
    hybrids = {(f"hybrid {e} exact", 4) for e in ("pycwt", "pywavelets", "ssqueezepy", "fcwt")}
    assert set(get) == {(e, c) for e in ("pycwt", "bioxen-dask multirate", "bioxen-dask exact")
                        for c in (0, 4)} | hybrids
    for key in hybrids:
        assert get[key]["status"] == "ok" or get[key]["status"].startswith("missing: the ")
    py = get[("pycwt", 4)]
    assert py["measured"] == "extrapolated" and py["per_surrogate_s"] > 0
    assert py["wall_s"] > 4 * py["per_surrogate_s"]
    for e in ("bioxen-dask multirate", "bioxen-dask exact"):
        r = get[(e, 4)]
        assert r["measured"] == "yes" and r["pycwt_over_this"] == pytest.approx(py["per_surrogate_s"] / r["per_surrogate_s"],
                                                                               rel=1e-3)
        assert e.split()[-1] in r["note"]
    assert get[("pycwt", 0)]["wall_s"] > 0 and "AR(1) null" in notes[0]


@pytest.fixture(scope="module")
def wct_small(tmp_path_factory):
    """``bench wct`` at 256 and 512 samples (its CSV for the report tests), run once."""
    out = tmp_path_factory.mktemp("wct-small")
    wct_bench.run(out, sizes=[256, 512], repeat=1, memory=False, progress=False)
    return out


def test_report_from_the_csvs(tmp_path, wct_small):
    out, docs = tmp_path / "out", tmp_path / "docs"
    cwt_bench.run(out, quick=True, sizes=[1024, 16384, 65536], scales=[8], engines=CWT_ENGINES[:3], progress=False)
    shutil.copytree(wct_small, out, dirs_exist_ok=True)  # the small wct bench, run once
    report = build_report(out, docs)
    text = report.read_text()
    rows, info, _ = read_csv(out / "cwt.csv")
    assert machine_label(info) in text
    for name in ("cwt_scaling.png", "wct_pair.png"):
        assert (docs / "performance" / name).stat().st_size > 5000
        assert f"(performance/{name})" in text
    # the fitted exponents in the report are those of the CSV's rows (the report's tables: the n/8 grid)
    pts = sorted((r["n"], r["wall_median_s"]) for r in rows
                 if r["engine"] == "pycwt" and r["n"] >= 10_000 and r["grid"] == "n/8")
    assert f"| {fit_exponent(*zip(*pts)):.2f} | {nlogn_exponent([p[0] for p in pts]):.2f} |" in text
    assert "Not measured yet: run `bioxen-dask bench significance`" in text
    assert "Where the native time goes at N = 512" in text and "| time smoothing x3 |" in text
    assert "| \\|W\\|^2 x2, W1 W2* |" in text  # a "|" inside a cell is escaped
    assert "Where the multirate time goes at N = 512" in text and "| fused tiles, scales 0-" in text
    assert "## Which setup a dataset needs" in text and "not measured" not in text.split("## Which setup")[1].lower()


def test_fits_recover_known_laws():
    n = np.array([1e4, 1e5, 1e6, 1e7])
    assert fit_exponent(n, 3e-9 * n**1.5) == pytest.approx(1.5)
    assert fit_exponent(n, n * np.log(n)) == pytest.approx(nlogn_exponent(n))
    assert 1.05 < nlogn_exponent(n) < 1.1


def test_cli_bench_report_and_errors(tmp_path, capsys, wct_small):
    out = tmp_path / "out"
    shutil.copytree(wct_small, out, dirs_exist_ok=True)  # the small wct bench, run once
    assert main(["bench", "report", "--out", str(out), "--docs", str(tmp_path / "d")]) == 0
    assert (tmp_path / "d" / "performance.md").is_file()
    assert main(["bench", "report", "--out", str(tmp_path / "nothing"), "--docs", str(tmp_path / "d")]) == 2
    assert "no benchmark results" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bench", "no-such-benchmark"])


@pytest.mark.parametrize("bad", [[0], [1.5], ["x"], [float("nan")]])
def test_benchmark_options_are_checked_before_anything_runs(tmp_path, bad):
    with pytest.raises(ValueError, match=r"sizes must be whole numbers of at least 16, got"):
        cwt_bench.run(tmp_path, sizes=bad, scales=[8], progress=False)
    with pytest.raises(ValueError, match=r"counts must be whole numbers of at least 0"):
        sig_bench.run(tmp_path, sizes=[128], counts=[-1], progress=False)
    assert not list(tmp_path.iterdir())


def test_pycwt_fft_mode_names_pycwts_fft(monkeypatch):
    """The reference is pycwt as installed by default; with pyFFTW it would compute other numbers."""
    from types import SimpleNamespace

    from pycwt import helpers

    from bioxen_dask.bench import pycwt_fft_mode

    assert pycwt_fft_mode() == "scipy.fftpack (power-of-two padding: pycwt's default)"
    assert machine_info()["pycwt_fft"] == pycwt_fft_mode()
    monkeypatch.setattr(helpers, "fft", SimpleNamespace(__name__="pyfftw.interfaces.scipy_fftpack"))
    assert pycwt_fft_mode().startswith("pyFFTW (no power-of-two padding")


def test_bench_all_runs_each_benchmark_in_its_own_process(tmp_path):
    """`bench all` isolates each benchmark (fCWT leaks a buffer per call: in one process the
    leaks of one benchmark crowded the next, and a 24 GB machine killed the run); a child that
    dies is reported by its exit status, not taken for a result."""
    import bioxen_dask.cli as cli

    path, error = cli._bench_in_child("equivalence", str(tmp_path / "out"), True)
    assert error is None and path.endswith("equivalence.csv") and (tmp_path / "out" / "equivalence.csv").is_file()
    path, error = cli._bench_in_child("no-such-benchmark", str(tmp_path / "out"), True)
    assert path is None and "its process ended with status 1" in error


def test_report_grids_table_and_rebuilding_the_cwt_parts_alone(tmp_path, capsys, wct_small):
    """The CWT section shows both grids and both methods against pycwt (from the CSV's rows);
    ``--only cwt`` rebuilds the CWT parts inside an existing report and keeps the others."""
    out, docs = tmp_path / "out", tmp_path / "docs"
    engines = [("bioxen-dask", "float32", "linear"), ("bioxen-dask", "float32", "linear multirate"),
               ("pycwt", "float64", "pycwt")]
    cwt_bench.run(out, quick=True, sizes=[1024, 16384], scales=[8], engines=engines, progress=False)
    shutil.copytree(wct_small, out, dirs_exist_ok=True)  # the small wct bench, run once
    report = build_report(out, docs)
    rows, _, _ = read_csv(out / "cwt.csv")
    text = report.read_text()
    assert "Command: `bioxen-dask bench cwt --sizes 1024,16384 --scales 8 --quick`." in text
    for grid in cwt_bench.GRIDS:
        get = {r["variant"]: r for r in rows if r["grid"] == grid and r["n"] == 16384}
        ex, mr = get["linear"], get["linear multirate"]
        assert (f"| {grid} | 2e+04 | 8 | {get['pycwt']['wall_median_s']:.3f} | {ex['wall_median_s']:.3f} | "
                f"{ex['pycwt_over_this']:.1f} | {mr['wall_median_s']:.3f} | {mr['pycwt_over_this']:.1f} | "
                f"{mr['err_vs_exact']:.1e} |") in text
    # a hand mark in a section of another benchmark survives a rebuild of the CWT parts alone
    marked = text.replace("## Wavelet coherence of one pair\n", "## Wavelet coherence of one pair\n\nKEEP ME\n")
    report.write_text(marked)
    cwt_bench.run(out, quick=True, sizes=[1024, 4096], scales=[8], engines=engines, progress=False)
    assert main(["bench", "report", "--only", "cwt", "--out", str(out), "--docs", str(docs)]) == 0
    assert "sections of cwt only" in capsys.readouterr().err
    new = report.read_text()
    assert "KEEP ME" in new and "--sizes 1024,4096 --scales 8" in new and "--sizes 1024,16384" not in new
    assert new.split("## Wavelet coherence")[1] == marked.split("## Wavelet coherence")[1]
    assert new.count("## CWT: how each engine scales") == 1 and new.count("## Memory:") == 1
    with pytest.raises(ValueError, match="only= rebuilds the parts of"):
        build_report(out, docs, only=["wct"])
    with pytest.raises(FileNotFoundError, match="no significance.csv"):
        build_report(out, docs, only=["significance"])
    assert main(["bench", "wct", "--sizes", "1e3", "--out", str(out)]) == 2
    assert "--sizes/--scales/--max-seconds set the matrix of `bench cwt` only" in capsys.readouterr().err
    assert main(["bench", "cwt", "--sizes", "1e3,x", "--out", str(out)]) == 2
    assert "--sizes takes comma-separated numbers" in capsys.readouterr().err


# ----------------------------------------------------------------------------- all pairs (issue 19)


@pytest.fixture(scope="module")
def allpairs_json(tmp_path_factory):
    from bioxen_dask.bench import allpairs

    return allpairs.run(tmp_path_factory.mktemp("allpairs"), quick=True, cluster_workers=None, progress=False)


def test_allpairs_benchmark_ratios_come_from_its_times(allpairs_json):
    import json

    from bioxen_dask.bench import allpairs

    r = json.loads(allpairs_json.read_text())
    rois, frames = allpairs.QUICK_SIZE
    assert r["data"]["rois"] == rois and r["data"]["frames"] == frames and r["grid"]["periods"] == 72
    assert {"cpu", "date", "load_avg"} <= set(r["machine"]) and "shared machine" in r["contention"]
    c = r["candidates"]
    assert set(c) == {"bioxen-dask", "pycwt", "mne-connectivity"}
    assert c["bioxen-dask"]["pairs"] == rois * (rois - 1) // 2 == c["mne-connectivity"]["pairs"]
    for name, cand in c.items():
        assert cand.get("status", "ok") == "ok", cand
        assert cand["cpu_s"] > 0 and cand["wall_s"] > 0
        assert cand["cpu_ms_per_pair"] == pytest.approx(1e3 * cand["cpu_s"] / cand["pairs"])
        assert cand["wall_ms_per_pair"] == pytest.approx(1e3 * cand["wall_s"] / cand["pairs"])
    for name in ("pycwt", "mne-connectivity"):
        ratio = r["ratios"][name]
        assert math.isfinite(ratio["cpu_over_bioxen"]) and math.isfinite(ratio["wall_over_bioxen"])
        assert ratio["cpu_over_bioxen"] == pytest.approx(c[name]["cpu_ms_per_pair"] / c["bioxen-dask"]["cpu_ms_per_pair"])
        assert ratio["wall_over_bioxen"] == pytest.approx(c[name]["wall_ms_per_pair"] / c["bioxen-dask"]["wall_ms_per_pair"])
    mne = c["mne-connectivity"]  # a per roi, b per pair: both measured runs on the line a n + b n(n-1)/2
    assert [m["rois"] for m in mne["runs"]] == [rois // 2, rois]
    for m in mne["runs"]:
        assert mne["cpu_s_per_roi"] * m["rois"] + mne["cpu_ms_per_pair_asymptotic"] / 1e3 * m["pairs"] == \
            pytest.approx(m["cpu_s"], rel=1e-6)
    assert any("significance" in s for s in mne["lacks"]) and any("time resolution" in s for s in mne["lacks"])
    assert -1 <= r["agreement"]["pearson_r"] <= 1
    wb = r["whole_brain"]
    assert wb["pairs"] == 49_995_000
    gr = r["graph"]  # the graph's tasks counted at small sizes, extrapolated per tile
    assert [g["rois"] for g in gr["sizes"]] == [rois] and gr["sizes"][0]["tiles"] == 1
    assert gr["per_tile"] == pytest.approx(gr["sizes"][0]["tasks"]) and gr["fixed"] == 0
    assert wb["other_tasks"] == round((gr["per_tile"] - 1) * wb["tile_tasks"]) and r["task_costs"] is None
    assert wb["cpu_hours"] == pytest.approx(wb["pairs"] * c["bioxen-dask"]["cpu_ms_per_pair"] / 3.6e6)
    assert wb["wall_hours"]["1"] == pytest.approx(wb["cpu_hours"])  # the tiles hold every pair once
    sim = wb["simulated"]
    assert [s["workers"] for s in sim] == list(allpairs.SIMULATED_WORKERS)
    assert all(0 < s["efficiency"] <= 1 + 1e-12 for s in sim)
    assert wb["wall_hours"]["64"] == pytest.approx(sim[-1]["job_s"] / 3600)


def test_allpairs_section_and_refresh(allpairs_json, tmp_path):
    from bioxen_dask.bench.report import ALLPAIRS_TITLE, refresh_sections

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "performance.md").write_text(f"# Performance\n\n## A\n\nkept\n\n## {ALLPAIRS_TITLE}\n\nSTALE-SECTION\n\n"
                                         "## Which setup a dataset needs\n\nkept too\n")
    text = refresh_sections(["allpairs"], allpairs_json.parent, docs).read_text()
    assert "STALE-SECTION" not in text and text.count(f"## {ALLPAIRS_TITLE}") == 1
    assert "## A\n\nkept\n\n## " in text and text.endswith("## Which setup a dataset needs\n\nkept too\n")
    assert "mne-connectivity 0.9.0" in text and "no significance test" in text and "| workers P |" in text
    assert "49,995,000 pairs" in text and "shared machine" in text
    with pytest.raises(ValueError, match="unknown section 'nope'"):
        refresh_sections(["nope"], allpairs_json.parent, docs)
    assert main(["bench", "report", "--only", "allpairs", "--out", str(allpairs_json.parent),
                 "--docs", str(docs)]) == 0


def test_allpairs_tiles_are_the_coherence_plan():
    from bioxen_dask.bench.allpairs import _tile_pairs, scaling_models
    from bioxen_dask.coherence import _all_pairs_plan

    for rois, tile in ((10, 3), (12, 4), (7, 7), (5, 2)):
        assert _tile_pairs(rois, tile) == list(_all_pairs_plan(np.arange(rois), tile).pair_chunks)
    (stage,) = scaling_models(0.01, 3, rois=10, overhead_s=0.5)
    assert sum(stage["durations"]) == pytest.approx(0.01 * 45) and stage["overhead_s"] == 0.5


def test_allpairs_task_costs_from_a_cluster_run():
    import dask.array as da

    from bioxen_dask.bench.allpairs import _task_costs

    costs = _task_costs(da.ones(8, chunks=2).sum(), 1)
    assert costs["tasks"] > 0 and costs["wall_s"] > 0 and costs["serial_s"] >= 0
    assert costs["scheduler_s"] == pytest.approx(costs["client_cpu_s"] / costs["tasks"])


def test_report_takes_the_all_pairs_row_from_allpairs_json(allpairs_json, tmp_path, wct_small):
    from bioxen_dask.bench.report import ALLPAIRS_TITLE

    out = tmp_path / "out"
    shutil.copytree(wct_small, out, dirs_exist_ok=True)  # the small wct bench, run once
    shutil.copy(allpairs_json, out / "allpairs.json")
    text = build_report(out, tmp_path / "docs").read_text()
    assert f"## {ALLPAIRS_TITLE}" in text and text.index(ALLPAIRS_TITLE) < text.index("## Which setup")
    row = next(line for line in text.splitlines() if line.startswith("| all pairs of 1,000 rois"))
    assert row.endswith("simulated) |") and "measured by `bioxen-dask bench allpairs`" in text
