"""Other CWT engines, converted to pycwt's convention (the "hybrid" architecture).

:func:`engine_cwt` computes the Morlet transform of a signal with bioxen-dask's own kernels,
pycwt, PyWavelets, ssqueezepy or fCWT and returns coefficients in **pycwt's convention**, so
that bioxen-dask's coherence (:func:`bioxen_dask.kernels.coherence`) and Monte Carlo
significance can run on any of them (``wavelet_coherence(..., engine=)``,
``surrogate_significance(..., cwt_engine=)``).

The target, for the Morlet wavelet ``psi(t) = pi**-0.25 exp(i f0 t) exp(-t**2/2)`` and scales
``s = grid.scales`` (time units)::

    W(s, t) = sum_t' x(t') conj(psi((t' - t) / s)) sqrt(dt / s)

computed as pycwt does it, in the frequency domain,
``W = ifft(X(w) sqrt(2 pi s/dt) pi**-0.25 exp(-(s w - f0)**2 / 2))`` with
``w = 2 pi fftfreq(P, dt)``: analytic (positive frequencies; Nyquist counted as negative),
over a period ``P`` (``boundary="pycwt"``: the record zero-padded at its end to the next power
of two, pycwt's wrap-around included; ``"linear"``: padded by the wavelet support, so nothing
wraps). Every external engine is handed the signal already zero-padded to ``P`` and made to
transform it circularly over ``P``, so boundaries agree exactly. In sample units
``a = s / dt`` and ``u = a w`` (``w`` in radians per sample), pycwt's filter is
``sqrt(2 pi a) pi**-0.25 exp(-(u - f0)**2 / 2)``.

Derivations of the conversions (each checked against ``pycwt.cwt`` in
``tests/test_engines.py``; measured errors in :mod:`bioxen_dask.bench.equivalence`):

**PyWavelets** (``pywt.cwt``, ``cmorB-C``, ``method="fft"``). Its mother is
``psi_B,C(t) = (pi B)**-0.5 exp(-t**2 / B) exp(i 2 pi C t)``; ``B = 2`` and
``C = f0 / (2 pi)`` give ``(2 pi)**-0.5 exp(-t**2/2) exp(i f0 t)`` = ``pi**0.25 (2 pi)**-0.5``
times pycwt's ``psi``. The scale is in samples, ``a = s / dt``. pywt conjugates the integrated
wavelet ``I(u) = int_{-8}^{u} psi`` of complex wavelets, samples it at ``j = floor(m / (a
step))`` (``step`` the grid of ``precision``), convolves and returns
``-sqrt(a) diff(conv)``, cropped by ``floor((L - 2) / 2)`` (``L`` kernel taps). The
difference of the integral is the wavelet averaged over one sample, so::

    coef(t) = pi**0.25 (2 pi)**-0.5 [W * box_1](t + delta_a),
    delta_a = floor((L - 2) / 2) - L + 3/2 + 8 a

(a one-sample boxcar whose DFT is ``sin(w/2) / (w/2)``, and a centring offset
``|delta_a| <= 1/2`` sample). The adapter multiplies by ``sqrt(2) pi**0.25`` (the amplitude
factor ``(2 pi)**0.5 pi**-0.25``), undoes the boxcar and the offset exactly per row in the DFT
domain (``exp(-i w delta_a) (w/2) / sin(w/2)``), and feeds pywt the periodic extension of the
padded record, so its linear convolution is pycwt's circular one. No conjugation is needed
(pywt conjugates itself). What remains: pywt samples the wavelet in *time*, so at scales below
~4 samples (periods below ~4 dt) its spectrum aliases across Nyquist where pycwt's is cut off
(tens of per cent at the 2-dt period; bioxen-dask's time-defined ``linear`` mode shares this),
and the floor-indexed integral jitters by ``16 a / 2**precision`` (``precision=18`` default).

**ssqueezepy** (``ssqueezepy.cwt``, ``("morlet", {"mu": f0})``, ``l1_norm=False``). Its
Morlet is defined in frequency, ``psih(u) = sqrt(2) c pi**0.25 (exp(-(u - mu)**2/2) - k
exp(-u**2/2))`` with ``c = 1 + O(e**-27)`` and the admissibility term ``k = exp(-mu**2/2)``
(1.5e-8 at ``mu = 6``); ``xi = 2 pi fftfreq(N)`` radians per sample, scales in samples
``a = s / dt``; ``l1_norm=False`` multiplies by ``sqrt(a)``. So ``W = ifft(X sqrt(a) sqrt(2)
pi**0.25 exp(-(a xi - mu)**2/2))`` and the factor against pycwt is ``sqrt(2 pi) pi**-0.25 /
(sqrt(2) pi**0.25) = 1``: no rescaling, no conjugation (both multiply by a real filter). One
convention differs: ssqueezepy puts the Nyquist bin at ``+pi`` and halves it
(``nohalf=False``), pycwt at ``-pi`` (where its filter is ~0). The adapter subtracts that bin's
contribution ``sqrt(a) psih(a pi) / 2 X[P/2] (-1)**t / P`` (tens of per cent at the 2-dt period
of white noise otherwise). ``padtype=None`` on the pre-padded record gives the circular
transform over ``P``.

**fCWT** (``fcwt.FCWT``, ``fcwt.Morlet(sigma)``). Its mother is generated in frequency on
the ``P = 2**k`` bins of the padded input, ``mother[q] = sqrt(2 pi) pi**-0.25 exp(-(2 sigma
(2 pi q / P) - 2 pi sigma)**2 / 2)``, and a scale ``b`` (samples) reads ``mother[floor(q b
/ 2)]`` at bin ``q``: the daughter is ``sqrt(2 pi) pi**-0.25 exp(-sigma**2 (b w - 2 pi)**2/2)``
for ``0 <= w < min(pi, 4 pi / b)`` and zero elsewhere (analytic, Nyquist excluded, as pycwt).
Matching ``sigma (b w - 2 pi) = a w - f0`` for all ``w`` gives ``sigma = f0 / (2 pi)`` and
``b = 2 pi a / f0`` (``a = s / dt``); the amplitudes differ by ``sqrt(a)`` (fCWT's inverse FFT
is normalised by ``1/P``, no scale factor). fCWT takes an integer sampling rate and builds
scales ``fs / f`` from frequencies;
here ``fs = 1`` and ``FCWT_LOGSCALES`` runs of scales from the largest down (``f = 1 / b``;
fCWT zeroes its work buffer once per call, so rows written with a shrinking band would keep
stale bins of the previous scale; grids that are not log-spaced go one scale per call). fCWT
fills only ``4 floor(E / 4)`` bins, ``E = floor(2 P / b)``, which at ``P = 512`` leaves the
largest scales empty, and reads its mother at ``floor`` indices (a frequency error of up to
``2 pi / P``, ~1e-2 relative in the coefficients at ``P = 512``). The adapter therefore
hands fCWT the padded record tiled ``k`` times (``k P >= max(2**16, 32 b)``): a ``P``-periodic
record has its spectrum on every ``k``-th bin of the ``kP`` frame, where fCWT's filter takes
the same values, so the output repeats pycwt's circular transform with period ``P`` exactly,
with >= 64 bins in every band and the frequency error divided by ``k``. Scales sharing a frame
go through one fCWT call, largest first (fCWT 0.1.18 leaks 12 bytes per frame bin on every
call, fastlib/fCWT#74: measured RSS growth per transform ~0.6 MB for a 512-sample record, 25 MB
for 18,000 samples; one call per scale leaked 73 MB and 250 MB). What remains: single
precision, that frequency error (~1e-4 relative), that leak and ``b >= 2``
(``a >= 2 f0 / (2 pi)``, fCWT's Nyquist limit).

Measured against ``pycwt.cwt`` outside the COI (max ``|W - W_pycwt|`` over max ``|W_pycwt|``,
NINO3 / ECG / a 2000-sample chirp in noise, pycwt's default grid, ``boundary="pycwt"``):
bioxen 0 / 0 / 0, ssqueezepy 2e-8 / 2e-8 / 1e-8 (its admissibility term),
fCWT 1.2e-4 / 4.9e-5 / 4.8e-5 (float32), PyWavelets 1.4e-3 / 2.0e-4 / 5.2e-3 at scales of
at least 4 samples and 0.10 / 2.1e-3 / 0.13 including the smallest (time-sampled wavelet).

Examples
--------
>>> import numpy as np
>>> from bioxen_dask.grid import make_grid
>>> x = np.sin(2 * np.pi * np.arange(256) / 16.0)
>>> grid = make_grid(256, 1.0, dj=0.25)
>>> W = engine_cwt(x, grid, engine="bioxen")
>>> W.shape, W.dtype
((29, 256), dtype('complex128'))
>>> sorted(available_engines()) == sorted(ENGINES)
True
"""

