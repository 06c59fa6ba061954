"""End-to-end encryption of group calls in real headless Chromium, through signaling and a real
SFU + coturn (media-pod processes behind MEDIA_OVERRIDE, as in test_browser_group.py).

- Five people: every page decodes the other four videos and their audio, each remote video
  carries ``data-encrypted="true"``, every page shows the same verification code. Two of the
  five use the older ``createEncodedStreams`` path (RTCRtpScriptTransform removed by the test),
  so both paths are proven to talk to each other. Then one leaves and a new page takes the
  freed slot everywhere: decrypted with the newcomer's keys, a new code.
- What the media pod forwards is only ciphertext, and a participant who left is locked out: two
  Chromium pages, a participant that only takes part in the key exchange (``e2ee_peer.py``, the
  documented protocol implemented again in Python) and an aiortc participant that receives the
  media from the SFU without ever getting a key — the capture, joined before the pages so it sees
  their first frames. Every captured frame is in the encrypted format; those from before the
  key-exchange participant joined do not open with its keys (the join ratchet is one way), every
  one after does (so it is AES-GCM ciphertext under a key the server never had), and libvpx
  decodes them once decrypted; after that participant leaves, no captured frame opens with any
  key it kept or can ratchet to. A tampered and a malformed key message are rejected and shown.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import aiortc.rtcrtpreceiver
import pytest
import support  # operator/tests/support.py, put on the path by conftest.py
from aiortc.codecs.vpx import Vp8Decoder
from aiortc.jitterbuffer import JitterFrame
from browser import (
    chromium,
    console_lines,
    inbound_stats,
    media_flowing,
    new_context,
    screenshot,
    small_camera,
    wait_for_state,
)
from e2ee_peer import E2eePeer, b64url, key_index, unb64url, verification_code
from lightkube import Client
from local_media_pod import local_media_pod
from playwright.async_api import Page
from playwright.async_api import TimeoutError as PlaywrightTimeoutError
from signaling_process import Person
from sprechzimmer.contract import SecretKey
from test_browser_call import invitation
from test_group_call_media import SignalledTurn, negotiate_with_sfu
from tests import support as media  # media-pod/tests/support.py

pytestmark = [pytest.mark.browser, pytest.mark.media, pytest.mark.timeout(600)]

TILES = """
() => [...document.querySelectorAll("figure[data-tile]")].map((f) => [
  f.dataset.tile,
  f.querySelector("figcaption").textContent,
  f.querySelector("video").dataset.encrypted ?? null,
])
"""
# Per incoming audio stream: samples played that were decoded, not concealed (a frame that does
# not decrypt is dropped, and the jitter buffer conceals the gap).
AUDIO_DECODED = """
async () => {
  const decoded = {};
  for (const pc of window.__testPeerConnections) {
    if (pc.connectionState === "closed") continue;
    (await pc.getStats()).forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "audio") {
        decoded[s.id] = (s.totalSamplesReceived ?? 0) - (s.concealedSamples ?? 0);
      }
    });
  }
  return decoded;
}
"""
CODE = "() => document.querySelector('[data-verification-code]')?.textContent ?? ''"
ENCRYPTED_VIDEOS = "document.querySelectorAll('video[data-remote][data-encrypted=\"true\"]').length"
# This page has no RTCRtpScriptTransform: it falls back to createEncodedStreams.
OLDER_API = "delete window.RTCRtpScriptTransform;"
TRANSFORMS = """
() => {
  const pc = window.__testPeerConnections.find((p) => p.connectionState !== "closed");
  return {
    scriptTransform: "RTCRtpScriptTransform" in window,
    transforms: pc.getTransceivers()
      .filter((t) => (t.direction === "sendonly" ? t.sender : t.receiver).transform).length,
    endpoints: pc.getTransceivers().length,
  };
}
"""


async def join_page(browser: Any, url: str, *, older_api: bool = False) -> Page:
    context = await new_context(browser, record_peer_connections=True)
    if older_api:
        await context.add_init_script(OLDER_API)
    page = await context.new_page()
    await page.goto(url)
    await wait_for_state(page, "consent")
    consent = await page.inner_text("#consent-e2ee")
    assert "Ende-zu-Ende-verschlüsselt" in consent, consent
    await page.click("button[name=consent]")
    return page


async def wait_encrypted(page: Page, count: int, within: float) -> None:
    """Wait until ``count`` remote videos are marked encrypted; say what each shows if not."""
    try:
        await page.wait_for_function(f"() => {ENCRYPTED_VIDEOS} === {count}", timeout=within * 1000)
    except PlaywrightTimeoutError:
        tiles = await page.evaluate(TILES)
        stats = await inbound_stats(page)
        console = "\n  ".join(console_lines(page))
        raise AssertionError(
            f"not {count} encrypted videos within {within}s: tiles {tiles},"
            f" frames decoded {stats['framesByStream']}; console:\n  {console}"
        ) from None


async def audio_decoded(page: Page, streams: int, within: float = 30) -> None:
    """Wait until decoded (not concealed) audio rises on ``streams`` incoming streams."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    before = await page.evaluate(AUDIO_DECODED)
    while True:
        await asyncio.sleep(1)  # poll interval while the counters move
        now = await page.evaluate(AUDIO_DECODED)
        rising = sum(1 for s, n in now.items() if n > before.get(s, 0) > 0)
        if rising >= streams:
            return
        assert loop.time() < deadline, f"decoded audio not rising: {before} → {now}"
        before = now


