"""Pipelines: a YAML file that says what to analyse, how, and where the results go.

A pipeline has these sections (every key optional except ``input.store`` and
``outputs.path``; see ``pipelines/calcium_coherence.yaml`` for a commented example)::

    input:          store (signals store path), rois (roi ids: null | [id, ...] | {start, stop, step}),
                    roi_positions (the same by 0-based position; at most one of the two)
    preprocessing:  normalize (z-score, default true), detrend (none | linear),
                    nan_policy (raise | interpolate), max_gap (s, longest gap interpolated)
    grid:           min_period, max_period (s) | s0, J; dj, wavelet, preset, boundary, dtype, tol
    pairs:          mode (reference | list | all), reference (stored name | mean),
                    reference_file (.npy or one-column .csv/.tsv, one value per frame; given, it
                    replaces pairs.reference), list ([[a, b], ...])
    significance:   enabled, method (ar1), mc_count, level, seed, bucket_width, cache
    outputs:        path (.zarr), maps, overwrite, resume, region_size, figures (folder), summary (.json)
    compute:        roi_chunk, pair_chunk, time_chunk, block_bytes, fft_workers, device, method
    cluster:        see bioxen_dask.cluster.ClusterConfig (kind: local | address | slurm | pbs | gateway | cuda)

Files are read safely (:func:`read_yaml`: no Python objects; a key given twice, at any level,
is an error naming it and its lines) and validated against this schema: an unknown key or
a value of the wrong type is an error that names the key (``grid.min_perod: unknown key.
Did you mean 'grid.min_period'?``). :func:`check` then verifies everything that can be
verified without computing — the input store, the grid, the pair indices, the reference,
the output path — so a bad pipeline fails in a second, not after an hour. A re-run of an
interrupted run resumes it (``outputs.resume``); refusals name the pipeline keys that differ
from the stored run, and ``outputs.overwrite`` (``--set outputs.overwrite=true``) replaces it.

``grid.preset`` and ``grid.boundary`` follow the package's one rule
(:func:`bioxen_dask.presets.resolve_conventions`): a named preset selects its tool's boundary
unless ``grid.boundary`` is given; neither given: pycwt's conventions with ``linear``. The
validated pipeline (and the result's stored pipeline) holds both resolved.

Relative paths are taken relative to the current working directory. A pipeline writes only
where it says: ``outputs.path``, ``outputs.figures``, ``outputs.summary`` and
``significance.cache`` (default ``~/.cache/bioxen-dask``); none of them may lie inside the input
store (which is opened read-only and never modified), an existing folder that is not a result is
never replaced, and a summary never replaces a file that is not a bioxen-dask summary.

Missing samples (``preprocessing.nan_policy``): ``raise`` (default) refuses any NaN/inf in the
analysed traces, naming the roi and frame, before anything is computed or written;
``interpolate`` fills gaps of at most ``preprocessing.max_gap`` seconds by linear interpolation
and masks, at each scale, the samples within the gap's cone of influence (NaN in the maps, left
out of every reduction); see :func:`bioxen_dask.coherence`. Constant traces are always an error
(exclude them with ``input.rois``).
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import math
import numbers
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ._stores import json_digest, jsonable
from ._version import __version__

__all__ = [
    "Pipeline",
    "PipelineError",
    "SCHEMA",
    "check",
    "evaluate_recovery",
    "load_pipeline",
    "parse_overrides",
    "planted_truth",
    "read_yaml",
    "repo_file",
    "run_differences",
    "run_pipeline",
    "scan_inputs",
]


class PipelineError(ValueError):
    """A pipeline file or override is invalid; the message names the key."""


# ----------------------------------------------------------------------------- schema


@dataclass(frozen=True)
class Key:
    """One key of the schema: accepted kinds, default, and an optional extra check."""

    kinds: tuple[str, ...]
    default: Any = None
    doc: str = ""
    choices: tuple[Any, ...] | None = None
    check: Callable[[Any], str | None] | None = None
    required: bool = False


def _positive(v: Any) -> str | None:
    return None if v is None or v > 0 else "must be > 0"


def _level(v: Any) -> str | None:
    return None if 0 < v < 1 else "must be between 0 and 1 (exclusive), e.g. 0.95"


def _at_least_one(v: Any) -> str | None:
    return None if v is None or v >= 1 else "must be >= 1"


SCHEMA: dict[str, dict[str, Key]] = {
    "input": {
        "store": Key(("str",), required=True, doc="signals store (bioxen-dask synth / ingest)"),
        "rois": Key(("null", "int_list", "range"), doc="roi ids to analyse (the store's roi coordinate, "
                    "as results show them; default all)"),
        "roi_positions": Key(("null", "int_list", "range"), doc="the same selection by 0-based position"),
    },
    "preprocessing": {
        "normalize": Key(("bool",), True, "z-score every trace first (pycwt's wct)"),
        "detrend": Key(("str",), "none", "remove each trace's least-squares line", choices=("none", "linear")),
        "nan_policy": Key(("str",), "raise", "missing samples (NaN/inf): an error, or short gaps interpolated "
                          "and masked in the outputs", choices=("raise", "interpolate")),
        "max_gap": Key(("number",), 1.0, "longest gap (s) filled with nan_policy 'interpolate'",
                       check=lambda v: None if v >= 0 else "must be >= 0 seconds"),
    },
    "grid": {
        "min_period": Key(("null", "number"), None, "smallest period (s)", check=_positive),
        "max_period": Key(("null", "number"), None, "largest period (s)", check=_positive),
        "s0": Key(("null", "number"), None, "smallest scale (s), pycwt style", check=_positive),
        "J": Key(("null", "int"), None, "number of scales - 1, pycwt style", check=lambda v: None if v is None or v >= 0 else "must be >= 0"),
        "dj": Key(("number",), 1 / 12, "scale spacing in octaves", check=_positive),
        "wavelet": Key(("str",), "morlet", "mother wavelet", choices=("morlet", "paul", "dog")),
        "preset": Key(("null", "str"), None, "conventions (null: pycwt's, with boundary linear)",
                      choices=("pycwt", "grinsted")),
        "boundary": Key(("null", "str"), None, "edge handling (null: the named preset's own, else linear)",
                        choices=("linear", "symmetric", "circular", "pycwt", "grinsted")),
        "dtype": Key(("str",), "float32", "working precision", choices=("float32", "float64")),
        "tol": Key(("number",), 1e-10, "wavelet truncation tolerance", check=_positive),
    },
    "pairs": {
        "mode": Key(("str",), "reference", "pair mode", choices=("reference", "list", "all")),
        "reference": Key(("null", "str"), None, "stored reference name, or 'mean'"),
        "reference_file": Key(("null", "str"), None, ".npy or one-column CSV/TSV file with one value per frame; "
                              "replaces pairs.reference"),
        "list": Key(("null", "pair_list"), None, "[[roi_a, roi_b], ...] (positions)"),
    },
    "significance": {
        "enabled": Key(("bool",), True, "compute AR(1) Monte Carlo thresholds"),
        "method": Key(("str",), "ar1", "null model", choices=("ar1",)),
        "mc_count": Key(("int",), 300, "surrogate pairs per AR(1) bucket pair", check=_at_least_one),
        "level": Key(("number",), 0.95, "significance level", check=_level),
        "seed": Key(("int",), 0, "seed of the surrogates"),
        "bucket_width": Key(("null", "number"), 0.1, "AR(1) bucket width in atanh(g)", check=_positive),
        "cache": Key(("null", "str"), None, "threshold cache folder (default ~/.cache/bioxen-dask)"),
    },
    "outputs": {
        "path": Key(("str",), required=True, doc="result store (.zarr)"),
        "maps": Key(("bool",), False, "also write coherence/phase maps (pair, period, time)"),
        "overwrite": Key(("bool",), False, "replace an existing result"),
        "resume": Key(("bool",), True, "resume an interrupted run of the same pipeline"),
        "region_size": Key(("null", "int"), None, "pairs per written region", check=_at_least_one),
        "figures": Key(("null", "str"), None, "folder for PNG figures"),
        "summary": Key(("null", "str"), None, "JSON summary file"),
    },
    "compute": {
        "roi_chunk": Key(("null", "int"), None, "rois per reference-mode task / all-pairs tile", check=_at_least_one),
        "pair_chunk": Key(("null", "int"), None, "pairs per list-mode task", check=_at_least_one),
        "time_chunk": Key(("null", "int"), None, "samples per time block (long records)", check=_at_least_one),
        "block_bytes": Key(("bytes",), "512MiB", "working memory of one task"),
        "fft_workers": Key(("null", "int"), None, "FFT threads inside a task", check=_at_least_one),
        "device": Key(("null", "str"), None, "where blocks are computed: cpu | gpu (CuPy); null: gpu "
                      "with cluster kind cuda, else cpu", choices=("cpu", "gpu")),
        "method": Key(("str",), "exact", "how each pair's maps are computed: exact (full rate) | multirate "
                      "(decimated grids where the scale allows: the same coherence to ~3e-6, several times "
                      "faster; Morlet, float32, cpu)", choices=("exact", "multirate")),
    },
    "cluster": {},  # validated by bioxen_dask.cluster.ClusterConfig
}

_KIND_NAMES = {
    "str": "a string", "int": "an integer", "number": "a number", "bool": "true or false", "null": "null",
    "int_list": "a list of integers", "range": "a mapping {start, stop, step}",
    "pair_list": "a list of [roi_a, roi_b] pairs", "bytes": "a byte count or a size like '512MiB'",
}


def _is_kind(value: Any, kind: str) -> bool:
    if kind == "null":
        return value is None
    if kind == "str":
        return isinstance(value, str) and value != ""
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if kind == "number":
        return (isinstance(value, numbers.Real) and not isinstance(value, bool)
                and math.isfinite(float(value)))
    if kind == "int_list":
        return isinstance(value, list) and bool(value) and all(_is_kind(v, "int") for v in value)
    if kind == "range":
        return (isinstance(value, Mapping) and set(value) <= {"start", "stop", "step"} and "stop" in value
                and all(_is_kind(v, "int") for v in value.values()))
    if kind == "pair_list":
        return (isinstance(value, list) and bool(value)
                and all(isinstance(p, list) and len(p) == 2 and all(_is_kind(v, "int") for v in p) for p in value))
    if kind == "bytes":
        if _is_kind(value, "int"):
            return value > 0
        if isinstance(value, str):
            try:
                import dask.utils

                return dask.utils.parse_bytes(value) > 0
            except (ValueError, TypeError):
                return False
        return False
    raise AssertionError(kind)


def _unknown(where: str, key: Any, allowed: Sequence[str]) -> PipelineError:
    prefix = f"{where}." if where else ""
    close = difflib.get_close_matches(str(key), list(allowed), n=1)
    hint = f" Did you mean '{prefix}{close[0]}'?" if close else ""
    return PipelineError(f"{prefix}{key}: unknown key.{hint} Allowed keys: {', '.join(allowed)}.")


def validate(config: Any, *, require: bool = True) -> dict[str, dict[str, Any]]:
    """Check a parsed pipeline against :data:`SCHEMA`; return it with defaults filled in.

    Raises
    ------
    PipelineError
        Naming the key: unknown sections/keys (with a suggestion), wrong types, values
        outside their choices or ranges, missing required keys, contradictions.
    """
    if config is None:
        config = {}
    if not isinstance(config, Mapping):
        raise PipelineError(f"a pipeline must be a mapping of sections ({', '.join(SCHEMA)}), got {type(config).__name__}.")
    out: dict[str, dict[str, Any]] = {}
    for section in config:
        if section not in SCHEMA:
            raise _unknown("", section, list(SCHEMA))
    for section, keys in SCHEMA.items():
        given = config.get(section) or {}
        if not isinstance(given, Mapping):
            raise PipelineError(f"{section}: must be a mapping of keys, got {given!r} ({type(given).__name__}).")
        if section == "cluster":
            out[section] = dict(given)
            continue
        values: dict[str, Any] = {}
        for key in given:
            if key not in keys:
                raise _unknown(section, key, list(keys))
        for key, spec in keys.items():
            where = f"{section}.{key}"
            if key not in given:
                if spec.required and require:
                    raise PipelineError(f"{where}: required key is missing ({spec.doc}).")
                values[key] = copy.deepcopy(spec.default)
                continue
            value = given[key]
            if not any(_is_kind(value, k) for k in spec.kinds):
                expected = " or ".join(_KIND_NAMES[k] for k in spec.kinds)
                raise PipelineError(f"{where}: must be {expected}, got {value!r} ({type(value).__name__}).")
            if spec.choices is not None and value is not None and value not in spec.choices:
                close = difflib.get_close_matches(str(value), [str(c) for c in spec.choices], n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise PipelineError(f"{where}: {value!r} is not allowed.{hint} Choose one of {list(spec.choices)}.")
            if spec.check is not None and value is not None:
                problem = spec.check(value)
                if problem:
                    raise PipelineError(f"{where}: {problem}, got {value!r}.")
            values[key] = copy.deepcopy(value)
        out[section] = values
    _cross_checks(out)
    return out


def _cross_checks(cfg: dict[str, dict[str, Any]]) -> None:
    g, pr = cfg["grid"], cfg["pairs"]
    if cfg["input"]["rois"] is not None and cfg["input"]["roi_positions"] is not None:
        raise PipelineError("input: give input.rois (roi ids) or input.roi_positions (positions), not both.")
    # the one rule (bioxen_dask.presets.resolve_conventions): a named preset selects its tool's
    # boundary unless grid.boundary is given; the validated pipeline records both, resolved
    from .presets import resolve_conventions

    boundary_given = g["boundary"] is not None
    p, g["boundary"] = resolve_conventions(g["preset"], g["boundary"])
    g["preset"] = p.name
    if (g["min_period"] is not None or g["max_period"] is not None) and (g["s0"] is not None or g["J"] is not None):
        raise PipelineError("grid: give either min_period/max_period or s0/J, not both.")
    mode = pr["mode"]
    if pr["reference_file"] is not None:
        pr["reference"] = None  # a reference file replaces the stored reference (a pipeline's default)
    if mode == "reference":
        if pr["reference"] is None and pr["reference_file"] is None:
            raise PipelineError("pairs.reference: mode 'reference' needs pairs.reference (a stored reference "
                                "name or 'mean') or pairs.reference_file (.npy or one-column .csv/.tsv).")
        if pr["list"] is not None:
            raise PipelineError("pairs.list: only used with pairs.mode 'list'.")
    elif mode == "list":
        if pr["list"] is None:
            raise PipelineError("pairs.list: mode 'list' needs a list of [roi_a, roi_b] pairs.")
        for key in ("rois", "roi_positions"):
            if cfg["input"][key] is not None:
                raise PipelineError(f"input.{key}: not used with pairs.mode 'list' (the pairs name their rois).")
    if mode != "reference" and (pr["reference"] is not None or pr["reference_file"] is not None):
        raise PipelineError(f"pairs.reference: only used with pairs.mode 'reference', not {mode!r}.")
    if mode == "all" and pr["list"] is not None:
        raise PipelineError("pairs.list: only used with pairs.mode 'list'.")
    c = cfg["compute"]
    if c["method"] == "multirate":
        if g["wavelet"] != "morlet":
            raise PipelineError(f"compute.method: 'multirate' needs grid.wavelet 'morlet', not {g['wavelet']!r}; "
                                "use compute.method 'exact'.")
        if g["dtype"] != "float32":
            raise PipelineError("compute.method: 'multirate' computes in float32; set grid.dtype 'float32' or use "
                                "compute.method 'exact'.")
        if g["boundary"] != "linear":
            origin = "" if boundary_given else f" (selected by grid.preset {g['preset']!r})"
            raise PipelineError(f"compute.method: 'multirate' needs grid.boundary 'linear', not {g['boundary']!r}"
                                f"{origin}; set grid.boundary: linear or use compute.method 'exact'.")
        if c["device"] == "gpu" or (cfg.get("cluster") or {}).get("kind") == "cuda":
            raise PipelineError("compute.method: 'multirate' runs on the CPU; use compute.method 'exact' on GPUs.")


# ----------------------------------------------------------------------------- loading


def _set_dotted(config: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    if len(parts) < 2 or not all(parts):
        raise PipelineError(f"--set {dotted}: expected SECTION.KEY=VALUE, e.g. grid.max_period=20.")
    if parts[0] not in SCHEMA:
        raise _unknown("", parts[0], list(SCHEMA))
    if parts[0] != "cluster" and (len(parts) != 2 or parts[1] not in SCHEMA[parts[0]]):
        raise _unknown(parts[0], ".".join(parts[1:]), list(SCHEMA[parts[0]]))
    node = config
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise PipelineError(f"--set {dotted}: {part} is not a section.")
        node = child
    node[parts[-1]] = value


def parse_overrides(items: Sequence[str]) -> list[tuple[str, Any]]:
    """``["grid.max_period=20", "outputs.maps=true"]`` → ``[("grid.max_period", 20), ...]``.

    Values are parsed as YAML (``true``, ``20``, ``[1, 2]``, ``null``); anything else is a string.
    """
    import yaml

    out = []
    for item in items:
        if "=" not in item:
            raise PipelineError(f"--set {item!r}: expected KEY=VALUE, e.g. grid.max_period=20.")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        out.append((key.strip(), value))
    return out


def _yaml_loader() -> type:
    """A ``yaml.SafeLoader`` that refuses a key given twice in one mapping (at any depth)."""
    import yaml

    class PipelineLoader(yaml.SafeLoader):
        """Safe loading (no Python objects), and duplicate keys are an error: PyYAML keeps the last
        of two equal keys, so a second ``grid:`` section would silently replace the first."""

        def construct_document(self, node: Any) -> Any:
            _check_duplicates(node, "", set())
            return super().construct_document(node)

    return PipelineLoader


class _DuplicateKeyError(Exception):
    def __init__(self, dotted: str, line: int, first: int) -> None:
        super().__init__(dotted)
        self.dotted, self.line, self.first = dotted, line, first


def _check_duplicates(node: Any, where: str, seen_nodes: set[int]) -> None:
    import yaml

    if id(node) in seen_nodes:  # an alias: checked where its anchor is
        return
    seen_nodes.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first: dict[tuple[str, str], int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *defaults`: explicit keys may override merged ones
            if isinstance(key_node, yaml.ScalarNode):
                dotted = f"{where}.{key_node.value}" if where else str(key_node.value)
                ident = (key_node.tag, key_node.value)
                if ident in first:
                    raise _DuplicateKeyError(dotted, key_node.start_mark.line + 1, first[ident])
                first[ident] = key_node.start_mark.line + 1
            else:
                dotted = f"{where}.?" if where else "?"
            _check_duplicates(value_node, dotted, seen_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check_duplicates(item, f"{where}[{i}]", seen_nodes)


def read_yaml(path: str | os.PathLike[str]) -> Any:
    """Parse a pipeline YAML file safely (never constructs Python objects).

    Raises
    ------
    PipelineError
        Invalid YAML, naming the file, line and column, with the offending line; a key given
        twice in one mapping (``grid`` twice at the top level, ``grid.dj`` twice in a section),
        naming the key and both lines.
    """
    import yaml

    path = Path(path)
    text = path.read_text()
    try:
        return yaml.load(text, Loader=_yaml_loader())  # noqa: S506 - a SafeLoader subclass
    except _DuplicateKeyError as exc:
        raise PipelineError(
            f"{path}, line {exc.line}: {exc.dotted}: duplicate key (first given at line {exc.first}); a second "
            "one would silently replace the first. Merge the two into one."
        ) from None
    except yaml.YAMLError as exc:
        raise PipelineError(_yaml_message(path, text, exc)) from None


def _yaml_message(path: Path, text: str, exc: Exception) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None)
    if mark is None or problem is None:
        return f"{path}: not valid YAML: {exc}"
    msg = f"{path}, line {mark.line + 1}, column {mark.column + 1}: not valid YAML: {problem}"
    context, cmark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context:
        at = f" at line {cmark.line + 1}" if cmark is not None and cmark is not mark else ""
        msg += f" ({context}{at})"
    lines = text.splitlines()
    if 0 <= mark.line < len(lines):
        msg += f"\n  {mark.line + 1} | {lines[mark.line]}\n  {' ' * len(str(mark.line + 1))} | {' ' * mark.column}^"
    return msg + "\nCheck the indentation, colons and brackets there."


@dataclass
class Pipeline:
    """A validated pipeline (``config`` holds every key, defaults filled in)."""

    config: dict[str, dict[str, Any]]
    source: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)  # filled by check()

    def get(self, dotted: str) -> Any:
        section, key = dotted.split(".", 1)
        return self.config[section][key]

    def cluster_config(self) -> Any:
        from .cluster import ClusterConfig

        try:
            return ClusterConfig.from_dask_config(self.config["cluster"])
        except ValueError as exc:
            raise PipelineError(str(exc)) from None

    def key(self) -> str:
        """Identity of what the pipeline computes (not where or how it runs)."""
        desc = {"config": _identity(self.config), "fingerprint": self.facts.get("fingerprint"),
                "reference_file": self.facts.get("reference_sha256"), "version": __version__}
        return json_digest(desc)


def _identity(config: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a pipeline config that :meth:`Pipeline.key` hashes: what is computed, not
    where (``outputs.path``, ``significance.cache``) or on what (``cluster``, ``compute`` task
    sizes and device) it runs. ``compute.method`` is kept: the two methods agree only to the
    float32 limit, so a result is never completed, nor reused, with the other one.

    The input is identified by its content, not by how its path is spelled: ``input.store``
    and ``pairs.reference_file`` are left out (``med.zarr``, ``./med.zarr`` and the absolute
    path are one input); the store's :func:`~bioxen_dask.io.fingerprint` and the reference
    file's SHA-256 enter :meth:`Pipeline.key` instead."""
    cfg = {k: v for k, v in config.items() if k not in ("cluster",)}
    cfg["input"] = {k: v for k, v in (cfg.get("input") or {}).items() if k != "store"}
    pairs = dict(cfg.get("pairs") or {})
    if pairs.get("reference_file") is not None:
        pairs["reference_file"] = "(a file, identified by its content)"
    cfg["pairs"] = pairs
    cfg["outputs"] = {k: v for k, v in (cfg.get("outputs") or {}).items() if k in ("maps", "region_size")}
    cfg["compute"] = {k: v for k, v in (cfg.get("compute") or {}).items() if k == "method"}
    cfg["significance"] = {k: v for k, v in (cfg.get("significance") or {}).items() if k != "cache"}
    return cfg


