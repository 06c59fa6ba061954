"""Client of one media pod's control API (docs/media-pod.md), and its event follower.

Signaling is the only client: it forwards offers and trickled candidates, removes people who
leave, and follows ``/v1/events`` (long poll) to tell the browsers who is in which slot and who
speaks. Errors map to the protocol's error codes at the edge (``MediaError.code``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final
from urllib.parse import quote

import aiohttp
from sprechzimmer.contract.mediapod import CONTROL_API_VERSION, MAX_EVENTS_POLL_SECONDS

from .core.protocol import Candidate, ErrorCode

logger = logging.getLogger(__name__)
POLL_SECONDS: Final = min(25, MAX_EVENTS_POLL_SECONDS)
# An offer while the pod's SFU restarts (container restart, same address) is retried this long,
# so a browser rejoining after the crash gets its answer as soon as the SFU is back (a Python
# SFU took up to 9 s to serve again on a heavily loaded two-core machine).
JOIN_RETRY_SECONDS: Final = 15.0
JOIN_RETRY_EVERY_SECONDS: Final = 0.2
RETRY_MAX_SECONDS: Final = 2.0
_STATUS_CODES: Final = {
    400: ErrorCode.BAD_MESSAGE,
    413: ErrorCode.BAD_MESSAGE,
    409: ErrorCode.FULL,
    410: ErrorCode.EXPIRED,
}


class MediaError(Exception):
    """A control API request failed; ``code`` is what the browser is told."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.code = _STATUS_CODES.get(status, ErrorCode.UNAVAILABLE)


class MediaPod:
    """One pod's control API at ``http://<address>/v1`` with its bearer token."""

    def __init__(self, http: aiohttp.ClientSession, address: str, token: str) -> None:
        self.address = address
        self._base = f"http://{address}/{CONTROL_API_VERSION}"
        self._headers = {"Authorization": f"Bearer {token}"}
        self._http = http

    async def _call(self, method: str, path: str, body: object = None, limit: float = 10.0) -> Any:
        try:
            async with self._http.request(
                method,
                self._base + path,
                json=body,
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=limit, connect=3.0),
            ) as response:
                data = await response.json(content_type=None) if response.status != 204 else None
                if response.status >= 400:
                    message = data.get("error", "") if isinstance(data, dict) else ""
                    raise MediaError(response.status, str(message)[:200])
                return data
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as err:
            raise MediaError(0, type(err).__name__) from err

    async def join(self, peer: str, offer: str) -> str:
        body = {"participantId": peer, "type": "offer", "sdp": offer}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + JOIN_RETRY_SECONDS
        while True:
            try:
                answer = await self._call("POST", "/participants", body, limit=20.0)
                break
            except MediaError as err:
                # Unreachable (status 0): the SFU restarting; the browser's offer waits for it.
                if err.status != 0 or loop.time() + JOIN_RETRY_EVERY_SECONDS > deadline:
                    raise
                await asyncio.sleep(JOIN_RETRY_EVERY_SECONDS)
        if not isinstance(answer, dict) or not isinstance(answer.get("sdp"), str):
            raise MediaError(0, "answer without sdp")
        return str(answer["sdp"])

    async def candidate(self, peer: str, candidate: Candidate | None) -> None:
        body: dict[str, Any] = {"candidate": None}
        if candidate is not None:
            body = {
                "candidate": candidate.candidate,
                "sdpMid": candidate.sdp_mid,
                "sdpMLineIndex": candidate.sdp_mline_index,
            }
        await self._call("POST", f"/participants/{quote(peer, safe='')}/candidates", body)

    async def remove(self, peer: str) -> None:
        try:
            await self._call("DELETE", f"/participants/{quote(peer, safe='')}")
        except MediaError as err:
            if err.status != 404:
                raise

    async def participants(self) -> Mapping[str, Any]:
        data = await self._call("GET", "/participants")
        return data if isinstance(data, dict) else {}

    async def events(self, after: int, wait: float) -> tuple[list[dict[str, Any]], int]:
        data = await self._call("GET", f"/events?after={after}&timeout={wait:g}", limit=wait + 10)
        events = [e for e in (data or {}).get("events") or [] if isinstance(e, dict)]
        return events, int((data or {}).get("next") or after)


async def follow(pod: MediaPod, on_change: Callable[[Mapping[str, Any]], Awaitable[None]]) -> None:
    """Long-poll the pod's events forever; after each batch, hand the participant list (slots,
    speaker) to ``on_change``. Errors back off and retry; cancel to stop.

    After an error the follower starts over from event 0 with a fresh participant list: an SFU
    that restarted numbers its events from 1 again, and waiting for ids above the old ones would
    miss every change of the new call."""
    after, backoff, fresh = 0, 0.5, True
    while True:
        try:
            if fresh:
                await on_change(await pod.participants())
                fresh = False
            events, after = await pod.events(after, POLL_SECONDS)
            backoff = 0.5
            if events:
                await on_change(await pod.participants())
        except MediaError as err:
            logger.info("media events retry", extra={"error": str(err)[:200]})
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, RETRY_MAX_SECONDS)
            after, fresh = 0, True