from __future__ import annotations

import importlib
import math
from importlib import metadata
from types import ModuleType
from typing import Any

import numpy as np

from ._validation import as_signal
from ._version import __version__
from .grid import DEFAULT_TOL, ScaleGrid
from .kernels._plan import check_boundary
from .wavelets import Morlet

__all__ = ["ENGINES", "EXTERNAL_BOUNDARIES", "available_engines", "engine_cwt", "require_engine"]

#: CWT engines :func:`engine_cwt` knows.
ENGINES = ("bioxen", "pycwt", "pywavelets", "ssqueezepy", "fcwt")
#: Boundaries the engines other than ``bioxen`` support (see the module docstring).
EXTERNAL_BOUNDARIES = ("pycwt", "linear")

# name -> (import name, distribution, how to install)
_PACKAGES = {
    "pycwt": ("pycwt", "pycwt", "pip install pycwt==0.5.0b0  (or pip install 'bioxen-dask[test]')"),
    "pywavelets": ("pywt", "PyWavelets", "pip install PyWavelets  (or pip install 'bioxen-dask[test]')"),
    "ssqueezepy": ("ssqueezepy", "ssqueezepy", "pip install ssqueezepy  (or pip install 'bioxen-dask[test]')"),
    "fcwt": ("fcwt", "fCWT", "pip install fCWT, and the system single-precision FFTW it loads: "
             "apt-get install libfftw3-single3 (sh deploy/install-system-deps.sh as root)"),
}


