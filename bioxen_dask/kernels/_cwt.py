"""Continuous wavelet transform of plain arrays, batched over leading axes.

How the work is laid out (see ``bioxen-dask bench cwt`` for the numbers behind it):

- ``linear``/``symmetric``/``valid`` bands of long records run by **overlap-save** (see
  :mod:`._plan`): short, cache-resident FFTs over segments, filter banks ``nfft`` long.
- Frequency-defined bands (``pycwt``/``circular``/``grinsted``) need one FFT of the whole
  (padded) record per scale. Their filter-bank rows are stored trimmed to the band where they
  are not *exactly* zero (a Morlet row at a large scale is non-zero on a few percent of the
  spectrum once ``exp`` underflows), which keeps record-long banks within the cache and the
  products short; long inverse FFTs on the CPU use the "four-step" factorisation
  ``N = N1*N2`` (two passes of cache-sized FFTs and a twiddle product), ~1.6x faster than
  pocketfft's single long transform at 1e6 points in single precision. Both are exact
  rearrangements of the same sums (equal to rounding).
- The spectrum of the signal is computed once per band and multiplied into a preallocated,
  reused work buffer; the inverse FFT runs in place (``overwrite_x``) and the kept samples
  are copied straight into the output.
- ``workers`` threads split the work by tiles (CPU); ``None`` keeps one thread, the right
  default inside Dask workers whose threads already run blocks in parallel.
"""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from ..grid import DEFAULT_TOL, ScaleGrid
from ._cache import filter_cache
from ._plan import Band, check_boundary, plan_bands, reach
from ._xp import array_namespace, device_key, fft_kwargs, fft_namespace

__all__ = ["cwt", "exact_cwt_into", "resolve_dtype"]

#: Bytes of work buffer per tile on the CPU (a few L2's worth: the tile's spectrum, product
#: and inverse FFT stay in cache while all scales of a band pass over it).
_TILE_BYTES_CPU = 4 * 2**20
#: On a GPU fewer, larger launches are what matters.
_TILE_BYTES_GPU = 256 * 2**20
#: Rows per FFT call at least (pocketfft vectorises across rows).
_MIN_ROWS = 8
#: Frequency-defined frames at least this long use trimmed banks and (CPU) the four-step FFT.
_LONG_FRAME = 2**16
#: Long frames at least this long use the four-step inverse FFT (CPU).
_FOUR_STEP_MIN = 2**19
#: Work buffer per long-frame tile (bytes).
_LONG_TILE_BYTES = 32 * 2**20


def resolve_dtype(dtype: Any) -> tuple[np.dtype, np.dtype]:
    """(real, complex) dtypes for ``"float32"``/``"float64"`` (or NumPy equivalents)."""
    try:
        real = np.dtype(dtype)
    except TypeError:
        real = None
    if real not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}.")
    return real, np.result_type(real, np.complex64)


# --- threads ------------------------------------------------------------------------------
_POOLS: dict[tuple[int, int], ThreadPoolExecutor] = {}  # (pid, threads): a forked child makes its own
_POOLS_LOCK = threading.Lock()


#: Outputs (points) below which a kernel call stays on one thread whatever ``workers`` says:
#: below ~1e6 points the threads' start-up and hand-offs cost more than they share
#: (``bioxen-dask bench wct``: 4,000 samples x 133 scales ran slower on 2 threads).
MIN_THREADED_POINTS = 2**20


def resolve_workers(workers: int | None, xp=np, points: int | None = None) -> int:
    """Threads to use: ``None`` -> 1; ``-1`` -> all CPUs; ``-k`` -> ``cpus + 1 - k`` (SciPy's rule).

    Always 1 for device (CuPy) arrays, and for calls of fewer than
    :data:`MIN_THREADED_POINTS` output ``points`` (when given).

    Examples
    --------
    >>> resolve_workers(None), resolve_workers(3), resolve_workers(3, points=1000)
    (1, 3, 1)
    """
    if xp is not np or workers is None:
        return 1
    w = int(workers)
    if w == 0:
        raise ValueError("workers must be a non-zero integer (or None), e.g. workers=-1 for all CPUs.")
    if w < 0:
        w = max(1, (os.cpu_count() or 1) + 1 + w)
    if points is not None and points < MIN_THREADED_POINTS:
        return 1
    return w