def load_pipeline(
    source: str | os.PathLike[str] | Mapping[str, Any], overrides: Sequence[tuple[str, Any]] | Sequence[str] = (),
) -> Pipeline:
    """Read (:func:`read_yaml`), apply ``--set`` overrides, and validate a pipeline.

    Parameters
    ----------
    source : path or mapping
        A YAML file, or an already parsed mapping.
    overrides : sequence
        ``("section.key", value)`` pairs or ``"section.key=value"`` strings.

    Raises
    ------
    FileNotFoundError
        No such pipeline file.
    PipelineError
        Invalid YAML (naming the file and line), a key given twice, or schema violations
        (naming the key).

    Examples
    --------
    >>> p = load_pipeline({"input": {"store": "s.zarr"}, "outputs": {"path": "c.zarr"},
    ...                    "pairs": {"reference": "stimulus"}}, ["grid.max_period=20"])
    >>> p.get("grid.max_period"), p.get("significance.mc_count")
    (20, 300)
    >>> load_pipeline({"input": {"store": "s.zarr"}, "grid": {"min_perod": 1}})
    Traceback (most recent call last):
    ...
    bioxen_dask.pipeline.PipelineError: grid.min_perod: unknown key. Did you mean 'grid.min_period'? ...
    """
    name = None
    if isinstance(source, Mapping):
        raw: Any = copy.deepcopy(dict(source))
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"no pipeline file {path}; see pipelines/calcium_coherence.yaml for an example.")
        raw = read_yaml(path)
        name = str(path)
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise PipelineError(f"{path}: a pipeline must be a mapping of sections ({', '.join(SCHEMA)}).")
    pairs = parse_overrides(overrides) if overrides and isinstance(overrides[0], str) else list(overrides)
    for dotted, value in pairs:
        _set_dotted(raw, dotted, value)
    return Pipeline(validate(raw), source=name)


