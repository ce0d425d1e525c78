"""Real reference series that ship inside other projects' wheels (never downloaded).

- NINO3 sea-surface temperature anomalies, quarterly 1871-1996 (Torrence & Compo 1998), from
  pycwt's ``sample/sst_nino3.dat``.
- Grinsted et al. (2004)'s pair: the Arctic Oscillation index (``jao.dat``) and the Baltic
  maximum sea-ice extent (``jbaltic.dat``), annual, from pycwt's ``sample/``.
- PyWavelets' ECG (``pywt/data/ecg.npz``, 1024 samples at 360 Hz).
- Matplotlib's membrane-potential recording (``mpl-data/sample_data/membrane.dat``, 12,000
  float32 samples in volts, with action potentials; its sampling rate is not documented).

Examples
--------
>>> years, ao, baltic = load_ao_baltic()
>>> int(years[0]), int(years[-1]), ao.shape == baltic.shape
(1851, 1997, True)
"""

from __future__ import annotations

from importlib.resources import files

import numpy as np

__all__ = ["load_nino3", "load_ao_baltic", "load_ecg", "load_membrane"]


def _resource(package: str, name: str):
    try:
        return files(package) / name
    except ModuleNotFoundError:
        dist = {"pycwt.sample": "pycwt", "pywt.data": "PyWavelets"}[package]
        raise ModuleNotFoundError(
            f"the sample data ship inside the {dist!r} wheel; install it with "
            f"`pip install {dist}` (it is part of bioxen-dask[test])."
        ) from None


def load_nino3() -> tuple[np.ndarray, np.ndarray, float]:
    """NINO3 SST anomaly: ``(time in years, values in °C, dt = 0.25 year)``."""
    values = np.loadtxt(_resource("pycwt.sample", "sst_nino3.dat"))
    dt = 0.25
    return 1871.0 + dt * np.arange(values.size), values, dt


def load_ao_baltic() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Arctic Oscillation and Baltic ice extent on their common annual span.

    Returns
    -------
    years, ao, baltic : ndarray
    """
    t1, ao = np.loadtxt(_resource("pycwt.sample", "jao.dat"), unpack=True)
    t2, baltic = np.loadtxt(_resource("pycwt.sample", "jbaltic.dat"), unpack=True)
    years = np.intersect1d(t1, t2)
    return years, ao[np.isin(t1, years)], baltic[np.isin(t2, years)]


def load_ecg() -> tuple[np.ndarray, float]:
    """PyWavelets' ECG record: ``(values in mV, dt = 1/360 s)``."""
    with np.load(_resource("pywt.data", "ecg.npz"), allow_pickle=False) as data:
        return np.asarray(data["data"], dtype=float), 1 / 360


def load_membrane() -> np.ndarray:
    """Matplotlib's membrane-potential recording: 12,000 samples (volts, float64).

    Matplotlib ships it without its sampling rate: analyse it in samples (``dt=1``).

    Examples
    --------
    >>> v = load_membrane()
    >>> v.size, bool(v.min() < -0.6 < 0 < v.max())  # resting near -0.67 V, spikes above 0 V
    (12000, True)
    """
    from matplotlib import cbook

    path = cbook.get_sample_data("membrane.dat", asfileobj=False)
    return np.fromfile(path, dtype="<f4").astype(np.float64)
