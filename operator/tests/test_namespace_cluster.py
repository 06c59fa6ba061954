"""A practice leaves: deleting its namespace with live sessions finishes, and bills survive it.

The namespace controller deletes the sessions; each waits for the operator's finalizer, whose
teardown writes the usage record first. A terminating namespace refuses new objects, so the
records live in the operator's own namespace (``usage_namespace``): before that, the namespace
stayed ``Terminating`` for good and no record was ever written.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client
from support import create_session, operators, phase_is, status, usage_records, wait_for

pytestmark = pytest.mark.cluster


def namespace_exists(cluster: Any, name: str) -> bool:
    return cluster.kubectl("get", "namespace", name, check=False).returncode == 0


def test_deleting_a_practice_namespace_keeps_one_record_per_session(
    cluster: Any, kube: Client, namespace: str, region: Callable[..., str], tmp_path: Path
) -> None:
    practice = f"praxis-{secrets.token_hex(4)}"
    de = region(1)
    cluster.kubectl("create", "namespace", practice)
    wait_for(
        "the practice's default service account",
        lambda: (
            cluster.kubectl("-n", practice, "get", "sa", "default", check=False).returncode == 0
        ),
    )
    try:
        with operators(cluster.kubeconfig, tmp_path) as start:
            op = start(
                standalone="true",
                presence_namespace=namespace,
                usage_namespace=namespace,  # the operator's own namespace in this test
                region_allow_list=json.dumps({"de": [de], "at": ["at-vie"]}),
            )
            op.wait_leader()
            single = create_session(kube, practice, "eins")
            group = create_session(kube, practice, "gruppe", clients=2)
            wait_for("1:1 Ready", phase_is(kube, practice, "eins", "Ready"))
            wait_for(
                "group call Ready with a media endpoint",
                lambda: status(kube, practice, "gruppe").get("join", {}).get("mediaEndpoint"),
            )

            cluster.kubectl("delete", "namespace", practice, "--wait=false")
            wait_for(
                "the practice's namespace gone",
                lambda: not namespace_exists(cluster, practice),
                timeout=120,
            )
            records = usage_records(kube, practice, kept_in=namespace)
            log = op.log()
    finally:
        cluster.kubectl("delete", "namespace", practice, "--ignore-not-found", "--wait=false")
    uids = sorted(r["spec"]["sessionUID"] for r in records)
    assert uids == sorted([single["metadata"]["uid"], group["metadata"]["uid"]])
    assert {r["spec"]["endReason"] for r in records} == {"Deleted"}
    assert {r["spec"]["mode"] for r in records} == {"PeerToPeer", "MediaPod"}
    assert "reconcile crashed" not in log