# ----------------------------------------------------------------------------- checks


def _roi_positions(inp: Mapping[str, Any], roi_ids: np.ndarray) -> np.ndarray | None:
    """Positions of ``input.rois`` (roi ids) or ``input.roi_positions``; None: every roi.

    A range ``{start, stop, step}`` of ids selects the store's ids in ``range(start, stop, step)``
    (a suite2p store keeps only some); a range of positions must lie inside the store.
    """
    from .coherence import select_rois

    n_rois = len(roi_ids)
    by_id = inp["rois"] is not None
    key = "input.rois" if by_id else "input.roi_positions"
    spec = inp["rois"] if by_id else inp["roi_positions"]
    if spec is None:
        return None
    if isinstance(spec, Mapping):
        start, stop, step = spec.get("start", 0), spec["stop"], spec.get("step", 1)
        if step == 0:
            raise PipelineError(f"{key}.step: must not be 0.")
        if by_id:
            wanted = set(range(start, stop, step))
            idx = np.array([i for i, v in enumerate(roi_ids.tolist()) if v in wanted], dtype=np.int64)
            if idx.size == 0:
                raise PipelineError(f"{key}: no roi id of the store lies in range({start}, {stop}, {step}); its "
                                    f"{n_rois} ids run {roi_ids[0].item()!r}..{roi_ids[-1].item()!r}.")
            return idx
        if not (0 <= start < n_rois) or not (0 < stop <= n_rois):
            raise PipelineError(f"{key}: range {start}..{stop} is outside the store's {n_rois} rois (0..{n_rois}).")
        spec = list(range(start, stop, step))
        if not spec:
            raise PipelineError(f"{key}: the selection is empty.")
    try:
        idx = select_rois(roi_ids, spec if by_id else None, None if by_id else spec,
                          keys=("input.rois", "input.roi_positions"), where="store")
    except ValueError as exc:
        raise PipelineError(str(exc)) from None
    values, counts = np.unique(idx, return_counts=True)
    if np.any(counts > 1):
        pos = int(values[counts > 1][0])
        raise PipelineError(f"{key}: roi {roi_ids[pos].item()!r} (position {pos}) is listed more than once; list each "
                            "roi once.")
    return idx


