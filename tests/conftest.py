"""Shared fixtures: real reference series and seeded generators."""

from __future__ import annotations

import inspect
import re

import numpy as np
import pytest

from _cluster_fixtures import dask_subprocess_cluster, gateway_server  # noqa: F401
from bioxen_dask import sample_data


#: A test compares against pycwt's numbers when it calls pycwt, or runs the pycwt engine.
_PYCWT_USE = re.compile(r"""\bpycwt\.\w|importorskip\(["']pycwt["']\)|engine\s*=\s*["']pycwt["']""")
#: Fixtures that start a Dask cluster in subprocesses, or a gateway server: the slow tier.
_CLUSTER_FIXTURES = {"dask_subprocess_cluster", "gateway_server"}


def _compares_with_pycwt(item: pytest.Item) -> bool:
    if item.get_closest_marker("pycwt") is not None:
        return True
    if getattr(getattr(item, "callspec", None), "params", {}).get("engine") == "pycwt":
        return True
    function = getattr(item, "function", None)
    if function is None:  # doctests
        return False
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError):  # pragma: no cover - a function without source
        return False
    return _PYCWT_USE.search(source) is not None


def pytest_report_header(config) -> str:
    from bioxen_dask.bench import pycwt_fft_mode

    return f"pycwt FFT: {pycwt_fft_mode()}"


def pytest_collection_modifyitems(config, items) -> None:
    """pycwt is the reference only as its default install computes: with pyFFTW importable it
    drops its power-of-two padding (other coefficients), so the comparisons against it are
    skipped (every other test runs). Tests on subprocess clusters or a gateway server are
    ``slow`` (``pytest -m "not slow"`` leaves them out; the default run has them)."""
    from bioxen_dask.bench import pycwt_fft_mode

    mode = pycwt_fft_mode()
    skip = None
    if mode.startswith("pyFFTW"):
        skip = pytest.mark.skip(reason=f"pycwt uses {mode}; the comparisons against pycwt need its default FFT "
                                       "(pip uninstall pyFFTW)")
    for item in items:
        if _CLUSTER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
        if _compares_with_pycwt(item):
            item.add_marker(pytest.mark.pycwt)
            if skip is not None:
                item.add_marker(skip)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261122)


@pytest.fixture(scope="session")
def nino3():
    return sample_data.load_nino3()


@pytest.fixture(scope="session")
def ao_baltic():
    return sample_data.load_ao_baltic()
