"""Fast pooled coherence histograms of surrogate pairs: multirate, band by band.

The statistic is pycwt's (Grinsted et al. 2004): per scale, the histogram of the surrogate
coherence over every point of the record outside the cone of influence. Computing it
naively costs, per surrogate pair, a few hundred FFTs of the whole (zero-padded) record at
every scale. Two facts make almost all of that work redundant, and this module computes the
*same histogram in expectation* without it:

1. **Band limitation (exact).** At scale ``s`` the wavelet coefficients, their products and
   the Gaussian time smoothing only carry frequencies below about ``16/s`` rad per sample.
   So every scale is computed on a grid decimated by ``D ~ s/5 .. s/10`` samples (a power
   of two, chosen per scale): the wavelet
   coefficients at the decimated points are *exact* (decimation in time is folding in
   frequency), and the smoothing of the truncated products (pycwt keeps the first ``N``
   samples of ``W`` and zero-pads again before smoothing) is exact too, by summing the
   band-limited integrand against the band-limited indicator of ``[0, N)`` (a "soft mask").
   The smoothed spectra are then read on an output grid of stride ``O ~ s/4``, which is
   again exact because they are band-limited. Only spectral content below ``tol`` (1e-6
   of the peak) is dropped.

2. **Stationarity (exact in expectation).** A surrogate's coherence at a point only
   depends on the noise within the wavelet + smoothing support around it. Points farther
   than that support ``E`` from both ends of the record all share one (stationary)
   distribution; points closer to an end have the distribution of their distance to it.
   So a scale band whose pycwt record would be much longer than needed is computed on a
   prefix of the same surrogate (``interior * scale`` samples of stationary interior plus
   both edge zones, with pycwt's zero gap or wrap-around reproduced), and each evaluated
   point is counted with the weight of the pycwt positions it stands for: edge-zone points
   for the same edge zone, interior points for pycwt's (longer) interior. Expected
   histograms are identical; the Monte Carlo variance at small scales grows (fewer
   independent interior samples per surrogate) but stays far below that of the large
   scales, and ``interior`` sets it. One caveat: pycwt's Morlet spectrum is cut at the
   Nyquist frequency for scales below ~3.6 samples, so the smallest scales' wavelets have
   slowly decaying (1/t) tails in time and their coefficients depend slightly on the FFT
   length; short records reproduce those scales' distribution within Monte Carlo error
   (tested), not value by value.

Histograms are kept per (scale, position class) as integers, so they add exactly across
batches and workers; the class weights are applied once, when levels are read off.

The decimated transforms, soft masks and compact smoothed spectra are
:mod:`bioxen_dask.kernels._multirate`'s, shared with the multirate coherence maps.

Everything runs on one surrogate pair at a time (arrays of a few thousand samples per
scale band, cache-resident), so the result does not depend on batching.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import scipy.fft

from ..grid import DEFAULT_TOL, ScaleGrid
from ..kernels import scale_kernel as _scale_kernel_weights
from ..kernels._multirate import Group, build_group, decimations, gauss_halfwidth, pow2_floor, smoothed_spectra, transform
from ..kernels._coherence import coherence_ratio
from ..kernels._xp import array_namespace, device_key, fft_namespace

__all__ = ["MultiratePlan", "broadband_scales", "multirate_plan", "N_CLASSES", "DEFAULT_INTERIOR"]

#: Position classes of the pooled histogram: left edge zone, stationary interior, right edge zone.
N_CLASSES = 3
#: Default stationary interior per surrogate, in units of the largest scale of a band.
DEFAULT_INTERIOR = 512
#: Relative spectral tolerance: wavelet and Gaussian spectra below ``tol * peak`` are dropped.
SPECTRAL_TOL = 1e-6


#: Largest (rows x decimated length) block transformed at once, per signal (cache-sized pieces).
_BLOCK_ELEMS = 1 << 18


@dataclass
class _Band:
    """Scales ``own`` whose histograms are read on one output grid (stride ``O``)."""

    own: tuple[int, int]
    ext: tuple[int, int]  # own + scale-smoothing neighbours
    O: int
    n_out: int = 0
    K: int = 0  # largest |bin| of a smoothed spectrum that is not negligible
    dst: np.ndarray = field(default=None, repr=False)  # bins -K..K (mod n_out)
    smooth: list = field(default=None, repr=False)  # scale-smoothing taps (weight, d0, d1, s0)
    eval_flat: np.ndarray = field(default=None, repr=False)  # flat idx into (own rows, n_out)
    hist_flat: np.ndarray = field(default=None, repr=False)  # band-local (scale*3+class)*nbins
    hist_base: int = 0  # offset of the band's first own scale in the flat histogram


@dataclass
class _Frame:
    """A record prefix ``[0, L)`` in a circular FFT frame ``F``, shared by consecutive bands."""

    L: int
    F: int
    full: bool  # the whole record
    bands: list[_Band] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list, repr=False)


class MultiratePlan:
    """Precomputed geometry of the multirate pooled-histogram engine for one configuration.

    Use :func:`multirate_plan` (cached per process) rather than the constructor.

    Parameters
    ----------
    grid : ScaleGrid
    n_record : int
        Surrogate length ``N`` whose pooled histogram is reproduced.
    boundary : {"pycwt", "linear"}
        pycwt: circular frame of the next power of two (zero gap, wrap-around for the largest
        scales); linear: zero padding beyond every support.
    scale_kernel : {"pycwt", "grinsted"}
    nbins : int
    interior : int or None
        Stationary interior per surrogate, in units of the largest scale of a band; ``None``
        computes every band on the whole record.
    tol : float
        Spectral truncation tolerance.
    out_per_scale : float
        Output (histogram) points per scale of a band's smallest scale.
    band_octaves : float
        Width of a scale band.

    Attributes
    ----------
    class_weights : ndarray, shape ``(n_scales, 3)``
        pycwt positions represented by one evaluated point, per scale and position class.
    frames : list
        Record prefixes and FFT frames, each with its scale bands (output strides) and row
        groups (decimations).
    """

    def __init__(
        self,
        grid: ScaleGrid,
        n_record: int,
        *,
        boundary: str = "pycwt",
        scale_kernel: str = "pycwt",
        nbins: int = 1000,
        interior: int | None = DEFAULT_INTERIOR,
        tol: float = SPECTRAL_TOL,
        out_per_scale: float = 4.0,
        band_octaves: float = 1.0,
    ) -> None:
        if boundary not in ("pycwt", "linear"):
            raise ValueError(f"the multirate engine supports boundary 'pycwt' or 'linear', not {boundary!r}.")
        self.grid = grid
        self.N = N = int(n_record)
        self.boundary = boundary
        self.nbins = int(nbins)
        self.tol = float(tol)
        self.n_scales = S = grid.n_scales
        sig = grid.scales / grid.dt  # scales in samples
        w = _scale_kernel_weights(scale_kernel, grid)
        taps = len(w)
        centre = (taps - 1) // 2
        lo_nb, hi_nb = taps - 1 - centre, centre  # rows i-lo_nb .. i+hi_nb feed row i
        self._w, self._centre = w, centre

        # first position outside the COI of the full record, per scale (pycwt's test; the
        # outside region is [first, N - 1 - first] since the COI is symmetric)
        coi = grid.coi(N)[: (N + 1) // 2]
        first = np.full(S, -1, dtype=np.int64)
        for j in range(S):
            ok = np.nonzero(grid.periods[j] <= coi)[0]
            if ok.size:
                first[j] = ok[0]
        self._first = first
        ws = grid.wavelet_support(tol)
        ss = grid.smoothing_support(tol)
        # stationarity distance: supports of every scale feeding row j (scale smoothing)
        self._E = np.array([int(max(ws[k] + ss[k] for k in range(max(0, j - lo_nb), min(S, j + hi_nb + 1))))
                            for j in range(S)])
        self._gk = gauss_halfwidth(tol)  # Gaussian half-bandwidth * sigma (rad/sample)
        bg = self._gk / sig
        self._D = decimations(grid, tol)
        if boundary == "pycwt":
            nfft_p = int(2 ** math.ceil(math.log2(N)))
            gap_p = nfft_p - N

        # 1. bands of active scales, one octave each, with their record lengths and frames
        specs = []  # (band, L_need, R, g_need)
        act = np.nonzero(first >= 0)[0]
        i = 0
        while i < act.size:
            j0 = int(act[i])
            k = i
            while k < act.size and sig[act[k]] <= sig[j0] * 2**band_octaves * (1 + 1e-12):
                k += 1
            j1 = int(act[k - 1]) + 1
            x0, x1 = max(0, j0 - lo_nb), min(S, j1 - 1 + hi_nb + 1)
            O = pow2_floor(min(0.9 * math.pi / float(bg[x0]), sig[j0] / out_per_scale))
            # at least two output points in each half of every own scale's outside-COI region
            span = min(int(N - 2 * first[j]) for j in range(j0, j1) if first[j] >= 0)
            O = min(O, pow2_floor(max(1.0, span / 4.0)))
            g_need = int(max(ws[x0:x1].max(), ss[x0:x1].max())) + 1
            L_need = N if interior is None else min(N, 2 * int(self._E[j0:j1].max()) + int(math.ceil(interior * sig[j1 - 1])))
            R = int(max(self._D[x0:x1].max(), O))
            specs.append([_Band(own=(j0, j1), ext=(x0, x1), O=int(O)), L_need, R, g_need])
            i = k
        frames: list[_Frame] = []
        whole = []  # (band, R, g_need) of bands computed on the whole record
        for band, L_need, R, g_need in specs:
            if L_need < N:
                exact_gap = boundary == "pycwt" and gap_p < g_need  # reproduce pycwt's wrap-around
                gap = gap_p if exact_gap else g_need
                F = R * scipy.fft.next_fast_len(int(math.ceil((L_need + gap) / R)))
                L = F - gap if exact_gap else L_need
                if L < N:
                    frames.append(_Frame(L=int(L), F=int(F), full=False, bands=[band]))
                    continue
            whole.append((band, R, g_need))
        if whole:  # every whole-record band shares one frame
            if boundary == "pycwt":
                F = nfft_p
            else:
                R = max(r for _, r, _ in whole)
                F = R * scipy.fft.next_fast_len(int(math.ceil((N + max(g for *_, g in whole)) / R)))
            frames.append(_Frame(L=N, F=int(F), full=True, bands=[b for b, _, _ in whole]))
        frames.sort(key=lambda f: f.bands[0].own[0])
        for fr in frames:
            self._build_frame(fr, w)
        self.frames = frames
        self.class_weights = self._class_weights()
        #: Whether a band reaches the DC bin (then removing the mean would change the result).
        self.dc_in_band = any(bool(np.any(g.x_idx == 0)) for fr in frames for g in fr.groups)
        self._device_frames: dict[tuple[str, int], list[_Frame]] = {}
        self._device_lock = threading.Lock()

    def _frames_on(self, xp) -> list[_Frame]:
        """The frames with every index/filter array on ``xp``'s current device (copied once
        per device and kept, like the kernels' filter banks)."""
        if xp is np:
            return self.frames
        key = device_key(xp)
        with self._device_lock:
            got = self._device_frames.get(key)
            if got is None:
                def dev(a):
                    return None if a is None else xp.asarray(a)

                got = [dataclasses.replace(
                    fr,
                    groups=[dataclasses.replace(g, x_idx=dev(g.x_idx), x_conj=dev(g.x_conj), z_pos=dev(g.z_pos),
                                                bank=dev(g.bank), coef=dev(g.coef), g_src=dev(g.g_src),
                                                g_hat=dev(g.g_hat), g_abs=dev(g.g_abs)) for g in fr.groups],
                    bands=[dataclasses.replace(b, dst=dev(b.dst), eval_flat=dev(b.eval_flat),
                                               hist_flat=dev(b.hist_flat)) for b in fr.bands],
                ) for fr in self.frames]
                self._device_frames[key] = got
        return got

    @property
    def bands(self) -> list[_Band]:
        return [b for fr in self.frames for b in fr.bands]

    # ------------------------------------------------------------------------------------------
    def _build_frame(self, fr: _Frame, w: np.ndarray) -> None:
        grid, F, L = self.grid, fr.F, fr.L
        lo = min(b.ext[0] for b in fr.bands)
        hi = max(b.ext[1] for b in fr.bands)
        D = np.minimum(self._D[lo:hi], F)
        if np.any(F % D):
            raise RuntimeError("multirate plan: frame not divisible by a decimation")
        r = 0
        while r < D.size:  # runs of one decimation, cut into cache-sized blocks
            r1 = r
            rows_max = max(1, _BLOCK_ELEMS // (F // int(D[r])))
            while r1 < D.size and D[r1] == D[r] and r1 - r < rows_max:
                r1 += 1
            fr.groups.append(build_group(grid, self.tol, F, L, lo + r, lo + r1, int(D[r])))
            r = r1
        for b in fr.bands:
            self._build_band(fr, b, w)

    def _build_band(self, fr: _Frame, b: _Band, w: np.ndarray) -> None:
        F, L, O = fr.F, fr.L, b.O
        if F % O:
            raise RuntimeError("multirate plan: frame not divisible by the output stride")
        b.n_out = n_out = F // O
        x0, x1 = b.ext
        b.K = min(int(math.ceil(self._gk / (self.grid.scales[x0] / self.grid.dt) * F / (2 * np.pi))),
                  n_out // 2 - 1)
        b.dst = np.mod(np.arange(-b.K, b.K + 1), n_out)
        # scale smoothing 'same' with zero fill: S[i] = sum_k w[k] T[i + centre - k], as
        # (weight, own rows [d0, d1), extended rows from s0) per tap
        j0, j1 = b.own
        taps = []
        for k, wk in enumerate(w):
            shift = self._centre - k
            d0, d1 = max(j0, x0 - shift), min(j1, x1 - shift)
            if d1 > d0:
                taps.append((np.float32(wk), d0 - j0, d1 - j0, d0 + shift - x0))
        b.smooth = taps
        # evaluation points: output grid inside [0, L), outside the COI, per own scale and class
        t = np.arange(0, L, O)
        tp = np.where(t < L / 2, t, t + (self.N - L))  # the same position in pycwt's record
        flat, hist = [], []
        for j in range(j0, j1):
            f0 = self._first[j]
            if f0 < 0:
                continue
            sel = np.nonzero((tp >= f0) & (tp <= self.N - 1 - f0))[0]
            cls = self._classify(j, tp[sel])
            flat.append((j - j0) * n_out + t[sel] // O)
            hist.append(((j - j0) * N_CLASSES + cls) * self.nbins)
        b.eval_flat = np.concatenate(flat).astype(np.int64)
        b.hist_flat = np.concatenate(hist).astype(np.int64)
        b.hist_base = j0 * N_CLASSES * self.nbins

    def _classify(self, j: int, tp: np.ndarray) -> np.ndarray:
        """Position class in pycwt's record: 0 left edge zone, 1 stationary interior, 2 right."""
        dl, dr = tp, self.N - 1 - tp
        return np.where(np.minimum(dl, dr) >= self._E[j], 1, np.where(dl <= dr, 0, 2))

    def _class_weights(self) -> np.ndarray:
        """pycwt positions per evaluated point, per (scale, class)."""
        S, N = self.n_scales, self.N
        sampled = np.zeros((S, N_CLASSES))
        for b in self.bands:
            j0, j1 = b.own
            c = np.bincount(b.hist_flat // self.nbins, minlength=(j1 - j0) * N_CLASSES)
            sampled[j0:j1] += c.reshape(j1 - j0, N_CLASSES)
        wts = np.zeros((S, N_CLASSES))
        for j in range(S):
            f0 = self._first[j]
            if f0 < 0:
                continue
            full = np.bincount(self._classify(j, np.arange(f0, N - f0)), minlength=N_CLASSES)
            for c in range(N_CLASSES):
                if full[c]:
                    if sampled[j, c] == 0:
                        raise RuntimeError(f"multirate plan: class {c} of scale {j} has no sample")
                    wts[j, c] = full[c] / sampled[j, c]
        return wts

    # ------------------------------------------------------------------------------------------
    @property
    def bytes_per_pair(self) -> int:
        """Peak working memory of one surrogate pair (bytes), excluding the two records."""
        peak = 0
        for fr in self.frames:
            spectra = 2 * (fr.F // 2 + 1) * 8
            kept = sum(3 * (g.j1 - g.j0) * (2 * g.kmax + 1) * 8 for g in fr.groups)
            work = max(2 * (g.j1 - g.j0) * g.M * 8 * 4 for g in fr.groups)  # Z/W, Q, A, temporaries
            out = max(2 * (b.own[1] - b.own[0]) * b.n_out * 8 * 3 for b in fr.bands)
            peak = max(peak, spectra + kept + max(work, out))
        return int(peak)

    def describe(self) -> str:
        """One line per scale band: scales, record, frame, decimations, output stride."""
        lines = [f"multirate plan: N={self.N}, {self.n_scales} scales, {len(self.bands)} bands in "
                 f"{len(self.frames)} frames, {self.bytes_per_pair / 2**20:.1f} MiB per pair"]
        for fr in self.frames:
            for b in fr.bands:
                D = self._D[b.ext[0]:b.ext[1]]
                lines.append(f"  scales {b.own[0]:3d}-{b.own[1] - 1:3d}: record {fr.L:7d}"
                             f"{' (whole)' if fr.full else '        '}, frame {fr.F:7d}, "
                             f"decimation {min(D.min(), fr.F)}-{min(D.max(), fr.F)}, output stride {b.O}")
        return "\n".join(lines)

    def accumulate(self, x1: np.ndarray, x2: np.ndarray, counts: np.ndarray) -> None:
        """Add one surrogate pair's outside-COI coherence to ``counts``.

        Parameters
        ----------
        x1, x2 : ndarray (N,), NumPy or CuPy
            The two surrogate records; CuPy arrays (with CuPy ``counts``) run on their device.
        counts : ndarray of int64, shape ``(n_scales * 3 * nbins,)``
            Updated in place (on the records' device).
        """
        xp = array_namespace(x1, x2, counts)
        xs = xp.stack([xp.asarray(x1), xp.asarray(x2)]).astype(np.float32, copy=False)
        nb = self.nbins
        for fr, b, R2 in self._coherence(xs, xp):
            idx = (R2.ravel()[b.eval_flat] * nb).astype(np.int64)
            xp.clip(idx, 0, nb - 1, out=idx)
            idx += b.hist_flat
            size = (b.own[1] - b.own[0]) * N_CLASSES * nb
            counts[b.hist_base : b.hist_base + size] += xp.bincount(idx, minlength=size)

    def _coherence(self, xs: Any, xp=np):
        """Yield ``(frame, band, R2 (own scales, n_out))`` for one pair of records."""
        fft = scipy.fft if xp is np else fft_namespace(xp)
        for fr in self._frames_on(xp):
            X = fft.rfft(xs[:, : fr.L], n=fr.F, axis=-1)
            kept = [smoothed_spectra(g, transform(g, X, xp, fft), xp, fft) for g in fr.groups]
            for b in fr.bands:
                yield fr, b, self._band_r2(fr, b, kept, xp, fft)

    @staticmethod
    def _band_r2(fr: _Frame, b: _Band, kept: list[Any], xp=np, fft=scipy.fft) -> Any:
        x0, x1 = b.ext
        Tc = xp.zeros((3, x1 - x0, 2 * b.K + 1), dtype=np.complex64)  # |W1|^2, |W2|^2, W1 W2* spectra
        for g, T in zip(fr.groups, kept):
            a0, a1 = max(g.j0, x0), min(g.j1, x1)
            if a1 <= a0:
                continue
            kk = min(g.kmax, b.K)
            Tc[:, a0 - x0 : a1 - x0, b.K - kk : b.K + kk + 1] = T[:, a0 - g.j0 : a1 - g.j0, g.kmax - kk : g.kmax + kk + 1]
        # scale smoothing (linear, so done on the compact spectra; a loop over the taps, not
        # BLAS, whose threads only slow such small products down), then the inverse FFTs: real
        # ones for the two powers (each keeps its own precision), a complex one for the cross
        own = b.own[1] - b.own[0]
        Sc = xp.zeros((3, own, 2 * b.K + 1), dtype=np.complex64)
        tmp = xp.empty_like(Sc)
        for wk, d0, d1, s0 in b.smooth:
            t = tmp[:, d0:d1]
            xp.multiply(Tc[:, s0 : s0 + d1 - d0], wk, out=t)
            Sc[:, d0:d1] += t
        half = xp.zeros((2, own, b.n_out // 2 + 1), dtype=np.complex64)
        half[:, :, : b.K + 1] = Sc[:2, :, b.K :]
        S1, S2 = fft.irfft(half, n=b.n_out, axis=-1, norm="forward")
        S = xp.zeros((own, b.n_out), dtype=np.complex64)
        S[:, b.dst] = Sc[2]
        S = fft.ifft(S, axis=-1, norm="forward", overwrite_x=True)
        return coherence_ratio(S.real, S.imag, S1, S2)

    def coherence_rows(self, x1: np.ndarray, x2: np.ndarray) -> list[tuple[tuple[int, int], np.ndarray, np.ndarray]]:
        """Per band: ``(own scales, positions, R2 (own, n_pos))`` on the output grid (validation)."""
        xs = np.stack([np.asarray(x1), np.asarray(x2)]).astype(np.float32)
        out = []
        for fr, b, R2 in self._coherence(xs):
            t = np.arange(0, fr.L, b.O)
            out.append((b.own, t, R2[:, : t.size]))
        return out


_PLAN_LOCK = threading.Lock()


@lru_cache(maxsize=16)
def broadband_scales(grid: ScaleGrid) -> int:
    """How many of the smallest scales reach the Nyquist band (``|psi_ft|`` above the default
    tolerance at pi/dt). This engine builds their wavelets and Gaussians in frequency; the
    ``linear`` boundary samples them in time, and there the two give different coherence
    distributions (its thresholds came out too high: 1.8-3.3% false positives for AR(1)
    noise at periods of 2-2.8 dt, ``tests/test_significance_calibration.py``)."""
    from ..kernels._multirate import mother_band

    u_hi = mother_band(grid.wavelet, DEFAULT_TOL)[1]
    return int(np.count_nonzero(grid.scales / grid.dt * math.pi < u_hi))


def _cached_plan(grid, n_record, boundary, scale_kernel, nbins, interior, tol) -> MultiratePlan:
    return MultiratePlan(grid, n_record, boundary=boundary, scale_kernel=scale_kernel, nbins=nbins,
                         interior=interior, tol=tol)


def multirate_plan(
    grid: ScaleGrid,
    n_record: int,
    boundary: str = "pycwt",
    scale_kernel: str = "pycwt",
    nbins: int = 1000,
    interior: int | None = DEFAULT_INTERIOR,
    tol: float = SPECTRAL_TOL,
) -> MultiratePlan:
    """Cached :class:`MultiratePlan` (built once per process and configuration, thread-safe)."""
    with _PLAN_LOCK:
        return _cached_plan(grid, int(n_record), boundary, scale_kernel, int(nbins),
                            None if interior is None else int(interior), float(tol))
