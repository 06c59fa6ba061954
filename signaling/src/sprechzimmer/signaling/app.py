"""``init_app()``: the signaling application — WebSocket, pages, health, metrics, background work.

Background tasks live in ``cleanup_ctx``: the session watch, the presence Lease renewal, the
once-a-second expiry tick. On shutdown every socket is closed with 1001 GOING_AWAY first.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from aiohttp import web
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from . import connectiontest, logo, proxy, ws
from .appkeys import HUB, METRICS, SETTINGS
from .calls import Hub
from .core.logo import LOGO_PATH
from .core.owner import INTERNAL_PATH, Replica
from .core.settings import LEASE_SECONDS, RENEW_SECONDS, Settings
from .kube import Kube, KubeError, SessionWatch, load_credentials
from .metrics import Metrics

logger = logging.getLogger("sprechzimmer.signaling")
WATCH = web.AppKey("watch", SessionWatch)
LEASE_OK = web.AppKey("lease_ok", asyncio.Event)


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def readyz(request: web.Request) -> web.Response:
    """Ready once the session index is complete and this replica's Lease exists."""
    watch = request.app.get(WATCH)
    lease = request.app.get(LEASE_OK)
    if watch is None or not watch.synced.is_set() or lease is None or not lease.is_set():
        return web.Response(status=503, text="starting\n")
    return web.Response(text="ready\n")


async def metrics(request: web.Request) -> web.Response:
    response = web.Response(body=generate_latest(request.app[METRICS].registry))
    response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    return response


def init_app(settings: Settings, metrics_: Metrics | None = None) -> web.Application:
    app = web.Application()
    app[SETTINGS] = settings
    app[METRICS] = metrics_ or Metrics()
    app.router.add_get("/ws", ws.websocket)
    connectiontest.setup_routes(app)
    app.router.add_get(INTERNAL_PATH, proxy.internal)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get(f"{LOGO_PATH}{{id}}", logo.serve)
    with contextlib.suppress(ImportError):
        pages = importlib.import_module("sprechzimmer.signaling.pages")
        pages.setup_routes(app)
        # CSP and the other security headers on every response (it was never installed here)
        app.middlewares.append(pages.security_headers(settings.public_url))
    app.cleanup_ctx.append(_hub_ctx)
    app.on_shutdown.append(_going_away)
    return app


async def _going_away(app: web.Application) -> None:
    await app[HUB].going_away()


async def _hub_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    loop = asyncio.get_running_loop()
    credentials = await loop.run_in_executor(None, load_credentials, dict(os.environ))
    kube = Kube(credentials)
    hub = Hub(settings, app[METRICS], kube)
    await hub.start()
    app[HUB] = hub
    app[logo.LOGOS] = logo.LogoStore(kube, hub.index, settings.shared_key)
    watch = SessionWatch(kube, hub.index, hub.session_changed)
    app[WATCH] = watch
    lease_ok = asyncio.Event()
    app[LEASE_OK] = lease_ok
    tasks = [
        hub.spawn(watch.run()),
        hub.spawn(_renew_lease(hub, kube, settings, lease_ok)),
        hub.spawn(_ticks(hub)),
    ]
    logger.info("signaling started", extra={"replica": settings.replica_name})
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await hub.stop()
        await kube.close()


async def _renew_lease(hub: Hub, kube: Kube, settings: Settings, ok: asyncio.Event) -> None:
    while True:
        try:
            await kube.renew_lease(
                settings.presence_namespace,
                settings.replica_name,
                LEASE_SECONDS,
                settings.internal_address,
                datetime.now(UTC),
            )
            leases = await kube.list_leases(settings.presence_namespace)
            hub.replicas = [r for r in map(Replica.from_lease, leases) if r is not None]
            hub.metrics.replicas.set(len(hub.replicas))
            ok.set()
        except KubeError as err:
            logger.warning("presence lease not renewed", extra={"error": str(err)[:200]})
        await asyncio.sleep(RENEW_SECONDS)


async def _ticks(hub: Hub) -> None:
    count = 0
    while True:
        await asyncio.sleep(1.0)
        count += 1
        try:
            await hub.tick()
            if count % 600 == 0:
                hub.sweep()
        except Exception:
            logger.exception("tick failed")
