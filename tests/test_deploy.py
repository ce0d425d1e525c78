"""deploy/: every recipe parses and carries the keys its tool expects.

No Kubernetes, Helm, Docker or batch system is needed: manifests and values are
key-checked against what the dask-kubernetes operator, the daskhub/dask-gateway charts
and dask itself read; the gateway's extraConfig Python is executed against the real
``dask_gateway_server`` option classes; the Dockerfile installs from the lock (constraints.txt).
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
IMAGE = "ghcr.io/bioxen-dask/bioxen-dask"
JUPYTERHUB_LINK = "{JUPYTERHUB_SERVICE_PREFIX}proxy/{port}/status"

YAML_FILES = sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")])


def load(relative: str) -> Any:
    with open(DEPLOY / relative) as f:
        return yaml.safe_load(f)


def dig(mapping: Any, dotted: str) -> Any:
    for key in dotted.split("."):
        assert isinstance(mapping, dict) and key in mapping, f"missing key {dotted!r} at {key!r}"
        mapping = mapping[key]
    return mapping


def test_expected_files_exist():
    for relative in [
        "README.md",
        "Dockerfile",
        "dask-config.yaml",
        "jobqueue.yaml",
        "gateway/daskhub-values.yaml",
        "kubernetes/daskcluster.yaml",
        "gpu/dask-cuda-worker.sh",
        "gpu/slurm-gpu-job.sh",
        "gpu/daskworkergroup-gpu.yaml",
    ]:
        assert (DEPLOY / relative).is_file(), relative


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_yaml_parses_to_a_mapping(path):
    with open(path) as f:
        data = yaml.safe_load(f)
    assert isinstance(data, dict) and data, path


def test_readme_mentions_every_recipe_file():
    readme = (DEPLOY / "README.md").read_text()
    for path in DEPLOY.rglob("*"):
        if path.is_file() and path.name != "README.md":
            rel = str(path.relative_to(DEPLOY))
            assert rel in readme or path.name in readme, f"deploy/README.md never mentions {rel}"
    for topic in ["LocalCluster", "--scheduler tcp://", "dask-jobqueue", "dask-gateway",
                  "daskhub", "DaskCluster", "dask-cuda", "image"]:
        assert topic in readme, topic


# --------------------------------------------------------------------------- kubernetes


def _containers(pod_spec: dict, where: str) -> list[dict]:
    containers = dig(pod_spec, "containers")
    assert isinstance(containers, list) and containers, where
    for c in containers:
        for key in ("name", "image", "args"):
            assert key in c, f"{where}: container without {key!r}"
        assert isinstance(c["args"], list) and all(isinstance(a, str) for a in c["args"]), (
            f"{where}: args must be a list of strings (quote numbers)"
        )
    return containers


def _check_resources(container: dict, where: str) -> None:
    resources = container.get("resources", {})
    for part in ("requests", "limits"):
        assert set(resources.get(part, {})) >= {"cpu", "memory"}, f"{where}: {part}"


def test_daskcluster_manifest_matches_the_operator_schema():
    doc = load("kubernetes/daskcluster.yaml")
    assert doc["apiVersion"] == "kubernetes.dask.org/v1"
    assert doc["kind"] == "DaskCluster"
    name = dig(doc, "metadata.name")
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name), "not a DNS-1123 name"
    assert set(doc["spec"]) == {"worker", "scheduler"}

    worker = dig(doc, "spec.worker")
    assert isinstance(worker["replicas"], int) and worker["replicas"] >= 1
    (wc,) = _containers(worker["spec"], "worker")
    assert wc["image"].startswith(IMAGE + ":") and not wc["image"].endswith(":latest")
    assert wc["args"][:2] == ["dask", "worker"]
    assert "$(DASK_WORKER_NAME)" in wc["args"]
    _check_resources(wc, "worker")

    (sc,) = _containers(dig(doc, "spec.scheduler.spec"), "scheduler")
    assert sc["image"] == wc["image"], "scheduler and workers must run the same image"
    assert sc["args"][:2] == ["dask", "scheduler"]
    ports = {p["name"]: p["containerPort"] for p in sc["ports"]}
    assert ports == {"tcp-comm": 8786, "http-dashboard": 8787}
    for probe in ("readinessProbe", "livenessProbe"):
        assert sc[probe]["httpGet"]["path"] == "/health"
        assert sc[probe]["httpGet"]["port"] in ports
    _check_resources(sc, "scheduler")

    service = dig(doc, "spec.scheduler.service")
    assert service["type"] == "ClusterIP", "the scheduler must not be exposed outside"
    assert service["selector"] == {
        "dask.org/cluster-name": name,
        "dask.org/component": "scheduler",
    }
    for port in service["ports"]:
        assert port["targetPort"] in ports
        assert port["port"] == ports[port["targetPort"]]


def test_docs_name_the_scheduler_service_the_operator_creates():
    """The operator names the scheduler Service ``<cluster>-scheduler`` (SCHEDULER_NAME_TEMPLATE)."""
    name = dig(load("kubernetes/daskcluster.yaml"), "metadata.name")
    texts = {"README.md": (DEPLOY / "README.md").read_text(),
             "kubernetes/daskcluster.yaml": (DEPLOY / "kubernetes" / "daskcluster.yaml").read_text()}
    for where, text in texts.items():
        services = re.findall(r"svc/([a-z0-9-]+)", text)
        addresses = re.findall(r"tcp://([a-z0-9-]+)\.<namespace>", text)
        assert services and addresses, where
        for found in services + addresses:
            assert found == f"{name}-scheduler", f"{where}: {found!r} is not the scheduler Service"


def test_gpu_worker_group_joins_the_daskcluster():
    cluster = load("kubernetes/daskcluster.yaml")
    doc = load("gpu/daskworkergroup-gpu.yaml")
    assert doc["apiVersion"] == "kubernetes.dask.org/v1"
    assert doc["kind"] == "DaskWorkerGroup"
    assert dig(doc, "spec.cluster") == cluster["metadata"]["name"]
    (c,) = _containers(dig(doc, "spec.worker.spec"), "gpu worker")
    assert c["image"].startswith(IMAGE + ":") and c["image"].endswith("-gpu")
    assert c["args"][:3] == ["dask", "cuda", "worker"]
    args = c["args"]
    assert args[args.index("--set-rmm-allocator-for-libs") + 1] == "cupy"
    assert "--rmm-pool-size" in args
    assert args[args.index("--resources") + 1] == "GPU=1"
    for part in ("requests", "limits"):
        assert c["resources"][part]["nvidia.com/gpu"] == 1


# --------------------------------------------------------------------------- daskhub


def kube_cluster_config_traits() -> set[str]:
    """Trait names of dask-gateway's KubeClusterConfig, read without importing it.

    (Importing the Kubernetes backend needs kubernetes_asyncio, which tests do not.)
    """
    import dask_gateway_server
    from dask_gateway_server.backends.base import ClusterConfig

    names = set(ClusterConfig.class_trait_names())
    source = Path(dask_gateway_server.__file__).parent / "backends" / "kubernetes" / "backend.py"
    tree = ast.parse(source.read_text())
    (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "KubeClusterConfig"]
    for node in cls.body:
        if isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def _run_extra_config(blocks: dict[str, str]):
    from traitlets.config import Config

    c = Config()
    for key in sorted(blocks):  # the chart runs them in key order
        code = compile(blocks[key], f"daskhub-values.yaml:extraConfig[{key}]", "exec")
        exec(code, {"c": c, "__name__": "dask_gateway_config"})  # noqa: S102 (our own file)
    return c


def test_daskhub_values_use_this_projects_image_everywhere():
    values = load("gateway/daskhub-values.yaml")
    assert set(values) >= {"jupyterhub", "dask-gateway"}
    singleuser = dig(values, "jupyterhub.singleuser.image")
    backend = dig(values, "dask-gateway.gateway.backend.image")
    for image in (singleuser, backend):
        assert image["name"] == IMAGE
        assert isinstance(image["tag"], str) and image["tag"] not in ("", "latest")
    assert singleuser["tag"] == backend["tag"], "notebook and workers must run identical code"
    cluster = load("kubernetes/daskcluster.yaml")
    k8s_image = cluster["spec"]["worker"]["spec"]["containers"][0]["image"]
    assert k8s_image == f"{IMAGE}:{singleuser['tag']}"
    gpu = load("gpu/daskworkergroup-gpu.yaml")
    gpu_image = gpu["spec"]["worker"]["spec"]["containers"][0]["image"]
    assert gpu_image == f"{IMAGE}:{singleuser['tag']}-gpu"


def test_daskhub_values_wire_jupyterhub_and_gateway():
    values = load("gateway/daskhub-values.yaml")
    assert dig(values, "jupyterhub.hub.services")["dask-gateway"] is not None
    env = dig(values, "jupyterhub.singleuser.extraEnv")
    assert env["DASK_DISTRIBUTED__DASHBOARD__LINK"] == JUPYTERHUB_LINK
    assert env["DASK_BIOXEN_DASK__CLUSTER__KIND"] == "gateway"
    assert env["DASK_GATEWAY__CLUSTER__OPTIONS__IMAGE"] == "{JUPYTER_IMAGE_SPEC}"
    assert dig(values, "dask-gateway.enabled") is True
    assert dig(values, "dask-gateway.gateway.auth.type") == "jupyterhub"
    assert dig(values, "dask-gateway.gateway.prefix") == "/services/dask-gateway"
    assert dig(values, "dask-gateway.traefik.service.type") == "ClusterIP"
    for role in ("scheduler", "worker"):
        spec = dig(values, f"dask-gateway.gateway.backend.{role}")
        for resource in ("cores", "memory"):
            assert set(spec[resource]) == {"request", "limit"}, (role, resource)
    # No secret is committed: tokens go in a separate secrets file.
    text = (DEPLOY / "gateway" / "daskhub-values.yaml").read_text()
    assert not re.search(r"apiToken:\s*[\"']?[0-9a-f]{16,}", text)


def test_daskhub_gateway_extra_config_runs_and_offers_valid_options():
    pytest.importorskip("dask_gateway_server")
    from dask_gateway_server.options import Options

    values = load("gateway/daskhub-values.yaml")
    blocks = dig(values, "dask-gateway.gateway.extraConfig")
    assert isinstance(blocks, dict) and all(isinstance(v, str) for v in blocks.values())
    c = _run_extra_config(blocks)
    assert c.KubeClusterConfig.scheduler_cmd == ["dask", "scheduler"]
    assert c.KubeClusterConfig.worker_cmd == ["dask", "worker"]
    options = c.Backend.cluster_options
    assert isinstance(options, Options)
    fields = {f.field: f for f in options.fields}
    assert set(fields) == {"worker_cores", "worker_memory", "image"}
    singleuser = dig(values, "jupyterhub.singleuser.image")
    assert fields["image"].default == f"{singleuser['name']}:{singleuser['tag']}"

    requested = options.parse_options({"worker_cores": 4, "worker_memory": 16.0})
    overrides = options.get_configuration(requested, user=None)
    traits = kube_cluster_config_traits()
    assert set(overrides) <= traits, f"not KubeClusterConfig traits: {set(overrides) - traits}"
    assert overrides["worker_cores"] == 4
    assert overrides["worker_memory"] == "16.00G"
    assert overrides["image"] == fields["image"].default
    for name in ("scheduler_cmd", "worker_cmd", "idle_timeout", "cluster_max_workers"):
        assert name in traits, name
    with pytest.raises(ValueError):
        options.parse_options({"worker_cores": 1000})


# --------------------------------------------------------------------------- jobqueue


def test_jobqueue_yaml_uses_current_dask_jobqueue_keys():
    dask_jobqueue = pytest.importorskip("dask_jobqueue")
    packaged = yaml.safe_load(
        (Path(dask_jobqueue.__file__).parent / "jobqueue.yaml").read_text()
    )["jobqueue"]
    deprecated = {"extra", "env-extra", "job-extra", "header-skip", "project"}
    ours = load("jobqueue.yaml")["jobqueue"]
    assert set(ours) == {"slurm", "pbs"}
    for kind, section in ours.items():
        unknown = set(section) - set(packaged[kind])
        assert not unknown, f"{kind}: keys dask-jobqueue does not know: {unknown}"
        assert not set(section) & deprecated, f"{kind}: deprecated keys"
        assert isinstance(section["cores"], int) and section["cores"] >= 1
        assert section["memory"] and section["walltime"]
        assert section["processes"] >= 1 and section["cores"] % section["processes"] == 0
        assert isinstance(section["job-extra-directives"], list) and section["job-extra-directives"]
        assert isinstance(section["job-script-prologue"], list)


def _lifetime_and_walltime(script: str) -> tuple[float, float]:
    from dask.utils import parse_timedelta

    words = script.split()
    durations = []
    for flag in ("--lifetime", "--lifetime-stagger"):
        value = words[words.index(flag) + 1]
        try:  # what distributed.Worker does with it: an unparsable value kills every worker
            durations.append(parse_timedelta(value))
        except ValueError as e:
            pytest.fail(f"{flag} {value}: distributed cannot parse it ({e}); use e.g. 230m")
    lifetime, stagger = durations
    match = re.search(r"(?:#SBATCH -t |walltime=)(\d+):(\d\d):(\d\d)", script)
    assert match, script
    h, m, s = map(int, match.groups())
    return lifetime + stagger, h * 3600 + m * 60 + s


def _readme_jobqueue_example() -> dict:
    readme = (DEPLOY / "README.md").read_text()
    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", readme, re.S)]
    (example,) = [b["cluster"] for b in blocks if isinstance(b, dict) and "jobqueue" in b.get("cluster", {})]
    return example


@pytest.mark.parametrize("source", ["jobqueue.yaml", "README example"])
def test_workers_retire_before_the_walltime(source):
    """``--lifetime`` (+ stagger) must end before the job's walltime, also when a run overrides it."""
    pytest.importorskip("dask_jobqueue")
    from bioxen_dask.cluster import job_script

    configs = ([{"kind": kind} for kind in ("slurm", "pbs")] if source == "jobqueue.yaml"
               else [_readme_jobqueue_example()])
    for cfg in configs:
        cfg = dict(cfg)
        cfg["jobqueue"] = {k: v for k, v in cfg.get("jobqueue", {}).items() if k in ("overrides", "config_file")}
        script = job_script(cfg)
        retire, walltime = _lifetime_and_walltime(script)
        assert 0.9 * walltime < retire < walltime, (
            f"{source} ({cfg['kind']}): workers retire after {retire:.0f} s of a {walltime:.0f} s job")


