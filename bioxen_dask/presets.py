"""Conventions of the two reference tools, gathered in one place.

A :class:`Preset` names every choice on which pycwt 0.5.0b0 and Grinsted's MATLAB toolbox
(Grinsted, Moore & Jevrejeva 2004) differ: the smallest scale, the number of scales, whether
the mean is removed before the transform, the mother wavelet's Heaviside step, the scale
smoothing kernel, the AR(1) estimator, the default significance level and the boundary
(padding) that tool uses. The kernels take these as plain parameters; only the public API and
:mod:`bioxen_dask.compat` read presets.

**The rule** (:func:`resolve_conventions`, the same in :func:`bioxen_dask.wavelet_transform`,
:func:`bioxen_dask.wavelet_coherence`, :func:`bioxen_dask.coherence`, pipelines and the CLI):
naming a preset (``preset="pycwt"`` or ``"grinsted"``) selects that tool's conventions *and*
its boundary, so the numbers are that tool's; ``boundary=`` given explicitly always wins.
Without a preset the conventions are pycwt's and the boundary is ``"linear"`` (exact linear
convolution, halo-exact in chunked and streamed work).

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

__all__ = ["Preset", "PRESETS", "DEFAULT_BOUNDARY", "get_preset", "resolve_conventions"]

#: The boundary when no preset is named.
DEFAULT_BOUNDARY = "linear"


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
    boundary : {"pycwt", "grinsted"}
        The tool's own padding, selected when the preset is named and no ``boundary`` is
        given (:func:`resolve_conventions`).
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
    boundary: str = "pycwt"


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
        boundary="grinsted",
    ),
}


def get_preset(preset: str | Preset | None) -> Preset:
    """Resolve a preset by name (``None``: the default conventions, pycwt's).

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
    if preset is None:
        return PRESETS["pycwt"]
    key = str(preset).strip().lower()
    if key not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}.")
    return PRESETS[key]


def resolve_conventions(preset: str | Preset | None, boundary: str | None) -> tuple[Preset, str]:
    """The conventions and the boundary a call uses: the one rule for presets and boundaries.

    Parameters
    ----------
    preset : str, Preset or None
        ``None`` (not named): pycwt's conventions with the ``"linear"`` boundary. A name or a
        :class:`Preset`: that tool's conventions and, unless ``boundary`` is given, its own
        boundary (``"pycwt"`` or ``"grinsted"`` power-of-two padding), so the numbers are that
        tool's.
    boundary : str or None
        Given explicitly, it is used whatever the preset (checked against
        :data:`bioxen_dask.kernels.BOUNDARIES`).

    Returns
    -------
    (Preset, str)
        The preset and the lower-case boundary name.

    Examples
    --------
    >>> [(p.name, b) for p, b in (resolve_conventions(None, None), resolve_conventions("grinsted", None),
    ...                           resolve_conventions("grinsted", "linear"), resolve_conventions("pycwt", None))]
    [('pycwt', 'linear'), ('grinsted', 'grinsted'), ('grinsted', 'linear'), ('pycwt', 'pycwt')]
    """
    from .kernels._plan import check_boundary

    p = get_preset(preset)
    if boundary is None:
        boundary = DEFAULT_BOUNDARY if preset is None else p.boundary
    return p, check_boundary(boundary)
