"""The in-memory index: stale events, digest claims, port reservations, lookups."""

from __future__ import annotations

import pytest
from fakes import FakeClock
from operator_builders import T0, session_body
from sprechzimmer.contract import LABEL_CLIENT_CODE_DIGEST, LABEL_HOST_CODE_DIGEST
from sprechzimmer.operator.core.hostports import PortUse
from sprechzimmer.operator.core.model import MediaPod, Session
from sprechzimmer.operator.index import Index

pytestmark = pytest.mark.unit
KEY = ("praxis", "termin")


def session(rv: str = "100", **kw: object) -> Session:
    body = session_body(**kw)  # type: ignore[arg-type]
    body["metadata"]["resourceVersion"] = rv
    return Session.parse(body)


def pod(name: str, *, node: str | None = "fra", port: int = 10001) -> MediaPod:
    return MediaPod(
        namespace="praxis",
        name=name,
        session_uid="11111111-2222-3333-4444-555555555555",
        node_name=node,
        turn_port=port,
        phase="Running",
        ready=True,
        unschedulable=False,
        deleting=False,
        created_at=T0,
    )


def test_a_late_watch_event_never_overwrites_a_newer_session() -> None:
    index = Index(clock=FakeClock())
    assert index.upsert_session(session("200"))
    assert not index.upsert_session(session("150"))
    assert index.sessions[KEY].resource_version == "200"


def test_first_seen_is_kept_from_the_first_sighting() -> None:
    clock = FakeClock()
    index = Index(clock=clock)
    index.upsert_session(session("1"))
    clock.advance(5)
    index.upsert_session(session("2"))
    assert index.first_seen[KEY] == 1000.0
    index.remove_session(KEY)
    assert KEY not in index.first_seen


def test_digests_follow_labels_and_claims() -> None:
    index = Index(clock=FakeClock())
    labels = {LABEL_HOST_CODE_DIGEST: "a" * 32, LABEL_CLIENT_CODE_DIGEST: "b" * 32}
    index.upsert_session(session(labels=labels))
    assert index.digests_of_host("dr-muster") == {KEY: ("a" * 32, "b" * 32)}
    index.claim_digests("dr-muster", ("praxis", "other"), ("c" * 32, "d" * 32))
    assert len(index.digests_of_host("dr-muster")) == 2
    index.remove_session(KEY)
    index.claim_digests("dr-muster", ("praxis", "other"), ())
    assert index.digests_of_host("dr-muster") == {}
    assert index.host_digests == {}


def test_a_reserved_port_is_held_until_the_pod_holds_it() -> None:
    index = Index(clock=FakeClock())
    index.reserve_port("praxis", "p-1", 10005)
    assert index.port_uses[("praxis", "p-1")] == PortUse(10005, None)
    index.upsert_pod(pod("p-1", node=None, port=10005))
    index.release_reservation("praxis", "p-1")  # the pod arrived: it holds the port now
    assert index.port_uses[("praxis", "p-1")] == PortUse(10005, None)
    index.reserve_port("praxis", "p-2", 10006)
    index.release_reservation("praxis", "p-2")  # never created: the port is free again
    assert ("praxis", "p-2") not in index.port_uses


def test_lookups_by_node_and_by_lease() -> None:
    index = Index(clock=FakeClock())
    status = {
        "presence": {"connected": 2, "vouchedBy": "sig-0", "changedAt": "2026-11-21T10:00:00Z"}
    }
    index.upsert_session(session(clients=3, status=status))
    index.upsert_pod(pod("p-1", node="fra"))
    assert index.sessions_on_node("fra") == [KEY]
    assert index.sessions_on_node("ber") == []
    assert index.sessions_vouched_by("sig-0") == [KEY]
    assert index.sessions_vouched_by("sig-1") == []
    index.remove_pod("praxis", "p-1")
    assert index.pods_of("11111111-2222-3333-4444-555555555555") == []
    assert index.pod_counts() == {}
    assert index.phase_counts() == {("New", "de"): 1}