def test_jobqueue_memory_is_what_the_job_requests():
    """The file's per-job memory is what the batch system is asked for (no unit surprises)."""
    pytest.importorskip("dask_jobqueue")
    from dask.utils import parse_bytes

    from bioxen_dask.cluster import job_script

    ours = load("jobqueue.yaml")["jobqueue"]
    slurm = job_script({"kind": "slurm"})
    assert f"#SBATCH --mem={parse_bytes(ours['slurm']['memory']) // 2**30}G" in slurm, slurm
    pbs = job_script({"kind": "pbs"})
    # PBS Pro reads "gb" as 2**30 bytes
    assert f"mem={parse_bytes(ours['pbs']['memory']) // 2**30}GB" in pbs, pbs


# --------------------------------------------------------------------------- dask config


def _leaves(mapping: dict, prefix: str = "") -> list[str]:
    out = []
    for key, value in mapping.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict) and value:
            out.extend(_leaves(value, path))
        else:
            out.append(path)
    return out


def test_dask_config_keys_exist_in_distributed():
    import distributed

    defaults = yaml.safe_load(
        (Path(distributed.__file__).parent / "distributed.yaml").read_text()
    )
    ours = load("dask-config.yaml")
    assert set(ours) == {"bioxen-dask", "distributed"}
    for path in _leaves(ours["distributed"]):
        node = defaults["distributed"]
        for key in path.split("."):
            assert isinstance(node, dict) and key in node, f"distributed.{path} is not a dask key"
            node = node[key]