def _check_engine(engine: str) -> str:
    name = str(engine).lower()
    if name not in ENGINES:
        raise ValueError(f"unknown CWT engine {engine!r}; choose one of {list(ENGINES)}.")
    return name


def require_engine(engine: str) -> ModuleType | None:
    """Import the package behind an engine (``None`` for ``"bioxen"``).

    Raises
    ------
    ValueError
        Unknown engine name.
    ImportError
        The package (or a library it loads) is missing; the message says how to install it.

    Examples
    --------
    >>> require_engine("bioxen") is None
    True
    """
    name = _check_engine(engine)
    if name == "bioxen":
        return None
    module, dist, how = _PACKAGES[name]
    try:
        return importlib.import_module(module)
    except Exception as exc:  # ImportError, or OSError from a missing shared library
        raise ImportError(
            f"the {name!r} CWT engine needs the {dist!r} package, which cannot be imported "
            f"({type(exc).__name__}: {exc}); install it with: {how}."
        ) from exc


def available_engines() -> dict[str, str]:
    """Every engine of :data:`ENGINES` with its version, or why it is missing and how to fix it.

    Returns
    -------
    dict
        ``{name: version}`` for importable engines; ``{name: "unavailable: <reason>"}``
        otherwise (the reason includes the install command).

    Examples
    --------
    >>> info = available_engines()
    >>> info["bioxen"] == __import__("bioxen_dask").__version__
    True
    """
    out: dict[str, str] = {}
    for name in ENGINES:
        dist = "bioxen-dask" if name == "bioxen" else _PACKAGES[name][1]
        try:
            require_engine(name)
        except ImportError as exc:
            out[name] = f"unavailable: {exc}"
            continue
        try:
            out[name] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[name] = __version__ if name == "bioxen" else "unknown version"
    return out


def check_engine_options(engine: str, grid: ScaleGrid, boundary: str) -> str:
    """Validate an engine for a grid and boundary; returns the normalised engine name.

    Raises
    ------
    ValueError
        Unknown engine, a non-Morlet grid or an unsupported boundary for an external engine.

    Examples
    --------
    >>> from bioxen_dask.grid import make_grid
    >>> check_engine_options("PyWavelets", make_grid(64, 1.0), "pycwt")
    'pywavelets'
    """
    name = _check_engine(engine)
    if name == "bioxen":
        check_boundary(boundary)
        return name
    if not isinstance(grid.wavelet, Morlet):
        raise ValueError(
            f"the {name!r} engine is adapted for the Morlet wavelet only, but the grid uses "
            f"{grid.wavelet!r}; use engine='bioxen' for other wavelets or a Morlet grid "
            "(make_grid(..., wavelet='morlet'))."
        )
    if str(boundary).lower() not in EXTERNAL_BOUNDARIES:
        raise ValueError(
            f"the {name!r} engine supports boundary in {list(EXTERNAL_BOUNDARIES)}, got {boundary!r}; "
            "use engine='bioxen' for the other boundaries."
        )
    return name


