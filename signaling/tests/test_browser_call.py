"""1:1 calls between two real headless Chromium processes through the real stack.

Real control plane, the real operator (issues the codes and links), signaling as a process
through its real entrypoint, the shared TURN server (Debian coturn) in relay-only mode, so that
media flowing proves TURN works: every selected candidate pair must be a relay pair. One person
joins by the invitation link, the other by practice handle + code typed on the start page.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
import support  # operator/tests/support.py, put on the path by conftest.py
from browser import (
    ONE_OPEN_CONNECTION,
    PHONE,
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
from lightkube.resources.core_v1 import Secret
from playwright.async_api import Page
from sprechzimmer.contract import SecretKey

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]


@pytest_asyncio.fixture
async def signaling(
    start_signaling: Any, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Any]:
    """Signaling handing out credentials for the shared TURN server; relay only unless the
    test asks for ``indirect`` parameter False."""
    relay_only = getattr(request, "param", True)
    async with shared_turn(tmp_path, support.SHARED_KEY) as turn_url:
        yield start_signaling(turn_urls=turn_url, relay_only=str(relay_only).lower())


def invitation(kube: Client, namespace: str, name: str, signaling: Any) -> dict[str, str]:
    """What the practice's web app would copy from the codes Secret into invitations, once
    signaling's watch has the session (a link opened sooner is rightly unknown)."""
    support.wait_for(
        "codes Secret", lambda: support.status(kube, namespace, name).get("codesSecretName"), 60
    )
    support.wait_for(
        "signaling to index the session",
        lambda: signaling.metric("sprechzimmer_signaling_sessions_indexed") >= 1,
        30,
    )
    secret = support.status(kube, namespace, name)["codesSecretName"]
    data = kube.get(Secret, secret, namespace=namespace).data or {}
    return {key.value: base64.b64decode(data[key.value]).decode() for key in SecretKey}


def ready_session(kube: Client, namespace: str, signaling: Any) -> dict[str, str]:
    """A 1:1 session starting now, Ready, known to signaling: its invitation."""
    support.create_session(kube, namespace, "eins")
    support.wait_for("Ready", support.phase_is(kube, namespace, "eins", "Ready"), 60)
    return invitation(kube, namespace, "eins", signaling)


async def assert_call_through_turn(*pages: Page) -> None:
    for page in pages:
        stats = await media_flowing(page)
        assert stats["pairs"] >= 1
        assert stats["relayPairs"] == stats["pairs"], stats  # relay only: through TURN
        # What the person sees: exactly one picture of the other person (a tile follows the
        # roster, which may reach the page just after the first media after a reconnect).
        await page.wait_for_function(
            "() => document.querySelectorAll('video[data-remote]').length === 1", timeout=20_000
        )


@asynccontextmanager
async def two_people(client_timezone: str = "Europe/Berlin") -> AsyncIterator[tuple[Page, Page]]:
    """The practice at a desktop and a client on a phone, each in their own Chromium process."""
    async with chromium() as host_browser, chromium() as client_browser:
        host_context = await new_context(host_browser, record_peer_connections=True)
        client_context = await new_context(
            client_browser, viewport=PHONE, timezone=client_timezone, record_peer_connections=True
        )
        yield await host_context.new_page(), await client_context.new_page()


async def open_link(page: Page, url: str, token: str) -> None:
    """Open an invitation link; the token must leave the address bar."""
    await page.goto(f"{url}/j#{token}")
    await wait_for_state(page, "consent")
    assert page.url == f"{url}/j"


async def enter_code(page: Page, url: str, code: str) -> None:
    """Type handle and code the way people do, on the English start page."""
    await page.goto(f"{url}/?lang=en")
    await page.fill("input[name=host]", " Dr-Muster ")
    await page.fill("input[name=code]", code.upper().replace("-", " "))
    await page.click("button[type=submit]")
    await wait_for_state(page, "consent")
    assert code not in page.url


async def both_join(host: Page, client: Page, url: str, invite: dict[str, str]) -> None:
    """The practice by its link, the client by typing the code; both agree."""
    await open_link(host, url, invite[SecretKey.HOST_LINK_TOKEN.value])
    await host.click("button[name=consent]")
    await enter_code(client, url, invite[SecretKey.CLIENT_CODE.value])
    await client.click("button[name=consent]")


