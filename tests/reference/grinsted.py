"""Literal NumPy port of Aslak Grinsted's MATLAB wavelet-coherence toolbox.

This module is a *test reference*: it follows the MATLAB source line by line
(1-based MATLAB indices translated to 0-based NumPy indices) so that the
project's "grinsted" preset can be checked against something written
independently of it. It favours readability and fidelity over speed and must
not be imported by the package itself.

Source read (stored copy of the public repository ``grinsted/wavelet-coherence``):

==========================  ==========================================  ===============
file                        role                                         commit (stored)
==========================  ==========================================  ===============
wtc.m                       wavelet coherence                            63ae2127fc
wtcsignif.m                 Monte Carlo significance of the coherence   32658c15cd
smoothwavelet.m             time (Gaussian/FFT) + scale (boxcar) smooth  29dc52616b
wt.m, xwt.m                 CWT and cross-wavelet front ends              29dc52616b
ar1nv.m, ar1.m              AR(1) estimators                              29dc52616b
formatts.m                  [time, value] input handling                  29dc52616b
private/wavelet.m           Torrence & Compo (1998) CWT                   29dc52616b
private/wave_bases.m        Morlet / Paul / DOG daughters in Fourier      29dc52616b
private/wave_signif.m       T&C chi-square significance (sigtest 0)      29dc52616b
private/chisquare_inv.m     inverse chi-square (hard-coded 95%/2 dof)    29dc52616b
private/rednoise.m          AR(1) noise generator                         29dc52616b
private/ar1spectrum.m       AR(1) spectrum for xwt                        29dc52616b
private/parseArgs.m         option parsing (names + abbreviations)       29dc52616b
==========================  ==========================================  ===============

Every ``# file.m l.N`` comment below cites the line(s) of that file the code
ports. See ``GRINSTED_NOTES.md`` next to this file for the conventions and the
differences from pycwt 0.5.0b0.

What is *not* reproduced (by construction):

* MATLAB's ``randn`` stream. Random draws come from an injectable
  ``numpy.random.Generator`` (``rng=``); the *order* of draws is MATLAB's
  (one surrogate before the loop, then ``d1``, ``d2`` per iteration, each of
  length ``tau + N``), the numbers are not.
* The on-disk cache of ``wtcsignif.m`` (l.45-71). The cache key is computed by
  :func:`wtcsignif_cache_key` for documentation and tests, nothing is stored.
* Figures (``MakeFigure``, arrows, colour bars).
* Bitwise identity: MATLAB uses FFTW and its own summation order, NumPy uses
  pocketfft/pairwise sums; agreement is to rounding (~1e-15 relative).

Assumption for :func:`wtc`/:func:`xwt`: time vectors are evenly sampled; the
common-span logic of wtc.m l.74 and l.141-153 is ported, with MATLAB's colon
operator ``a:dt:b`` emulated by ``floor((b-a)/dt + 1e-10) + 1`` points (MATLAB
uses a comparable round-off tolerance). For equal time vectors (the usual
case) this is exact.
"""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import numpy as np
from scipy.signal import lfilter
from scipy.special import gamma as _gamma

__all__ = [
    "formatts",
    "wave_bases",
    "wavelet",
    "chisquare_inv",
    "wave_signif",
    "smoothwavelet",
    "scale_kernel",
    "ar1nv",
    "ar1",
    "ar1spectrum",
    "rednoise",
    "wtcsignif",
    "wtcsignif_cache_key",
    "wt",
    "xwt",
    "wtc",
    "WTCResult",
]


# --------------------------------------------------------------------------
# MATLAB semantics helpers
# --------------------------------------------------------------------------
def _mround(x):
    """MATLAB ``round``: half away from zero (NumPy's round is half-to-even)."""
    x = np.asarray(x, dtype=float)
    r = np.sign(x) * np.floor(np.abs(x) + 0.5)
    return r.item() if r.ndim == 0 else r


def _fix(x):
    """MATLAB ``fix``: round toward zero."""
    return math.trunc(x)


def _matlab_isreal(a) -> bool:
    """MATLAB ``isreal`` as it behaves on results of arithmetic.

    MATLAB stores the result of an arithmetic operation as real when every
    imaginary part is exactly zero (e.g. ``X.*conj(X)``). This only matters in
    ``smoothwavelet.m`` l.77-79 (the ``twave=real(twave)`` "hack"), where it
    changes results at the rounding level.
    """
    a = np.asarray(a)
    return (not np.iscomplexobj(a)) or bool(np.all(a.imag == 0))


# --------------------------------------------------------------------------
# formatts.m
# --------------------------------------------------------------------------
def formatts(d):
    """Port of ``formatts.m``: bring a series into ``[time, value]`` columns.

    A plain vector gets the time axis ``1..n`` and therefore ``dt = 1``
    (formatts.m l.43-45). Returns ``(d, dt)``.
    """
    d = np.asarray(d, dtype=float)
    if d.ndim > 2:  # formatts.m l.40-42
        raise ValueError("Input time series should be 2 dimensional.")
    if d.size == max(d.shape):  # numel(d)==length(d): a vector, l.43-45
        v = d.ravel()
        d = np.column_stack([np.arange(1, v.size + 1, dtype=float), v])
    if d.shape[0] < d.shape[1]:  # l.46-48
        d = d.T
    if d.shape[1] != 2:  # l.49-51
        raise ValueError("Time series must have 2 columns.")
    if d[1, 0] - d[0, 0] < 0:  # l.53-55
        d = d[::-1].copy()
    dts = np.diff(d[:, 0])  # l.57
    if np.any(np.abs(dts - dts[0]) > 1e-1 * dts[0]):  # l.58-60
        raise ValueError("Time step must be constant.")
    if np.all(dts == 0):  # l.61-63 (MATLAB `if` on a vector: all nonzero)
        raise ValueError("Time step must be greater than zero.")
    return d, float(dts[0])  # l.65


