"""pytest fixtures for tests against the real local control plane.

- ``cluster`` (session): a :class:`~sprechzimmer.devcluster.cluster.Cluster`. Started for the
  test session in a temporary directory, or, when ``SPRECHZIMMER_KUBECONFIG`` is set, the
  running cluster that kubeconfig points at (e.g. the one ``make up`` left running).
- ``namespace`` (function): a fresh namespace whose default service account exists.
- ``kube`` (function): a synchronous lightkube client with admin rights.

Tests that use ``cluster`` are marked ``cluster`` automatically.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from lightkube import Client, KubeConfig
from sprechzimmer.devcluster.cluster import Cluster, LocalCluster, bin_dir, wait_for


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    external = os.environ.get("SPRECHZIMMER_KUBECONFIG")
    if external:
        reused = Cluster(Path(external), bin_dir())
        reused.apply_crds()
        yield reused
        return
    local = LocalCluster(tmp_path_factory.mktemp("cluster"))
    local.start()
    try:
        yield local
    finally:
        local.stop()


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    name = f"t-{secrets.token_hex(4)}"
    cluster.kubectl("create", "namespace", name)
    wait_for(
        f"service account default in {name}",
        lambda: cluster.kubectl("-n", name, "get", "sa", "default", check=False).returncode == 0,
        timeout=30,
    )
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found")


@pytest.fixture
def kube(cluster: Cluster) -> Iterator[Client]:
    client = Client(config=KubeConfig.from_file(cluster.kubeconfig), field_manager="pytest")
    yield client
    client.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.cluster)
