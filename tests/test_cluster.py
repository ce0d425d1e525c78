"""bioxen_dask.cluster: configuration, every deployment kind that can run here, progress.

Real clusters only, all on 127.0.0.1: a LocalCluster, ``dask scheduler``/``dask worker``
subprocesses, the real dask-jobqueue classes (plus one SLURM round trip through a fake
``sbatch``), a real dask-gateway server.  CUDA: the no-GPU error everywhere, a real
LocalCUDACluster only where CuPy sees a device (``-m gpu``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import sys
import textwrap
import time
import types
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pytest

from _cluster_fixtures import free_port  # the cluster fixtures come from conftest.py

from bioxen_dask import cluster as bc
from bioxen_dask.cluster._client import jupyterhub_link_template
from bioxen_dask.cluster._gateway import _close_gateway_client
from bioxen_dask.cluster._jobqueue import _walltime_seconds
from bioxen_dask.cluster import (
    CLUSTER_KINDS,
    ClusterConfig,
    ClusterConnectionError,
    CudaOptions,
    GatewayOptions,
    GPUUnavailableError,
    JobqueueOptions,
    connect,
    dashboard_link,
    job_script,
    local_cluster_layout,
    progress,
)

REPO = Path(__file__).resolve().parents[1]
JOBQUEUE_YAML = REPO / "deploy" / "jobqueue.yaml"


def _listening(pid: int | None = None) -> list[tuple[str, int]]:
    """(ip, port) of the TCP sockets in LISTEN state of a process (default: this one)."""
    import psutil

    proc = psutil.Process(pid)
    return [
        (c.laddr.ip, c.laddr.port)
        for c in proc.net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN
    ]


# =========================================================================== config


def test_defaults_are_local_and_loopback():
    cfg = ClusterConfig()
    assert cfg.kind == "local"
    assert cfg.dashboard_address == "127.0.0.1:0"
    assert cfg.connect_timeout > 0
    assert isinstance(cfg.jobqueue, JobqueueOptions)
    assert isinstance(cfg.gateway, GatewayOptions)
    assert isinstance(cfg.cuda, CudaOptions)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.kind = "slurm"  # type: ignore[misc]


def test_unknown_kind_names_key_and_allowed_values():
    with pytest.raises(ValueError) as info:
        ClusterConfig(kind="slrum")
    msg = str(info.value)
    assert "cluster.kind" in msg
    assert "'slrum'" in msg
    assert "Did you mean 'slurm'" in msg
    for kind in CLUSTER_KINDS:
        assert repr(kind) in msg


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"n_workers": "4"}, "cluster.n_workers"),
        ({"n_workers": True}, "cluster.n_workers"),
        ({"threads_per_worker": 0}, "cluster.threads_per_worker"),
        ({"connect_timeout": -1}, "cluster.connect_timeout"),
        ({"connect_timeout": float("nan")}, "cluster.connect_timeout"),
        ({"wait_timeout": "soon"}, "cluster.wait_timeout"),
        ({"memory_limit": "lots"}, "cluster.memory_limit"),
        ({"processes": "yes"}, "cluster.processes"),
        ({"dashboard_address": "8787"}, "cluster.dashboard_address"),
        ({"kind": "address", "address": "http://host:8786"}, "cluster.address"),
        ({"jobqueue": {"scale": -1}}, "cluster.jobqueue.scale"),
        (
            {"jobqueue": {"scale": 4, "adapt_maximum_jobs": 2}},
            "cluster.jobqueue.adapt_maximum_jobs",
        ),
        ({"jobqueue": {"overrides": ["walltime"]}}, "cluster.jobqueue.overrides"),
        ({"gateway": {"auth": "token"}}, "cluster.gateway.auth"),
        ({"gateway": {"address": "tcp://127.0.0.1:8786"}}, "cluster.gateway.address"),
        ({"gateway": {"n_workers": -2}}, "cluster.gateway.n_workers"),
        ({"gateway": {"colour": "red"}}, "cluster.gateway"),
        ({"cuda": {"devices": "a,b"}}, "cluster.cuda.devices"),
        ({"cuda": {"rmm_pool_size": "huge"}}, "cluster.cuda.rmm_pool_size"),
        ({"cuda": {"protocol": "carrier-pigeon"}}, "cluster.cuda.protocol"),
        ({"jobqueue": 3}, "cluster.jobqueue"),
    ],
)
def test_bad_values_raise_value_error_naming_the_key(kwargs, key):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        ClusterConfig(**kwargs)


def test_kind_specific_keys_are_checked_against_kind():
    with pytest.raises(ValueError, match="only used with kind 'address'"):
        ClusterConfig(kind="local", address="tcp://127.0.0.1:8786")
    with pytest.raises(ValueError, match="either address or scheduler_file"):
        ClusterConfig(kind="address", address="tcp://127.0.0.1:1", scheduler_file="s.json")
    with pytest.raises(ValueError, match="must be true for kind 'cuda'"):
        ClusterConfig(kind="cuda", processes=False)
    with pytest.raises(ValueError, match=r">= 1 for kind 'local'"):
        ClusterConfig(kind="local", n_workers=0)


def test_from_mapping_accepts_pipeline_yaml_section():
    import yaml

    section = yaml.safe_load(
        textwrap.dedent(
            """
            kind: slurm
            connect-timeout: 12
            jobqueue:
              config-file: deploy/jobqueue.yaml
              scale: 4
              adapt-maximum-jobs: 16
              overrides: {walltime: "02:00:00", job-extra-directives: ["--qos=long"]}
            """
        )
    )
    cfg = ClusterConfig.from_mapping(section)
    assert cfg.kind == "slurm"
    assert cfg.connect_timeout == 12.0
    assert cfg.jobqueue == JobqueueOptions(
        config_file="deploy/jobqueue.yaml",
        scale=4,
        adapt_maximum_jobs=16,
        overrides={"walltime": "02:00:00", "job-extra-directives": ["--qos=long"]},
    )
    assert ClusterConfig.from_mapping(None) == ClusterConfig()
    assert ClusterConfig.from_mapping({"address": "tcp://10.0.0.5:8786"}).kind == "address"
    cuda = ClusterConfig.from_mapping({"cuda": {"devices": [0, 1]}, "kind": "cuda"}).cuda
    assert cuda.devices == (0, 1)


def test_from_mapping_unknown_key_suggests_the_right_one():
    with pytest.raises(ValueError) as info:
        ClusterConfig.from_mapping({"kind": "local", "n_worker": 2})
    msg = str(info.value)
    assert "unknown key 'n_worker'" in msg
    assert "Did you mean 'n_workers'" in msg
    assert "threads_per_worker" in msg  # the allowed keys are listed
    with pytest.raises(ValueError, match="cluster: must be a mapping"):
        ClusterConfig.from_mapping(["local"])  # type: ignore[arg-type]


def test_from_dask_config_merges_site_defaults_and_pipeline():
    site = {
        "kind": "gateway",
        "connect-timeout": 7,
        "gateway": {"address": "http://gw.example:8000", "n-workers": 2},
    }
    with dask.config.set({"bioxen-dask.cluster": site}):
        cfg = ClusterConfig.from_dask_config({"gateway": {"n_workers": 8}})
        assert cfg.kind == "gateway"
        assert cfg.connect_timeout == 7
        assert cfg.gateway.address == "http://gw.example:8000"
        assert cfg.gateway.n_workers == 8
        assert ClusterConfig.from_dask_config({"kind": "local"}).kind == "local"
    with dask.config.set({"bioxen-dask.cluster": {"kind": "address", "address": "tcp://a:1"}}):
        # A pipeline asking for another kind drops the site's scheduler address.
        assert ClusterConfig.from_dask_config({"kind": "local"}).address is None


def test_secrets_stay_out_of_repr_and_to_dict():
    cfg = ClusterConfig(
        kind="gateway", gateway={"address": "http://127.0.0.1:1", "password": "hunter2"}
    )
    assert "hunter2" not in repr(cfg)
    assert "hunter2" not in str(cfg.to_dict())
    assert cfg.to_dict()["gateway"]["password"] == "***"
    assert cfg.gateway.password == "hunter2"


@pytest.mark.parametrize(
    ("args", "kwargs", "expected"),
    [
        ((), {"cpu_count": 2, "memory_bytes": 16 * 2**30}, (2, 1)),
        ((), {"cpu_count": 1, "memory_bytes": 1 * 2**30}, (1, 1)),
        ((), {"cpu_count": 4, "memory_bytes": 64 * 2**30}, (4, 1)),
        ((), {"cpu_count": 32, "memory_bytes": 256 * 2**30}, (8, 4)),
        ((), {"cpu_count": 32, "memory_bytes": 8 * 2**30}, (4, 1)),  # memory-bound: T=4
        ((2, None), {"cpu_count": 16, "memory_bytes": 64 * 2**30}, (2, 8)),
        ((None, 4), {"cpu_count": 16, "memory_bytes": 64 * 2**30}, (4, 4)),
        ((3, 5), {"cpu_count": 2, "memory_bytes": 2**30}, (3, 5)),
    ],
)
def test_local_cluster_layout_rule(args, kwargs, expected):
    assert local_cluster_layout(*args, **kwargs) == expected


def test_local_cluster_layout_defaults_to_this_machine():
    n, t = local_cluster_layout()
    assert n >= 1 and t >= 1
    assert n * t <= dask.system.CPU_COUNT


def test_connect_rejects_other_types():
    with pytest.raises(TypeError, match="ClusterConfig or a mapping"):
        with connect("local"):  # type: ignore[arg-type]
            pass


# =========================================================================== local


@pytest.mark.slow  # starts a cluster
def test_local_cluster_computes_binds_loopback_and_closes():
    import psutil

    x = da.arange(10_000, chunks=1_000)
    before = {p.pid for p in psutil.Process().children(recursive=True)}  # e.g. session fixtures
    with connect(ClusterConfig(kind="local", n_workers=1, threads_per_worker=1)) as client:
        cluster = client.cluster
        assert int(x.sum().compute()) == int(np.arange(10_000).sum())
        info = client.scheduler_info()
        assert len(info["workers"]) == 1
        assert all(w["nthreads"] == 1 for w in info["workers"].values())
        assert client.scheduler.address.startswith("tcp://127.0.0.1:")
        for address in info["workers"]:
            assert address.startswith("tcp://127.0.0.1:")
        scheduler_port = int(client.scheduler.address.rsplit(":", 1)[1])
        dashboard_port = info["services"]["dashboard"]
        here = dict((port, ip) for ip, port in _listening())
        assert here[scheduler_port] == "127.0.0.1"
        assert here[dashboard_port] == "127.0.0.1"
        # Nothing this process or the worker processes connect() started listens off-loopback.
        started = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
        for proc in [psutil.Process(), *started]:
            for ip, port in _listening(proc.pid):
                assert ip in ("127.0.0.1", "::1"), (proc, ip, port)
        link = dashboard_link(client)
        assert link == f"http://127.0.0.1:{dashboard_port}/status"
        worker_pids = list(client.run(os.getpid).values())
        assert worker_pids and os.getpid() not in worker_pids  # real worker processes
        workers = [psutil.Process(pid) for pid in worker_pids]
    assert client.status == "closed"
    assert cluster.status.name == "closed"
    gone, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, f"worker processes survived the cluster: {alive}"


def test_local_threads_only_without_dashboard():
    cfg = ClusterConfig(kind="local", n_workers=1, threads_per_worker=2, processes=False,
                        dashboard_address=None)
    before = bc.active_client(None)
    with connect(cfg) as client:
        assert bc.active_client(None) is client
        assert float(da.ones(100, chunks=10).sum().compute()) == 100.0
        assert dashboard_link(client) is None
        # distributed binds ":8787" on all interfaces when given no address: not here.
        assert all(ip == "127.0.0.1" for ip, _ in _listening()), _listening()
        # The client is the default one inside the block ...
        assert dask.config.get("scheduler", None) == "dask.distributed"
    # ... and no longer afterwards.
    assert bc.active_client(None) is before


def test_dashboard_link_under_jupyterhub(monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/alice/")
    before = dask.config.get("distributed.dashboard.link")
    cfg = ClusterConfig(kind="local", n_workers=1, threads_per_worker=1, processes=False)
    with connect(cfg) as client:
        port = client.scheduler_info()["services"]["dashboard"]
        expected = f"/user/alice/proxy/{port}/status"
        assert dashboard_link(client) == expected
        assert client.dashboard_link == expected  # distributed.dashboard.link is set
        assert dask.config.get("distributed.dashboard.link") == "/user/alice/proxy/{port}/status"
    assert dask.config.get("distributed.dashboard.link") == before


def test_dashboard_link_prefix_without_trailing_slash(monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/{bob}")
    assert jupyterhub_link_template().format(port=8787) == "/user/{bob}/proxy/8787/status"
    monkeypatch.delenv("JUPYTERHUB_SERVICE_PREFIX")
    assert jupyterhub_link_template() is None


# =========================================================================== address


def test_address_connects_to_running_scheduler(dask_subprocess_cluster):
    scheduler = dask_subprocess_cluster
    cfg = ClusterConfig(kind="address", address=scheduler.address, n_workers=2, wait_timeout=30)
    with connect(cfg) as client:
        assert client.scheduler.address == scheduler.address
        assert len(client.scheduler_info()["workers"]) == 2
        x = da.random.default_rng(0).random((200, 200), chunks=50)
        assert np.isclose(float(x.sum().compute()), float(np.asarray(x).sum()))
        assert dashboard_link(client).endswith(f":{scheduler.dashboard_port}/status")
    # The scheduler was not ours: it is still serving.
    from distributed import Client

    with Client(scheduler.address, timeout=10) as again:
        assert len(again.scheduler_info()["workers"]) == 2


def test_address_from_environment_and_scheduler_file(dask_subprocess_cluster, monkeypatch):
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", dask_subprocess_cluster.address)
    with connect(ClusterConfig(kind="address")) as client:
        assert client.scheduler.address == dask_subprocess_cluster.address
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS")
    cfg = ClusterConfig(kind="address", scheduler_file=str(dask_subprocess_cluster.scheduler_file))
    with connect(cfg) as client:
        assert int(da.ones(10, chunks=5).sum().compute()) == 10


def test_wait_timeout_names_missing_workers(dask_subprocess_cluster):
    cfg = ClusterConfig(
        kind="address", address=dask_subprocess_cluster.address, n_workers=5, wait_timeout=0.5
    )
    with pytest.raises(TimeoutError, match=r"only 2 of 5 Dask workers joined within wait_timeout"):
        with connect(cfg):
            pytest.fail("did not wait for the workers")


def test_unreachable_address_fails_with_clear_error():
    address = f"tcp://127.0.0.1:{free_port()}"  # closed: nothing listens there
    cfg = ClusterConfig(kind="address", address=address, connect_timeout=0.5)
    with pytest.raises(ClusterConnectionError) as info:
        with connect(cfg):
            pytest.fail("connected to a closed port")
    msg = str(info.value)
    assert address in msg
    assert "connect_timeout=0.5 s" in msg
    assert "--scheduler tcp://HOST:PORT" in msg
    assert "DASK_SCHEDULER_ADDRESS" in msg
    assert isinstance(info.value, ConnectionError)


def test_address_kind_without_any_address(monkeypatch):
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    with dask.config.set({"scheduler-address": None}):
        with pytest.raises(ValueError, match="needs a scheduler address") as info:
            with connect(ClusterConfig(kind="address")):
                pass
    assert "DASK_SCHEDULER_ADDRESS" in str(info.value)
    with pytest.raises(FileNotFoundError, match="--scheduler-file"):
        with connect(ClusterConfig(kind="address", scheduler_file="/nonexistent/s.json")):
            pass


# =========================================================================== jobqueue


@pytest.fixture
def no_submission(monkeypatch):
    """Make any batch-system command (sbatch, qsub, scancel...) a test failure."""
    import dask_jobqueue.core

    calls: list[list[str]] = []

    async def refuse(cmd, **kwargs):
        calls.append(list(cmd))
        raise AssertionError(f"dask-jobqueue tried to run {cmd!r}")

    monkeypatch.setattr(dask_jobqueue.core.Job, "_call", staticmethod(refuse))
    return calls


LOOPBACK_SCHEDULER = {"scheduler-options": {"host": "127.0.0.1"}}


def test_slurm_job_script_from_deploy_yaml(no_submission):
    script = job_script(
        {
            "kind": "slurm",
            "jobqueue": {
                "config_file": str(JOBQUEUE_YAML),
                "overrides": {"account": "neuro-lab", "queue": "normal", **LOOPBACK_SCHEDULER},
            },
        }
    )
    for line in [
        "#SBATCH -J bioxen-dask",
        "#SBATCH -A neuro-lab",
        "#SBATCH -p normal",
        "#SBATCH -t 04:00:00",
        "#SBATCH --mem=64G",
        "#SBATCH --cpus-per-task=16",
        "#SBATCH --hint=nomultithread",
        "#SBATCH --mail-type=NONE",
        'export TMPDIR="${TMPDIR:-/tmp}"',
    ]:
        assert line in script.splitlines(), (line, script)
    assert "-m distributed.cli.dask_worker tcp://127.0.0.1:" in script
    for fragment in ["--nworkers 4", "--nthreads 4", "--memory-limit 16.00GiB",
                     "--lifetime 230m", "--lifetime-stagger 4m", "--local-directory $TMPDIR",
                     "--death-timeout 120", sys.executable]:
        assert fragment in script
    assert no_submission == []


@pytest.mark.parametrize("walltime, lifetime", [("08:00:00", "470m"), ("1-00:00:00", "1430m"), ("90", "80m")])
def test_a_walltime_override_moves_the_worker_lifetime_with_it(no_submission, walltime, lifetime):
    """Workers keep retiring the YAML's margin (10 min of its 4 h) before the job ends, whatever
    walltime a run asks for, unless the run sets worker-extra-args itself."""
    import dask.utils

    def script(**overrides):
        return job_script({"kind": "slurm", "jobqueue": {"config_file": str(JOBQUEUE_YAML),
                                                         "overrides": {**LOOPBACK_SCHEDULER, **overrides}}})

    text = script(walltime=walltime)
    assert f"--lifetime {lifetime} --lifetime-stagger 4m" in text
    seconds = dask.utils.parse_timedelta(lifetime) + dask.utils.parse_timedelta("4m")
    assert seconds < _walltime_seconds(walltime)
    explicit = script(walltime=walltime, **{"worker-extra-args": ["--lifetime", "30m"]})
    assert "--lifetime 30m" in explicit and "--lifetime-stagger" not in explicit


def test_pbs_job_script_from_deploy_yaml(no_submission):
    script = job_script(
        ClusterConfig(
            kind="pbs",
            jobqueue=JobqueueOptions(
                overrides={"account": "neuro-lab", "queue": "workq", **LOOPBACK_SCHEDULER}
            ),
        )
    )
    lines = script.splitlines()
    for line in ["#PBS -N bioxen-dask", "#PBS -A neuro-lab", "#PBS -q workq",
                 "#PBS -l walltime=04:00:00", "#PBS -j oe", "#PBS -m n"]:
        assert line in lines, (line, script)
    assert any(x.startswith("#PBS -l select=1:ncpus=16:mem=") for x in lines), script
    assert "--nworkers 4" in script and "--nthreads 4" in script
    assert no_submission == []


def test_jobqueue_overrides_replace_file_values(no_submission):
    script = job_script(
        {
            "kind": "slurm",
            "jobqueue": {
                "overrides": {
                    "walltime": "00:10:00",
                    "cores": 4,
                    "processes": 1,
                    "memory": "8GiB",
                    "job_extra_directives": ["--constraint=cpu"],
                    **LOOPBACK_SCHEDULER,
                }
            },
        }
    )
    lines = script.splitlines()
    assert "#SBATCH -t 00:10:00" in lines
    assert "#SBATCH --cpus-per-task=4" in lines
    assert "#SBATCH --constraint=cpu" in lines
    assert "#SBATCH --hint=nomultithread" not in lines  # the list is replaced, not merged
    assert "--nworkers" not in script  # one process per job
    assert no_submission == []


def test_jobqueue_rejects_deprecated_and_unknown_keys(tmp_path):
    with pytest.raises(ValueError, match="'job-extra-directives' instead"):
        job_script({"kind": "slurm", "jobqueue": {"overrides": {"job-extra": ["--qos=x"]}}})
    with pytest.raises(ValueError, match="'job-script-prologue' instead"):
        job_script({"kind": "slurm", "jobqueue": {"overrides": {"env_extra": ["module load x"]}}})
    with pytest.raises(ValueError, match="Did you mean 'walltime'"):
        job_script({"kind": "pbs", "jobqueue": {"overrides": {"wall-time": "01:00:00"}}})
    with pytest.raises(ValueError, match="unknown dask-jobqueue key 'job-cpu' for kind 'pbs'"):
        job_script({"kind": "pbs", "jobqueue": {"overrides": {"job-cpu": 4}}})
    other = tmp_path / "site.yaml"
    other.write_text("jobqueue:\n  pbs: {cores: 2, memory: 4GB}\n")
    with pytest.raises(ValueError, match=r"no 'jobqueue.slurm' section; sections found: \['pbs'\]"):
        job_script({"kind": "slurm", "jobqueue": {"config_file": str(other)}})
    with pytest.raises(FileNotFoundError, match="does not exist"):
        job_script({"kind": "slurm", "jobqueue": {"config_file": str(tmp_path / "nope.yaml")}})
    nocores = tmp_path / "nocores.yaml"
    nocores.write_text("jobqueue:\n  slurm: {memory: 4GB}\n")
    with dask.config.set({"jobqueue.slurm.cores": None}):
        with pytest.raises(ValueError, match="needs 'cores'"):
            job_script({"kind": "slurm", "jobqueue": {"config_file": str(nocores)}})
    with pytest.raises(ValueError, match="kind 'slurm' or 'pbs'"):
        job_script({"kind": "local"})


def test_jobqueue_custom_section(tmp_path, no_submission):
    gpu = tmp_path / "gpu.yaml"
    gpu.write_text(
        "jobqueue:\n"
        "  slurm-gpu:\n"
        "    name: bioxen-gpu\n    cores: 8\n    memory: 32GiB\n    processes: 1\n"
        "    job-extra-directives: ['--gres=gpu:1']\n"
        "    scheduler-options: {host: 127.0.0.1}\n"
    )
    script = job_script(
        {"kind": "slurm", "jobqueue": {"config_file": str(gpu), "section": "slurm-gpu"}}
    )
    assert "#SBATCH --gres=gpu:1" in script.splitlines()
    assert "#SBATCH -J bioxen-gpu" in script.splitlines()


FAKE_SBATCH = """\
#!/usr/bin/env bash
# Fake sbatch: run the job script in its own session; print a SLURM-like job id (its pid).
set -e
copy="$FAKE_SLURM_DIR/job-$$.sh"
cp "$1" "$copy"
setsid bash "$copy" >"$FAKE_SLURM_DIR/job-$$.log" 2>&1 </dev/null &
echo "$!" >>"$FAKE_SLURM_DIR/submitted"
echo "Submitted batch job $!"
"""

FAKE_SCANCEL = """\
#!/usr/bin/env bash
# Fake scancel: terminate the job's process group.
echo "$1" >>"$FAKE_SLURM_DIR/cancelled"
kill -TERM -- "-$1" 2>/dev/null || true
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow  # starts a cluster
def test_slurm_round_trip_through_fake_sbatch(tmp_path, monkeypatch):
    """connect(kind='slurm'): submit a job, the worker joins, compute, cancel on exit."""
    from dask_jobqueue.slurm import SLURMJob

    for name, text in [("sbatch", FAKE_SBATCH), ("scancel", FAKE_SCANCEL)]:
        path = tmp_path / name
        path.write_text(text)
        path.chmod(0o755)
    monkeypatch.setenv("FAKE_SLURM_DIR", str(tmp_path))
    monkeypatch.setattr(SLURMJob, "submit_command", str(tmp_path / "sbatch"))
    monkeypatch.setattr(SLURMJob, "cancel_command", str(tmp_path / "scancel"))
    cfg = ClusterConfig(
        kind="slurm",
        wait_timeout=60,
        jobqueue=JobqueueOptions(
            config_file=str(JOBQUEUE_YAML),
            scale=1,
            overrides={
                "cores": 1,
                "processes": 1,
                "memory": "1GiB",
                "walltime": "00:05:00",
                "local-directory": str(tmp_path / "spill"),
                "worker-extra-args": ["--host", "127.0.0.1", "--no-dashboard"],
                "job-script-prologue": [],
                **LOOPBACK_SCHEDULER,
            },
        ),
    )
    submitted: list[int] = []
    try:
        with connect(cfg) as client:
            submitted = [int(p) for p in (tmp_path / "submitted").read_text().split()]
            assert len(submitted) == 1
            assert len(client.scheduler_info()["workers"]) == 1
            assert int(da.arange(100, chunks=10).sum().compute()) == 4950
        cancelled = [int(p) for p in (tmp_path / "cancelled").read_text().split()]
        assert cancelled == submitted
        deadline = time.monotonic() + 15
        while any(_alive(p) for p in submitted) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(p) for p in submitted), "the fake job outlived scancel"
    finally:
        for pid in submitted:  # processes this test started: their own process groups
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


