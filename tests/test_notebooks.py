"""The example notebooks run end to end (nbclient) with small sizes, and their outputs are sane.

Each notebook is executed in a temporary directory with parameters injected after its
``parameters`` cell (papermill style).  The kernel is this interpreter's ipykernel: a
kernelspec written to a temporary folder names ``sys.executable``, so the notebooks run in the
same environment as the tests whatever kernels the user has installed.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

pytestmark = pytest.mark.slow  # the integration tier: pytest -m "not slow" leaves it out

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"


@pytest.fixture(scope="module")
def kernel_dir(tmp_path_factory):
    """A kernelspec 'python3' that starts ipykernel with this interpreter."""
    folder = tmp_path_factory.mktemp("kernels")
    spec = folder / "python3"
    spec.mkdir()
    pythonpath = os.pathsep.join(p for p in [str(REPO), os.environ.get("PYTHONPATH", "")] if p)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "bioxen-dask tests", "language": "python",
        "env": {"PYTHONPATH": pythonpath, "MPLBACKEND": "Agg"},
    }))
    return folder


# Appended to a notebook under test: prints the labels of every figure it left open.
FIGURE_REPORT = """
import json as _json, matplotlib.pyplot as _plt
print("FIGURES " + _json.dumps([
    {"suptitle": (f._suptitle.get_text() if f._suptitle else ""),
     "axes": [{"x": a.get_xlabel(), "y": a.get_ylabel(), "title": a.get_title(),
               "xticks": [t.get_text() for t in a.get_xticklabels()],
               "colorbar": a.get_label() == "<colorbar>"} for a in f.axes]}
    for f in map(_plt.figure, _plt.get_fignums())]))
