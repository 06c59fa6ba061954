"""The call page's media controls in a real 1:1 call between two headless Chromium processes,
and what the page contacts during the whole call.

- Screen share replaces the camera picture for the other person without renegotiation: the
  practice's camera is a file (a red 320 x 180 picture), Chromium's fake screen is a green
  1280 x 720 pattern, so the client's decoded video (getStats frameWidth, and the colour of its
  <video> drawn to a canvas) says which one arrives; the number of `sdp` messages on both
  sockets stays the same. Back to the camera by the page's button and when the browser ends the
  capture (its own "stop sharing" bar does not exist headless; the test stops the track and
  fires `ended` as that bar does — the one stand-in here).
- Camera switch and the device dialog on the client's phone (three fake cameras): the sender's
  track changes device, the practice keeps decoding, no new offer; keyboard only. Chromium's
  second fake camera delivers Y16 (a depth format) that no encoder takes, so its frames are
  not expected at the other end: the switch goes on to the third, whose frames are.
- The same in a group call through the SFU: the sendonly video sender's track is replaced.
- Every request of both pages (HTTP and WebSocket, page.on("request") / page.on("websocket"))
  goes to the signaling origin; the connections know only the platform's TURN server; the page
  never constructs a MediaRecorder (a tripwire) and no script mentions one.
- axe-core finds no serious or critical violation on the connected call (German and English).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import support  # operator/tests/support.py, put on the path by conftest.py
from axe import axe_violations
from browser import (
    chromium,
    in_viewport,
    layout_problems,
    media_flowing,
    new_context,
    screenshot,
    shared_turn,
    wait_for_state,
)
from lightkube import Client
from local_media_pod import local_media_pod
from playwright.async_api import BrowserContext, Page, WebSocket
from sprechzimmer.contract import SecretKey
from sprechzimmer.signaling import pages
from test_browser_call import enter_code, invitation, open_link
from test_browser_logo import LOGOS, create_logo
from test_browser_pages import tab_to

pytestmark = [pytest.mark.browser, pytest.mark.timeout(400)]

PHONE_SMALL = {"width": 360, "height": 640}
# A MediaRecorder constructed by the page would be counted here (the page must never record).
_RECORDER_TRIPWIRE = """
(() => {
  window.__testRecorders = 0;
  const Original = window.MediaRecorder;
  window.MediaRecorder = function (...args) {
    window.__testRecorders += 1;
    return new Original(...args);
  };
})();
"""
# What the other side's <video> shows: its size, the mean colour, and the decoded frame width.
_REMOTE_PICTURE = """
async () => {
  const video = document.querySelector("video[data-remote]");
  if (!video || video.videoWidth === 0) return null;
  const canvas = document.createElement("canvas");
  canvas.width = 32;
  canvas.height = 18;
  const context = canvas.getContext("2d");
  context.drawImage(video, 0, 0, 32, 18);
  const data = context.getImageData(0, 0, 32, 18).data;
  let red = 0, green = 0;
  for (let i = 0; i < data.length; i += 4) { red += data[i]; green += data[i + 1]; }
  let frameWidth = 0;
  for (const pc of window.__testPeerConnections) {
    if (pc.connectionState === "closed") continue;
    (await pc.getStats()).forEach((s) => {
      if (s.type !== "inbound-rtp" || s.kind !== "video") return;
      frameWidth = Math.max(frameWidth, s.frameWidth ?? 0);
    });
  }
  const n = data.length / 4;
  return {red: red / n, green: green / n, videoWidth: video.videoWidth, frameWidth};
}
"""
# The track the page sends of a kind, from its open connection.
_SENT_TRACK = """
(kind) => {
  const pc = window.__testPeerConnections.find((p) => p.connectionState === "connected");
  const track = pc.getSenders().map((s) => s.track).find((t) => t && t.kind === kind);
  return {id: track.id, deviceId: track.getSettings().deviceId ?? null, label: track.label};
}
"""
_ICE_SERVER_URLS = """
() => window.__testPeerConnections.flatMap(
  (pc) => pc.getConfiguration().iceServers.flatMap((s) => [].concat(s.urls)))
