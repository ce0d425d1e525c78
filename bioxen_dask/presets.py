"""Conventions of the two reference tools, gathered in one place.

A :class:`Preset` names every choice on which pycwt 0.5.0b0 and Grinsted's MATLAB toolbox
(Grinsted, Moore & Jevrejeva 2004) differ: the smallest scale, the number of scales, whether
the mean is removed before the transform, the mother wavelet's Heaviside step, the scale
smoothing kernel, the AR(1) estimator and the default significance level. The kernels take
these as plain parameters; only the public API and :mod:`bioxen_dask.compat` read presets.

Examples
--------
>>> from bioxen_dask.presets import get_preset
>>> get_preset("pycwt").scale_kernel
'pycwt'
>>> get_preset("grinsted").ar1_estimator
'naive'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Preset", "PRESETS", "get_preset"]


@dataclass(frozen=True)
class Preset:
    """One reference convention.

    Attributes
    ----------
    name : str
        ``"pycwt"`` or ``"grinsted"``.
    s0_rule : {"period", "scale"}
        ``"period"``: the smallest *Fourier period* is ``2*dt`` (pycwt:
        ``s0 = 2*dt/fourier_factor``); ``"scale"``: the smallest *scale* is ``2*dt``
        (Torrence & Compo, Grinsted).
    J_rule : {"record", "max_scale_017"}
        ``"record"``: ``J = round(log2(n*dt/s0)/dj)`` (largest period ~ record length, pycwt);
        ``"max_scale_017"``: ``J = round(log2(0.17*2*n*dt/s0)/dj)`` (Grinsted's
        ``MaxScale = n*.17*2*dt``).
    remove_mean : bool
        Remove the mean before transforming (Torrence & Compo/Grinsted). pycwt's ``cwt`` does
        not (its ``wct``/``xwt`` standardise anyway).
    heaviside : bool
        Multiply the Morlet ``psi_ft`` by ``(w > 0)``.
    scale_kernel : {"pycwt", "grinsted"}
        Boxcar over ``round(2*deltaj0/dj)`` scales with half-weight ends (pycwt), or
        ``2*round(0.3/dj)+1`` taps with fractional ends (Grinsted ``smoothwavelet.m``).
    ar1_estimator : {"allen_smith", "naive"}
        Bias-corrected Allen & Smith (pycwt ``ar1``) or ``c1/c0`` (Grinsted ``ar1nv``).
    coi : {"pycwt", "grinsted"}
        Cone-of-influence convention (see :meth:`bioxen_dask.grid.ScaleGrid.coi`).
    significance_level : float
        Default level of the Monte Carlo test.
    """

    name: str
    s0_rule: Literal["period", "scale"]
    J_rule: Literal["record", "max_scale_017"]
    remove_mean: bool
    heaviside: bool
    scale_kernel: Literal["pycwt", "grinsted"]
    ar1_estimator: Literal["allen_smith", "naive"]
    coi: Literal["pycwt", "grinsted"] = "pycwt"
    significance_level: float = 0.95


PRESETS: dict[str, Preset] = {
    "pycwt": Preset(
        name="pycwt",
        s0_rule="period",
        J_rule="record",
        remove_mean=False,
        heaviside=False,
        scale_kernel="pycwt",
        ar1_estimator="allen_smith",
    ),
    "grinsted": Preset(
        name="grinsted",
        s0_rule="scale",
        J_rule="max_scale_017",
        remove_mean=True,
        heaviside=True,
        scale_kernel="grinsted",
        ar1_estimator="naive",
        coi="grinsted",
    ),
}


def get_preset(preset: str | Preset) -> Preset:
    """Resolve a preset by name.

    Raises
    ------
    ValueError
        For an unknown name, listing the known ones.

    Examples
    --------
    >>> get_preset("GRINSTED").s0_rule
    'scale'
    """
    if isinstance(preset, Preset):
        return preset
    key = str(preset).strip().lower()
    if key not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}.")
    return PRESETS[key]
