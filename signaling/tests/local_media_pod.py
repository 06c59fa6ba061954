"""A group session's media pod as local processes, for tests where its pod sits on a KWOK node.

KWOK pods run nothing, so the SFU and the pod's coturn run as processes on loopback
(``media-pod/tests/support.py``) with the per-session control token and TURN secret derived from
the shared key, and signaling reaches them through its dev/test-only MEDIA_OVERRIDE setting.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import support  # operator/tests/support.py, put on the path by conftest.py
from browser import chromium
from lightkube import Client
from playwright.async_api import Browser
from sprechzimmer.contract.keys import control_token, turn_secret
from tests import support as media  # media-pod/tests/support.py


@dataclass(frozen=True)
class LocalMediaPod:
    sfu: media.Sfu
    turn: media.Turn
    override: str  # signaling's MEDIA_OVERRIDE setting: the session -> these processes


@asynccontextmanager
async def local_media_pod(
    kube: Client, namespace: str, name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> AsyncIterator[LocalMediaPod]:
    """Wait until the session is Ready and run its SFU + coturn as local processes."""
    uid = support.get_session(kube, namespace, name)["metadata"]["uid"]  # type: ignore[index]
    support.wait_for("Ready", support.phase_is(kube, namespace, name, "Ready"), 60)
    key = support.SHARED_KEY.encode()
    monkeypatch.setattr(media, "TOKEN", control_token(key, uid))
    monkeypatch.setattr(media, "TURN_SECRET", turn_secret(key, uid))
    async with (
        media.running_turn(tmp_path) as turn,
        media.running_sfu(tmp_path, turn.port) as sfu,
    ):
        override = {
            f"{namespace}/{name}": {
                "control": sfu.url.removeprefix("http://"),
                "turn": f"127.0.0.1:{turn.port}",
            }
        }
        yield LocalMediaPod(sfu=sfu, turn=turn, override=json.dumps(override))


@dataclass(frozen=True)
class GroupCall:
    pod: LocalMediaPod
    signaling: Any  # signaling_process.SignalingProcess
    invite: dict[str, str]  # the codes Secret: links and codes
    browser: Browser


@asynccontextmanager
async def group_call(
    kube: Client,
    namespace: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    start_signaling: Callable[..., Any],
    clients: int = 2,
) -> AsyncIterator[GroupCall]:
    """A group session "gruppe" with its local media pod, signaling reaching it, its
    invitation and one Chromium (the operator and the media node must be running)."""
    from test_browser_call import invitation  # a test module: imported when used

    support.create_session(kube, namespace, "gruppe", clients=clients)
    async with (
        local_media_pod(kube, namespace, "gruppe", monkeypatch, tmp_path) as pod,
        chromium() as browser,
    ):
        signaling = start_signaling(media_override=pod.override)
        yield GroupCall(pod, signaling, invitation(kube, namespace, "gruppe", signaling), browser)
