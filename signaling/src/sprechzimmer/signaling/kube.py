"""Signaling's only door to the Kubernetes API: plain REST over aiohttp.

Three things, nothing else (RBAC in docs/signaling.md): list + watch VideoSessions cluster-wide
(``SessionWatch`` feeds the in-memory ``SessionIndex``), merge-patch ``status.presence`` through
the status subresource, and create/renew this replica's presence Lease (and list the others,
for ownership). Credentials: the in-cluster service account, else ``$KUBECONFIG`` (or
``~/.kube/config``) with embedded or file certificates or a bearer token.

The operator has its own REST adapter built on Kopf's login helpers; signaling does not depend
on Kopf or the operator, so this is the minimal equivalent for the few requests it makes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import random
import ssl
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import aiohttp
import yaml
from sprechzimmer.contract import (
    API_VERSION,
    LABEL_PRESENCE_LEASE,
    PLURAL,
    PRESENCE_LEASE_VALUE,
)

from .core.owner import ADDRESS_ANNOTATION
from .core.sessions import SessionIndex, SessionView

logger = logging.getLogger(__name__)

FIELD_MANAGER: Final = "sprechzimmer-signaling"
MERGE_PATCH: Final = "application/merge-patch+json"
SERVICE_ACCOUNT: Final = Path("/var/run/secrets/kubernetes.io/serviceaccount")
LIST_CHUNK: Final = 500
WATCH_SECONDS: Final = 290
LEASES_PATH: Final = "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases"
SESSIONS_PATH: Final = f"/apis/{API_VERSION}/{PLURAL}"

# Every API access of signaling, as (API group, resource) → verbs; docs/signaling.md's RBAC.
API_ACCESS: Final[dict[tuple[str, str], frozenset[str]]] = {
    ("sprechzimmer.io", PLURAL): frozenset({"list", "watch"}),
    ("sprechzimmer.io", f"{PLURAL}/status"): frozenset({"patch"}),
    ("coordination.k8s.io", "leases"): frozenset({"list", "create", "patch"}),
    # The practice logo: one ConfigMap by the name spec.logo.configMapName gives (logo.py).
    ("", "configmaps"): frozenset({"get"}),
}


class KubeError(Exception):
    """An API request failed; ``status`` is the HTTP status (0 for network errors)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


@dataclass(frozen=True)
class Credentials:
    server: str
    ssl: ssl.SSLContext | bool
    headers: Mapping[str, str]


def _material(entry: Mapping[str, Any], key: str, base: Path) -> bytes | None:
    """``<key>-data`` (base64) or ``<key>`` (a path relative to the kubeconfig)."""
    if entry.get(f"{key}-data"):
        return base64.b64decode(entry[f"{key}-data"])
    if entry.get(key):
        return (base / str(entry[key])).read_bytes()
    return None


def load_credentials(env: Mapping[str, str]) -> Credentials:
    """The in-cluster service account, else $KUBECONFIG / ~/.kube/config. Blocking: call at
    start, before serving."""
    if env.get("KUBERNETES_SERVICE_HOST") and (SERVICE_ACCOUNT / "token").exists():
        context = ssl.create_default_context(cafile=str(SERVICE_ACCOUNT / "ca.crt"))
        token = (SERVICE_ACCOUNT / "token").read_text().strip()
        host, port = env["KUBERNETES_SERVICE_HOST"], env.get("KUBERNETES_SERVICE_PORT", "443")
        server = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
        return Credentials(server, context, {"Authorization": f"Bearer {token}"})
    path = Path(env.get("KUBECONFIG", "").split(os.pathsep)[0] or Path.home() / ".kube/config")
    if not path.exists():
        raise RuntimeError("no Kubernetes credentials: no service account and no kubeconfig")
    config = yaml.safe_load(path.read_text()) or {}
    wanted = config.get("current-context")
    context_entry = next(
        (c["context"] for c in config.get("contexts") or [] if c.get("name") == wanted),
        (config.get("contexts") or [{}])[0].get("context", {}),
    )

    def named(kind: str, name: str | None) -> dict[str, Any]:
        for item in config.get(f"{kind}s") or []:
            if item.get("name") == name:
                return dict(item.get(kind) or {})
        return {}

    cluster = named("cluster", context_entry.get("cluster"))
    user = named("user", context_entry.get("user"))
    base = path.parent
    server = str(cluster["server"]).rstrip("/")
    headers: dict[str, str] = {}
    tls: ssl.SSLContext | bool = True
    if server.startswith("https"):
        tls = ssl.create_default_context()
        if cluster.get("insecure-skip-tls-verify"):
            tls.check_hostname = False
            tls.verify_mode = ssl.CERT_NONE
        ca = _material(cluster, "certificate-authority", base)
        if ca:
            tls.load_verify_locations(cadata=ca.decode())
        cert = _material(user, "client-certificate", base)
        key = _material(user, "client-key", base)
        if cert and key:
            _load_chain(tls, cert, key)
    bearer: str | None = user.get("token")
    if not bearer and user.get("tokenFile"):
        bearer = (base / str(user["tokenFile"])).read_text().strip()
    if bearer:
        headers["Authorization"] = f"Bearer {bearer}"
    return Credentials(server, tls, headers)


