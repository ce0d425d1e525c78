"""Mother wavelets: Fourier transforms, Fourier factors, COI factors and supports.

Each mother wavelet is an immutable, hashable object (so it can key filter-bank caches).
The definitions follow Torrence & Compo (1998) exactly as pycwt 0.5.0b0 implements them;
``Morlet(heaviside=True)`` gives the analytic Morlet of Torrence & Compo and Grinsted's
toolbox (``psi_ft`` multiplied by the unit step ``(w > 0)``), which pycwt omits.

Nothing here knows about arrays on a device, Dask or files: ``psi_ft`` takes an array module
``xp`` so that filter banks can be built directly with NumPy or CuPy.

Examples
--------
>>> from bioxen_dask.wavelets import Morlet, get_wavelet
>>> w = Morlet()
>>> round(w.fourier_factor, 4)
1.033
>>> get_wavelet("paul").name
'paul'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
from scipy.special import gamma as _gamma_fn

__all__ = ["MotherWavelet", "Morlet", "Paul", "DOG", "MexicanHat", "get_wavelet", "WAVELETS"]


@dataclass(frozen=True)
class MotherWavelet:
    """Base class of the mother wavelets (see :class:`Morlet`, :class:`Paul`, :class:`DOG`)."""

    @property
    def name(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    # --- the transform ----------------------------------------------------------------
    def psi_ft(self, w: Any, xp: ModuleType = np) -> Any:
        """Fourier transform of the mother wavelet at angular frequencies ``w`` (rad)."""
        raise NotImplementedError

    def psi(self, t: Any) -> Any:
        """The mother wavelet in time (dimensionless time ``t``, in units of scale)."""
        raise NotImplementedError

    # --- constants --------------------------------------------------------------------
    @property
    def fourier_factor(self) -> float:
        """Fourier period of scale 1 (``flambda`` in pycwt): ``period = fourier_factor * scale``."""
        raise NotImplementedError

    @property
    def coi_factor(self) -> float:
        """Cone-of-influence factor (pycwt's ``coi()``): COI period = fourier_factor*coi_factor*t."""
        raise NotImplementedError

    @property
    def dofmin(self) -> float:
        """Degrees of freedom of one wavelet coefficient (2 for complex, 1 for real)."""
        return 2.0

    @property
    def cdelta(self) -> float | None:
        """Reconstruction factor (Torrence & Compo Table 2); ``None`` if unknown."""
        return None

    @property
    def gamma(self) -> float | None:
        """Decorrelation factor for time averaging; ``None`` if unknown."""
        return None

    @property
    def deltaj0(self) -> float | None:
        """Scale-decorrelation factor (sets the scale-smoothing width); ``None`` if unknown."""
        return None

    @property
    def is_analytic(self) -> bool:
        """True when ``psi_ft`` vanishes for negative frequencies."""
        return False

    # --- support (for padding and halos) ------------------------------------------------
    def support(self, tol: float = 1e-10) -> float:
        """Half-width of the wavelet in units of scale, beyond which ``|psi| < tol * max|psi|``.

        Parameters
        ----------
        tol : float
            Relative envelope tolerance, ``0 < tol < 1``.

        Returns
        -------
        float
            ``t`` such that ``|psi(t')| <= tol * max|psi|`` for all ``|t'| >= t``. Multiply by
            ``scale / dt`` to get samples.

        Examples
        --------
        >>> round(Morlet().support(1e-8), 3)   # sqrt(2 ln 1e8)
        6.07
        """
        _check_tol(tol)
        return _numeric_support(lambda t: np.abs(self.psi(t)), tol)

    def describe(self) -> dict[str, Any]:
        """JSON-friendly description (used in dataset attrs and cache keys)."""
        return {"name": self.name, **{k: v for k, v in self.__dict__.items()}}


def _check_tol(tol: float) -> None:
    if not (0.0 < float(tol) < 1.0):
        raise ValueError(f"tol must be in (0, 1), got {tol!r}; e.g. tol=1e-10.")


def _numeric_support(envelope, tol: float) -> float:
    """Last ``t >= 0`` where ``envelope(t) > tol * max(envelope)``, on a fine grid."""
    t = np.linspace(0.0, 8.0, 8001)
    peak = float(np.max(envelope(t)))
    hi = 8.0
    while float(np.max(envelope(np.linspace(hi / 2, hi, 4001)))) > tol * peak:
        hi *= 2.0
        if hi > 1e9:  # pragma: no cover - defensive
            raise ValueError("wavelet support does not converge; use a larger tol")
    t = np.linspace(0.0, hi, 400001)
    above = np.nonzero(envelope(t) > tol * peak)[0]
    return float(t[min(above[-1] + 1, t.size - 1)])


@dataclass(frozen=True)
class Morlet(MotherWavelet):
    """Morlet wavelet ``psi(t) = pi**-0.25 exp(i f0 t - t**2/2)``.

    Parameters
    ----------
    f0 : float
        Non-dimensional angular frequency (default 6, where the admissibility correction is
        negligible).
    heaviside : bool
        If True, ``psi_ft`` is multiplied by ``(w > 0)`` as in Torrence & Compo and Grinsted's
        toolbox. pycwt (the default convention here) omits it, which leaves a ~1e-8 response
        at zero frequency.

    Examples
    --------
    >>> Morlet().deltaj0
    0.6
    """

    f0: float = 6.0
    heaviside: bool = False

    @property
    def name(self) -> str:
        return "morlet"

    def psi_ft(self, w: Any, xp: ModuleType = np) -> Any:
        out = (np.pi**-0.25) * xp.exp(-0.5 * (w - self.f0) ** 2)
        if self.heaviside:
            out = out * (w > 0)
        return out

    def psi(self, t: Any) -> Any:
        return (np.pi**-0.25) * np.exp(1j * self.f0 * t - t**2 / 2)

    @property
    def fourier_factor(self) -> float:
        return (4 * np.pi) / (self.f0 + math.sqrt(2 + self.f0**2))

    @property
    def coi_factor(self) -> float:
        return 1.0 / math.sqrt(2)

    @property
    def cdelta(self) -> float | None:
        return 0.776 if self.f0 == 6 else None

    @property
    def gamma(self) -> float | None:
        return 2.32 if self.f0 == 6 else None

    @property
    def deltaj0(self) -> float | None:
        return 0.60 if self.f0 == 6 else None

    @property
    def is_analytic(self) -> bool:
        return self.heaviside

    def support(self, tol: float = 1e-10) -> float:
        _check_tol(tol)
        return math.sqrt(-2.0 * math.log(tol))  # Gaussian envelope exp(-t**2/2)


@dataclass(frozen=True)
class Paul(MotherWavelet):
    """Paul wavelet of order ``m`` (Torrence & Compo 1998, Table 1).

    Examples
    --------
    >>> round(Paul().fourier_factor, 4)
    1.3963
    """

    m: int = 4

    def __post_init__(self) -> None:
        if int(self.m) != self.m or self.m < 1:
            raise ValueError(f"Paul order m must be a positive integer, got {self.m!r}.")

    @property
    def name(self) -> str:
        return "paul"

    def psi_ft(self, w: Any, xp: ModuleType = np) -> Any:
        m = self.m
        norm = 2**m / math.sqrt(m * math.prod(range(2, 2 * m)))
        pos = w > 0
        wp = xp.where(pos, w, 0.0)  # exp(-w) overflows for large negative w
        return norm * wp**m * xp.exp(-wp) * pos

    def psi(self, t: Any) -> Any:
        # Torrence & Compo's table writes a factor i**m here that their (and pycwt's) spectrum
        # lacks: the inverse Fourier transform of ``psi_ft`` is this without it. With it, the
        # time-domain boundaries (linear, symmetric, valid) gave (-i)**m times the coefficients
        # of the frequency-defined ones (pycwt, circular).
        m = self.m
        norm = (2**m * math.prod(range(2, m + 1))) / math.sqrt(np.pi * math.prod(range(2, 2 * m + 1)))
        return norm * (1 - 1j * np.asarray(t)) ** (-(m + 1))

    @property
    def fourier_factor(self) -> float:
        return 4 * np.pi / (2 * self.m + 1)

    @property
    def coi_factor(self) -> float:
        return math.sqrt(2)

    @property
    def cdelta(self) -> float | None:
        return 1.132 if self.m == 4 else None

    @property
    def gamma(self) -> float | None:
        return 1.17 if self.m == 4 else None

    @property
    def deltaj0(self) -> float | None:
        return 1.50 if self.m == 4 else None

    @property
    def is_analytic(self) -> bool:
        return True

    def support(self, tol: float = 1e-10) -> float:
        _check_tol(tol)
        # |psi| ∝ (1 + t**2) ** (-(m+1)/2): solve for the tolerance exactly.
        return math.sqrt(tol ** (-2.0 / (self.m + 1)) - 1.0)


@dataclass(frozen=True)
class DOG(MotherWavelet):
    """Derivative-of-Gaussian wavelet of order ``m`` (``m=2``: the Mexican hat).

    Examples
    --------
    >>> round(DOG(2).fourier_factor, 4)
    3.9738
    """

    m: int = 2

    @property
    def dofmin(self) -> float:
        return 1.0

    def __post_init__(self) -> None:
        if int(self.m) != self.m or self.m < 1:
            raise ValueError(f"DOG order m must be a positive integer, got {self.m!r}.")

    @property
    def name(self) -> str:
        return "dog"

    def psi_ft(self, w: Any, xp: ModuleType = np) -> Any:
        m = self.m
        return -(1j**m) / math.sqrt(_gamma_fn(m + 0.5)) * w**m * xp.exp(-0.5 * w**2)

    def psi(self, t: Any) -> Any:
        from scipy.special import hermitenorm

        p = hermitenorm(self.m)
        t = np.asarray(t)
        return (-1) ** (self.m + 1) * np.polyval(p, t) * np.exp(-(t**2) / 2) / math.sqrt(
            _gamma_fn(self.m + 0.5)
        )

    @property
    def fourier_factor(self) -> float:
        return 2 * np.pi / math.sqrt(self.m + 0.5)

    @property
    def coi_factor(self) -> float:
        return 1.0 / math.sqrt(2)

    @property
    def cdelta(self) -> float | None:
        return {2: 3.541, 6: 1.966}.get(self.m)

    @property
    def gamma(self) -> float | None:
        return {2: 1.43, 6: 1.37}.get(self.m)

    @property
    def deltaj0(self) -> float | None:
        return {2: 1.40, 6: 0.97}.get(self.m)


def MexicanHat() -> DOG:
    """The Mexican hat wavelet, ``DOG(m=2)``.

    Examples
    --------
    >>> MexicanHat() == DOG(2)
    True
    """
    return DOG(2)


WAVELETS: dict[str, type[MotherWavelet] | Any] = {
    "morlet": Morlet,
    "paul": Paul,
    "dog": DOG,
    "mexicanhat": MexicanHat,
    "mexican_hat": MexicanHat,
}


def get_wavelet(wavelet: str | MotherWavelet | Any) -> MotherWavelet:
    """Resolve a wavelet given by name, instance, or pycwt mother-wavelet object.

    Parameters
    ----------
    wavelet : str or MotherWavelet or pycwt wavelet
        ``"morlet"``, ``"paul"``, ``"dog"``, ``"mexicanhat"`` (case-insensitive), an
        instance of :class:`MotherWavelet`, or a ``pycwt.Morlet``/``Paul``/``DOG`` object
        (converted with the same parameters).

    Returns
    -------
    MotherWavelet

    Raises
    ------
    ValueError
        For an unknown name or object.

    Examples
    --------
    >>> get_wavelet("Morlet")
    Morlet(f0=6.0, heaviside=False)
    """
    if isinstance(wavelet, MotherWavelet):
        return wavelet
    if isinstance(wavelet, str):
        key = wavelet.strip().lower()
        if key not in WAVELETS:
            raise ValueError(
                f"unknown wavelet {wavelet!r}; choose one of {sorted(set(WAVELETS) - {'mexican_hat'})} "
                "or pass a bioxen_dask.wavelets.MotherWavelet instance."
            )
        return WAVELETS[key]()
    # pycwt objects: duck-typed on their public attributes, never imported here.
    cls = type(wavelet).__name__.lower()
    if cls == "morlet" and hasattr(wavelet, "f0"):
        return Morlet(f0=float(wavelet.f0))
    if cls == "paul" and hasattr(wavelet, "m"):
        return Paul(m=int(wavelet.m))
    if cls in ("dog", "mexicanhat") and hasattr(wavelet, "m"):
        return DOG(m=int(wavelet.m))
    raise ValueError(
        f"unknown wavelet {wavelet!r}; pass a name ('morlet', 'paul', 'dog', 'mexicanhat') "
        "or a bioxen_dask.wavelets.MotherWavelet instance."
    )
