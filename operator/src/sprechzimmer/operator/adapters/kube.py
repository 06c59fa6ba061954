"""The only module that talks to the Kubernetes API (besides Kopf's own watch streams).

Thin, idempotent verbs over plain REST with aiohttp: creating something that exists returns the
existing object, deleting something gone is a no-op. Bodies in and out are plain dicts.
Errors are split into retryable (``Retry``: conflicts, throttling, server errors, network) and
permanent (``Permanent``: the request itself is wrong); they belong to the ``ports.KubeAPI``
contract this class implements.

Why not a client library: the operator makes a handful of kinds of request, and at hundreds of
session starts per second the client's own CPU matters. A profile under the benchmark put
about 40 % of the operator's CPU in lightkube + httpx (request building, the pure-Python HTTP/1.1
and TLS stream layers, model decoding); aiohttp (already Kopf's client) with dicts in and out
costs a fraction of that. Credentials come from Kopf's own login helpers, so the operator and its
watch streams authenticate the same way.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote

import aiohttp
import kopf
from sprechzimmer.contract import (
    GROUP,
    KIND,
    LABEL_COMPONENT,
    LABEL_MANAGED_BY,
    LABEL_PRESENCE_LEASE,
    MANAGED_BY,
    PLURAL,
    PRESENCE_LEASE_VALUE,
    USAGE_RECORD_KIND,
    USAGE_RECORD_PLURAL,
    VERSION,
    Component,
)
from sprechzimmer.operator.ports import Conflict, Gone, Permanent, Retry

__all__ = ["API_ACCESS", "OWN_NAMESPACE_ACCESS", "Conflict", "Gone", "Kube", "Permanent", "Retry"]

API_VERSION = f"{GROUP}/{VERSION}"
PEERING_API_VERSION = "kopf.dev/v1"
FIELD_MANAGER = MANAGED_BY
MEDIA_POD_SELECTOR = f"{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_COMPONENT}={Component.MEDIA.value}"
PRESENCE_LEASE_SELECTOR = f"{LABEL_PRESENCE_LEASE}={PRESENCE_LEASE_VALUE}"
LIST_CHUNK = 500
MERGE_PATCH = "application/merge-patch+json"

# The kinds the operator writes, by (apiVersion, kind): their plural (the REST path segment).
PLURALS: dict[tuple[str, str], str] = {
    ("v1", "Secret"): "secrets",
    ("v1", "Pod"): "pods",
    ("v1", "Event"): "events",
    (API_VERSION, KIND): PLURAL,
    (API_VERSION, USAGE_RECORD_KIND): USAGE_RECORD_PLURAL,
    (PEERING_API_VERSION, "ClusterKopfPeering"): "clusterkopfpeerings",
}

# Every API access of the operator process — this module and Kopf (watches, peering) — as
# (API group, resource) → verbs. operator/deploy/rbac.yaml grants exactly this, no more
# (operator/tests/test_rbac_cluster.py compares both ways and runs the lifecycle under it):
# API_ACCESS cluster-wide (its ClusterRole), OWN_NAMESPACE_ACCESS only in ``usage_namespace``
# (its Role).
API_ACCESS: dict[tuple[str, str], frozenset[str]] = {
    # Kopf's watch (list + watch); labels, finalizer and note (patch); retention (delete).
    (GROUP, PLURAL): frozenset({"list", "watch", "patch", "delete"}),
    (GROUP, f"{PLURAL}/status"): frozenset({"patch"}),
    # Kopf's watch of media pods; create (get on AlreadyExists); delete.
    ("", "pods"): frozenset({"list", "watch", "create", "get", "delete"}),
    # codes and media Secrets: create (get on AlreadyExists: a retry reuses the codes); delete.
    ("", "secrets"): frozenset({"create", "get", "delete"}),
    ("", "nodes"): frozenset({"list", "watch"}),
    ("", "events"): frozenset({"create"}),
    ("coordination.k8s.io", "leases"): frozenset({"list", "watch"}),
    # Kopf: watch + keep-alive patches; ours: get (leadership poll), create (if missing).
    ("kopf.dev", "clusterkopfpeerings"): frozenset({"list", "watch", "get", "patch", "create"}),
}
OWN_NAMESPACE_ACCESS: dict[tuple[str, str], frozenset[str]] = {
    # create once; get when a retry finds it (AlreadyExists); list + delete: retention sweep.
    (GROUP, USAGE_RECORD_PLURAL): frozenset({"create", "get", "list", "delete"}),
}


def classify(code: int, message: str) -> Exception:
    """The exception for an API error status."""
    if code == 404:
        return Gone(message)
    if code == 409:
        return Conflict(message)
    if code == 429 or code >= 500:
        return Retry(f"{code}: {message}")
    return Permanent(f"{code}: {message}")


def _plural(body: Mapping[str, Any]) -> str:
    return PLURALS[(body["apiVersion"], body["kind"])]


def collection_path(api_version: str, plural: str, namespace: str | None) -> str:
    """``/api/v1/namespaces/ns/pods``, ``/apis/group/version/plural``, ..."""
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    if namespace:
        return f"{base}/namespaces/{quote(namespace, safe='')}/{plural}"
    return f"{base}/{plural}"


def object_path(api_version: str, plural: str, namespace: str | None, name: str) -> str:
    return f"{collection_path(api_version, plural, namespace)}/{quote(name, safe='')}"


def in_cluster_server(env: Mapping[str, str]) -> str | None:
    """The API server as every in-cluster client finds it: ``KUBERNETES_SERVICE_HOST``/``_PORT``
    (an IP, set by the kubelet), not the name ``kubernetes.default.svc``, which needs cluster
    DNS (the devcluster's real node has none)."""
    host = env.get("KUBERNETES_SERVICE_HOST")
    if not host:
        return None
    port = env.get("KUBERNETES_SERVICE_PORT", "443")
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


def login_with_service_account_or_kubeconfig(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """Kopf's own login helpers, with the service account's server taken from the environment
    (:func:`in_cluster_server`); Kopf's helper hard-codes ``https://kubernetes.default.svc``."""
    info = kopf.login_with_service_account(**kwargs)
    if info is not None:
        server = in_cluster_server(os.environ)
        return dataclasses.replace(info, server=server) if server else info
    return kopf.login_with_kubeconfig(**kwargs)


def login() -> kopf.ConnectionInfo:
    """The in-cluster service account, else $KUBECONFIG / ~/.kube/config (as Kopf logs in)."""
    info = login_with_service_account_or_kubeconfig(settings=kopf.OperatorSettings())
    if info is None:
        raise RuntimeError("no Kubernetes credentials: no service account and no kubeconfig")
    return info


class Kube:
    """The operator's Kubernetes verbs (implements ``ports.KubeAPI``)."""

    def __init__(self, session: aiohttp.ClientSession, server: str) -> None:
        self._session = session
        self._server = server.rstrip("/")

    @classmethod
    def from_env(cls) -> Kube:
        info = login()
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=64, ssl=info.as_ssl_context()),
            headers={**info.as_http_headers(), "Accept": "application/json"},
            timeout=aiohttp.ClientTimeout(total=30.0, connect=5.0),
        )
        return cls(session, info.server)

    async def close(self) -> None:
        await self._session.close()

    def _reauthenticate(self) -> None:
        """A rotated service-account token: read the credentials again (after a 401)."""
        self._session.headers.update(login().as_http_headers())

    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        data = None if body is None else json.dumps(body, separators=(",", ":"))
        headers = None if body is None else {"Content-Type": content_type}
        for attempt in (1, 2):
            try:
                async with self._session.request(
                    method, self._server + path, data=data, params=params, headers=headers
                ) as response:
                    text = await response.text()
                    status = response.status
            except (TimeoutError, aiohttp.ClientError, OSError) as err:
                raise Retry(f"network: {type(err).__name__}") from err
            if status == 401 and attempt == 1:
                self._reauthenticate()
                continue
            break
        try:
            decoded: dict[str, Any] = json.loads(text) if text else {}
        except ValueError:
            decoded = {"message": text[:200]}
        if status >= 400:
            raise classify(status, str(decoded.get("message") or decoded.get("reason") or ""))
        return decoded

    # --- create (idempotent) ------------------------------------------------------------------

    async def _post(self, body: Mapping[str, Any]) -> dict[str, Any]:
        path = collection_path(body["apiVersion"], _plural(body), body["metadata"].get("namespace"))
        return await self._request("POST", path, body=body, params={"fieldManager": FIELD_MANAGER})

    async def create(self, body: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        """Create ``body``; if it exists, return the existing object. (object, created).

        A 404 here means the namespace is missing (e.g. ``usage_namespace`` was never created):
        a configuration error, not a sign that the session is gone.
        """
        try:
            return await self._post(body), True
        except Conflict:
            pass
        except Gone as err:
            namespace = body["metadata"].get("namespace")
            raise Permanent(f"cannot create {body['kind']} in {namespace}: {err}") from err
        meta = body["metadata"]
        path = object_path(body["apiVersion"], _plural(body), meta.get("namespace"), meta["name"])
        return await self._request("GET", path), False

    async def post_event(self, body: Mapping[str, Any]) -> None:
        await self._post(body)

    # --- delete (idempotent) ------------------------------------------------------------------

    async def _delete(self, api_version: str, plural: str, namespace: str, name: str) -> None:
        with contextlib.suppress(Gone):
            await self._request("DELETE", object_path(api_version, plural, namespace, name))

    async def delete_pod(self, namespace: str, name: str) -> None:
        await self._delete("v1", "pods", namespace, name)

    async def delete_secret(self, namespace: str, name: str) -> None:
        await self._delete("v1", "secrets", namespace, name)

    async def delete_session(self, namespace: str, name: str) -> None:
        await self._delete(API_VERSION, PLURAL, namespace, name)

    async def delete_usage_record(self, namespace: str, name: str) -> None:
        await self._delete(API_VERSION, USAGE_RECORD_PLURAL, namespace, name)

    # --- sessions -----------------------------------------------------------------------------

    async def _patch(self, path: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        return await self._request(
            "PATCH",
            path,
            body=patch,
            params={"fieldManager": FIELD_MANAGER},
            content_type=MERGE_PATCH,
        )

    async def patch_session(
        self, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> dict[str, Any]:
        return await self._patch(object_path(API_VERSION, PLURAL, namespace, name), patch)

    async def patch_session_status(
        self, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> dict[str, Any]:
        path = object_path(API_VERSION, PLURAL, namespace, name) + "/status"
        return await self._patch(path, patch)

    # --- listing (startup seeding and sweeps) -------------------------------------------------

    async def _list(self, path: str, selector: str | None = None) -> AsyncIterator[dict[str, Any]]:
        """Every item of a collection, in chunks of ``LIST_CHUNK``."""
        params = {"limit": str(LIST_CHUNK)}
        if selector:
            params["labelSelector"] = selector
        while True:
            page = await self._request("GET", path, params=params)
            for item in page.get("items") or []:
                yield item
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return
            params = {**params, "continue": token}

    def list_media_pods(self) -> AsyncIterator[dict[str, Any]]:
        return self._list(collection_path("v1", "pods", None), MEDIA_POD_SELECTOR)

    def list_nodes(self) -> AsyncIterator[dict[str, Any]]:
        return self._list(collection_path("v1", "nodes", None))

    def list_presence_leases(self, namespace: str) -> AsyncIterator[dict[str, Any]]:
        path = collection_path("coordination.k8s.io/v1", "leases", namespace)
        return self._list(path, PRESENCE_LEASE_SELECTOR)

    def list_usage_records(self, namespace: str) -> AsyncIterator[dict[str, Any]]:
        return self._list(collection_path(API_VERSION, USAGE_RECORD_PLURAL, namespace))

    # --- peering ------------------------------------------------------------------------------

    async def peering_status(self, name: str) -> dict[str, Any] | None:
        path = object_path(PEERING_API_VERSION, "clusterkopfpeerings", None, name)
        try:
            obj = await self._request("GET", path)
        except Gone:
            return None
        return dict(obj.get("status") or {})

    async def ensure_peering(self, name: str) -> None:
        body = {
            "apiVersion": PEERING_API_VERSION,
            "kind": "ClusterKopfPeering",
            "metadata": {"name": name},
        }
        with contextlib.suppress(Conflict):  # it exists: nothing to read back
            await self._post(body)