def _dtype_name(dtype: Any) -> str:
    """``"float32"`` or ``"float64"`` for any NumPy spelling of them (np.float32, "f4", ...)."""
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = str(dtype)
    if name not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}.")
    return name


def _period(n: int, grid: ScaleGrid, boundary: str, tol: float) -> int:
    """Length ``P`` of the circular frame the engines transform (see the module docstring)."""
    if boundary == "pycwt":
        return 1 << max(0, math.ceil(math.log2(n)))
    return n + int(grid.wavelet_support(tol).max()) + 1


def engine_cwt(
    x: Any,
    grid: ScaleGrid,
    engine: str = "bioxen",
    *,
    boundary: str = "pycwt",
    dtype: str = "float64",
    remove_mean: bool = False,
    tol: float = DEFAULT_TOL,
    precision: int = 18,
    workers: int | None = None,
) -> np.ndarray:
    """Morlet CWT of ``x`` on ``grid`` by one of :data:`ENGINES`, in pycwt's convention.

    The derivation of each engine's scale mapping and factor is in :mod:`bioxen_dask.engines`.

    Parameters
    ----------
    x : array-like, shape ``(..., n)``
        Real, finite signal(s) sampled every ``grid.dt``.
    grid : ScaleGrid
        The scales (Morlet for the external engines).
    engine : {"bioxen", "pycwt", "pywavelets", "ssqueezepy", "fcwt"}
    boundary : str
        ``"pycwt"`` (default: zero pad to the next power of two, wrap around, as pycwt) or
        ``"linear"`` (zero pad by the wavelet support); ``"bioxen"`` accepts every boundary
        of :func:`bioxen_dask.kernels.cwt`.
    dtype : {"float64", "float32"}
        Working precision where the engine has a choice (fCWT is float32 only, PyWavelets
        and pycwt float64 only).
    remove_mean : bool
        Subtract each signal's mean first (Grinsted's preset).
    tol : float
        Wavelet truncation tolerance of the ``linear`` padding.
    precision : int
        PyWavelets' ``precision`` (``2**precision`` points of the integrated wavelet).
    workers : int, optional
        Threads for the ``bioxen`` engine.

    Returns
    -------
    ndarray, complex, shape ``(..., n_scales, n)``

    Raises
    ------
    ValueError
        Unknown engine, non-Morlet grid or unsupported boundary for an external engine.
    ImportError
        The engine's package is not installed (the message says how to install it).

    Examples
    --------
    >>> import numpy as np
    >>> from bioxen_dask.grid import make_grid
    >>> x = np.random.default_rng(0).standard_normal(512)
    >>> grid = make_grid(512, 1.0, dj=0.25)
    >>> Wb = engine_cwt(x, grid, "bioxen")
    >>> Wp = engine_cwt(x, grid, "pycwt")
    >>> bool(np.abs(Wb - Wp).max() < 1e-9 * np.abs(Wp).max())
    True
    """
    if not isinstance(grid, ScaleGrid):
        raise TypeError(f"grid must be a ScaleGrid (see bioxen_dask.grid.make_grid), got {type(grid).__name__}.")
    boundary = str(boundary).lower()
    name = check_engine_options(engine, grid, boundary)
    arr = as_signal(x, "x", one_d=False)
    if name == "bioxen":
        from .kernels import cwt

        return np.asarray(cwt(arr, grid, boundary=boundary, dtype=dtype, remove_mean=remove_mean, tol=tol,
                              workers=workers))
    dtype_name = _dtype_name(dtype)
    mod = require_engine(name)
    arr = np.asarray(arr, dtype=float)
    if remove_mean:
        arr = arr - arr.mean(axis=-1, keepdims=True)
    n = arr.shape[-1]
    P = _period(n, grid, boundary, tol)
    if name == "fcwt":  # fCWT transforms power-of-two frames (more zeros keep 'linear' linear)
        P = 1 << max(0, math.ceil(math.log2(P)))
    run = _RUNNERS[name]
    flat = arr.reshape(-1, n)
    rows = []
    for sig in flat:
        y = np.zeros(P)
        y[:n] = sig
        rows.append(run(mod, y, grid, dtype_name, precision)[:, :n])
    return np.stack(rows).reshape(arr.shape[:-1] + (grid.n_scales, n))


