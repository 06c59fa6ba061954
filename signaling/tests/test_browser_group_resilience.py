"""Staying in a group call when its parts fail: three Chromium pages through signaling and a
real SFU + coturn (media-pod processes behind ``MEDIA_OVERRIDE``, as in test_browser_group.py).

Faults, one after the other in the same call: a page's WebSocket is cut (its place at the SFU
is kept for the resume, media never stops), then the SFU process is killed and started again
on the same port as a container restart would (every participant and transport gone), then
the pod's coturn the same way (every allocation gone). The SFU
(aiortc) cannot restart ICE, so each page's repair is a new connection on its seat, which the
SFU takes as replacing the old participant. Recovery is read from each page's state log.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from browser import (
    ONE_OPEN_CONNECTION,
    media_flowing,
    new_context,
    now_ms,
    recovery_ms,
    wait_for_state,
)
from lightkube import Client
from local_media_pod import LocalMediaPod, group_call
from playwright.async_api import Page
from sprechzimmer.contract import SecretKey

pytestmark = [pytest.mark.browser, pytest.mark.media, pytest.mark.timeout(400)]

RECOVERY_TARGET_MS = 4000
TWO_PICTURES = "() => document.querySelectorAll('video[data-remote]').length === 2"
# Which of the page's connections is open (an index into the recorded ones).
OPEN_CONNECTION = "window.__testPeerConnections.findIndex((pc) => pc.connectionState !== 'closed')"


async def everyone_sees_everyone(pages: list[Page]) -> None:
    for page in pages:
        await wait_for_state(page, "connected", 90)
        await page.wait_for_function(TWO_PICTURES, timeout=60_000)
        await page.wait_for_function(ONE_OPEN_CONNECTION, timeout=30_000)
    for page in pages:
        await media_flowing(page, streams=2, within=60)
        # each person's quality, from the inbound stats of their slot
        await page.wait_for_function(
            "() => document.querySelectorAll('figure[data-tile][data-quality]').length === 2"
        )


@pytest_asyncio.fixture
async def group_pages(
    start_signaling: Any,
    namespace: str,
    kube: Client,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> AsyncIterator[tuple[LocalMediaPod, list[Page]]]:
    """The practice and two clients in one group call, each page in its own profile (the
    test asks for the operator and the media node first)."""
    async with group_call(kube, namespace, monkeypatch, tmp_path, start_signaling) as group:
        invite = group.invite
        keys = (SecretKey.HOST_LINK_TOKEN, SecretKey.CLIENT_LINK_TOKEN, SecretKey.CLIENT_LINK_TOKEN)
        pages = []
        for key in keys:
            page = await (await new_context(group.browser, record_peer_connections=True)).new_page()
            await page.goto(f"{group.signaling.url}/j#{invite[key.value]}")
            await wait_for_state(page, "consent")
            await page.click("button[name=consent]")
            pages.append(page)
        yield group.pod, pages


@pytest.mark.usefixtures("operator", "media_node")  # before group_pages: it needs them running
async def test_group_call_survives_a_cut_socket_an_sfu_crash_and_a_turn_crash(
    group_pages: tuple[LocalMediaPod, list[Page]],
) -> None:
    pod, pages = group_pages
    await everyone_sees_everyone(pages)

    # A cut socket: the page resumes its seat; the SFU kept it, the connection carries on.
    before = await pages[1].evaluate(OPEN_CONNECTION)
    fault = await pages[1].evaluate(
        "() => { const t = performance.now(); window.__testSockets.at(-1).close(); return t; }"
    )
    took = await recovery_ms(pages[1], fault)
    print(f"group, cut WebSocket: {took:.0f} ms")
    assert took <= RECOVERY_TARGET_MS
    assert await pages[1].evaluate(OPEN_CONNECTION) == before  # the same connection

    # The SFU crashes and comes back: every page rejoins on a new connection.
    await crash_and_recover(pages, "SFU", pod.sfu.crash_and_restart)

    # The pod's TURN server crashes and comes back: the allocations are gone, every page's
    # media path is dead and each rejoins on a new connection (new allocation).
    await crash_and_recover(pages, "TURN", pod.turn.crash_and_restart)


async def crash_and_recover(
    pages: list[Page], what: str, crash_and_restart: Callable[[], Awaitable[None]]
) -> None:
    """Kill and restart a process; every page must be `connected` again with media. Printed:
    fault → connected per page, and how long the process itself took to be back (a Python
    SFU's start is seconds on a loaded machine; the page cannot be back before it). Asserted:
    the pages' part, from the process being back to `connected`, within the 4 s target."""
    faults = [(page, await now_ms(page)) for page in pages]
    started = asyncio.get_running_loop().time()
    await crash_and_restart()
    restart_ms = (asyncio.get_running_loop().time() - started) * 1000
    took = [await recovery_ms(page, at) for page, at in faults]
    print(
        f"group, {what} killed and restarted: {[round(t) for t in took]} ms"
        f" (the {what} process back after {restart_ms:.0f} ms)"
    )
    assert max(took) - restart_ms <= RECOVERY_TARGET_MS, (took, restart_ms)
    await everyone_sees_everyone(pages)
