"""Headless Debian Chromium for the browser tests, through Playwright (never a downloaded browser).

Fake camera and microphone (`--use-fake-device-for-media-stream`: a moving test pattern and a
beep), permission prompts answered yes. `record_peer_connections` instruments a page from the test
side (an init script), so the product code carries no test hooks: every RTCPeerConnection the
page creates is kept in `window.__testPeerConnections` for `getStats()`.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, BrowserContext, Page, async_playwright
from playwright.async_api import TimeoutError as PlaywrightTimeoutError
from sprechzimmer.contract.keys import shared_turn_secret
from sprechzimmer.devcluster.addons import stun_answers
from sprechzimmer.devcluster.cluster import free_udp_and_tcp_port
from sprechzimmer.devcluster.turn import SharedTurn, render_shared_turn_config

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    "--disable-gpu",
    "--no-first-run",
]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
# Every connection the page made but one is closed (the old ones were let go).
ONE_OPEN_CONNECTION = """
() => window.__testPeerConnections.filter((pc) => pc.connectionState !== "closed").length === 1
"""
_CONSOLES: dict[int, list[str]] = {}
STATES = ("consent", "waiting", "connecting", "connected", "reconnecting", "ended", "error")

_RECORD_PEER_CONNECTIONS = """
(() => {
  // The page's sockets (a test can cut one) and its call states with their times (recovery).
  const OriginalSocket = window.WebSocket;
  window.__testSockets = [];
  window.WebSocket = function (...args) {
    const ws = new OriginalSocket(...args);
    window.__testSockets.push(ws);
    return ws;
  };
  window.WebSocket.prototype = OriginalSocket.prototype;
  Object.setPrototypeOf(window.WebSocket, OriginalSocket);
  window.__testStates = [];
  new MutationObserver(() => {
    const state = document.querySelector("main")?.dataset.state;
    const last = window.__testStates[window.__testStates.length - 1];
    if (state && state !== last?.[1]) window.__testStates.push([performance.now(), state]);
  }).observe(document, {subtree: true, attributes: true, attributeFilter: ["data-state"]});
  const Original = window.RTCPeerConnection;
  window.__testPeerConnections = [];
  window.__testIceLog = [];
  window.RTCPeerConnection = function (...args) {
    const pc = new Original(...args);
    const n = window.__testPeerConnections.push(pc);
    const log = (line) => {
      window.__testIceLog.push(`pc${n} ${Math.round(performance.now())}ms ${line}`);
    };
    pc.addEventListener("icecandidateerror", (e) => {
      log(`candidate error ${e.errorCode} ${e.errorText}`);
    });
    pc.addEventListener("icecandidate", (e) => log(`candidate ${e.candidate?.type ?? "end"}`));
    for (const what of ["iceGatheringState", "iceConnectionState", "connectionState"]) {
      const event = `${what.toLowerCase().slice(0, -5)}statechange`;
      pc.addEventListener(event, () => log(`${what} ${pc[what]}`));
    }
    return pc;
  };
  window.RTCPeerConnection.prototype = Original.prototype;
  Object.setPrototypeOf(window.RTCPeerConnection, Original);
})();
"""

# Sums over the page's peer connections: what arrives from the others.
_INBOUND_STATS = """
async () => {
  const totals = {framesDecoded: 0, audioPacketsReceived: 0, videoPacketsReceived: 0,
                  relayPairs: 0, pairs: 0, framesByStream: {}};
  for (const pc of window.__testPeerConnections) {
    if (pc.connectionState === "closed") continue;
    const report = await pc.getStats();
    const byId = new Map();
    report.forEach((s) => byId.set(s.id, s));
    report.forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "video") {
        totals.framesDecoded += s.framesDecoded ?? 0;
        totals.framesByStream[`${s.id}`] = s.framesDecoded ?? 0;
        totals.videoPacketsReceived += s.packetsReceived ?? 0;
      }
      if (s.type === "inbound-rtp" && s.kind === "audio") {
        totals.audioPacketsReceived += s.packetsReceived ?? 0;
      }
      if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") {
        totals.pairs += 1;
        const local = byId.get(s.localCandidateId);
        if (local && local.candidateType === "relay") totals.relayPairs += 1;
      }
    });
  }
  return totals;
}
"""


@asynccontextmanager
async def chromium(
    extra_args: Sequence[str] = (), *, camera: Path | None = None
) -> AsyncIterator[Browser]:
    """One headless Debian Chromium process (*extra_args*: e.g. more fake devices); ``camera``: a
    Y4M file as the fake camera (see ``small_camera``) instead of Chromium's 640x480 pattern."""
    args = [*CHROMIUM_ARGS, *extra_args]
    if camera:
        args.append(f"--use-file-for-fake-video-capture={camera}")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=args
        )
        try:
            yield browser
        finally:
            await browser.close()