@asynccontextmanager
async def explained(pages: list[Page]) -> AsyncIterator[None]:
    """On a failed assertion, add every page's state and last console lines to the message."""
    try:
        yield
    except AssertionError as error:
        lines = []
        for n, page in enumerate(pages):
            state = await page.evaluate("() => document.querySelector('main')?.dataset.state")
            lines.append(f"page {n}: {state}\n    " + "\n    ".join(console_lines(page, 15)))
        raise AssertionError(f"{error}\n" + "\n".join(lines)) from None


async def same_code(pages: list[Page], within: float = 30) -> str:
    """The verification code once every page shows the same one."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        codes = [await page.evaluate(CODE) for page in pages]
        if codes[0] and len(set(codes)) == 1:
            return codes[0]
        assert loop.time() < deadline, f"verification codes differ: {codes}"
        await asyncio.sleep(0.25)  # poll interval of the wait


async def test_five_people_in_an_end_to_end_encrypted_group_call(
    operator: Any,
    media_node: str,
    start_signaling: Any,
    namespace: str,
    kube: Client,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    support.create_session(kube, namespace, "fuenf", clients=4)
    async with (
        local_media_pod(kube, namespace, "fuenf", monkeypatch, tmp_path) as pod,
        chromium(camera=small_camera(tmp_path)) as browser,
    ):
        signaling = start_signaling(media_override=pod.override)
        invite = invitation(kube, namespace, "fuenf", signaling)
        links = [invite[SecretKey.HOST_LINK_TOKEN.value]] + [
            invite[SecretKey.CLIENT_LINK_TOKEN.value]
        ] * 4
        pages = []
        async with explained(pages):
            for n, link in enumerate(links):
                # One after the other: five ICE/DTLS handshakes at once on two busy cores is a test
                # of the machine, not of the call (see "Known problem" in docs/signaling.md).
                page = await join_page(browser, f"{signaling.url}/j#{link}", older_api=n >= 3)
                pages.append(page)
                await wait_for_state(page, "connected" if n else "waiting", 120)
            for page in pages:
                await wait_for_state(page, "connected", 60)
            for page in pages:
                await wait_encrypted(page, 4, 120)
            for page in pages:
                await media_flowing(page, streams=4, within=90)
                await audio_decoded(page, streams=4)
            code = await same_code(pages)
            for n, page in enumerate(pages):
                transforms = await page.evaluate(TRANSFORMS)
                if n < 3:  # the sendonly pair and four recvonly pairs, each with its transform
                    assert transforms == {
                        "scriptTransform": True,
                        "transforms": 10,
                        "endpoints": 10,
                    }
                else:
                    assert transforms["scriptTransform"] is False
                    assert transforms["transforms"] == 0  # createEncodedStreams instead
                assert await page.evaluate(f"() => {ENCRYPTED_VIDEOS}") == 4
            assert len(code.replace(" ", "")) == 12
            await screenshot(pages[0], tmp_path, "e2ee-five-desktop-de")

            # Slot reuse: one leaves (the others switch to new keys), a new page takes the seat and,
            # on every other page, the freed slot: it is decrypted with the newcomer's keys.
            await pages[4].click("#leave")
            await wait_for_state(pages[4], "ended")
            for page in pages[:4]:
                await wait_encrypted(page, 3, 60)
            newcomer = await join_page(browser, f"{signaling.url}/j#{links[4]}")
            pages.append(newcomer)
            await wait_for_state(newcomer, "connected", 120)
            for page in [*pages[:4], newcomer]:
                await wait_encrypted(page, 4, 120)
            assert await same_code([*pages[:4], newcomer]) != code  # the newcomer's own key pair


class Capture:
    """What the SFU forwards to a participant that never gets a key: every VP8 frame as it
    arrived (per receive slot, in order), and how many of them libvpx turned into a picture
    anyway. That count is reported, not asserted: with the VP8 header clear, libvpx now and then
    makes a garbage picture of ciphertext. The proof that frames are ciphertext is the AES-GCM
    tag: they open under the pages' keys, and those from before a join do not under later ones."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.by_slot: dict[int, list[JitterFrame]] = {}  # decoder (one per slot) → frames
        self.pictures = 0