def test_dask_config_values_are_sane():
    import dask
    from dask.utils import parse_timedelta

    ours = load("dask-config.yaml")
    memory = ours["distributed"]["worker"]["memory"]
    thresholds = [memory[k] for k in ("target", "spill", "pause", "terminate")]
    assert all(0 < t <= 1 for t in thresholds)
    assert thresholds == sorted(thresholds) and len(set(thresholds)) == 4
    link = ours["distributed"]["dashboard"]["link"]
    # Safe in every process: no environment variables needed to format it.
    assert link.format(scheme="http", host="127.0.0.1", port=8787) == "http://127.0.0.1:8787/status"
    assert "JUPYTERHUB_SERVICE_PREFIX" in (DEPLOY / "dask-config.yaml").read_text()
    for key in ("connect", "tcp"):
        parse_timedelta(ours["distributed"]["comm"]["timeouts"][key])
    # The site section is a valid ClusterConfig, loopback by default.
    from bioxen_dask.cluster import ClusterConfig

    cfg = ClusterConfig.from_mapping(ours["bioxen-dask"]["cluster"])
    assert cfg.kind == "local"
    assert cfg.dashboard_address.startswith("127.0.0.1:")
    with dask.config.set(ours):
        assert ClusterConfig.from_dask_config() == cfg


