"""``docs/performance.md`` from the benchmark CSVs: scaling fits, figures, decision table.

:func:`build_report` reads whatever ``bioxen-dask bench`` left in the results folder
(``cwt.csv``, ``wct.csv``, ``significance.csv``, ``equivalence.csv``, ``pipeline.csv``,
``gpu.csv``, ``allpairs.json``), draws the figures next to the report and writes the Markdown. A section whose
CSV is missing says so and names the command that makes it; every table and figure names
the machine and date of the CSV it comes from, so no number in the report is older than the
run that wrote it.

Fitted exponents: for each engine, ``log T = a + b log N`` by least squares over the
measured ``N >= fit_from`` (fixed per-call costs dominate below), next to the exponent an
exact ``N log N`` law would show over the same points. ``b`` clearly above that (by more
than 0.1) means the engine scales worse than ``N log N`` there (cache misses, memory
bandwidth, a Python loop).
"""

from __future__ import annotations

import importlib
import math
import os
import re
import shutil
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from ._harness import machine_label, read_csv
from .wct import ALL_CORES, MULTIRATE, MULTIRATE_ALL_CORES, MULTIRATE_PART_PREFIX, PART_PREFIX

__all__ = ["REPORT_PARTS", "allpairs_section", "build_report", "fit_exponent", "nlogn_exponent",
           "refresh_sections"]

#: The sections a benchmark module may add through ``summary_markdown(csv_path)``.
EXTERNAL_SECTIONS = (
    ("equivalence", "Numerical equivalence with pycwt", "bioxen-dask bench equivalence"),
    ("pipeline", "The whole dataset, and scaling with workers", "bioxen-dask bench pipeline"),
    ("gpu", "Where a GPU pays off", "bioxen-dask bench gpu   # on a machine with a CUDA GPU"),
)
FIT_FROM = 10_000


def fit_exponent(n: Sequence[float], t: Sequence[float]) -> float:
    """Least-squares slope of ``log t`` against ``log n``.

    Examples
    --------
    >>> round(fit_exponent([1e3, 1e4, 1e5], [1.0, 10.0, 100.0]), 6)
    1.0
    """
    n, t = np.log(np.asarray(n, float)), np.log(np.asarray(t, float))
    if n.size < 2:
        return float("nan")
    return float(np.polyfit(n, t, 1)[0])


def nlogn_exponent(n: Sequence[float]) -> float:
    """The exponent :func:`fit_exponent` finds for an exact ``T = N log N`` over these ``N``.

    Examples
    --------
    >>> round(nlogn_exponent([1e4, 1e5, 1e6, 1e7]), 3)
    1.081
    """
    n = np.asarray(n, float)
    return fit_exponent(n, n * np.log(n))


# ---------------------------------------------------------------------------------------------
def _ok(rows: Iterable[dict]) -> list[dict]:
    return [r for r in rows if r.get("status") == "ok"]


def _fmt(v: Any, spec: str = ".3g") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return format(v, spec) if isinstance(v, (int, float)) else str(v)


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in rows]  # a "|" in a cell
    return "\n".join(lines)