class CaptureDecoder(Vp8Decoder):
    def __init__(self, capture: Capture) -> None:
        super().__init__()
        self.capture = capture

    def decode(self, encoded_frame: Any) -> list[Any]:
        self.capture.frames.append(bytes(encoded_frame.data))
        self.capture.by_slot.setdefault(id(self), []).append(
            JitterFrame(bytes(encoded_frame.data), encoded_frame.timestamp)
        )
        try:
            pictures: list[Any] = super().decode(encoded_frame)
        except Exception:  # libvpx refusing the bytes is the expected outcome
            pictures = []
        self.capture.pictures += len(pictures)
        return pictures


def decoded_with_key(peer: E2eePeer, capture: Capture) -> int:
    """Pictures libvpx makes of each captured slot once ``peer``'s keys decrypt its frames,
    from the first key frame that opens."""
    pictures = 0
    for frames in capture.by_slot.values():
        decoder = None
        for frame in list(frames):
            plain = peer.open_frame(frame.data)
            if plain is not None and decoder is None and not plain[0] & 0x01:
                decoder = Vp8Decoder()
            if plain is not None and decoder is not None:
                pictures += len(decoder.decode(JitterFrame(plain, frame.timestamp)))
    return pictures


async def read_e2e(person: Person, peer: E2eePeer, inbox: list[dict[str, Any]]) -> None:
    """Take part in the key exchange: keep what the pages send, answer with this peer's key."""
    answered: set[str] = set()
    while True:
        message = await person.receive(600)
        inbox.append(message)
        if message["type"] == "closed":
            return
        if message["type"] == "e2e":
            peer.accept(message["from"], message["payload"])
            if message["from"] not in answered:
                answered.add(message["from"])
                await person.send(
                    type="e2e", to=message["from"], payload=peer.key_message(message["from"])
                )


async def ask_for_key_frames(client: media.Client) -> None:
    """A PLI for every receive slot (the SFU passes at most one a second to a publisher)."""
    for slot in range(len(client.receive)):
        await client.receive[slot][1].receiver._send_rtcp_pli(client.slot_ssrc(slot, "video"))


