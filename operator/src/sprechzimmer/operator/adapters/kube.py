"""The only module that talks to the Kubernetes API (besides Kopf's own watch streams).

Thin, idempotent verbs on top of lightkube's async client: creating something that exists
returns the existing object, deleting something gone is a no-op. Everything returns plain
dicts. Errors are split into retryable (``Retry``: conflicts, throttling, server errors,
network) and permanent (``Permanent``: the request itself is wrong).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx2
from lightkube import ApiError, AsyncClient, KubeConfig, codecs
from lightkube.generic_resource import create_global_resource, create_namespaced_resource
from lightkube.resources.coordination_v1 import Lease
from lightkube.resources.core_v1 import Node, Pod, Secret
from lightkube.types import PatchType
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

VideoSession = create_namespaced_resource(GROUP, VERSION, KIND, PLURAL)
UsageRecord = create_namespaced_resource(GROUP, VERSION, USAGE_RECORD_KIND, USAGE_RECORD_PLURAL)
ClusterKopfPeering = create_global_resource(
    "kopf.dev", "v1", "ClusterKopfPeering", "clusterkopfpeerings"
)

FIELD_MANAGER = MANAGED_BY
MEDIA_POD_SELECTOR: dict[str, Any] = {
    LABEL_MANAGED_BY: MANAGED_BY,
    LABEL_COMPONENT: Component.MEDIA.value,
}
PRESENCE_LEASE_SELECTOR: dict[str, Any] = {LABEL_PRESENCE_LEASE: PRESENCE_LEASE_VALUE}

# Every API access of the operator process — this module and Kopf (watches, peering) — as
# (API group, resource) → verbs. operator/deploy/rbac.yaml grants exactly this, no more
# (operator/tests/test_rbac_cluster.py compares both ways and runs the lifecycle under it).
API_ACCESS: dict[tuple[str, str], frozenset[str]] = {
    # Kopf's watch (list + watch); labels, finalizer and note (patch); retention (delete).
    (GROUP, PLURAL): frozenset({"list", "watch", "patch", "delete"}),
    (GROUP, f"{PLURAL}/status"): frozenset({"patch"}),
    # create once; get when a retry finds it (AlreadyExists); list + delete: retention sweep.
    (GROUP, USAGE_RECORD_PLURAL): frozenset({"create", "get", "list", "delete"}),
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


class Retry(Exception):
    """Try again later: the cluster was busy, unreachable or the object changed meanwhile."""


class Permanent(Exception):
    """The request is wrong and will stay wrong; retrying slowly only helps after a fix."""


class Gone(Exception):
    """The object no longer exists."""


def _raise(err: ApiError) -> None:
    code = err.status.code or 0
    if code == 404:
        raise Gone(err.status.message) from err
    if code in (409, 429) or code >= 500:
        raise Retry(f"{code} {err.status.reason}") from err
    raise Permanent(f"{code} {err.status.reason}: {err.status.message}") from err


class Kube:
    """The operator's Kubernetes verbs."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    @classmethod
    def from_env(cls) -> Kube:
        """In-cluster service account, else $KUBECONFIG / ~/.kube/config."""
        config = KubeConfig.from_env()
        client = AsyncClient(
            config=config,
            field_manager=FIELD_MANAGER,
            timeout=httpx2.Timeout(30.0, connect=5.0),
        )
        return cls(client)

    async def close(self) -> None:
        await self._client.close()

    async def _call(self, coro: Any) -> Any:
        try:
            return await coro
        except ApiError as err:
            _raise(err)
        except (httpx2.TransportError, httpx2.TimeoutException) as err:
            raise Retry(f"network: {type(err).__name__}") from err

    # --- create (idempotent) ------------------------------------------------------------------

    async def create(self, body: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        """Create ``body``; if it exists, return the existing object. (object, created)."""
        obj = codecs.from_dict(dict(body))
        meta = body["metadata"]
        try:
            created = await self._client.create(obj)
            return _to_dict(created), True
        except ApiError as err:
            if err.status.code != 409:
                _raise(err)
        except (httpx2.TransportError, httpx2.TimeoutException) as err:
            raise Retry(f"network: {type(err).__name__}") from err
        existing = await self._call(
            self._client.get(type(obj), meta["name"], namespace=meta.get("namespace"))
        )
        return _to_dict(existing), False

    async def post_event(self, body: Mapping[str, Any]) -> None:
        await self._call(self._client.create(codecs.from_dict(dict(body))))

    # --- delete (idempotent) ------------------------------------------------------------------

    async def _delete(self, kind: Any, name: str, namespace: str | None) -> None:
        with contextlib.suppress(Gone):
            await self._call(self._client.delete(kind, name, namespace=namespace))

    async def delete_pod(self, namespace: str, name: str) -> None:
        await self._delete(Pod, name, namespace)

    async def delete_secret(self, namespace: str, name: str) -> None:
        await self._delete(Secret, name, namespace)

    async def delete_session(self, namespace: str, name: str) -> None:
        await self._delete(VideoSession, name, namespace)

    async def delete_usage_record(self, namespace: str, name: str) -> None:
        await self._delete(UsageRecord, name, namespace)

    # --- sessions -----------------------------------------------------------------------------

    async def patch_session(
        self, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> dict[str, Any]:
        obj = await self._call(
            self._client.patch(
                VideoSession, name, dict(patch), namespace=namespace, patch_type=PatchType.MERGE
            )
        )
        return _to_dict(obj)

    async def patch_session_status(
        self, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> dict[str, Any]:
        obj = await self._call(
            self._client.patch(
                VideoSession.Status,
                name,
                dict(patch),
                namespace=namespace,
                patch_type=PatchType.MERGE,
            )
        )
        return _to_dict(obj)

    async def get_usage_record(self, namespace: str, name: str) -> dict[str, Any]:
        return _to_dict(await self._call(self._client.get(UsageRecord, name, namespace=namespace)))

    # --- listing (startup seeding and sweeps) -------------------------------------------------

    async def list_media_pods(self) -> AsyncIterator[dict[str, Any]]:
        async for pod in self._client.list(
            Pod, namespace="*", labels=MEDIA_POD_SELECTOR, chunk_size=500
        ):
            yield _to_dict(pod)

    async def list_nodes(self) -> AsyncIterator[dict[str, Any]]:
        async for node in self._client.list(Node, chunk_size=500):
            yield _to_dict(node)

    async def list_presence_leases(self, namespace: str) -> AsyncIterator[dict[str, Any]]:
        async for lease in self._client.list(
            Lease, namespace=namespace, labels=PRESENCE_LEASE_SELECTOR
        ):
            yield _to_dict(lease)

    async def list_usage_records(self) -> AsyncIterator[dict[str, Any]]:
        async for record in self._client.list(UsageRecord, namespace="*", chunk_size=500):
            yield _to_dict(record)

    # --- peering ------------------------------------------------------------------------------

    async def peering_status(self, name: str) -> dict[str, Any] | None:
        try:
            obj = await self._call(self._client.get(ClusterKopfPeering, name))
        except Gone:
            return None
        return dict(_to_dict(obj).get("status") or {})

    async def ensure_peering(self, name: str) -> None:
        body = {
            "apiVersion": "kopf.dev/v1",
            "kind": "ClusterKopfPeering",
            "metadata": {"name": name},
        }
        await self.create(body)


def _to_dict(obj: Any) -> dict[str, Any]:
    if isinstance(obj, dict):
        return obj
    return dict(obj.to_dict())