def _source(info: dict, path: Path) -> str:
    return f"*Measured on {machine_label(info)} (load average at start {info.get('load_avg', '?')}); `{path.name}`.*"


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _loglog_figure(path: Path, series: dict[str, list[tuple[float, float]]], xlabel: str, ylabel: str,
                   title: str, dashed: Sequence[str] = ()) -> None:
    """One log-log line per named series of (x, y) points, saved as a PNG."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4.3), constrained_layout=True)
    for label, pts in series.items():
        if pts:
            ax.loglog(*zip(*pts), marker="o", label=label, linestyle="--" if label in dashed else "-")
    ax.set(xlabel=xlabel, ylabel=ylabel)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _cwt_label(r: dict) -> str:
    return f"{r['engine']} ({r['variant']}, {r['dtype']})" if r["engine"] in ("bioxen-dask", "fcwt") else r["engine"]


# ---------------------------------------------------------------------------------------------
def _cwt_section(path: Path, fig_dir: Path, rel: str) -> tuple[str, dict]:
    rows, info, notes = read_csv(path)
    # the tables and figures are of the n/8 grid (CSVs before the grid column: all of it); the
    # pycwt-kind grid's rows are in the CSV (the README quotes them)
    ok = [r for r in _ok(rows) if r.get("grid") in (None, "", "n/8")]
    facts: dict[str, Any] = {}
    scale_counts = sorted({r["n_scales"] for r in ok})
    S_main = 100 if 100 in scale_counts else (scale_counts[-1] if scale_counts else None)
    out = ["## CWT: how each engine scales", "", _source(info, path) + " " + _cwt_command(rows, notes), ""]
    if S_main is None:
        return "\n".join(out + ["No measured rows."]), facts
    labels = list(dict.fromkeys(_cwt_label(r) for r in ok))
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), constrained_layout=True)
    for lab in labels:
        pts = sorted((r["n"], r["wall_median_s"]) for r in ok if _cwt_label(r) == lab and r["n_scales"] == S_main)
        if pts:
            axes[0].loglog(*zip(*pts), marker="o", label=lab)
    axes[0].set(xlabel="N (samples)", ylabel="wall time (s)", title=f"{S_main} scales")
    n_ref = max((r["n"] for r in ok if r["n_scales"] == S_main), default=None)
    by_scales_n = max((n for n in {r["n"] for r in ok} if len({r["n_scales"] for r in ok if r["n"] == n}) > 1),
                      default=n_ref)
    for lab in labels:
        pts = sorted((r["n_scales"], r["wall_median_s"]) for r in ok if _cwt_label(r) == lab and r["n"] == by_scales_n)
        if len(pts) > 1:
            axes[1].loglog(*zip(*pts), marker="o", label=lab)
    axes[1].set(xlabel="scales", ylabel="wall time (s)", title=f"N = {by_scales_n:.0e}")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"CWT wall time (median) - {machine_label(info)}", fontsize=9)
    fig.savefig(fig_dir / "cwt_scaling.png", dpi=110)
    plt.close(fig)
    out += [f"![CWT scaling]({rel}/cwt_scaling.png)", ""]

    # fitted exponents
    fit_rows = []
    for lab in labels:
        for S in scale_counts:
            pts = sorted((r["n"], r["wall_median_s"]) for r in ok
                         if _cwt_label(r) == lab and r["n_scales"] == S and r["n"] >= FIT_FROM)
            if len(pts) >= 2:
                n, t = zip(*pts)
                b, ref = fit_exponent(n, t), nlogn_exponent(n)
                verdict = "worse than N log N" if b > ref + 0.1 else "N log N or better"
                fit_rows.append((lab, S, f"{min(n):.0e} - {max(n):.0e}", f"{b:.2f}", f"{ref:.2f}", verdict))
    out += ["### Fitted exponents (T ~ N^b)", "",
            f"Least squares over the measured N >= {FIT_FROM:.0e}; the `N log N` column is the exponent an exact "
            "N log N cost shows over the same N.", ""]
    out += [_table(["engine", "scales", "N range", "b", "N log N", "verdict"], fit_rows) if fit_rows
            else "Too few sizes above the fit threshold (run without `--quick`).", ""]

    # throughput at the headline configuration
    n_head = 1_000_000 if any(r["n"] == 1_000_000 for r in ok) else n_ref
    head = sorted((r for r in ok if r["n"] == n_head and r["n_scales"] == S_main),
                  key=lambda r: -r["msamples_scales_per_s"])
    out += [f"### Throughput at N = {n_head:.0e}, {S_main} scales", "",
            _table(["engine", "wall (s)", "CPU (s)", "M samples x scales / s", "x pycwt", "peak MB (traced)"],
                   [(_cwt_label(r), _fmt(r["wall_median_s"], ".4f"), _fmt(r["cpu_median_s"], ".4f"),
                     _fmt(r["msamples_scales_per_s"], ".1f"), _fmt(r.get("pycwt_over_this"), ".1f"),
                     _fmt(r.get("peak_mem_mb"), ".0f")) for r in head]), ""]
    ours = [r for r in head if r["engine"] == "bioxen-dask" and r["variant"] == "linear" and r["dtype"] == "float32"]
    fc = [r for r in head if r["engine"] == "fcwt"]
    if ours:
        facts["cwt_ours"] = ours[0]["msamples_scales_per_s"]
        facts["cwt_n"], facts["cwt_S"] = n_head, S_main
    if fc:
        facts["cwt_fcwt"] = max(r["msamples_scales_per_s"] for r in fc)
    lin = {r["n"]: r for r in ok if r["engine"] == "bioxen-dask" and r["variant"] == "linear" and r["n_scales"] == S_main}
    cir = {r["n"]: r for r in ok if r["engine"] == "bioxen-dask" and r["variant"] == "circular" and r["n_scales"] == S_main}
    common = sorted(set(lin) & set(cir))
    if common:
        out += ["The price of exact linear convolution (`linear` over `circular` wall time, float32, "
                f"{S_main} scales): " + ", ".join(f"N={n:.0e}: {lin[n]['wall_median_s'] / cir[n]['wall_median_s']:.2f}"
                                                    for n in common) + ".", ""]
    skipped = [r for r in rows if str(r.get("status", "")).startswith(("skipped", "missing", "failed"))]
    if skipped:
        reasons: dict[str, list[str]] = {}
        for r in skipped:
            reasons.setdefault(f"{_cwt_label(r)}: {r['status'].split(':')[0]}", []).append(f"{r['n']:.0e}x{r['n_scales']}")
        out += ["Not timed (each with its reason in the CSV): " + "; ".join(
            f"{k} ({', '.join(v[:4])}{' ...' if len(v) > 4 else ''})" for k, v in reasons.items()) + ".", ""]
    grids_text, facts["cwt_grids"] = _cwt_grids_table(_ok(rows))
    out += grids_text
    facts["cwt_rows"] = ok
    facts["cwt_info"] = info
    return "\n".join(out), facts


def _cwt_command(rows: list[dict], notes: Sequence[str] = ()) -> str:
    """The ``bench cwt`` command line of the CSV's matrix (its sizes, scale counts and, from
    its notes, ``max_seconds``)."""
    from .cwt import DEFAULT_SCALES, DEFAULT_SIZES

    def num(n: int) -> str:
        e = round(math.log10(n))
        return f"1e{e}" if 10**e == n else str(n)

    sizes = sorted({r["n"] for r in rows if isinstance(r.get("n"), int)})
    scales = sorted({r["n_scales"] for r in rows if isinstance(r.get("n_scales"), int)})
    cmd = "bioxen-dask bench cwt"
    if sizes and sizes != sorted(int(v) for v in DEFAULT_SIZES):
        cmd += " --sizes " + ",".join(num(n) for n in sizes)
    if scales and scales != sorted(DEFAULT_SCALES):
        cmd += " --scales " + ",".join(str(v) for v in scales)
    quick = any("quick=True" in n for n in notes)
    if quick:
        cmd += " --quick"
    limit = next((m.group(1) for n in notes if (m := re.search(r"max_seconds=([0-9.eE+-]+)", n))), None)
    if limit is not None and float(limit) != (5.0 if quick else 10.0):
        cmd += f" --max-seconds {limit}"
    return f"Command: `{cmd}`."


def _cwt_grids_table(ok: list[dict]) -> tuple[list[str], dict]:
    """Both grids, both methods, against pycwt in the same run (issue 21)."""
    def get(grid, n, S, engine, variant):
        return next((r for r in ok if (r.get("grid") or "n/8") == grid and r["n"] == n and r["n_scales"] == S
                     and r["engine"] == engine and r["variant"] == variant), None)

    keys = sorted({((r.get("grid") or "n/8"), r["n_scales"], r["n"]) for r in ok if r["n"] >= FIT_FROM},
                  key=lambda k: (k[0] != "pycwt", k[1], k[2]))
    table, facts = [], {}
    for grid, S, n in keys:
        py, ex, mr = (get(grid, n, S, "pycwt", "pycwt"), get(grid, n, S, "bioxen-dask", "linear"),
                      get(grid, n, S, "bioxen-dask", "linear multirate"))
        if not (py and ex and mr):
            continue
        table.append((grid, f"{n:.0e}", S, _fmt(py["wall_median_s"], ".3f"), _fmt(ex["wall_median_s"], ".3f"),
                      _fmt(ex.get("pycwt_over_this"), ".1f"), _fmt(mr["wall_median_s"], ".3f"),
                      _fmt(mr.get("pycwt_over_this"), ".1f"), _fmt(mr.get("err_vs_exact"), ".1e")))
        facts[(grid, n, S)] = (ex.get("pycwt_over_this"), mr.get("pycwt_over_this"), mr.get("err_vs_exact"))
    if not table:
        return [], facts
    return ["### Both grids, both methods, against pycwt", "",
            "float32, `linear` boundary, one thread; `x pycwt` is pycwt's wall time over the method's in the same "
            "run. Grids: `pycwt`, pycwt's own kind (periods from 2 dt up to the record length, "
            "`J = log2(N dt / s0) / dj`); `n/8`, the same smallest period with `dj = 1/12` or coarser so the "
            "largest scale stays below N/8 (at 100 scales and N = 1e6 it stops at ~600 samples). `exact` is the "
            "default transform; `multirate` (`method=\"multirate\"`, opt-in) computes the band-limited scales on "
            "decimated copies and interpolates them back; its error column is its largest difference from the "
            "exact transform relative to each scale's largest coefficient.", "",
            _table(["grid", "N", "scales", "pycwt (s)", "exact (s)", "exact x pycwt", "multirate (s)",
                    "multirate x pycwt", "multirate error"], table), ""], facts


def _memory_section(facts: dict) -> str:
    ok = facts.get("cwt_rows") or []
    out = ["## Memory: the largest record each engine transforms in RAM", ""]
    per: dict[str, list[float]] = {}
    for r in ok:
        pk = r.get("peak_mem_mb")
        if isinstance(pk, float) and math.isfinite(pk) and r["n"] >= FIT_FROM:
            per.setdefault(_cwt_label(r), []).append(pk * 2**20 / (r["n"] * r["n_scales"]))
    if not per:
        return "\n".join(out + ["Needs `cwt.csv` with traced peaks (`bioxen-dask bench cwt`)."])
    rams = (8, 24, 64, 256)
    rows = []
    for lab, v in per.items():
        b = float(np.median(v))
        rows.append((lab, f"{b:.1f}", *(f"{ram * 2**30 / (b * 100):.1e}" for ram in rams)))
    out += ["Peak traced bytes per sample and scale (median over N >= 1e4), and the longest record whose "
            "100-scale transform fits in a given RAM (peak / (bytes x 100 scales)). fCWT's own C++ buffers are "
            "not traced (its output alone is 8 bytes per sample and scale).", "",
            _table(["engine", "bytes / (sample x scale)", *(f"N max, {ram} GB" for ram in rams)], rows), ""]
    out += ["Beyond RAM, bioxen-dask streams: reductions (band power, global spectrum) of a record in Zarr "
            "never form the transform, and their peak memory does not grow with N -- see "
            "[benchmarks/memory.md](benchmarks/memory.md) (`python benchmarks/bench_memory.py --samples 1e9`).", ""]
    return "\n".join(out)


#: Runs of ``benchmarks/bench_memory.py --kind coherence --json`` (relative to the docs folder).
LONG_RECORD_RUNS = "benchmarks/coherence_long.json"


def long_record_section(docs: str | os.PathLike) -> str:
    """Pair coherence of long records in time blocks: peak memory and throughput per run, and
    the simulated cost of one 2.6e9-sample pair (30 kHz for 24 h) on 1, 16 and 64 cores, from
    ``docs/benchmarks/coherence_long.json``."""
    import json

    path = Path(docs) / LONG_RECORD_RUNS
    out = ["## Long records: pair coherence in time blocks", ""]
    cmd = "python benchmarks/bench_memory.py --kind coherence --samples 1e8 --json docs/benchmarks/coherence_long.json"
    if not path.is_file():
        return "\n".join(out + [f"Not measured yet: run `{cmd}`.", ""])
    runs = sorted(json.loads(path.read_text()).values(), key=lambda r: (r["samples"], r["threads"], r.get("commit", "")))
    out += ["4 float32 rois at 1 kHz in a Zarr store, 2 pairs in list mode, periods 0.01-1 s at dj 1/8 (55 periods), "
            "no significance, the reductions (means, phase, lag) of halo-exact time blocks, each an independent "
            "task, on the threaded scheduler; the normalisation and AR(1) moments come from one streaming pass. "
            "`commit` is the code measured (the issue's baseline, main before the change, peaked at 2.2-2.5 GB at "
            "2e7 samples and did 2.3e5 pair-samples/s). Peak RSS is the process maximum. The load average says how "
            "much the shared cores were contended: the throughput of a loaded run is pessimistic; the CPU time "
            "(all threads) is not inflated by waiting, so pair-samples per CPU second compare across loads.", "",
            _table(["samples", "commit", "method", "threads", "time blocks", "peak RSS", "wall", "pair-samples/s",
                    "pair-samples per CPU s", "load avg", "machine, date"],
                   [(f"{r['samples']:.0e}", r.get("commit", "?"), r["method"], r["threads"], r["time_blocks"],
                     f"{r['peak_rss_mb']:,.0f} MB", f"{r['wall_s']:,.1f} s", f"{r['pair_samples_per_s']:.3g}",
                     _fmt(r.get("pair_samples_per_cpu_s"), ".3g"), _fmt(r["load_avg"], ".1f"), r["machine"])
                    for r in runs]), ""]
    by = {(r["samples"], r.get("commit"), r["method"], r["threads"]): r for r in runs}
    for (n, commit, method, threads), r in sorted(by.items(), key=lambda kv: str(kv[0])):
        one = by.get((n, commit, method, 1))
        if threads == 2 and one is not None:
            out += [f"From 1 to 2 threads ({n:.0e} samples, {commit}): {one['wall_s'] / r['wall_s']:.2f}x faster "
                    f"(load {one['load_avg']:.1f} and {r['load_avg']:.1f}).", ""]
    simulated = [r for r in runs if r.get("day_pair_h")]
    if simulated:
        top = max(simulated, key=lambda r: (r["samples"], -r["load_avg"]))
        h = top["day_pair_h"]
        out += [f"**One 2.6e9-sample pair** (30 kHz for 24 h, the same 55 periods in samples: 10-1,000 samples, 0.33-33 ms at 30 kHz) costs "
                f"{h['1']:,.1f} h on 1 core, {h['16']:,.2f} h on 16 and {h['64']:,.2f} h on 64, simulated "
                f"(`bioxen_dask.bench.pipeline.simulate`: an LPT schedule, 1 ms of scheduler time per task) from the "
                f"busy time per block of the {top['samples']:.0e}-sample run ({top['block_s']:.2f} s for one pair on "
                f"a {top['samples'] / top['time_blocks']:,.0f}-sample block + {top['halo']:,}-sample halos; "
                f"{top['threads']} threads, load {top['load_avg']:.1f}) and its streaming pre-passes (scan and "
                f"moments), scaled to the day's {2.6e9 * top['time_blocks'] / top['samples']:,.0f} blocks. The blocks are independent, so the pair spreads "
                f"over every core; peak memory per worker is that of one block (the runs above). The busy time of a "
                f"contended run includes time spent waiting for a core, so these costs are upper bounds.", ""]
    out += [f"Regenerate: `{cmd}` (one row per run; `--samples 1e9` writes a 16 GB store under `--dir` first).", ""]
    return "\n".join(out)


#: Title of the all-pairs section (``bioxen-dask bench allpairs``).
ALLPAIRS_TITLE = "All pairs: cost per pair against pycwt and mne-connectivity, 10,000 rois, scaling"


def allpairs_section(results: str | os.PathLike, docs: str | os.PathLike) -> str:
    """The all-pairs section from ``results/allpairs.json``, else ``docs/benchmarks/allpairs.json``
    (:func:`bioxen_dask.bench.allpairs.summary_markdown`)."""
    from .allpairs import summary_markdown

    out = [f"## {ALLPAIRS_TITLE}", ""]
    path = _allpairs_json(results, docs)
    if path is not None:
        return "\n".join(out + [summary_markdown(path)])
    return "\n".join(out + ["Not measured yet: run `bioxen-dask bench allpairs --out docs/benchmarks`.", ""])


def _allpairs_json(results: str | os.PathLike, docs: str | os.PathLike) -> Path | None:
    from .allpairs import JSON_NAME

    for path in (Path(results) / JSON_NAME, Path(docs) / "benchmarks" / JSON_NAME):
        if path.is_file():
            return path
    return None


def _allpairs_expect(ap: dict, rois: int, workers: int) -> str:
    """Expected wall time of all pairs of ``rois`` on ``workers``, simulated from ``allpairs.json``."""
    from .allpairs import scaling_models
    from .pipeline import simulate

    wb, tc = ap["whole_brain"], ap.get("task_costs") or {}
    models = scaling_models(wb["cpu_ms_per_pair"] / 1e3, wb["tile"], rois=rois, overhead_s=tc.get("overhead_s", 0.0),
                            scheduler_s=tc.get("scheduler_s", 0.0), serial_s=tc.get("serial_s", 0.0))
    s = simulate(models, [workers])[0]
    return f"{_duration(s['job_s'])} (efficiency {s['efficiency']:.2f}, simulated)"


#: Sections :func:`refresh_sections` can rewrite alone: name -> (title, builder(results, docs)).
REFRESHABLE = {
    "allpairs": (ALLPAIRS_TITLE, allpairs_section),
    "long-records": ("Long records: pair coherence in time blocks", lambda results, docs: long_record_section(docs)),
}


def refresh_sections(names: Sequence[str], results_dir: str | os.PathLike = "bench-output",
                     docs_dir: str | os.PathLike = "docs", *, name: str = "performance.md") -> Path:
    """Rewrite only the named sections (:data:`REFRESHABLE`) of an existing report, from their
    JSON files, leaving every other section as it was generated (their CSVs need not be here).

    Raises
    ------
    ValueError
        For an unknown section name.
    FileNotFoundError
        When there is no report to refresh (build it with ``bioxen-dask bench report``).
    """
    bad = [n for n in names if n not in REFRESHABLE]
    if bad:
        raise ValueError(f"unknown section {bad[0]!r}; choose from {sorted(REFRESHABLE)}.")
    report = Path(docs_dir) / name
    if not report.is_file():
        raise FileNotFoundError(f"no report {report} to refresh; build it with `bioxen-dask bench report`.")
    text = report.read_text()
    for n in names:
        title, build = REFRESHABLE[n]
        new = build(results_dir, docs_dir).rstrip() + "\n"
        head = f"## {title}\n"
        if head in text:
            start = text.index(head)
            nxt = text.find("\n## ", start + len(head))
            end = len(text) if nxt < 0 else nxt + 1
            text = text[:start] + new + ("\n" if nxt >= 0 else "") + text[end:]
        else:  # a section this report does not have yet: before the decision table
            at = text.find("\n## Which setup a dataset needs")
            text = (text.rstrip() + "\n\n" + new) if at < 0 else text[:at + 1] + new + "\n" + text[at + 1:]
    tmp = report.with_name(report.name + ".partial")
    tmp.write_text(text)
    os.replace(tmp, report)
    return report


def _wct_section(path: Path, fig_dir: Path, rel: str) -> tuple[str, dict]:
    rows, info, _ = read_csv(path)
    ok = _ok(rows)
    facts: dict[str, Any] = {}
    sizes = sorted({r["n"] for r in ok})
    engines = list(dict.fromkeys(r["engine"] for r in ok))
    get = {(r["engine"], r["stage"], r["n"]): r for r in ok}
    out = ["## Wavelet coherence of one pair", "", _source(info, path), "",
           "pycwt's default grid (smallest period 2 dt, dj = 1/12). `x pycwt` is pycwt's wall time over the "
           "engine's; `WCT / 2 CWT` is what smoothing and coherence cost on top of the two transforms.", ""]
    table = []
    for n in sizes:
        for e in engines:
            r = get.get((e, "wct", n))
            if r:
                table.append((f"{n:,}", r["n_scales"], e, _fmt(r["wall_median_s"], ".4f"),
                              _fmt(r.get("pycwt_over_this"), ".1f"), _fmt(r.get("wct_over_2cwt"), ".1f")))
    out += [_table(["N", "scales", "engine", "wall (s)", "x pycwt", "WCT / 2 CWT"], table), ""]
    errors = [(n, m.group(1)) for n in sizes if (MULTIRATE, "wct", n) in get
              for m in [re.search(r"max \|coherence - exact float64 path\| = ([0-9.eE+-]+)",
                                  get[(MULTIRATE, "wct", n)].get("note") or "")] if m]
    if errors:
        out += ["Largest difference between the multirate coherence (float32) and the exact float64 path: "
                + ", ".join(f"{float(e):.1e} at N = {n:,}" for n, e in errors) + ".", ""]
    series = {e: [(n, get[(e, "wct", n)]["wall_median_s"]) for n in sizes if (e, "wct", n) in get] for e in engines}
    _loglog_figure(fig_dir / "wct_pair.png", series, "N (samples)", "wall time per pair (s)",
                   f"WCT of one pair - {machine_label(info)}")
    out += [f"![WCT per pair]({rel}/wct_pair.png)", ""]
    n18 = 18_000 if (("bioxen-dask", "wct", 18_000) in get) else (sizes[-1] if sizes else None)
    out += _parts_table(get, n18)
    out += _multirate_parts_table(get, n18)
    native = [get[(e, "wct", n18)] for e in ("bioxen-dask", ALL_CORES, MULTIRATE, MULTIRATE_ALL_CORES)
              if (e, "wct", n18) in get]
    r = min(native, key=lambda row: row["wall_median_s"]) if native else None
    if r is not None:
        facts.update(wct_n=n18, wct_ours=r["wall_median_s"], wct_speedup=r.get("pycwt_over_this"),
                     wct_scales=r["n_scales"], wct_engine=r["engine"])
        ref = get.get(("pycwt", "wct", n18))
        if ref:
            facts["wct_pycwt"] = ref["wall_median_s"]
    facts["wct_rows"] = ok
    return "\n".join(out), facts


def _parts_table(get: dict, n: int | None) -> list[str]:
    """Where the native one-pair time goes at ``n`` (the ``part: ...`` rows of ``wct.csv``)."""
    engines = [e for e in ("bioxen-dask", ALL_CORES) if (e, "wct", n) in get]
    parts = list(dict.fromkeys(st for (e, st, m) in get if m == n and e in engines and st.startswith(PART_PREFIX)))
    if not parts:
        return []
    rows = []
    for st in ["2 x cwt"] + parts:
        cells = []
        for e in engines:
            r, whole = get.get((e, st, n)), get[(e, "wct", n)]["wall_median_s"]
            cells += ([_fmt(r["wall_median_s"] * 1e3, ".1f"), _fmt(100 * r["wall_median_s"] / whole, ".0f")]
                      if r else ["-", "-"])
        rows.append([st.removeprefix(PART_PREFIX)] + cells)
    header = ["part"] + [h for e in engines for h in (f"{e} (ms)", "% of its WCT")]
    out = [f"Where the native time goes at N = {n:,} (each part timed alone, on inputs computed once; the "
           "two sub-grid rows are the whole coherence on the smallest scales, which the planner runs by short "
           "overlap-save FFTs, and on the rest):", "", _table(header, rows), ""]
    ref = get.get(("pycwt", "wct", n))
    small = [(e, st, get[(e, st, n)]) for e in engines for st in parts
             if st.endswith("smallest scales") and (e, st, n) in get]
    if ref and small:
        e, st, r = min(small, key=lambda item: item[2]["wall_median_s"])
        budget = ref["wall_median_s"] / 50
        out += [f"50x pycwt leaves {budget * 1e3:.1f} ms for the whole map. The {st.split()[2]} smallest scales "
                f"alone take {r['wall_median_s'] * 1e3:.1f} ms ({e}): they are broadband (no decimation "
                "applies), and every output point costs two transforms, three smoothings by FFT, three scale "
                "products, a ratio and an arctan2, each a pass over the (scale, time) maps.", ""]
    return out


def _multirate_parts_table(get: dict, n: int | None) -> list[str]:
    """Where the multirate one-pair time goes at ``n`` (one thread; ``multirate part: ...`` rows)."""
    whole = get.get((MULTIRATE, "wct", n))
    parts = [(st, r) for (e, st, m), r in get.items() if e == MULTIRATE and m == n and st.startswith(MULTIRATE_PART_PREFIX)]
    if whole is None or not parts:
        return []
    total = whole["wall_median_s"]
    rows = [[st.removeprefix(MULTIRATE_PART_PREFIX), _fmt(r["wall_median_s"] * 1e3, ".1f"),
             _fmt(100 * r["wall_median_s"] / total, ".0f"), r.get("note", "")] for st, r in parts]
    out = [f"Where the multirate time goes at N = {n:,} (one thread, each part timed alone; the bands are "
           "decimated by the powers of two listed, the tiles are not):", "",
           _table(["part", "ms", "% of its WCT", "what"], rows), ""]
    ref = get.get(("pycwt", "wct", n))
    fused = [r for st, r in parts if "fused tiles" in st]
    if ref and fused:
        budget = ref["wall_median_s"] / 50
        first = parts[1][1] if len(parts) > 1 else None
        out += [f"50x pycwt leaves {budget * 1e3:.1f} ms for the whole map. On one thread the fused tiles alone take "
                f"{fused[0]['wall_median_s'] * 1e3:.1f} ms"
                + (f" and the first band {first['wall_median_s'] * 1e3:.1f} ms" if first else "")
                + ": those scales are broadband, so each of their samples still costs two transforms and two "
                "smoothings by FFT, at full rate.", ""]
    return out


def _significance_section(path: Path, fig_dir: Path, rel: str) -> tuple[str, dict]:
    rows, info, notes = read_csv(path)
    ok = _ok(rows)
    facts: dict[str, Any] = {}
    out = ["## Monte Carlo significance", "", _source(info, path), "",
           "Total time of a coherence map and its significance test with `mc_count` AR(1) surrogate pairs "
           "(0: the map alone). pycwt's totals beyond one surrogate are extrapolated from the one it ran "
           "(`measured` column in the CSV); ours are measured at every count.", ""]
    sizes = sorted({r["n"] for r in ok})
    engines = list(dict.fromkeys(r["engine"] for r in ok))
    counts = sorted({r["mc_count"] for r in ok})
    get = {(r["engine"], r["n"], r["mc_count"]): r for r in ok}
    table = []
    for n in sizes:
        for e in engines:
            cells = []
            for c in counts:
                r = get.get((e, n, c))
                cells.append("-" if r is None else _fmt(r["wall_s"], ".3g") + ("*" if r.get("measured") == "extrapolated" else ""))
            if all(c == "-" for c in cells):  # not run at this size (hybrids: the smallest only)
                continue
            per = [get[(e, n, c)].get("per_surrogate_s") for c in counts if (e, n, c) in get and c > 0]
            per = [p for p in per if isinstance(p, float) and math.isfinite(p)]
            table.append((f"{n:,}", e, *cells, _fmt(per[-1] * 1e3, ".1f") if per else "-"))
    out += [_table(["N", "engine", *(f"{c} surrogates (s)" for c in counts), "ms per surrogate"], table),
            "", "`*` extrapolated from one measured pycwt surrogate.", ""]
    n_big = sizes[-1] if sizes else None
    series = {e: [(c, get[(e, n_big, c)]["wall_s"]) for c in counts if c > 0 and (e, n_big, c) in get]
              for e in engines}
    _loglog_figure(fig_dir / "significance.png", series, "surrogate pairs", "wall time (s)",
                   f"Significance, N = {n_big:,} - {machine_label(info)}", dashed=("pycwt",))
    out += [f"![Monte Carlo scaling]({rel}/significance.png)", ""]
    for e in engines:
        r = get.get((e, n_big, counts[-1])) if counts else None
        if r and e != "pycwt" and r.get("pycwt_over_this"):
            facts.setdefault("mc_speedup", {})[e] = (r["pycwt_over_this"], n_big)
    facts["mc_rows"] = ok
    return "\n".join(out), facts


def _external_section(name: str, title: str, command: str, results: Path, fig_dir: Path,
                      rel: str) -> tuple[str, Path | None]:
    """A section from benchmark ``name``'s own ``summary_markdown``, with its figures copied."""
    path = results / f"{name}.csv"
    if not path.is_file():
        return f"## {title}\n\nNot measured yet: run `{command}` (it writes `{path.name}`).\n", None
    try:
        mod = importlib.import_module(f"bioxen_dask.bench.{name}")
        body = mod.summary_markdown(path)
    except Exception as exc:  # a report section must not hide the others
        body = f"The summary of `{path.name}` failed: {type(exc).__name__}: {exc}"
    figures = []
    for png in sorted(results.glob(f"{name}*.png")):
        shutil.copyfile(png, fig_dir / png.name)
        figures.append(f"![{png.stem}]({rel}/{png.name})")
    return f"## {title}\n\n{body.strip()}\n\n" + "\n\n".join(figures) + "\n", path