# --- the engines: each transforms the padded record y circularly over len(y) ------------------
def _pycwt(mod: ModuleType, y: np.ndarray, grid: ScaleGrid, dtype: str, precision: int) -> np.ndarray:
    # freqs= gives exactly grid.scales (sj = 1/(flambda*freqs)); len(y) is a power of two or
    # padded beyond the support, so pycwt's own padding adds nothing that reaches the record
    W = mod.cwt(y, grid.dt, grid.dj, float(grid.scales[0]), grid.n_scales - 1, mod.Morlet(grid.wavelet.f0),
                freqs=grid.frequencies)[0]
    return np.asarray(W)


def _pywavelets(mod: ModuleType, y: np.ndarray, grid: ScaleGrid, dtype: str, precision: int) -> np.ndarray:
    f0 = grid.wavelet.f0
    P = y.size
    a = grid.scales / grid.dt
    wav = mod.ContinuousWavelet(f"cmor2.0-{f0 / (2 * np.pi)!r}")
    _, ugrid = mod.integrate_wavelet(wav, precision=precision)
    step, K, span = ugrid[1] - ugrid[0], ugrid.size, ugrid[-1] - ugrid[0]
    margin = int(math.ceil(span / 2 * a.max())) + 2
    ext = y[np.arange(-margin, P + margin) % P]  # periodic extension: linear conv = circular over P
    C = mod.cwt(ext, a, wav, method="fft", precision=precision)[0][:, margin : margin + P]
    w = 2 * np.pi * np.fft.fftfreq(P)
    half = w / 2
    unbox = np.ones(P)
    nz = half != 0
    unbox[nz] = half[nz] / np.sin(half[nz])
    out = np.empty((a.size, P), dtype=complex)
    for i, ai in enumerate(a):
        taps = (np.arange(ai * span + 1) / (ai * step)).astype(int)  # pywt's own tap indices
        L = int(np.count_nonzero(taps < K))
        delta = math.floor((L - 2) / 2) - L + 1.5 - ugrid[0] * ai
        out[i] = np.fft.ifft(np.fft.fft(C[i]) * (np.exp(-1j * w * delta) * unbox))
    out *= math.sqrt(2.0) * np.pi**0.25
    return out


def _ssqueezepy(mod: ModuleType, y: np.ndarray, grid: ScaleGrid, dtype: str, precision: int) -> np.ndarray:
    P = y.size
    a = (grid.scales / grid.dt).astype(dtype)
    wav = mod.Wavelet(("morlet", {"mu": float(grid.wavelet.f0), "dtype": dtype}))
    yd = y.astype(dtype)

    def run(scales: np.ndarray) -> np.ndarray:
        Wx, _ = mod.cwt(yd, wavelet=wav, scales=scales, padtype=None, l1_norm=False, astensor=False)
        return np.array(Wx, dtype=np.result_type(dtype, np.complex64))

    if _ssqueezepy_takes(a):
        W = run(a)
    else:
        # ssqueezepy infers a scale type from the array and takes only exponential (<= 1 octave
        # apart) or linear runs of >= 3 increasing scales: grids from make_grid(freqs=...), 1-2
        # scales or dj > ~1.3 are transformed one scale at a time, as the first row of the
        # exponential triple (a, 2a, 4a) (rows do not depend on the other scales)
        W = np.concatenate([run(ai * np.array([1, 2, 4], dtype=dtype))[:1] for ai in a])
    if P % 2 == 0:  # ssqueezepy counts the Nyquist bin at +pi, halved; pycwt at -pi (~0)
        psi_nyq = np.asarray(wav(np.asarray(a * np.pi, dtype=dtype)), dtype=float).real
        y_nyq = float(np.sum(y[0::2]) - np.sum(y[1::2]))
        alt = np.where(np.arange(P) % 2 == 0, 1.0, -1.0)
        W -= ((np.sqrt(a.astype(float)) * psi_nyq * (y_nyq / (2 * P)))[:, None] * alt[None, :]).astype(W.dtype)
    return W


def _ssqueezepy_takes(a: np.ndarray) -> bool:
    """Whether ``ssqueezepy.cwt(scales=a)`` accepts the whole array (its own inference decides)."""
    if a.size < 3 or not np.all(np.diff(a) > 0):
        return False
    try:
        from ssqueezepy.utils import infer_scaletype

        kind, nv = infer_scaletype(a)
    except Exception:  # an inference error, or a version without it: one scale at a time
        return False
    return kind == "linear" or (kind == "log" and nv is not None and int(nv) >= 1)


