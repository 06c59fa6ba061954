"""``GET /logo/<id>``: the practice logo of a session, read from its ConfigMap and cached.

What is acceptable and how it is addressed is decided in ``core/logo.py``; this shell finds the
session of an id among the indexed sessions that have a logo, reads the ConfigMap (``get`` on
exactly the name the session gives, in its namespace), and keeps the answer — the logo or its
absence — for ``CACHE_SECONDS`` in a bounded cache, so a call's page loads cost one API read
per replica and minute at most. Unknown ids, sessions without a usable logo: 404, the same
answer for both.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from typing import Final

from aiohttp import web

from .core.logo import Logo, LogoProblem, logo_from_config_map, logo_id
from .core.sessions import SessionIndex
from .kube import Kube, KubeError

logger = logging.getLogger(__name__)

CACHE_SECONDS: Final = 60.0
CACHE_ENTRIES: Final = 128  # times MAX_LOGO_BYTES at most: 32 MiB
RESCAN_SECONDS: Final = 1.0  # an unknown id rebuilds the id map at most this often


class LogoStore:
    def __init__(self, kube: Kube, index: SessionIndex, shared_key: bytes) -> None:
        self._kube = kube
        self._index = index
        self._key = shared_key
        self._ids: dict[str, tuple[str, str]] = {}  # logo id → (namespace, ConfigMap name)
        self._scanned = -RESCAN_SECONDS
        self._cache: OrderedDict[tuple[str, str], tuple[float, Logo | None]] = OrderedDict()

    def _source(self, ident: str) -> tuple[str, str] | None:
        """The ConfigMap of the session whose logo id is ``ident``; the map is rebuilt from the
        index (sessions with a logo only) when an id is not in it, at most once a second."""
        now = time.monotonic()
        if ident not in self._ids and now - self._scanned >= RESCAN_SECONDS:
            self._scanned = now
            self._ids = {
                logo_id(self._key, view.uid): (view.namespace, view.logo_config_map)
                for view in self._index
                if view.logo_config_map
            }
        return self._ids.get(ident)

    async def get(self, ident: str) -> Logo | None:
        source = self._source(ident)
        if source is None:
            return None
        now = time.monotonic()
        cached = self._cache.get(source)
        if cached is not None and cached[0] > now:
            self._cache.move_to_end(source)
            return cached[1]
        logo = await self._read(*source)
        self._cache[source] = (now + CACHE_SECONDS, logo)
        self._cache.move_to_end(source)
        while len(self._cache) > CACHE_ENTRIES:
            self._cache.popitem(last=False)
        return logo

    async def _read(self, namespace: str, name: str) -> Logo | None:
        try:
            return logo_from_config_map(await self._kube.get_config_map(namespace, name))
        except LogoProblem as problem:
            logger.warning(
                "practice logo not usable", extra={"namespace": namespace, "why": str(problem)}
            )
        except KubeError as err:
            logger.warning(
                "practice logo not read", extra={"namespace": namespace, "status": err.status}
            )
        return None


LOGOS = web.AppKey("logos", LogoStore)


async def serve(request: web.Request) -> web.StreamResponse:
    store = request.app.get(LOGOS)
    logo = None if store is None else await store.get(request.match_info["id"])
    if logo is None:
        raise web.HTTPNotFound()
    return web.Response(body=logo.body, headers=logo.headers())