def check(pipeline: Pipeline) -> Pipeline:
    """Verify everything that can be verified without computing; fills ``pipeline.facts``.

    The input store opens and is complete; the grid fits the record; the rois, pairs and
    reference exist; the output path is free (or resumable, or ``overwrite``). Reads
    metadata only. Sets ``facts["action"]``: ``create``, ``replace``, ``resume`` (an incomplete
    result of this run) or ``finish`` (the complete result of this run: only the summary and
    figures are written).

    Raises
    ------
    FileNotFoundError, PipelineError, bioxen_dask.datasets.OutputExistsError
    """
    from .coherence import MEAN_REFERENCES, pair_table, period_grid
    from .datasets import check_output
    from .io import fingerprint, open_signals_store

    cfg = pipeline.config
    store = Path(cfg["input"]["store"])
    if not store.exists():
        raise FileNotFoundError(
            f"input.store: no signals store at {store}; create one with `bioxen-dask synth` or "
            "`bioxen-dask ingest`."
        )
    try:
        ds = open_signals_store(store)
    except ValueError as exc:
        raise PipelineError(f"input.store: {exc}") from None
    n_rois, n = ds["signals"].shape
    fs = float(ds.attrs["fs"])
    g = cfg["grid"]
    try:
        grid = period_grid(n, 1.0 / fs, min_period=g["min_period"], max_period=g["max_period"], dj=g["dj"],
                           s0=g["s0"], J=g["J"], wavelet=g["wavelet"], preset=g["preset"])
    except ValueError as exc:
        raise PipelineError(f"grid: {exc}") from None
    from ._validation import check_length

    try:
        check_length(n, grid, f"the input store ({store})")
    except ValueError as exc:
        raise PipelineError(f"grid: {exc}") from None
    roi_ids = np.asarray(ds["roi"].values) if "roi" in ds.coords else np.arange(n_rois)
    rois = _roi_positions(cfg["input"], roi_ids)
    pr = cfg["pairs"]
    if pr["mode"] == "list":
        try:
            pair_table(pr["list"], n_rois)
        except ValueError as exc:
            raise PipelineError(f"pairs.list: {exc}") from None
    if pr["mode"] == "all" and (n_rois if rois is None else rois.size) < 2:
        raise PipelineError("input.rois: mode 'all' needs at least two rois.")
    if (pr["mode"] == "reference" and pr["reference"] is not None
            and pr["reference"].strip().lower() not in MEAN_REFERENCES):
        names = [str(v) for v in ds["reference"].values] if "reference" in ds.coords else []
        if pr["reference"] not in names:
            raise PipelineError(
                f"pairs.reference: {pr['reference']!r} is not in the store {store}; it holds "
                f"{names or 'no references'} (or use 'mean' for the population mean)."
            )
    ref_digest = None
    if pr["reference_file"] is not None:
        path = Path(pr["reference_file"])
        if not path.is_file():
            raise FileNotFoundError(f"pairs.reference_file: no file {path}.")
        ref = _load_reference_file(path, fs)
        if ref.shape != (n,):
            raise PipelineError(f"pairs.reference_file: shape {ref.shape}, expected one value per frame ({n},).")
        ref_digest = hashlib.sha256(path.read_bytes()).hexdigest()
    _check_paths(cfg, store)
    if pr["mode"] == "list":
        n_pairs = len(pr["list"])
    else:
        k = n_rois if rois is None else rois.size
        n_pairs = k if pr["mode"] == "reference" else k * (k - 1) // 2
    pipeline.facts.update(n_rois=n_rois, n_frames=n, fs=fs, n_scales=grid.n_scales,
                          fingerprint=fingerprint(store), rois=rois, n_pairs=n_pairs,
                          reference_sha256=ref_digest)
    pipeline.facts["action"] = _output_action(pipeline, check_output)
    pipeline.cluster_config()
    return pipeline


