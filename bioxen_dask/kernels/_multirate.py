"""Multirate building blocks: wavelet coefficients and smoothed spectra on decimated grids.

At scale ``s`` (``sigma = s/dt`` samples) the wavelet coefficients, their products and the
coherence time smoothing only carry frequencies below about ``16/sigma`` rad per sample, so
each scale can be computed on a grid decimated by ``D ~ sigma/5`` samples (a power of two)
*exactly*, up to the spectral content dropped below ``tol`` of the peak:

- **coefficients**: decimation in time is folding in frequency, so ``W(mD)`` is the inverse
  FFT of length ``F/D`` of the folded product ``X_hat * psi_hat`` (``F`` the circular frame);
- **truncation to the record** (both pycwt and the ``linear`` boundary smooth ``W`` cut to
  ``[0, L)``): the band-limited products are multiplied by the indicator of ``[0, L)``
  low-passed to the decimated band (:func:`soft_mask`), which gives the same low band;
- **time smoothing**: the Gaussian keeps bins ``|k| <= kmax`` of the frame only, so the
  smoothed spectra are kept there, compactly (:func:`smoothed_spectra`).

Used by the Monte Carlo histogram engine (:mod:`bioxen_dask.significance._multirate`) and by
the multirate coherence maps (:mod:`._coherence_map`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import scipy.fft

from ..grid import ScaleGrid

__all__ = ["Group", "build_group", "decimations", "gauss_halfwidth", "mother_band", "pow2_floor",
           "smoothed_spectra", "soft_mask", "transform"]


def pow2_floor(v: float) -> int:
    """Largest power of two ``<= v`` (1 below 2)."""
    return 1 if v < 2 else 1 << int(math.floor(math.log2(v)))


@lru_cache(maxsize=64)
def mother_band(wavelet: Any, tol: float) -> tuple[float, float]:
    """``(u_lo, u_hi)``: where ``|psi_ft(u)| > tol * max`` (``u = scale * omega``). Cached per
    (wavelet, tol): it evaluates the spectrum on 400,001 points (~20 ms, more than a short
    record's whole transform), and every plan, tile and Monte Carlo batch asks for it."""
    u = np.linspace(-200.0, 200.0, 400_001)
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        a = np.abs(np.asarray(wavelet.psi_ft(u, np), dtype=complex))
    a[~np.isfinite(a)] = 0.0
    keep = np.nonzero(a > tol * a.max())[0]
    du = u[1] - u[0]
    return float(u[keep[0]] - du), float(u[keep[-1]] + du)


def gauss_halfwidth(tol: float) -> float:
    """Half-bandwidth of the smoothing Gaussian times its width σ (rad/sample · samples)."""
    return math.sqrt(-2.0 * math.log(tol))


def product_bands(grid: ScaleGrid, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Per scale, ``(bp, bg)`` in rad/sample: the band of the wavelet coefficients (and so
    of their products) and the Gaussian's half band."""
    sig = grid.scales / grid.dt
    u_lo, u_hi = mother_band(grid.wavelet, tol)
    om_lo = np.maximum(u_lo / sig, -math.pi)
    om_hi = np.minimum(u_hi / sig, math.pi)
    return om_hi - om_lo, gauss_halfwidth(tol) / sig


def decimations(grid: ScaleGrid, tol: float) -> np.ndarray:
    """Per scale, the coarsest power-of-two decimation that keeps products and smoothing exact:
    product band + Gaussian band inside the decimated Nyquist (and the coefficients' band
    inside the decimated rate)."""
    bp, bg = product_bands(grid, tol)
    return np.array([pow2_floor(min(0.97 * math.pi / (bp[j] + bg[j]), 0.97 * 2 * math.pi / bp[j]))
                     for j in range(grid.n_scales)], dtype=np.int64)


def soft_mask(L: int, F: int, D: int) -> np.ndarray:
    """Indicator of ``[0, L)`` low-passed to the ``F/D``-bin band, sampled every ``D``.

    Summing a band-limited integrand against it on the decimated grid equals summing it
    over ``[0, L)`` at full rate (pycwt and the ``linear`` boundary truncate ``W`` to the
    record before smoothing).
    """
    M = F // D
    if D == 1:
        return (np.arange(M) < L).astype(float)

    def dirichlet(k):  # sum_{t<L} exp(-2 pi i k t / F)
        with np.errstate(invalid="ignore", divide="ignore"):
            v = (1 - np.exp(-2j * np.pi * k * (L / F))) / (1 - np.exp(-2j * np.pi * k / F))
        return np.where(k == 0, float(L), v)

    kk = np.fft.fftfreq(M, 1.0 / M)
    I_hat = dirichlet(kk)
    if M % 2 == 0:  # Nyquist: average of +M/2 and -M/2 (the integrand has no content there)
        I_hat[M // 2] = 0.5 * (dirichlet(np.array([M // 2]))[0] + dirichlet(np.array([-M // 2]))[0])
    # i~(mD) = (1/F) sum_k I_hat(k) e^{2 pi i k m / M} = (M/F) ifft_M(I_hat)[m]
    return (M / F) * np.fft.ifft(I_hat).real


@dataclass
class Group:
    """Rows ``[j0, j1)`` of a frame computed together, with one decimation ``D``."""

    j0: int
    j1: int
    D: int
    M: int  # frame / D
    x_idx: np.ndarray  # rfft bins feeding the filter banks
    x_conj: np.ndarray | None  # positions (in x_idx) taken conjugated (negative frequencies)
    z_pos: np.ndarray  # flat positions of the bank values in (rows, M)
    bank: np.ndarray  # wavelet filter values * M/F
    coef: np.ndarray  # (rows, M): soft mask / scale
    kmax: int  # the smoothed spectra are kept at bins -kmax..kmax
    g_src: np.ndarray  # those bins, mod M
    g_hat: np.ndarray  # (rows, 2*kmax+1): Gaussian / M
    g_abs: np.ndarray  # |bin| of -kmax..kmax (the rfft bins of a real signal's spectrum)
    k: np.ndarray  # the signed frame bin of each bank value (host)
    rows: np.ndarray  # the row (0 .. j1-j0-1) of each bank value (host)

    def fold(self, sub: int) -> tuple[np.ndarray, np.ndarray, int]:
        """``(z_pos, bank, M)`` folding onto the ``sub`` times finer grid (stride ``D/sub``)."""
        M = self.M * sub
        return self.rows * M + np.mod(self.k, M), self.bank * np.float32(sub), M


def build_group(grid: ScaleGrid, tol: float, F: int, L: int, j0: int, j1: int, D: int) -> Group:
    """The filter banks, soft mask and Gaussians of rows ``[j0, j1)`` at decimation ``D`` in a
    circular frame of ``F`` samples holding the record ``[0, L)``."""
    M = F // D
    k_all = np.fft.fftfreq(F, 1.0 / F).astype(np.int64)  # signed bin numbers
    omega = 2 * np.pi * k_all / (F * grid.dt)  # rad per time unit (pycwt's ftfreqs)
    gk = gauss_halfwidth(tol)
    rows, ks, vals = [], [], []
    for r, j in enumerate(range(j0, j1)):
        s = grid.scales[j]
        bank = (s * omega[1] * F) ** 0.5 * np.conjugate(grid.wavelet.psi_ft(s * omega, np))
        mag = np.abs(bank)
        keep = np.nonzero(mag > tol * mag.max())[0]
        k = k_all[keep]
        span = int(k.max() - k.min())
        kg = gk / (s / grid.dt) * F / (2 * np.pi)
        if span + 1 > M or (D > 1 and span + kg >= M / 2 - 1):
            raise RuntimeError("multirate plan: decimation too coarse for an exact transform")
        rows.append(np.full(k.size, r, dtype=np.int64))
        ks.append(k)
        vals.append(bank[keep] * (M / F))  # W(mD) = (M/F) ifft_M(fold(Z))
    bank = np.concatenate(vals)
    if np.iscomplexobj(bank) and not np.any(bank.imag):
        bank = bank.real
    k = np.concatenate(ks)
    neg = k < 0
    phi = soft_mask(L, F, D)
    inv_s = 1.0 / grid.scales[j0:j1]
    sig = grid.scales[j0:j1] / grid.dt
    kmax = min(int(math.ceil(gk / sig.min() * F / (2 * np.pi))), M // 2 - 1)
    kk = np.arange(-kmax, kmax + 1)
    g = np.exp(-0.5 * sig[:, None] ** 2 * (2 * np.pi * kk / F)[None, :] ** 2) / M
    rows = np.concatenate(rows)
    return Group(
        j0=j0, j1=j1, D=D, M=M, x_idx=np.abs(k), x_conj=np.nonzero(neg)[0] if neg.any() else None,
        z_pos=rows * M + np.mod(k, M), k=k, rows=rows, bank=bank.astype(np.complex64 if np.iscomplexobj(bank) else np.float32),
        coef=(inv_s[:, None] * phi[None, :]).astype(np.float32),
        kmax=kmax, g_src=np.mod(kk, M), g_hat=g.astype(np.float32), g_abs=np.abs(kk),
    )


def transform(g: Group, X: Any, xp=np, fft=scipy.fft, fold: tuple[Any, Any, int] | None = None) -> Any:
    """Wavelet coefficients of a group's rows for the records of ``X`` (their rfft on the
    frame, one record per row): ``(records, rows, M)`` at the group's stride ``D``, or at
    ``D/sub`` with ``fold=g.fold(sub)``."""
    z_pos, bank, M = (g.z_pos, g.bank, g.M) if fold is None else fold
    nr, nx = g.j1 - g.j0, X.shape[0]
    vals = X[:, g.x_idx]
    if g.x_conj is not None:
        vals[:, g.x_conj] = vals[:, g.x_conj].conj()
    Z = xp.zeros((nx, nr * M), dtype=np.complex64)
    Z[:, z_pos] = vals * bank
    return fft.ifft(Z.reshape(nx, nr, M), axis=-1, overwrite_x=True)


def smoothed_spectra(g: Group, W: Any, xp=np, fft=scipy.fft, powers: int = 2, cross: bool = True) -> Any:
    """Time-smoothed ``|W1|^2/s``, ``|W2|^2/s`` and ``W1 W2*/s`` of a group's rows (``W``:
    ``(2, rows, M)`` at the group's stride, or a pair of ``(rows, M)`` arrays), at bins
    ``-kmax..kmax`` only: ``(3, rows, 2*kmax+1)``. ``powers``: how many of the records'
    powers to compute (``1``: the second record's power is known to the caller, ``0``: both
    are; the slots not computed are left unset); ``cross=False``: no cross spectrum (slot 2
    unset; ``W`` may then hold the first record only).

    Each power goes through its own real FFT, so its rounding is relative to itself: packed
    as ``|W1|^2 + i |W2|^2`` in one complex FFT, the weaker power of a pair would inherit the
    rounding of the stronger (a quiet trace against a loud one: 0.07 in coherence).
    """
    coef = g.coef
    W1 = W[0]
    k = g.kmax
    out = xp.empty((3,) + W1.shape[:-1] + (2 * k + 1,), dtype=np.complex64)
    if powers:
        P = xp.empty((powers,) + W1.shape, dtype=np.float32)
        for i in range(powers):
            xp.multiply(W[i].real, W[i].real, out=P[i])
            P[i] += W[i].imag * W[i].imag
        P *= coef  # soft-masked, divided by scale
        R = fft.rfft(P, axis=-1)
        Fp = R[:, :, g.g_abs]  # bin -j of a real signal: conj(bin j)
        Fp[:, :, :k] = Fp[:, :, :k].conj()
        out[:powers] = Fp
    if powers < 2:
        out[powers:2] = 0
    if cross:
        C = xp.multiply(W1, W[1].conj())
        C *= coef
        out[2] = fft.fft(C, axis=-1, overwrite_x=True)[:, g.g_src]
    else:
        out[2] = 0
    out *= g.g_hat
    return out
