"""The aiortc adapter: fails loudly if aiortc changes underneath, and its hooks really take over."""

from __future__ import annotations

import asyncio
import importlib.metadata

import aiortc.rtcrtpreceiver
import pytest
import uvloop
from aiortc.rtcdtlstransport import RTCDtlsTransport
from sprechzimmer.media import _aiortc_hooks as hooks

pytestmark = pytest.mark.unit


def test_installed_aiortc_is_the_pinned_one() -> None:
    hooks.check_aiortc()
    assert importlib.metadata.version("aiortc") == hooks.PINNED_AIORTC
    requirement = next(
        r for r in importlib.metadata.requires("sprechzimmer-media") or [] if r.startswith("aiortc")
    )
    assert requirement == f"aiortc=={hooks.PINNED_AIORTC}"


@pytest.mark.parametrize(
    ("target", "name"),
    [
        (RTCDtlsTransport, "_handle_rtp_data"),
        (RTCDtlsTransport, "_send_rtp"),
        (aiortc.rtcrtpreceiver.RTCRtpReceiver, "_run_rtcp"),
    ],
)
def test_a_missing_internal_is_reported(
    monkeypatch: pytest.MonkeyPatch, target: type, name: str
) -> None:
    monkeypatch.delattr(target, name)
    with pytest.raises(hooks.AiortcChangedError, match=name):
        hooks.check_aiortc()


def test_another_aiortc_version_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aiortc, "__version__", "1.17.0")
    with pytest.raises(hooks.AiortcChangedError, match=r"aiortc 1\.17\.0 installed"):
        hooks.check_aiortc()


def test_tripwires_count_and_refuse(monkeypatch: pytest.MonkeyPatch) -> None:
    for module, name in (
        (aiortc.rtcrtpreceiver, "get_decoder"),
        (aiortc.rtcrtpreceiver, "depayload"),
        (aiortc.rtcrtpsender, "get_encoder"),
    ):
        monkeypatch.setattr(module, name, getattr(module, name))
    entered: list[str] = []
    hooks.install_codec_tripwires(entered.append)
    with pytest.raises(RuntimeError, match="bypassed"):
        aiortc.rtcrtpreceiver.get_decoder(None)
    with pytest.raises(RuntimeError):
        aiortc.rtcrtpsender.get_encoder(None)
    assert entered == ["decoder", "encoder"]


def test_loopback_only_gathering(monkeypatch: pytest.MonkeyPatch) -> None:
    import aioice.ice

    monkeypatch.setattr(aioice.ice, "get_host_addresses", aioice.ice.get_host_addresses)
    hooks.bind_media_to_loopback()
    assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True) == ["127.0.0.1"]


class _Protocol(asyncio.DatagramProtocol):
    """Like aioice's StunProtocol: a plain class whose instances have a __dict__."""


@pytest.mark.media  # real sockets on loopback
@pytest.mark.parametrize("loop_factory", [uvloop.new_event_loop, asyncio.new_event_loop])
def test_event_loops_honour_a_per_instance_datagram_handler(loop_factory: object) -> None:
    """The fast path replaces ``datagram_received`` on one protocol instance; both loops must
    look it up per datagram rather than binding the method at connection time."""

    async def scenario() -> list[bytes]:
        loop = asyncio.get_running_loop()
        got: list[bytes] = []
        transport, protocol = await loop.create_datagram_endpoint(
            _Protocol, local_addr=("127.0.0.1", 0)
        )
        protocol.datagram_received = lambda data, addr: got.append(data)  # type: ignore[method-assign]
        sender, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, remote_addr=transport.get_extra_info("sockname")
        )
        sender.sendto(b"\x80hello")
        for _ in range(200):
            if got:
                break
            await asyncio.sleep(0.01)
        sender.close()
        transport.close()
        return got

    with asyncio.Runner(loop_factory=loop_factory) as runner:  # type: ignore[arg-type]
        assert runner.run(scenario()) == [b"\x80hello"]
