"""The connection test page's TURN credentials: short-lived, marked test-only, rate limited per
address (core, table-driven), and the real endpoint in front of a real coturn: only this
origin, 429 with Retry-After, credentials that allocate and then expire."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aioice import stun
from aioice.turn import create_turn_endpoint
from browser import shared_turn
from sprechzimmer.signaling import connectiontest
from sprechzimmer.signaling.appkeys import METRICS, SETTINGS
from sprechzimmer.signaling.core.connectiontest import (
    AT_ONCE,
    POLICY,
    TTL_SECONDS,
    Issued,
    TestCredentials,
)
from sprechzimmer.signaling.core.ratelimit import Verdict
from sprechzimmer.signaling.core.settings import Settings
from sprechzimmer.signaling.metrics import Metrics
from tests import support as media  # media-pod/tests/support.py

KEY = "k" * 48
URLS = ("turn:turn.example.org:3478?transport=udp", "turn:turn.example.org:3478?transport=tcp")


def issue(credentials: TestCredentials, client: str, mono: float) -> Issued | Verdict:
    return credentials.issue(client, URLS, "secret", mono=mono, unix=1_800_000_000, nonce="ab12")


@pytest.mark.unit
def test_credentials_live_minutes_and_say_they_are_for_the_test() -> None:
    issued = issue(TestCredentials(), "203.0.113.7", 0.0)
    assert isinstance(issued, Issued)
    (server,) = issued.ice_servers
    assert TTL_SECONDS <= 600
    assert issued.expires_at == 1_800_000_000 + TTL_SECONDS
    assert server.username == f"{issued.expires_at}:test-ab12"
    assert server.urls == URLS  # turn: only, no stun: URL
    mac = hmac.new(b"secret", server.username.encode(), hashlib.sha1).digest()
    assert base64.b64decode(server.credential) == mac
    assert issued.serialize()["expiresAt"] == issued.expires_at


@pytest.mark.unit
def test_without_a_shared_turn_server_there_is_nothing_to_hand_out() -> None:
    issued = TestCredentials().issue("a", (), "secret", mono=0, unix=0, nonce="x")
    assert issued == Issued((), TTL_SECONDS)


@pytest.mark.unit
@pytest.mark.parametrize(
    ("times", "expected"),
    [
        # five at once, then growing waits
        ([0, 0, 0, 0, 0], [0, 0, 0, 0, 0]),
        ([0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 2]),
        # the sixth waits its 2 s, the seventh 4 s
        ([0, 0, 0, 0, 0, 0, 2, 2], [0, 0, 0, 0, 0, 2, 0, 4]),
        # quiet time is forgotten: one request per 10 minutes
        ([0, 0, 0, 0, 0, 600], [0, 0, 0, 0, 0, 0]),
    ],
)
def test_an_address_gets_five_then_growing_waits(times: list[float], expected: list[int]) -> None:
    credentials = TestCredentials()
    waits = []
    for at in times:
        result = issue(credentials, "203.0.113.7", at)
        waits.append(0 if isinstance(result, Issued) else result.retry_after)
    assert waits == expected
    assert isinstance(issue(credentials, "203.0.113.8", times[-1]), Issued)  # others unaffected


@pytest.mark.unit
def test_an_address_hammering_the_endpoint_gets_six_an_hour() -> None:
    credentials = TestCredentials()
    now, per_hour = 0.0, [0, 0]
    while now < 7200:
        result = issue(credentials, "203.0.113.7", now)
        if isinstance(result, Issued):
            per_hour[int(now // 3600)] += 1
        else:
            assert result.retry_after <= POLICY.cap
            now += result.retry_after
    assert per_hour == [19, 6]  # five at once, the doublings up to the cap, then one per 10 min


# --------------------------------------------------------------------------- real endpoint


@pytest.fixture
async def endpoint(tmp_path: Path) -> AsyncIterator[tuple[TestClient[Any, Any], str]]:
    """The endpoint as signaling serves it (credentials living 3 s), before a real coturn."""
    async with shared_turn(tmp_path, KEY) as url:
        app = web.Application()
        app[SETTINGS] = Settings(
            shared_key=KEY.encode(), public_url="http://127.0.0.1:1", turn_urls=(url,)
        )
        app[METRICS] = Metrics()
        connectiontest.setup_routes(app, TestCredentials(ttl_seconds=3))
        async with TestClient(TestServer(app)) as client:
            yield client, url


# How long after the expiry coturn may still accept credentials (its cached clock).
EXPIRY_GRACE_SECONDS = 3


async def post(client: TestClient[Any, Any], origin: str = "http://127.0.0.1:1") -> Any:
    return await client.post(connectiontest.PATH, headers={"Origin": origin})


async def allocate(url: str, server: dict[str, Any]) -> None:
    port = int(url.split(":")[2].split("?")[0])
    transport, _ = await create_turn_endpoint(
        asyncio.DatagramProtocol,
        server_addr=("127.0.0.1", port),
        username=server["username"],
        password=server["credential"],
    )
    transport.close()


async def allocation_error(url: str, server: dict[str, Any]) -> int | None:
    """The STUN error code coturn refuses an allocation with, None if it allocates."""
    try:
        await allocate(url, server)
    except stun.TransactionFailed as refused:
        return int(refused.response.attributes["ERROR-CODE"][0])
    return None


@pytest.mark.media
async def test_the_endpoint_hands_out_credentials_that_allocate_then_expire(
    endpoint: tuple[TestClient[Any, Any], str],
) -> None:
    client, url = endpoint
    response = await post(client)
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = await response.json()
    (server,) = body["iceServers"]
    assert server["urls"] == [url]
    expiry, tag = server["username"].split(":")
    assert int(expiry) == body["expiresAt"] <= time.time() + 3
    assert tag.startswith("test-")
    await allocate(url, server)  # the real coturn accepts them
    # until they are past (coturn compares whole seconds): waiting on the clock itself
    await asyncio.sleep(body["expiresAt"] + 1 - time.time())
    # coturn can still accept a request right after the expiry (1 of 8 runs, likely its cached
    # clock): it must refuse within EXPIRY_GRACE_SECONDS of it.
    errors: list[int] = []

    async def refused() -> bool:
        error = await allocation_error(url, server)
        if error is None:
            return False
        errors.append(error)
        return True

    await media.wait_for(refused, EXPIRY_GRACE_SECONDS, "coturn to refuse expired credentials")
    assert errors == [401]


@pytest.mark.media
async def test_the_endpoint_refuses_other_origins_and_limits_each_address(
    endpoint: tuple[TestClient[Any, Any], str],
) -> None:
    client, _ = endpoint
    assert (await post(client, origin="https://evil.example")).status == 403
    for _ in range(AT_ONCE):
        assert (await post(client)).status == 200
    refused = await post(client)
    assert refused.status == 429
    assert refused.headers["Retry-After"] == "2"
    assert await refused.json() == {"error": "rate-limited", "retryAfter": 2}
    registry = client.app[METRICS].registry if client.app else None
    assert registry is not None
    name = "sprechzimmer_signaling_test_credentials_total"
    assert registry.get_sample_value(name, {"result": "ok"}) == AT_ONCE
    assert registry.get_sample_value(name, {"result": "rate-limited"}) == 1