def _interp_loglog(x: float, xs: Sequence[float], ys: Sequence[float]) -> float:
    xs, ys = np.log(np.asarray(xs, float)), np.log(np.asarray(ys, float))
    order = np.argsort(xs)
    xs, ys = xs[order], ys[order]
    lx = math.log(x)
    if lx <= xs[0] or lx >= xs[-1]:  # extrapolate along the end segment
        i = 0 if lx <= xs[0] else len(xs) - 2
        slope = (ys[i + 1] - ys[i]) / (xs[i + 1] - xs[i]) if len(xs) > 1 else 1.0
        return float(math.exp(ys[i] + slope * (lx - xs[i])))
    return float(math.exp(np.interp(lx, xs, ys)))


def _decision_section(facts: dict) -> str:
    """Dataset size -> engine, hardware, cluster shape and expected time, from measured costs."""
    out = ["## Which setup a dataset needs", ""]
    def wct_rows(engine: str) -> list[dict]:
        return [r for r in facts.get("wct_rows", []) if r["engine"] == engine and r["stage"] == "wct"]

    # the shipped pipeline computes by the multirate method: its one-thread rows give the scaling
    # with record length (the exact path's when the CSV has no multirate rows)
    rows, one_pair = wct_rows(MULTIRATE), '`wavelet_coherence(method="multirate")`, in memory'
    if len(rows) < 2:
        rows, one_pair = wct_rows("bioxen-dask"), "`bioxen_dask.compat.wct` / `wavelet_coherence`, in memory"
    if len(rows) < 2:
        return "\n".join(out + ["Needs `wct.csv` with at least two sizes (`bioxen-dask bench wct`)."])
    ns = [r["n"] for r in rows]
    ts = [r["wall_median_s"] for r in rows]
    measured_eff = facts.get("efficiency", 0.9)
    eff = min(measured_eff, 1.0)  # a superlinear 2-worker run is VM noise: never extrapolated
    cores = 2
    cases = [
        ("one pair, 10 min at 30 Hz", 1, 18_000, one_pair, "a laptop, one thread", 1),
        ("1,000 rois x 10 min at 30 Hz vs a stimulus", 1_000, 18_000, "`bioxen-dask run`, embedded LocalCluster",
         "a laptop (2 cores)", cores),
        ("10,000 rois x 10 min at 30 Hz vs a stimulus", 10_000, 18_000, "`bioxen-dask run`, LocalCluster",
         "one 2-core machine; a 32-core node for interactive turnaround", cores),
        ("10,000 rois x 1 h at 30 Hz", 10_000, 108_000, "`bioxen-dask run`, LocalCluster or SLURM/PBS",
         "a 32-core node", 32),
        ("all pairs of 1,000 rois (499,500 pairs) x 10 min", 499_500, 18_000,
         "`pairs.mode: all` tiles on a cluster (dask-jobqueue / dask-gateway)", "8 nodes x 32 cores", 256),
        ("one trace of 1e9 samples (band power / global spectrum)", None, 10**9,
         "`bioxen_dask.graph.band_power` streamed from Zarr", "any machine: memory stays flat", 1),
    ]
    roi_cost = facts.get("roi_cost")  # (seconds per roi and worker, frames) of the measured whole job
    table = []
    for what, pairs, n, engine, hardware, workers in cases:
        if pairs is None:
            expect = "see benchmarks/memory.md (measured: 1e9 samples, 24 scales, 643 MB peak)"
        elif what.startswith("all pairs") and facts.get("allpairs"):
            expect = _allpairs_expect(facts["allpairs"], _rois_of_pairs(pairs), workers)
        elif roi_cost and pairs > 1:
            per_pair = roi_cost[0] * _interp_loglog(n, ns, ts) / _interp_loglog(roi_cost[1], ns, ts)
            e = _efficiency_at(workers, eff, facts.get("simulated_efficiency"))
            expect = _duration(pairs * per_pair / (workers * e)) + (f" (efficiency {e:.2f})" if workers > 2 else "")
        else:
            expect = _duration(pairs * _interp_loglog(n, ns, ts))
        table.append((what, engine, hardware, expect))
    basis = (f"the measured whole job (`pipeline.csv`: {roi_cost[0] * 1e3:.1f} ms per roi and worker at "
             f"{roi_cost[1]:,} frames, significance and I/O included, on `pipelines/calcium_coherence.yaml`'s "
             "0.5-30 s grid), scaled to other record lengths like the measured one-pair coherence (`wct.csv`)"
             if roi_cost else "the measured one-pair coherence on pycwt's default grid (`wct.csv`)")
    out += [f"Expected times are extrapolated from {basis}, divided over the workers with a parallel "
            f"efficiency of {eff:.2f}"
            + (f" (measured {measured_eff:.2f}: capped at 1, a speed-up beyond the worker count is noise)"
               if measured_eff > 1 else "")
            + (" measured at 2 workers and, beyond, the simulated efficiency of the "
                                          "10,000-roi job (pessimistic for larger jobs, which have more tasks per "
                                          "worker)" if "efficiency" in facts
                                          else " (assumed; `bioxen-dask bench pipeline` measures it)")
            + f". The one-pair row is the measured `wct.csv` time ({rows[0]['engine']}, one thread) on pycwt's "
            "default grid (2 dt to the record length: more scales than the pipeline's band). "
            + ("The all-pairs row is the CPU per pair measured by `bioxen-dask bench allpairs` (one thread, tiles "
               "of rois sharing each roi's transform), scheduled on the workers by "
               "`bioxen_dask.bench.pipeline.simulate` as in its section." if facts.get("allpairs") else
               "In all-pairs jobs a pair costs about what a roi costs in reference mode (`bioxen-dask bench "
               "allpairs` measures it)."), "",
            _table(["dataset", "engine", "hardware, cluster shape", "expected time"], table), ""]
    return "\n".join(out)


