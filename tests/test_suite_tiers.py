"""The suite's own tiers: a pyFFTW-backed pycwt skips the comparisons against pycwt (and only
those), and ``-m "not slow"`` leaves the integration tests out."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent

#: A stand-in for pyFFTW: pycwt imports ``pyfftw.interfaces.scipy_fftpack`` when it can, and then
#: transforms without its power-of-two padding (other numbers than its default install's).
FAKE_FFTPACK = '''
import scipy.fftpack as _fftpack


def fft(x, n=None, axis=-1, overwrite_x=False, planner_effort=None, threads=None):
    return _fftpack.fft(x, n, axis, overwrite_x)


def ifft(x, n=None, axis=-1, overwrite_x=False, planner_effort=None, threads=None):
    return _fftpack.ifft(x, n, axis, overwrite_x)
'''


def _pytest(args: list[str], env_path: list[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*env_path, str(REPO), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs", *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow  # a pytest run of two test files
def test_a_pyfftw_backed_pycwt_skips_the_pycwt_comparisons(tmp_path):
    fake = tmp_path / "pyfftw" / "interfaces"
    fake.mkdir(parents=True)
    (tmp_path / "pyfftw" / "__init__.py").write_text("")
    (fake / "__init__.py").write_text("")
    (fake / "scipy_fftpack.py").write_text(FAKE_FFTPACK)
    # test_conventions mixes pycwt comparisons with tests of this package alone
    run = _pytest([str(TESTS / "test_compat_pycwt.py"), str(TESTS / "test_conventions.py")], [str(tmp_path)])
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-4000:]
    assert "comparisons against pycwt need its default FFT" in out
    summary = out.strip().splitlines()[-1]
    assert " passed" in summary and " skipped" in summary, summary  # only the comparisons skip


def test_the_quick_tier_leaves_the_integration_tests_out():
    run = _pytest(["--collect-only", "-m", "not slow", str(TESTS / "test_reliability_cluster.py"),
                   str(TESTS / "test_gateway_pipeline.py"), str(TESTS / "test_cluster.py")], [])
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-4000:]
    assert "test_reliability_cluster.py" not in out and "test_gateway_pipeline.py" not in out
    assert "test_cluster.py::test_" in out  # the configuration tests stay in the quick tier
    assert "test_cluster.py::test_address_from_environment_and_scheduler_file" not in out  # a subprocess cluster


@pytest.mark.parametrize("marker", ["slow", "pycwt"])
def test_the_tier_markers_are_registered(pytestconfig, marker):
    assert any(line.startswith(f"{marker}:") for line in pytestconfig.getini("markers"))