# --------------------------------------------------------------------------- Dockerfile


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text()
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


_PIP_OPTIONS_WITH_VALUE = {"-c", "--constraint", "--build-constraint", "-r", "--requirement",
                           "-i", "--index-url", "--extra-index-url", "-f", "--find-links"}


def _pip_installs(run: str) -> list[tuple[list[str], dict[str, list[str]]]]:
    """Each ``pip install`` in a RUN line: (requirements, {option: [values]})."""
    installs = []
    for command in re.split(r"&&|;|\bthen\b|\bfi\b", run):
        words = shlex.split(command)
        if "pip" not in words or "install" not in words:
            continue
        args = words[words.index("install") + 1:]
        reqs: list[str] = []
        options: dict[str, list[str]] = {}
        i = 0
        while i < len(args):
            if args[i] in _PIP_OPTIONS_WITH_VALUE:
                options.setdefault(args[i], []).append(args[i + 1])
                i += 2
                continue
            if args[i].startswith("-"):
                options.setdefault(args[i], [])
            else:
                reqs.append(args[i])
            i += 1
        installs.append((reqs, options))
    return installs


def _pip_requirements(run: str) -> list[str]:
    return [r for reqs, _ in _pip_installs(run) for r in reqs]


def _name(requirement: str) -> str:
    return re.split(r"[\[=<>!~ ;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _lock() -> dict[str, str]:
    """constraints.txt as {name: version}: the one source of truth for versions."""
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep, f"constraints.txt: not an exact pin: {line!r}"
            pins[_name(name)] = version.split(";")[0].strip()
    return pins


def test_dockerfile_installs_everything_from_the_lock():
    """The image runs what the tests ran: every pip install goes through constraints.txt and
    names no version of its own (the lock is the one place versions live), and every package it
    names is in the lock (a name the lock lacks would float)."""
    instructions = _dockerfile_instructions()
    froms = [rest for word, rest in instructions if word == "FROM"]
    assert froms, "no FROM"
    for image in froms:
        name = image.split()[0]
        assert ":" in name and not name.endswith(":latest"), f"FROM without a pinned tag: {name}"
    assert froms[0].startswith("python:3.11"), froms[0]
    copies = [rest for word, rest in instructions if word == "COPY"]
    assert "constraints.txt /opt/bioxen-dask/constraints.txt" in copies
    lock = _lock()
    installs = [i for word, rest in instructions if word == "RUN" for i in _pip_installs(rest)]
    assert len(installs) >= 4
    names = set()
    for reqs, options in installs:
        constraint = options.get("-c", []) + options.get("--constraint", [])
        if any(r.startswith("/opt/bioxen-dask") for r in reqs):
            assert "--no-deps" in options, "the project goes in --no-deps, after its locked deps"
            assert options.get("--build-constraint") == ["/opt/bioxen-dask/constraints.txt"], (
                "the project's build must use the lock"
            )
            continue
        assert constraint == ["/opt/bioxen-dask/constraints.txt"], (
            f"pip install {' '.join(reqs)} does not install through the lock"
        )
        for req in reqs:
            assert not re.search(r"[=<>!~]", req), (
                f"deploy/Dockerfile names a version ({req!r}): versions live in constraints.txt"
            )
            assert _name(req) in lock, f"{req!r} is not in constraints.txt (run `make lock`)"
            names.add(_name(req))
    for needed in ("pip", "dask", "distributed", "numpy", "xarray", "zarr", "bokeh", "dask-gateway",
                   "dask-jobqueue", "jupyterhub", "jupyter-server-proxy", "cupy-cuda12x",
                   "dask-cuda", "rmm-cu12"):
        assert needed in names, needed
    assert "deploy/dask-config.yaml /etc/dask/bioxen-dask.yaml" in copies
    assert "deploy/jobqueue.yaml /etc/dask/jobqueue.yaml" in copies
    assert any(word == "USER" and rest != "root" for word, rest in instructions)


def test_dockerfile_names_what_distributed_compares():
    """Every package distributed's version check compares is installed by name from the lock,
    so a client installed from the same lock passes ``get_versions(check=True)`` against it."""
    from distributed.versions import optional_packages, required_packages

    names = {_name(r) for word, rest in _dockerfile_instructions() if word == "RUN"
             for r in _pip_requirements(rest)}
    lock = _lock()
    compared = sorted(set(required_packages) | set(optional_packages))
    assert {"dask", "distributed", "numpy", "msgpack", "cloudpickle"} <= set(compared)
    for package in compared:
        if _name(package) in lock:  # lz4, python-blosc...: in neither the lock nor the image
            assert _name(package) in names, (
                f"deploy/Dockerfile does not install {package} (distributed compares it)"
            )


def test_the_lock_covers_every_requirement_of_pyproject():
    """constraints.txt resolves every extra of pyproject.toml: each requirement is in it, at a
    version its range admits (a stale lock after a pyproject edit fails here: `make lock`)."""
    import tomllib

    from packaging.requirements import Requirement

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    lock = _lock()
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements.extend(extra)
    assert len(requirements) > 20
    for text in requirements:
        req = Requirement(text)
        name = _name(req.name)
        assert name in lock, f"{name} (pyproject.toml) is not in constraints.txt: run `make lock`"
        assert req.specifier.contains(lock[name], prereleases=True), (
            f"constraints.txt pins {name}=={lock[name]}, outside pyproject.toml's {req}: "
            "run `make lock`"
        )


def test_the_lock_pins_no_project_and_ranges_stay_ranges():
    """pyproject.toml keeps lower bounds (what the code needs), not exact pins; the one exact
    pin is pycwt, the numerical reference the tests compare against."""
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    exact = [r for r in project["dependencies"] if "==" in r]
    assert not exact, f"pyproject.toml pins runtime dependencies exactly: {exact}"
    assert "bioxen-dask" not in _lock()


def test_installed_versions_are_the_locked_ones():
    """The suite runs in the environment the lock describes (``make test`` installs through it).
    ``make test-latest`` runs the suite on the newest releases with BIOXEN_DASK_UNLOCKED=1,
    where this one comparison is not the question."""
    import os

    if os.environ.get("BIOXEN_DASK_UNLOCKED") == "1":
        pytest.skip("make test-latest: running on unlocked newest releases on purpose")
    lock = _lock()
    wrong = {}
    for dist in importlib.metadata.distributions():
        name = _name(dist.metadata["Name"])
        if name in lock and dist.version != lock[name]:
            wrong[name] = f"installed {dist.version}, locked {lock[name]}"
    assert not wrong, f"the environment differs from constraints.txt (run `make install`): {wrong}"


# --------------------------------------------------------------------------- GPU scripts


@pytest.mark.parametrize("script", ["gpu/dask-cuda-worker.sh", "gpu/slurm-gpu-job.sh", "gpu/check-gpu.sh"])
def test_gpu_scripts_are_valid_bash(script):
    path = DEPLOY / script
    assert path.stat().st_mode & 0o111, f"{script} is not executable"
    assert path.read_text().startswith("#!/usr/bin/env bash")
    result = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_gpu_worker_script_refuses_cpu_only_and_uses_rmm_for_cupy():
    text = (DEPLOY / "gpu" / "dask-cuda-worker.sh").read_text()
    assert "exec dask cuda worker" in text
    for flag in ("--rmm-pool-size", "--set-rmm-allocator-for-libs cupy", "--resources \"GPU=1\"",
                 "--nthreads 1"):
        assert flag in text, flag
    assert "nvidia-smi" in text and "exit 1" in text
    # Without a GPU (this machine) it refuses to start rather than running on CPU.
    result = subprocess.run(
        ["bash", str(DEPLOY / "gpu" / "dask-cuda-worker.sh"), "tcp://127.0.0.1:1"],
        capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin"},  # no nvidia-smi, no CUDA Python on this PATH
    )
    assert result.returncode == 1
    assert "refusing to start CPU-only workers" in result.stderr or "CuPy" in result.stderr


def test_slurm_gpu_job_requests_gpus_and_uses_the_worker_script():
    text = (DEPLOY / "gpu" / "slurm-gpu-job.sh").read_text()
    directives = [line for line in text.splitlines() if line.startswith("#SBATCH")]
    assert any("--gpus-per-node" in d or "--gres=gpu" in d for d in directives)
    assert any(d.startswith("#SBATCH -t ") for d in directives)
    assert "dask scheduler --scheduler-file" in text
    assert "dask-cuda-worker.sh\" --scheduler-file" in text
    assert "--dashboard-address 127.0.0.1:" in text


def _fake_slurm_tools(bin_dir: Path, log: Path) -> dict[str, str]:
    """`dask`, `srun`, `python` and `bioxen-dask` stand-ins that log their arguments."""
    bin_dir.mkdir()
    scripts = {
        # `dask scheduler --scheduler-file F ...`: write F, then idle like a scheduler
        "dask": 'echo "dask $*" >>"$LOG"\n'
                'while [ $# -gt 0 ]; do [ "$1" = --scheduler-file ] && f=$2; shift; done\n'
                'printf \'{"address": "tcp://10.0.0.1:8786"}\' >"$f"\nexec sleep 30\n',
        # srun must be handed a worker script that exists on the compute nodes
        "srun": 'echo "srun $*" >>"$LOG"\nfor a in "$@"; do case $a in */dask-cuda-worker.sh)\n'
                '  [ -x "$a" ] && echo "worker-script-ok $a" >>"$LOG";; esac; done\n',
        # the heredoc waits for workers and prints the address from the scheduler file
        "python": 'cat >/dev/null\nsed -e \'s/.*"address": "\\([^"]*\\)".*/\\1/\' "$2"\n',  # python - FILE N
        "bioxen-dask": 'echo "bioxen-dask $*" >>"$LOG"\n',
    }
    for name, body in scripts.items():
        path = bin_dir / name
        path.write_text("#!/bin/sh\n" + body)
        path.chmod(0o755)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin", "LOG": str(log)}


def test_slurm_gpu_job_finds_the_worker_script_when_sbatch_runs_a_copy(tmp_path):
    """sbatch executes a copy of the script from slurmd's spool folder, not the checkout."""
    spool = tmp_path / "spool" / "job123"
    spool.mkdir(parents=True)
    (spool / "slurm_script").write_text((DEPLOY / "gpu" / "slurm-gpu-job.sh").read_text())
    submit = tmp_path / "submit"  # the repository root the job was submitted from
    submit.mkdir()
    (submit / "deploy").symlink_to(DEPLOY)
    log = tmp_path / "calls.log"
    env = _fake_slurm_tools(tmp_path / "bin", log) | {
        "SLURM_SUBMIT_DIR": str(submit), "SLURM_JOB_ID": "123", "SLURM_JOB_NUM_NODES": "2",
        "SLURM_GPUS_PER_NODE": "a100:4",
    }
    result = subprocess.run(["bash", str(spool / "slurm_script"), "pipelines/p.yaml"], cwd=submit,
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    calls = log.read_text()
    assert f"worker-script-ok {submit}/deploy/gpu/dask-cuda-worker.sh" in calls, calls
    assert "dask scheduler --scheduler-file" in calls and "--dashboard-address 127.0.0.1:8787" in calls
    assert "bioxen-dask run pipelines/p.yaml --scheduler tcp://10.0.0.1:8786" in calls
    assert (submit / "dask-123" / "scheduler.json").is_file()

    # Submitted from elsewhere: a clear error instead of srun failing on every node.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run(["bash", str(spool / "slurm_script"), "p.yaml"], cwd=elsewhere,
                            env=env | {"SLURM_SUBMIT_DIR": str(elsewhere)},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "BIOXEN_GPU_DIR" in result.stderr, result.stderr


def test_slurm_gpu_job_stops_when_the_scheduler_does_not_start(tmp_path):
    log = tmp_path / "calls.log"
    env = _fake_slurm_tools(tmp_path / "bin", log)
    (tmp_path / "bin" / "dask").write_text("#!/bin/sh\necho 'address already in use' >&2\nexit 1\n")
    result = subprocess.run(["bash", str(DEPLOY / "gpu" / "slurm-gpu-job.sh"), "p.yaml"], cwd=tmp_path,
                            env=env | {"SLURM_SUBMIT_DIR": str(tmp_path), "SLURM_JOB_ID": "7"},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    assert "scheduler exited" in result.stderr and "address already in use" in result.stderr
