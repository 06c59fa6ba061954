"""Rooms: seats, resume, replacement, full, routing, roster, presence."""

from __future__ import annotations

import pytest
from sprechzimmer.signaling.core.protocol import Ended, EndReason, Error, ErrorCode, Role, Roster
from sprechzimmer.signaling.core.room import Attached, Room, slot_maps, speaker_of

pytestmark = pytest.mark.unit


def seat(room: Room, role: Role, conn: int, resume: str | None = None) -> Attached:
    result = room.attach(role, resume, conn, f"p-{conn:010x}", f"token-{conn}")
    assert isinstance(result, Attached), result
    return result


def test_one_to_one_seats_and_full() -> None:
    room = Room(clients=1)
    host = seat(room, Role.HOST, 1)
    client = seat(room, Role.CLIENT, 2)
    assert host.seat.peer != client.seat.peer
    # The host hears about the client; the client is not told about itself.
    assert client.effects.send == [(1, Roster((client.seat.info(),)))]
    assert room.attach(Role.CLIENT, None, 3, "p-cccccccccc", "t3") == Error(ErrorCode.FULL)


def test_presence_counts_only_joined_connected_people() -> None:
    room = Room(clients=2)
    seat(room, Role.HOST, 1)
    seat(room, Role.CLIENT, 2)
    assert room.presence().connected == 0
    room.join(1, "Praxis")
    room.join(2, None)
    assert room.presence().connected == 2
    assert room.presence().host_connected
    room.detach(1)
    assert room.presence().connected == 1
    assert not room.presence().host_connected


def test_resume_gives_the_same_seat_and_replaces_the_old_socket() -> None:
    room = Room(clients=1)
    first = seat(room, Role.CLIENT, 1)
    room.join(1, "Frau M.")
    again = seat(room, Role.CLIENT, 2, resume=first.seat.resume)
    assert again.seat.peer == first.seat.peer
    assert again.seat.joined  # consent survives a reconnect
    assert again.effects.close == [(1, Ended(EndReason.REPLACED))]
    assert room.seat_of(1) is None


def test_resume_of_another_role_is_ignored() -> None:
    room = Room(clients=1)
    host = seat(room, Role.HOST, 1)
    client = seat(room, Role.CLIENT, 2, resume=host.seat.resume)
    assert client.seat.peer != host.seat.peer


def test_host_always_takes_the_host_seat() -> None:
    room = Room(clients=1)
    first = seat(room, Role.HOST, 1)
    second = seat(room, Role.HOST, 2)
    assert second.seat.peer == first.seat.peer
    assert second.effects.close == [(1, Ended(EndReason.REPLACED))]


def test_an_abandoned_client_seat_is_taken_with_a_new_identity() -> None:
    room = Room(clients=1)
    old = seat(room, Role.CLIENT, 1)
    room.detach(1)
    new = seat(room, Role.CLIENT, 2)
    assert new.seat.peer != old.seat.peer
    # The old resume token is void now: the call is full for it.
    assert room.attach(Role.CLIENT, old.seat.resume, 3, "p-dddddddddd", "t") == Error(
        ErrorCode.FULL
    )


def test_leave_frees_the_seat_and_closes_normally() -> None:
    room = Room(clients=1)
    seat(room, Role.HOST, 1)
    client = seat(room, Role.CLIENT, 2)
    effects = room.leave(2)
    assert effects.close == [(2, Ended(EndReason.LEFT))]
    assert effects.send == [(1, Roster(()))]
    assert room.seat_by_peer(client.seat.peer) is None


def test_a_seat_is_held_while_a_socket_has_it() -> None:
    """What decides whether a dropped group seat leaves the SFU after its grace period."""
    room = Room(clients=1)
    client = seat(room, Role.CLIENT, 1)
    peer = client.seat.peer
    assert room.holds(peer)
    room.detach(1)
    assert not room.holds(peer)  # waiting for a resume
    seat(room, Role.CLIENT, 2, resume=client.seat.resume)
    assert room.holds(peer)  # resumed on a new socket: same peer id
    room.leave(2)
    assert not room.holds(peer)  # given up
    assert not room.holds("p-unknown000")


def test_routing_only_between_joined_people() -> None:
    room = Room(clients=2)
    host = seat(room, Role.HOST, 1)
    a = seat(room, Role.CLIENT, 2)
    seat(room, Role.CLIENT, 3)
    assert room.route(1, a.seat.peer) is None  # host has not joined
    room.join(1, None)
    assert room.route(1, a.seat.peer) is None  # target has not joined
    room.join(2, None)
    assert room.route(1, a.seat.peer) == (host.seat.peer, [2])
    assert room.route(1, host.seat.peer) is None  # not to yourself
    assert room.route(1, "p-ffffffffff") is None
    room.join(3, None)
    assert room.route(2, "*") == (a.seat.peer, [1, 3])


def test_end_closes_everyone() -> None:
    room = Room(clients=1)
    seat(room, Role.HOST, 1)
    seat(room, Role.CLIENT, 2)
    effects = room.end(EndReason.EXPIRED)
    assert effects.close == [(1, Ended(EndReason.EXPIRED)), (2, Ended(EndReason.EXPIRED))]
    assert room.empty()


def test_slot_maps_from_the_sfu() -> None:
    participants = {
        "participants": [
            {"participantId": "p-1", "slots": [{"slot": 1, "publisherId": "p-2"}]},
            {
                "participantId": "p-2",
                "slots": [{"slot": 0, "publisherId": "p-1"}, {"slot": 9, "publisherId": "p-x"}],
            },
            "garbage",
        ],
        "activeSpeaker": "p-2",
    }
    maps = slot_maps(participants, 2)
    assert maps["p-1"].slots == (None, "p-2")
    assert maps["p-2"].slots == ("p-1", None)
    assert speaker_of(participants) == "p-2"
    assert speaker_of({}) is None
