"""Null models for coherence significance: surrogate pair generators and their seeds.

A null model draws one surrogate *pair* ``(y1, y2)`` from a ``numpy.random.Generator``.
Every surrogate index ``i`` of a Monte Carlo run gets its own generator, seeded by child
``i`` of the run's :class:`numpy.random.SeedSequence` (:func:`surrogate_seed`), so a
surrogate's numbers depend on ``(seed, i)`` only: not on the batch it is computed in, nor
on the worker, thread or batch size.

Three models:

- :class:`AR1Null`: independent AR(1) red noise with each signal's lag-1 coefficient
  (Grinsted et al. 2004; what pycwt's ``wct_significance`` intends).
- :class:`FourierNull`: phase-randomised copies of the two actual traces (Theiler et al.
  1992): each keeps its own amplitude spectrum, the two are independent.
- :class:`IAAFTNull`: iterated amplitude-adjusted Fourier surrogates (Schreiber & Schmitz
  1996): each keeps its spectrum *and* its value distribution (useful for skewed,
  spiky calcium traces).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._ar1 import rednoise

__all__ = [
    "AR1Null",
    "FourierNull",
    "IAAFTNull",
    "NullModel",
    "as_seed_sequence",
    "surrogate_seed",
    "surrogate_seeds",
]


def as_seed_sequence(seed: int | np.random.SeedSequence | None) -> np.random.SeedSequence:
    """The run's root ``SeedSequence`` (fresh OS entropy for ``None``; recorded in results)."""
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if seed is not None and (not isinstance(seed, (int, np.integer)) or seed < 0):
        raise ValueError(f"seed must be a non-negative integer, a SeedSequence or None, got {seed!r}.")
    return np.random.SeedSequence(None if seed is None else int(seed))


def surrogate_seed(root: np.random.SeedSequence, index: int) -> np.random.SeedSequence:
    """Child ``index`` of ``root``: identical to ``root.spawn(index + 1)[index]`` on a fresh root.

    Computed directly from ``(entropy, spawn_key + (index,))``, so it does not depend on how
    many children were spawned before (``SeedSequence.spawn`` is stateful).

    Parameters
    ----------
    root : numpy.random.SeedSequence
        The run's root seed.
    index : int
        Surrogate index.

    Returns
    -------
    numpy.random.SeedSequence
        The surrogate's own seed.

    Examples
    --------
    >>> import numpy as np
    >>> root = np.random.SeedSequence(7)
    >>> a = surrogate_seed(root, 3).generate_state(2)
    >>> b = np.random.SeedSequence(7).spawn(4)[3].generate_state(2)
    >>> bool((a == b).all())
    True
    """
    return np.random.SeedSequence(
        root.entropy, spawn_key=tuple(root.spawn_key) + (int(index),), pool_size=root.pool_size
    )


def surrogate_seeds(seed: int | np.random.SeedSequence | None, count: int) -> list[np.random.SeedSequence]:
    """One independent ``SeedSequence`` per surrogate index (batch-size independent).

    Parameters
    ----------
    seed : int, SeedSequence or None
        Root seed.
    count : int
        Number of surrogates.

    Returns
    -------
    list of numpy.random.SeedSequence
        ``surrogate_seed(root, i)`` for ``i`` in ``range(count)``.
    """
    root = as_seed_sequence(seed)
    return [surrogate_seed(root, i) for i in range(int(count))]