def scan_inputs(pipeline: Pipeline, *, progress: bool = False) -> dict[str, Any]:
    """Read the traces a checked pipeline analyses, and its reference, once: refuse what the
    run would refuse (missing samples its ``preprocessing.nan_policy`` does not fill, constant
    traces, a non-finite or constant reference) before any cluster starts.

    :func:`check` reads metadata only; this reads the data (``bioxen-dask run --check``), on
    the local threaded scheduler.

    Returns
    -------
    dict
        ``rois_scanned`` (the rows the run reads), ``missing_samples`` and ``rois_with_gaps``
        (what ``nan_policy: interpolate`` will fill and mask).

    Raises
    ------
    PipelineError
        Naming the first bad roi (id, position, frame) and the fix.
    """
    import contextlib

    import dask

    from ._validation import scan_traces
    from .coherence import MEAN_REFERENCES, check_reference, max_gap_samples, pair_table
    from .io import open_signals_store

    if "rois" not in pipeline.facts:
        check(pipeline)
    cfg = pipeline.config
    store = Path(cfg["input"]["store"])
    ds = open_signals_store(store)
    sig = ds["signals"]
    n_rois = sig.shape[0]
    dt = 1.0 / pipeline.facts["fs"]
    pr, pre = cfg["pairs"], cfg["preprocessing"]
    if pr["mode"] == "list":
        rows = np.unique(pair_table(pr["list"], n_rois))
    else:
        rois = pipeline.facts["rois"]
        rows = np.arange(n_rois) if rois is None else np.unique(rois)
    try:
        gap = max_gap_samples(pre["nan_policy"], pre["max_gap"], dt)
    except ValueError as exc:
        raise PipelineError(f"preprocessing.max_gap: {exc}") from None
    data = sig.data if rows.size == n_rois else sig.data[rows]
    reference = None  # (pipeline key, trace, name): checked as the run checks it
    if pr["mode"] == "reference" and pr["reference_file"] is not None:
        reference = ("pairs.reference_file", _load_reference_file(Path(pr["reference_file"])), "external")
    elif pr["mode"] == "reference" and pr["reference"] is not None and pr["reference"].strip().lower() not in MEAN_REFERENCES:
        names = [str(v) for v in ds["references"]["reference"].values]
        reference = ("pairs.reference", ds["references"].data[names.index(pr["reference"])], pr["reference"])
    bar = contextlib.nullcontext()
    if progress:
        from tqdm.dask import TqdmCallback

        from ._progress import bar_options

        bar = TqdmCallback(desc="reading the traces", delay=2.0, **bar_options())
    with dask.config.set(scheduler="threads"), bar:
        scan = scan_traces(data)
        try:
            scan.check(nan_policy=pre["nan_policy"], max_gap=gap, dt=dt, constant="raise",
                       roi_ids=np.asarray(sig["roi"].values)[rows] if "roi" in sig.coords else rows,
                       positions=rows, where=f"the signals of {store}")
        except ValueError as exc:
            raise PipelineError(f"input.store: {exc}") from None
        if reference is not None:
            key, trace, name = reference
            try:
                check_reference(trace, name, constant="raise", dt=dt)
            except ValueError as exc:
                raise PipelineError(f"{key}: {exc}") from None
    return {"rois_scanned": int(rows.size), "missing_samples": int(scan.n_missing.sum()),
            "rois_with_gaps": int((scan.n_missing > 0).sum())}


#: What a reference file may be, for messages.
_REFERENCE_FILES = (".npy (np.save(path, np.asarray(trace, float))) or a CSV/TSV table (.csv, .tsv, .tab, .txt: "
                    "one column, one row per frame; a header and a time column are optional)")


def _load_reference_file(path: Path, fs: float | None = None) -> np.ndarray:
    """A reference trace from a ``.npy`` file (numbers only, never unpickled) or a one-column
    CSV/TSV table (:func:`bioxen_dask.io._ingest.read_table`); a table's time column, if any,
    must give the store's rate ``fs`` (when given)."""
    from .io._ingest import TABLE_SUFFIXES, check_npy, rate_from_timestamps, rates_match, read_table

    if path.suffix.lower() in TABLE_SUFFIXES:
        try:
            values, names, times = read_table(path)
            rate = None if times is None or fs is None else rate_from_timestamps(times, f"the times of {path.name}")[0]
        except ValueError as exc:
            raise PipelineError(f"pairs.reference_file: {exc}.") from None
        if rate is not None and not rates_match(rate, fs):
            raise PipelineError(f"pairs.reference_file: the time column of {path.name} gives {rate:.10g} Hz, the "
                                f"input store {fs:.10g} Hz; resample the reference to the store's frames.")
        if values.shape[1] != 1:
            listed = f" ({', '.join(repr(n) for n in names)})" if names else ""
            raise PipelineError(
                f"pairs.reference_file: {path.name} holds {values.shape[1]} columns{listed}; a reference file "
                "holds one trace: keep its column (a time column named 'time' may stay)."
            )
        return values[:, 0]
    with open(path, "rb") as f:
        head = f.read(6)
    if head != np.lib.format.MAGIC_PREFIX and head[:1] != b"\x80":
        raise PipelineError(f"pairs.reference_file: {path} is not a .npy file (no NumPy header) nor a CSV/TSV "
                            f"table by its suffix; a reference file is {_REFERENCE_FILES}.")
    try:
        check_npy(path)
        ref = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        raise PipelineError(f"pairs.reference_file: {exc}; bioxen-dask never unpickles files: a reference file is "
                            f"{_REFERENCE_FILES}.") from None
    if ref.dtype.kind not in "iuf":
        raise PipelineError(f"pairs.reference_file: {path} must hold real numbers, got dtype {ref.dtype}.")
    return ref


def _inside(path: Path, root: Path) -> bool:
    p, r = path.expanduser().absolute().resolve(), root.absolute().resolve()
    return p == r or p.is_relative_to(r)


