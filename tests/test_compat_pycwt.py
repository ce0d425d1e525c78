"""bioxen_dask.compat reproduces pycwt 0.5.0b0 on its own shipped data and on random signals."""

from __future__ import annotations

import numpy as np
import pycwt
import pytest

from bioxen_dask import compat
from _helpers import phase_err, rel_err

LENGTHS = [100, 128, 1000, 1024, 3001]


def test_cwt_nino3_matches_pycwt(nino3):
    _, sst, dt = nino3
    ours = compat.cwt(sst, dt, 1 / 12, -1, -1, "morlet")
    ref = pycwt.cwt(sst, dt, 1 / 12, -1, -1, "morlet")
    assert ours[0].shape == ref[0].shape == (ref[1].size, sst.size)
    assert rel_err(ours[0], ref[0]) <= 1e-9
    for mine, theirs in zip(ours[1:], ref[1:]):  # scales, freqs, coi, fft, fftfreqs
        np.testing.assert_allclose(mine, theirs, rtol=1e-12, atol=0)


@pytest.mark.parametrize("n", LENGTHS)
@pytest.mark.parametrize("wavelet", ["morlet", "paul", "dog", "mexicanhat"])
def test_cwt_random_matches_pycwt(n, wavelet, rng):
    x = rng.standard_normal(n).cumsum() + 3.0  # red, non-zero mean: exercises the DC leak
    ours = compat.cwt(x, 0.5, dj=1 / 8, wavelet=wavelet)
    # pycwt's Paul psi_ft overflows (inf * 0 = NaN) at large scales, warns, and then silently
    # drops those scales; ours keeps every scale finite. Compare on the scales pycwt kept.
    with np.errstate(over="ignore", invalid="ignore"):  # the reference's own overflow, expected
        ref = pycwt.cwt(x, 0.5, dj=1 / 8, wavelet=wavelet)
    kept = np.isin(ours[1], ref[1])
    assert kept.sum() == ref[1].size
    assert np.isfinite(ours[0]).all()
    assert rel_err(ours[0][kept], ref[0]) <= 1e-9
    np.testing.assert_allclose(ours[3], ref[3], rtol=1e-12)


def test_cwt_explicit_grid_and_freqs_match_pycwt(nino3):
    _, sst, dt = nino3
    ours = compat.cwt(sst, dt, dj=0.25, s0=2 * dt, J=20)
    ref = pycwt.cwt(sst, dt, dj=0.25, s0=2 * dt, J=20)
    assert rel_err(ours[0], ref[0]) <= 1e-9
    freqs = np.array([0.05, 0.1, 0.2, 0.5, 1.0])
    ours = compat.cwt(sst, dt, freqs=freqs)
    ref = pycwt.cwt(sst, dt, freqs=freqs)
    assert rel_err(ours[0], ref[0]) <= 1e-9
    np.testing.assert_allclose(ours[1], ref[1], rtol=1e-12)


def test_wct_ao_baltic_matches_pycwt(ao_baltic):
    _, ao, baltic = ao_baltic
    WCT, aWCT, coi, freq, sig = compat.wct(ao, baltic, 1.0, sig=False)
    rWCT, raWCT, rcoi, rfreq, rsig = pycwt.wct(ao, baltic, 1.0, sig=False)
    assert WCT.shape == rWCT.shape
    assert float(np.abs(WCT - rWCT).max()) <= 1e-9
    W12 = compat.xwt(ao, baltic, 1.0)[0]
    assert phase_err(aWCT, raWCT, W12) <= 1e-9
    np.testing.assert_allclose(coi, rcoi, rtol=1e-12)
    np.testing.assert_allclose(freq, rfreq, rtol=1e-12)
    assert list(sig) == [0]
    # The pair is the classic demo: strongly coherent somewhere outside the COI.
    outside = (1 / freq)[:, None] <= coi[None, :]
    assert 0.8 < WCT[outside].max() <= 1.0


