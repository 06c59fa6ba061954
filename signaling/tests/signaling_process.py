"""Signaling as a real process, and a person's WebSocket as the tests drive it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
from sprechzimmer.devcluster.cluster import free_ports


class SignalingProcess:
    def __init__(
        self,
        kubeconfig: Path,
        log: Path,
        name: str,
        namespace: str,
        key: str,
        settings: dict[str, str],
    ) -> None:
        self.kubeconfig, self.log_path, self.name = kubeconfig, log, name
        self.namespace, self.key, self.settings = namespace, key, settings
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> SignalingProcess:
        self.port = self.port or free_ports(1)[0]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SPRECHZIMMER_SIGNALING_")}
        env.update(
            {
                "KUBECONFIG": str(self.kubeconfig),
                "SPRECHZIMMER_SIGNALING_SHARED_KEY": self.key,
                "SPRECHZIMMER_SIGNALING_HOST": "127.0.0.1",
                "SPRECHZIMMER_SIGNALING_PORT": str(self.port),
                "SPRECHZIMMER_SIGNALING_PUBLIC_URL": self.url,
                "SPRECHZIMMER_SIGNALING_REPLICA_NAME": self.name,
                "SPRECHZIMMER_SIGNALING_PRESENCE_NAMESPACE": self.namespace,
                "SPRECHZIMMER_SIGNALING_LOG_LEVEL": "DEBUG",
                "SPRECHZIMMER_SIGNALING_INTERNAL_ADDRESS": f"127.0.0.1:{self.port}",
            }
        )
        env.update({f"SPRECHZIMMER_SIGNALING_{k.upper()}": v for k, v in self.settings.items()})
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sprechzimmer.signaling"], env=env, stdout=log, stderr=log
        )
        log.close()
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"signaling did not become ready:\n{self.log()[-3000:]}")
            time.sleep(0.1)
        return self

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/readyz", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def metric(self, name: str, **labels: str) -> float:
        with urllib.request.urlopen(self.url + "/metrics", timeout=5) as response:
            text = response.read().decode()
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in text.splitlines():
            series, _, value = line.rpartition(" ")
            base, _, rest = series.partition("{")
            if base == name and ",".join(sorted(rest.rstrip("}").split(","))) == want:
                return float(value)
        raise KeyError(f"{name}{{{want}}}")

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return None if self.proc is None else self.proc.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Person:
    """One browser's signaling socket, as the protocol says a browser uses it."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http, self.url = http, url
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.welcome: dict[str, Any] = {}
        self.inbox: list[dict[str, Any]] = []
        self.close_code: int | None = None

    async def connect(self, origin: str | None = None, address: str | None = None) -> Person:
        """Open /ws; ``address`` poses as that client behind a trusted proxy (X-Forwarded-For,
        honoured only by a server started with FORWARDED_HOPS=1)."""
        headers = {"X-Forwarded-For": address} if address else None
        self.ws = await self.http.ws_connect(
            self.url.replace("http", "ws", 1) + "/ws",
            origin=origin or self.url,
            max_msg_size=0,
            headers=headers,
        )
        return self

    async def send(self, **message: Any) -> None:
        assert self.ws is not None
        await self.ws.send_str(json.dumps({"v": 1, **message}))

    async def send_raw(self, text: str) -> None:
        assert self.ws is not None
        await self.ws.send_str(text)

    async def hello(self, auth: dict[str, str], **extra: Any) -> dict[str, Any]:
        await self.send(type="hello", auth=auth, **extra)
        first = await self.receive()
        if first.get("type") == "welcome":
            self.welcome = first
        return first

    async def receive(self, within: float = 20.0) -> dict[str, Any]:
        """The next message; a closed socket yields {"type": "closed", "code": ...}."""
        assert self.ws is not None
        message = await self.ws.receive(timeout=within)
        if message.type is aiohttp.WSMsgType.TEXT:
            return dict(json.loads(message.data))
        self.close_code = self.ws.close_code
        return {"type": "closed", "code": self.ws.close_code}

    async def expect(self, kind: str, within: float = 30.0, **fields: Any) -> dict[str, Any]:
        """Skip other messages until one of ``kind`` (with ``fields``) arrives."""
        deadline = asyncio.get_running_loop().time() + within
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise AssertionError(f"no {kind} {fields} within {within}s; saw {self.inbox[-5:]}")
            message = await self.receive(left)
            self.inbox.append(message)
            if message["type"] == kind and all(message.get(k) == v for k, v in fields.items()):
                return message
            if message["type"] == "closed" and kind != "closed":
                raise AssertionError(f"closed ({message['code']}) while waiting for {kind}")

    async def expect_or_seen(self, kind: str, within: float = 30.0, **fields: Any) -> None:
        """Like ``expect``, but content with a matching message skipped over earlier."""
        if not any(
            m["type"] == kind and all(m.get(k) == v for k, v in fields.items()) for m in self.inbox
        ):
            await self.expect(kind, within, **fields)

    async def closed(self, within: float = 30.0) -> int | None:
        await self.expect("closed", within)
        return self.close_code

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
