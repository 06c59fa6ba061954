"""devices.js (pure choices) and localmedia.js (the switching) in real headless Chromium, without
a cluster: the static files served by pages.py (with its CSP) on loopback, the modules imported
into the page. LocalMedia runs against a loopback pair of RTCPeerConnections in that page.

- devices.js: table-driven — choices with fallback names, the camera to switch to (facingMode
  on phones, else the next camera, none with one camera), whether a switch button shows.
- localmedia.js: a shared screen and back, a camera switch and a microphone switch keep muted
  tracks muted, never make the connection ask for renegotiation, keep exactly one live audio
  and one live video track in the outgoing stream (the camera is off while sharing), and every
  track is stopped when that stream is stopped.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer, unused_port
from browser import chromium, new_context
from playwright.async_api import Page
from sprechzimmer.signaling import pages

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

_DEVICE_TABLE = """
async () => {
  const d = await import("/static/devices.js");
  const cam = (id, label = "") => ({kind: "videoinput", deviceId: id, label});
  const cameras = [{id: "a"}, {id: "b"}, {id: "c"}];
  const n = (k) => `Kamera ${k}`;
  return {
    choices: d.deviceChoices(
      [cam("a", "Front"), cam("b"), {kind: "audioinput", deviceId: "m", label: "Mic"}, cam("")],
      "videoinput", n),
    next: [
      d.nextCameraConstraints({cameras, currentId: "a", facingMode: undefined,
                               canPickFacing: true}),
      d.nextCameraConstraints({cameras, currentId: "c", facingMode: "", canPickFacing: false}),
      d.nextCameraConstraints({cameras: [{id: "a"}], currentId: "a", facingMode: "user",
                               canPickFacing: true}),
      d.nextCameraConstraints({cameras: [{id: "a"}], currentId: "a", facingMode: "environment",
                               canPickFacing: true}),
      d.nextCameraConstraints({cameras: [{id: "a"}], currentId: "a", facingMode: "user",
                               canPickFacing: false}),
      d.nextCameraConstraints({cameras, currentId: "gone", facingMode: undefined,
                               canPickFacing: true}),
    ],
    canSwitch: [
      d.canSwitchCamera({cameras: [{id: "a"}], facingMode: undefined, canPickFacing: true}),
      d.canSwitchCamera({cameras: [{id: "a"}], facingMode: "user", canPickFacing: true}),
      d.canSwitchCamera({cameras: [{id: "a"}, {id: "b"}], facingMode: undefined,
                         canPickFacing: false}),
    ],
  };
}
"""

_LOCAL_MEDIA = """
async () => {
  const { LocalMedia } = await import("/static/localmedia.js");
  const { openLocalMedia, replaceSentTrack, stopMedia } = await import("/static/media.js");
  const stream = await openLocalMedia();
  const a = new RTCPeerConnection();
  const b = new RTCPeerConnection();
  a.onicecandidate = (e) => e.candidate && b.addIceCandidate(e.candidate);
  b.onicecandidate = (e) => e.candidate && a.addIceCandidate(e.candidate);
  for (const track of stream.getTracks()) a.addTrack(track, stream);
  await a.setLocalDescription();
  await b.setRemoteDescription(a.localDescription);
  await b.setLocalDescription();
  await a.setRemoteDescription(b.localDescription);
  let renegotiations = 0;
  a.addEventListener("negotiationneeded", () => { renegotiations += 1; });
  const link = { replaceTrack: (track) => replaceSentTrack(a, track) };
  let changes = 0;
  const media = new LocalMedia(stream, () => [link], () => { changes += 1; });
  const sent = () => a.getSenders().map((s) => s.track).filter(Boolean);
  const live = () => stream.getTracks().filter((t) => t.readyState === "live");
  const snapshot = (step) => ({
    step,
    sent: sent().map((t) => `${t.kind}:${t.label}:${t.enabled}`),
    stream: live().map((t) => `${t.kind}:${t.label}`),
    sending: media.sharing,
  });
  const steps = [];
  for (const track of stream.getTracks()) track.enabled = false; // muted, camera off
  steps.push(snapshot("start"));
  await media.shareScreen();
  const screen = sent().find((t) => t.kind === "video");
  steps.push(snapshot("sharing"));
  await media.stopSharing();
  steps.push(snapshot("camera again"));
  const devices = await navigator.mediaDevices.enumerateDevices();
  const cameras = devices.filter((d) => d.kind === "videoinput").map((d) => ({ id: d.deviceId }));
  await media.switchCamera(cameras);
  steps.push(snapshot("next camera"));
  const microphone = devices.filter((d) => d.kind === "audioinput").at(-1).deviceId;
  await media.useMicrophone(microphone);
  steps.push(snapshot("other microphone"));
  const sentTracks = sent();
  stopMedia(stream);
  return {
    steps, renegotiations, changes,
    screenStopped: screen.readyState,
    allStopped: sentTracks.every((t) => t.readyState === "ended"),
  };
}
"""


@pytest_asyncio.fixture
async def static_site() -> AsyncIterator[str]:
    """pages.py's routes and security headers on loopback: the static files, nothing else."""
    url = f"http://127.0.0.1:{unused_port()}"
    app = web.Application(middlewares=[pages.security_headers(url)])
    pages.setup_routes(app)
    server = TestServer(app, host="127.0.0.1", port=int(url.rsplit(":", 1)[1]))
    await server.start_server()
    yield url
    await server.close()


