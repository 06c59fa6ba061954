"""In-memory fakes of the operator's own Protocols (``sprechzimmer.operator.ports``).

FAKES, named as such: they let the reconciler's unit tests check how the shell executes plans
(order of calls, what the API's answers are used for, retries). They mirror the API server's
behaviour the reconciler relies on — AlreadyExists returns the stored object, Secrets come back
with ``data`` in base64, merge patches, resourceVersion checks — and nothing more. The real API
server path is covered by the ``*_cluster.py`` tests.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import itertools
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from sprechzimmer.contract import KIND, USAGE_RECORD_KIND
from sprechzimmer.operator.core.actions import Plan
from sprechzimmer.operator.ports import Conflict, Gone

ObjectKey = tuple[str, str, str]  # kind, namespace, name


def merge_patch(target: dict[str, Any], patch: Mapping[str, Any]) -> None:
    """RFC 7386: objects merge, None removes, everything else (lists too) replaces."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(target.get(key), dict):
            merge_patch(target[key], value)
        elif isinstance(value, Mapping):
            target[key] = {}
            merge_patch(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


class FakeKube:
    """A fake of ``ports.KubeAPI`` holding objects in a dict."""

    def __init__(self) -> None:
        self.objects: dict[ObjectKey, dict[str, Any]] = {}
        self.calls: list[tuple[str, str, str]] = []  # (verb, kind, name)
        # (verb, kind) -> exception raised by the next such call
        self.fail_next: dict[tuple[str, str], Exception] = {}
        self._versions = itertools.count(1000)

    # --- test helpers -------------------------------------------------------------------------

    def put(self, body: Mapping[str, Any], kind: str = KIND) -> dict[str, Any]:
        obj = copy.deepcopy(dict(body))
        obj.setdefault("kind", kind)
        meta = obj["metadata"]
        meta["resourceVersion"] = str(next(self._versions))
        self.objects[(obj["kind"], meta.get("namespace", ""), meta["name"])] = obj
        return copy.deepcopy(obj)

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((kind, namespace, name))

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for (k, _, _), o in self.objects.items() if k == kind]

    async def _call(self, verb: str, kind: str, name: str) -> None:
        self.calls.append((verb, kind, name))
        await asyncio.sleep(0)  # every API call is an await: other reconciles may run meanwhile
        error = self.fail_next.pop((verb, kind), None)
        if error is not None:
            raise error

    # --- ports.KubeAPI ------------------------------------------------------------------------

    async def create(self, body: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        meta = body["metadata"]
        await self._call("create", body["kind"], meta["name"])
        key = (body["kind"], meta.get("namespace", ""), meta["name"])
        if key in self.objects:
            return copy.deepcopy(self.objects[key]), False
        obj = copy.deepcopy(dict(body))
        string_data = obj.pop("stringData", None)
        if string_data is not None:
            obj["data"] = {k: base64.b64encode(v.encode()).decode() for k, v in string_data.items()}
        obj["metadata"]["creationTimestamp"] = "2026-11-21T09:00:00Z"
        return self.put(obj, body["kind"]), True

    async def post_event(self, body: Mapping[str, Any]) -> None:
        await self.create(body)

    async def _delete(self, kind: str, namespace: str, name: str) -> None:
        await self._call("delete", kind, name)
        self.objects.pop((kind, namespace, name), None)

    async def delete_pod(self, namespace: str, name: str) -> None:
        await self._delete("Pod", namespace, name)

    async def delete_secret(self, namespace: str, name: str) -> None:
        await self._delete("Secret", namespace, name)

    async def delete_session(self, namespace: str, name: str) -> None:
        await self._delete(KIND, namespace, name)

    async def delete_usage_record(self, namespace: str, name: str) -> None:
        await self._delete(USAGE_RECORD_KIND, namespace, name)

    async def _patch(
        self,
        verb: str,
        namespace: str,
        name: str,
        patch: Mapping[str, Any],
        part: Callable[..., Any],
    ) -> dict[str, Any]:
        await self._call(verb, KIND, name)
        obj = self.objects.get((KIND, namespace, name))
        if obj is None:
            raise Gone(name)
        wanted = (patch.get("metadata") or {}).get("resourceVersion")
        if wanted is not None and wanted != obj["metadata"]["resourceVersion"]:
            raise Conflict(name)
        merge_patch(obj, part(patch))
        obj["metadata"]["resourceVersion"] = str(next(self._versions))
        return copy.deepcopy(obj)

    async def patch_session(
        self, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> dict[str, Any]:
        def main(p: Mapping[str, Any]) -> dict[str, Any]:
            meta = {k: v for k, v in (p.get("metadata") or {}).items() if k != "resourceVersion"}
            return {**{k: v for k, v in p.items() if k != "status"}, "metadata": meta}

        return await self._patch("patch", namespace, name, patch, main)

    async def patch_session_status(
        self, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> dict[str, Any]:
        return await self._patch(
            "patch-status", namespace, name, patch, lambda p: {"status": p.get("status") or {}}
        )

    async def _list(self, kind: str, namespace: str | None) -> AsyncIterator[dict[str, Any]]:
        for (k, ns, _), obj in list(self.objects.items()):
            if k == kind and namespace in (None, ns):
                yield copy.deepcopy(obj)

    def list_media_pods(self) -> AsyncIterator[dict[str, Any]]:
        return self._list("Pod", None)

    def list_nodes(self) -> AsyncIterator[dict[str, Any]]:
        return self._list("Node", None)

    def list_presence_leases(self, namespace: str) -> AsyncIterator[dict[str, Any]]:
        return self._list("Lease", namespace)

    def list_usage_records(self, namespace: str) -> AsyncIterator[dict[str, Any]]:
        return self._list(USAGE_RECORD_KIND, namespace)

    async def peering_status(self, name: str) -> dict[str, Any] | None:
        return None

    async def ensure_peering(self, name: str) -> None:
        return None


class FakeMetrics:
    """A fake of ``ports.MetricsSink`` that remembers what it was told."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []
        self.plans: list[tuple[str, Plan]] = []

    def names(self) -> list[str]:
        return [name for name, _ in self.seen]

    def observe_sessions(
        self, counts: Callable[[], dict[tuple[str, str], int]], pods: Callable[[], dict[str, int]]
    ) -> None:
        self.seen.append(("observe_sessions", None))

    def planned(self, region: str, plan: Plan) -> None:
        self.plans.append((region, plan))

    def created_to_ready(self, mode: str, seconds: float) -> None:
        self.seen.append(("created_to_ready", (mode, seconds)))

    def media_pod_created(self, region: str) -> None:
        self.seen.append(("media_pod_created", region))

    def usage_record_written(self, reason: str) -> None:
        self.seen.append(("usage_record_written", reason))

    def reconciled(self, seconds: float) -> None:
        self.seen.append(("reconciled", seconds))

    def reconcile_error(self, kind: str) -> None:
        self.seen.append(("reconcile_error", kind))

    def queue_depth(self, depth: int) -> None:
        self.seen.append(("queue_depth", depth))

    def leading(self, active: bool) -> None:
        self.seen.append(("leading", active))

    def event_dropped(self) -> None:
        self.seen.append(("event_dropped", None))


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