def _rois_of_pairs(pairs: int) -> int:
    """The population whose all pairs number ``pairs``.

    Examples
    --------
    >>> _rois_of_pairs(499_500)
    1000
    """
    return int(round((1 + math.sqrt(1 + 8 * pairs)) / 2))


def _efficiency_at(workers: int, measured: float, simulated: dict | None) -> float:
    """Parallel efficiency at ``workers``: measured up to 2, then the simulated table's value at
    the nearest simulated count not above ``workers`` (a 10,000-roi job; larger jobs have more
    tasks per worker and do better)."""
    if workers <= 2 or not simulated:
        return measured if workers > 1 else 1.0
    below = [p for p in simulated if p <= workers]
    return float(simulated[max(below)]) if below else measured


def _duration(s: float) -> str:
    if s < 1:
        return f"{s * 1e3:.0f} ms"
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


def _targets_section(facts: dict) -> str:
    out = ["## Targets (issue 7) against this run", ""]
    rows = []
    if "cwt_ours" in facts:
        fc = facts.get("cwt_fcwt")
        rows.append((f"CWT throughput, float32, N = {facts['cwt_n']:.0e}, {facts['cwt_S']} scales: at least fCWT's",
                     f"{facts['cwt_ours']:.0f} M samples x scales / s" + (f" vs fCWT {fc:.0f} M" if fc else " (fCWT not timed)"),
                     "met" if fc and facts["cwt_ours"] >= fc else ("not met" if fc else "-")))
    grids = facts.get("cwt_grids") or {}
    n21 = max((n for (g, n, S) in grids if S == 100), default=None)
    if n21 is not None and all((g, n21, 100) in grids for g in ("pycwt", "n/8")):
        got = {g: grids[(g, n21, 100)] for g in ("pycwt", "n/8")}
        ratios = [mr for _, mr, _ in got.values()]
        rows.append((f"CWT, N = {n21:.0e}, 100 scales, float32, linear: >= 10x pycwt on both grids (issue 21)",
                     "; ".join(f"{g} grid: multirate {mr:.1f}x, exact {ex:.1f}x" for g, (ex, mr, _) in got.items()),
                     "met (multirate)" if all(r is not None and r >= 10 for r in ratios) else "not met"))
    if "wct_ours" in facts:
        sp = facts.get("wct_speedup")
        rows.append((f"WCT of one {facts['wct_n']:,}-sample pair ({facts['wct_scales']} scales): >= 50x pycwt",
                     f"{facts['wct_ours'] * 1e3:.1f} ms ({facts.get('wct_engine', 'bioxen-dask')})"
                     + (f", {sp:.0f}x pycwt ({facts.get('wct_pycwt', float('nan')):.2f} s)" if sp else ""),
                     "met" if sp and sp >= 50 else ("not met" if sp else "-")))
    for e, (sp, n) in facts.get("mc_speedup", {}).items():
        rows.append((f"Monte Carlo per surrogate, N = {n:,} ({e})", f"{sp:.0f}x pycwt", "-"))
    out += [_table(["target", "measured", ""], rows) if rows else "No measurements yet.", "",
            "The whole-dataset and worker-scaling targets are in their own section below.", ""]
    return "\n".join(out)


