"""Multi-replica: forward a browser's socket to the replica that owns its session.

Admission (limiter, digest lookup) happens where the browser landed, since only that replica
sees the browser's address. If another live replica owns the session (rendezvous hashing over
the presence Leases, ``core.owner``), this replica opens ``/internal/ws`` on the owner,
authenticated with a token derived from the shared key, sends one ``admit`` frame (session,
role, resume) and then copies frames both ways until either side closes, passing the close
code on. The owner serves the socket like any other, so all people of a call meet in one
process, without a shared store.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
from typing import Any

import aiohttp
from aiohttp import web

from .appkeys import HUB, SETTINGS
from .calls import Hub, close_with
from .core import protocol
from .core.admission import Admitted
from .core.owner import INTERNAL_PATH, Replica, internal_token
from .core.protocol import Error, ErrorCode, Role

logger = logging.getLogger(__name__)
CONNECT_SECONDS = 5.0


async def forward(
    hub: Hub, browser: web.WebSocketResponse, owner: Replica, admitted: Admitted, resume: str | None
) -> None:
    """Pipe ``browser`` to ``owner``'s internal endpoint until one side closes."""
    assert hub.http is not None
    headers = {"Authorization": f"Bearer {internal_token(hub.settings.shared_key)}"}
    try:
        upstream = await hub.http.ws_connect(
            f"ws://{owner.address}{INTERNAL_PATH}",
            headers=headers,
            timeout=aiohttp.ClientWSTimeout(ws_close=5.0),
            max_msg_size=protocol.MAX_FRAME_BYTES + 1024,
            heartbeat=30.0,
        )
    except (aiohttp.ClientError, OSError, TimeoutError):
        logger.warning("owner replica unreachable", extra={"replica": owner.name})
        await close_with(browser, Error(ErrorCode.UNAVAILABLE))
        return
    hub.metrics.proxied.inc()
    view = admitted.session
    await upstream.send_str(
        json.dumps(
            {"session": view.key, "uid": view.uid, "role": admitted.role.value, "resume": resume}
        )
    )
    hub.proxied.add(browser)

    async def down() -> None:  # owner → browser
        async for message in upstream:
            if message.type is aiohttp.WSMsgType.TEXT:
                await browser.send_str(message.data)
            else:
                break
        # The owner's code goes through; an owner that vanished (1006) means: reconnect.
        code = _sendable(upstream.close_code, protocol.CloseCode.GOING_AWAY)
        await browser.close(code=code, message=b"")

    async def up() -> None:  # browser → owner (validated by the owner, size-limited here)
        async for message in browser:
            if message.type is aiohttp.WSMsgType.TEXT:
                await upstream.send_str(message.data)
            elif message.type is aiohttp.WSMsgType.BINARY:
                await upstream.send_bytes(message.data)
            else:
                break
        if browser.close_code == protocol.CloseCode.TOO_BIG:
            hub.metrics.bad_messages.inc()
        await upstream.close(code=_sendable(browser.close_code, protocol.CloseCode.NORMAL))

    tasks = [asyncio.ensure_future(down()), asyncio.ensure_future(up())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        hub.proxied.discard(browser)
        with contextlib.suppress(Exception):
            await upstream.close()


def _sendable(code: int | None, default: int) -> int:
    """A close code that may be sent on (1005/1006 only describe a missing close frame)."""
    return default if code is None or code in (1005, 1006) else code


async def internal(request: web.Request) -> web.StreamResponse:
    """``/internal/ws`` on the owner: a socket another replica admitted, forwarded here."""
    hub = request.app[HUB]
    expected = f"Bearer {internal_token(request.app[SETTINGS].shared_key)}"
    if not hmac.compare_digest(
        request.headers.get("Authorization", "").encode(), expected.encode()
    ):
        raise web.HTTPForbidden(text="not a signaling replica\n")
    ws = web.WebSocketResponse(max_msg_size=protocol.MAX_FRAME_BYTES + 1024, heartbeat=30.0)
    await ws.prepare(request)
    hub.metrics.sockets.inc()
    try:
        first = await ws.receive(timeout=CONNECT_SECONDS)
        admit: dict[str, Any] = (
            json.loads(first.data) if first.type is aiohttp.WSMsgType.TEXT else {}
        )
        view = hub.index.get(str(admit.get("session")))
        if view is None or view.uid != admit.get("uid") or view.gone:
            await close_with(ws, Error(ErrorCode.UNAVAILABLE))  # not in this index (yet)
            return ws
        resume = admit.get("resume") if isinstance(admit.get("resume"), str) else None
        admitted = Admitted(view, Role(str(admit.get("role"))))
        await hub.serve_admitted(ws, hub.new_conn(), admitted, resume, time.monotonic())
    except (ValueError, TimeoutError):
        await close_with(ws, Error(ErrorCode.BAD_MESSAGE))
    finally:
        hub.metrics.sockets.dec()
    return ws