class NullModel:
    """Base class: a generator of independent surrogate pairs of a fixed length.

    Subclasses define :attr:`n_samples`, :meth:`pair` and :meth:`describe`.
    """

    #: Whether the surrogates are stationary (their statistics do not depend on the position
    #: in the record), which the multirate engine's short-record shortcut requires.
    stationary: bool = True

    @property
    def n_samples(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def pair(self, rng: np.random.Generator, n_samples: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Draw one surrogate pair (``y1`` first, then ``y2``, from ``rng``)."""
        raise NotImplementedError  # pragma: no cover - abstract

    def describe(self) -> dict[str, Any]:
        """JSON-friendly identity (cache keys, provenance)."""
        raise NotImplementedError  # pragma: no cover - abstract


@dataclass(frozen=True)
class AR1Null(NullModel):
    """Independent AR(1) red-noise pairs ``y[t] = g*y[t-1] + e[t]``.

    Parameters
    ----------
    g1, g2 : float
        Lag-1 coefficients in ``(-1, 1)`` of the two null processes (``0`` is white noise).
        Coherence is symmetric in its two signals, so the pair is stored sorted
        (``g1 <= g2``): ``AR1Null(a, b)`` and ``AR1Null(b, a)`` are the same null and give
        bit-identical results (and share cache entries).
    length : int, optional
        Samples per surrogate. ``None`` leaves it to the caller (pycwt's
        ``ceil(6 * largest scale / dt)``, or the data length for per-time thresholds).

    Examples
    --------
    >>> import numpy as np
    >>> y1, y2 = AR1Null(0.5, 0.0, length=64).pair(np.random.default_rng(0))
    >>> y1.shape, y2.shape
    ((64,), (64,))
    """

    g1: float
    g2: float
    length: int | None = None

    def __post_init__(self) -> None:
        gs = []
        for name in ("g1", "g2"):
            g = float(getattr(self, name))
            if not -1 < g < 1:
                raise ValueError(f"{name} must be an AR(1) coefficient in (-1, 1), got {g!r}.")
            gs.append(g)
        lo, hi = sorted(gs)
        object.__setattr__(self, "g1", lo)
        object.__setattr__(self, "g2", hi)
        if self.length is not None:
            n = self.length
            if (isinstance(n, (bool, str, bytes)) or not isinstance(n, (int, float, np.integer, np.floating))
                    or not np.isfinite(n) or n != int(n) or n < 4):
                raise ValueError(f"length must be a whole number of at least 4 samples, got {n!r}.")
            object.__setattr__(self, "length", int(n))

    @property
    def n_samples(self) -> int:
        if self.length is None:
            raise ValueError("AR1Null has no length; pass n_samples or set length=.")
        return int(self.length)

    def pair(self, rng: np.random.Generator, n_samples: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        n = int(n_samples) if n_samples is not None else self.n_samples
        return rednoise(n, self.g1, rng=rng), rednoise(n, self.g2, rng=rng)

    def describe(self) -> dict[str, Any]:
        return {"method": "ar1", "g1": self.g1, "g2": self.g2}


def _digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a, dtype=np.float64)
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def _as_trace(x: Any, name: str) -> np.ndarray:
    """A private, read-only float64 copy of a trace (the caller may reuse its buffer)."""
    if np.iscomplexobj(x):
        raise ValueError(f"{name} is complex; pass a real trace (e.g. its real part or amplitude).")
    a = np.array(x, dtype=float)  # always a copy
    if a.ndim != 1 or a.size < 4:
        raise ValueError(f"{name} must be a 1-D series of at least 4 samples, got shape {a.shape}.")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} has NaN or inf samples; fill or drop them first.")
    if np.ptp(a) == 0:
        raise ValueError(f"{name} is constant: its coherence with anything is undefined.")
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class FourierNull(NullModel):
    """Phase-randomised surrogates of two traces: same amplitude spectra, independent phases.

    The DC and Nyquist terms are kept; every other Fourier phase is drawn uniformly, for
    ``x1`` first and then for ``x2``. The surrogates are Gaussian and circularly
    stationary, with the traces' periodograms.

    Parameters
    ----------
    x1, x2 : array-like, 1-D, same length
        The two traces being tested: real, finite, not constant, at least 4 samples. They are
        copied, so the caller may reuse its buffers.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(1).standard_normal(128).cumsum()
    >>> y1, y2 = FourierNull(x, x[::-1]).pair(np.random.default_rng(0))
    >>> bool(np.allclose(np.abs(np.fft.rfft(y1)), np.abs(np.fft.rfft(x))))
    True
    """

    x1: np.ndarray = field(repr=False)
    x2: np.ndarray = field(repr=False)

    def __post_init__(self) -> None:
        a = _as_trace(self.x1, "x1")
        b = _as_trace(self.x2, "x2")
        if a.size != b.size:
            raise ValueError(f"x1 and x2 must have the same length, got {a.size} and {b.size}.")
        object.__setattr__(self, "x1", a)
        object.__setattr__(self, "x2", b)

    @property
    def n_samples(self) -> int:
        return int(self.x1.size)

    def _check_length(self, n_samples: int | None) -> None:
        if n_samples is not None and int(n_samples) != self.n_samples:
            raise ValueError(
                f"{type(self).__name__} surrogates have the traces' length {self.n_samples}, "
                f"not {n_samples}."
            )

    def pair(self, rng: np.random.Generator, n_samples: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        self._check_length(n_samples)
        n = self.n_samples
        out = []
        for x in (self.x1, self.x2):
            spec = np.fft.rfft(x)
            new = np.abs(spec) * np.exp(1j * rng.uniform(0.0, 2 * np.pi, spec.size))
            new[0] = spec[0]  # the mean
            if n % 2 == 0:
                new[-1] = spec[-1]  # the (real) Nyquist term
            out.append(np.fft.irfft(new, n=n))
        return out[0], out[1]

    def describe(self) -> dict[str, Any]:
        return {"method": "fourier", "n": self.n_samples, "data": _digest(self.x1, self.x2)}


@dataclass(frozen=True, eq=False)
class IAAFTNull(FourierNull):
    """Iterated amplitude-adjusted Fourier surrogates (Schreiber & Schmitz 1996).

    Each surrogate has exactly the trace's values (rank-reordered) and approximately its
    amplitude spectrum, after ``n_iter`` alternating projections starting from a random
    shuffle. Slower than :class:`FourierNull` (``n_iter`` FFT pairs per surrogate).

    Parameters
    ----------
    x1, x2 : array-like, 1-D, same length
        The two traces being tested (copied).
    n_iter : int
        Iterations (default 100; the spectrum error stops improving long before).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(2).exponential(size=256)
    >>> y1, _ = IAAFTNull(x, x, n_iter=20).pair(np.random.default_rng(0))
    >>> bool(np.array_equal(np.sort(y1), np.sort(x)))
    True
    """

    n_iter: int = 100

    def __post_init__(self) -> None:
        super().__post_init__()
        n = self.n_iter
        if (isinstance(n, (bool, str, bytes)) or not isinstance(n, (int, float, np.integer, np.floating))
                or not np.isfinite(n) or n != int(n) or n < 1):
            raise ValueError(f"n_iter must be a positive whole number of iterations (default 100), got {n!r}; "
                             "use FourierNull for plain phase randomisation.")
        object.__setattr__(self, "n_iter", int(n))

    def pair(self, rng: np.random.Generator, n_samples: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        self._check_length(n_samples)
        out = []
        for x in (self.x1, self.x2):
            amp = np.abs(np.fft.rfft(x))
            sorted_x = np.sort(x)
            y = rng.permutation(x)
            for _ in range(int(self.n_iter)):
                spec = np.fft.rfft(y)
                y = np.fft.irfft(amp * np.exp(1j * np.angle(spec)), n=x.size)
                y = sorted_x[np.argsort(np.argsort(y, kind="stable"), kind="stable")]
            out.append(y)
        return out[0], out[1]

    def describe(self) -> dict[str, Any]:
        return {"method": "iaaft", "n": self.n_samples, "n_iter": int(self.n_iter),
                "data": _digest(self.x1, self.x2)}
