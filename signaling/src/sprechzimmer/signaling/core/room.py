"""Who is in one call: seats, peer ids, resume tokens, replacement, routing, roster. No I/O.

A room belongs to one session. Seats: one host and ``clients`` client seats (the client code or
link is shared by every client). A seat has a stable peer id (``p-`` + 10 hex) and a resume
token; a socket that reconnects with the token gets the same seat back, and a newer socket on a
seat replaces the older one (which ends with ``replaced``). Sockets are opaque integers chosen by
the shell. Every method returns ``Effects``: frames to send and sockets to close, which the shell
executes in order. Randomness (ids, tokens) is passed in, so tests are deterministic.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .protocol import (
    EVERYONE,
    Ended,
    EndReason,
    Error,
    ErrorCode,
    PeerInfo,
    Role,
    Roster,
    ServerMessage,
    Slots,
)


@dataclass(slots=True)
class Seat:
    peer: str
    role: Role
    resume: str
    conn: int | None = None
    joined: bool = False
    name: str | None = None  # memory only, shown to the others
    order: int = 0  # when the seat was last attached (eviction picks the oldest free one)

    def info(self) -> PeerInfo:
        return PeerInfo(self.peer, self.role, self.name, self.joined)


@dataclass(slots=True)
class Effects:
    send: list[tuple[int, ServerMessage | dict[str, Any]]] = field(default_factory=list)
    close: list[tuple[int, Error | Ended]] = field(default_factory=list)

    def extend(self, other: Effects) -> Effects:
        self.send.extend(other.send)
        self.close.extend(other.close)
        return self


@dataclass(frozen=True, slots=True)
class Attached:
    seat: Seat
    effects: Effects


@dataclass(frozen=True, slots=True)
class Presence:
    connected: int
    host_connected: bool


class Room:
    def __init__(self, clients: int) -> None:
        self.clients = clients
        self._seats: list[Seat] = []
        self._by_conn: dict[int, Seat] = {}
        self._clock = 0

    # --- queries --------------------------------------------------------------------------
    @property
    def seats(self) -> tuple[Seat, ...]:
        return tuple(self._seats)

    @property
    def conns(self) -> tuple[int, ...]:
        return tuple(self._by_conn)

    def seat_of(self, conn: int) -> Seat | None:
        return self._by_conn.get(conn)

    def seat_by_peer(self, peer: str) -> Seat | None:
        return next((s for s in self._seats if s.peer == peer), None)

    def holds(self, peer: str) -> bool:
        """Whether a socket holds the seat ``peer`` now (false once it left or while it waits
        for a resume)."""
        seat = self.seat_by_peer(peer)
        return seat is not None and seat.conn is not None

    def presence(self) -> Presence:
        present = [s for s in self._seats if s.conn is not None and s.joined]
        return Presence(len(present), any(s.role is Role.HOST for s in present))

    def empty(self) -> bool:
        return not self._by_conn

    # --- changes --------------------------------------------------------------------------
    def attach(
        self, role: Role, resume: str | None, conn: int, peer: str, token: str
    ) -> Attached | Error:
        """Seat the new socket ``conn``: its own seat again (resume), the host seat, a free
        client seat, or ``full``. ``peer``/``token`` are fresh random values for a new seat."""
        self._clock += 1
        seat = self._resumed(role, resume)
        if seat is None and role is Role.HOST:
            seat = next((s for s in self._seats if s.role is Role.HOST), None)
        if seat is None:
            seat = self._free_client_seat(peer, token) if role is Role.CLIENT else None
        if seat is None and role is Role.HOST:
            seat = Seat(peer, Role.HOST, token)
            self._seats.append(seat)
        if seat is None:
            return Error(ErrorCode.FULL)
        effects = Effects()
        if seat.conn is not None:
            effects.close.append((seat.conn, Ended(EndReason.REPLACED)))
            del self._by_conn[seat.conn]
        seat.conn = conn
        seat.order = self._clock
        self._by_conn[conn] = seat
        return Attached(seat, effects.extend(self._rosters(exclude=conn)))

    def _resumed(self, role: Role, resume: str | None) -> Seat | None:
        if not resume:
            return None
        for seat in self._seats:
            if seat.role is role and hmac.compare_digest(seat.resume, resume):
                return seat
        return None

    def _free_client_seat(self, peer: str, token: str) -> Seat | None:
        clients = [s for s in self._seats if s.role is Role.CLIENT]
        if len(clients) < self.clients:
            seat = Seat(peer, Role.CLIENT, token)
            self._seats.append(seat)
            return seat
        free = sorted((s for s in clients if s.conn is None), key=lambda s: s.order)
        if not free:
            return None
        # Someone else's abandoned seat: a new identity, so the old resume token is void.
        self._seats.remove(free[0])
        seat = Seat(peer, Role.CLIENT, token)
        self._seats.append(seat)
        return seat

    def join(self, conn: int, name: str | None) -> Effects:
        seat = self._by_conn.get(conn)
        if seat is None:
            return Effects()
        seat.joined = True
        seat.name = name if name is not None else seat.name
        return self._rosters(exclude=conn)

    def detach(self, conn: int) -> Effects:
        """The socket closed without ``leave``: the seat waits for a resume."""
        seat = self._by_conn.pop(conn, None)
        if seat is None:
            return Effects()
        seat.conn = None
        return self._rosters()

    def leave(self, conn: int) -> Effects:
        """``leave``: the seat is given up (its id and resume token die with it)."""
        seat = self._by_conn.pop(conn, None)
        if seat is None:
            return Effects()
        self._seats.remove(seat)
        effects = Effects(close=[(conn, Ended(EndReason.LEFT))])
        return effects.extend(self._rosters())

    def end(self, reason: EndReason) -> Effects:
        """Everyone out (expiry, cancellation); the room is empty afterwards."""
        effects = Effects(close=[(conn, Ended(reason)) for conn in self._by_conn])
        self._by_conn.clear()
        self._seats.clear()
        return effects

    # --- routing --------------------------------------------------------------------------
    def route(self, conn: int, to: str) -> tuple[str, list[int]] | None:
        """(sender peer id, receiving sockets) for a relayed message, or None to drop it.

        Only between people who joined: a socket that has not consented sends and receives
        no media negotiation.
        """
        sender = self._by_conn.get(conn)
        if sender is None or not sender.joined:
            return None
        if to == EVERYONE:
            targets = [
                s.conn for s in self._seats if s is not sender and s.conn is not None and s.joined
            ]
            return sender.peer, targets
        target = self.seat_by_peer(to)
        if target is None or target is sender or target.conn is None or not target.joined:
            return None
        return sender.peer, [target.conn]

    def roster_for(self, conn: int) -> Roster:
        return Roster(tuple(s.info() for s in self._seats if s.conn is not None and s.conn != conn))

    def _rosters(self, exclude: int | None = None) -> Effects:
        return Effects(send=[(c, self.roster_for(c)) for c in self._by_conn if c != exclude])


def slot_maps(participants: Mapping[str, Any], slots: int) -> dict[str, Slots]:
    """The SFU's ``GET /v1/participants`` → per participant: which peer is in which slot."""
    maps: dict[str, Slots] = {}
    for entry in participants.get("participants") or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("participantId"), str):
            continue
        table: list[str | None] = [None] * slots
        for slot in entry.get("slots") or []:
            index = slot.get("slot") if isinstance(slot, dict) else None
            publisher = slot.get("publisherId") if isinstance(slot, dict) else None
            if isinstance(index, int) and 0 <= index < slots:
                table[index] = publisher if isinstance(publisher, str) else None
        maps[entry["participantId"]] = Slots(tuple(table))
    return maps


def speaker_of(participants: Mapping[str, Any]) -> str | None:
    value = participants.get("activeSpeaker")
    return value if isinstance(value, str) else None