def _load_chain(context: ssl.SSLContext, cert: bytes, key: bytes) -> None:
    """ssl wants files: write both to a private temporary directory, load, delete."""
    with tempfile.TemporaryDirectory(prefix="sprechzimmer-signaling-") as directory:
        cert_path, key_path = Path(directory, "cert.pem"), Path(directory, "key.pem")
        cert_path.write_bytes(cert)
        key_path.touch(mode=0o600)
        key_path.write_bytes(key)
        context.load_cert_chain(str(cert_path), str(key_path))


class Kube:
    """The few Kubernetes verbs signaling needs. Bodies in and out are plain dicts."""

    def __init__(self, credentials: Credentials) -> None:
        self._server = credentials.server
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=32, ssl=credentials.ssl),
            headers={**credentials.headers, "Accept": "application/json"},
            timeout=aiohttp.ClientTimeout(total=None, connect=5.0, sock_read=WATCH_SECONDS + 30),
        )

    async def close(self) -> None:
        await self._session.close()

    async def request(
        self,
        method: str,
        path: str,
        body: object = None,
        query: Mapping[str, str] | None = None,
        media_type: str = "application/json",
    ) -> dict[str, Any]:
        """One request; the decoded JSON answer, or KubeError (status 0: network or an
        undecodable answer)."""
        payload = None if body is None else json.dumps(body).encode()
        limit = aiohttp.ClientTimeout(total=30.0, connect=5.0)
        try:
            async with self._session.request(
                method,
                self._server + path,
                data=payload,
                params=query,
                timeout=limit,
                headers={"Content-Type": media_type},
            ) as response:
                answer = (
                    await response.json(content_type=None) if response.content_length != 0 else {}
                )
                if response.status < 400:
                    return answer if isinstance(answer, dict) else {}
                reason = answer.get("message", "") if isinstance(answer, dict) else ""
                raise KubeError(response.status, str(reason)[:200])
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as err:
            raise KubeError(0, f"{type(err).__name__}") from err

    # --- sessions ---------------------------------------------------------------------------
    async def list_sessions(self) -> tuple[list[dict[str, Any]], str]:
        """Every VideoSession (in pages) and the list's resourceVersion."""
        items: list[dict[str, Any]] = []
        params = {"limit": str(LIST_CHUNK)}
        while True:
            page = await self.request("GET", SESSIONS_PATH, query=params)
            items.extend(page.get("items") or [])
            meta = page.get("metadata") or {}
            if not meta.get("continue"):
                return items, str(meta.get("resourceVersion") or "")
            params = {**params, "continue": meta["continue"]}

    async def watch_sessions(self, version: str) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """(type, object) watch events from ``version`` until the server ends the stream."""
        params = {
            "watch": "true",
            "resourceVersion": version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(WATCH_SECONDS),
        }
        try:
            async with self._session.get(self._server + SESSIONS_PATH, params=params) as response:
                if response.status >= 400:
                    raise KubeError(response.status, (await response.text())[:200])
                buffer = b""
                async for chunk in response.content.iter_any():
                    buffer += chunk
                    while b"\n" in buffer:
                        line, buffer = buffer.split(b"\n", 1)
                        if line.strip():
                            event = json.loads(line)
                            yield str(event.get("type")), dict(event.get("object") or {})
        except (TimeoutError, aiohttp.ClientError, OSError) as err:
            raise KubeError(0, f"watch: {type(err).__name__}") from err

    async def patch_session_status(
        self, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> dict[str, Any]:
        ns, obj = quote(namespace, safe=""), quote(name, safe="")
        return await self.merge(f"/apis/{API_VERSION}/namespaces/{ns}/{PLURAL}/{obj}/status", patch)

    async def merge(self, path: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        """A JSON merge patch under signaling's field manager."""
        manager = {"fieldManager": FIELD_MANAGER}
        return await self.request("PATCH", path, patch, query=manager, media_type=MERGE_PATCH)

    async def get_config_map(self, namespace: str, name: str) -> dict[str, Any]:
        ns, obj = quote(namespace, safe=""), quote(name, safe="")
        return await self.request("GET", f"/api/v1/namespaces/{ns}/configmaps/{obj}")

    # --- presence Leases ---------------------------------------------------------------------
    async def renew_lease(
        self, namespace: str, name: str, seconds: int, address: str | None, now: datetime
    ) -> None:
        """Create this replica's Lease, or move its renewTime to ``now``."""
        renew = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        annotations = {ADDRESS_ANNOTATION: address} if address else {}
        base = LEASES_PATH.format(ns=quote(namespace, safe=""))
        spec = {"holderIdentity": name, "leaseDurationSeconds": seconds, "renewTime": renew}
        try:
            patch = {"metadata": {"annotations": annotations}, "spec": spec}
            await self.merge(f"{base}/{quote(name, safe='')}", patch)
            return
        except KubeError as err:
            if err.status != 404:
                raise
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {LABEL_PRESENCE_LEASE: PRESENCE_LEASE_VALUE},
                "annotations": annotations,
            },
            "spec": {**spec, "acquireTime": renew},
        }
        with contextlib.suppress(KubeError):  # a concurrent create: the next renewal patches
            await self.request("POST", base, body, query={"fieldManager": FIELD_MANAGER})

    async def list_leases(self, namespace: str) -> list[dict[str, Any]]:
        page = await self.request(
            "GET",
            LEASES_PATH.format(ns=quote(namespace, safe="")),
            query={"labelSelector": f"{LABEL_PRESENCE_LEASE}={PRESENCE_LEASE_VALUE}"},
        )
        return list(page.get("items") or [])


