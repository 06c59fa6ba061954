"""Two replicas with Kopf peering: one active, one standby; SIGKILL the active one."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client
from support import (
    OperatorProcess,
    create_session,
    delete_sessions,
    media_pods,
    operators,
    phase_is,
    status,
    wait_for,
)

pytestmark = pytest.mark.cluster
TAKEOVER_BUDGET_SECONDS = 15.0  # target 10 s; peering lifetime 8 s plus one leadership poll


@pytest.fixture
def pair(
    cluster: Any, namespace: str, kube: Client, tmp_path: Path, region: Callable[..., str]
) -> Iterator[list[OperatorProcess]]:
    peering = f"test-{secrets.token_hex(3)}"
    de = region(1)
    settings = {
        "peering_name": peering,
        "peering_lifetime": "8",
        "presence_namespace": namespace,
        "usage_namespace": namespace,
        "region_allow_list": json.dumps({"de": [de], "at": ["at-vie"]}),
    }
    with operators(cluster.kubeconfig, tmp_path) as start:
        first = start("ha", **settings)
        first.wait_leader()
        second = start("ha", **settings)
        yield [first, second]
        delete_sessions(kube, namespace)
    cluster.kubectl("delete", "clusterkopfpeering", peering, "--ignore-not-found")


def test_standby_takes_over_without_duplicates(
    pair: list[OperatorProcess], namespace: str, kube: Client
) -> None:
    first, second = pair
    wait_for("second replica up", lambda: second.metric("sprechzimmer_operator_leader") == 0.0)
    assert first.is_leader()
    assert not second.is_leader()
    uid = create_session(kube, namespace, "vorher", clients=2)["metadata"]["uid"]
    wait_for(
        "a media pod requested",
        lambda: status(kube, namespace, "vorher").get("media", {}).get("podName"),
    )
    first.kill()
    killed = time.monotonic()
    create_session(kube, namespace, "nachher")
    wait_for("standby leads", second.is_leader, timeout=TAKEOVER_BUDGET_SECONDS + 5)
    wait_for(
        "session created after the kill is Ready",
        phase_is(kube, namespace, "nachher", "Ready"),
        timeout=TAKEOVER_BUDGET_SECONDS + 5,
    )
    takeover = time.monotonic() - killed
    print(f"takeover: {takeover:.1f}s from SIGKILL to a new session Ready")
    assert takeover <= TAKEOVER_BUDGET_SECONDS
    wait_for("pre-kill group call Ready", phase_is(kube, namespace, "vorher", "Ready"))
    pods = [
        p
        for p in media_pods(kube, namespace, uid)
        if not (p.metadata and p.metadata.deletionTimestamp)
    ]
    assert len(pods) == 1, [p.metadata.name for p in pods if p.metadata]