@pytest.mark.parametrize("n", LENGTHS)
def test_wct_random_matches_pycwt(n, rng):
    a = rng.standard_normal(n)
    b = np.convolve(a, np.ones(7) / 7, "same") + 0.7 * rng.standard_normal(n)
    WCT, aWCT, *_ = compat.wct(a, b, 0.1, dj=1 / 12, sig=False)
    rWCT, raWCT, *_ = pycwt.wct(a, b, 0.1, dj=1 / 12, sig=False)
    assert float(np.abs(WCT - rWCT).max()) <= 1e-9
    W12 = compat.xwt(a, b, 0.1)[0]
    assert phase_err(aWCT, raWCT, W12) <= 1e-9


def test_xwt_matches_pycwt(ao_baltic):
    _, ao, baltic = ao_baltic
    for normalize in (True, False):
        ours = compat.xwt(ao, baltic, 1.0, normalize=normalize)
        ref = pycwt.xwt(ao, baltic, 1.0, normalize=normalize)
        assert rel_err(ours[0], ref[0]) <= 1e-9
        for mine, theirs in zip(ours[1:], ref[1:]):
            np.testing.assert_allclose(mine, theirs, rtol=1e-9)


def test_ar1_matches_pycwt(ao_baltic, nino3):
    for x in (ao_baltic[1], ao_baltic[2], nino3[1]):
        np.testing.assert_allclose(compat.ar1(x), pycwt.ar1(x), rtol=1e-12)


def test_ar1_raises_value_error_when_undefined():
    trend = np.arange(20.0) ** 3
    with pytest.raises(Warning):
        pycwt.ar1(trend)  # pycwt raises a bare Warning
    with pytest.raises(ValueError, match="upper bound"):
        compat.ar1(trend)


def test_rednoise_zero_coefficient_is_white_noise():
    np.random.seed(3)
    x = compat.rednoise(20000, 0.0)
    assert abs(np.corrcoef(x[:-1], x[1:])[0, 1]) < 0.03
    assert 0.95 < x.std() < 1.05


def test_inputs_are_not_modified(ao_baltic):
    _, ao, baltic = ao_baltic
    a, b = ao.copy(), baltic.copy()
    a.flags.writeable = False
    b.flags.writeable = False
    compat.wct(a, b, 1.0, sig=False)
    compat.xwt(a, b, 1.0)
    compat.cwt(a, 1.0)
    np.testing.assert_array_equal(a, ao)
    np.testing.assert_array_equal(b, baltic)


@pytest.mark.parametrize("J", [1.5, 2.7, 3.9999999, 4])
def test_a_fractional_J_gives_pycwts_scales(J, rng):
    """pycwt builds ``arange(0, J + 1)``: a fractional J rounds up (``int(J)`` dropped one)."""
    x = rng.standard_normal(200)
    ours, ref = compat.cwt(x, 0.5, s0=1.0, J=J), pycwt.cwt(x, 0.5, s0=1.0, J=J)
    np.testing.assert_allclose(ours[1], ref[1], rtol=1e-12)
    assert rel_err(ours[0], ref[0]) <= 1e-9


def test_compat_names_the_bad_argument_and_rejects_unknown_options(rng):
    with pytest.raises(ValueError, match=r"al1 must be an AR\(1\) coefficient"):
        compat.wct_significance(1.0, 0.5, 0.1, 1 / 12, 0.2, 40, mc_count=5, progress=False)
    with pytest.raises(ValueError, match=r"al2 must be an AR\(1\) coefficient"):
        compat.wct_significance(0.5, -1.0, 0.1, 1 / 12, 0.2, 40, mc_count=5, progress=False)
    for n in (-1, 0, 2.5):
        with pytest.raises(ValueError, match="positive whole number of samples"):
            compat.rednoise(n, 0.5)
    x = rng.standard_normal(100)
    with pytest.raises(TypeError, match=r"unknown keyword\(s\) \['foo'\]"):
        compat.wct(x, x + rng.standard_normal(100), 0.5, sig=False, foo=1)