def _fcwt(mod: ModuleType, y: np.ndarray, grid: ScaleGrid, dtype: str, precision: int) -> np.ndarray:
    P = y.size
    if P & (P - 1):
        raise ValueError(f"internal: fCWT needs a power-of-two frame, got {P}")
    f0 = grid.wavelet.f0
    a = grid.scales / grid.dt
    b = 2 * np.pi * a / f0
    if b.min() < 2:
        raise ValueError(
            f"fCWT cannot analyse scales below {2 * f0 / (2 * np.pi):.4g} samples (its Nyquist limit); the "
            f"grid starts at {a.min():.4g} samples: raise s0."
        )
    # Per scale, tile the period k times (exact: a k-periodic record has the same spectrum on
    # every k-th bin of the k*P frame, and the output repeats with period P) so that fCWT's band
    # (floor(2 kP / b) bins, rounded down to a multiple of 4) holds >= 64 bins at that scale and
    # its floor-indexed mother is read on a frame of >= 2**16 bins. fCWT 0.1.18 leaks 12 bytes per
    # frame bin on every FCWT.cwt call (Morlet::generate mallocs a new mother each call and
    # convolve's `lastscalemem` is never freed, fastlib/fCWT#74): 768 kB per call on a 2**16
    # frame, so one call per scale leaked ~75 MB per transform of a 512-sample record and ~250 MB
    # of an 18,000-sample one. Scales sharing a frame size therefore go through one call (in
    # sub-batches no larger than the output or _FCWT_MAX_OUT bins), as fCWT log scales from the
    # largest down: each band then contains the previous one, so no bin of O1 (which fCWT zeroes only
    # once per call) is left stale. Scales that are not log-spaced go one per call.
    morl = mod.Morlet(float(f0 / (2 * np.pi)))
    obj = mod.FCWT(morl, 1, False, True)  # one thread: its thread split drops a few bins per thread
    y32 = y.astype(np.float32)
    out = np.zeros((a.size, P), dtype=np.complex64)
    tiles = np.array([_fcwt_tiles(P, bi) for bi in b])
    for k in np.unique(tiles):
        yk = np.tile(y32, int(k))
        frame = int(k) * P
        most = max(1, max(_FCWT_MAX_OUT, out.size) // frame)
        for rows in _fcwt_batches(np.flatnonzero(tiles == k), b, most):
            bs = b[rows]
            if rows.size == 1:
                sc = mod.Scales(morl, mod.FCWT_LINSCALES, 1, float(1 / bs[0]), float(1 / bs[0]), 1)
            else:  # fCWT's log scales run from fs/f1 to fs/f0: largest first
                sc = mod.Scales(morl, mod.FCWT_LOGSCALES, 1, float(1 / bs[-1]), float(1 / bs[0]),
                                int(rows.size))
            got = np.zeros(rows.size, dtype=np.float32)
            sc.getScales(got)
            if not np.allclose(got, bs, rtol=1e-5, atol=0):
                raise RuntimeError(f"internal: fCWT built scales {got} for {bs}")
            buf = np.zeros((rows.size, frame), dtype=np.complex64)
            obj.cwt(yk, sc, buf)
            out[rows] = buf[:, :P] * np.sqrt(a[rows]).astype(np.float32)[:, None]
    return out


def _fcwt_tiles(P: int, b: float) -> int:
    """Copies ``k`` (a power of two) of the period to tile for scale ``b`` (see :func:`_fcwt`)."""
    k = 1
    while k * P < max(_FCWT_MIN_FRAME, 32 * b):
        k *= 2
    return k


def _fcwt_batches(idx: np.ndarray, b: np.ndarray, most: int) -> list[np.ndarray]:
    """Split rows ``idx`` into fCWT calls: runs of log-spaced scales, largest first, <= ``most``."""
    order = idx[np.argsort(-b[idx], kind="stable")]
    lb = np.log(b[order])
    step = np.diff(lb)
    if order.size >= 2 and np.all(step < 0) and np.ptp(step) <= 1e-9 * max(1.0, float(np.abs(lb).max())):
        return [order[i : i + most] for i in range(0, order.size, most)]
    return [order[i : i + 1] for i in range(order.size)]


#: Smallest frame (bins) fCWT's mother is generated on (its frequency error is ~2 pi / frame).
_FCWT_MIN_FRAME = 2**16
#: Most output bins (scales x frame, complex64: 64 MB) of one fCWT call, unless the output is larger.
_FCWT_MAX_OUT = 2**23

_RUNNERS = {"pycwt": _pycwt, "pywavelets": _pywavelets, "ssqueezepy": _ssqueezepy, "fcwt": _fcwt}