"""
# The browser's own "stop sharing": the capture ends (stand-in, see the module docstring).
_BROWSER_ENDS_CAPTURE = """
() => {
  const pc = window.__testPeerConnections.find((p) => p.connectionState === "connected");
  const track = pc.getSenders().map((s) => s.track).find((t) => t && t.kind === "video");
  track.stop();
  track.dispatchEvent(new Event("ended"));
  return track.label;
}
"""


def red_camera(directory: Path) -> Path:
    """A 320 x 180 all-red Y4M clip for Chromium's file-backed fake camera."""
    width, height = 320, 180
    luma, quarter = width * height, width * height // 4
    frame = bytes([81]) * luma + bytes([90]) * quarter + bytes([240]) * quarter  # Y, U, V
    path = directory / "red-camera.y4m"
    with path.open("wb") as clip:
        clip.write(f"YUV4MPEG2 W{width} H{height} F20:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(10):
            clip.write(b"FRAME\n" + frame)
    return path


class Traffic:
    """Every URL a browser context asks for and every `sdp` message its pages send."""

    def __init__(self, context: BrowserContext) -> None:
        self.urls: list[str] = []
        self.sdp_sent = 0
        context.on("request", lambda request: self.urls.append(request.url))
        context.on("page", self._watch)

    def _watch(self, page: Page) -> None:
        page.on("websocket", self._socket)

    def _socket(self, socket: WebSocket) -> None:
        self.urls.append(socket.url)
        socket.on("framesent", self._frame)

    def _frame(self, payload: str | bytes) -> None:
        if isinstance(payload, str) and json.loads(payload).get("type") == "sdp":
            self.sdp_sent += 1

    def origins(self) -> set[str]:
        return {f"{urlsplit(u).scheme}://{urlsplit(u).netloc}" for u in self.urls}


async def remote_shows(page: Page, source: str, within: float = 30) -> dict[str, Any]:
    """Wait until the other person's picture on *page* is the practice's *source*: "camera"
    (red, 320 wide at most) or "screen" (green, wider than the camera)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        picture = await page.evaluate(_REMOTE_PICTURE)
        if picture:
            camera = picture["red"] > 2 * picture["green"] and picture["frameWidth"] <= 320
            screen = picture["green"] > 2 * picture["red"] and picture["frameWidth"] > 320
            if camera if source == "camera" else screen:
                return picture
        assert loop.time() < deadline, f"the other side does not show the {source}: {picture}"
        await asyncio.sleep(0.25)  # poll interval of the wait


@pytest.mark.unit
def test_no_script_records_or_reaches_another_origin() -> None:
    for path in [*pages.STATIC_DIR.glob("*.js"), *pages.TEMPLATES_DIR.glob("*.html")]:
        text = path.read_text()
        assert "MediaRecorder" not in text, path.name
        assert "http://" not in text, path.name
        assert "https://" not in text, path.name


async def test_screen_share_camera_switch_devices_and_only_the_own_origin(
    operator: Any, kube: Client, namespace: str, start_signaling: Any, tmp_path: Path
) -> None:
    create_logo(kube, namespace, "praxis-logo", LOGOS["svg-64x32"])
    support.create_session(kube, namespace, "eins", logo="praxis-logo")
    camera = ["--use-file-for-fake-video-capture=" + str(red_camera(tmp_path))]
    three_cameras = ["--use-fake-device-for-media-stream=device-count=3"]
    async with (
        shared_turn(tmp_path, support.SHARED_KEY) as turn_url,
        chromium(camera) as host_browser,
        chromium(three_cameras) as client_browser,
    ):
        signaling = start_signaling(turn_urls=turn_url, relay_only="true")
        invite = invitation(kube, namespace, "eins", signaling)
        contexts = [
            await new_context(host_browser, record_peer_connections=True),
            await new_context(client_browser, viewport=PHONE_SMALL, record_peer_connections=True),
        ]
        traffic = [Traffic(context) for context in contexts]
        for context in contexts:
            await context.add_init_script(_RECORDER_TRIPWIRE)
        host, client = [await context.new_page() for context in contexts]
        await open_link(host, signaling.url, invite[SecretKey.HOST_LINK_TOKEN.value])
        await host.click("button[name=consent]")
        await enter_code(client, signaling.url, invite[SecretKey.CLIENT_CODE.value])
        await client.click("button[name=consent]")
        for page in (host, client):
            await wait_for_state(page, "connected", 60)
            await media_flowing(page)
        await remote_shows(client, "camera")
        for page in (host, client):  # connected, with the other's tile: German and English
            assert await axe_violations(page) == []
        # The phone at 360 x 640: every control on screen, nothing overflowing.
        assert await in_viewport(client, "nav.controls")
        assert await layout_problems(client) == []
        await screenshot(client, tmp_path, "call-connected-phone-360-en")
        offers = [t.sdp_sent for t in traffic]

        # Screen share: the client sees the screen instead of the camera, nothing renegotiated.
        await host.click("#share-screen")
        shared = await remote_shows(client, "screen")
        assert await host.get_attribute("#share-screen", "aria-pressed") == "true"
        assert await host.inner_text("#share-screen") == "Teilen beenden"
        assert await host.get_attribute("#self-view", "data-source") == "screen"
        await screenshot(client, tmp_path, "screen-shared-seen-by-client")
        await screenshot(host, tmp_path, "screen-shared-by-host")
        await host.click("#share-screen")  # the page's own button
        back = await remote_shows(client, "camera")
        assert await host.inner_text("#share-screen") == "Bildschirm teilen"
        await host.click("#share-screen")
        await remote_shows(client, "screen")
        assert (await host.evaluate(_BROWSER_ENDS_CAPTURE)).startswith("screen")
        await remote_shows(client, "camera")
        assert await host.get_attribute("#share-screen", "aria-pressed") == "false"
        assert await host.get_attribute("#self-view", "data-source") == "camera"
        assert [t.sdp_sent for t in traffic] == offers, "screen share renegotiated"
        print(f"remote picture: camera {back}, screen {shared}")

        # The client's phone has three cameras: switch (twice, past the depth camera), by
        # keyboard, without a new offer.
        sent = [await client.evaluate(_SENT_TRACK, "video")]
        await tab_to(client, "#switch-camera", most=12)
        for _ in range(2):
            await client.keyboard.press("Enter")
            await client.wait_for_function(
                "([id]) => window.__testPeerConnections.some((pc) => pc.getSenders().some("
                "(s) => s.track?.kind === 'video' && s.track.getSettings().deviceId !== id"
                " && pc.connectionState === 'connected'))",
                arg=[sent[-1]["deviceId"]],
            )
            sent.append(await client.evaluate(_SENT_TRACK, "video"))
        assert [s["label"] for s in sent] == ["fake_device_0", "fake_device_1", "fake_device_2"]
        await media_flowing(host)

        # The device dialog, by keyboard: opens, focus inside, another microphone, Escape.
        microphone = await client.evaluate(_SENT_TRACK, "audio")
        await tab_to(client, "#devices", most=12)
        await client.keyboard.press("Enter")
        await client.wait_for_selector("#device-dialog[open]")
        assert await client.evaluate(
            "document.getElementById('device-dialog').contains(document.activeElement)"
        )
        options = await client.eval_on_selector_all(
            "#microphone-select option", "(os) => os.map((o) => o.value)"
        )
        assert len(options) >= 2
        other = next(o for o in options if o != microphone["deviceId"])
        await client.select_option("#microphone-select", other)
        await client.wait_for_function(
            "([id]) => window.__testPeerConnections.some((pc) => pc.getSenders().some("
            "(s) => s.track?.kind === 'audio' && s.track.getSettings().deviceId === id))",
            arg=[other],
        )
        await screenshot(client, tmp_path, "device-dialog-phone-360-en")
        await client.keyboard.press("Escape")
        await client.wait_for_function("() => !document.getElementById('device-dialog').open")
        assert await client.evaluate("document.activeElement.id") == "devices"
        await media_flowing(host)
        assert [t.sdp_sent for t in traffic] == offers, "a device switch renegotiated"

        # Leave; then what both pages contacted during the whole call.
        await client.click("#leave")
        await wait_for_state(client, "ended")
        await wait_for_state(host, "waiting", 60)
        for page in (host, client):
            assert await page.evaluate("window.__testRecorders") == 0
            turn = set(await page.evaluate(_ICE_SERVER_URLS))
            assert turn == {turn_url}, turn
        http = signaling.url
        ws = http.replace("http", "ws", 1)
        for seen in traffic:
            assert seen.origins() == {http, ws}, seen.origins()
            assert any("/logo/" in u for u in seen.urls)  # the logo came from there too


@pytest.mark.media
async def test_screen_share_in_a_group_call_replaces_the_sendonly_video(
    operator: Any,
    media_node: str,
    start_signaling: Any,
    namespace: str,
    kube: Client,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """Through the SFU (real media-pod processes, as in test_browser_group.py): the practice's
    screen reaches the client in the practice's slot, and back, with the one offer each page
    made at join."""
    support.create_session(kube, namespace, "gruppe", clients=2)
    camera = ["--use-file-for-fake-video-capture=" + str(red_camera(tmp_path))]
    async with (
        local_media_pod(kube, namespace, "gruppe", monkeypatch, tmp_path) as pod,
        chromium(camera) as browser,
    ):
        signaling = start_signaling(media_override=pod.override)
        invite = invitation(kube, namespace, "gruppe", signaling)
        contexts = [
            await new_context(browser, record_peer_connections=True),
            await new_context(browser, viewport=PHONE_SMALL, record_peer_connections=True),
        ]
        traffic = [Traffic(context) for context in contexts]
        host, client = [await context.new_page() for context in contexts]
        for page, link in (
            (host, SecretKey.HOST_LINK_TOKEN),
            (client, SecretKey.CLIENT_LINK_TOKEN),
        ):
            await page.goto(f"{signaling.url}/j#{invite[link.value]}")
            await wait_for_state(page, "consent")
            await page.click("button[name=consent]")
        for page in (host, client):
            await wait_for_state(page, "connected", 90)
            await media_flowing(page, within=60)
        await remote_shows(client, "camera", within=60)
        assert [t.sdp_sent for t in traffic] == [1, 1]  # one offer each, to the SFU

        await host.click("#share-screen")
        await remote_shows(client, "screen", within=60)
        await screenshot(client, tmp_path, "group-screen-seen-by-client")
        await host.click("#share-screen")
        await remote_shows(client, "camera", within=60)
        assert [t.sdp_sent for t in traffic] == [1, 1], "screen share renegotiated"
