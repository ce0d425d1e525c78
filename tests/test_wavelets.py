"""Mother wavelets against pycwt's constants and analytic properties."""

from __future__ import annotations

import math

import numpy as np
import pycwt
import pytest

from bioxen_dask.grid import make_grid
from bioxen_dask.wavelets import DOG, MexicanHat, Morlet, Paul, get_wavelet

PAIRS = [(Morlet(), pycwt.Morlet()), (Paul(), pycwt.Paul()), (DOG(2), pycwt.DOG(2)), (DOG(6), pycwt.DOG(6))]


@pytest.mark.parametrize("ours, theirs", PAIRS)
def test_constants_and_psi_ft_match_pycwt(ours, theirs):
    assert ours.fourier_factor == pytest.approx(theirs.flambda(), rel=1e-15)
    assert ours.coi_factor == pytest.approx(theirs.coi(), rel=1e-15)
    assert ours.deltaj0 == theirs.deltaj0 and ours.cdelta == theirs.cdelta
    assert ours.dofmin == theirs.dofmin
    w = np.linspace(-5, 40, 2001)
    with np.errstate(over="ignore", invalid="ignore"):
        ref = theirs.psi_ft(w)
    finite = np.isfinite(ref)
    np.testing.assert_allclose(ours.psi_ft(w)[finite], ref[finite], rtol=1e-13, atol=1e-300)


def test_morlet_fourier_factor_and_grid_defaults():
    assert Morlet().fourier_factor == pytest.approx(4 * math.pi / (6 + math.sqrt(38)))
    g = make_grid(18000, 1 / 30)
    assert g.n_scales == 159  # DESIGN §2: 18,000 samples -> 159 scales
    assert g.periods[0] == pytest.approx(2 / 30, rel=1e-12)


def test_heaviside_morlet_is_analytic():
    w = np.array([-1.0, 0.0, 1e-3, 6.0])
    assert Morlet(heaviside=True).psi_ft(w)[:2].tolist() == [0.0, 0.0]
    assert Morlet().psi_ft(np.array([0.0]))[0] == pytest.approx(np.pi**-0.25 * np.exp(-18))


@pytest.mark.parametrize("wavelet", [Morlet(), Paul(), DOG(2), DOG(6)])
@pytest.mark.parametrize("tol", [1e-3, 1e-8, 1e-12])
def test_support_bounds_the_envelope(wavelet, tol):
    t0 = wavelet.support(tol)
    peak = np.abs(wavelet.psi(np.linspace(0, 3, 3001))).max()
    beyond = np.abs(wavelet.psi(np.linspace(t0, 20 * t0, 20001)))
    assert beyond.max() <= tol * peak * (1 + 1e-6)
    inside = np.abs(wavelet.psi(np.linspace(0, 0.98 * t0, 5001)))
    assert inside.max() > tol * peak  # not absurdly loose either
    assert (np.abs(wavelet.psi(np.linspace(0.9 * t0, t0, 101))) > 0.1 * tol * peak).any()


def test_get_wavelet_accepts_names_instances_and_pycwt_objects():
    assert get_wavelet("MEXICANHAT") == MexicanHat() == DOG(2)
    assert get_wavelet(pycwt.Morlet(5)) == Morlet(5.0)
    assert get_wavelet(pycwt.Paul(6)) == Paul(6)
    with pytest.raises(ValueError, match="unknown wavelet"):
        get_wavelet(object())


@pytest.mark.parametrize("wavelet", [Morlet(), Paul(1), Paul(2), Paul(3), Paul(4), Paul(5), DOG(1), DOG(2), DOG(3), DOG(6)])
def test_psi_is_the_inverse_fourier_transform_of_psi_ft(wavelet):
    """The time-domain boundaries convolve with ``psi``, the frequency-defined ones multiply by
    ``psi_ft``: the two must be one wavelet, ``psi(t) = sqrt(2 pi) / (2 pi) * int psi_ft(w)
    e^{i w t} dw`` (pycwt's normalisation). Torrence & Compo's table gives Paul's ``psi`` a
    factor ``i**m`` its spectrum lacks: linear coefficients came out ``(-i)**m`` times pycwt's."""
    w = np.linspace(-60, 60, 240_001)
    t = np.array([-3.0, -1.0, -0.3, 0.0, 0.5, 2.0, 4.0])
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        spec = np.nan_to_num(np.asarray(wavelet.psi_ft(w), dtype=complex))
    inverse = np.trapezoid(spec[None, :] * np.exp(1j * np.outer(t, w)), w, axis=1) / np.sqrt(2 * np.pi)
    np.testing.assert_allclose(inverse, wavelet.psi(t), rtol=0, atol=1e-6 * np.abs(wavelet.psi(t)).max())
