"""static/connectionverdict.js, the connection test's pure judgement, table-driven in real
Chromium (the module as the page imports it, served by pages.py): every measured situation
gets the right level and a text that exists in German and English."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from browser import chromium
from playwright.async_api import Page
from sprechzimmer.signaling import pages

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

STRINGS = pages.load_strings()
MB = 1_000_000


def camera(
    error: str | None, width: int = 0, waited: int = 0, opened: bool = True
) -> dict[str, Any]:
    return {"errorName": error, "opened": opened, "width": width, "waitedMs": waited}


def mic(
    error: str | None, peak: float = 0, listened: int = 0, opened: bool = True
) -> dict[str, Any]:
    return {"errorName": error, "opened": opened, "peak": peak, "listenedMs": listened}


def turn(credentials: str | None, relayed: bool, codes: list[int], done: bool) -> dict[str, Any]:
    return {"credentials": credentials, "relayed": relayed, "errorCodes": codes, "done": done}


def speed(bps: float, measured: bool = True, done: bool = True) -> dict[str, Any]:
    return {"done": done, "measured": measured, "bps": bps}


# (function, facts, expected level, expected key)
CASES: list[tuple[str, Any, str, str]] = [
    ("cameraVerdict", camera(None, 640, 200), "ok", "test.camera.ok"),
    ("cameraVerdict", camera(None, 0, 1000), "pending", "test.camera.pending"),
    ("cameraVerdict", camera(None, opened=False), "pending", "test.camera.pending"),
    ("cameraVerdict", camera("NotAllowedError", opened=False), "fail", "test.camera.denied"),
    ("cameraVerdict", camera(None, 0, 5000), "fail", "test.camera.no-picture"),
    ("cameraVerdict", camera("NotAllowedError"), "fail", "test.camera.denied"),
    ("cameraVerdict", camera("SecurityError"), "fail", "test.camera.denied"),
    ("cameraVerdict", camera("NotFoundError"), "fail", "test.camera.missing"),
    ("cameraVerdict", camera("OverconstrainedError"), "fail", "test.camera.missing"),
    ("cameraVerdict", camera("NotReadableError"), "fail", "test.camera.busy"),
    ("cameraVerdict", camera("TypeError"), "fail", "test.camera.failed"),
    ("microphoneVerdict", mic(None, 0.2, 100), "ok", "test.microphone.ok"),
    ("microphoneVerdict", mic(None, 0.011, 9000), "ok", "test.microphone.ok"),
    ("microphoneVerdict", mic(None, 0, 2999), "pending", "test.microphone.pending"),
    ("microphoneVerdict", mic(None, opened=False), "pending", "test.microphone.pending"),
    ("microphoneVerdict", mic(None, 0.01, 3000), "warn", "test.microphone.silent"),
    ("microphoneVerdict", mic("NotAllowedError"), "fail", "test.microphone.denied"),
    ("microphoneVerdict", mic("NotFoundError"), "fail", "test.microphone.missing"),
    ("microphoneVerdict", mic("AbortError"), "fail", "test.microphone.busy"),
    ("microphoneVerdict", mic("NotSupportedError"), "fail", "test.microphone.failed"),
    ("turnVerdict", turn("issued", True, [], False), "ok", "test.turn.ok"),
    ("turnVerdict", turn("issued", False, [], False), "pending", "test.turn.pending"),
    ("turnVerdict", turn(None, False, [], False), "pending", "test.turn.pending"),
    ("turnVerdict", turn("issued", False, [701], True), "fail", "test.turn.unreachable"),
    ("turnVerdict", turn("issued", False, [], True), "fail", "test.turn.unreachable"),
    ("turnVerdict", turn("issued", False, [701, 401], True), "fail", "test.turn.refused"),
    ("turnVerdict", turn("issued", False, [437], True), "fail", "test.turn.refused"),
    ("turnVerdict", turn("rate-limited", False, [], True), "warn", "test.turn.rate-limited"),
    ("turnVerdict", turn("none", False, [], True), "warn", "test.turn.none"),
    ("turnVerdict", turn("error", False, [], True), "fail", "test.turn.error"),
    ("bandwidthVerdict", speed(8 * MB), "ok", "test.bandwidth.group"),
    ("bandwidthVerdict", speed(250 * MB), "ok", "test.bandwidth.group"),
    ("bandwidthVerdict", speed(8 * MB - 1), "warn", "test.bandwidth.pair"),
    ("bandwidthVerdict", speed(2 * MB), "warn", "test.bandwidth.pair"),
    ("bandwidthVerdict", speed(2 * MB - 1), "fail", "test.bandwidth.low"),
    ("bandwidthVerdict", speed(0), "fail", "test.bandwidth.low"),
    ("bandwidthVerdict", speed(0, measured=False), "fail", "test.bandwidth.not-measured"),
    ("bandwidthVerdict", speed(0, done=False), "pending", "test.bandwidth.pending"),
    ("delayVerdict", 40, "ok", "test.delay.ok"),
    ("delayVerdict", 300, "ok", "test.delay.ok"),
    ("delayVerdict", 301, "warn", "test.delay.slow"),
]

OVERALL: list[tuple[list[str | None], str]] = [
    (["ok", "ok", "ok", "ok", None], "ok"),
    (["ok", "warn", "ok", "ok", "ok"], "warn"),
    (["ok", "warn", "fail", "ok", None], "fail"),
    (["pending", "fail", "ok", "ok", None], "pending"),
]


@pytest.fixture
async def page() -> AsyncIterator[Page]:
    """A page on this origin (the CSP lets it import the module), in real Chromium."""
    app = web.Application()
    pages.setup_routes(app)
    async with TestServer(app) as server, chromium() as browser:
        tab = await browser.new_page()
        await tab.goto(str(server.make_url("/test")))
        yield tab


async def judge(page: Page, function: str, facts: Any) -> dict[str, str]:
    result: dict[str, str] = await page.evaluate(
        "async ([fn, facts]) => (await import('/static/connectionverdict.js'))[fn](facts)",
        [function, facts],
    )
    return result


async def test_every_measured_situation_gets_its_level_and_a_text_in_both_languages(
    page: Page,
) -> None:
    seen = set()
    for function, facts, level, key in CASES:
        assert await judge(page, function, facts) == {"level": level, "key": key}, (function, facts)
        seen.add(key)
    for lang in pages.LANGUAGES:
        assert seen <= set(STRINGS[lang]), lang
    assert await judge(page, "delayVerdict", None) is None  # no RTT known: no line


async def test_the_overall_line_is_the_worst_result_and_bandwidth_is_bits_per_second(
    page: Page,
) -> None:
    for levels, expected in OVERALL:
        results = [None if level is None else {"level": level, "key": "x"} for level in levels]
        overall = await judge(page, "overallVerdict", results)
        assert overall == {"level": expected, "key": f"test.overall.{expected}"}
        assert overall["key"] in STRINGS["en"]
    rate = await page.evaluate(
        "async () => { const m = await import('/static/connectionverdict.js');"
        " return [m.bitsPerSecond(1_000_000, 1000), m.bitsPerSecond(0, 1000),"
        " m.bitsPerSecond(10, 0), m.GUIDANCE]; }"
    )
    assert rate == [8_000_000, 0, 0, {"pairBps": 2_000_000, "groupBps": 8_000_000}]