# --------------------------------------------------------------------------
# private/wave_bases.m
# --------------------------------------------------------------------------
def wave_bases(mother, k, scale, param=-1):
    """Port of ``private/wave_bases.m`` (Torrence & Compo 1998).

    Returns ``(daughter, fourier_factor, coi, dofmin)`` where ``daughter`` is
    the Fourier-space daughter wavelet at the angular wavenumbers ``k``
    (already multiplied by the energy normalisation ``sqrt(s*k(2)*n)``).
    """
    mother = str(mother).upper()  # wave_bases.m l.36
    k = np.asarray(k, dtype=float)
    n = k.size  # l.37
    heaviside = (k > 0.0).astype(float)  # (k > 0.) of l.42, 45, 52, 55
    if mother == "MORLET":  # l.39-48
        if param == -1:
            param = 6.0
        k0 = param
        expnt = -((scale * k - k0) ** 2) / 2.0 * heaviside  # l.42
        norm = math.sqrt(scale * k[1]) * (math.pi ** (-0.25)) * math.sqrt(n)  # l.43 (k(2) -> k[1])
        daughter = norm * np.exp(expnt)  # l.44
        daughter = daughter * heaviside  # l.45 Heaviside step function
        fourier_factor = (4 * math.pi) / (k0 + math.sqrt(2 + k0**2))  # l.46
        coi = fourier_factor / math.sqrt(2)  # l.47
        dofmin = 2  # l.48
    elif mother == "PAUL":  # l.49-58
        if param == -1:
            param = 4.0
        m = param
        expnt = -(scale * k) * heaviside  # l.52
        # prod(2:(2*m-1)) = (2m-1)!  (MATLAB colon: 2, 3, ..., <= 2m-1)
        fact = float(np.prod(np.arange(2, math.floor(2 * m - 1) + 1, dtype=float)))
        norm = math.sqrt(scale * k[1]) * (2**m / math.sqrt(m * fact)) * math.sqrt(n)  # l.53
        daughter = norm * ((scale * k) ** m) * np.exp(expnt)  # l.54
        daughter = daughter * heaviside  # l.55
        fourier_factor = 4 * math.pi / (2 * m + 1)  # l.56
        coi = fourier_factor * math.sqrt(2)  # l.57
        dofmin = 2  # l.58
    elif mother == "DOG":  # l.59-67
        if param == -1:
            param = 2.0
        m = param
        expnt = -((scale * k) ** 2) / 2.0  # l.62
        norm = math.sqrt(scale * k[1] / _gamma(m + 0.5)) * math.sqrt(n)  # l.63
        # l.64: daughter = -norm*(i^m)*((scale.*k).^m).*exp(expnt); no Heaviside
        daughter = -norm * (1j**m) * ((scale * k).astype(complex) ** m) * np.exp(expnt)
        fourier_factor = 2 * math.pi * math.sqrt(2.0 / (2 * m + 1))  # l.65
        coi = fourier_factor / math.sqrt(2)  # l.66
        dofmin = 1  # l.67
    else:  # l.68-69
        raise ValueError("Mother must be one of MORLET,PAUL,DOG")
    return daughter, fourier_factor, coi, dofmin