#: Benchmarks whose report parts ``build_report(only=...)`` can rebuild alone: the section
#: titles (prefixes) and the rows of the targets table (first cell prefixes) each one makes.
#: ``wct`` and ``pipeline`` also feed the decision section with each other's facts: rebuild
#: those with the whole report.
REPORT_PARTS = {
    "cwt": (("CWT:", "Memory:"), ("CWT",)),
    "significance": (("Monte Carlo significance",), ("Monte Carlo",)),
    "equivalence": (("Numerical equivalence with pycwt",), ()),
    "gpu": (("Where a GPU pays off",), ()),
}


def _split_sections(text: str) -> list[str]:
    """The report cut before every ``## `` heading (the first piece: the title and intro)."""
    return re.split(r"(?m)^(?=## )", text)


def _title(section: str) -> str:
    return section[3:].split("\n", 1)[0] if section.startswith("## ") else ""


def _splice_targets(old: str, new: str, prefixes: Sequence[str]) -> str:
    """``old`` targets section with its rows starting with ``prefixes`` replaced by ``new``'s."""
    def owned(line: str) -> bool:
        return line.startswith("| ") and line[2:].startswith(tuple(prefixes))

    fresh = [ln for ln in new.split("\n") if owned(ln)]
    lines, out, placed = old.split("\n"), [], False
    for ln in lines:
        if owned(ln):
            if not placed:
                out += fresh
                placed = True
            continue
        out.append(ln)
    if not placed:  # after the table's last row
        last = max((i for i, ln in enumerate(out) if ln.startswith("|")), default=None)
        out = out + fresh if last is None else out[: last + 1] + fresh + out[last + 1 :]
    return "\n".join(out)