# =========================================================================== gateway


def test_gateway_cluster_computes_and_shuts_down(gateway_server):
    from dask_gateway import BasicAuth, Gateway

    cfg = gateway_server.cluster_config(
        n_workers=1, cluster_options={"worker_cores": 1, "worker_memory": 0.5}
    )
    cfg = dataclasses.replace(cfg, wait_timeout=60)
    with connect(cfg) as client:
        cluster = client.cluster
        assert cluster.name
        workers = client.scheduler_info()["workers"]
        assert len(workers) == 1
        assert client.scheduler.address.startswith("gateway://127.0.0.1:")
        x = da.arange(1_000, chunks=100)
        assert int((x * 2).sum().compute()) == 999_000
        link = dashboard_link(client)
        assert link.startswith(gateway_server.address) and link.endswith("/status")
    gateway = Gateway(
        gateway_server.address,
        proxy_address=gateway_server.proxy_address,
        auth=BasicAuth(gateway_server.username, gateway_server.password),
    )
    try:
        deadline = time.monotonic() + 20
        while gateway.list_clusters() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert gateway.list_clusters() == []  # running/pending clusters only
    finally:
        _close_gateway_client(gateway)


def test_gateway_rejects_unknown_cluster_option(gateway_server):
    cfg = gateway_server.cluster_config(cluster_options={"worker_gpus": 1})
    with pytest.raises(ValueError) as info:
        with connect(cfg):
            pytest.fail("gateway accepted an unknown option")
    msg = str(info.value)
    assert "worker_gpus" in msg
    assert "worker_cores" in msg  # the options the gateway offers are listed


