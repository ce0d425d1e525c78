"""The equivalence report: CSV and figures, bioxen-dask equal to pycwt, every engine accounted for."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("pycwt")
pytest.importorskip("pywt")  # the ECG signal ships in PyWavelets' wheel

from bioxen_dask.bench import read_csv  # noqa: E402
from bioxen_dask.bench.equivalence import FIELDS, run, summary_markdown  # noqa: E402
from bioxen_dask.engines import ENGINES, available_engines  # noqa: E402


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("equivalence")
    return out, run(out, quick=True)


def test_writes_csv_and_figures(report):
    out, path = report
    assert path == out / "equivalence.csv"
    rows, info, notes = read_csv(path)
    assert set(FIELDS) <= set(rows[0])
    assert {"cpu", "date"} <= set(info) and notes
    for png in ("equivalence_power_nino3.png", "equivalence_wct_synthetic.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert {r["signal"] for r in rows} == {"synthetic", "nino3", "ecg"}
    # one row per (signal, engine), none dropped
    assert sorted((r["signal"], r["engine"]) for r in rows) == sorted(
        (s, e) for s in ("synthetic", "nino3", "ecg") for e in ENGINES)


def test_bioxen_equals_pycwt_and_every_engine_has_a_real_correlation(report):
    rows, _, _ = read_csv(report[1])
    versions = available_engines()
    for r in rows:
        if versions[r["engine"]].startswith("unavailable"):
            assert r["status"] == "missing" and "install" in r["note"], r
            continue
        assert r["status"] == "ok", r
        assert isinstance(r["power_corr"], (int, float)) and math.isfinite(r["power_corr"]), r
        assert 0.99 < r["power_corr"] <= 1.0 + 1e-12, r
        if r["engine"] in ("bioxen", "pycwt"):
            for key in ("power_relerr_max", "coef_relerr_max", "wct_max_abs"):
                assert r[key] < 1e-6, (r["signal"], r["engine"], key, r[key])
        if r["engine"] == "ssqueezepy":
            assert r["wct_max_abs"] < 1e-6, r


def test_summary_markdown_has_a_row_per_engine_and_the_machine(report):
    text = summary_markdown(report[1])
    rows, info, _ = read_csv(report[1])
    assert info["date"] in text and info["cpu"] in text
    table = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(table) == 1 + len(rows)
    assert any("| nino3 | bioxen |" in line for line in table)