def _check_paths(cfg: Mapping[str, Any], store: Path) -> None:
    """Outputs go only where the pipeline names them, never into the input store, and a summary
    never replaces a file that is not one."""
    named = {"outputs.path": cfg["outputs"]["path"], "outputs.figures": cfg["outputs"]["figures"],
             "outputs.summary": cfg["outputs"]["summary"], "significance.cache": cfg["significance"]["cache"]}
    for key, value in named.items():
        if value is not None and _inside(Path(value), store):
            raise PipelineError(
                f"{key}: {value} is inside the input store {store}, which is never modified; choose a "
                "path outside it."
            )
    summary = cfg["outputs"]["summary"]
    if summary is not None:
        path = Path(summary)
        if path.is_dir() or (path.exists() and not _is_summary(path)):
            raise PipelineError(
                f"outputs.summary: {path} exists and is not a bioxen-dask summary; it is never replaced. "
                "Choose another file name."
            )


def _is_summary(path: Path) -> bool:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return isinstance(data, dict) and "output" in data and "write" in data


#: How a pipeline user replaces an existing result: the pipeline key, and its command-line form.
_OVERWRITE_HINT = "set outputs.overwrite: true (on the command line: --set outputs.overwrite=true) to replace it"


def _stored_attrs(path: Path) -> dict[str, Any]:
    """The group attributes of a result store (empty when unreadable)."""
    import zarr

    try:
        return dict(zarr.open_group(str(path), mode="r").attrs.asdict())
    except Exception:  # a damaged store: the caller falls back to a generic message
        return {}