async def test_one_to_one_call_by_link_and_by_code_through_turn(
    operator: Any, kube: Client, namespace: str, signaling: Any, tmp_path: Path
) -> None:
    invite = ready_session(kube, namespace, signaling)
    token = invite[SecretKey.HOST_LINK_TOKEN.value]
    assert invite[SecretKey.HOST_LINK.value].endswith(f"/j#{token}")

    async with two_people() as (host, client):
        await open_link(host, signaling.url, token)
        consent = await host.inner_text("main")
        assert "Es wird nichts aufgezeichnet" in consent
        assert "Ende-zu-Ende-verschlüsselt" in consent
        assert "wird dieser Anruf automatisch gestartet" in consent
        await host.click("button[name=consent]")
        await wait_for_state(host, "waiting")

        await enter_code(client, signaling.url, invite[SecretKey.CLIENT_CODE.value])
        assert "Nothing is recorded" in await client.inner_text("main")
        await client.fill("input[name=name]", "Frau M.")
        await client.click("button[name=consent]")

        await wait_for_state(client, "connected", 60)
        await wait_for_state(host, "connected", 60)
        await assert_call_through_turn(host, client)
        assert await host.inner_text("figure[data-tile] figcaption") == "Frau M."
        assert await client.inner_text("figure[data-tile] figcaption") == "Practice"
        # End to end: the remote video is marked, and both show one code over both fingerprints.
        for page in (host, client):
            await page.wait_for_selector('video[data-remote][data-encrypted="true"]')
            await page.wait_for_function(
                "() => /^\\d{3} \\d{3} \\d{3} \\d{3}$/.test("
                "document.querySelector('[data-verification-code]').textContent)"
            )
        codes = {await page.inner_text("[data-verification-code]") for page in (host, client)}
        assert len(codes) == 1, codes
        for page, name in ((host, "desktop-de"), (client, "phone-en")):
            assert await in_viewport(page, "nav.controls")
            assert await layout_problems(page) == []
            await screenshot(page, tmp_path, f"call-connected-{name}")

        # Muting is the person's own business: their page says so, audio stops going out.
        await client.click("#mute")
        assert await client.get_attribute("#mute", "aria-pressed") == "true"
        assert await client.inner_text("#mute") == "Unmute"

        # The client leaves: their page ends, the practice waits alone again.
        await client.click("#leave")
        await wait_for_state(client, "ended")
        assert "You left the call" in await client.inner_text("main")
        await wait_for_state(host, "waiting", 60)
        assert await host.locator("video[data-remote]").count() == 0


async def test_not_started_shows_the_local_time_and_starts_by_itself(
    operator: Any, kube: Client, namespace: str, signaling: Any, tmp_path: Path
) -> None:
    # Far enough ahead that two browsers are in before it, even on a busy machine.
    start = support.now().replace(microsecond=0) + timedelta(seconds=45)
    support.create_session(kube, namespace, "spaeter", start=start)
    invite = invitation(kube, namespace, "spaeter", signaling)

    async with two_people(client_timezone="America/New_York") as (host, client):
        await both_join(host, client, signaling.url, invite)
        assert support.now() < start, "setting up took longer than the time to the start"
        for page, zone in ((host, "Europe/Berlin"), (client, "America/New_York")):
            await wait_for_state(page, "waiting")
            status = await page.inner_text("#call-status")
            assert start.astimezone(ZoneInfo(zone)).strftime("%H:%M") in status, status
        assert "beginnt am" in await host.inner_text("#call-status")
        assert "starts on" in await client.inner_text("#call-status")
        await screenshot(client, tmp_path, "call-waiting-phone-en")

        # Nobody clicks anything: the call starts at the scheduled time.
        await wait_for_state(host, "connected", 90)
        await wait_for_state(client, "connected", 60)
        await assert_call_through_turn(host, client)


async def test_signaling_restart_mid_call_reconnects_by_itself(
    operator: Any, kube: Client, namespace: str, signaling: Any, tmp_path: Path
) -> None:
    invite = ready_session(kube, namespace, signaling)

    async with two_people() as (host, client):
        await both_join(host, client, signaling.url, invite)
        await wait_for_state(client, "connected", 60)
        await wait_for_state(host, "connected", 60)

        # A rolling update: the replica closes every socket with 1001 GOING_AWAY.
        assert signaling.stop() == 0
        await wait_for_state(host, "reconnecting", 15)
        await wait_for_state(client, "reconnecting", 15)
        assert "alle 2 Sekunden" in await host.inner_text("#call-status")
        await screenshot(host, tmp_path, "call-reconnecting-desktop-de")

        # Back on the same address: both pages find their way in without anyone clicking.
        # The new replica knows nobody (seats live in memory): new seats, new peer ids, a
        # new connection; the old one is let go once the other person's old id is gone.
        signaling.start()
        for page in (host, client):
            await wait_for_state(page, "connected", 60)
            await page.wait_for_function(ONE_OPEN_CONNECTION, timeout=60_000)
        await assert_call_through_turn(host, client)
