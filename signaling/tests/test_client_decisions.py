"""The call page's pure decision modules (static/reconnect.js, degrade.js, quality.js,
netstats.js, state.js), table-driven, run in real headless Chromium.

The modules are served to the page by Playwright's request routing straight from the static
directory (no signaling process, no cluster): the same files the call page loads, in the
browser that runs them, without a JavaScript toolchain the project does not otherwise need.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from browser import chromium
from playwright.async_api import Page, Route
from sprechzimmer.signaling.pages import STATIC_DIR

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

ORIGIN = "http://decisions.test"


@pytest_asyncio.fixture
async def page() -> AsyncIterator[Page]:
    async def serve(route: Route) -> None:
        name = route.request.url.removeprefix(f"{ORIGIN}/static/")
        path = STATIC_DIR / name
        if route.request.url == f"{ORIGIN}/":
            await route.fulfill(body="<!doctype html><title>t</title>", content_type="text/html")
        elif path.is_file() and path.parent == STATIC_DIR:
            await route.fulfill(body=path.read_bytes(), content_type="text/javascript")
        else:
            await route.fulfill(status=404)

    async with chromium() as browser:
        page = await browser.new_page()
        await page.route(f"{ORIGIN}/**", serve)
        await page.goto(f"{ORIGIN}/")
        yield page


async def run(page: Page, module: str, body: str, arg: Any = None) -> Any:
    """Evaluate ``body`` (an async function of (m, arg)) with the module imported as ``m``."""
    return await page.evaluate(
        f"async (arg) => {{ const m = await import('/static/{module}'); "
        f"return (async (m, arg) => {{ {body} }})(m, arg); }}",
        arg,
    )


# --- reconnect.js ---------------------------------------------------------------------------

# A link's life as (ms, connectionState, iceConnectionState, bytesReceived) → isDown after it.
LINK_STORIES = [
    (
        "connecting never counts as down",
        [(0, "new", "new", 0), (5000, "connecting", "checking", 0)],
        [False, False],
    ),
    (
        "up while bytes rise, down after 1.5 s of silence, up again when they rise",
        [
            (0, "connected", "connected", 100),
            (500, "connected", "connected", 200),
            (1500, "connected", "connected", 200),
            (2100, "connected", "connected", 200),
            (2600, "connected", "connected", 300),
        ],
        [False, False, False, True, False],
    ),
    (
        "ICE disconnected is down at once",
        [(0, "connected", "connected", 100), (500, "connected", "disconnected", 150)],
        [False, True],
    ),
    (
        "failed is down; a new connection is not up before it connects",
        [
            (0, "connected", "connected", 100),
            (500, "failed", "failed", 100),
            (1000, "new", "new", 0),
            (3000, "connected", "connected", 0),
        ],
        [False, True, True, False],
    ),
    (
        "nobody sending (null bytes): silence means nothing",
        [(0, "connected", "connected", None), (9000, "connected", "connected", None)],
        [False, False],
    ),
]


@pytest.mark.parametrize(
    ("story", "samples", "down"), LINK_STORIES, ids=[s[0] for s in LINK_STORIES]
)
async def test_link_is_down(page: Page, story: str, samples: list[Any], down: list[bool]) -> None:
    body = """
      let w = m.newWatch();
      return arg.map(([now, connectionState, iceConnectionState, bytesReceived]) => {
        w = m.observe(w, {connectionState, iceConnectionState, bytesReceived}, now);
        return m.isDown(w);
      });
    """
    assert await run(page, "reconnect.js", body, samples) == down


async def test_repair_resumes_first_then_rejoins_every_2_s(page: Page) -> None:
    body = """
      const up = {connectionState: "connected", iceConnectionState: "connected", bytesReceived: 1};
      const failed = {connectionState: "failed", iceConnectionState: "failed", bytesReceived: 1};
      let w = m.observe(m.newWatch(), up, 0);
      w = m.observe(w, {...up, iceConnectionState: "disconnected"}, 100);
      const steps = [];
      const at = (now, situation) => {
        const step = m.nextAction(w, now, situation);
        w = step.watch;
        steps.push(step.action);
      };
      const p2p = {canSignal: true, drives: true, resumable: true};
      at(100, {...p2p, canSignal: false});  // socket down: wait for it
      at(200, p2p);                          // at once: ICE restart
      at(1000, p2p);                         // within 2 s: nothing
      at(2200, p2p);                         // 2 s later: a new connection
      at(4200, p2p);                         // and again every 2 s
      at(6200, {...p2p, drives: false});     // the other side repairs
      at(6300, {...p2p, pending: true});     // 2.1 s on, the last attempt still negotiating …
      at(9300, {...p2p, pending: true});     // … is given up to 5 s
      const g = m.observe(m.observe(m.newWatch(), up, 0), failed, 1);
      steps.push(m.nextAction(g, 2, {canSignal: true, drives: true, resumable: false}).action);
      return [steps, [0, 1, 2, 3].map(m.socketRetryDelay)];
    """
    steps, delays = await run(page, "reconnect.js", body)
    assert steps == [
        *("none", "resume", "none", "rejoin", "rejoin"),
        *("none", "none", "rejoin", "rejoin"),
    ]
    assert delays == [0, 2000, 2000, 2000]


async def test_a_connection_to_the_sfu_that_never_came_up_is_started_over(page: Page) -> None:
    body = """
      const connecting =
        {connectionState: "connecting", iceConnectionState: "checking", bytesReceived: 0};
      const failed = {connectionState: "failed", iceConnectionState: "failed", bytesReceived: 0};
      const group = {canSignal: true, drives: true, resumable: false, pending: true};
      const steps = [];
      let w = m.newWatch();
      const at = (now, sample, situation = group) => {
        w = m.observe(w, sample, now);
        const step = m.nextAction(w, now, situation);
        w = step.watch;
        steps.push(step.action);
      };
      at(0, connecting);
      at(14000, connecting);                        // still trying: left alone
      at(15000, connecting);                        // 15 s without connecting: a new one
      at(16000, failed);                            // the new one failed at once …
      at(17000, failed);                            // … 2 s after the attempt: again
      at(18000, connecting, {...group, canSignal: false}); // socket down: wait for it
      at(100, connecting, {...group, resumable: true});    // 1:1: PeerLink's own restart
      return steps;
    """
    assert await run(page, "reconnect.js", body) == [
        *("none", "none", "rejoin", "none", "rejoin", "none", "none"),
    ]


# --- degrade.js -----------------------------------------------------------------------------


async def test_video_steps_down_to_off_and_back_up(page: Page) -> None:
    body = """
      let l = m.newLadder(0);
      const rungs = [];
      const step = (now, bps, loss, limitation = "bandwidth") => {
        l = m.nextRung(l, {bps, loss, limitation}, now);
        rungs.push(l.rung);
      };
      step(1000, 200000, 0);        // start-up ramp: not judged yet
      step(5000, 200000, 0);        // 200 kbit/s: rung 1
      step(6000, 200000, 0);        // one step per 2 s
      step(7000, 200000, 0);        // rung 2
      step(9000, 100000, 0.15);     // lossy: rung 3
      step(11000, 60000, 0.2);      // off, audio only
      step(15000, 60000, 0);        // off waits 10 s before trying again
      step(21000, 60000, 0);        // try the lowest rung
      step(23000, 60000, 0.2);      // fails: off again …
      step(34000, 60000, 0);        // … and the next try waits 20 s
      step(43000, 900000, 0, "none"); // tried again
      step(44000, 900000, 0, "none"); // room for rung 2 …
      step(50000, 900000, 0, "none"); // … for 6 s: up one
      step(53000, 2000000, 0, "none");
      step(56000, 2000000, 0, "none"); // room again, but only for 3 s
      step(59000, 2000000, 0, "none"); // 6 s: up one more
      return [rungs, m.VIDEO_OFF, m.encodingFor(m.VIDEO_OFF), m.encodingFor(1)];
    """
    rungs, off, off_encoding, rung1 = await run(page, "degrade.js", body)
    assert off == 4
    assert rungs == [0, 1, 1, 2, 3, 4, 4, 3, 4, 4, 3, 3, 2, 2, 2, 1]
    assert off_encoding == {"active": False}
    assert rung1 == {
        "active": True,
        "maxBitrate": 700000,
        "scaleResolutionDownBy": 1.5,
        "maxFramerate": 24,
    }


# --- quality.js and netstats.js -------------------------------------------------------------

QUALITY = [
    ({"loss": 0.0, "rttMs": 40, "bps": 2_000_000}, "good"),
    ({"loss": 0.05, "rttMs": 40, "bps": None}, "medium"),
    ({"loss": 0.0, "rttMs": 450, "bps": None}, "medium"),
    ({"loss": 0.0, "rttMs": 40, "bps": 300_000}, "medium"),
    ({"loss": 0.2, "rttMs": 40, "bps": None}, "poor"),
    ({"loss": 0.0, "rttMs": 40, "bps": 100_000}, "poor"),
    ({"loss": None, "rttMs": 40, "bps": None, "silent": True}, "poor"),
    ({"loss": None, "rttMs": None, "bps": None}, None),
]


@pytest.mark.parametrize(("facts", "level"), QUALITY)
async def test_quality_level(page: Page, facts: dict[str, Any], level: str | None) -> None:
    assert await run(page, "quality.js", "return m.qualityOf(arg);", facts) == level


async def test_stats_sample_and_inbound_loss(page: Page) -> None:
    body = """
      const report = (recv, lost) => [
        {id: "T", type: "transport", selectedCandidatePairId: "P"},
        {id: "P", type: "candidate-pair", bytesReceived: 5000, currentRoundTripTime: 0.05,
         availableOutgoingBitrate: 800000},
        {id: "Q", type: "candidate-pair", bytesReceived: 700, currentRoundTripTime: 0.9},
        {id: "A", type: "inbound-rtp", kind: "audio", mid: "0", packetsReceived: recv,
         packetsLost: lost},
        {id: "V", type: "inbound-rtp", kind: "video", mid: "1", packetsReceived: 10,
         packetsLost: 0},
        {id: "R", type: "remote-inbound-rtp", kind: "video", fractionLost: 0.25},
        {id: "O", type: "outbound-rtp", kind: "video", bytesSent: 900,
         qualityLimitationReason: "bandwidth"},
      ];
      const a = m.sampleOf(report(100, 0));
      const b = m.sampleOf(report(190, 10));
      return [a.bytesReceived, a.rttMs, a.availableOutgoingBps, a.sendLoss, a.limitation,
              m.inboundDelta(a, b, ["0", "1"])];
    """
    got = await run(page, "netstats.js", body)
    # bytes over every pair (a restart's new one too), the rest from the selected pair
    assert got[:5] == [5700, 50, 800000, 0.25, "bandwidth"]
    assert got[5] == {"loss": 0.1, "packets": 90, "videoPackets": 0, "audioPackets": 90}


# --- state.js -------------------------------------------------------------------------------


async def test_a_dead_media_link_shows_reconnecting(page: Page) -> None:
    body = """
      const facts = {final: null, admitted: true, wasAdmitted: true, consented: true,
                     notStarted: false, links: ["connected"], others: 1};
      return [m.callState(facts), m.callState({...facts, mediaDown: true}),
              m.callState({...facts, mediaDown: true, others: 0})];
    """
    assert await run(page, "state.js", body) == ["connected", "reconnecting", "waiting"]