@asynccontextmanager
async def page_on(site: str, *args: str) -> AsyncIterator[Page]:
    """The start page (any page imports the modules the same way) in a fresh Chromium."""
    async with chromium(args) as browser:
        page = await (await new_context(browser)).new_page()
        await page.goto(f"{site}/")
        yield page


async def test_device_choices_and_the_camera_to_switch_to(static_site: str) -> None:
    async with page_on(static_site) as page:
        result: dict[str, Any] = await page.evaluate(_DEVICE_TABLE)
    assert result["choices"] == [{"id": "a", "label": "Front"}, {"id": "b", "label": "Kamera 2"}]
    assert result["next"] == [
        {"deviceId": {"exact": "b"}},  # no side known: the next camera
        {"deviceId": {"exact": "a"}},  # after the last, the first
        {"facingMode": {"exact": "environment"}},  # a phone's front camera: the back one
        {"facingMode": {"exact": "user"}},
        None,  # one camera, and the browser cannot pick by side
        {"deviceId": {"exact": "a"}},  # the current camera is not listed: the first
    ]
    assert result["canSwitch"] == [False, True, True]


async def test_switching_keeps_mute_and_never_renegotiates(static_site: str) -> None:
    async with page_on(static_site, "--use-fake-device-for-media-stream=device-count=3") as page:
        result: dict[str, Any] = await page.evaluate(_LOCAL_MEDIA)
    steps = {step["step"]: step for step in result["steps"]}
    assert result["renegotiations"] == 0
    assert result["changes"] == 4
    assert steps["start"]["sent"] == [
        "audio:Fake Default Audio Input:false",
        "video:fake_device_0:false",
    ]
    # sharing: the screen is sent, still "camera off"; the camera itself is off, not in the stream
    assert steps["sharing"]["sending"] is True
    assert steps["sharing"]["sent"][1].startswith("video:screen:")
    assert steps["sharing"]["sent"][1].endswith(":false")
    assert steps["sharing"]["stream"][1].startswith("video:screen:")
    assert len(steps["sharing"]["stream"]) == 2
    assert steps["camera again"]["sent"][1] == "video:fake_device_0:false"
    assert steps["next camera"]["sent"][1] == "video:fake_device_1:false"
    assert steps["other microphone"]["sent"][0] == "audio:Fake Audio Input 2:false"
    for step in result["steps"]:
        assert len(step["stream"]) == 2, step  # one live audio, one live video, always
    assert result["screenStopped"] == "ended"
    assert result["allStopped"] is True