# --------------------------------------------------------------------------
# private/wavelet.m
# --------------------------------------------------------------------------
def wavelet(Y, dt, pad=0, dj=-1, s0=-1, J1=-1, mother=-1, param=-1):
    """Port of ``private/wavelet.m`` (Torrence & Compo 1998 CWT).

    Parameters follow MATLAB (``-1`` selects the default). Returns
    ``(wave, period, scale, coi)`` with ``wave`` of shape ``(J1+1, n1)``.

    * the mean is removed (l.119);
    * ``pad == 1`` zero-pads to ``2**(fix(log2(n1) + 0.4999) + 1)`` samples,
      i.e. twice the power of two *nearest* to n1 (l.120-123);
    * wavenumbers ``k = [0, 1..fix(n/2), -fix((n-1)/2)..-1] * 2*pi/(n*dt)``
      (l.127-129): for even n the Nyquist bin is **positive**, so it passes
      the Heaviside step;
    * COI = ``coi_factor*dt*[1e-5, 1, 2, ..., 2, 1, 1e-5]`` (l.147).
    """
    Y = np.asarray(Y, dtype=float).ravel()
    n1 = Y.size  # wavelet.m l.111
    if s0 == -1:  # l.113
        s0 = 2 * dt
    if dj == -1:  # l.114
        dj = 1.0 / 4.0
    if J1 == -1:  # l.115
        J1 = _fix((math.log(n1 * dt / s0) / math.log(2)) / dj)
    if isinstance(mother, (int, float)) and mother == -1:  # l.116
        mother = "MORLET"
    J1 = int(J1)

    # ....construct time series to analyze, pad if necessary  (l.118-124)
    x = Y - np.mean(Y)  # l.119
    if pad == 1:  # l.120-123
        base2 = _fix(math.log(n1) / math.log(2) + 0.4999)  # power of 2 nearest to N
        x = np.concatenate([x, np.zeros(2 ** (base2 + 1) - n1)])
    n = x.size  # l.124

    # ....construct wavenumber array used in transform [Eqn(5)]  (l.127-129)
    kpos = np.arange(1, n // 2 + 1, dtype=float)  # k = [1:fix(n/2)]
    kpos = kpos * ((2.0 * math.pi) / (n * dt))  # k = k.*((2.*pi)/(n*dt))
    # k = [0., k, -k(fix((n-1)/2):-1:1)]: 1-based k(j) -> kpos[j-1]
    k = np.concatenate([[0.0], kpos, -kpos[: (n - 1) // 2][::-1]])

    f = np.fft.fft(x)  # l.132 [Eqn(3)]

    scale = s0 * 2.0 ** (np.arange(0, J1 + 1) * dj)  # l.135
    wave = np.zeros((J1 + 1, n), dtype=complex)  # l.137-138

    fourier_factor = coi_factor = None
    for a1 in range(J1 + 1):  # l.141-144 (a1 = 1:J1+1 -> 0..J1)
        daughter, fourier_factor, coi_factor, _dofmin = wave_bases(mother, k, scale[a1], param)
        wave[a1, :] = np.fft.ifft(f * daughter)  # l.143 [Eqn(4)]

    period = fourier_factor * scale  # l.146
    # l.147: coi = coi*dt*[1E-5, 1:((n1+1)/2-1), fliplr((1:(n1/2-1))), 1E-5]
    up = np.arange(1, math.floor((n1 + 1) / 2 - 1) + 1, dtype=float)  # 1:((n1+1)/2-1)
    down = np.arange(1, math.floor(n1 / 2 - 1) + 1, dtype=float)[::-1]  # fliplr(1:(n1/2-1))
    coi = coi_factor * dt * np.concatenate([[1e-5], up, down, [1e-5]])
    wave = wave[:, :n1]  # l.148 get rid of padding
    return wave, period, scale, coi


# --------------------------------------------------------------------------
# private/chisquare_inv.m and private/wave_signif.m (sigtest = 0 only)
# --------------------------------------------------------------------------
def chisquare_inv(P, V):
    """Port of ``private/chisquare_inv.m``.

    ``(P, V) == (0.95, 2)`` returns the hard-coded 5.9915 (chisquare_inv.m
    l.17-20). MATLAB otherwise minimises with ``fminbnd`` to ``TolX = 1e-4``
    (l.22-38); here the exact ``scipy.stats.chi2.ppf`` is used, which agrees
    with MATLAB to about ``1e-4 * V``.
    """
    if (1 - P) < 1e-4:  # l.15
        raise ValueError("P must be < 0.9999")
    if P == 0.95 and V == 2:  # l.17-20 "this is a no-brainer"
        return 5.9915
    from scipy.stats import chi2

    return float(chi2.ppf(P, V))


def wave_signif(Y, dt, scale1, sigtest=-1, lag1=-1, siglvl=-1, dof=-1, mother=-1, param=-1):
    """Port of ``private/wave_signif.m`` for ``sigtest = 0`` (the only case wt.m uses).

    Returns ``(signif, fft_theor)``. ``Y`` is the series or (scalar) its variance.
    """
    Y = np.atleast_1d(np.asarray(Y, dtype=float))
    scale = np.asarray(scale1, dtype=float)
    n1 = Y.size  # wave_signif.m l.78
    if n1 == 1:  # l.84-88
        variance = float(Y[0])
    else:
        variance = float(np.std(Y, ddof=1) ** 2)  # MATLAB std: N-1
    if sigtest == -1:  # l.90
        sigtest = 0
    if lag1 == -1:  # l.91
        lag1 = 0.0
    if siglvl == -1:  # l.92
        siglvl = 0.95
    if isinstance(mother, (int, float)) and mother == -1:  # l.93
        mother = "MORLET"
    mother = str(mother).upper()
    if mother == "MORLET":  # l.98-103
        if param == -1:
            param = 6.0
        k0 = param
        fourier_factor = (4 * math.pi) / (k0 + math.sqrt(2 + k0**2))
        dofmin = 2.0
    elif mother == "PAUL":  # l.104-109
        if param == -1:
            param = 4.0
        fourier_factor = 4 * math.pi / (2 * param + 1)
        dofmin = 2.0
    elif mother == "DOG":  # l.110-116
        if param == -1:
            param = 2.0
        fourier_factor = 2 * math.pi * math.sqrt(2.0 / (2 * param + 1))
        dofmin = 1.0
    else:
        raise ValueError("Mother must be one of MORLET,PAUL,DOG")
    period = scale * fourier_factor  # l.121
    freq = dt / period  # l.127 normalized frequency
    fft_theor = (1 - lag1**2) / (1 - 2 * lag1 * np.cos(freq * 2 * math.pi) + lag1**2)  # l.128 [Eqn(16)]
    fft_theor = variance * fft_theor  # l.129
    if sigtest == 0:  # l.133-136
        dof = dofmin
        chisquare = chisquare_inv(siglvl, dof) / dof
        signif = fft_theor * chisquare  # [Eqn(18)]
    else:
        raise NotImplementedError("only sigtest=0 is ported (wave_signif.m l.133-136)")
    return signif, fft_theor


# --------------------------------------------------------------------------
# smoothwavelet.m
# --------------------------------------------------------------------------
def scale_kernel(dj):
    """The scale-direction boxcar of ``smoothwavelet.m`` l.88-106.

    ``dj0steps = 0.6/(2*dj)``; kernel =
    ``[mod(dj0steps,1); ones(2*round(dj0steps)-1); mod(dj0steps,1)]``
    divided by its sum ``2*round(dj0steps)-1 + 2*mod(dj0steps,1)``.
    For dj = 1/12: 9 taps ``[0.6, 1 x 7, 0.6]/8.2``.
    """
    dj0 = 0.6  # l.88
    dj0steps = dj0 / (dj * 2)  # l.89
    frac = dj0steps % 1.0  # mod(dj0steps,1) (dj0steps > 0)
    r = int(_mround(dj0steps))
    kernel = np.concatenate([[frac], np.ones(2 * r - 1), [frac]])  # l.105
    return kernel / (2 * r - 1 + 2 * frac)  # l.106


def smoothwavelet(wave, dt, period, dj, scale):
    """Port of ``smoothwavelet.m`` (Torrence & Webster 1998 appendix smoothing).

    Time: multiply by ``exp(-0.5*(s/dt)**2 * k**2)`` (``k`` in rad/sample) in
    the FFT domain over ``npad = 2**ceil(log2(n))`` samples, keep the first n
    (l.63-75). Real input gives real output (l.77-79). Scale: ``conv2(...,
    kernel, 'same')`` with zero fill along the scale axis (l.105-107).
    ``period`` is unused (as in MATLAB; it fed a commented-out loop).
    """
    wave = np.asarray(wave)
    scale = np.asarray(scale, dtype=float)
    n = wave.shape[1]  # l.41

    npad = int(2 ** math.ceil(math.log2(n)))  # l.63
    kpos = np.arange(1, npad // 2 + 1, dtype=float)  # l.65 k = 1:fix(npad/2)
    kpos = kpos * ((2.0 * math.pi) / npad)  # l.66
    k = np.concatenate([[0.0], kpos, -kpos[: (npad - 1) // 2][::-1]])  # l.67
    k2 = k**2  # l.69
    snorm = scale / dt  # l.70
    # l.71-75, one row per scale (vectorised: identical arithmetic per row)
    F = np.exp(-0.5 * (snorm[:, None] ** 2) * k2[None, :])  # l.72
    smooth = np.fft.ifft(F * np.fft.fft(wave, npad, axis=1), axis=1)  # l.73 fft(wave(ii,:),npad)
    twave = smooth[:, :n]  # l.74
    if _matlab_isreal(wave):  # l.77-79
        twave = twave.real

    # scale smoothing, l.88-107: conv2(twave, kernel, 'same') along dim 1
    kernel = scale_kernel(dj)
    m = kernel.size  # always odd: 2*round(dj0steps)+1
    h = (m - 1) // 2
    J = twave.shape[0]
    swave = np.zeros_like(twave)
    for i in range(J):  # 'same' part of the full convolution, zero-filled
        for j in range(m):
            src = i + h - j
            if 0 <= src < J:
                swave[i] += kernel[j] * twave[src]
    return swave


# --------------------------------------------------------------------------
# AR(1): ar1nv.m, ar1.m, private/ar1spectrum.m, private/rednoise.m
# --------------------------------------------------------------------------
def ar1nv(x):
    """Port of ``ar1nv.m`` (E. Breitenberger): naive AR(1) estimate.

    ``g = c1/c0`` with ``c0 = x'x/N`` and ``c1 = x(1:N-1)'x(2:N)/(N-1)`` on the
    demeaned series, ``a = sqrt((1-g^2)*c0)`` (the innovation *standard
    deviation*, although the help text says variance). Returns ``(g, a)``;
    wtc.m/wt.m/xwt.m call it with one output and use ``g`` only.
    """
    x = np.asarray(x, dtype=float).ravel()  # ar1nv.m l.12
    N = x.size  # l.13
    x = x - np.mean(x)  # l.14-15
    c0 = float(x @ x) / N  # l.18
    c1 = float(x[: N - 1] @ x[1:N]) / (N - 1)  # l.19
    g = c1 / c0  # l.21
    a = math.sqrt((1 - g**2) * c0)  # l.22
    return g, a


def ar1(x):
    """Port of ``ar1.m``: Allen & Smith (1996) bias-corrected AR(1).

    Returns ``(g, a, mu2)``. When no root exists MATLAB warns and returns
    NaN (ar1.m l.66-71); pycwt raises instead. Note ar1.m l.74 divides the
    last term of ``mu2`` by ``(1-g)`` whereas pycwt uses ``(1-g)**2``; ``g``
    itself is the same in both.
    """
    x = np.asarray(x, dtype=float).ravel()  # ar1.m l.44
    N = x.size  # l.45
    x = x - np.mean(x)  # l.46-47
    vr = float(x @ x) / N  # l.50 zero lag
    c1 = float(x[: N - 1] @ x[1:N]) / (N - 1)  # l.51 lag1
    B = -c1 * N - vr * N**2 - 2 * vr + 2 * c1 - c1 * N**2 + vr * N  # l.62
    A = vr * N**2  # l.63
    C = N * (vr + c1 * N - c1)  # l.64
    D = B**2 - 4 * A * C  # l.65
    if D > 0:  # l.66-71
        g = (-B - math.sqrt(D)) / (2 * A)
    else:
        warnings.warn(
            "Can not place an upperbound on the unbiased AR1. "
            "Series too short or too large a trend.",
            RuntimeWarning,
            stacklevel=2,
        )
        g = float("nan")
    mu2 = -1 / N + (2 / N**2) * ((N - g**N) / (1 - g) - g * (1 - g ** (N - 1)) / (1 - g))  # l.74
    c0t = vr / (1 - mu2)  # l.75
    a = math.sqrt((1 - g**2) * c0t) if not math.isnan(g) else float("nan")  # l.76
    return g, a, mu2


def ar1spectrum(ar1_coef, period):
    """Port of ``private/ar1spectrum.m``: ``(1-a^2)/|1-a e^{-2 pi i/period}|^2``.

    ``period`` is in samples (xwt.m passes ``period./dt``).
    """
    freq = 1.0 / np.asarray(period, dtype=float)  # ar1spectrum.m l.35
    return (1 - ar1_coef**2) / np.abs(1 - ar1_coef * np.exp(-2 * math.pi * 1j * freq)) ** 2  # l.36


def rednoise(N, g, a=1.0, rng=None):
    """Port of ``private/rednoise.m`` with an injectable Generator.

    ``g == 0`` gives white noise (l.48-51). Otherwise ``tau =
    ceil(-2/log|g|)`` spin-up samples are drawn and discarded:
    ``y = filter([1 0], [1 -g], randn(tau+N,1)*a); y = y(tau+1:end)``
    (l.52-55). MATLAB's ``randn`` stream is replaced by
    ``rng.standard_normal`` (cannot be reproduced).
    """
    rng = np.random.default_rng() if rng is None else rng
    N = int(N)
    if g == 0:  # rednoise.m l.48-51
        return rng.standard_normal(N) * a
    tau = int(math.ceil(-2 / math.log(abs(g))))  # l.52
    yred = lfilter([1.0, 0.0], [1.0, -g], rng.standard_normal(tau + N) * a)  # l.54
    return yred[tau:]  # l.55 yred(tau+1:end)


# --------------------------------------------------------------------------
# wtcsignif.m
# --------------------------------------------------------------------------
def wtcsignif_cache_key(ar1_pair, dj, s0, dt, j1, mother="Morlet"):
    """The cache identity of ``wtcsignif.m`` l.52-59 (no file is written).

    Returns ``(checkvalues, checkhash)``. ``checkvalues`` (float32, MATLAB
    ``single``) is what decides reuse: ``isequal(checkvalues,
    last.checkvalues)`` and ``last.mccount >= mccount`` (l.66). ``checkhash``
    only names the file (two letters); it assumes MATLAB rounds a non-integer
    character code to the nearest integer when building the char array
    (not verified against MATLAB; it cannot affect results).
    """
    ar1_pair = np.asarray(ar1_pair, dtype=float).ravel()
    aa = _mround(np.arctanh(ar1_pair) * 4)  # l.52 round(atanh(ar1(:)')*4)
    aa = np.abs(aa) + 0.5 * (aa < 0)  # l.53
    mother_codes = [float(ord(c)) for c in str(mother)]  # double(mother)
    checkvalues = np.array(list(aa) + [dj, s0 / dt, j1] + mother_codes, dtype=np.float32)  # l.56
    lg = np.log(checkvalues + np.float32(1))
    h1 = np.mod(np.sum(lg * np.float32(127), dtype=np.float32), np.float32(25)) + 97  # l.59
    h2 = np.mod(np.sum(lg * np.float32(54321), dtype=np.float32), np.float32(25)) + 97
    checkhash = chr(int(_mround(h1))) + chr(int(_mround(h2)))
    return checkvalues, checkhash


def _interp1_linear(x, y, xi):
    """MATLAB ``interp1(x, y, xi)`` (linear): NaN outside ``[x(1), x(end)]``."""
    x = np.asarray(x, dtype=float)
    if x.size < 2 or xi < x[0] or xi > x[-1]:
        return float("nan")
    return float(np.interp(xi, x, y))


def wtcsignif(mccount, ar1_pair, dt, n, pad, dj, s0, j1, mother, cutoff=None, rng=None):
    """Port of ``wtcsignif.m``: Monte Carlo 95% level of the coherence per scale.

    Returns ``wtcsig`` of shape ``(j1+1, 2)``: ``[scale, sig95]``.

    * the argument ``n`` (and ``cutoff``) are obsolete: the surrogate length
      is ``ceil(6 * s0*2^(j1*dj)/dt)`` (l.74-75);
    * one surrogate is drawn *before* the loop just to get the COI mask
      (l.79-84); with ``mccount < 1`` the level is the constant 0.71
      (l.88-92), after that draw;
    * scales entirely inside the COI keep NaN; ``maxscale`` is the last
      scale with any point outside it (l.94-106);
    * bins: ``floor(clamp(Rsq,0,1)*(nbins-1))+1`` with nbins = 1000
      (l.127-134) -- MATLAB ``min``/``max`` ignore NaN, so a NaN lands in
      the top bin (ported with ``fmin``/``fmax``);
    * level: ``interp1(ptile, rsqy, .95)`` with ``rsqy = ((1:nbins)-.5)/nbins``
      and ``ptile = (cumsum(counts)-.5)/total`` over non-empty bins (l.139-148),
      NaN outside the range of ``ptile`` (no extrapolation);
    * random draws: ``rng`` (a ``numpy.random.Generator``) replaces MATLAB's
      ``randn``; the draw order (d1 before the loop, then d1, d2 per
      iteration) is MATLAB's. No cache is read or written.
    """
    rng = np.random.default_rng() if rng is None else rng
    ar1_pair = np.asarray(ar1_pair, dtype=float).ravel()

    ms = s0 * (2 ** (j1 * dj)) / dt  # l.74 maxscale in units of samples
    n = int(math.ceil(ms * 6))  # l.75

    warned = False
    d1 = rednoise(n, ar1_pair[0], 1, rng=rng)  # l.79
    W1, period, scale, coi = wavelet(d1, dt, pad, dj, s0, j1, mother)  # l.80
    outsidecoi = np.zeros(W1.shape, dtype=bool)  # l.81
    for s in range(scale.size):  # l.82-84
        outsidecoi[s, :] = period[s] <= coi
    sinv = 1.0 / scale  # l.85-86 (broadcast below)
    sinv = sinv[:, None] * np.ones((1, W1.shape[1]))

    if mccount < 1:  # l.88-92
        return np.column_stack([scale, np.full(scale.size, 0.71)])

    sig95 = np.zeros(scale.size)  # l.94
    maxscale = 0  # l.96 maxscale=1 (1-based) -> 0
    for s in range(scale.size):  # l.97-106
        if np.any(outsidecoi[s, :]):
            maxscale = s
        else:
            sig95[s] = np.nan
            if not warned:
                warnings.warn(
                    "Long wavelengths completely influenced by COI. "
                    "(suggestion: set n higher, or j1 lower)",
                    RuntimeWarning,
                    stacklevel=2,
                )
                warned = True

    nbins = 1000  # l.113
    wlc = np.zeros((scale.size, nbins))  # l.114

    for _ii in range(int(mccount)):  # l.118-136
        d1 = rednoise(n, ar1_pair[0], 1, rng=rng)  # l.119
        d2 = rednoise(n, ar1_pair[1], 1, rng=rng)  # l.120
        W1, period, scale, coi = wavelet(d1, dt, pad, dj, s0, j1, mother)  # l.121
        W2, period, scale, coi = wavelet(d2, dt, pad, dj, s0, j1, mother)  # l.122

        sWxy = smoothwavelet(sinv * (W1 * np.conj(W2)), dt, period, dj, scale)  # l.124
        Rsq = np.abs(sWxy) ** 2 / (  # l.125
            smoothwavelet(sinv * (np.abs(W1) ** 2), dt, period, dj, scale)
            * smoothwavelet(sinv * (np.abs(W2) ** 2), dt, period, dj, scale)
        )

        for s in range(maxscale + 1):  # l.127 s=1:maxscale (inclusive)
            cd = Rsq[s, outsidecoi[s, :]]  # l.128
            cd = np.fmax(np.fmin(cd, 1), 0)  # l.129 max(min(cd,1),0), NaN-ignoring
            cd = np.floor(cd * (nbins - 1)).astype(int)  # l.130 floor(cd*(nbins-1))+1, 0-based
            np.add.at(wlc[s], cd, 1)  # l.131-133 (same counts as the jj loop)

    for s in range(maxscale + 1):  # l.139-148
        rsqy = (np.arange(1, nbins + 1) - 0.5) / nbins  # l.140
        ptile = wlc[s, :]  # l.141
        idx = np.nonzero(ptile != 0)[0]  # l.142
        ptile = ptile[idx]  # l.143
        rsqy = rsqy[idx]  # l.144
        ptile = np.cumsum(ptile)  # l.145
        ptile = (ptile - 0.5) / ptile[-1]  # l.146
        sig95[s] = _interp1_linear(ptile, rsqy, 0.95)  # l.147
    wtcsig = np.column_stack([scale, sig95])  # l.149
    if np.any(np.isnan(sig95)) and not warned:  # l.151-152
        warnings.warn("Sig95 calculation failed. (Some NaNs)", RuntimeWarning, stacklevel=2)
    return wtcsig


# --------------------------------------------------------------------------
# Option parsing (private/parseArgs.m, simplified)
# --------------------------------------------------------------------------
_FIGURE_OPTIONS = ("MakeFigure", "BlackandWhite", "ArrowDensity", "ArrowSize", "ArrowHeadSize")


def _parse_args(options: dict, fields: dict) -> dict:
    """Subset of ``private/parseArgs.m``: names are case-insensitive; an exact
    abbreviation (the upper-case letters of the field name, e.g. ``ms`` for
    MaxScale, ``mcc`` for MonteCarloCount) wins, then a unique/shortest
    prefix of the full name (parseArgs.m l.143-152)."""
    out = dict(fields)
    names = list(fields) + [f for f in _FIGURE_OPTIONS if f not in fields]
    lower = {nm.lower(): nm for nm in names}
    abbrev = {"".join(c for c in nm if c != c.lower()).lower(): nm for nm in names}
    for key, val in options.items():
        a = key.lower()
        if a in abbrev:
            name = abbrev[a]
        else:
            hits = [nm for lo, nm in lower.items() if lo.startswith(a)]
            if not hits:
                raise TypeError(f"Unknown named parameter: {key}")
            name = min(hits, key=len)  # shortest fieldname wins
        out[name] = val
    return out


def _j1_from_maxscale(args: dict, n: int, dt: float) -> int:
    """wt.m l.77-82 / wtc.m l.97-102 / xwt.m: J1 from MaxScale."""
    if args.get("J1") is None:
        if args.get("MaxScale") is None:
            args["MaxScale"] = (n * 0.17) * 2 * dt  # auto maxscale
        args["J1"] = int(_mround(math.log2(args["MaxScale"] / args["S0"]) / args["Dj"]))
    return int(args["J1"])


def _common_time(x, y, dt):
    """wtc.m l.74 / xwt.m: ``t=(max(x(1,1),y(1,1)):dt:min(x(end,1),y(end,1)))'``."""
    t0 = max(x[0, 0], y[0, 0])
    t1 = min(x[-1, 0], y[-1, 0])
    nt = int(math.floor((t1 - t0) / dt + 1e-10)) + 1 if t1 >= t0 else 0
    t = t0 + dt * np.arange(nt)
    if t.size < 4:  # l.75-77
        raise ValueError("The two time series must overlap.")
    return t


def _span_index(tcol, t, dt):
    """wtc.m l.142-143 / l.148: samples within ``[t(1)-dte, t(end)+dte]``."""
    dte = dt * 0.01  # to circumvent round off errors with fractional timesteps
    return np.nonzero((tcol >= (t[0] - dte)) & (tcol <= (t[-1] + dte)))[0]


# --------------------------------------------------------------------------
# wt.m
# --------------------------------------------------------------------------
def wt(d, **options):
    """Port of ``wt.m`` (no figure). Returns ``(wave, period, scale, coi, sig95)``.

    Defaults (wt.m l.68-82): Pad=1, Dj=1/12, S0=2*dt, MaxScale=(n*.17)*2*dt,
    ``J1 = round(log2(MaxScale/S0)/Dj)``, Mother='Morlet', AR1='auto'
    (``ar1nv``). The series is **not** divided by its std: wavelet.m only
    removes the mean; ``sigma2 = var(d)`` (N-1) is used only to express
    ``sig95 = power ./ (sigma2*signif)`` (l.100-103).
    """
    d, dt = formatts(d)  # wt.m l.62
    n = d.shape[0]  # l.64
    sigma2 = float(np.var(d[:, 1], ddof=1))  # l.65 var: N-1
    args = _parse_args(
        options,
        {"Pad": 1, "Dj": 1 / 12, "S0": 2 * dt, "J1": None, "Mother": "Morlet", "MaxScale": None, "AR1": "auto"},
    )  # l.68-76
    J1 = _j1_from_maxscale(args, n, dt)  # l.77-82
    if isinstance(args["AR1"], str) and args["AR1"].lower() == "auto":  # l.84-90
        args["AR1"] = ar1nv(d[:, 1])[0]
        if np.isnan(args["AR1"]):
            raise ValueError("Automatic AR1 estimation failed. Specify it manually (use arcov or arburg).")
    wave, period, scale, coi = wavelet(d[:, 1], dt, args["Pad"], args["Dj"], args["S0"], J1, args["Mother"])  # l.97
    power = np.abs(wave) ** 2  # l.100
    signif, _ = wave_signif(1.0, dt, scale, 0, args["AR1"], -1, -1, args["Mother"])  # l.101
    sig95 = signif[:, None] * np.ones((1, n))  # l.102
    sig95 = power / (sigma2 * sig95)  # l.103
    return wave, period, scale, coi, sig95


# --------------------------------------------------------------------------
# xwt.m
# --------------------------------------------------------------------------
def xwt(x, y, **options):
    """Port of ``xwt.m`` (no figure). Returns ``(Wxy, period, scale, coi, sig95)``.

    ``sig95 = |Wxy| / (sigmax*sigmay*sqrt(Pkx*Pky)*Zv/V)`` with ``Zv = 3.9999``,
    ``V = 2``, ``sigma = std(series)`` (N-1) of the raw series and
    ``Pk = ar1spectrum(AR1, period/dt)`` (xwt.m l.119-122, 158-169); NaN for
    non-Morlet mothers.
    """
    x, dt = formatts(x)
    y, dty = formatts(y)
    if dt != dty:
        raise ValueError("timestep must be equal between time series")
    t = _common_time(x, y, dt)
    n = t.size
    args = _parse_args(
        options,
        {"Pad": 1, "Dj": 1 / 12, "S0": 2 * dt, "J1": None, "Mother": "Morlet", "MaxScale": None, "AR1": "auto"},
    )
    J1 = _j1_from_maxscale(args, n, dt)
    if isinstance(args["AR1"], str) and args["AR1"].lower() == "auto":  # xwt.m l.111-116
        args["AR1"] = [ar1nv(x[:, 1])[0], ar1nv(y[:, 1])[0]]
    ar = np.asarray(args["AR1"], dtype=float)
    sigmax = float(np.std(x[:, 1], ddof=1))  # l.119
    sigmay = float(np.std(y[:, 1], ddof=1))  # l.122
    X, period, scale, coix = wavelet(x[:, 1], dt, args["Pad"], args["Dj"], args["S0"], J1, args["Mother"])  # l.128
    Y, period, scale, coiy = wavelet(y[:, 1], dt, args["Pad"], args["Dj"], args["S0"], J1, args["Mother"])  # l.129
    idx = _span_index(x[:, 0], t, dt)  # l.132-135
    X, coix = X[:, idx], coix[idx]
    idx = _span_index(y[:, 0], t, dt)  # l.137-139
    Y, coiy = Y[:, idx], coiy[idx]
    coi = np.minimum(coix, coiy)  # l.141
    Wxy = X * np.conj(Y)  # l.144
    Pkx = ar1spectrum(ar[0], period / dt)  # l.158
    Pky = ar1spectrum(ar[1], period / dt)  # l.159
    V = 2  # l.162
    Zv = 3.9999  # l.163
    signif = sigmax * sigmay * np.sqrt(Pkx * Pky) * Zv / V  # l.164
    sig95 = signif[:, None] * np.ones((1, n))  # l.165
    sig95 = np.abs(Wxy) / sig95  # l.166
    if str(args["Mother"]).lower() != "morlet":  # l.167-169
        sig95[:] = np.nan
    return Wxy, period, scale, coi, sig95


# --------------------------------------------------------------------------
# wtc.m
# --------------------------------------------------------------------------
class WTCResult(NamedTuple):
    """Outputs of :func:`wtc`. The first six are MATLAB's ``varargout`` of
    wtc.m l.211 in order: ``{Rsq, period, scale, coi, wtcsig, t}``."""

    Rsq: np.ndarray  #: coherence, (J1+1, n)
    period: np.ndarray  #: Fourier periods (time units)
    scale: np.ndarray  #: scales (time units)
    coi: np.ndarray  #: min(coix, coiy), wtc.m l.153
    sig95: np.ndarray  #: Rsq ./ level (>= 1 is significant), wtc.m l.163-165
    t: np.ndarray  #: common time axis, wtc.m l.74
    # extras not returned by MATLAB, for testing
    Wxy: np.ndarray  #: unsmoothed cross wavelet X.*conj(Y), wtc.m l.156; phase = angle(Wxy) (l.190)
    sig95_level: np.ndarray  #: wtcsignif's per-scale level (column 2)
    ar1: np.ndarray  #: the two AR(1) coefficients used
    J1: int  #: number of scales minus one


def wtc(x, y, rng=None, **options):
    """Port of ``wtc.m`` (no figure), returning a :class:`WTCResult`.

    ``x``, ``y``: vectors (time ``1..n``, dt = 1) or ``[time, value]`` arrays.
    Options (case-insensitive, MATLAB names or abbreviations): ``Pad`` (1),
    ``Dj`` (1/12), ``S0`` (2*dt), ``J1``, ``MaxScale`` ((n*.17)*2*dt with n
    the common length), ``Mother`` ('Morlet'), ``MonteCarloCount`` (300),
    ``AR1`` ('auto' -> ``ar1nv`` of each *full* series). ``rng`` feeds
    :func:`wtcsignif` (MATLAB's randn cannot be reproduced).

    Numerics (wtc.m): each full series is transformed (mean removed, no std
    normalisation: l.121/124 are commented out) and its ``|W|^2/s`` smoothed
    *before* truncation to the common span (l.130-151);
    ``Rsq = |S(Wxy/s)|^2 ./ (S(|X|^2/s) .* S(|Y|^2/s))`` (l.159-160).
    """
    x, dt = formatts(x)  # wtc.m l.69
    y, dty = formatts(y)  # l.70
    if dt != dty:  # l.71-73
        raise ValueError("timestep must be equal between time series")
    t = _common_time(x, y, dt)  # l.74-77
    n = t.size  # l.81

    args = _parse_args(
        options,
        {
            "Pad": 1,
            "Dj": 1 / 12,
            "S0": 2 * dt,
            "J1": None,
            "Mother": "Morlet",
            "MaxScale": None,
            "MonteCarloCount": 300,
            "AR1": "auto",
        },
    )  # l.84-96
    J1 = _j1_from_maxscale(args, n, dt)  # l.97-102
    if str(args["Mother"]).lower() != "morlet":  # l.109-111
        warnings.warn("Smoothing operator is designed for morlet wavelet.", UserWarning, stacklevel=2)
    if isinstance(args["AR1"], str) and args["AR1"].lower() == "auto":  # l.113-118
        args["AR1"] = [ar1nv(x[:, 1])[0], ar1nv(y[:, 1])[0]]
        if np.any(np.isnan(args["AR1"])):
            raise ValueError("Automatic AR1 estimation failed. Specify it manually (use arcov or arburg).")
    ar = np.asarray(args["AR1"], dtype=float)
    pad, dj, s0, mother = args["Pad"], args["Dj"], args["S0"], args["Mother"]

    nx = x.shape[0]  # l.120
    ny = y.shape[0]  # l.123

    X, period, scale, coix = wavelet(x[:, 1], dt, pad, dj, s0, J1, mother)  # l.130
    Y, period, scale, coiy = wavelet(y[:, 1], dt, pad, dj, s0, J1, mother)  # l.131

    sinv = 1.0 / scale  # l.134 sinv=1./(scale')
    sX = smoothwavelet((sinv[:, None] * np.ones((1, nx))) * (np.abs(X) ** 2), dt, period, dj, scale)  # l.137
    sY = smoothwavelet((sinv[:, None] * np.ones((1, ny))) * (np.abs(Y) ** 2), dt, period, dj, scale)  # l.138

    idx = _span_index(x[:, 0], t, dt)  # l.142-143
    X, sX, coix = X[:, idx], sX[:, idx], coix[idx]  # l.144-146
    idx = _span_index(y[:, 0], t, dt)  # l.148
    Y, sY, coiy = Y[:, idx], sY[:, idx], coiy[idx]  # l.149-151

    coi = np.minimum(coix, coiy)  # l.153

    Wxy = X * np.conj(Y)  # l.156

    sWxy = smoothwavelet((sinv[:, None] * np.ones((1, n))) * Wxy, dt, period, dj, scale)  # l.159
    Rsq = np.abs(sWxy) ** 2 / (sX * sY)  # l.160

    # l.162-166 (nargout>0): significance, n argument is obsolete, cutoff .6
    wtcsig = wtcsignif(args["MonteCarloCount"], ar, dt, n * 2, pad, dj, s0, J1, mother, 0.6, rng=rng)
    level = wtcsig[:, 1]
    sig95 = Rsq / (level[:, None] * np.ones((1, n)))  # l.164-165
    return WTCResult(Rsq, period, scale, coi, sig95, t, Wxy, level, ar, J1)