"""


def _figures(nb) -> list[dict]:
    (line,) = [x for x in _outputs_text(nb).splitlines() if x.startswith("FIGURES ")]
    return json.loads(line[len("FIGURES "):])


def _assert_labelled(figures: list[dict]) -> None:
    """Every plotting axes says what is on it: a y label, an x label (or named x ticks),
    and no raw variable names (``coherence_mean``) as labels."""
    assert figures
    for f in figures:
        for a in f["axes"]:
            if a["colorbar"]:
                assert a["y"] or a["x"], f
                continue
            assert a["y"], f"axes without a y label: {a}"
            assert a["x"] or any(a["xticks"]), f"axes without an x label: {a}"
            for label in (a["x"], a["y"]):
                assert not re.fullmatch(r"[a-z]+(_[a-z0-9]+)+", label.strip()), f"raw variable name as label: {label!r}"


def _execute(name: str, params: dict, cwd: Path, kernel_dir: Path, monkeypatch, timeout: int = 90,
             append: str | None = None):
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager

    for var in ("DASK_GATEWAY_ADDRESS", "DASK_GATEWAY__ADDRESS", "DASK_SCHEDULER_ADDRESS"):
        monkeypatch.delenv(var, raising=False)  # the notebooks start a LocalCluster
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), f"{name} is stored with outputs"
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    source = "\n".join(f"{k} = {v!r}" for k, v in params.items())
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]}))
    if append:
        nb.cells.append(nbformat.v4.new_code_cell(append))
    km = AsyncKernelManager(kernel_name="python3", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernel_dir)]))
    client = nbclient.NotebookClient(nb, km=km, kernel_name="python3", timeout=timeout,
                                     resources={"metadata": {"path": str(cwd)}})
    client.execute()
    return nb


def _outputs_text(nb) -> str:
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            out.append(o.get("text", "") or "".join(o.get("data", {}).get("text/plain", "")))
    return "\n".join(out)


def test_kernel_is_this_interpreter(tmp_path, kernel_dir, monkeypatch):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("X = 0", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("import sys, bioxen_dask; print(sys.executable); print(X)"),
    ])
    path = tmp_path / "probe.ipynb"
    nbformat.write(nb, path)
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager

    km = AsyncKernelManager(kernel_name="python3", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernel_dir)]))
    nbclient.NotebookClient(nb, km=km, kernel_name="python3", timeout=30,
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    lines = _outputs_text(nb).split()
    assert lines[0] == sys.executable and lines[1] == "0"


def test_notebooks_are_generated_by_build_script(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("bioxen_notebooks_build", NOTEBOOKS / "_build.py")
    _build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(_build)
    for path in _build.build(tmp_path):
        stored = nbformat.read(NOTEBOOKS / path.name, as_version=4)
        fresh = nbformat.read(path, as_version=4)
        assert [c.source for c in stored.cells] == [c.source for c in fresh.cells], (
            f"{path.name} differs from notebooks/_build.py: run python notebooks/_build.py")
        first_code = next(c for c in stored.cells if c.cell_type == "code")
        assert "parameters" in first_code.metadata.get("tags", [])


def test_notebooks_use_only_the_public_api():
    """Notebooks are examples for users: every ``bioxen_dask`` name they import is public
    (listed in its module's ``__all__``, or a public submodule), none starts with ``_``."""
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            for node in ast.walk(ast.parse(cell.source)):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("bioxen_dask"):
                    assert not any(part.startswith("_") for part in node.module.split(".")), (path.name, node.module)
                    module = importlib.import_module(node.module)
                    public = set(getattr(module, "__all__", ()))
                    for alias in node.names:
                        name = alias.name
                        is_submodule = importlib.util.find_spec(f"{node.module}.{name}") is not None \
                            if hasattr(module, "__path__") else False
                        assert not name.startswith("_") and (name in public or is_submodule), (
                            f"{path.name}: from {node.module} import {name} is not public API")
                elif isinstance(node, ast.Import):
                    for alias in node.names:
                        assert not any(p.startswith("_") for p in alias.name.split(".")), (path.name, alias.name)
                elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                    base = node.value
                    if isinstance(base, ast.Name) and base.id in ("bioxen_dask", "bd", "plot", "compat"):
                        raise AssertionError(f"{path.name}: private attribute {base.id}.{node.attr}")


def test_01_quickstart(tmp_path, kernel_dir, monkeypatch):
    from bioxen_dask.datasets import open_result
    from bioxen_dask.io import open_signals_store
    from bioxen_dask.pipeline import evaluate_recovery

    nb = _execute("01_quickstart.ipynb", {"N_ROIS": 30, "N_FRAMES": 3000, "MC_COUNT": 20, "N_WORKERS": 2,
                                          "WORKDIR": "qs"}, tmp_path, kernel_dir, monkeypatch, append=FIGURE_REPORT)
    _assert_labelled(_figures(nb))
    work = tmp_path / "qs"
    result = open_result(work / "coherence.zarr").compute()
    assert result.sizes["pair"] == 30 and result.attrs["mode"] == "reference"
    c = result["coherence_mean"].values
    assert np.isfinite(c).all() and (c >= 0).all() and (c <= 1 + 1e-6).all()
    f = result["significant_fraction"].values
    assert (np.nan_to_num(f) >= 0).all() and (np.nan_to_num(f) <= 1).all()
    signals = open_signals_store(work / "signals.zarr")
    truth = {"group": signals["truth_group"].values, "groups": list(signals.attrs["truth_groups"])}
    recovery = evaluate_recovery(result, truth)  # recomputed here, not trusted from the notebook
    assert recovery["recall"] == 1.0, recovery  # every planted roi found at its period
    assert all(g["recovered"] == g["planted"] > 0 for g in recovery["groups"])
    assert json.loads((work / "recovery.json").read_text())["recall"] == recovery["recall"]
    for png in ("coherence_summary.png", "recovery.png", "population.png", "pair_coherence.png"):
        assert (work / "figures" / png).stat().st_size > 1000, png


def test_02_suite2p_ingest(tmp_path, kernel_dir, monkeypatch):
    from bioxen_dask.datasets import open_result
    from bioxen_dask.io import open_signals_store

    _execute("02_suite2p_ingest.ipynb", {"N_ROIS": 24, "N_FRAMES": 3000, "MC_COUNT": 10, "N_WORKERS": 1,
                                         "WORKDIR": "s2p"}, tmp_path, kernel_dir, monkeypatch)
    work = tmp_path / "s2p"
    iscell = np.load(work / "suite2p" / "plane0" / "iscell.npy")
    cells = np.flatnonzero(iscell[:, 0] > 0.5)
    store = open_signals_store(work / "signals.zarr")
    np.testing.assert_array_equal(store["roi"].values, cells)  # cells only, source indices kept
    result = open_result(work / "coherence.zarr").compute()
    assert result.sizes["pair"] == cells.size
    c = result["coherence_mean"].values
    assert np.isfinite(c).all() and (c >= 0).all() and (c <= 1 + 1e-6).all()
    assert json.loads((work / "summary.json").read_text())["pairs"] == cells.size


def test_03_long_recordings(tmp_path, kernel_dir, monkeypatch):
    import xarray as xr

    nb = _execute("03_long_recordings.ipynb", {"N_FRAMES": 36_000, "TIME_CHUNK": 8192, "FS": 10.0, "WORKDIR": "long"},
                  tmp_path, kernel_dir, monkeypatch, append=FIGURE_REPORT)
    (figure,) = _figures(nb)
    _assert_labelled([figure])
    for axes in figure["axes"]:  # power of a trace stored in a.u. is in a.u.^2; time and period in s or h
        assert "a.u.²" in axes["y"], axes
        assert axes["x"] in ("time (h)", "period (s)"), axes
    bp = xr.open_zarr(tmp_path / "long" / "band_power.zarr")["band_power"].load()
    assert bp.sizes["band"] == 2 and bp.sizes["time"] == 36_000 // 600
    v = bp.isel(roi=0).values  # (band, minute)
    assert np.isfinite(v).all() and (v >= 0).all()
    half = v.shape[1] // 2
    # the 8 s rhythm dominates band 0 in the first half, the 20 s rhythm band 1 in the second
    assert v[0, 1:half - 1].mean() > 3 * v[0, half + 1:-1].mean()
    assert v[1, half + 1:-1].mean() > 3 * v[1, 1:half - 1].mean()
    assert (tmp_path / "long" / "long_recording.png").stat().st_size > 1000


def test_04_performance_runs_the_benchmark_when_no_results(tmp_path, kernel_dir, monkeypatch):
    import pandas as pd

    (tmp_path / "empty").mkdir()
    nb = _execute("04_performance.ipynb", {
        "SEARCH_DIRS": [str(tmp_path / "empty")], "REPO_ROOT": str(REPO), "WORKDIR": "perf",
        "BENCH_KWARGS": {"quick": True, "sizes": [1000], "scales": [20], "memory": False,
                         "engines": [("bioxen-dask", "float32", "linear"), ("bioxen-dask", "float32", "circular"),
                                     ("bioxen-dask", "float64", "pycwt"), ("pycwt", "float64", "pycwt")]},
    }, tmp_path, kernel_dir, monkeypatch, append=FIGURE_REPORT)
    (figure,) = _figures(nb)
    _assert_labelled([figure])
    from bioxen_dask.bench import read_csv

    info = read_csv(tmp_path / "perf" / "cwt.csv")[1]
    # a timing plot names the machine and date it was measured on
    assert info["cpu"] in figure["axes"][0]["title"] and info["date"] in figure["axes"][0]["title"]
    ratios = pd.read_csv(tmp_path / "perf" / "ratios.csv")
    assert len(ratios) == 3 and set(ratios["n"]) == {1000} and set(ratios["n_scales"]) == {20}
    assert np.isfinite(ratios["speedup_over_pycwt"]).all() and (ratios["speedup_over_pycwt"] > 0).all()
    assert (tmp_path / "perf" / "cwt.csv").exists() and (tmp_path / "perf" / "speedup.png").exists()


def test_04_performance_reads_existing_results(tmp_path, kernel_dir, monkeypatch):
    import pandas as pd

    found = tmp_path / "found"
    found.mkdir()
    (found / "cwt.csv").write_text(
        "# date: test\n# cpu: test\n"
        "benchmark,engine,variant,dtype,n,n_scales,status,wall_median_s,pycwt_over_this,note\n"
        "cwt,pycwt,pycwt,float64,1000,100,ok,0.006,1,\"pycwt.cwt, 2**k\"\n"
        "cwt,bioxen-dask,linear,float32,1000,100,ok,0.002,3.0,\n"
        "cwt,bioxen-dask,linear,float32,10000,100,ok,0.02,4.0,\n"
        "cwt,bioxen-dask,linear,float32,100000,100,skipped: extrapolated 99 s > 60 s,,,\n")
    (found / "report.md").write_text("# a report\n\n| a | b |\n|---|---|\n| 1 | 2 |\n")
    nb = _execute("04_performance.ipynb", {"SEARCH_DIRS": [str(found)], "REPO_ROOT": str(REPO), "WORKDIR": "perf",
                                           "BENCH_KWARGS": {"no_such_option": 1}},  # would fail if run
                  tmp_path, kernel_dir, monkeypatch)
    ratios = pd.read_csv(tmp_path / "perf" / "ratios.csv")
    assert ratios["speedup_over_pycwt"].tolist() == [3.0, 4.0]
    assert not (tmp_path / "perf" / "cwt.csv").exists()
    shown = [o for c in nb.cells for o in c.get("outputs", []) if "text/markdown" in o.get("data", {})]
    assert any("a report" in o["data"]["text/markdown"] for o in shown)