def _splice(old_text: str, new_text: str, only: Sequence[str]) -> str:
    """``old_text`` with the sections (and targets rows) of the ``only`` benchmarks taken from ``new_text``."""
    titles = tuple(t for stem in only for t in REPORT_PARTS[stem][0])
    rows = tuple(t for stem in only for t in REPORT_PARTS[stem][1])
    new_sections = _split_sections(new_text)
    fresh = {_title(sec): sec for sec in new_sections}
    out = []
    for i, sec in enumerate(_split_sections(old_text)):
        t = _title(sec)
        if i == 0 and not t:  # the title and intro: always the current text
            sec = new_sections[0]
        elif t.startswith(titles):
            p = next(p for p in titles if t.startswith(p))
            sec = next((v for k, v in fresh.items() if k.startswith(p)), sec)
        elif t.startswith("Targets") and rows:
            new_targets = next((v for k, v in fresh.items() if k.startswith("Targets")), "")
            sec = _splice_targets(sec, new_targets, rows)
        out.append(sec if sec.endswith("\n") else sec + "\n")
    return "".join(out)


def build_report(results_dir: str | os.PathLike = "bench-output", docs_dir: str | os.PathLike = "docs",
                 *, name: str = "performance.md", only: Sequence[str] | None = None) -> Path:
    """Write ``docs_dir/name`` and its figures (``docs_dir/performance/*.png``) from the CSVs.

    Parameters
    ----------
    results_dir : path
        Where ``bioxen-dask bench`` wrote its CSVs.
    docs_dir : path
        Folder of the report.
    name : str
        File name of the report.
    only : sequence of str, optional
        Rebuild only the parts of these benchmarks (keys of :data:`REPORT_PARTS`, e.g.
        ``["cwt"]``: the CWT and memory sections and the CWT rows of the targets) inside the
        existing report, every other section kept as it is (``bioxen-dask bench report
        --only cwt``); their CSVs must be in ``results_dir``.

    Returns
    -------
    Path
        The report. It is written to a temporary name and renamed, so a failed build never
        leaves a half report in place.
    """
    results, docs = Path(results_dir), Path(docs_dir)
    if not results.is_dir():
        raise FileNotFoundError(f"no benchmark results in {results}: run `bioxen-dask bench all --out {results}` first.")
    if only is not None:
        only = list(dict.fromkeys(only))
        unknown = [o for o in only if o not in REPORT_PARTS]
        if unknown or not only:
            raise ValueError(f"only= rebuilds the parts of {sorted(REPORT_PARTS)}, got {only}; rebuild the whole "
                             "report (without only) for the others.")
        missing = [o for o in only if not (results / f"{o}.csv").is_file()]
        if missing:
            raise FileNotFoundError(f"no {missing[0]}.csv in {results}: run `bioxen-dask bench {missing[0]} --out "
                                    f"{results}` first.")
        if not (docs / name).is_file():
            raise FileNotFoundError(f"no report {docs / name} to update: build the whole report first "
                                    "(`bioxen-dask bench report`).")
    fig_dir = docs / "performance"
    fig_dir.mkdir(parents=True, exist_ok=True)
    rel = "performance"
    facts: dict[str, Any] = {}
    sections: list[str] = []
    for stem, fn, cmd in (("cwt", _cwt_section, "bioxen-dask bench cwt"),
                          ("wct", _wct_section, "bioxen-dask bench wct"),
                          ("significance", _significance_section, "bioxen-dask bench significance")):
        path = results / f"{stem}.csv"
        if path.is_file():
            text, f = fn(path, fig_dir, rel)
            facts.update(f)
            sections.append(text)
        else:
            sections.append(f"## {stem}\n\nNot measured yet: run `{cmd}`.\n")
    sections.insert(1, _memory_section(facts))
    sections.insert(2, long_record_section(docs))
    externals = []
    for stem, title, cmd in EXTERNAL_SECTIONS:
        text, path = _external_section(stem, title, cmd, results, fig_dir, rel)
        externals.append(text)
        if stem == "pipeline" and path is not None:
            facts.update(_pipeline_facts(path))
    ap = _allpairs_json(results, docs)
    if ap is not None:
        import json

        facts["allpairs"] = json.loads(ap.read_text())
    header = [
        "# Performance", "",
        "Generated by `bioxen-dask bench report` from the CSVs of `bioxen-dask bench all` (each benchmark can be "
        "rerun alone: `bioxen-dask bench cwt|wct|significance|equivalence|pipeline|gpu|allpairs`, and its sections rebuilt "
        "alone in this file, the others kept: `bioxen-dask bench report --only cwt` or `--only allpairs`). Every table and figure "
        "names the machine and date of the run it comes from; nothing here is typed by hand. All engines of a "
        "table ran in one process on one machine, so compare ratios, not absolute times, across machines.", "",
    ]
    body = header + [_targets_section(facts)] + sections + externals + [
        allpairs_section(results, docs), _decision_section(facts)]
    report = docs / name
    text = "\n".join(body).rstrip() + "\n"
    if only is not None:
        text = _splice(report.read_text(), text, only)
    tmp = report.with_name(report.name + ".partial")
    tmp.write_text(text)
    os.replace(tmp, report)
    return report


def _pipeline_facts(path: Path) -> dict:
    """From the pipeline CSV: the measured efficiency at 2 workers, and the whole job's cost
    per roi and worker (seconds) with its record length."""
    rows, _, _ = read_csv(path)
    out: dict[str, Any] = {}
    effs = [r.get("efficiency") for r in rows if r.get("workers") == 2 and r.get("kind") == "workers"]
    effs = [e for e in effs if isinstance(e, float) and 0 < e <= 1.5]
    if effs:
        out["efficiency"] = effs[0]
    sim = {r["workers"]: r["efficiency"] for r in rows
           if r.get("kind") == "simulated" and r.get("stage") == "job" and isinstance(r.get("efficiency"), float)}
    if sim:
        out["simulated_efficiency"] = sim
    total = [r for r in rows if r.get("kind") == "stage" and r.get("stage") == "total"]
    if total and isinstance(total[0].get("wall_s"), float):
        r = total[0]
        out["roi_cost"] = (r["wall_s"] * r["workers"] / r["rois"], r["frames"])
    return out