def test_gateway_unreachable_fails_fast():
    address = f"http://127.0.0.1:{free_port()}"
    cfg = ClusterConfig(kind="gateway", connect_timeout=0.5,
                        gateway={"address": address, "auth": "basic"})
    with pytest.raises(ClusterConnectionError, match="dask-gateway server") as info:
        with connect(cfg):
            pass
    assert address in str(info.value)


def test_gateway_without_address(monkeypatch):
    with dask.config.set({"gateway.address": None}):
        with pytest.raises(ValueError, match="DASK_GATEWAY__ADDRESS"):
            with connect(ClusterConfig(kind="gateway")):
                pass


# =========================================================================== cuda


def _fake_cupy(count=None, error=None):
    def get_device_count():
        if error is not None:
            raise error
        return count

    runtime = types.SimpleNamespace(getDeviceCount=get_device_count)
    return types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=runtime))


def _assert_clear_gpu_error(info, *fragments):
    msg = str(info.value)
    assert isinstance(info.value, RuntimeError)
    assert "no GPU was found" in msg
    assert "pip install 'bioxen-dask[gpu]'" in msg
    assert "nvidia-smi" in msg
    assert "never falls back to the CPU" in msg
    for fragment in fragments:
        assert fragment in msg, msg


def test_cuda_without_cupy_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy -> ImportError
    with pytest.raises(GPUUnavailableError) as info:
        with connect(ClusterConfig(kind="cuda")):
            pytest.fail("started a cluster without CuPy")
    _assert_clear_gpu_error(info, "CuPy cannot be imported")


