"""Cross-wavelet spectrum, wavelet coherence and phase from wavelet coefficients."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..grid import DEFAULT_TOL, ScaleGrid
from ._cwt import mask_edges
from ._smooth import smooth
from ._xp import array_namespace

__all__ = ["Smoother", "cross_spectrum", "coherence", "phase", "scaled_power"]


@dataclass(frozen=True)
class Smoother:
    """The smoothing operator of coherence on one grid, with its conventions.

    Examples
    --------
    >>> import numpy as np
    >>> from bioxen_dask.grid import make_grid
    >>> sm = Smoother(make_grid(128, 1.0), boundary="pycwt")
    >>> sm(np.ones((sm.grid.n_scales, 128))).shape
    (74, 128)
    """

    grid: ScaleGrid
    scale_kernel: str = "pycwt"
    boundary: str = "linear"
    tol: float = DEFAULT_TOL
    workers: int | None = None

    def __call__(self, values: Any) -> Any:
        mode = "linear" if self.boundary == "valid" else self.boundary
        return smooth(
            values,
            self.grid,
            scale_kernel_kind=self.scale_kernel,
            boundary=mode,
            tol=self.tol,
            workers=self.workers,
        )

    def valid_supports(self) -> np.ndarray:
        """Per-scale samples lost at each edge in ``valid`` mode (wavelet + Gaussian)."""
        return self.grid.wavelet_support(self.tol) + self.grid.smoothing_support(self.tol)


def _inverse_scales(grid: ScaleGrid, like: Any) -> Any:
    xp = array_namespace(like)
    real = like.real.dtype if xp.iscomplexobj(like) else like.dtype
    return xp.asarray((1.0 / grid.scales)[:, None].astype(real))


def scaled_power(W: Any, grid: ScaleGrid) -> Any:
    """``|W|**2 / scale`` (the quantity smoothed for coherence)."""
    return (W.real**2 + W.imag**2) * _inverse_scales(grid, W)


def cross_spectrum(W1: Any, W2: Any) -> Any:
    """Cross-wavelet spectrum ``W1 * conj(W2)``."""
    return W1 * W2.conj()


def phase(W12: Any) -> Any:
    """Phase of the cross spectrum in radians, ``angle(W1 * conj(W2))``: positive when the
    first signal leads the second."""
    xp = array_namespace(W12)
    return xp.angle(W12)


def coherence(
    W1: Any,
    W2: Any,
    smoother: Smoother,
    *,
    S1: Any = None,
    S2: Any = None,
    clip: bool = True,
) -> tuple[Any, Any]:
    """Wavelet coherence and phase of two sets of coefficients (broadcast over leading axes).

    ``R2 = |S(W1 W2*/s)|**2 / (S(|W1|**2/s) S(|W2|**2/s))`` with the smoother ``S``
    (Torrence & Webster 1999; Grinsted et al. 2004), and the phase of the *unsmoothed*
    cross spectrum, as pycwt and Grinsted's toolbox report it.

    Parameters
    ----------
    W1, W2 : ndarray, shape ``(..., n_scales, time)``
        Wavelet coefficients on ``smoother.grid`` (broadcastable against each other).
    smoother : Smoother
    S1, S2 : ndarray, optional
        Already smoothed scaled powers of ``W1``/``W2`` (reuse them across many pairs).
    clip : bool
        Clip rounding excursions to ``[0, 1]`` (on by default; pycwt compatibility turns it
        off).

    Returns
    -------
    coherence, phase : ndarray
        Real arrays of the broadcast shape; NaN in ``valid`` mode where an edge is in reach.
    """
    grid = smoother.grid
    if S1 is None:
        S1 = smoother(scaled_power(W1, grid))
    if S2 is None:
        S2 = smoother(scaled_power(W2, grid))
    W12 = cross_spectrum(W1, W2)
    S12 = smoother(W12 * _inverse_scales(grid, W12))
    xp = array_namespace(S12)
    num = S12.real**2 + S12.imag**2
    with np.errstate(divide="ignore", invalid="ignore"):
        R2 = num / (S1 * S2)
    if clip:
        R2 = xp.clip(R2, 0.0, 1.0)
    ang = phase(W12)
    if smoother.boundary == "valid":
        sup = smoother.valid_supports()
        mask_edges(R2, sup, xp)
        mask_edges(ang, sup, xp)
    return R2, ang
