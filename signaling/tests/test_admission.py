"""Admission: credentials → session → admitted or a person-readable error code."""

from __future__ import annotations

from datetime import timedelta

import pytest
from builders import CLIENT_CODE, CLIENT_TOKEN, HOST_CODE, HOST_TOKEN, KEY, T0, body
from sprechzimmer.contract import Phase
from sprechzimmer.signaling.core import admission
from sprechzimmer.signaling.core.admission import Admitted, Rejected
from sprechzimmer.signaling.core.protocol import CodeAuth, ErrorCode, LinkAuth, Role, RoomState
from sprechzimmer.signaling.core.sessions import SessionIndex, SessionView

pytestmark = pytest.mark.unit


def index_of(*bodies: dict) -> SessionIndex:
    index = SessionIndex()
    for b in bodies:
        index.upsert(SessionView.from_body(b))
    return index


@pytest.mark.parametrize(
    ("auth", "role"),
    [
        (CodeAuth("dr-muster", HOST_CODE), Role.HOST),
        (CodeAuth("dr-muster", CLIENT_CODE), Role.CLIENT),
        (CodeAuth(" Dr-Muster ", "C3F E04 D96"), Role.HOST),  # sloppy input is normalised
        (CodeAuth("dr-muster", "a11b22c33"), Role.CLIENT),
        (CodeAuth("Dr Muster", "c3fe04d96"), Role.HOST),
        (CodeAuth("DR_MUSTER\t", "c3f.e04.d96"), Role.HOST),
        (CodeAuth("dr-muster", "a11\u2013b22\u2013c33"), Role.CLIENT),  # en dashes (Word)
        (LinkAuth(HOST_TOKEN), Role.HOST),
        (LinkAuth(CLIENT_TOKEN.upper()), Role.CLIENT),
    ],
)
def test_finds_the_session_and_role(auth: CodeAuth | LinkAuth, role: Role) -> None:
    found = admission.find(KEY, auth, index_of(body()))
    assert found is not None
    assert found.role is role
    assert found.session.name == "termin"


@pytest.mark.parametrize(
    "auth",
    [
        CodeAuth("dr-muster", "c3f-e04-d97"),  # wrong code
        CodeAuth("dr-other", HOST_CODE),  # right code, wrong handle: the same answer
        CodeAuth("dr-muster", "xyz"),  # malformed
        CodeAuth("Dr Muster!", HOST_CODE),  # handle that cannot exist
        CodeAuth("dr-muster", ""),
        LinkAuth("ef" * 32),
        LinkAuth("not-a-token"),
    ],
)
def test_unknown_is_one_answer(auth: CodeAuth | LinkAuth) -> None:
    found = admission.find(KEY, auth, index_of(body()))
    assert found is None
    assert admission.decide(found, T0) == Rejected(ErrorCode.UNKNOWN_CODE)


def test_two_practices_with_the_same_code_stay_apart() -> None:
    index = index_of(body(), body(name="other", uid="uid-2", host="dr-other"))
    found = admission.find(KEY, CodeAuth("dr-other", HOST_CODE), index)
    assert found is not None
    assert found.session.name == "other"


@pytest.mark.parametrize(
    ("changes", "at", "expected"),
    [
        ({}, T0, None),
        ({"phase": "Scheduled"}, T0 - timedelta(hours=1), None),
        ({"phase": "Idle"}, T0, None),
        ({"phase": "Expired"}, T0, ErrorCode.EXPIRED),
        ({}, T0 + timedelta(hours=24), ErrorCode.EXPIRED),
        ({"phase": "Expired", "labels": False}, T0, ErrorCode.EXPIRED),  # codes revoked
        ({"deleting": True}, T0, ErrorCode.CANCELLED),
        ({"deleting": True, "labels": False}, T0, ErrorCode.CANCELLED),
        ({"phase": "Failed"}, T0, ErrorCode.UNAVAILABLE),
        ({"labels": False}, T0, ErrorCode.UNKNOWN_CODE),  # revoked without reason: void
    ],
)
def test_decides(changes: dict, at: object, expected: ErrorCode | None) -> None:
    index = index_of(body())
    if changes:
        index.upsert(SessionView.from_body(body(**changes)))
    result = admission.decide(admission.find(KEY, CodeAuth("dr-muster", HOST_CODE), index), at)  # type: ignore[arg-type]
    if expected is None:
        assert isinstance(result, Admitted)
    else:
        assert result == Rejected(expected)


def test_deleted_session_answers_cancelled_then_is_forgotten() -> None:
    index = index_of(body())
    view = index.get("praxis/termin")
    assert view is not None
    index.delete(view, T0)
    result = admission.decide(admission.find(KEY, LinkAuth(HOST_TOKEN), index), T0)
    assert result == Rejected(ErrorCode.CANCELLED)
    assert index.sweep(T0 + timedelta(hours=25)) == 1
    assert admission.find(KEY, LinkAuth(HOST_TOKEN), index) is None


@pytest.mark.parametrize(
    ("clients", "phase", "reachable", "state"),
    [
        (1, "Scheduled", False, RoomState.WAITING),
        (1, "Ready", False, RoomState.OPEN),
        (1, "Active", False, RoomState.OPEN),
        (1, "Idle", False, RoomState.OPEN),
        (3, "Scheduled", True, RoomState.WAITING),
        (3, "Ready", False, RoomState.WAITING),  # pod not reachable yet
        (3, "Ready", True, RoomState.OPEN),
        (3, "Idle", True, RoomState.WAITING),  # media released: waits for a new pod
    ],
)
def test_room_state(clients: int, phase: str, reachable: bool, state: RoomState) -> None:
    view = SessionView.from_body(body(clients=clients, phase=phase))
    assert admission.room_state(view, reachable) is state


def test_view_reads_what_signaling_needs() -> None:
    b = body(
        clients=3,
        status={
            "join": {"mode": "MediaPod", "mediaEndpoint": "1.2.3.4:10000"},
            "media": {"podName": "vs-x-media-0", "controlEndpoint": "10.0.0.5:8080"},
        },
    )
    view = SessionView.from_body(b)
    assert view.seats == 4
    assert view.phase is Phase.READY
    assert view.control_endpoint == "10.0.0.5:8080"
    assert view.media_endpoint == "1.2.3.4:10000"
    assert view.key == "praxis/termin"
    with pytest.raises(ValueError, match="scheduledStart"):
        SessionView.from_body({"metadata": {"name": "x", "uid": "u"}, "spec": {}})


def test_replace_all_tombstones_what_vanished() -> None:
    index = index_of(
        body(),
        body(
            name="b",
            uid="uid-2",
            host_code="111-111-111",
            client_code="222-222-222",
            host_token="11" * 32,
            client_token="22" * 32,
        ),
    )
    removed = index.replace_all([SessionView.from_body(body())], T0)
    assert [v.name for v in removed] == ["b"]
    assert len(index) == 1
    found = admission.find(KEY, LinkAuth("11" * 32), index)
    assert found is not None
    assert admission.decide(found, T0) == Rejected(ErrorCode.CANCELLED)
