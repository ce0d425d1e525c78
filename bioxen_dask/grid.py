"""The scale grid: scales, periods and frequencies, and the halo a chunk needs.

A :class:`ScaleGrid` is the one description of *which* scales are analysed; kernels, the
Dask graph layer, significance caches and dataset coordinates all take it. It is immutable
and hashable (its :attr:`key` feeds filter-bank and threshold caches).

Examples
--------
>>> from bioxen_dask.grid import make_grid
>>> g = make_grid(18000, 1 / 30)
>>> g.n_scales, round(float(g.periods[0]) * 30, 6)
(159, 2.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .presets import Preset, get_preset
from .wavelets import Morlet, MotherWavelet, get_wavelet

__all__ = ["ScaleGrid", "make_grid", "DEFAULT_TOL"]

#: Relative envelope tolerance that sets padding and halo widths (see
#: :meth:`MotherWavelet.support`). At 1e-10 a Morlet wavelet is cut at 6.8 scales; the
#: truncation error of chunked transforms is then far below 1e-9 relative.
DEFAULT_TOL = 1e-10


@dataclass(frozen=True)
class ScaleGrid:
    """Scales of a continuous wavelet transform.

    Parameters
    ----------
    dt : float
        Sampling interval (time units of the signal, e.g. seconds).
    scales : tuple of float
        Wavelet scales in time units, increasing.
    dj : float
        Spacing in log2(scale); sets the width of the scale smoothing.
    wavelet : MotherWavelet
        The mother wavelet.

    Examples
    --------
    >>> g = ScaleGrid.from_s0(dt=1.0, s0=2.0, dj=0.25, J=4)
    >>> g.scales.tolist()
    [2.0, 2.378414230005442, 2.8284271247461903, 3.363585661014858, 4.0]
    """

    dt: float
    scales_: tuple[float, ...] = field(repr=False)
    dj: float
    wavelet: MotherWavelet = field(default_factory=Morlet)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.dt) and self.dt > 0):
            raise ValueError(f"dt must be a positive finite number, got {self.dt!r}.")
        if not (math.isfinite(self.dj) and self.dj > 0):
            raise ValueError(f"dj must be a positive finite number, got {self.dj!r}; e.g. dj=1/12.")
        s = np.asarray(self.scales_, dtype=float)
        if s.ndim != 1 or s.size == 0 or not np.all(np.isfinite(s)) or np.any(s <= 0):
            raise ValueError("scales must be a non-empty 1-D sequence of positive finite numbers.")

    @classmethod
    def from_s0(
        cls, dt: float, s0: float, dj: float, J: int, wavelet: MotherWavelet | str = "morlet"
    ) -> "ScaleGrid":
        """Grid ``s0 * 2**(arange(J+1)*dj)`` (Torrence & Compo eq. 9-10)."""
        if int(J) != J or J < 0:
            raise ValueError(f"J must be a non-negative integer, got {J!r}.")
        if not (math.isfinite(s0) and s0 > 0):
            raise ValueError(f"s0 must be a positive finite number, got {s0!r}.")
        scales = s0 * 2.0 ** (np.arange(int(J) + 1) * dj)
        return cls(float(dt), tuple(float(v) for v in scales), float(dj), get_wavelet(wavelet))

    @classmethod
    def from_frequencies(
        cls, dt: float, freqs: Any, dj: float, wavelet: MotherWavelet | str = "morlet"
    ) -> "ScaleGrid":
        """Grid from Fourier frequencies: ``scale = 1/(fourier_factor*freq)`` (pycwt ``freqs=``)."""
        w = get_wavelet(wavelet)
        f = np.asarray(freqs, dtype=float)
        if f.ndim != 1 or f.size == 0 or np.any(~np.isfinite(f)) or np.any(f <= 0):
            raise ValueError("freqs must be a non-empty 1-D sequence of positive finite numbers.")
        scales = 1.0 / (w.fourier_factor * f)
        return cls(float(dt), tuple(float(v) for v in scales), float(dj), w)

    # --- derived coordinates ----------------------------------------------------------------
    @property
    def scales(self) -> np.ndarray:
        """Scales (time units), float64."""
        out = np.asarray(self.scales_, dtype=float)
        out.flags.writeable = False
        return out

    @property
    def periods(self) -> np.ndarray:
        """Equivalent Fourier periods (time units)."""
        return self.scales * self.wavelet.fourier_factor

    @property
    def frequencies(self) -> np.ndarray:
        """Equivalent Fourier frequencies (1/time units), exactly ``1/(fourier_factor*scale)``."""
        return 1.0 / (self.wavelet.fourier_factor * self.scales)

    @property
    def n_scales(self) -> int:
        return len(self.scales_)

    @property
    def key(self) -> tuple:
        """Hashable identity of the grid (for caches)."""
        return (self.dt, self.scales_, self.dj, self.wavelet)

    # --- supports and halos -------------------------------------------------------------------
    def wavelet_support(self, tol: float = DEFAULT_TOL) -> np.ndarray:
        """Per-scale half-width of the wavelet in samples (ceil), at relative tolerance ``tol``."""
        return np.ceil(self.wavelet.support(tol) * self.scales / self.dt).astype(np.int64)

    def smoothing_support(self, tol: float = DEFAULT_TOL) -> np.ndarray:
        """Per-scale half-width in samples of the coherence time smoothing (Gaussian, σ = s/dt)."""
        return np.ceil(math.sqrt(-2.0 * math.log(tol)) * self.scales / self.dt).astype(np.int64)

    def halo(self, tol: float = DEFAULT_TOL, *, smoothing: bool = False) -> int:
        """Samples of context a time chunk needs on each side so chunked == unchunked.

        The support of the widest wavelet, plus that of the widest time-smoothing Gaussian
        when coherence is computed (``smoothing=True``).

        Examples
        --------
        >>> g = ScaleGrid.from_s0(dt=1.0, s0=2.0, dj=0.5, J=2)
        >>> g.halo(1e-8), g.halo(1e-8, smoothing=True)
        (25, 50)
        """
        h = int(self.wavelet_support(tol)[-1])
        if smoothing:
            h += int(self.smoothing_support(tol)[-1])
        return h

    def coi(self, n: int, convention: str = "pycwt", *, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Cone of influence (as a Fourier period, time units) for ``n`` samples.

        ``fourier_factor * coi_factor * dt * d``: the e-folding time of the wavelet at the
        distance ``d`` from sample ``i`` to the nearer edge. ``convention="pycwt"``:
        ``d = n/2 - |i - (n-1)/2|`` (half a sample beyond the last sample);
        ``"grinsted"``: ``d = min(i, n-1-i)`` with ``1e-5`` at both ends (``wavelet.m``).
        ``start``/``stop``: only samples ``[start, stop)`` of the record (a time block of a
        long record, without building the record-long COI); the values are the same.

        Examples
        --------
        >>> g = ScaleGrid.from_s0(dt=1.0, s0=2.0, dj=0.5, J=2)
        >>> bool((g.coi(1000, start=10, stop=20) == g.coi(1000)[10:20]).all())
        True
        """
        return self._coi_at(np.arange(start, n if stop is None else stop), n, convention)

    def _coi_at(self, i: np.ndarray, n: int, convention: str) -> np.ndarray:
        if convention == "grinsted":
            dist = np.minimum(i, n - 1 - i).astype(float)
            dist[(i == 0) | (i == n - 1)] = 1e-5
        elif convention == "pycwt":
            dist = n / 2 - np.abs(i - (n - 1) / 2)
        else:
            raise ValueError(f"unknown COI convention {convention!r}; choose 'pycwt' or 'grinsted'.")
        return self.wavelet.fourier_factor * self.wavelet.coi_factor * self.dt * dist

    def outside_coi(self, n: int, convention: str = "pycwt") -> np.ndarray:
        """Per scale, the samples ``[lo, hi)`` of an ``n``-sample record outside the COI.

        The samples where ``period <= coi`` form one interval per scale (the COI grows to the
        middle of the record and falls symmetrically), found by bisection on the COI formula
        itself, so the counts equal ``(periods[:, None] <= coi(n)[None, :]).sum(1)`` without
        the ``(scale, time)`` mask (55 GB for 55 scales of a 1e9-sample record). ``(0, 0)``
        where no sample is outside.

        Examples
        --------
        >>> g = ScaleGrid.from_s0(dt=1.0, s0=2.0, dj=0.5, J=4)
        >>> iv = g.outside_coi(100)
        >>> bool(((iv[:, 1] - iv[:, 0]) == (g.periods[:, None] <= g.coi(100)[None, :]).sum(1)).all())
        True
        """
        n = int(n)
        p = self.periods
        mid = (n - 1) // 2  # the COI is largest here (and at n - 1 - mid)
        lo = np.zeros(p.size, dtype=np.int64)
        hi = np.full(p.size, mid + 1, dtype=np.int64)  # first i in [0, mid] with p <= coi(i)
        while True:
            open_ = lo < hi
            if not open_.any():
                break
            m = (lo + hi) // 2
            ok = p <= self._coi_at(m, n, convention)
            hi = np.where(open_ & ok, m, hi)
            lo = np.where(open_ & ~ok, m + 1, lo)
        out = np.zeros((p.size, 2), dtype=np.int64)
        inside = lo <= mid
        out[inside, 0] = lo[inside]
        out[inside, 1] = n - lo[inside]  # the COI is symmetric: coi(i) == coi(n - 1 - i)
        return out

    def describe(self) -> dict[str, Any]:
        """JSON-friendly description (dataset attrs, cache keys)."""
        return {
            "dt": self.dt,
            "dj": self.dj,
            "s0": self.scales_[0],
            "J": self.n_scales - 1,
            "wavelet": self.wavelet.describe(),
        }


