"""The shared TURN server's configuration: what it renders, and what a real coturn then refuses."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aioice import stun
from aioice.turn import TurnClientUdpProtocol
from sprechzimmer.contract.keys import turn_rest_credentials
from sprechzimmer.devcluster.addons import stun_answers
from sprechzimmer.devcluster.cluster import free_udp_and_tcp_port, wait_for
from sprechzimmer.devcluster.components import POD_CIDR, SERVICE_CIDR
from sprechzimmer.devcluster.turn import (
    REFUSED_PEER_NETWORKS,
    SharedTurn,
    peer_ip_range,
    render_shared_turn_config,
)

SECRET = "test-shared-turn-secret"


def _turn(port: int = 3478, *, dev: bool) -> SharedTurn:
    return SharedTurn(
        listen_ip="127.0.0.1",
        port=port,
        relay_ip="127.0.0.1",
        secret=SECRET,
        cluster_networks=(POD_CIDR, SERVICE_CIDR),
        dev_loopback_peers=dev,
    )


def _options(config: str, name: str) -> list[str]:
    return [line.split("=", 1)[1] for line in config.splitlines() if line.startswith(name + "=")]


def _denied(config: str) -> list[tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]]:
    return [
        tuple(ipaddress.ip_address(part) for part in r.split("-"))
        for r in _options(config, "denied-peer-ip")
    ]


@pytest.mark.unit
@pytest.mark.parametrize(
    "address",
    [
        "10.1.2.3", "172.20.0.1", "192.168.178.1", "100.64.0.1", "127.0.0.1", "169.254.169.254",
        "0.0.0.1", "224.0.0.251", "255.255.255.255", "192.0.2.10", "10.96.0.1", "10.244.3.4",
        "::1", "fd00::1", "fe80::1", "::ffff:10.0.0.1", "64:ff9b::a00:1", "2002:a00:1::",
    ],
)  # fmt: skip
def test_private_loopback_and_cluster_addresses_are_refused(address: str) -> None:
    ip = ipaddress.ip_address(address)
    config = render_shared_turn_config(_turn(dev=False))
    assert any(
        type(lo) is type(ip) and lo <= ip <= hi  # type: ignore[operator]
        for lo, hi in _denied(config)
    )
    assert "allow-loopback-peers" not in config.splitlines()
    assert _options(config, "allowed-peer-ip") == []


@pytest.mark.unit
@pytest.mark.parametrize("address", ["8.8.8.8", "193.99.144.80", "2a00:1450:4001::1"])
def test_public_addresses_are_not_refused(address: str) -> None:
    ip = ipaddress.ip_address(address)
    config = render_shared_turn_config(_turn(dev=False))
    assert not any(
        type(lo) is type(ip) and lo <= ip <= hi  # type: ignore[operator]
        for lo, hi in _denied(config)
    )


@pytest.mark.unit
def test_only_the_dev_config_lets_the_relay_reach_127_0_0_1() -> None:
    dev = render_shared_turn_config(_turn(dev=True)).splitlines()
    assert "allow-loopback-peers" in dev
    assert _options("\n".join(dev), "allowed-peer-ip") == ["127.0.0.1"]


@pytest.mark.unit
def test_credentials_are_rest_only_and_no_tcp_relay() -> None:
    config = render_shared_turn_config(_turn(dev=False)).splitlines()
    assert {"use-auth-secret", f"static-auth-secret={SECRET}", "no-tcp-relay", "no-cli"} <= set(
        config
    )
    assert not any(line.startswith(("user=", "lt-cred-mech")) for line in config)


@pytest.mark.unit
def test_binding_requests_need_no_credentials() -> None:
    # secure-stun would answer Chromium's Binding keepalives to the TURN server with 401
    for dev in (True, False):
        assert "secure-stun" not in render_shared_turn_config(_turn(dev=dev)).splitlines()


@pytest.mark.unit
def test_peer_ip_range_spans_the_network() -> None:
    assert peer_ip_range("10.0.0.0/8") == "10.0.0.0-10.255.255.255"
    assert peer_ip_range("fe80::/10") == "fe80::-febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
    assert peer_ip_range("0.0.0.0/8") == "0.0.0.1-0.255.255.255"  # not open at the bottom
    assert len(REFUSED_PEER_NETWORKS) == len(set(REFUSED_PEER_NETWORKS))


# --------------------------------------------------------------------------- real coturn


def _run_coturn(directory: Path, *, dev: bool) -> Iterator[int]:
    turnserver = shutil.which("turnserver")
    if turnserver is None:
        pytest.fail("coturn is not installed (make packages)")
    port = free_udp_and_tcp_port()
    config = directory / f"turnserver-{port}.conf"
    config.write_text(render_shared_turn_config(_turn(port, dev=dev)))
    with (directory / f"turnserver-{port}.log").open("wb") as log:
        process = subprocess.Popen([turnserver, "-c", str(config)], stdout=log, stderr=log)
    try:
        wait_for("coturn answering", lambda: stun_answers(port), timeout=30)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def dev_turn(tmp_path: Path) -> Iterator[int]:
    yield from _run_coturn(tmp_path, dev=True)


@pytest.fixture
def production_turn(tmp_path: Path) -> Iterator[int]:
    yield from _run_coturn(tmp_path, dev=False)


@contextlib.asynccontextmanager
async def _allocation(
    port: int, password: str | None = None
) -> AsyncIterator[TurnClientUdpProtocol]:
    username, credential = turn_rest_credentials(SECRET, int(time.time()) + 600, "test")
    loop = asyncio.get_running_loop()
    _, client = await loop.create_datagram_endpoint(
        lambda: TurnClientUdpProtocol(
            ("127.0.0.1", port),
            username=username,
            password=password or credential,
            lifetime=600,
            channel_refresh_time=300,
        ),
        remote_addr=("127.0.0.1", port),
    )
    try:
        yield client
    finally:
        client.transport.close()


async def _permitted(client: TurnClientUdpProtocol, peer: str) -> bool:
    """CreatePermission for ``peer``: installs a permission, sends nothing to the peer."""
    request = stun.Message(
        message_method=stun.Method.CREATE_PERMISSION, message_class=stun.Class.REQUEST
    )
    request.attributes["XOR-PEER-ADDRESS"] = (peer, 9)
    try:
        await client.request_with_retry(request)
    except stun.TransactionFailed as failed:
        refusal = failed.response.error_code
    else:
        return True
    assert refusal == 403  # Forbidden IP, not some other failure
    return False


@pytest.mark.media
async def test_dev_relay_reaches_loopback_and_public_peers_but_no_private_ones(
    dev_turn: int,
) -> None:
    async with _allocation(dev_turn) as client:
        relayed = await client.connect()
        assert relayed[0] == "127.0.0.1"
        assert await _permitted(client, "127.0.0.1")
        assert await _permitted(client, "8.8.8.8")
        for refused in (
            "0.0.0.0", "0.0.0.1", "127.0.0.2", "10.244.0.5", "10.96.0.1", "192.168.1.1",  # noqa: S104
            "169.254.169.254", "100.64.0.1", "255.255.255.255",
        ):  # fmt: skip
            assert not await _permitted(client, refused), refused


@pytest.mark.media
async def test_production_relay_refuses_loopback(production_turn: int) -> None:
    async with _allocation(production_turn) as client:
        await client.connect()
        assert not await _permitted(client, "127.0.0.1")
        assert await _permitted(client, "8.8.8.8")


@pytest.mark.media
def test_an_unauthenticated_binding_request_gets_a_success(production_turn: int) -> None:
    assert stun_answers(production_turn)  # a Binding success, not a 401


@pytest.mark.media
async def test_wrong_credentials_get_no_allocation(dev_turn: int) -> None:
    async with _allocation(dev_turn, password="d3Jvbmc=") as client:
        with pytest.raises(stun.TransactionFailed) as refused:
            await client.connect()
        assert refused.value.response.error_code == 401
