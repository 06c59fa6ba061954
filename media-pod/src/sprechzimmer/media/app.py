"""The SFU's HTTP side: the control API for the signaling service, health and metrics.

``init_app()`` builds the aiohttp application around one ``Call``; the contract is documented in
``docs/media-pod.md``. Every route under ``/v1/`` (``CONTROL_API_VERSION``) needs
``Authorization: Bearer <control token>``.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from sprechzimmer.contract.mediapod import CONTROL_API_VERSION, MAX_EVENTS_POLL_SECONDS

from .core.control import (
    MAX_BODY_BYTES,
    CandidateRequest,
    ControlError,
    CredentialsRequest,
    JoinRequest,
    JoinResponse,
    LeaveReason,
    parse_participant_id,
)
from .core.settings import Settings
from .core.turn import credential_expiry, rest_credentials
from .metrics import ControlCollector, SfuCollector
from .sfu import Call

logger = logging.getLogger(__name__)

SETTINGS = web.AppKey("settings", Settings)
CALL = web.AppKey("call", Call)
REGISTRY = web.AppKey("registry", CollectorRegistry)
JOIN_LOCK = web.AppKey("join_lock", asyncio.Lock)
CONTROL_RESULTS = web.AppKey("control_results", dict[str, int])

PREFIX = f"/{CONTROL_API_VERSION}/"  # the control API; everything under it needs the token

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@web.middleware
async def _control_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith(PREFIX):
        return await handler(request)
    results = request.app[CONTROL_RESULTS]
    token = request.app[SETTINGS].control_token or ""
    supplied = request.headers.get("Authorization", "")
    if not token or not hmac.compare_digest(supplied.encode(), f"Bearer {token}".encode()):
        results["unauthorized"] += 1
        return _error(401, "missing or wrong control token")
    try:
        response = await handler(request)
    except ControlError as exc:
        results["rejected"] += 1
        return _error(exc.status, str(exc))
    except web.HTTPException:
        results["rejected"] += 1
        raise
    results["ok"] += 1
    return response


async def _json_body(request: web.Request) -> object:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise ControlError(413, f"request body larger than {MAX_BODY_BYTES} bytes")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise ControlError(413, f"request body larger than {MAX_BODY_BYTES} bytes") from exc
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ControlError(400, "request body is not valid JSON") from exc


async def add_participant(request: web.Request) -> web.Response:
    join = JoinRequest.parse(await _json_body(request))
    async with request.app[JOIN_LOCK]:
        answer = await request.app[CALL].join(join.participant_id, join.sdp)
    return web.json_response(JoinResponse(join.participant_id, answer).serialize(), status=201)


async def remove_participant(request: web.Request) -> web.Response:
    participant_id = parse_participant_id(request.match_info["participant_id"])
    if not await request.app[CALL].leave(participant_id, LeaveReason.REMOVED):
        raise ControlError(404, "no such participant")
    return web.Response(status=204)


async def add_candidate(request: web.Request) -> web.Response:
    participant_id = parse_participant_id(request.match_info["participant_id"])
    candidate = CandidateRequest.parse(await _json_body(request))
    if not candidate.usable:
        return web.json_response({"accepted": False, "reason": "only loopback relay candidates"})
    await request.app[CALL].add_candidate(
        participant_id, candidate.candidate, candidate.sdp_mid, candidate.sdp_mline_index
    )
    return web.json_response({"accepted": True})


async def list_participants(request: web.Request) -> web.Response:
    call = request.app[CALL]
    return web.json_response(
        {
            "participants": call.participant_stats(),
            "activeSpeaker": call.speaker.current,
            "maxParticipants": call.max_participants,
            "draining": call.draining,
        }
    )


async def events(request: web.Request) -> web.Response:
    try:
        after = int(request.query.get("after", "0"))
        timeout = float(request.query.get("timeout", "0"))
    except ValueError as exc:
        raise ControlError(400, "after must be an integer and timeout a number") from exc
    if after < 0 or not 0 <= timeout <= MAX_EVENTS_POLL_SECONDS:
        raise ControlError(
            400, f"after must be >= 0 and timeout between 0 and {MAX_EVENTS_POLL_SECONDS}"
        )
    log = request.app[CALL].events
    found = await log.wait(after, timeout)
    if not found and log.closed:
        raise ControlError(503, "the call has ended; there will be no more events")
    return web.json_response(
        {"events": [e.serialize() for e in found], "next": found[-1].id if found else after}
    )


async def turn_credentials(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    ask = CredentialsRequest.parse(await _json_body(request))
    now = datetime.now(UTC)
    if now >= settings.expires_at:
        raise ControlError(410, "the session has expired")
    expiry = credential_expiry(now, ask.ttl_seconds, settings.expires_at)
    credentials = rest_credentials(settings.turn_secret, expiry, secrets.token_hex(6))
    body = credentials.serialize() | {"port": settings.turn_port, "realm": settings.turn_realm}
    return web.json_response(body)


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def readyz(request: web.Request) -> web.Response:
    if request.app[CALL].draining:
        return web.Response(status=503, text="draining\n")
    return web.Response(text="ready\n")


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[REGISTRY])
    response = web.Response(body=body)
    response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    return response


def init_app(settings: Settings, call: Call | None = None) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[_control_middleware])
    call = call or Call(settings.max_participants, settings.media_timeout_seconds)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SfuCollector(call))
    results = dict.fromkeys(("ok", "rejected", "unauthorized"), 0)
    registry.register(ControlCollector(results))
    app[SETTINGS] = settings
    app[CALL] = call
    app[REGISTRY] = registry
    app[JOIN_LOCK] = asyncio.Lock()
    app[CONTROL_RESULTS] = results
    app.router.add_post(PREFIX + "participants", add_participant)
    app.router.add_get(PREFIX + "participants", list_participants)
    app.router.add_delete(PREFIX + "participants/{participant_id}", remove_participant)
    app.router.add_post(PREFIX + "participants/{participant_id}/candidates", add_candidate)
    app.router.add_get(PREFIX + "events", events)
    app.router.add_post(PREFIX + "turn-credentials", turn_credentials)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.cleanup_ctx.append(_call_ctx)
    return app


async def _call_ctx(app: web.Application) -> AsyncIterator[None]:
    call = app[CALL]
    call.start()
    yield
    await call.stop()