@pytest.mark.parametrize(
    ("cupy", "cuda_options", "fragment"),
    [
        (_fake_cupy(count=0), {}, "CuPy reports 0 CUDA devices"),
        (_fake_cupy(error=RuntimeError("cudaErrorNoDevice")), {}, "CuPy finds no CUDA device"),
        (_fake_cupy(count=1), {"devices": [3]}, "asks for GPU(s) [3] but only 1 device(s)"),
    ],
)
def test_cuda_without_device_is_a_clear_error(monkeypatch, cupy, cuda_options, fragment):
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    with pytest.raises(GPUUnavailableError) as info:
        with connect(ClusterConfig(kind="cuda", cuda=cuda_options)):
            pytest.fail("started a cluster without a GPU")
    _assert_clear_gpu_error(info, fragment)


def test_cuda_without_dask_cuda_or_rmm_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(count=1))
    monkeypatch.setitem(sys.modules, "dask_cuda", None)
    with pytest.raises(GPUUnavailableError) as info:
        with connect(ClusterConfig(kind="cuda")):
            pass
    _assert_clear_gpu_error(info, "dask-cuda cannot be imported")
    monkeypatch.setitem(sys.modules, "dask_cuda", types.SimpleNamespace())
    monkeypatch.setitem(sys.modules, "rmm", None)
    with pytest.raises(GPUUnavailableError, match="rmm-cu12"):
        with connect(ClusterConfig(kind="cuda", cuda={"rmm_pool_size": "1GB"})):
            pass