def small_camera(directory: Path, width: int = 160, height: int = 120) -> Path:
    """A 2 s looping Y4M clip (moving bars, 15 fps) for tests with many pages on two cores."""
    path = directory / f"camera-{width}x{height}.y4m"
    with path.open("wb") as clip:
        clip.write(f"YUV4MPEG2 W{width} H{height} F15:1 Ip A1:1 C420jpeg\n".encode())
        chroma = bytes([128]) * (width * height // 2)
        for n in range(30):
            row = bytes((x * 4 + n * 8) % 220 + 16 for x in range(width))
            clip.write(b"FRAME\n" + row * height + chroma)
    return path


async def new_context(
    browser: Browser,
    *,
    viewport: dict[str, int] | None = None,
    timezone: str = "Europe/Berlin",
    record_peer_connections: bool = False,
) -> BrowserContext:
    """A fresh profile (own sessionStorage), camera and microphone allowed."""
    context = await browser.new_context(
        viewport=viewport or DESKTOP,  # type: ignore[arg-type]
        timezone_id=timezone,
        locale="de-DE",
        permissions=["camera", "microphone"],
    )
    if record_peer_connections:
        await context.add_init_script(_RECORD_PEER_CONNECTIONS)
    # The page's console, for the message of a failed wait.
    lines: list[str] = []
    _CONSOLES[id(context)] = lines
    context.on("console", lambda message: lines.append(f"{message.type}: {message.text}"))
    return context


async def wait_for_state(page: Page, state: str, timeout_s: float = 30) -> None:
    """Wait until the call page's `main[data-state]` is *state*."""
    assert state in STATES
    try:
        await page.wait_for_selector(f'main[data-state="{state}"]', timeout=timeout_s * 1000)
    except PlaywrightTimeoutError:
        seen = await page.evaluate(
            "() => [document.querySelector('main')?.dataset.state,"
            " [...document.querySelectorAll('[role=alert],[role=status]')]"
            ".map((e) => e.textContent.trim()).filter(Boolean)]"
        )
        # With record_peer_connections: what ICE did (gathering, candidate errors, states).
        ice = await page.evaluate("() => (window.__testIceLog ?? []).slice(-40)")
        console = "\n  ".join(_CONSOLES.get(id(page.context), [])[-30:] + ice)
        raise AssertionError(
            f"not {state} within {timeout_s}s: state, texts = {seen}; console:\n  {console}"
        ) from None


def console_lines(page: Page, last: int = 30) -> list[str]:
    """The page's last console lines (for the message of a failed wait)."""
    return _CONSOLES.get(id(page.context), [])[-last:]


async def inbound_stats(page: Page) -> dict[str, Any]:
    stats: dict[str, Any] = await page.evaluate(_INBOUND_STATS)
    return stats


async def media_flowing(page: Page, *, streams: int = 1, within: float = 30) -> dict[str, Any]:
    """Wait until decoded frames rise on at least *streams* incoming videos and audio packets
    keep arriving; returns the last stats."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    before = await inbound_stats(page)
    while True:
        await asyncio.sleep(0.5)  # poll interval while waiting for the counters to move
        now = await inbound_stats(page)
        rising_videos = sum(
            1
            for stream, frames in now["framesByStream"].items()
            if frames > before["framesByStream"].get(stream, 0) > 0
        )
        audio = now["audioPacketsReceived"] > before["audioPacketsReceived"] > 0
        if rising_videos >= streams and audio:
            return now
        assert loop.time() < deadline, f"media not flowing: {before} → {now}"
        before = now


async def screenshot(page: Page, directory: Path, name: str) -> Path:
    """A full-page PNG in *directory*, or in $SPRECHZIMMER_SCREENSHOTS to look at them."""
    directory = Path(os.environ.get("SPRECHZIMMER_SCREENSHOTS", directory))
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


class SharedTurnProcess:
    """The shared 1:1 TURN server as ``make up`` runs it (Debian coturn on loopback,
    ``use-auth-secret`` with ``keys.shared_turn_secret``); can be killed and started again on
    the same port (its allocations die with it, as in a crash of the real one)."""

    def __init__(self, workdir: Path, shared_key: str) -> None:
        self.port = free_udp_and_tcp_port()
        self.url = f"turn:127.0.0.1:{self.port}?transport=udp"
        self.workdir = workdir
        self.config = workdir / f"turnserver-{self.port}.conf"
        self.config.write_text(
            render_shared_turn_config(
                SharedTurn(
                    listen_ip="127.0.0.1",
                    port=self.port,
                    relay_ip="127.0.0.1",
                    secret=shared_turn_secret(shared_key.encode()),
                    # both browsers run here: their relayed candidates are on 127.0.0.1
                    dev_loopback_peers=True,
                )
            )
        )
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        binary = shutil.which("turnserver")
        assert binary, "coturn is not installed (make packages)"
        with (self.workdir / f"turnserver-{self.port}.log").open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                binary, "-c", str(self.config), stdout=log, stderr=subprocess.STDOUT
            )
        deadline = asyncio.get_running_loop().time() + 30
        while not await _answers_stun(self.port):
            assert self.process.returncode is None, "coturn exited"
            assert asyncio.get_running_loop().time() < deadline, "coturn did not answer STUN"
            await asyncio.sleep(0.05)  # poll interval of the wait, not a synchronisation

    async def stop(self, *, kill: bool = False) -> None:
        process, self.process = self.process, None
        if process is None or process.returncode is not None:
            return
        if kill:
            process.kill()
        else:
            process.terminate()
        with suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), 10)
        if process.returncode is None:
            process.kill()
            await process.wait()


@asynccontextmanager
async def shared_turn_process(workdir: Path, shared_key: str) -> AsyncIterator[SharedTurnProcess]:
    turn = SharedTurnProcess(workdir, shared_key)
    await turn.start()
    try:
        yield turn
    finally:
        await turn.stop()


@asynccontextmanager
async def shared_turn(workdir: Path, shared_key: str) -> AsyncIterator[str]:
    """The shared TURN server (``SharedTurnProcess``); yields its ``turn:`` URL (UDP)."""
    async with shared_turn_process(workdir, shared_key) as turn:
        yield turn.url


async def now_ms(page: Page) -> float:
    """The page's clock (``performance.now()``), to time a fault against its state log."""
    return float(await page.evaluate("performance.now()"))


async def recovery_ms(page: Page, fault_at: float, timeout_s: float = 30) -> float:
    """Wait until the page has left ``connected`` after a fault at its time ``fault_at``, is
    back and media flows again; returns the milliseconds from the fault to the last entry into
    ``connected``, read from the page's own state log (record_peer_connections), so the test's
    polling adds nothing to the number (and a brief `connected` before the media path was
    found dead does not count)."""
    left = """([fault]) => window.__testStates.some(([t, s]) => t >= fault && s !== "connected")"""
    try:
        await page.wait_for_function(left, arg=[fault_at], timeout=timeout_s * 1000)
    except PlaywrightTimeoutError:
        raise AssertionError("the page never left connected after the fault") from None
    # `connected` can come back before the media path is found dead (a resumed socket puts the
    # other person back on the roster at once; a dead path is noticed after 1.5 s): only a
    # `connected` that holds while media flows counts.
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        await wait_for_state(page, "connected", timeout_s)
        await media_flowing(page, within=timeout_s)
        await media_flowing(page, within=timeout_s)  # and still, a moment later
        log: list[list[Any]] = await page.evaluate("window.__testStates")
        if log[-1][1] == "connected":
            return float(log[-1][0]) - fault_at
        assert asyncio.get_running_loop().time() < deadline, f"not back for good: {log[-6:]}"


async def _answers_stun(port: int) -> bool:
    try:
        return await asyncio.to_thread(stun_answers, port)
    except OSError:
        return False


# What a person would stumble over, checked on every screenshot: sideways scrolling, controls
# cut off at the edge or too small to hit, inputs without a label or in a font a phone zooms into.
_LAYOUT_PROBLEMS = """
() => {
  const problems = [];
  const width = window.innerWidth;
  const name = (el) => el.outerHTML.slice(0, 70);
  if (document.documentElement.scrollWidth > width + 1) {
    problems.push(`scrolls sideways: ${document.documentElement.scrollWidth}px > ${width}px`);
  }
  for (const el of document.querySelectorAll("button, input, a, video")) {
    const box = el.getBoundingClientRect();
    const style = getComputedStyle(el);
    if (box.width === 0 || box.height === 0 || style.visibility === "hidden") continue;
    if (box.left < -1 || box.right > width + 1) problems.push(`cut off at the side: ${name(el)}`);
    if (el.tagName !== "VIDEO" && box.height < 44) problems.push(`${box.height}px: ${name(el)}`);
  }
  for (const input of document.querySelectorAll("input")) {
    if (input.labels.length === 0) problems.push(`no label: ${name(input)}`);
    const font = parseFloat(getComputedStyle(input).fontSize);
    if (font < 16) problems.push(`${font}px font: ${name(input)}`);
  }
  return problems;
}
"""


async def layout_problems(page: Page) -> list[str]:
    problems: list[str] = await page.evaluate(_LAYOUT_PROBLEMS)
    return problems


async def in_viewport(page: Page, selector: str) -> bool:
    """Whether the element is entirely visible without scrolling."""
    box = await page.locator(selector).bounding_box()
    size = page.viewport_size
    assert box is not None
    assert size is not None
    return bool(
        box["x"] >= 0
        and box["y"] >= 0
        and box["x"] + box["width"] <= size["width"] + 1
        and box["y"] + box["height"] <= size["height"] + 1
    )
