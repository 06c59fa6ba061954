"""``POST /test/turn-credentials``: short-lived TURN credentials for the connection test page.

The page (``/test``, no code) relays a data channel through the shared TURN server to itself;
``core.connectiontest`` decides what it gets. Only this origin may ask (the page's ``fetch``
sends ``Origin``), every address is rate limited (429 with ``Retry-After``), and the answer is
never cached or logged.
"""

from __future__ import annotations

import secrets
import time

from aiohttp import web
from sprechzimmer.contract.keys import shared_turn_secret

from .appkeys import METRICS, SETTINGS, TEST_CREDENTIALS
from .core.connectiontest import Issued, TestCredentials
from .ws import client_address, origin_allowed

PATH = "/test/turn-credentials"
_NO_STORE = {"Cache-Control": "no-store"}


async def turn_credentials(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    if not origin_allowed(request, settings):
        raise web.HTTPForbidden(text="origin not allowed\n")
    result = request.app[TEST_CREDENTIALS].issue(
        client_address(request, settings),
        settings.turn_urls,
        shared_turn_secret(settings.shared_key),
        mono=time.monotonic(),
        unix=time.time(),
        nonce=secrets.token_hex(4),
    )
    metrics = request.app[METRICS].test_credentials
    if not isinstance(result, Issued):
        metrics.labels("rate-limited").inc()
        return web.json_response(
            {"error": "rate-limited", "retryAfter": result.retry_after},
            status=429,
            headers={**_NO_STORE, "Retry-After": str(result.retry_after)},
        )
    metrics.labels("ok").inc()
    return web.json_response(result.serialize(), headers=_NO_STORE)


def setup_routes(app: web.Application, credentials: TestCredentials | None = None) -> None:
    """Register the endpoint; ``credentials`` with another lifetime only in tests."""
    app[TEST_CREDENTIALS] = credentials or TestCredentials()
    app.router.add_post(PATH, turn_credentials)
