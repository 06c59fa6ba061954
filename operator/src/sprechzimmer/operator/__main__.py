"""``sprechzimmer-operator``: run the operator against $KUBECONFIG or the in-cluster account.

Serves /metrics, /healthz and /readyz on ``http_port`` (default 8080), logs JSON to stderr,
and stops gracefully on SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kopf
import yaml
from aiohttp import web
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource
from sprechzimmer.contract import logs
from sprechzimmer.operator import handlers
from sprechzimmer.operator.adapters.kube import LIST_CHUNK, Kube
from sprechzimmer.operator.adapters.metrics import Metrics, http_app
from sprechzimmer.operator.core import leadership
from sprechzimmer.operator.core.settings import OperatorSettings
from sprechzimmer.operator.reconciler import Reconciler

logger = logging.getLogger("sprechzimmer.operator")
CONFIG_FILE_ENV = "SPRECHZIMMER_OPERATOR_CONFIG_FILE"
# Kopf's per-object INFO lines at 200 sessions/s are noise; keep its warnings.
QUIET_LOGGERS = ("kopf", "httpx2")


class _FileThenEnv(OperatorSettings):
    """Environment variables win over the YAML file."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (env_settings, init_settings)


def load_settings() -> OperatorSettings:
    path = os.environ.get(CONFIG_FILE_ENV)
    values: dict[str, Any] = {}
    if path:
        values = yaml.safe_load(Path(path).read_text()) or {}
    return _FileThenEnv(**values)


class _NoDiffBase(kopf.AnnotationsDiffBaseStorage):
    """Kopf builds a diff base (a deep copy of the object) on every watch event for its change
    handlers; with raw event handlers only, nothing ever compares them, so build none."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()


def kopf_settings(settings: OperatorSettings, priority: int) -> kopf.OperatorSettings:
    ks = kopf.OperatorSettings()
    ks.persistence.diffbase_storage = _NoDiffBase()
    ks.posting.enabled = False  # we post our own, readable events
    ks.peering.name = settings.peering_name
    ks.peering.priority = priority
    ks.peering.lifetime = settings.peering_lifetime
    ks.peering.clusterwide = True
    ks.peering.standalone = settings.standalone
    ks.peering.stealth = True
    ks.watching.server_timeout = 300
    ks.watching.client_timeout = 330
    ks.watching.connect_timeout = 5
    # List in pages: without a limit the first list of 10 000 sessions is one response, decoded
    # whole and held until the last object is processed (~30 KB each: 300+ MB at takeover).
    ks.watching.chunk_size = LIST_CHUNK
    ks.networking.request_timeout = 30
    ks.networking.connect_timeout = 5
    # Resources are known at start (CRDs are installed first); no CRD watch, no extra RBAC.
    ks.scanning.disabled = True
    return ks


async def run(settings: OperatorSettings) -> None:
    started = datetime.now(UTC)
    identity = os.environ.get("POD_NAME") or f"{socket.gethostname()}/{os.getpid()}"
    priority = leadership.priority_for(started, random.randrange(100))  # noqa: S311 - a tiebreak
    metrics = Metrics()
    kube = Kube.from_env()
    reconciler = Reconciler(kube, settings, metrics, identity=identity, priority=priority)
    registry = kopf.OperatorRegistry()
    handlers.register(registry, reconciler, metrics)

    runner = web.AppRunner(
        http_app(metrics, reconciler.healthy, lambda: reconciler.seeded or not reconciler.active)
    )
    await runner.setup()
    site = web.TCPSite(runner, "0.0.0.0", settings.http_port)  # noqa: S104 - probes and scrapes
    await site.start()
    logger.info("serving metrics", extra={"port": settings.http_port, "identity": identity})
    reconciler.start()
    try:
        await kopf.operator(
            registry=registry,
            settings=kopf_settings(settings, priority),
            clusterwide=True,
            identity=kopf.Identity(identity) if hasattr(kopf, "Identity") else identity,  # type: ignore[arg-type]
            priority=priority,
            peering_name=None if settings.standalone else settings.peering_name,
            standalone=settings.standalone,
        )
    finally:
        await reconciler.stop()
        await runner.cleanup()
        await kube.close()


def main() -> None:
    settings = load_settings()
    logs.configure(settings.log_level, quiet=QUIET_LOGGERS)
    asyncio.run(run(settings))


if __name__ == "__main__":
    main()