Changed = Callable[[SessionView, SessionView | None], None]


class SessionWatch:
    """List, then watch, VideoSessions into ``index``; relist on 410 Gone or errors.

    ``changed(view, previous)`` is called for every change (``view.gone`` for deletions), on
    the event loop, after the index is updated.
    """

    def __init__(self, kube: Kube, index: SessionIndex, changed: Changed) -> None:
        self._kube = kube
        self._index = index
        self._changed = changed
        self.synced = asyncio.Event()
        self.events = 0

    def _apply(self, kind: str, obj: Mapping[str, Any]) -> None:
        try:
            view = SessionView.from_body(obj)
        except ValueError:
            return
        now = datetime.now(UTC)
        if kind == "DELETED":
            previous = self._index.delete(view, now)
            if previous is not None:
                gone = self._index.get(view.key)
                if gone is not None:
                    self._changed(gone, previous)
        else:
            previous = self._index.upsert(view)
            self._changed(view, previous)

    async def run(self) -> None:
        backoff = 0.5
        while True:
            try:
                items, version = await self._kube.list_sessions()
                views = []
                for item in items:
                    with contextlib.suppress(ValueError):
                        views.append(SessionView.from_body(item))
                now = datetime.now(UTC)
                for removed in self._index.replace_all(views, now):
                    gone = self._index.get(removed.key)
                    if gone is not None:
                        self._changed(gone, removed)
                for view in views:
                    self._changed(view, None)
                self.synced.set()
                backoff = 0.5
                while True:
                    async for kind, obj in self._kube.watch_sessions(version):
                        self.events += 1
                        meta = obj.get("metadata") or {}
                        if kind == "ERROR":
                            raise KubeError(int(obj.get("code") or 0), "watch expired")
                        version = str(meta.get("resourceVersion") or version)
                        if kind != "BOOKMARK":
                            self._apply(kind, obj)
            except asyncio.CancelledError:
                raise
            except Exception as err:
                level = (
                    logging.INFO
                    if isinstance(err, KubeError) and err.status == 410
                    else (logging.WARNING)
                )
                logger.log(level, "session watch restarts", extra={"error": str(err)[:200]})
                await asyncio.sleep(backoff + random.random() * backoff)  # noqa: S311
                backoff = min(backoff * 2, 10.0)