def make_grid(
    n: int,
    dt: float,
    *,
    dj: float = 1 / 12,
    s0: float | None = None,
    J: int | None = None,
    wavelet: str | MotherWavelet = "morlet",
    preset: str | Preset = "pycwt",
    freqs: Any = None,
) -> ScaleGrid:
    """Build the scale grid for a record of ``n`` samples, following a preset's defaults.

    Parameters
    ----------
    n : int
        Number of samples in the record.
    dt : float
        Sampling interval.
    dj : float
        Scale spacing in octaves (default 1/12).
    s0 : float, optional
        Smallest scale. Default: pycwt ``2*dt/fourier_factor`` (smallest period 2 dt);
        Grinsted ``2*dt``.
    J : int, optional
        Number of scales minus one. Default: pycwt ``round(log2(n*dt/s0)/dj)``; Grinsted
        ``round(log2(0.17*2*n*dt/s0)/dj)``.
    wavelet : str or MotherWavelet
        Mother wavelet (default Morlet with ``f0=6``). The Grinsted preset turns on the
        Morlet Heaviside step unless a wavelet instance is given.
    preset : {"pycwt", "grinsted"}
        Whose defaults to use.
    freqs : array-like, optional
        Explicit Fourier frequencies (overrides ``s0``/``J``, as pycwt's ``freqs=``).

    Returns
    -------
    ScaleGrid

    Raises
    ------
    ValueError
        If ``dt <= 0``, ``dj <= 0``, or the record is too short for even one scale.

    Examples
    --------
    >>> make_grid(1000, 1.0).n_scales
    109
    >>> float(make_grid(1000, 1.0, preset="grinsted").scales[0])
    2.0
    """
    p = get_preset(preset)
    w = get_wavelet(wavelet)
    if p.heaviside and isinstance(wavelet, str) and isinstance(w, Morlet):
        w = Morlet(f0=w.f0, heaviside=True)
    dt = _positive(dt, "dt", "e.g. dt=1/30 for 30 Hz frames")
    dj = _positive(dj, "dj", "e.g. dj=1/12")
    if freqs is not None:
        return ScaleGrid.from_frequencies(dt, freqs, dj, w)
    if s0 is None or s0 == -1:
        s0 = 2 * dt / w.fourier_factor if p.s0_rule == "period" else 2 * dt
    s0 = _positive(s0, "s0", "e.g. leave it unset for the preset's default")
    if J is None or J == -1:
        span = n * dt if p.J_rule == "record" else 0.17 * 2 * n * dt
        ratio = np.log2(span / s0) / dj
        # pycwt rounds half to even (numpy); MATLAB rounds half away from zero.
        J = int(np.round(ratio)) if p.J_rule == "record" else int(np.floor(abs(ratio) + 0.5) * np.sign(ratio))
        if J < 0:
            raise ValueError(
                f"the record is too short for the scale grid: {n} samples of dt={dt} span "
                f"{n * dt:g}, less than the smallest scale s0={s0:g}; record more samples or "
                "pass a smaller s0."
            )
    return ScaleGrid.from_s0(dt, float(s0), dj, int(J), w)


def _positive(value: Any, name: str, hint: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number, got {value!r}; {hint}.") from None
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}; {hint}.")
    return v
