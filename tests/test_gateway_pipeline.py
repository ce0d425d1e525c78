"""A pipeline run on a real dask-gateway cluster equals the same pipeline on a LocalCluster.

``bioxen-dask run pipelines/small_test.yaml --cluster gateway`` with the gateway's address,
proxy and basic auth given as ``--set cluster.gateway.*`` overrides (the password through
``DASK_GATEWAY_PASSWORD``, as a pipeline file should never hold it), against the same
pipeline with ``--cluster local``; the gateway cluster is shut down when the run ends.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from _cluster_fixtures import gateway_server  # noqa: F401  (pytest fixture)
from bioxen_dask.cluster._gateway import _close_gateway_client
from bioxen_dask.cli import main
from bioxen_dask.datasets import open_result
from bioxen_dask.io import write_synthetic

pytestmark = pytest.mark.slow  # the integration tier: pytest -m "not slow" leaves it out

REPO = Path(__file__).resolve().parents[1]
SMALL = str(REPO / "pipelines" / "small_test.yaml")


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory):
    return write_synthetic(tmp_path_factory.mktemp("gw") / "tiny.zarr", n_rois=12, n_frames=1500, seed=3)


def _sets(store, out, cache, *extra):
    args = ["--set", f"input.store={store}", "--set", f"outputs.path={out}", "--set", f"significance.cache={cache}",
            "--set", "significance.mc_count=10", "--set", "compute.roi_chunk=4"]
    for item in extra:
        args += ["--set", item]
    return args


def _run(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _running_clusters(server):
    from dask_gateway import BasicAuth, Gateway

    gateway = Gateway(server.address, proxy_address=server.proxy_address,
                      auth=BasicAuth(server.username, server.password))
    try:
        deadline = time.monotonic() + 20
        clusters = gateway.list_clusters()
        while clusters and time.monotonic() < deadline:
            time.sleep(0.2)
            clusters = gateway.list_clusters()
        return clusters
    finally:
        _close_gateway_client(gateway)


def test_pipeline_on_gateway_equals_local_cluster(tiny_store, tmp_path, capsys, monkeypatch,
                                                  gateway_server):  # noqa: F811
    cache = tmp_path / "cache"
    local = tmp_path / "local.zarr"
    code, out, err = _run(["run", SMALL, "--cluster", "local", "--no-progress", *_sets(tiny_store, local, cache)],
                          capsys)
    assert code == 0, err
    assert json.loads(out)["cluster"]["kind"] == "local"

    monkeypatch.setenv("DASK_GATEWAY_PASSWORD", gateway_server.password)
    remote = tmp_path / "gateway.zarr"
    gw = [
        f"cluster.gateway.address={gateway_server.address}",
        f"cluster.gateway.proxy_address={gateway_server.proxy_address}",
        "cluster.gateway.auth=basic",
        f"cluster.gateway.username={gateway_server.username}",
        "cluster.gateway.cluster_options={worker_cores: 1, worker_memory: 0.5}",
        "cluster.gateway.n_workers=2",
        "cluster.connect_timeout=10",
        "cluster.wait_timeout=60",
    ]
    code, out, err = _run(["run", SMALL, "--cluster", "gateway", "--no-progress",
                           *_sets(tiny_store, remote, cache, *gw)], capsys)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["cluster"]["kind"] == "gateway" and summary["cluster"]["workers"] == 2
    assert "dask gateway cluster at gateway://127.0.0.1:" in err
    assert gateway_server.password not in out + err  # never echoed

    # the cluster the run created is gone
    assert _running_clusters(gateway_server) == []

    a, b = open_result(local).compute(), open_result(remote).compute()
    assert a.sizes == b.sizes and a.sizes["pair"] == 12
    assert set(a.data_vars) == set(b.data_vars) and set(a.coords) == set(b.coords)
    for name in a.coords:
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
    np.testing.assert_array_equal(a.threshold.values, b.threshold.values)  # same surrogates, same seed
    for name in ("coherence_mean", "phase_consistency"):
        np.testing.assert_allclose(a[name].values, b[name].values, rtol=0, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(np.exp(1j * a.phase_mean.values), np.exp(1j * b.phase_mean.values), atol=1e-5)
    step = 1.0 / a.coi_samples.values  # one sample outside the COI
    assert np.all(np.abs(a.significant_fraction.values - b.significant_fraction.values) <= step + 1e-12)
    for name in a.data_vars:  # anything else: equal to 1e-6
        if np.issubdtype(a[name].dtype, np.floating) and name not in ("phase_mean", "significant_fraction"):
            np.testing.assert_allclose(a[name].values, b[name].values, rtol=0, atol=1e-6, err_msg=name)
    drop = {"run_key", "regions", "pipeline"}
    assert {k: v for k, v in a.attrs.items() if k not in drop} == {k: v for k, v in b.attrs.items() if k not in drop}
