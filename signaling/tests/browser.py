"""Headless Debian Chromium for the browser tests, through Playwright (never a downloaded browser).

Fake camera and microphone (`--use-fake-device-for-media-stream`: a moving test pattern and a
beep), permission prompts answered yes. `record_peer_connections` instruments a page from the test
side (an init script), so the product code carries no test hooks: every RTCPeerConnection the
page creates is kept in `window.__testPeerConnections` for `getStats()`.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, BrowserContext, Page, async_playwright

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
STATES = ("consent", "waiting", "connecting", "connected", "reconnecting", "ended", "error")

_RECORD_PEER_CONNECTIONS = """
(() => {
  const Original = window.RTCPeerConnection;
  window.__testPeerConnections = [];
  window.RTCPeerConnection = function (...args) {
    const pc = new Original(...args);
    window.__testPeerConnections.push(pc);
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
                  relayPairs: 0, pairs: 0};
  for (const pc of window.__testPeerConnections) {
    if (pc.connectionState === "closed") continue;
    const report = await pc.getStats();
    const byId = new Map();
    report.forEach((s) => byId.set(s.id, s));
    report.forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "video") {
        totals.framesDecoded += s.framesDecoded ?? 0;
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
async def chromium() -> AsyncIterator[Browser]:
    """One headless Debian Chromium process."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


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
    return context


async def wait_for_state(page: Page, state: str, timeout_s: float = 30) -> None:
    """Wait until the call page's `main[data-state]` is *state*."""
    assert state in STATES
    await page.wait_for_selector(f'main[data-state="{state}"]', timeout=timeout_s * 1000)


async def inbound_stats(page: Page) -> dict[str, Any]:
    stats: dict[str, Any] = await page.evaluate(_INBOUND_STATS)
    return stats


async def screenshot(page: Page, directory: Path, name: str) -> Path:
    path = directory / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