async def test_the_media_pod_sees_only_ciphertext_and_a_leaver_is_locked_out(
    operator: Any,
    media_node: str,
    start_signaling: Any,
    namespace: str,
    kube: Client,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    support.create_session(kube, namespace, "vier", clients=3)
    capture = Capture()
    original_decoder = aiortc.rtcrtpreceiver.get_decoder
    monkeypatch.setattr(
        aiortc.rtcrtpreceiver,
        "get_decoder",
        lambda codec: CaptureDecoder(capture) if codec.name == "VP8" else original_decoder(codec),
    )
    async with (
        local_media_pod(kube, namespace, "vier", monkeypatch, tmp_path) as pod,
        chromium(camera=small_camera(tmp_path)) as browser,
        aiohttp.ClientSession() as http,
    ):
        signaling = start_signaling(media_override=pod.override)
        invite = invitation(kube, namespace, "vier", signaling)
        client_link = invite[SecretKey.CLIENT_LINK_TOKEN.value]
        # The capture joins first: it receives each page's media from the very first frame on.
        capturer = await Person(http, signaling.url).connect()
        welcome = await capturer.hello({"link": client_link})
        await capturer.send(type="join", name="Mitschnitt")
        client = media.Client(
            welcome["you"],
            pod.sfu,
            SignalledTurn(welcome["iceServers"][0]),  # type: ignore[arg-type]
        )
        try:
            await negotiate_with_sfu(capturer, client)
            await client.connected(30)

            host_link = invite[SecretKey.HOST_LINK_TOKEN.value]
            pages = [
                await join_page(browser, f"{signaling.url}/j#{host_link}"),
                await join_page(browser, f"{signaling.url}/j#{client_link}"),
            ]
            for page in pages:
                await wait_for_state(page, "connected", 120)
                await wait_encrypted(page, 1, 60)
                # The capture's own (unencrypted) video is not shown as encrypted.
                tiles = await page.evaluate(TILES)
                assert [tile[1:] for tile in tiles].count(["Mitschnitt", None]) == 1, tiles
            code_of_two = await same_code(pages)
            await media.wait_for(
                lambda: (
                    len(capture.by_slot) == 2
                    and all(len(f) >= 10 for f in capture.by_slot.values())
                ),
                60,
                "the capture to receive both pages",
            )

            # Lena takes part in the key exchange only (no media), with the Python implementation.
            lena = E2eePeer()
            lena_socket = await Person(http, signaling.url).connect()
            assert (await lena_socket.hello({"link": client_link}))["type"] == "welcome"
            await lena_socket.send(type="join", name="Lena")
            await lena_socket.send(type="e2e", to="*", payload=lena.announce())
            lena_inbox: list[dict[str, Any]] = []
            lena_reader = asyncio.create_task(read_e2e(lena_socket, lena, lena_inbox))
            await media.wait_for(lambda: len(lena.received) == 2, 30, "both pages' keys for Lena")
            page_ids = list(lena.received)
            code_of_three = await same_code(pages)
            assert code_of_three != code_of_two
            # The documented derivation, computed independently, gives what the pages show.
            everyone = [lena.public.hex(), *(k.hex() for k in lena.public_keys.values())]
            assert verification_code("group", everyone) == code_of_three

            # The capture keeps asking for key frames, as a subscriber's browser does while it
            # cannot decode: one made after the page switched to the ratcheted key lets Lena in.
            async def decoded_after_asking() -> bool:
                await ask_for_key_frames(client)
                return decoded_with_key(lena, capture) >= 10

            await media.wait_for(decoded_after_asking, 60, "Lena to decode both pages")
            # Every frame the SFU forwarded, from each page's first on, is in the encrypted
            # format; those from before Lena joined do not open with her keys (the ratchet on a
            # join is one way), all from her join on do: AES-GCM under the pages' sender keys.
            assert all(key_index(frame) is not None for frame in capture.frames)
            for frames in capture.by_slot.values():
                assert not frames[0].data[0] & 0x01  # a slot starts at a (clear-headed) key frame
                opened = [lena.open_frame(frame.data) is not None for frame in frames]
                assert True in opened
                first = opened.index(True)
                assert first >= 5, opened[:20]
                assert all(opened[first:]), opened
            indexes_before = {key_index(frame) for frame in capture.frames}

            # Tampered (one bit of the sealed key) and malformed (version 9) key messages.
            tampered = bytearray(unb64url(lena.key_message(page_ids[0])))
            tampered[60] ^= 0x01
            await lena_socket.send(type="e2e", to=page_ids[0], payload=b64url(bytes(tampered)))
            malformed = bytearray(unb64url(lena.announce()))
            malformed[0] = 9
            await lena_socket.send(type="e2e", to=page_ids[1], payload=b64url(bytes(malformed)))
            for page in pages:
                alert = page.locator("#e2ee-alert")
                await alert.wait_for(state="visible", timeout=15_000)
                text = await alert.inner_text()
                assert "Lena" in text, text
                assert "ungültig" in text, text

            # Lena leaves, keeping every key she had; the pages switch to brand-new keys.
            await lena_socket.send(type="leave")
            await asyncio.wait_for(lena_reader, 15)  # the server closes a leaver's socket
            after_from = len(capture.frames)

            def new_frames() -> list[bytes]:
                return [
                    f for f in capture.frames[after_from:] if key_index(f) not in indexes_before
                ]

            await media.wait_for(lambda: len(new_frames()) >= 40, 60, "frames under new keys")
            locked_out = new_frames()
            assert all(lena.open_frame(frame) is None for frame in locked_out)
            for page in pages:
                await media_flowing(page, streams=1, within=30)  # the two still see each other
                await wait_encrypted(page, 1, 30)
            assert await same_code(pages) == code_of_two  # the same two keys as before Lena
            print(
                f"captured {len(capture.frames)} frames, libvpx pictures without the key:"
                f" {capture.pictures}, with Lena's keys: {decoded_with_key(lena, capture)};"
                f" after the leave {len(locked_out)} frames, none opened"
            )
        finally:
            await client.close()
            await capturer.close()