def _flat(cfg: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in cfg.items():
        if isinstance(value, Mapping) and value and prefix == "":
            out.update(_flat(value, f"{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _stored_config(attrs: Mapping[str, Any]) -> dict[str, Any] | None:
    raw = attrs.get("pipeline")
    try:
        stored = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return None
    return stored if isinstance(stored, dict) else None


def _config_differences(stored: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """``section.key (stored X, now Y)`` for every key whose value differs."""
    old = _flat(stored)
    new = _flat(json.loads(json.dumps(jsonable(current, str))))
    return [f"{k} (stored {old.get(k)!r}, now {new.get(k)!r})" for k in sorted(set(old) | set(new))
            if old.get(k) != new.get(k)]


def run_differences(pipeline: Pipeline, attrs: Mapping[str, Any]) -> list[str]:
    """What makes a stored result's run differ from ``pipeline``'s: keys, input content, version.

    Parameters
    ----------
    pipeline : Pipeline
        A checked pipeline (``facts["fingerprint"]`` filled in).
    attrs : mapping
        The result store's attributes (``pipeline``: the config it was written with,
        ``input_fingerprint``, ``bioxen_dask_version``).

    Returns
    -------
    list of str
        One entry per difference, e.g. ``"grid.max_period (stored 12.0, now 20)"``; empty when
        the stored attributes do not tell.
    """
    out = []
    stored = _stored_config(attrs)
    if stored is not None:
        out += _config_differences(_identity(stored), _identity(pipeline.config))
    fp, now = attrs.get("input_fingerprint"), pipeline.facts.get("fingerprint")
    if fp is not None and now is not None and fp != now:
        out.append(f"the content of the input store (fingerprint {str(fp)[:19]}..., now {str(now)[:19]}...)")
    ref, ref_now = attrs.get("reference_file_sha256"), pipeline.facts.get("reference_sha256")
    if ref is not None and ref_now is not None and ref != ref_now:
        out.append(f"the content of pairs.reference_file (sha256 {str(ref)[:12]}..., now {str(ref_now)[:12]}...)")
    version = attrs.get("bioxen_dask_version")
    if version is not None and version != __version__:
        out.append(f"the bioxen-dask version (stored {version}, now {__version__})")
    return out


def _of_another_run(pipeline: Pipeline, path: Path) -> str:
    diff = run_differences(pipeline, _stored_attrs(path))
    if not diff:
        return "of a different run (other input or parameters)"
    return "of a different run: it differs in " + "; ".join(diff)


def _output_action(pipeline: Pipeline, check_output: Callable[..., str]) -> str:
    """What to do with ``outputs.path``, before computing: create, replace, resume or finish.

    ``"finish"``: the path holds the *complete* result of this same run (same :meth:`Pipeline.key`),
    and ``outputs.resume`` is on — a run interrupted after its result was complete, while the
    summary or figures were written; only those are (re)written, nothing is recomputed.

    Raises
    ------
    bioxen_dask.datasets.OutputExistsError
        In pipeline terms (``outputs.overwrite``, ``outputs.resume``, naming what differs from a
        stored run of another pipeline).
    """
    from .datasets import OutputExistsError, result_status

    o = pipeline.config["outputs"]
    path = Path(o["path"])
    status = result_status(path) if path.exists() else {"is_result": False}
    if status["is_result"] and not o["overwrite"]:
        same = status["run_key"] == pipeline.key()
        if status["complete"]:
            if same and o["resume"]:
                return "finish"
            which = "of this same run" if same else _of_another_run(pipeline, path)
            resume = (" or set outputs.resume: true to only rewrite its summary and figures" if same else "")
            raise OutputExistsError(
                f"outputs.path: {path} already holds a complete result {which}; choose another outputs.path"
                f"{resume}, or {_OVERWRITE_HINT}."
            )
        if not o["resume"]:
            raise OutputExistsError(
                f"outputs.path: {path} holds an incomplete result and outputs.resume is false; set "
                f"outputs.resume: true to resume it, or {_OVERWRITE_HINT}."
            )
        if not same:
            raise OutputExistsError(
                f"outputs.path: {path} holds an incomplete result {_of_another_run(pipeline, path)}; choose "
                f"another outputs.path, or {_OVERWRITE_HINT}."
            )
    return check_output(path, overwrite=o["overwrite"], resume=o["resume"], key=pipeline.key())


def _layout_error(pipeline: Pipeline, path: Path, exc: Exception) -> Exception:
    """``write_result``'s "another region layout" refusal, in pipeline terms."""
    from .datasets import OutputExistsError

    if "region layout" not in str(exc):
        return exc
    from .datasets import _regions_of

    attrs = _stored_attrs(path)
    regions = _regions_of(attrs)
    stored = _stored_config(attrs) or {}
    keys = ("compute.roi_chunk", "compute.pair_chunk", "outputs.region_size")
    old, new = _flat(stored), _flat(pipeline.config)
    diff = [f"{k} (stored {old.get(k)!r}, now {new.get(k)!r})" for k in keys
            if k in old and old.get(k) != new.get(k)]
    what = "; it differs in " + "; ".join(diff) if diff else ""
    return OutputExistsError(
        f"outputs.path: {path} holds an incomplete result written in {regions.get('count', '?')} regions of "
        f"{regions.get('size', '?')} {regions.get('dim', 'pair')}s, another region layout than this run's"
        f"{what}; re-run with the settings of the interrupted run to resume it, or {_OVERWRITE_HINT}."
    )


# ----------------------------------------------------------------------------- running


def damage_report(pipeline: Pipeline) -> list[dict[str, Any]]:
    """The damaged regions of the complete result a checked pipeline would finish (action
    ``finish``; reads every region once): what a run recomputes. Empty otherwise."""
    from .datasets import damaged_regions

    if pipeline.facts.get("action") != "finish" or pipeline.config["outputs"]["maps"]:
        return []
    return damaged_regions(Path(pipeline.config["outputs"]["path"]))


def _repair(pipeline: Pipeline, out: Path, say: Callable[[str], None]) -> list[int]:
    """Damaged regions of the complete result at ``out`` made incomplete again, so that the
    run recomputes them (only them); ``facts["action"]`` becomes ``repair``."""
    from .datasets import OutputExistsError, reopen_for_repair, result_status

    damaged = damage_report(pipeline)
    if not damaged:
        return []
    regions = [d["region"] for d in damaged]
    if None in regions:
        raise OutputExistsError(f"outputs.path: {out}: {damaged[-1]['problem']}: its region layout is damaged; "
                                f"{_OVERWRITE_HINT} by a new run.")
    count = result_status(out)["regions"]
    say(f"{out}: {len(regions)} of {count} regions damaged since written ({_region_list(damaged)}); "
        "recomputing those only")
    reopen_for_repair(out, regions)
    pipeline.facts["action"] = "repair"
    return regions


def _region_list(damaged: Sequence[Mapping[str, Any]]) -> str:
    return "; ".join(f"region {d['region']} ({d['dim']}s {d['start']}..{d['stop'] - 1}): {d['problem']}"
                     for d in damaged)



def build_dataset(pipeline: Pipeline, *, progress: bool = False) -> Any:
    """The lazy coherence Dataset of a checked pipeline (runs the significance stage)."""
    import dask.utils

    from .coherence import coherence
    from .io import open_signals_store

    cfg = pipeline.config
    g, pr, s, c = cfg["grid"], cfg["pairs"], cfg["significance"], cfg["compute"]
    store = Path(cfg["input"]["store"]).absolute()  # workers may run with another cwd
    ds = open_signals_store(store)
    ds.encoding["source"] = str(store)
    kw: dict[str, Any] = {}
    if pr["mode"] == "reference":
        kw["reference"] = (pr["reference"] if pr["reference"] is not None
                           else np.asarray(_load_reference_file(Path(pr["reference_file"]))))
        kw["roi_positions"] = pipeline.facts.get("rois")
    elif pr["mode"] == "list":
        kw["pairs"] = pr["list"]
    else:
        kw["all_pairs"] = True
        kw["roi_positions"] = pipeline.facts.get("rois")
    block_bytes = c["block_bytes"]
    if isinstance(block_bytes, str):
        block_bytes = dask.utils.parse_bytes(block_bytes)
    result = coherence(
        ds, **kw, min_period=g["min_period"], max_period=g["max_period"], dj=g["dj"], s0=g["s0"], J=g["J"],
        wavelet=g["wavelet"], preset=g["preset"], boundary=g["boundary"], dtype=g["dtype"], tol=g["tol"],
        normalize=cfg["preprocessing"]["normalize"], detrend=cfg["preprocessing"]["detrend"],
        nan_policy=cfg["preprocessing"]["nan_policy"], max_gap=cfg["preprocessing"]["max_gap"], constant="raise",
        maps=cfg["outputs"]["maps"], significance="ar1" if s["enabled"] else None, mc_count=s["mc_count"],
        level=s["level"], seed=s["seed"], ar1_bucket=s["bucket_width"], threshold_cache=s["cache"],
        roi_chunk=c["roi_chunk"], pair_chunk=c["pair_chunk"], time_chunk=c["time_chunk"],
        block_bytes=int(block_bytes), workers=c["fft_workers"], progress=progress,
        device=c["device"] or ("gpu" if (cfg.get("cluster") or {}).get("kind") == "cuda" else "cpu"),
        method=c["method"],
    )
    result.attrs["pipeline"] = json.dumps(jsonable(cfg), sort_keys=True)
    if pipeline.facts.get("reference_sha256"):
        result.attrs["reference_file_sha256"] = pipeline.facts["reference_sha256"]
    if pipeline.source:
        result.attrs["pipeline_file"] = pipeline.source
    return result


def run_pipeline(pipeline: Pipeline, *, progress: bool = True, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Check, compute and write a pipeline on the active Dask scheduler (or the local one).

    The caller chooses where it runs: inside ``with bioxen_dask.cluster.connect(...)`` the
    work goes to that cluster. Writes the result store region by region (resumable), then
    the figures and the summary JSON when the pipeline asks for them.

    A re-run of an interrupted run resumes it (``outputs.resume``): regions already written
    and verified are kept; when the result was already complete (the interruption came while
    the summary or figures were written), only those are written, nothing is recomputed.

    Returns
    -------
    dict
        The summary: output path, write report, sizes, wall times, and for synthetic inputs
        the recovery of the planted groups (:func:`evaluate_recovery`).
    """
    from .datasets import OutputExistsError, open_result, result_status, write_result

    say = log or (lambda msg: None)
    t0 = time.perf_counter()
    if "action" not in pipeline.facts:
        check(pipeline)
    cfg = pipeline.config
    out = Path(cfg["outputs"]["path"])
    say(f"input {cfg['input']['store']}: {pipeline.facts['n_rois']} rois x {pipeline.facts['n_frames']} frames "
        f"at {pipeline.facts['fs']:g} Hz; {pipeline.facts['n_scales']} scales; output {out} "
        f"({pipeline.facts['action']})")
    repaired: list[int] = []
    if pipeline.facts["action"] == "finish":
        # complete result of this same run: an earlier run was interrupted while it wrote the
        # summary or figures; they are (re)written, nothing is recomputed -- unless regions were
        # damaged since: those (only) are recomputed
        if cfg["outputs"]["maps"]:  # re-reading maps is re-reading most of the run's output
            say(f"{out}: maps not re-verified (bioxen-dask info --verify {out} re-reads every region)")
        else:
            repaired = _repair(pipeline, out, say)
    if pipeline.facts["action"] == "finish":
        ds = open_result(out)
        t_sig = 0.0
        say(f"{out} already holds the complete result of this run (verified); writing its summary and figures only")
        status = result_status(out)
        write = {"path": str(out.absolute()), "regions": status["regions"], "written": 0,
                 "skipped": status["regions"], "resumed": True, "complete_already": True}
    else:
        ds = build_dataset(pipeline, progress=progress)
        t_sig = time.perf_counter() - t0
        say(f"{ds.sizes['pair']} pairs x {ds.sizes['period']} periods; significance stage {t_sig:.1f} s")
        try:
            report = write_result(ds, out, region_size=cfg["outputs"]["region_size"],
                                  overwrite=cfg["outputs"]["overwrite"], resume=cfg["outputs"]["resume"],
                                  key=pipeline.key(), progress=progress)
        except OutputExistsError as exc:
            raise _layout_error(pipeline, out, exc) from None
        write = report.describe()
        if repaired:
            write["repaired_regions"] = repaired
    t_write = time.perf_counter() - t0
    summary: dict[str, Any] = {
        "output": str(out),
        "write": write,
        "pairs": int(ds.sizes["pair"]),
        "periods": int(ds.sizes["period"]),
        "period_range_s": [round(float(ds.period[0]), 4), round(float(ds.period[-1]), 4)],
        "mode": cfg["pairs"]["mode"],
        "significance_stage_s": round(t_sig, 2),
    }
    result = open_result(out)
    truth = planted_truth(cfg["input"]["store"])
    if truth is not None and cfg["pairs"]["mode"] == "reference" and "significant_fraction" in result:
        summary.update(evaluate_recovery(result, truth))
    if cfg["outputs"]["figures"]:
        summary["figures"] = write_figures(result, cfg, truth, Path(cfg["outputs"]["figures"]))
    summary["wall_time_s"] = round(time.perf_counter() - t0, 2)
    summary["compute_and_write_s"] = round(t_write, 2)
    if cfg["outputs"]["summary"]:
        path = Path(cfg["outputs"]["summary"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(summary, indent=2))
    return summary


# ----------------------------------------------------------------------------- synthetic truth


def planted_truth(store: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The planted groups of a synthetic signals store (``bioxen-dask synth``), or None.

    Returns what :func:`evaluate_recovery` compares a result with: each roi's planted group
    and the groups' periods and lags, as :func:`bioxen_dask.io.write_synthetic` stored them.
    """
    from .io import open_signals_store

    ds = open_signals_store(store)
    if "truth_group" not in ds or "truth_groups" not in ds.attrs:
        return None
    return {"group": np.asarray(ds["truth_group"].values), "groups": list(ds.attrs["truth_groups"]),
            "roi": np.asarray(ds["roi"].values)}


def evaluate_recovery(result: Any, truth: Mapping[str, Any], *, min_fraction: float = 0.5) -> dict[str, Any]:
    """Precision and recall of planted coherent groups, at the planted periods.

    A roi is *recovered* at a planted period ``P`` when its ``significant_fraction`` at the
    grid period nearest ``P`` is at least ``min_fraction`` (coherence with the reference is
    significant over most of the time outside the cone of influence). Calls are counted over
    every (roi, planted period): true positives are members of the group planted at ``P``.

    Parameters
    ----------
    result : xarray.Dataset
        Reference-mode coherence with ``significant_fraction``.
    truth : mapping
        ``group`` (per roi position, -1 = none), ``groups`` (the store's ``truth_groups``
        table: ``period_s``, ``lag_s``, ``calcium_delay_s``).

    Returns
    -------
    dict
        ``precision``, ``recall``, ``rule`` and per-group ``groups`` entries (planted period,
        grid period used, recall, false positives, median recovered lag and the expected one).
    """
    index = np.asarray(result["index_a"].values)
    member = np.asarray(truth["group"])[index]
    tp = fp = fn = 0
    per = []
    for g in truth["groups"]:
        at = result.sel(period=g["period_s"], method="nearest")
        frac = np.asarray(at["significant_fraction"].values)
        called = np.nan_to_num(frac, nan=0.0) >= min_fraction
        planted = member == g["group"]
        g_tp = int((called & planted).sum())
        g_fp = int((called & ~planted).sum())
        g_fn = int((~called & planted).sum())
        tp, fp, fn = tp + g_tp, fp + g_fp, fn + g_fn
        lags = np.asarray(at["lag"].values)[called & planted]
        expected = -(g["lag_s"] + g.get("calcium_delay_s", 0.0))  # the rois follow the stimulus
        P = float(at["period"])
        err = np.angle(np.exp(2j * np.pi * (lags - expected) / P)) / (2 * np.pi) * P if lags.size else np.array([])
        per.append({
            "planted_period_s": g["period_s"], "grid_period_s": round(P, 4), "planted": int(planted.sum()),
            "recovered": g_tp, "false_positives": g_fp, "recall": round(g_tp / max(1, g_tp + g_fn), 4),
            "median_lag_s": round(float(np.median(lags)), 3) if lags.size else None,
            "expected_lag_s": round(float(expected), 3),
            "median_abs_lag_error_s": round(float(np.median(np.abs(err))), 3) if lags.size else None,
        })
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "rule": f"significant_fraction >= {min_fraction:g} at the grid period nearest each planted period",
        "groups": per,
    }


# ----------------------------------------------------------------------------- figures


def write_figures(result: Any, cfg: Mapping[str, Any], truth: Mapping[str, Any] | None, folder: Path) -> list[str]:
    """The standard figures of a result: summary heatmap, one pair's map, recovery (synthetic).

    The recovery figure (and the summary's rows sorted by planted group) only in reference
    mode with planted truth: the planted lags are lags against the stimulus, meaningless for
    pairs of rois (list / all mode).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from . import plot
    from .coherence import coherence

    folder.mkdir(parents=True, exist_ok=True)
    files = []
    reference = cfg["pairs"]["mode"] == "reference"
    planted = truth is not None and reference  # the planted groups are defined against the stimulus
    order = boundaries = ylabel = None
    if planted:
        member = np.asarray(truth["group"])[np.asarray(result["index_a"].values)]
        order = np.argsort(np.where(member < 0, np.iinfo(np.int64).max, member), kind="stable")
        boundaries = np.cumsum([int((member == g["group"]).sum()) for g in truth["groups"]])
        ylabel = "roi id (sorted by planted group; last: none)"
    fig = plot.plot_summary(result, order=order, boundaries=boundaries, ylabel=ylabel)
    files.append(_save(fig, folder / "coherence_summary.png", plt))
    if planted and "significant_fraction" in result:
        fig = plot.plot_recovery(result, truth)
        files.append(_save(fig, folder / "recovery.png", plt))
    if reference:
        # the map of the most coherent pair, recomputed for that one roi (maps are not stored)
        k = int(np.nanargmax(np.nanmean(np.asarray(result["coherence_mean"].values), axis=1)))
        ds = _one_pair_map(result, cfg, k, coherence)
        fig, ax = plt.subplots(figsize=(10, 4.8), constrained_layout=True)
        plot.plot_pair(ds, pair=0, ax=ax,
                       title=f"roi {result['roi_a'].values[k]} vs {result['roi_b'].values[k]}: wavelet coherence")
        files.append(_save(fig, folder / "pair_coherence.png", plt))
    return files


def _one_pair_map(result: Any, cfg: Mapping[str, Any], k: int, coherence: Callable) -> Any:
    from .io import open_signals_store

    g, pr = cfg["grid"], cfg["pairs"]
    ds = open_signals_store(cfg["input"]["store"])
    ref = pr["reference"] if pr["reference"] is not None else np.asarray(_load_reference_file(Path(pr["reference_file"])))
    thr = result["threshold"].values[k : k + 1] if "threshold" in result else None
    return coherence(
        ds, reference=ref, roi_positions=[int(result["index_a"].values[k])], min_period=g["min_period"],
        max_period=g["max_period"], dj=g["dj"], s0=g["s0"], J=g["J"], wavelet=g["wavelet"], preset=g["preset"],
        boundary=g["boundary"], dtype=g["dtype"], tol=g["tol"], normalize=cfg["preprocessing"]["normalize"],
        detrend=cfg["preprocessing"]["detrend"], nan_policy=cfg["preprocessing"]["nan_policy"],
        max_gap=cfg["preprocessing"]["max_gap"], maps=True, significance=thr,
    ).compute()


def _save(fig: Any, path: Path, plt: Any) -> str:
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def repo_file(*parts: str) -> Path | None:
    """A file shipped next to the package in a source checkout (or under the CWD)."""
    for root in (Path.cwd(), Path(__file__).resolve().parents[1]):
        path = root.joinpath(*parts)
        if path.is_file():
            return path
    return None
