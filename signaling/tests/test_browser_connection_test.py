"""The connection test page (/test) in real Chromium against the real signaling process and the
shared TURN server (Debian coturn, as ``make up`` runs it): fake camera and microphone found,
TURN reached (a relayed candidate pair selected, read from getStats on the test side), a
bandwidth measured through the relay with its verdict; then coturn stopped: "unreachable"
within a bounded time; then the credentials endpoint's rate limit shown in the page. And the
call page sends a browser without WebRTC here.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
import support  # operator/tests/support.py, put on the path by conftest.py
from aiohttp import web
from aiohttp.test_utils import TestServer
from browser import PHONE, chromium, layout_problems, new_context, screenshot, shared_turn
from playwright.async_api import BrowserContext, Page
from sprechzimmer.signaling import pages

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

# Before the page closes a connection, keep which candidate types its selected pair joined (the
# page closes its probe connections when done, and a closed connection has no stats).
_RECORD_SELECTED_PAIRS = """
(() => {
  window.__testSelectedPairs = [];
  window.__testCandidateErrors = [];
  const Original = window.RTCPeerConnection;
  const close = Original.prototype.close;
  Original.prototype.close = function () {
    this.getStats().then((report) => {
      const byId = new Map();
      report.forEach((s) => byId.set(s.id, s));
      for (const s of byId.values()) {
        if (s.type !== "transport" || !s.selectedCandidatePairId) continue;
        const pair = byId.get(s.selectedCandidatePairId);
        window.__testSelectedPairs.push([
          byId.get(pair.localCandidateId).candidateType,
          byId.get(pair.remoteCandidateId).candidateType,
        ]);
      }
    }).finally(() => close.call(this));
  };
  window.RTCPeerConnection = function (...args) {
    const pc = new Original(...args);
    pc.addEventListener("icecandidateerror", (e) => {
      window.__testCandidateErrors.push(`${e.url} ${e.errorCode}`);
    });
    return pc;
  };
  window.RTCPeerConnection.prototype = Original.prototype;
  Object.setPrototypeOf(window.RTCPeerConnection, Original);
})();
"""
MBPS = re.compile(r"([0-9]+(?:[.,][0-9]+)?) Mbit/s")


async def results(page: Page) -> dict[str, tuple[str, str]]:
    """``check → (data-result, text)`` for every check and the overall line."""
    found: dict[str, list[str]] = await page.evaluate(
        "() => Object.fromEntries([...document.querySelectorAll('[data-check]')].map((e) =>"
        " [e.dataset.check, [e.dataset.result, e.querySelector('[role=status]').textContent]]))"
    )
    return {check: (result, text) for check, (result, text) in found.items()}


async def run_test(page: Page, within_s: float) -> tuple[dict[str, tuple[str, str]], float]:
    """Click start, wait until the page says it is done; the results and how long it took."""
    started = time.monotonic()
    await page.click("#test-start")
    await page.wait_for_selector('main[data-state="running"]', timeout=5_000)
    try:
        await page.wait_for_selector('main[data-state="done"]', timeout=within_s * 1000)
    except Exception as error:
        raise AssertionError(f"not done within {within_s}s: {await results(page)}") from error
    return await results(page), time.monotonic() - started


async def open_test_page(context: BrowserContext, url: str) -> tuple[Page, list[str]]:
    page = await context.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    await page.goto(url)
    return page, requested


async def test_the_connection_test_finds_devices_turn_and_bandwidth_then_a_stopped_turn(
    start_signaling: Any, tmp_path: Path
) -> None:
    async with shared_turn(tmp_path, support.SHARED_KEY) as turn_url:
        signaling = start_signaling(turn_urls=turn_url)
        async with chromium() as browser:
            context = await new_context(browser)
            await context.add_init_script(_RECORD_SELECTED_PAIRS)
            page, requested = await open_test_page(context, f"{signaling.url}/test")
            issued: list[dict[str, Any]] = []

            async def keep_credentials(response: Any) -> None:
                if response.url.endswith("/test/turn-credentials"):
                    issued.append(await response.json())

            page.on("response", keep_credentials)
            found, took = await run_test(page, within_s=30)
            await screenshot(page, tmp_path, "connection-test-de")
            pairs = await page.evaluate("() => window.__testSelectedPairs")
            errors = await page.evaluate("() => window.__testCandidateErrors")
            found_delay = await page.text_content("#test-delay") or ""

    assert found["camera"][0] == "ok"
    assert found["camera"][1].startswith("Die Kamera funktioniert")
    assert found["microphone"] == ("ok", "Das Mikrofon funktioniert: Wir hören Sie.")
    assert found["turn"][0] == "ok"
    assert found["turn"][1].startswith("Unser Server ist erreichbar")
    # the path went through TURN at both ends, as getStats saw it when the page closed it
    assert pairs
    assert all(pair == ["relay", "relay"] for pair in pairs), pairs
    assert errors == []  # and Chromium reported no STUN/TURN error (no secure-stun 401s)
    match = MBPS.search(found["bandwidth"][1])
    assert match, found["bandwidth"]
    mbps = float(match.group(1).replace(",", "."))
    assert mbps > 0
    expected = "ok" if mbps >= 8 else "warn" if mbps >= 2 else "fail"
    assert found["bandwidth"][0] == expected, found["bandwidth"]
    print(f"measured through TURN on loopback: {mbps} Mbit/s, test took {took:.1f} s")
    # camera, microphone and TURN are fine: the overall line is the worse of speed and delay
    assert found_delay.startswith("Verzögerung über unseren Server:")
    delay = "ok" if found_delay.endswith(" gut.") else "warn"
    severity = ["ok", "warn", "fail"]
    assert found["overall"][0] == max(found["bandwidth"][0], delay, key=severity.index)
    assert all(url.startswith(signaling.url) for url in requested), requested  # no other origin
    # the credentials: test-only, minutes, and never in signaling's log
    (server,) = issued[0]["iceServers"]
    assert ":test-" in server["username"]
    assert issued[0]["expiresAt"] - time.time() <= 300
    log = signaling.log()
    assert server["credential"] not in log
    assert server["username"] not in log

    # coturn is stopped now: in English, on a phone, the page says it cannot reach the server
    async with chromium() as browser:
        context = await new_context(browser, viewport=PHONE)
        page, _ = await open_test_page(context, f"{signaling.url}/test?lang=en")
        found, took = await run_test(page, within_s=20)
        await screenshot(page, tmp_path, "connection-test-en-phone-unreachable")
        assert await layout_problems(page) == []
        assert found["camera"][0] == "ok"
        assert found["turn"][0] == "fail"
        assert found["turn"][1].startswith("Our server cannot be reached from this network")
        assert found["bandwidth"] == (
            "fail",
            "Not measured: without a connection to our server the speed cannot be checked.",
        )
        assert found["overall"] == (
            "fail",
            "There is a problem. The notes below say what you can do.",
        )
        print(f"TURN stopped: reported unreachable after {took:.1f} s")

        # the address has asked twice; three more are free, the next one is refused (429)
        statuses = await page.evaluate(
            "async () => { const s = []; for (let i = 0; i < 3; i++) s.push((await fetch("
            "'/test/turn-credentials', {method: 'POST'})).status); return s; }"
        )
        assert statuses == [200, 200, 200]
        found, _ = await run_test(page, within_s=20)
        assert found["turn"][0] == "warn"
        assert re.match(
            r"The test was started very often from your connection just now\. "
            r"Please wait [0-9]+ seconds?, then test again\.",
            found["turn"][1],
        ), found["turn"]


async def test_a_browser_without_webrtc_is_sent_to_the_connection_test() -> None:
    """The call page's error for a browser without WebRTC links the test page; an error the
    test cannot help with (no credentials) does not."""
    app = web.Application()
    pages.setup_routes(app)
    async with TestServer(app) as server, chromium() as browser:
        context = await new_context(browser)
        page = await context.new_page()
        await page.goto(str(server.make_url("/call")))
        await page.wait_for_selector('main[data-state="error"]')
        assert not await page.is_visible("#connection-test")  # no credentials: not a device issue
        await context.add_init_script("delete window.RTCPeerConnection;")
        await page.goto(str(server.make_url("/call?lang=en")))
        await page.wait_for_selector('main[data-state="error"]')
        link = page.locator("#connection-test")
        assert await link.is_visible()
        assert await link.text_content() == "Test your connection"
        await link.click()
        await page.wait_for_selector("#test-start")
        assert page.url.endswith("/test?lang=en")