def _gpu_available() -> bool:
    try:
        import cupy
        import dask_cuda  # noqa: F401

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


@pytest.mark.slow  # starts a cluster
@pytest.mark.gpu
@pytest.mark.skipif(not _gpu_available(), reason="needs CuPy, dask-cuda and a CUDA device")
def test_local_cuda_cluster_runs_cupy_blocks():
    import cupy

    n_gpus = cupy.cuda.runtime.getDeviceCount()
    try:
        import rmm  # noqa: F401

        pool = "256MB"
    except ImportError:
        pool = None
    cfg = ClusterConfig(kind="cuda", cuda=CudaOptions(rmm_pool_size=pool))
    with connect(cfg) as client:
        assert len(client.scheduler_info()["workers"]) == n_gpus
        assert client.scheduler.address.startswith("tcp://127.0.0.1:")
        x = da.ones((4096, 4096), chunks=1024, dtype="float32").map_blocks(
            cupy.asarray, meta=cupy.empty((0, 0), dtype="float32")
        )
        total = x.sum().compute()
        assert isinstance(total, cupy.ndarray)
        assert float(total.get()) == 4096.0 * 4096.0
        if pool is not None:
            allocators = client.run(lambda: repr(cupy.cuda.get_allocator()))
            assert all("rmm" in a.lower() for a in allocators.values()), allocators


