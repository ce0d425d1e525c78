"""Reliability on real processes (issue 9): a worker SIGKILLed mid-run, a whole run SIGKILLed
and started again. Both must finish with exactly the dataset of an undisturbed run.

* Worker death: a ``dask scheduler`` and two ``dask worker`` processes (no nanny: a killed
  worker is gone for good) on 127.0.0.1; once regions are being written, the worker that is
  busy is SIGKILLed; distributed reschedules its tasks on the survivor.
* Interruption: ``bioxen-dask run`` as a subprocess in its own process group (the CLI, its
  LocalCluster scheduler and its worker processes: a pre-empted job) is SIGKILLed after a
  few regions are in; the half-written output is never reported or opened as complete; the
  same command run again skips the verified regions (counted) and computes only the rest.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from _cluster_fixtures import START_TIMEOUT, dask_command, subprocess_env
from _helpers import assert_same_result, tree_digest
from bioxen_dask.cli import main
from bioxen_dask.cluster import ClusterConfig, connect
from bioxen_dask.datasets import IncompleteResultError, open_result, result_status
from bioxen_dask.io import write_synthetic
from bioxen_dask.pipeline import load_pipeline, run_pipeline

pytestmark = pytest.mark.slow  # the integration tier: pytest -m "not slow" leaves it out

REPO = Path(__file__).resolve().parents[1]
SMALL = REPO / "pipelines" / "small_test.yaml"


def _env() -> dict[str, str]:
    env = subprocess_env()
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")  # same BLAS as the nanny's
    return env


def _wait(predicate, timeout: float, what: str, interval: float = 0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"{what}: not after {timeout:g} s", pytrace=False)


def _regions_done(path: Path) -> int:
    with contextlib.suppress(Exception):  # the output may be half-created while we look
        return int(result_status(path)["regions_done"] or 0)
    return 0


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return write_synthetic(tmp_path_factory.mktemp("rel") / "signals.zarr", n_rois=24, n_frames=3000, seed=11)


def _items(store: Path, out: Path, cache: Path) -> list[str]:
    """24 regions of one roi each, with maps: long enough to be interrupted."""
    return [f"input.store={store}", f"outputs.path={out}", f"significance.cache={cache}", "outputs.maps=true",
            "compute.roi_chunk=1", "significance.mc_count=10"]


def _sets(store: Path, out: Path, cache: Path) -> list[str]:
    return [arg for item in _items(store, out, cache) for arg in ("--set", item)]


# ----------------------------------------------------------------------------- worker death


@pytest.fixture
def killable_cluster(tmp_path):
    """``dask scheduler`` + 2 ``dask worker --no-nanny`` subprocesses; yields (address, {name: Popen})."""
    procs: list[subprocess.Popen] = []

    def start(cmd, log):
        with open(log, "ab") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, env=_env(), cwd=tmp_path)
        procs.append(proc)
        return proc

    sched_file = tmp_path / "scheduler.json"
    try:
        start(dask_command("scheduler", "--host", "127.0.0.1", "--port", "0", "--dashboard-address",
                           "127.0.0.1:0", "--scheduler-file", str(sched_file)), tmp_path / "scheduler.log")
        address = _wait(lambda: sched_file.exists() and json.loads(sched_file.read_text() or "{}").get("address"),
                        START_TIMEOUT, "scheduler file", 0.1)
        workers = {}
        for i in range(2):
            name = f"killable-{i}"
            workers[name] = start(dask_command("worker", address, "--name", name, "--host", "127.0.0.1",
                                               "--nthreads", "1", "--no-nanny", "--no-dashboard",
                                               "--memory-limit", "2GiB", "--local-directory",
                                               str(tmp_path / name)), tmp_path / f"{name}.log")
        yield address, workers
    finally:
        for proc in reversed(procs):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)


def test_worker_killed_mid_run_still_gives_the_undisturbed_dataset(store, tmp_path, killable_cluster):
    address, workers = killable_cluster
    cfg = load_pipeline(SMALL, _items(store, tmp_path / "calm.zarr", tmp_path / "cache-calm")
                        + ["cluster.kind=address", f"cluster.address={address}", "cluster.n_workers=2",
                           "cluster.wait_timeout=60"])
    with connect(cfg.cluster_config()) as client:
        calm = run_pipeline(cfg, progress=False)
        assert calm["write"]["written"] == calm["write"]["regions"] == 24

        out = tmp_path / "disturbed.zarr"
        disturbed_cfg = load_pipeline(SMALL, _items(store, out, tmp_path / "cache-disturbed"))
        result: dict = {}

        def work():
            try:
                result["summary"] = run_pipeline(disturbed_cfg, progress=False)
            except BaseException as exc:  # noqa: BLE001 - reported by the test below
                result["error"] = exc

        thread = threading.Thread(target=work)
        thread.start()
        _wait(lambda: _regions_done(out) >= 2, 120, "regions of the disturbed run being written")

        def busy_worker():  # a worker that is running a task right now
            for addr, keys in client.processing().items():
                if keys:
                    name = client.scheduler_info(n_workers=-1)["workers"][addr]["name"]
                    return name
            return None

        victim = _wait(busy_worker, 60, "a busy worker")
        done_at_kill = _regions_done(out)
        os.kill(workers[victim].pid, signal.SIGKILL)
        workers[victim].wait(timeout=10)
        thread.join(timeout=300)
        assert not thread.is_alive(), "the run did not finish after the worker died"
        assert "error" not in result, f"the run failed after the worker died: {result.get('error')!r}"
        summary = result["summary"]
        assert done_at_kill < summary["write"]["regions"], "the worker died only after the run had finished"
        survivors = client.scheduler_info(n_workers=-1)["workers"]
        assert len(survivors) == 1 and victim not in {w["name"] for w in survivors.values()}
    assert summary["write"]["written"] == summary["write"]["regions"]
    assert_same_result(open_result(out), open_result(tmp_path / "calm.zarr"))


# ----------------------------------------------------------------------------- interruption


def _cli(store: Path, out: Path, cache: Path) -> list[str]:
    return [sys.executable, "-m", "bioxen_dask.cli", "run", str(SMALL), "--cluster", "local", "--no-progress",
            *_sets(store, out, cache)]


def test_killed_run_resumes_without_redoing_finished_regions(store, tmp_path, capsys):
    before = tree_digest(store)
    out = tmp_path / "run.zarr"
    cache = tmp_path / "cache"
    log = open(tmp_path / "killed.log", "wb")
    proc = subprocess.Popen(_cli(store, out, cache), stdout=log, stderr=subprocess.STDOUT, env=_env(),
                            start_new_session=True, cwd=tmp_path)
    try:
        _wait(lambda: _regions_done(out) >= 3 or proc.poll() is not None, 180, "regions being written")
        assert proc.poll() is None, "the run finished before it could be interrupted"
        os.killpg(proc.pid, signal.SIGKILL)  # the CLI, its scheduler and its workers: a pre-empted job
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        log.close()
    time.sleep(0.5)  # let nothing be still in flight (everything is dead; belt and braces)
    status = result_status(out)
    done = status["regions_done"]
    assert status["is_result"] and not status["complete"] and 3 <= done < status["regions"] == 24
    with pytest.raises(IncompleteResultError, match=rf"incomplete \({done} of 24 regions written\)"):
        open_result(out)
    assert main(["info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["complete"] is False and info["regions_done"] == done

    resumed = subprocess.run(_cli(store, out, cache), capture_output=True, env=_env(), cwd=tmp_path, timeout=300)
    assert resumed.returncode == 0, resumed.stderr.decode()[-3000:]
    write = json.loads(resumed.stdout)["write"]
    # the regions finished before the kill are verified and kept; only the others are computed
    assert write["resumed"] and write["skipped"] == done and write["written"] == 24 - done

    fresh = subprocess.run(_cli(store, tmp_path / "fresh.zarr", tmp_path / "cache-fresh"), capture_output=True,
                           env=_env(), cwd=tmp_path, timeout=300)
    assert fresh.returncode == 0, fresh.stderr.decode()[-3000:]
    assert json.loads(fresh.stdout)["write"]["written"] == 24
    assert_same_result(open_result(out), open_result(tmp_path / "fresh.zarr"))
    assert tree_digest(store) == before  # the input store was not touched by any of the three runs
