"""Every ``web.AppKey`` of the signaling application, declared in one place."""

from __future__ import annotations

from aiohttp import web

from .calls import Hub
from .core.connectiontest import TestCredentials
from .core.settings import Settings
from .metrics import Metrics

SETTINGS = web.AppKey("settings", Settings)
HUB = web.AppKey("hub", Hub)
METRICS = web.AppKey("metrics", Metrics)
TEST_CREDENTIALS = web.AppKey("test_credentials", TestCredentials)