# =========================================================================== progress


def test_progress_without_client_uses_tqdm(capsys):
    if bc.active_client(None) is not None:
        pytest.skip("a distributed client leaked from another test is still the default")
    x = da.arange(1_000, chunks=100) * 3
    out = progress(x, desc="tripling")
    assert isinstance(out, da.Array)
    assert int(out.sum().compute()) == 3 * 499_500
    err = capsys.readouterr().err
    assert "tripling" in err and "100%" in err
    a, b = progress([da.ones(4, chunks=2), da.zeros(4, chunks=2)], disable=True)
    assert float(a.sum().compute()) == 4.0 and float(b.sum().compute()) == 0.0
    d = progress({"a": da.ones(3, chunks=1)}, disable=True)
    assert float(d["a"].sum().compute()) == 3.0
    assert list(progress(range(3), disable=True)) == [0, 1, 2]
    with pytest.raises(TypeError, match="dask collections"):
        progress(42)


def test_progress_on_a_cluster_uses_distributed_progress_on_stderr(capsys):
    """distributed's text bar, but on stderr: stdout carries only machine-readable output."""
    from distributed import futures_of

    cfg = ClusterConfig(kind="local", n_workers=1, threads_per_worker=2, processes=False,
                        dashboard_address=None)
    with connect(cfg) as client:
        x = da.arange(1_000, chunks=100) + 1
        out = progress(x)
        assert futures_of(out), "the collection was not persisted on the cluster"
        assert int(out.sum().compute()) == 500_500
        captured = capsys.readouterr()
        assert "100% Completed" in captured.err and captured.out == ""
        futures = client.map(lambda i: i * i, range(5))
        assert progress(futures) is futures
        assert client.gather(futures) == [0, 1, 4, 9, 16]
        captured = capsys.readouterr()
        assert "100% Completed" in captured.err and captured.out == ""
