"""The calls this replica hosts: executes the core's decisions on real sockets, pods and status.

``Hub`` owns the session index, the limiter and one ``Call`` per session that has people here.
The WebSocket handler (``ws.py``) hands it each socket; everything a call does — seating,
relaying, talking to the media pod, writing presence, ending at expiry — happens here, and
every *decision* comes from ``core``. Nothing here logs codes, tokens, names, peer ids or
addresses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from aiohttp import web
from sprechzimmer.contract.keys import (
    control_token,
    shared_turn_secret,
    turn_rest_credentials,
    turn_secret,
)
from sprechzimmer.contract.mediapod import JoinMode
from sprechzimmer.contract.rfc3339 import format_time

from .core import admission, presence, protocol
from .core.admission import Admitted, Rejected
from .core.logo import logo_path
from .core.owner import Replica
from .core.protocol import (
    SFU,
    E2e,
    Ended,
    EndReason,
    Error,
    ErrorCode,
    IceServer,
    Join,
    Leave,
    Open,
    Ping,
    Pong,
    ProtocolError,
    RoomState,
    Sdp,
    SfuAnswer,
    Slots,
    Speaker,
    Welcome,
)
from .core.ratelimit import Limiter, MessageBudget
from .core.room import Attached, Effects, Room, slot_maps, speaker_of
from .core.sessions import SessionIndex, SessionView
from .core.settings import TURN_TTL_SECONDS, Settings
from .kube import Kube, KubeError
from .mediapod import MediaError, MediaPod, follow
from .metrics import Metrics

logger = logging.getLogger("sprechzimmer.signaling")

HELLO_SECONDS = 15.0
SEND_SECONDS = 10.0
EMPTY_CALL_SECONDS = 3600.0
# A group call's socket that closed without `leave` keeps its place at the media pod this long:
# its media usually still flows (a signaling restart, a blip of the browser's network), and a
# resume on the same seat finds it there. The SFU drops a silent participant by itself.
POD_RESUME_GRACE_SECONDS = 10.0
_END_REASON = {ErrorCode.EXPIRED: EndReason.EXPIRED, ErrorCode.CANCELLED: EndReason.CANCELLED}


@dataclass(eq=False)
class Call:
    """One session's room on this replica, with its media pod and presence writer."""

    view: SessionView
    room: Room
    sockets: dict[int, web.WebSocketResponse] = field(default_factory=dict)
    state: RoomState = RoomState.WAITING
    pod: MediaPod | None = None
    pod_identity: tuple[str | None, str] | None = None
    follower: asyncio.Task[None] | None = None
    written: dict[str, Any] = field(default_factory=dict)
    dirty: bool = False
    writer: asyncio.Task[None] | None = None
    slots_sent: dict[str, Slots] = field(default_factory=dict)
    speaker: str | None = None
    empty_since: float | None = None
    ended: bool = False


