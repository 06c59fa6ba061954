"""One person's access network, between their browser and the TURN server: a UDP relay on
loopback that can be slowed down (a bandwidth limit with a bounded queue, like a DSL or mobile
uplink) and can "change network" (every current path dies, new ones work: Wi-Fi to mobile).

Chromium's own network emulation (CDP ``Network.emulateNetworkConditions``) throttles HTTP only,
never WebRTC (crbug.com/563644), so the limit has to sit in the packets' way. The browser is
pointed here by ``through(page_context, turn_url, link)``: an init script swaps the TURN
server's address in every RTCPeerConnection configuration of that page for the relay's (test
side only, the product code is unchanged). Relay-only calls then carry all media through it.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import cast

from playwright.async_api import BrowserContext

Address = tuple[str, int]


@dataclass
class _Shaper:
    """A bit-rate limit with a queue of at most ``max_delay`` seconds (tail drop beyond)."""

    rate_bps: float | None = None
    max_delay: float = 0.3
    free_at: float = 0.0
    sent: int = 0
    dropped: int = 0

    def delay(self, size: int, now: float) -> float | None:
        """Seconds until this packet leaves, or None if the queue is full (dropped)."""
        if self.rate_bps is None:
            self.sent += 1
            return 0.0
        start = max(now, self.free_at)
        if start - now > self.max_delay:
            self.dropped += 1
            return None
        self.free_at = start + size * 8 / self.rate_bps
        self.sent += 1
        return self.free_at - now


class _Upstream:
    """The relay's socket toward TURN for one browser socket (its own 5-tuple at TURN)."""

    def __init__(self, link: AccessLink, client: Address) -> None:
        self.link = link
        self.client = client
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.setblocking(False)
        self.socket.connect(link.turn)
        asyncio.get_running_loop().add_reader(self.socket, self._readable)

    def send(self, data: bytes) -> None:
        with suppress(OSError):  # TURN down (killed): the datagram is lost, as on a network
            self.socket.send(data)

    def _readable(self) -> None:
        with suppress(OSError):
            while True:
                data = self.socket.recv(65535)
                self.link.deliver(self.link.down, data, lambda d: self.link.reply(d, self.client))

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.socket)
        self.socket.close()


@dataclass(eq=False)
class AccessLink(asyncio.DatagramProtocol):
    turn: Address
    up: _Shaper = field(default_factory=_Shaper)  # browser → TURN
    down: _Shaper = field(default_factory=_Shaper)  # TURN → browser
    port: int = 0
    _listener: asyncio.DatagramTransport | None = None
    _paths: dict[Address, _Upstream] = field(default_factory=dict)
    _dead: set[Address] = field(default_factory=set)

    def limit(self, bits_per_second: float | None) -> None:
        """Limit both directions (None: unlimited)."""
        self.up.rate_bps = self.down.rate_bps = bits_per_second

    def change_network(self) -> None:
        """Every path the browser uses now dies (its old address is gone); sockets it opens
        from now on get through, with their own new 5-tuple at the TURN server."""
        self._dead |= set(self._paths)
        for path in self._paths.values():
            path.close()
        self._paths.clear()

    # -- relaying
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._listener = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        if addr in self._dead:
            return
        path = self._paths.get(addr)
        if path is None:
            path = self._paths[addr] = _Upstream(self, addr)
        self.deliver(self.up, data, path.send)

    def deliver(self, shaper: _Shaper, data: bytes, send: Callable[[bytes], None]) -> None:
        loop = asyncio.get_running_loop()
        delay = shaper.delay(len(data) + 28, loop.time())  # + IP and UDP headers
        if delay == 0.0:
            send(data)
        elif delay is not None:
            loop.call_later(delay, send, data)

    def reply(self, data: bytes, client: Address) -> None:
        if self._listener is not None and client not in self._dead:
            self._listener.sendto(data, client)


@asynccontextmanager
async def access_link(turn_port: int) -> AsyncIterator[AccessLink]:
    """A relay on a free loopback port in front of the TURN server at ``turn_port``."""
    loop = asyncio.get_running_loop()
    link = AccessLink(("127.0.0.1", turn_port))
    transport, _ = await loop.create_datagram_endpoint(lambda: link, local_addr=("127.0.0.1", 0))
    link.port = transport.get_extra_info("sockname")[1]
    try:
        yield link
    finally:
        link.change_network()
        transport.close()


async def through(context: BrowserContext, turn_port: int, link: AccessLink) -> None:
    """Send this context's WebRTC to TURN through ``link`` (before its pages load)."""
    await context.add_init_script(
        f"""
        (() => {{
          const Original = window.RTCPeerConnection;
          const swap = (url) => url.replace(":{turn_port}", ":{link.port}");
          window.RTCPeerConnection = function (config = {{}}, ...rest) {{
            const iceServers = (config.iceServers ?? []).map((server) => ({{
              ...server,
              urls: [].concat(server.urls).map(swap),
            }}));
            return new Original({{...config, iceServers}}, ...rest);
          }};
          window.RTCPeerConnection.prototype = Original.prototype;
          Object.setPrototypeOf(window.RTCPeerConnection, Original);
        }})();
        """
    )