_LOCAL = threading.local()
#: Work buffers up to this size stay allocated per thread between calls: re-allocating them
#: each call costs page faults (glibc maps large blocks afresh), ~2x at 1e3-1e4 samples.
_KEEP_SCRATCH_BYTES = 8 * 2**20


def _thread_scratch() -> dict:
    scratch = getattr(_LOCAL, "scratch", None)
    if scratch is None:
        scratch = _LOCAL.scratch = {}
    return scratch


def _release_scratch(scratch: dict) -> None:
    for key in [k for k, v in scratch.items() if int(v.nbytes) > _KEEP_SCRATCH_BYTES]:
        del scratch[key]


def _run(tasks: Sequence[Any], fn: Callable[[Any, dict], None], nthreads: int, *, runs: int | None = None) -> None:
    """Run ``fn(task, scratch)`` for all tasks, split over ``nthreads`` (one scratch dict each,
    kept per thread; buffers above ``_KEEP_SCRATCH_BYTES`` are released afterwards).

    Threads take ``runs`` runs of consecutive tasks in turn (default ``4 * nthreads``);
    ``runs=len(tasks)`` schedules task by task (heavy tasks of uneven cost, longest first)."""
    if nthreads <= 1 or len(tasks) <= 1:
        scratch = _thread_scratch()
        try:
            for t in tasks:
                fn(t, scratch)
        finally:
            _release_scratch(scratch)
        return
    nthreads = min(nthreads, len(tasks))
    key = (os.getpid(), nthreads)
    with _POOLS_LOCK:
        pool = _POOLS.get(key)
        if pool is None:
            pool = _POOLS[key] = ThreadPoolExecutor(nthreads, thread_name_prefix="bioxen-fft")
    # Dynamic scheduling over runs of consecutive tasks (consecutive tasks share cached
    # data): a thread slowed by other load on its core takes fewer runs.
    n_runs = min(len(tasks), 4 * nthreads if runs is None else max(1, int(runs)))
    bounds = [len(tasks) * i // n_runs for i in range(n_runs + 1)]
    runs = iter(range(n_runs))
    lock = threading.Lock()

    def worker(_):
        scratch = _thread_scratch()
        try:
            while True:
                with lock:
                    r = next(runs, None)
                if r is None:
                    return
                for t in tasks[bounds[r] : bounds[r + 1]]:
                    fn(t, scratch)
        finally:
            _release_scratch(scratch)

    list(pool.map(worker, range(nthreads)))


def run_pooled(pooled: Sequence[tuple[Callable[[Any, dict], None], Any]], nthreads: int) -> None:
    """:func:`_run` over ``(run, task)`` pairs from several bands at once.

    A band of a dozen scales is often one cache-sized tile; pooling the bands' tiles is what
    gives ``nthreads`` threads work to share without cutting FFT batches below pocketfft's
    vector width.
    """
    _run(pooled, lambda item, scratch: item[0](item[1], scratch), nthreads)


def _scratch(scratch: dict, xp, shape: tuple[int, ...], dtype, name: str = "work") -> Any:
    """A reusable work buffer (flat, grown on demand) viewed as ``shape``."""
    size = math.prod(shape)
    key = (name, np.dtype(dtype).str)
    buf = scratch.get(key)
    if buf is None or buf.size < size:
        buf = scratch[key] = xp.empty(size, dtype=dtype)
    return buf[:size].reshape(shape)


# --- filter banks ---------------------------------------------------------------------------
def flush_subnormals(a: np.ndarray) -> np.ndarray:
    """Set subnormal entries (``|v| < finfo.tiny``, e.g. the underflowing tail of a Gaussian
    spectrum) to zero, in place. Their contribution to any result is below ``1e-300`` (float64)
    or ``1e-37`` (float32) absolute, far below rounding, while arithmetic on them runs ~100x
    slower on x86 and they would keep filter rows from being trimmed."""
    tiny = np.finfo(a.real.dtype).tiny
    if np.iscomplexobj(a):
        a.real[np.abs(a.real) < tiny] = 0
        a.imag[np.abs(a.imag) < tiny] = 0
    else:
        a[np.abs(a) < tiny] = 0
    return a


def _hermitian(kern: np.ndarray) -> bool:
    """True when every row satisfies ``k[-t] == conj(k[t])`` (to 1e-13), so its DFT is real."""
    scale = np.abs(kern).max() or 1.0
    return bool(np.abs(kern - np.conjugate(kern[:, ::-1])).max() <= 1e-13 * scale)


def _wavelet_filters(
    grid: ScaleGrid, band: Band, nfft: int, real: np.dtype, xp, sampled_support: np.ndarray | None = None,
    positive_nyquist: bool = False, max_lag: int | None = None,
) -> Any:
    """Conjugated, normalised wavelet spectra ``(n_band_scales, nfft)``, cached per device.

    Frequency-defined (``sampled_support is None``, the ``pycwt``/``circular`` modes):
    ``sqrt(s * w[1] * N) * conj(psi_ft(s * w))`` with ``w = 2*pi*fftfreq(N, dt)`` — pycwt's
    formula, normalisation ``sqrt(2*pi*s/dt)`` (Torrence & Compo eq. 6). Its time kernel is
    band-limited: at the smallest scales the Morlet spectrum is cut at Nyquist and the kernel
    decays only like 1/t, so no finite padding contains it.

    Time-defined (``linear``/``symmetric``/``valid``): the DFT of the wavelet sampled in time,
    ``h[t] = sqrt(dt/s) * conj(psi(-t*dt/s))`` for ``|t| <= support`` (samples) and zero
    beyond. Its support is compact, so padding by the support gives an exact linear
    convolution and halos of that width make chunked transforms exact. ``max_lag`` drops the
    taps no output of the record reaches (:func:`._plan.reach`). For Morlet, from ~4 samples
    per scale up, both definitions agree to ~1e-9; Paul's spectrum decays only exponentially,
    so its agree to ~1e-2 at 4 samples per scale, ~1e-6 at 8 and ~1e-9 at 12. At pycwt's
    smallest scale (the 2-dt period) the sampling does not resolve the wavelet and the two
    differ by about the whole coefficient: ``boundary="pycwt"`` gives pycwt's numbers there
    (``tests/test_boundaries.py`` bounds all of these). Kernels that are Hermitian in time (Morlet,
    Paul of even order, DOG of even order) have a real spectrum, stored as real (half the
    bytes; the imaginary part of their DFT is rounding only).
    """

    def build():
        s = grid.scales[band.start : band.stop, None]
        if sampled_support is None:
            w = 2 * np.pi * np.fft.fftfreq(nfft, grid.dt)
            if positive_nyquist and nfft % 2 == 0:
                w[nfft // 2] = -w[nfft // 2]  # wave_bases.m puts Nyquist at +pi/dt
            bank = (s * w[1] * nfft) ** 0.5 * np.conjugate(grid.wavelet.psi_ft(s * w, np))
        else:
            h = np.asarray(sampled_support[band.start : band.stop])
            lag = int(h.max()) if max_lag is None else min(int(h.max()), int(max_lag))
            taus = np.arange(-lag, lag + 1)
            kern = np.sqrt(grid.dt / s) * np.conjugate(grid.wavelet.psi(-taus[None, :] * grid.dt / s))
            kern = np.where(np.abs(taus)[None, :] <= h[:, None], kern, 0)
            frame = np.zeros((s.shape[0], nfft), dtype=complex)
            frame[:, taus % nfft] = kern
            bank = np.fft.fft(frame, axis=-1)
            if _hermitian(kern):
                bank = bank.real
        if np.iscomplexobj(bank) and not np.any(bank.imag):
            bank = bank.real
        cdt = real if not np.iscomplexobj(bank) else np.result_type(real, np.complex64)
        return xp.asarray(flush_subnormals(bank.astype(cdt, copy=False)))

    key = ("cwt", grid.key, band.start, band.stop, nfft, real.str, sampled_support is not None,
           positive_nyquist, max_lag, device_key(xp))
    return filter_cache.get(key, build)


@dataclass(frozen=True)
class _TrimmedBank:
    """Filter rows stored only where they are not exactly zero (a circular index interval).

    Row ``j`` equals ``values[j]`` on ``(starts[j] + arange(len(values[j]))) % nfft`` and is
    exactly 0 elsewhere.
    """

    nfft: int
    starts: tuple[int, ...]
    values: tuple[Any, ...]

    @property
    def nbytes(self) -> int:
        return int(sum(int(v.nbytes) for v in self.values))


def _circular_support(row: np.ndarray) -> tuple[int, int]:
    """(start, length) of the shortest circular interval holding every non-zero of ``row``."""
    nz = np.flatnonzero(row)
    n = row.size
    if nz.size == 0:
        return 0, 0
    if nz.size == n:
        return 0, n
    gaps = np.diff(nz)
    g = int(np.argmax(gaps)) if gaps.size else -1
    wrap = int(nz[0] + n - nz[-1])
    if g < 0 or wrap >= gaps[g]:
        return int(nz[0]), int(nz[-1] - nz[0] + 1)
    start = int(nz[g + 1])
    return start, int(n - gaps[g] + 1)


def _trimmed_wavelet_filters(
    grid: ScaleGrid, band: Band, real: np.dtype, xp, positive_nyquist: bool
) -> _TrimmedBank:
    """Frequency-defined bank (as :func:`_wavelet_filters`), rows trimmed to their non-zeros.

    Built one row at a time (float64, then cast), so building never holds the whole
    ``(scales, nfft)`` bank; exact zeros (``exp`` underflow, the analytic step) are dropped.
    """
    nfft = band.nfft

    def build():
        w = 2 * np.pi * np.fft.fftfreq(nfft, grid.dt)
        if positive_nyquist and nfft % 2 == 0:
            w[nfft // 2] = -w[nfft // 2]
        cplx = np.result_type(real, np.complex64)
        starts, values = [], []
        for s in grid.scales[band.start : band.stop]:
            with np.errstate(under="ignore"):
                row = (s * w[1] * nfft) ** 0.5 * np.conjugate(grid.wavelet.psi_ft(s * w, np))
            if np.iscomplexobj(row) and not np.any(row.imag):
                row = row.real
            row = flush_subnormals(row.astype(real if not np.iscomplexobj(row) else cplx))
            start, length = _circular_support(row)
            idx = (start + np.arange(length)) % nfft
            starts.append(start)
            values.append(xp.asarray(np.ascontiguousarray(row[idx])))
        return _TrimmedBank(nfft, tuple(starts), tuple(values))

    key = ("cwt-trim", grid.key, band.start, band.stop, nfft, real.str, positive_nyquist, device_key(xp))
    return filter_cache.get(key, build)


def _four_step_factors(nfft: int) -> tuple[int, int] | None:
    """``(N1, N2)`` with ``N1*N2 == nfft``, ``N1`` the divisor nearest ``sqrt(nfft)``, both >= 64."""
    r = int(math.isqrt(nfft))
    for d in range(r, 63, -1):
        if nfft % d == 0:
            return (d, nfft // d) if nfft // d >= 64 else None
    return None


def _twiddles(nfft: int, n1: int, cplx: np.dtype, xp) -> Any:
    """``exp(2j*pi*k1*t2/N)`` as ``(N2, N1)`` for the inverse four-step FFT (cached)."""

    def build():
        n2 = nfft // n1
        prod = (np.arange(n2, dtype=np.int64)[:, None] * np.arange(n1, dtype=np.int64)[None, :]) % nfft
        return xp.asarray(np.exp((2j * np.pi / nfft) * prod).astype(cplx))

    return filter_cache.get(("twiddle", nfft, n1, np.dtype(cplx).str, device_key(xp)), build)


# --- the transform ------------------------------------------------------------------------
def cwt(
    x: Any,
    grid: ScaleGrid,
    *,
    boundary: str = "linear",
    tol: float = DEFAULT_TOL,
    remove_mean: bool = False,
    dtype: Any = "float32",
    workers: int | None = None,
    method: str = "exact",
) -> Any:
    """Continuous wavelet transform of real signals along their last axis.

    Parameters
    ----------
    x : ndarray (NumPy or CuPy), shape ``(..., time)``
        Real, finite samples. Leading axes (rois, surrogates) are batched.
    grid : ScaleGrid
        Scales, ``dt`` and mother wavelet.
    boundary : {"linear", "symmetric", "circular", "valid", "pycwt", "grinsted"}
        ``linear`` (default): zero padding long enough that nothing wraps around, i.e. a
        linear convolution with the wavelet truncated at ``tol``. ``symmetric``: the record
        is mirrored at both ends (``numpy.pad(mode="symmetric")``). ``circular``: no padding,
        the record wraps around. ``valid``: as ``linear``, then NaN wherever the wavelet
        overhangs an edge. ``pycwt``: zero padding to the next power of two, bit-compatible
        with pycwt 0.5.0b0 (partial wrap-around when the wavelet is long). ``grinsted``: zero
        padding to ``2**(fix(log2(n) + 0.4999) + 1)`` with the Nyquist frequency taken as
        positive, as Torrence & Compo's ``wavelet.m`` in Grinsted's toolbox.
    tol : float
        Relative envelope tolerance that sets padding lengths (``linear``/``symmetric``) and
        the ``valid`` region.
    remove_mean : bool
        Subtract each signal's mean first (Grinsted/Torrence & Compo). pycwt does not.
    dtype : {"float32", "float64"}
        Working precision; output is complex64 or complex128.
    workers : int, optional
        CPU threads (``-1``: all CPUs). ``None`` (default) uses one thread, which is right
        inside Dask workers (their threads already run blocks in parallel); interactive
        in-process use can pass ``-1``. Ignored for CuPy arrays.
    method : {"exact", "multirate"}
        ``"exact"`` (default): every scale at full rate. ``"multirate"`` (opt-in; NumPy,
        Morlet, float32, ``linear``/``valid``): the band-limited scales on decimated copies of
        the record, interpolated back (:mod:`._multirate_cwt`), within 1e-6 of each scale's
        largest coefficient of the exact transform (see
        :func:`bioxen_dask.wavelet_transform`), several times faster on grids that reach
        the record length (pycwt's default kind).

    Returns
    -------
    ndarray, shape ``(..., n_scales, time)``, complex
        Wavelet coefficients, on the same device as ``x``.

    Examples
    --------
    >>> import numpy as np
    >>> from bioxen_dask.grid import make_grid
    >>> t = np.arange(512)
    >>> W = cwt(np.sin(2 * np.pi * t / 32), make_grid(512, 1.0), dtype="float64")
    >>> W.shape
    (98, 512)
    """
    boundary = check_boundary(boundary)
    real, cplx = resolve_dtype(dtype)
    xp = array_namespace(x)
    if str(method).lower() not in ("exact", "multirate"):
        raise ValueError(f"unknown method {method!r}; choose 'exact' or 'multirate'.")
    if str(method).lower() == "multirate":
        if xp is not np or real != np.float32:
            raise ValueError("method='multirate' runs on NumPy arrays in float32; use method='exact' for CuPy "
                             "arrays or float64.")
        from ._multirate_cwt import multirate_cwt

        return multirate_cwt(x, grid, boundary=boundary, tol=tol, remove_mean=remove_mean, workers=workers)
    x = xp.asarray(x)
    if x.ndim < 1 or x.shape[-1] < 1:
        raise ValueError("x must have a non-empty last (time) axis.")
    # the forward FFTs run on float64 records (rounded per bin, :func:`_record_spectrum`): a
    # float32 copy of a float64 record would already hold a white rounding floor in every bin
    x = x.astype(np.float64, copy=False)
    if remove_mean:
        x = x - x.mean(axis=-1, keepdims=True)
    n = x.shape[-1]
    lead = x.shape[:-1]
    x2 = x.reshape(math.prod(lead), n)
    out = xp.empty((x2.shape[0], grid.n_scales, n), dtype=cplx)
    exact_cwt_into(out, x2, grid, boundary=boundary, tol=tol, dtype=real, workers=workers)
    if boundary == "valid":
        mask_edges(out, grid.wavelet_support(tol), xp)
    return out.reshape(lead + (grid.n_scales, n))


def exact_cwt_into(out: Any, x2: Any, grid: ScaleGrid, *, boundary: str, tol: float, dtype: Any,
                   workers: int | None) -> None:
    """The exact transform of float64 records ``x2 (batch, n)`` written into ``out (batch,
    n_scales, n)`` (a preallocated array or a view of one, of the complex dtype of ``dtype``);
    ``valid`` is not masked here. :func:`cwt` is this with the checks, the output and the mask."""
    real, cplx = resolve_dtype(dtype)
    xp = array_namespace(x2)
    fft = fft_namespace(xp)
    nb, n = x2.shape
    nthreads = resolve_workers(workers, xp, points=nb * n * grid.n_scales)
    kw = fft_kwargs(xp, workers if nthreads > 1 else None)
    supports = grid.wavelet_support(tol)
    frequency_defined = boundary in ("pycwt", "circular", "grinsted")
    needed = reach(supports, n, boundary)
    max_lag = n - 1 if boundary in ("linear", "valid") and needed.max() < supports.max() else None
    pooled: list[tuple[Callable[[Any, dict], None], Any]] = []  # every band's tiles, run together
    for band in plan_bands(n, needed, boundary):
        if frequency_defined and band.nfft >= _LONG_FRAME:
            bank = _trimmed_wavelet_filters(grid, band, real, xp, positive_nyquist=boundary == "grinsted")
            _long_band(x2, out, band, bank, n, cplx, xp, fft, nthreads)
            continue
        bank = _wavelet_filters(grid, band, band.nfft, real, xp, None if frequency_defined else supports,
                                positive_nyquist=boundary == "grinsted", max_lag=max_lag)
        spec = _segment_spectra(x2, band, n, xp, fft, kw, cplx)
        pooled += _bank_tasks(spec, bank, out, band, n, cplx, xp, fft)
        if nthreads <= 1:  # one band's spectra alive at a time
            run_pooled(pooled, 1)
            pooled = []
    run_pooled(pooled, nthreads)


def _segment_frames(x: Any, band: Band, n: int, xp) -> Any:
    """The band's FFT frames of ``x (..., n)``: ``(..., n_segments, nfft)``.

    One frame (``hop == 0``): the record at ``left`` (mirrored ``pad`` samples each side),
    to be zero filled to ``nfft`` by the FFT (``n=nfft``). Segmented: frame ``i`` is the
    extended record's samples ``[i*hop, i*hop + nfft)``, the record starting at ``left``
    (zeros, or ``pad`` mirrored samples, around it). NumPy frames are a strided view.
    """
    lead = x.shape[:-1]
    xb = x
    if band.pad:
        xb = xp.pad(x, [(0, 0)] * len(lead) + [(band.pad, band.pad)], mode="symmetric")
    if not band.hop:
        return xb[..., None, :]
    n_seg = -(-n // band.hop)
    total = (n_seg - 1) * band.hop + band.nfft
    pre = band.left - band.pad
    ext = xp.zeros(lead + (total,), dtype=x.dtype)
    m = min(xb.shape[-1], total - pre)
    ext[..., pre : pre + m] = xb[..., :m]
    if xp is np:  # a strided view; the FFT reads it directly
        return np.lib.stride_tricks.sliding_window_view(ext, band.nfft, axis=-1)[..., :: band.hop, :]
    idx = xp.asarray((np.arange(n_seg) * band.hop)[:, None] + np.arange(band.nfft)[None, :])
    return ext[..., idx]


def _record_spectrum(frames: Any, nfft: int, cplx: np.dtype, xp, fft, kw: dict | None = None) -> Any:
    """FFT of real frames along the last axis, computed in float64 and rounded per bin to
    ``cplx``.

    A float32 FFT spreads its rounding, ~1e-7 of the record's whole energy, over every bin:
    the transform at a scale where the record has little power (a noiseless stimulus far from
    its periods, the small scales of a red signal) would be that rounding, and its coherence
    noise (0.18 instead of 0.0003 at the smallest period of a sum of cosines). Rounded per bin,
    each bin keeps its own relative precision; the forward FFT is one per frame, shared by all
    the scales of a band, so the float64 pass costs little.
    """
    spec = fft.fft(frames.astype(np.float64, copy=False), n=nfft, axis=-1, **(kw or {}))
    return spec.astype(cplx, copy=False)


def _segment_spectra(x2: Any, band: Band, n: int, xp, fft, kw: dict, cplx: np.dtype) -> Any:
    """FFT of every frame: ``(batch, n_segments, nfft)`` complex (:func:`_record_spectrum`)."""
    return _record_spectrum(_segment_frames(x2, band, n, xp), band.nfft, cplx, xp, fft, kw)


def _bank_tasks(spec: Any, bank: Any, out: Any, band: Band, n: int, cplx: np.dtype, xp,
                fft) -> list[tuple[Callable[[Any, dict], None], Any]]:
    """The tiles of ``out[:, band scales] = ifft(spec * bank)`` kept samples, as
    ``(run, task)`` pairs for :func:`run_pooled`.

    ``spec`` is ``(batch, n_segments, nfft)``. Tiles are groups of ``(batch, segment)`` rows
    times groups of scales, sized to keep the work buffer in cache; each tile's product is
    written into a reused buffer, inverse-transformed in place and copied into ``out``.
    """
    nb, n_seg, nfft = spec.shape
    hop = band.hop or n
    n_full = n // hop if band.hop else 0  # segments whose ``hop`` samples all lie in the record
    rem = n - n_full * hop
    tile_bytes = _TILE_BYTES_CPU if xp is np else _TILE_BYTES_GPU
    rows = max(_MIN_ROWS, tile_bytes // (nfft * cplx.itemsize))
    tiles: list[tuple[int, int, int, int]] = []
    if n_full:
        if n_full >= rows:
            tiles += [(b, b + 1, s, min(s + rows, n_full)) for b in range(nb) for s in range(0, n_full, rows)]
        else:
            per = max(1, rows // n_full)
            tiles += [(b, min(b + per, nb), 0, n_full) for b in range(0, nb, per)]
    if rem:
        tiles += [(b, min(b + rows, nb), n_full, n_full + 1) for b in range(0, nb, rows)]
    n_sc = band.stop - band.start
    left = band.left
    # tasks: (tile, group of scales); consecutive tasks share the tile's spectrum in cache
    tasks = []
    for b0, b1, s0, s1 in tiles:
        per = max(1, rows // ((b1 - b0) * (s1 - s0)))
        tasks += [(b0, b1, s0, s1, j0, min(j0 + per, n_sc)) for j0 in range(0, n_sc, per)]

    def run(task, scratch):
        b0, b1, s0, s1, j0, j1 = task
        bb, ss = b1 - b0, s1 - s0
        sp = spec[b0:b1, s0:s1][None]
        kk = j1 - j0
        w = _scratch(scratch, xp, (kk, bb, ss, nfft), cplx)
        xp.multiply(sp, bank[j0:j1, None, None, :], out=w)
        w = fft.ifft(w, axis=-1, overwrite_x=True)
        c0, c1 = band.start + j0, band.start + j1
        if s0 < n_full:
            dst = out[b0:b1, c0:c1, s0 * hop : s1 * hop].reshape(bb, kk, ss, hop)
            dst[...] = w[..., left : left + hop].transpose(1, 0, 2, 3)
        else:
            out[b0:b1, c0:c1, n_full * hop :] = w[:, :, 0, left : left + rem].transpose(1, 0, 2)

    return [(run, task) for task in tasks]


def _long_band(x2: Any, out: Any, band: Band, bank: _TrimmedBank, n: int, cplx: np.dtype, xp, fft,
               nthreads: int) -> None:
    """One record-long frame per scale (frequency-defined modes), with a trimmed bank.

    The product is formed only where the filter row is non-zero (zeros elsewhere), a few
    scales per inverse-FFT call (pocketfft vectorises across rows). Frames of at least
    ``_FOUR_STEP_MIN`` points use the four-step ``N1 x N2`` factorisation on the CPU, whose
    last pass lands transposed straight in ``out``.
    """
    nfft = band.nfft
    nb = x2.shape[0]
    spec = _record_spectrum(x2, nfft, cplx, xp, fft)
    factors = _four_step_factors(nfft) if (xp is np and nfft >= _FOUR_STEP_MIN) else None
    tw = _twiddles(nfft, factors[0], cplx, xp) if factors else None
    pad = 32 if factors and (factors[0] * cplx.itemsize) % 1024 == 0 else 0
    per_call = max(1, _LONG_TILE_BYTES // (nfft * cplx.itemsize))
    bb = min(nb, per_call)
    kk = max(1, per_call // bb)
    n_sc = band.stop - band.start
    tasks = [(j, min(j + kk, n_sc), b, min(b + bb, nb)) for j in range(0, n_sc, kk) for b in range(0, nb, bb)]

    def run(task, scratch):
        j0, j1, b0, b1 = task
        sp = spec[b0:b1]
        w = _scratch(scratch, xp, (j1 - j0, b1 - b0, nfft), cplx)
        for r, j in enumerate(range(j0, j1)):
            _trimmed_product(w[r], sp, bank.starts[j], bank.values[j], nfft, xp)
        c0, c1 = band.start + j0, band.start + j1
        if factors is None:
            w = fft.ifft(w, axis=-1, overwrite_x=True)
            out[b0:b1, c0:c1, :] = w[..., band.left : band.left + n].transpose(1, 0, 2)
            return
        n1, n2 = factors
        a = w.reshape(j1 - j0, b1 - b0, n2, n1)
        if pad:  # power-of-two row strides alias in the caches during the strided pass
            a = _scratch(scratch, xp, (j1 - j0, b1 - b0, n2, n1 + pad), cplx, "padded")[..., :n1]
            a[...] = w.reshape(j1 - j0, b1 - b0, n2, n1)
        a = fft.ifft(a, axis=-2, overwrite_x=True)  # over k2, for every k1
        a *= tw
        a = fft.ifft(a, axis=-1, overwrite_x=True)  # over k1: a[t2, t1] = y[t2 + N2*t1]
        y = a.transpose(1, 0, 3, 2)  # (batch, scale, N1, N2): y[t1, t2], row-major = time order
        q, r = divmod(n, n2)
        if q:
            out[b0:b1, c0:c1, : q * n2].reshape(b1 - b0, j1 - j0, q, n2)[...] = y[:, :, :q, :]
        if r:
            out[b0:b1, c0:c1, q * n2 :] = y[:, :, q, :r]

    _run(tasks, run, nthreads)


def _trimmed_product(dst: Any, spec: Any, start: int, vals: Any, nfft: int, xp) -> None:
    """``dst = spec * row`` for a trimmed filter row (``vals`` on a circular interval)."""
    length = vals.shape[-1]
    stop = start + length
    if length == nfft:
        xp.multiply(spec, vals, out=dst)
    elif stop <= nfft:
        dst[..., :start] = 0
        xp.multiply(spec[..., start:stop], vals, out=dst[..., start:stop])
        dst[..., stop:] = 0
    else:
        k = nfft - start
        xp.multiply(spec[..., start:], vals[:k], out=dst[..., start:])
        xp.multiply(spec[..., : stop - nfft], vals[k:], out=dst[..., : stop - nfft])
        dst[..., stop - nfft : start] = 0


def mask_edges(values: Any, supports: np.ndarray, xp, *, start: bool = True, end: bool = True) -> Any:
    """Set NaN, per scale (axis -2), the first (``start``) and last (``end``) ``supports[j]``
    samples (in place)."""
    n = values.shape[-1]
    for j, h in enumerate(np.asarray(supports)):
        h = int(min(h, n))
        if start:
            values[..., j, :h] = np.nan
        if end:
            values[..., j, n - h :] = np.nan
    return values