class Hub:
    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        kube: Kube | None,
        index: SessionIndex | None = None,
        limiter: Limiter | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.kube = kube
        self.index = index or SessionIndex()
        metrics.sessions.set_function(lambda: len(self.index))  # read at scrape time
        self.limiter = limiter or Limiter()
        self.calls: dict[str, Call] = {}
        self.replicas: list[Replica] = []  # live presence Leases, for ownership
        self.proxied: set[web.WebSocketResponse] = set()  # browsers forwarded to an owner
        self.http: aiohttp.ClientSession | None = None
        self._next_conn = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False

    # --- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        self.http = aiohttp.ClientSession()

    async def stop(self) -> None:
        for call in list(self.calls.values()):
            if call.follower is not None:
                call.follower.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.http is not None:
            await self.http.close()

    async def going_away(self) -> None:
        """Shutdown: every socket closes with 1001 GOING_AWAY; clients reconnect with resume."""
        self._closing = True
        sockets = [ws for call in self.calls.values() for ws in call.sockets.values()]
        sockets.extend(self.proxied)
        await asyncio.gather(
            *(
                ws.close(code=protocol.CloseCode.GOING_AWAY, message=b"server restarting")
                for ws in sockets
            ),
            return_exceptions=True,
        )

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --- admission -----------------------------------------------------------------------------
    def admit(self, hello: protocol.Hello, client: str, now: float) -> Admitted | Error:
        """Limiter, digest lookup, decision. The only place that counts wrong guesses."""
        handle = None
        if isinstance(hello.auth, protocol.CodeAuth):
            handle = admission.normalize_host(hello.auth.host) or "-invalid-"
        verdict = self.limiter.check(client, handle, now)
        if not verdict.allowed:
            self.metrics.rate_limited.inc()
            self.metrics.joins.labels(ErrorCode.RATE_LIMITED.value).inc()
            return Error(ErrorCode.RATE_LIMITED, retry_after=verdict.retry_after)
        found = admission.find(self.settings.shared_key, hello.auth, self.index)
        if found is None:
            self.limiter.failed(client, handle, now)
            self.metrics.rejected.inc()
        decision = admission.decide(found, datetime.now(UTC))
        if isinstance(decision, Rejected):
            self.metrics.joins.labels(decision.code.value).inc()
            return Error(decision.code)
        return decision

    # --- one socket ----------------------------------------------------------------------------
    def new_conn(self) -> int:
        self._next_conn += 1
        return self._next_conn

    async def serve_admitted(
        self,
        ws: web.WebSocketResponse,
        conn: int,
        admitted: Admitted,
        resume: str | None,
        started: float,
    ) -> None:
        call = self._call_for(admitted.session)
        peer, token = f"p-{secrets.token_hex(5)}", secrets.token_urlsafe(24)
        seated = call.room.attach(admitted.role, resume, conn, peer, token)
        if not isinstance(seated, Attached):
            self.metrics.joins.labels(seated.code.value).inc()
            await close_with(ws, seated)
            return
        call.sockets[conn] = ws
        call.empty_since = None
        view = call.view
        welcome = Welcome(
            you=seated.seat.peer,
            role=seated.seat.role,
            resume=seated.seat.resume,
            mode=view.mode.value,
            scheduled_start=format_time(view.scheduled_start),
            expires_at=format_time(view.expires_at) if view.expires_at else "",
            state=call.state,
            ice_servers=self.ice_servers(view),
            relay_only=self.settings.relay_only or view.mode is JoinMode.MEDIA_POD,
            max_participants=view.seats,
            logo=logo_path(self.settings.shared_key, view.uid, view.logo_config_map),
        )
        await send(ws, welcome)
        self.metrics.joins.labels("ok").inc()
        self.metrics.join_latency.observe(time.monotonic() - started)
        await send(ws, call.room.roster_for(conn))
        sent = call.slots_sent.get(seated.seat.peer)
        if sent is not None:
            await send(ws, sent)
        await self.execute(call, seated.effects)
        if seated.seat.joined:
            self.mark_presence(call)
        budget = MessageBudget(time.monotonic())
        try:
            async for message in ws:
                if not budget.take(time.monotonic()):
                    self.metrics.rate_limited.inc()
                    await close_with(ws, Error(ErrorCode.RATE_LIMITED, retry_after=1))
                    break
                if message.type is not aiohttp.WSMsgType.TEXT:
                    if message.type is aiohttp.WSMsgType.BINARY:
                        raise ProtocolError("binary frames are not part of the protocol")
                    if message.type is aiohttp.WSMsgType.ERROR:  # aiohttp closed it (1009)
                        raise ProtocolError("frame too big", protocol.CloseCode.TOO_BIG)
                    break
                await self.on_message(call, conn, ws, protocol.parse(message.data))
        except ProtocolError as err:
            self.metrics.bad_messages.inc()
            await close_with(ws, Error(ErrorCode.BAD_MESSAGE), err.close, err.reason)
        finally:
            seat = call.room.seat_of(conn)
            call.sockets.pop(conn, None)
            if seat is not None:
                await self.execute(call, call.room.detach(conn))
                self.mark_presence(call)
                if call.pod is not None and not call.ended:
                    self.spawn(self._remove_unless_resumed(call, call.pod, seat.peer))
            if not call.sockets:
                call.empty_since = time.monotonic()

    async def on_message(
        self, call: Call, conn: int, ws: web.WebSocketResponse, message: protocol.ClientMessage
    ) -> None:
        if isinstance(message, Ping):
            await send(ws, Pong())
        elif isinstance(message, Join):
            await self.execute(call, call.room.join(conn, message.name))
            self.mark_presence(call)
        elif isinstance(message, Sdp | protocol.Ice):
            await self._negotiate(call, conn, ws, message)
        elif isinstance(message, E2e):
            await self._relay(call, conn, message.to, message.relayed, "e2e")
        elif isinstance(message, Leave):
            seat = call.room.seat_of(conn)
            await self.execute(call, call.room.leave(conn))
            self.mark_presence(call)
            if seat is not None and call.pod is not None:
                self.spawn(self._remove_from_pod(call.pod, seat.peer))
        elif isinstance(message, protocol.Hello):
            raise ProtocolError("hello only once per socket")

    async def _negotiate(
        self, call: Call, conn: int, ws: web.WebSocketResponse, message: Sdp | protocol.Ice
    ) -> None:
        seat = call.room.seat_of(conn)
        if seat is None or not seat.joined:
            raise ProtocolError(f"{type(message).__name__.lower()} before join")
        if call.state is not RoomState.OPEN:  # a client must wait for `open`
            start = format_time(call.view.scheduled_start)
            await close_with(ws, Error(ErrorCode.NOT_STARTED, scheduled_start=start))
            return
        if message.to != SFU:
            await self._relay(
                call, conn, message.to, message.relayed, type(message).__name__.lower()
            )
            return
        if call.view.mode is not JoinMode.MEDIA_POD or call.pod is None:
            raise ProtocolError("no sfu in a peer-to-peer call")
        pod = call.pod
        try:
            if isinstance(message, Sdp):
                answer = await pod.join(seat.peer, message.sdp)
                self.metrics.media_requests.labels("ok").inc()
                await send(ws, SfuAnswer(answer))
            else:
                await pod.candidate(seat.peer, message.candidate)
                self.metrics.media_requests.labels("ok").inc()
        except MediaError as err:
            self.metrics.media_requests.labels("error").inc()
            logger.warning(
                "media pod refused", extra={"status": err.status, "session": call.view.key}
            )
            await close_with(ws, Error(err.code))

    async def _relay(self, call: Call, conn: int, to: str, relayed: Any, kind: str) -> None:
        route = call.room.route(conn, to)
        if route is None:
            return  # the peer left meanwhile, or has not joined: nothing to deliver
        sender, targets = route
        frame = protocol.encode(relayed(sender))
        for target in targets:
            ws = call.sockets.get(target)
            if ws is not None:
                await send_frame(ws, frame)
                self.metrics.relayed.labels(kind).inc()

    async def execute(self, call: Call, effects: Effects) -> None:
        for target, message in effects.send:
            ws = call.sockets.get(target)
            if ws is not None:
                await send(ws, message)
        for target, final in effects.close:
            ws = call.sockets.pop(target, None)
            if ws is not None:
                await close_with(ws, final)

    # --- calls ---------------------------------------------------------------------------------
    def _call_for(self, view: SessionView) -> Call:
        call = self.calls.get(view.key)
        if call is None or call.view.uid != view.uid or call.ended:
            call = Call(view, Room(view.clients), written=dict(view.presence))
            self.calls[view.key] = call
            self.metrics.rooms.set(len(self.calls))
            self._update_state(call)
        return call

    def session_changed(self, view: SessionView, previous: SessionView | None) -> None:
        """From the watch: a session changed (or is gone)."""
        call = self.calls.get(view.key)
        if call is not None and call.view.uid == view.uid and not call.ended:
            call.view = view
            self.spawn(self.refresh(call))

    async def refresh(self, call: Call) -> None:
        reason = admission.ended(call.view, datetime.now(UTC))
        if reason is not None:
            await self.end(call, _END_REASON[reason])
            return
        before = call.state
        changed_pod = self._update_state(call)
        if call.state is RoomState.OPEN and (before is RoomState.WAITING or changed_pod):
            ice = self.ice_servers(call.view) if call.view.mode is JoinMode.MEDIA_POD else None
            for ws in list(call.sockets.values()):
                await send(ws, Open(ice))

    def _update_state(self, call: Call) -> bool:
        """Recompute waiting/open and the media pod; True if a (new) pod became reachable."""
        view = call.view
        address = self._control_address(view)
        changed = False
        if view.mode is JoinMode.MEDIA_POD:
            identity = (view.media_pod, address) if address else None
            if identity != call.pod_identity:
                if call.follower is not None:
                    call.follower.cancel()
                call.pod, call.follower, call.pod_identity = None, None, identity
                call.slots_sent.clear()
                if identity is not None and address is not None and self.http is not None:
                    token = control_token(self.settings.shared_key, view.uid)
                    call.pod = MediaPod(self.http, address, token)
                    call.follower = self.spawn(follow(call.pod, lambda p: self._on_media(call, p)))
                    changed = True
        call.state = admission.room_state(view, call.pod is not None)
        return changed

    def _control_address(self, view: SessionView) -> str | None:
        override = self.settings.media_override.get(view.key)
        return override.control if override is not None else view.control_endpoint

    def _turn_address(self, view: SessionView) -> str | None:
        override = self.settings.media_override.get(view.key)
        return override.turn if override is not None else view.media_endpoint

    async def _on_media(self, call: Call, participants: Mapping[str, Any]) -> None:
        maps = slot_maps(participants, max(1, call.view.seats - 1))
        for seat in call.room.seats:
            slots = maps.get(seat.peer)
            ws = call.sockets.get(seat.conn) if seat.conn is not None else None
            if slots is not None and ws is not None and call.slots_sent.get(seat.peer) != slots:
                call.slots_sent[seat.peer] = slots
                await send(ws, slots)
        speaker = speaker_of(participants)
        if speaker != call.speaker:
            call.speaker = speaker
            for ws in list(call.sockets.values()):
                await send(ws, Speaker(speaker))

    async def _remove_unless_resumed(self, call: Call, pod: MediaPod, peer: str) -> None:
        await asyncio.sleep(POD_RESUME_GRACE_SECONDS)
        if not call.room.holds(peer):
            await self._remove_from_pod(pod, peer)

    async def _remove_from_pod(self, pod: MediaPod, peer: str) -> None:
        try:
            await pod.remove(peer)
            self.metrics.media_requests.labels("ok").inc()
        except MediaError:
            self.metrics.media_requests.labels("error").inc()

    async def end(self, call: Call, reason: EndReason) -> None:
        """Everyone out with ``ended``; the call is forgotten."""
        if call.ended:
            return
        call.ended = True
        if call.follower is not None:
            call.follower.cancel()
        effects = call.room.end(reason)
        await self.execute(call, effects)
        if self.calls.get(call.view.key) is call:
            del self.calls[call.view.key]
        self.metrics.rooms.set(len(self.calls))
        logger.info("call ended", extra={"session": call.view.key, "reason": reason.value})

    async def tick(self) -> None:
        """Once a second: end calls at expiresAt even if the watch is quiet; drop empty ones."""
        now, mono = datetime.now(UTC), time.monotonic()
        for call in list(self.calls.values()):
            if admission.ended(call.view, now) is not None:
                await self.refresh(call)
            elif call.empty_since is not None and mono - call.empty_since > EMPTY_CALL_SECONDS:
                await self.end(call, EndReason.LEFT)

    def sweep(self) -> None:
        self.limiter.sweep(time.monotonic())
        self.index.sweep(datetime.now(UTC))

    # --- credentials ---------------------------------------------------------------------------
    def ice_servers(self, view: SessionView) -> tuple[IceServer, ...]:
        """TURN REST credentials that expire no later than the session does."""
        now = datetime.now(UTC)
        expiry = now + timedelta(seconds=TURN_TTL_SECONDS)
        if view.expires_at is not None:
            expiry = min(expiry, view.expires_at)
        expires_unix = int(expiry.timestamp())
        key = self.settings.shared_key
        if view.mode is JoinMode.MEDIA_POD:
            address = self._turn_address(view)
            if address is None:
                return ()
            urls: tuple[str, ...] = (
                f"turn:{address}?transport=udp",
                f"turn:{address}?transport=tcp",
            )
            secret = turn_secret(key, view.uid)
        else:
            if not self.settings.turn_urls:
                return ()
            urls, secret = self.settings.turn_urls, shared_turn_secret(key)
        username, credential = turn_rest_credentials(secret, expires_unix, secrets.token_hex(4))
        return (IceServer(urls, username, credential),)

    # --- presence ------------------------------------------------------------------------------
    def mark_presence(self, call: Call) -> None:
        """Who is joined may have changed: have it written, coalesced (one writer per call,
        at most one patch in flight, each patch from the room as it is when it is sent)."""
        if self.kube is None:
            return
        if call.writer is not None and not call.writer.done():
            call.dirty = True  # the running writer sends the latest state after its patch
            return
        if self._presence_patch(call) is None:
            return  # nothing to say (e.g. a socket that never joined came or went)
        call.dirty = True
        call.writer = self.spawn(self._write_presence(call))

    def _presence_patch(self, call: Call) -> dict[str, Any] | None:
        now_present = call.room.presence()
        return presence.patch(
            call.written, now_present, self.settings.replica_name, datetime.now(UTC)
        )

    async def _write_presence(self, call: Call) -> None:
        assert self.kube is not None
        failures = 0
        while call.dirty and not call.view.gone:
            call.dirty = False
            patch = self._presence_patch(call)
            if patch is None:
                continue
            try:
                await self.kube.patch_session_status(call.view.namespace, call.view.name, patch)
            except KubeError as err:
                self.metrics.presence_writes.labels("error").inc()
                failures += 1
                if err.status == 404 or failures > 5:
                    return
                call.dirty = True
                await asyncio.sleep(min(0.2 * 2**failures, 5.0))
                continue
            self.metrics.presence_writes.labels("ok").inc()
            call.written = dict(patch["status"]["presence"])


async def send(ws: web.WebSocketResponse, message: protocol.ServerMessage | dict[str, Any]) -> None:
    """One message; a socket that is already gone is not an error."""
    await send_frame(ws, protocol.encode(message))


async def send_frame(ws: web.WebSocketResponse, frame: str) -> None:
    """One text frame, given up after SEND_SECONDS (a stalled peer cannot hold up its call)."""
    if ws.closed:
        return
    with contextlib.suppress(ConnectionError, RuntimeError, TimeoutError):
        await asyncio.wait_for(ws.send_str(frame), SEND_SECONDS)


async def close_with(
    ws: web.WebSocketResponse,
    final: Error | Ended,
    code: int | None = None,
    reason: str | None = None,
) -> None:
    """Send the final ``error``/``ended`` message, then close with its code."""
    await send(ws, final)
    text = reason or (final.code.value if isinstance(final, Error) else final.reason.value)
    with contextlib.suppress(ConnectionError, RuntimeError):
        await ws.close(code=code or final.close, message=text.encode()[:120])
