"""Shared fixtures: real reference series and seeded generators."""

from __future__ import annotations

import numpy as np
import pytest

from _cluster_fixtures import dask_subprocess_cluster, gateway_server  # noqa: F401
from bioxen_dask import sample_data


def pytest_configure(config):
    """pycwt is the reference only as its default install computes: with pyFFTW importable it
    drops its power-of-two padding (other coefficients), and every comparison would fail."""
    from bioxen_dask.bench import pycwt_fft_mode

    mode = pycwt_fft_mode()
    if mode.startswith("pyFFTW"):
        raise pytest.UsageError(f"pycwt uses {mode}. The tests compare against pycwt's default numbers; "
                                "uninstall pyFFTW from this environment (pip uninstall pyFFTW).")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261122)


@pytest.fixture(scope="session")
def nino3():
    return sample_data.load_nino3()


@pytest.fixture(scope="session")
def ao_baltic():
    return sample_data.load_ao_baltic()


def lagged_traces(n: int, n_rois: int, lags: list[float], seed: int, dt: float, period: float = 3.0):
    """``(x, ref)``: ``n_rois`` AR(1) (g = 0.6) traces of ``n`` samples, the first ``len(lags)``
    plus a sine of ``period`` delayed by ``lags`` seconds, and that sine plus noise as the
    reference."""
    from scipy.signal import lfilter

    rng = np.random.default_rng(seed)
    t = np.arange(n) * dt
    x = lfilter([1.0], [1.0, -0.6], rng.standard_normal((n_rois, n)), axis=-1)
    x[: len(lags)] += np.sin(2 * np.pi * (t[None, :] - np.asarray(lags)[:, None]) / period)
    ref = np.sin(2 * np.pi * t / period) + 0.5 * rng.standard_normal(n)
    return x, ref


def rel_err(a, b) -> float:
    """max |a - b| / max |b| (global relative error)."""
    a = np.asarray(a)
    b = np.asarray(b)
    return float(np.nanmax(np.abs(a - b)) / np.nanmax(np.abs(b)))


def phase_err(a, b, weight) -> float:
    """Largest wrapped phase difference where ``weight`` is above 1e-6 of its maximum."""
    d = np.angle(np.exp(1j * (np.asarray(a) - np.asarray(b))))
    w = np.abs(weight)
    return float(np.abs(d[w > 1e-6 * w.max()]).max())
