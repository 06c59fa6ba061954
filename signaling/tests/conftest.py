"""Fixtures for signaling's tests with real parts.

The real control plane comes from the devcluster pytest plugin (``cluster``, ``namespace``,
``kube``); the real operator and the session helpers from ``operator/tests/support.py``, which
is imported, not copied (its SHARED_KEY is the key signaling gets, as in production). Signaling
itself runs as a process through its real entrypoint (``signaling_process.py``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

_REPO = Path(__file__).resolve().parents[2]
for _path in (_REPO / "operator" / "tests", _REPO / "media-pod"):
    if str(_path) not in sys.path:
        sys.path.append(str(_path))

import support  # noqa: E402  (operator/tests/support.py)
from signaling_process import SignalingProcess, StartSignaling  # noqa: E402

MEDIA_REGION = "de-signaling"


@pytest.fixture
def media_node(cluster: Any) -> str:
    """A KWOK node in the region the test operator places media pods in (kept for the run)."""
    name = f"{MEDIA_REGION}-0"
    if cluster.kubectl("get", "node", name, check=False).returncode != 0:
        cluster.add_node(name, MEDIA_REGION, f"{MEDIA_REGION}-a", external_ip="203.0.113.90")
    return name


@pytest.fixture
def operator(cluster: Any, namespace: str, kube: Any, tmp_path: Path) -> Iterator[Any]:
    """One standalone operator for this test's namespace; its sessions are deleted through the
    finalizer path before it stops."""
    with support.operators(cluster.kubeconfig, tmp_path) as start:
        op = start(
            standalone="true",
            presence_namespace=namespace,
            # Its own namespace, not sprechzimmer-system: that exists only if an earlier test
            # of the run made it, and without it the finalizer (usage record) never completes.
            usage_namespace=namespace,
            idle_timeout="600",
            retention="600",
            billing_checkpoint_interval="2",
            lead_time="0s",
            region_allow_list=json.dumps({"de": [MEDIA_REGION], "at": ["at-vie"]}),
        )
        op.wait_leader()
        yield op
        support.delete_sessions(kube, namespace)


@pytest.fixture
def start_signaling(cluster: Any, namespace: str, tmp_path: Path) -> Iterator[StartSignaling]:
    started: list[SignalingProcess] = []

    def start(
        name: str = "sig-a", kubeconfig: Path | None = None, **settings: str
    ) -> SignalingProcess:
        process = SignalingProcess(
            kubeconfig or cluster.kubeconfig,
            tmp_path / f"{name}.log",
            name,
            namespace,
            support.SHARED_KEY,
            settings,
        )
        started.append(process.start())
        return process

    yield start
    for process in started:
        process.stop()
