"""The e2e's cluster: the chart installed into a cluster whose pods really run.

With ``SPRECHZIMMER_E2E_KUBECONFIG`` the tests use that cluster (kind, …) as it is: images loaded
there beforehand, ``SPRECHZIMMER_E2E_VALUES`` (a values file) and ``SPRECHZIMMER_E2E_SIGNALING_URL``
(where this machine reaches signaling) say how (docs/e2e.md). Without it, one session fixture
starts the local control plane with the real node, builds and imports the images and installs
the chart (``harness.real_node_install``). Where the real node cannot run, every e2e test is
skipped with the reason, printed: nothing fake runs in its place.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import Installed, adopt_crds, install, real_node_install
from lightkube import Client, KubeConfig
from sprechzimmer.devcluster import realnode
from sprechzimmer.devcluster.cluster import Cluster, bin_dir


@pytest.fixture(scope="session")
def e2e(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    external = os.environ.get("SPRECHZIMMER_E2E_KUBECONFIG")
    if external:
        values = os.environ.get("SPRECHZIMMER_E2E_VALUES")
        url = os.environ.get("SPRECHZIMMER_E2E_SIGNALING_URL")
        if not values or not url:
            pytest.fail(
                "SPRECHZIMMER_E2E_KUBECONFIG needs SPRECHZIMMER_E2E_VALUES and _SIGNALING_URL"
            )
        cluster = Cluster(Path(external), bin_dir())
        crd = cluster.kubectl("get", "crd", "videosessions.sprechzimmer.io", check=False)
        if crd.returncode == 0:
            adopt_crds(cluster)
        yield install(cluster, url, Path(values))
        return
    wait = float(os.environ.get("SPRECHZIMMER_E2E_WAIT", "600"))
    state = tmp_path_factory.mktemp("e2e-cluster")
    with contextlib.ExitStack() as stack:
        try:
            installed = stack.enter_context(real_node_install(state, wait=wait))
        except realnode.RealNodeUnavailable as error:
            reason = f"E2E SKIPPED: the real node cannot run on this machine: {error}"
            print(f"\n{'!' * 80}\n{reason}\n{'!' * 80}", file=sys.stderr, flush=True)
            pytest.skip(reason)
        yield installed
        print(f"\ne2e timings: {json.dumps(installed.timings)}", file=sys.stderr)


@pytest.fixture(scope="session")
def kube(e2e: Installed) -> Iterator[Client]:
    client = Client(config=KubeConfig.from_file(e2e.cluster.kubeconfig), field_manager="e2e")
    yield client
    client.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)
