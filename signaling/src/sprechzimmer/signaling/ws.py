"""``GET /ws``: one WebSocket per person. Checks the Origin, reads ``hello``, admits, and hands
the socket to the owner of its session: this replica's ``Hub``, or — when another replica owns
the session — that replica's internal endpoint, frame by frame (``proxy.py``).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import aiohttp
from aiohttp import web

from .appkeys import HUB, SETTINGS
from .calls import HELLO_SECONDS, Hub, close_with
from .core import protocol
from .core.owner import remote_owner
from .core.protocol import Error, ErrorCode, Hello, ProtocolError
from .core.ratelimit import client_key
from .core.settings import Settings
from .proxy import forward


def client_address(request: web.Request, settings: Settings) -> str:
    """The address rate limits apply to: the peer, or the trusted proxies' X-Forwarded-For."""
    if settings.forwarded_hops:
        hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",") if h]
        if len(hops) >= settings.forwarded_hops:
            return client_key(hops[-settings.forwarded_hops])
    return client_key(request.remote or "unknown")


def origin_allowed(request: web.Request, settings: Settings) -> bool:
    return request.headers.get("Origin", "").rstrip("/").lower() == settings.origin


async def websocket(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    if not origin_allowed(request, settings):
        raise web.HTTPForbidden(text="origin not allowed\n")
    hub = request.app[HUB]
    ws = web.WebSocketResponse(max_msg_size=protocol.MAX_FRAME_BYTES, heartbeat=30.0)
    await ws.prepare(request)
    hub.metrics.sockets.inc()
    try:
        await serve(hub, ws, client_address(request, settings))
    finally:
        hub.metrics.sockets.dec()
    return ws


async def read_hello(ws: web.WebSocketResponse) -> Hello | None:
    """The first frame, which must be ``hello``; None if the socket went away first."""
    try:
        message = await ws.receive(timeout=HELLO_SECONDS)
    except TimeoutError as err:
        raise ProtocolError("no hello within 15 s") from err
    if message.type is aiohttp.WSMsgType.BINARY:
        raise ProtocolError("binary frames are not part of the protocol")
    if message.type is aiohttp.WSMsgType.ERROR:  # aiohttp closed it already (1009 for size)
        raise ProtocolError("frame too big or broken", protocol.CloseCode.TOO_BIG)
    if message.type is not aiohttp.WSMsgType.TEXT:
        return None
    parsed = protocol.parse(message.data)
    if not isinstance(parsed, Hello):
        raise ProtocolError("the first message must be hello")
    return parsed


async def serve(hub: Hub, ws: web.WebSocketResponse, client: str) -> None:
    try:
        hello = await read_hello(ws)
    except ProtocolError as err:
        hub.metrics.bad_messages.inc()
        await close_with(ws, Error(ErrorCode.BAD_MESSAGE), err.close, err.reason)
        return
    if hello is None:
        return
    started = time.monotonic()
    outcome = hub.admit(hello, client, started)
    if isinstance(outcome, Error):
        await close_with(ws, outcome)
        return
    view = outcome.session
    me = hub.settings.replica_name
    owner = remote_owner(view.uid, view.presence, hub.replicas, me, datetime.now(UTC))
    if owner is not None:
        await forward(hub, ws, owner, outcome, hello.resume)
        return
    await hub.serve_admitted(ws, hub.new_conn(), outcome, hello.resume, started)
