"""coturn with the rendered configuration: relays to the SFU on loopback and nowhere else."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from aioice import stun
from aioice.turn import create_turn_endpoint
from sprechzimmer.devcluster.addons import stun_answers
from sprechzimmer.media.core.turn import rest_credentials

from .support import TURN_SECRET, Turn, running_turn, workdir

pytestmark = [pytest.mark.media, pytest.mark.timeout(60)]


@pytest.fixture
async def turn() -> AsyncIterator[Turn]:
    async with running_turn(workdir()) as server:
        yield server


class _Sink(asyncio.DatagramProtocol):
    pass


async def allocate(
    turn: Turn, expires_at: int, transport: str = "udp"
) -> asyncio.DatagramTransport:
    creds = rest_credentials(TURN_SECRET, expires_at, "test")
    endpoint, _ = await create_turn_endpoint(
        _Sink,
        server_addr=("127.0.0.1", turn.port),
        username=creds.username,
        password=creds.password,
        transport=transport,
    )
    return endpoint


@pytest.mark.parametrize(
    "peer",
    [
        "10.0.0.1",  # cluster / pod networks
        "192.168.1.1",
        "172.16.0.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # carrier-grade NAT, often nodes
        "198.51.100.1",  # any other address (documentation range, never routed)
        "127.0.0.2",  # loopback, but not the SFU's address
    ],
)
async def test_refuses_peers_other_than_loopback_sfu(turn: Turn, peer: str) -> None:
    endpoint = await allocate(turn, int(time.time()) + 600)
    try:
        protocol = endpoint._TurnTransport__inner_protocol  # type: ignore[attr-defined]
        with pytest.raises(stun.TransactionFailed) as failure:
            await protocol.channel_bind(0x4000, (peer, 9))
        assert failure.value.response.attributes["ERROR-CODE"][0] == 403
    finally:
        endpoint.close()


async def test_relays_to_loopback(turn: Turn) -> None:
    endpoint = await allocate(turn, int(time.time()) + 600)
    try:
        protocol = endpoint._TurnTransport__inner_protocol  # type: ignore[attr-defined]
        await protocol.channel_bind(0x4001, ("127.0.0.1", 9))
        assert protocol.relayed_address[0] == "127.0.0.1"
    finally:
        endpoint.close()


def test_an_unauthenticated_binding_request_gets_a_success(turn: Turn) -> None:
    # what Chromium sends to a UDP TURN server every 10 s; a 401 would be an ICE candidate error
    assert stun_answers(turn.port)


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_expired_credentials_are_refused(turn: Turn, transport: str) -> None:
    with pytest.raises(stun.TransactionFailed) as failure:
        await allocate(turn, int(time.time()) - 5, transport)
    assert failure.value.response.attributes["ERROR-CODE"][0] == 401


async def test_wrong_secret_is_refused(turn: Turn) -> None:
    creds = rest_credentials("another-secret-entirely", int(time.time()) + 600, "test")
    with pytest.raises(stun.TransactionFailed):
        await create_turn_endpoint(
            _Sink,
            server_addr=("127.0.0.1", turn.port),
            username=creds.username,
            password=creds.password,
        )
