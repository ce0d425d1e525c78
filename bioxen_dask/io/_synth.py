"""Synthetic calcium imaging with planted coherent groups and known ground truth.

Model, per roi ``i`` (all in seconds, ``dt = 1 / fs``):

* spikes ``n_i[t] ~ Poisson(r_i * dt * (1 + m_i * cos(2π (t - lag_g) / P_g + φ_g)))`` for a
  roi of planted group ``g`` (period ``P_g``, lag ``lag_g``), ``Poisson(r_i * dt)`` otherwise;
* calcium ``c_i[t] = γ c_i[t-1] + n_i[t]`` with ``γ = exp(-dt / tau_s)`` (AR(1) kernel,
  started at its steady state);
* ΔF/F ``y_i = a_i c_i + sqrt((0.1 a_i c_i)² + σ_i²) η + drift_i``: multiplicative (10%) plus
  additive Gaussian noise (one standard normal ``η``), and a slow drift mixing sines and
  cosines with periods of 2.5-8 minutes with random per-roi weights.

The ``stimulus`` reference is ``Σ_g cos(2π t / P_g + φ_g)``: group ``g``'s firing rate
follows the stimulus component at ``P_g`` delayed by ``lag_g`` (the fluorescence lags
by a further calcium-kernel delay, given per group as ``calcium_delay_s``).

Randomness: the global draws (group membership, per-roi parameters, phases) come
from ``SeedSequence(seed, spawn_key=(0,))`` and roi ``i``'s noise from
``SeedSequence(seed, spawn_key=(1, i))``, so the data depend only on ``seed`` and the
parameters, never on how the rois are blocked or written.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from scipy.signal import lfilter

from ._store import SignalsWriter, store_attrs, validate_fs

__all__ = ["DEFAULT_GROUPS", "DEFAULT_NETWORKS", "PlantedGroup", "synthesize", "synthesize_networks", "write_synthetic"]

#: Rois generated together (bounds the float64 temporaries to a few tens of MB).
_GEN_ROWS = 64
_MULT_NOISE = 0.1
_DRIFT_PERIODS_S = (150.0, 270.0, 480.0)
_DRIFT_SD = 0.05


@dataclass(frozen=True)
class PlantedGroup:
    """A group of rois whose firing rate oscillates with the stimulus.

    Parameters
    ----------
    period_s
        Oscillation period in seconds.
    lag_s
        Delay of the rois' rate modulation behind the stimulus component at ``period_s``.
    fraction
        Share of all rois in the group (at least one roi).
    """

    period_s: float
    lag_s: float
    fraction: float = 0.08


#: 2 s, 5 s and 10 s groups with phase lags of 45°, 90° and 135°, 8% of rois each.
DEFAULT_GROUPS: tuple[PlantedGroup, ...] = (
    PlantedGroup(2.0, 0.25),
    PlantedGroup(5.0, 1.25),
    PlantedGroup(10.0, 3.75),
)


def _as_groups(groups: Sequence[PlantedGroup | Mapping[str, float]], n_rois: int, fs: float,
               n_frames: int) -> list[tuple[PlantedGroup, int]]:
    out = []
    duration = n_frames / fs
    for g in groups:
        group = g if isinstance(g, PlantedGroup) else PlantedGroup(**g)
        if not 4 / fs <= group.period_s <= duration / 2:
            raise ValueError(
                f"planted period {group.period_s} s must span at least 4 frames ({4 / fs:g} s) and fit "
                f"twice in the {duration:g} s recording"
            )
        if not 0 < group.fraction <= 1 or not math.isfinite(group.lag_s):
            raise ValueError(f"group {group}: fraction must be in (0, 1] and lag_s finite")
        out.append((group, max(1, round(group.fraction * n_rois))))
    if sum(n for _, n in out) > n_rois:
        needed = sum(n for _, n in out)
        raise ValueError(f"planted groups need {needed} rois but n_rois={n_rois}; lower the fractions")
    return out


def _calcium_delay(period_s: float, gamma: float, fs: float) -> float:
    """Phase delay (s) of the AR(1) kernel ``1 / (1 - γ z⁻¹)`` at ``1 / period_s``."""
    w = 2 * np.pi / period_s / fs  # radians per frame
    return float(np.angle(1 - gamma * np.exp(-1j * w)) / (2 * np.pi / period_s))


class _Synth:
    """All global draws of one synthetic recording; generates rois on demand."""

    def __init__(self, n_rois: int, n_frames: int, fs: float, groups: Sequence[Any], seed: int,
                 tau_s: float, rate_hz: float, modulation_depth: float, noise_sd: float) -> None:
        if n_rois < 1 or n_frames < 2:
            raise ValueError(f"need n_rois >= 1 and n_frames >= 2, got {n_rois}, {n_frames}")
        if tau_s <= 0 or rate_hz <= 0 or noise_sd < 0 or not 0 <= modulation_depth <= 1:
            raise ValueError("need tau_s > 0, rate_hz > 0, noise_sd >= 0 and 0 <= modulation_depth <= 1")
        self.n_rois, self.n_frames, self.fs, self.seed = int(n_rois), int(n_frames), validate_fs(fs), int(seed)
        self.params = {"seed": self.seed, "tau_s": tau_s, "rate_hz": rate_hz,
                       "modulation_depth": modulation_depth, "noise_sd": noise_sd}
        self.gamma = math.exp(-1.0 / (tau_s * self.fs))
        planted = _as_groups(groups, self.n_rois, self.fs, self.n_frames)
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(0,)))
        n = self.n_rois
        self.group = np.full(n, -1, dtype=np.int64)
        order, start = rng.permutation(n), 0
        for g, (_, size) in enumerate(planted):
            self.group[order[start:start + size]] = g
            start += size
        self.rate = rate_hz * rng.uniform(0.8, 1.2, n)
        self.depth = modulation_depth * rng.uniform(0.9, 1.0, n)
        self.amp = rng.uniform(0.3, 0.6, n)
        self.noise = noise_sd * rng.uniform(0.5, 1.5, n)
        self.drift_weights = rng.normal(0.0, _DRIFT_SD, (n, 2 * len(_DRIFT_PERIODS_S)))
        phases = rng.uniform(0, 2 * np.pi, len(planted))

        t = np.arange(self.n_frames) / self.fs
        self.t = t
        self.drift_basis = np.concatenate([[np.sin(2 * np.pi * t / p), np.cos(2 * np.pi * t / p)]
                                           for p in _DRIFT_PERIODS_S])
        self.modulation = np.stack([np.cos(2 * np.pi * (t - g.lag_s) / g.period_s + ph)
                                    for (g, _), ph in zip(planted, phases)]) if planted else np.zeros((0, t.size))
        self.stimulus = sum((np.cos(2 * np.pi * t / g.period_s + ph) for (g, _), ph in zip(planted, phases)),
                            np.zeros_like(t)).astype(np.float32)
        self.table = [
            {"group": k, "period_s": g.period_s, "lag_s": g.lag_s,
             "phase_lag_deg": (360.0 * g.lag_s / g.period_s) % 360.0, "fraction": g.fraction, "n_rois": size,
             "reference_phase_rad": float(ph), "calcium_delay_s": _calcium_delay(g.period_s, self.gamma, self.fs)}
            for k, ((g, size), ph) in enumerate(zip(planted, phases))
        ]
        periods = np.array([g.period_s for g, _ in planted] + [np.nan])
        lags = np.array([g.lag_s for g, _ in planted] + [np.nan])
        self.truth = {"truth_group": self.group, "truth_period": periods[self.group], "truth_lag": lags[self.group]}

    def _draws(self, i: int, counts: np.ndarray, noise: np.ndarray) -> None:
        """Spike counts and a standard normal per frame of roi ``i``, from its own stream."""
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(1, i)))
        lam = np.full(self.n_frames, self.rate[i] / self.fs)
        g = self.group[i]
        if g >= 0:
            lam *= 1 + self.depth[i] * self.modulation[g]
        counts[:] = rng.poisson(lam)
        rng.standard_normal(out=noise)

    def rows(self, start: int, stop: int) -> np.ndarray:
        """ΔF/F of rois ``start:stop`` (float32, roi × time).

        Only elementwise arithmetic mixes rois of a block, so a roi's values do not
        depend on the block it is generated in.
        """
        out = np.empty((stop - start, self.n_frames), dtype=np.float32)
        for lo in range(start, stop, _GEN_ROWS):
            sel = slice(lo, min(lo + _GEN_ROWS, stop))
            counts = np.empty((sel.stop - lo, self.n_frames))
            noise = np.empty_like(counts)
            for k, i in enumerate(range(lo, sel.stop)):
                self._draws(i, counts[k], noise[k])
            steady = (self.rate[sel] / self.fs / (1 - self.gamma))[:, None]
            calcium, _ = lfilter([1.0], [1.0, -self.gamma], counts, axis=1, zi=self.gamma * steady)
            clean = self.amp[sel, None] * calcium
            sd = np.sqrt((_MULT_NOISE * clean) ** 2 + self.noise[sel, None] ** 2)
            drift = sum(w[:, None] * b for w, b in zip(self.drift_weights[sel].T, self.drift_basis))
            out[lo - start: sel.stop - start] = clean + sd * noise + drift
        return out

    def attrs(self) -> dict[str, Any]:
        model = ("Poisson spikes with rate r(1 + m cos(2π(t - lag)/P + φ)) for planted rois, AR(1) calcium "
                 "kernel, multiplicative + additive Gaussian noise, slow drift; dF/F")
        return store_attrs(
            fs=self.fs, units="dF/F", source=f"bioxen_dask.io.synthesize(seed={self.seed})",
            source_format="synthetic", preprocessing=[f"synthetic: {model}"],
            attrs={"truth_groups": self.table, "synthetic": {**self.params, "model": model}},
        )


def synthesize(
    n_rois: int = 200,
    n_frames: int = 18000,
    fs: float = 30.0,
    *,
    groups: Sequence[PlantedGroup | Mapping[str, float]] = DEFAULT_GROUPS,
    seed: int = 0,
    tau_s: float = 0.7,
    rate_hz: float = 8.0,
    modulation_depth: float = 0.9,
    noise_sd: float = 0.1,
) -> xr.Dataset:
    """Synthetic ΔF/F traces with planted groups coherent with a stimulus, in memory.

    Parameters
    ----------
    n_rois, n_frames, fs
        Size and sampling rate (Hz).
    groups
        Planted groups (:class:`PlantedGroup` or mappings with ``period_s``, ``lag_s``,
        ``fraction``); default :data:`DEFAULT_GROUPS`. Other rois are unmodulated.
    seed
        Seed of all randomness; equal seeds give identical data.
    tau_s, rate_hz, modulation_depth, noise_sd
        Calcium decay time, mean firing rate, rate-modulation depth of planted rois
        and mean additive noise (ΔF/F).

    Returns
    -------
    xarray.Dataset
        ``signals`` (roi, time) float32, ``references`` (reference, time) with
        ``reference = ["stimulus"]``, ground truth ``truth_group`` (-1 = none),
        ``truth_period`` and ``truth_lag`` (s; NaN = none) per roi, and attrs ``fs``,
        ``units``, ``truth_groups`` (a JSON-serialisable group table), ``synthetic`` (parameters).

    Examples
    --------
    >>> ds = synthesize(n_rois=50, n_frames=3000, seed=1)
    >>> ds["signals"].shape, ds["reference"].values.tolist()
    ((50, 3000), ['stimulus'])
    >>> [g["period_s"] for g in ds.attrs["truth_groups"]]
    [2.0, 5.0, 10.0]
    """
    syn = _Synth(n_rois, n_frames, fs, groups, seed, tau_s, rate_hz, modulation_depth, noise_sd)
    coords = {"roi": np.arange(syn.n_rois), "time": syn.t, "reference": ["stimulus"]}
    data_vars = {
        "signals": (("roi", "time"), syn.rows(0, syn.n_rois)),
        "references": (("reference", "time"), syn.stimulus[None, :]),
        **{name: ("roi", values) for name, values in syn.truth.items()},
    }
    return xr.Dataset(data_vars, coords=coords, attrs=syn.attrs())


def write_synthetic(
    path: str | os.PathLike[str],
    n_rois: int = 200,
    n_frames: int = 18000,
    fs: float = 30.0,
    *,
    groups: Sequence[PlantedGroup | Mapping[str, float]] = DEFAULT_GROUPS,
    seed: int = 0,
    tau_s: float = 0.7,
    rate_hz: float = 8.0,
    modulation_depth: float = 0.9,
    noise_sd: float = 0.1,
    chunks: Any = None,
    overwrite: bool = False,
) -> Path:
    """Write :func:`synthesize`'s data (and ground truth) to a signals store, streamed.

    Takes the same parameters as :func:`synthesize`, plus ``chunks`` and ``overwrite``
    as in :func:`write_signals`. Rois are generated block by block, so memory stays
    bounded; the store holds exactly what :func:`synthesize` returns.

    Examples
    --------
    >>> import tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> out = write_synthetic(f"{tmp.name}/syn.zarr", n_rois=20, n_frames=3000)
    >>> from bioxen_dask.io import open_signals_store
    >>> ds = open_signals_store(out)
    >>> int((ds["truth_group"] >= 0).sum()), ds.attrs["source_format"]
    (6, 'synthetic')
    >>> tmp.cleanup()
    """
    syn = _Synth(n_rois, n_frames, fs, groups, seed, tau_s, rate_hz, modulation_depth, noise_sd)
    attrs = syn.attrs()
    extra = {k: v for k, v in attrs.items() if k in ("truth_groups", "synthetic")}
    cache: dict[tuple[int, int], np.ndarray] = {}

    def read(rows: slice, times: slice) -> np.ndarray:
        key = (rows.start, rows.stop)
        if key not in cache:
            cache.clear()
            cache[key] = syn.rows(*key)
        return cache[key][:, times]

    with SignalsWriter(
        path, (syn.n_rois, syn.n_frames), syn.fs, references={"stimulus": syn.stimulus},
        units=attrs["units"], source=attrs["source"], source_format=attrs["source_format"],
        preprocessing=attrs["preprocessing"], attrs=extra, chunks=chunks, overwrite=overwrite,
        roi_variables=syn.truth,
    ) as writer:
        writer.fill(read)
    return writer.path


#: Networks of :func:`synthesize_networks`: 2 s, 5 s and 10 s rhythms, the rois of each spread
#: over lags of 0-0.4, 0-1 and 0-2 s (a fifth of the period), 12% of rois each.
DEFAULT_NETWORKS: tuple[PlantedGroup, ...] = (
    PlantedGroup(2.0, 0.4, 0.12),
    PlantedGroup(5.0, 1.0, 0.12),
    PlantedGroup(10.0, 2.0, 0.12),
)


class _NetworkSynth(_Synth):
    """:class:`_Synth` with no stimulus: each group's rois share an intrinsic rhythm.

    Group ``g``'s drive is ``cos(2π t / P_g + φ_g(t))`` with a slowly wandering phase
    ``φ_g`` (a random walk smoothed over ~5 periods: a narrowband rhythm, not a clock that a
    stimulus would set), and roi ``k`` of the group (in roi order) follows it delayed by
    ``lag_k = lag_s * k / (size - 1)``, so the lag of roi ``j`` behind roi ``i`` is
    ``lag_j - lag_i`` (``truth_lag``; every roi has the same calcium kernel, so its delay
    cancels in a pair).
    """

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(2,)))
        t = self.t
        self.lag = np.full(self.n_rois, np.nan)
        drives = []
        for k, row in enumerate(self.table):
            period = row["period_s"]
            width = max(3, int(round(5 * period * self.fs)))
            walk = np.cumsum(rng.standard_normal(t.size)) * math.sqrt(1.0 / (period * self.fs))
            kernel = np.hanning(width)
            phase = np.convolve(walk, kernel / kernel.sum(), mode="same")
            drives.append(phase)
            members = np.flatnonzero(self.group == k)
            self.lag[members] = row["lag_s"] * np.arange(members.size) / max(1, members.size - 1)
            row.pop("reference_phase_rad", None)
            row.pop("phase_lag_deg", None)
            row["lag_spread_s"] = row.pop("lag_s")
        self.phase_walk = np.stack(drives) if drives else np.zeros((0, t.size))
        self.periods = np.array([row["period_s"] for row in self.table])
        self.truth = {"truth_group": self.group,
                      "truth_period": np.append(self.periods, np.nan)[self.group],
                      "truth_lag": self.lag}

    def _draws(self, i: int, counts: np.ndarray, noise: np.ndarray) -> None:
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(1, i)))
        lam = np.full(self.n_frames, self.rate[i] / self.fs)
        g = self.group[i]
        if g >= 0:
            ts = self.t - self.lag[i]
            drive = np.cos(2 * np.pi * ts / self.periods[g] + np.interp(ts, self.t, self.phase_walk[g]))
            lam *= 1 + self.depth[i] * drive
        counts[:] = rng.poisson(lam)
        rng.standard_normal(out=noise)

    def attrs(self) -> dict[str, Any]:
        out = super().attrs()
        out["source"] = f"bioxen_dask.io.synthesize_networks(seed={self.seed})"
        out["synthetic"] = {**out["synthetic"], "model": "Poisson spikes with rate r(1 + m cos(2π(t - lag_i)/P + "
                            "φ(t - lag_i))) shared within each network (no stimulus), AR(1) calcium kernel, "
                            "multiplicative + additive Gaussian noise, slow drift; dF/F"}
        return out


def synthesize_networks(
    n_rois: int = 60,
    n_frames: int = 18000,
    fs: float = 30.0,
    *,
    networks: Sequence[PlantedGroup | Mapping[str, float]] = DEFAULT_NETWORKS,
    seed: int = 0,
    tau_s: float = 0.7,
    rate_hz: float = 8.0,
    modulation_depth: float = 0.9,
    noise_sd: float = 0.1,
) -> xr.Dataset:
    """Synthetic ΔF/F traces with planted *networks*: groups of rois that oscillate together
    at known periods and lags, with no stimulus (the all-pairs question).

    The model of :func:`synthesize` (Poisson spikes, calcium kernel, noise, drift), the rate
    of network ``g``'s rois following a shared narrowband rhythm of period ``period_s``,
    each roi delayed by its own lag between 0 and ``lag_s`` (:class:`PlantedGroup`'s
    ``lag_s`` is here the spread of lags across the network).

    Returns
    -------
    xarray.Dataset
        ``signals`` (roi, time), ground truth ``truth_group`` (-1 = none), ``truth_period``
        and ``truth_lag`` (s, the roi's delay in its network) per roi, attrs ``fs``,
        ``truth_groups`` (the network table) and ``synthetic``. No ``references``.

    Examples
    --------
    >>> ds = synthesize_networks(n_rois=40, n_frames=3000, seed=1)
    >>> ds["signals"].shape, sorted(set(ds["truth_group"].values.tolist()))
    ((40, 3000), [-1, 0, 1, 2])
    """
    syn = _NetworkSynth(n_rois, n_frames, fs, networks, seed, tau_s, rate_hz, modulation_depth, noise_sd)
    data_vars = {"signals": (("roi", "time"), syn.rows(0, syn.n_rois)),
                 **{name: ("roi", values) for name, values in syn.truth.items()}}
    return xr.Dataset(data_vars, coords={"roi": np.arange(syn.n_rois), "time": syn.t}, attrs=syn.attrs())
