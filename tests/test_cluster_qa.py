"""QA of bioxen_dask.cluster: values distributed/SLURM/PBS would misread, and unclear errors."""

from __future__ import annotations

import http.server
import logging
import socket
import threading
import time
from pathlib import Path

import pytest
import yaml

from bioxen_dask.cluster import ClusterConfig, ClusterConnectionError, connect, job_script

REPO = Path(__file__).resolve().parents[1]
JOBQUEUE_YAML = REPO / "deploy" / "jobqueue.yaml"
LOOPBACK_SCHEDULER = {"scheduler-options": {"host": "127.0.0.1"}}


@pytest.fixture
def no_submission(monkeypatch):
    """Make any batch-system command (sbatch, qsub, scancel...) a test failure."""
    import dask_jobqueue.core

    async def refuse(cmd, **kwargs):
        raise AssertionError(f"dask-jobqueue tried to run {cmd!r}")

    monkeypatch.setattr(dask_jobqueue.core.Job, "_call", staticmethod(refuse))


# =========================================================================== memory_limit


@pytest.mark.parametrize("value", [1.5, 2, 100, "1.5", "100", "1000B", 3.9])
def test_memory_limit_distributed_reads_as_a_few_bytes_is_rejected(value):
    """distributed reads numbers <= 1 as fractions and anything else as bytes: memory_limit=1.5
    gave every worker a 1-byte budget, so workers restarted forever and compute() hung."""
    from distributed.worker_memory import parse_memory_limit

    # the premise: the budget a worker would get
    assert parse_memory_limit(value, 1, logger=logging.getLogger(__name__)) < 2**20
    with pytest.raises(ValueError, match=r"cluster\.memory_limit") as info:
        ClusterConfig(memory_limit=value)
    assert "GiB" in str(info.value)  # says how to write a size


@pytest.mark.parametrize("value", ["auto", None, 0, 0.5, 1, 1.0, "0.25", "4GiB", "512 MB", 2**31, 8e9])
def test_memory_limit_accepts_fractions_sizes_and_byte_counts(value):
    assert ClusterConfig(memory_limit=value).memory_limit == value


def test_unknown_kind_in_other_case_gets_a_hint():
    with pytest.raises(ValueError, match=r"Did you mean 'local'\?.*'slurm'"):
        ClusterConfig(kind="LOCAL")


# =========================================================================== address


def test_address_of_a_non_dask_port_says_so():
    """A port whose service speaks first (an SSH banner, some proxies) was reported as
    "MemoryError: Unable to allocate 3.07 EiB" (distributed read the banner as a frame size)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    stop = threading.Event()

    def banner():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")
                time.sleep(0.5)

    thread = threading.Thread(target=banner, daemon=True)
    thread.start()
    try:
        address = f"tcp://127.0.0.1:{server.getsockname()[1]}"
        with pytest.raises(ClusterConnectionError) as info:
            with connect(ClusterConfig(kind="address", address=address, connect_timeout=5)):
                pytest.fail("connected to an SSH banner")
    finally:
        stop.set()
        thread.join(5)
        server.close()
    msg = str(info.value)
    assert address in msg and "not a Dask scheduler" in msg and "8786" in msg
    assert "EiB" not in msg and "MemoryError" not in msg


def test_address_of_a_silent_port_names_the_likely_mistake():
    """An HTTP port (the dashboard) accepts the connection and waits for a request."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        address = f"tcp://127.0.0.1:{server.server_address[1]}"
        with pytest.raises(ClusterConnectionError) as info:
            with connect(ClusterConfig(kind="address", address=address, connect_timeout=1)):
                pytest.fail("connected to an HTTP server")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    msg = str(info.value)
    assert address in msg and "connect_timeout=1 s" in msg and "8787" in msg and "8786" in msg


# =========================================================================== jobqueue


def _script(kind, **overrides):
    return job_script({"kind": kind, "jobqueue": {"config_file": str(JOBQUEUE_YAML),
                                                  "overrides": {**LOOPBACK_SCHEDULER, **overrides}}})


def test_unquoted_yaml_walltime_is_rejected_not_submitted_as_minutes(no_submission):
    """YAML 1.1 reads an unquoted 12:00:00 as the base-60 integer 43200, which became
    '#SBATCH -t 43200' (30 days in SLURM's minutes) while --lifetime stayed at 230m."""
    section = yaml.safe_load("kind: slurm\njobqueue:\n  overrides:\n    walltime: 12:00:00\n")
    assert section["jobqueue"]["overrides"]["walltime"] == 43200  # the premise
    with pytest.raises(ValueError, match=r"walltime.*43200.*quote") as info:
        job_script(section)
    assert "'12:00:00'" in str(info.value)


# (walltime, seconds by the batch system's own rules: sbatch(1) --time "minutes",
# "minutes:seconds", "hours:minutes:seconds", "days-hours", "days-hours:minutes",
# "days-hours:minutes:seconds"; PBS walltime "[[hours:]minutes:]seconds")
SLURM_TIMES = [("90", 90 * 60), ("90:00", 90 * 60), ("2:00:00", 7200), ("1-12", 36 * 3600),
               ("1-12:30", 36 * 3600 + 1800), ("1-00:00:00", 86400)]
PBS_TIMES = [("7200", 7200), ("90:00", 90 * 60), ("02:00:00", 7200)]


@pytest.mark.parametrize("kind, walltime, seconds", [("slurm", *t) for t in SLURM_TIMES]
                         + [("pbs", *t) for t in PBS_TIMES])
def test_walltime_override_moves_lifetime_by_the_batch_systems_own_format(no_submission, kind, walltime,
                                                                          seconds):
    """The YAML retires workers 10 min before its 4 h walltime (--lifetime 230m); a new walltime
    keeps that margin. "90:00" is 90 minutes to SLURM and PBS (not 90 hours), "7200" is seconds
    to PBS, "1-12" is 36 hours to SLURM: a lifetime past the walltime kills workers mid-task."""
    text = _script(kind, walltime=walltime)
    expected = max(1, (seconds - 600) // 60)
    assert f"--lifetime {expected}m --lifetime-stagger 4m" in text, text


@pytest.mark.parametrize("overrides, key", [
    ({"cores": 4, "processes": 8}, "processes"),
    ({"cores": 0}, "cores"),
    ({"cores": 2.5}, "cores"),
    ({"cores": "x"}, "cores"),
    ({"processes": 0}, "processes"),
    ({"memory": 0}, "memory"),
    ({"memory": "lots"}, "memory"),
    ({"memory": "-1GiB"}, "memory"),
])
def test_jobqueue_sizes_are_checked_naming_the_key(no_submission, overrides, key):
    """These gave '--nthreads 0' workers in the script, or TypeError/ZeroDivisionError from
    inside dask-jobqueue without naming the key."""
    with pytest.raises(ValueError, match=rf"overrides\.{key}|jobqueue\.slurm\.{key}|'{key}'"):
        _script("slurm", **overrides)
