"""Where the operator finds the API server in a pod: from the kubelet's environment (an IP),
never from the name ``kubernetes.default.svc`` (clusters without DNS, e.g. the real node)."""

from __future__ import annotations

import pytest
from sprechzimmer.operator.adapters.kube import in_cluster_server

pytestmark = pytest.mark.unit


def test_in_cluster_server_comes_from_the_service_environment() -> None:
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    assert in_cluster_server(env) == "https://10.96.0.1:443"
    assert in_cluster_server({"KUBERNETES_SERVICE_HOST": "fd00::1"}) == "https://[fd00::1]:443"
    assert in_cluster_server({}) is None
