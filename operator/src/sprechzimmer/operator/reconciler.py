"""Executes lifecycle plans: one in-memory index, one work queue, one wake-up scheduler.

Kopf's watch streams feed ``Index`` (sessions, media pods, nodes, presence Leases) and
enqueue the affected session. A fixed pool of workers takes one session at a time (never the
same session twice at once), asks ``core.lifecycle.plan`` what to do, applies the plan's
actions in order, and schedules the session's next wake-up — an absolute time from the plan,
so a restarted operator recomputes every deadline from the objects. Nothing here decides; it
only executes and records.

Only the active replica (see ``core.leadership``) reconciles; a standby keeps nothing queued.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import heapq
import itertools
import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sprechzimmer.contract import (
    FINALIZER,
    LABEL_CLIENT_CODE_DIGEST,
    LABEL_CLIENT_LINK_DIGEST,
    LABEL_HOST_CODE_DIGEST,
    LABEL_HOST_LINK_DIGEST,
    Phase,
    SecretKey,
    keys,
)
from sprechzimmer.contract.rfc3339 import parse_time
from sprechzimmer.operator.adapters.kube import Gone, Kube, Permanent, Retry
from sprechzimmer.operator.adapters.metrics import Metrics
from sprechzimmer.operator.core import codes, leadership, lifecycle, manifests, usage
from sprechzimmer.operator.core.expiry import expires_at
from sprechzimmer.operator.core.hostports import PortUse
from sprechzimmer.operator.core.model import Lease, MediaPod, Node, Session
from sprechzimmer.operator.core.settings import OperatorSettings

logger = logging.getLogger("sprechzimmer.operator")

Key = tuple[str, str]
RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
PERMANENT_DELAY = 60.0
EVENT_QUEUE_SIZE = 10_000
EVENT_POSTERS = 4
LEADERSHIP_POLL_SECONDS = 1.0
USAGE_SWEEP_SECONDS = 3600.0
# After a takeover, sessions that wait for a step (new, changed, deleted) go ahead of re-checks
# of settled ones by this much; a bounded head start, so a re-check (e.g. an expiry that fell
# due during the takeover) is never starved by a stream of new sessions.
ROUTINE_HEADSTART = 10.0


def utcnow() -> datetime:
    return datetime.now(UTC)


def _rv(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        return -1


@dataclass
class Index:
    """What the watches told us, parsed into the core's views."""

    sessions: dict[Key, Session] = field(default_factory=dict)
    by_uid: dict[str, Key] = field(default_factory=dict)
    pods: dict[Key, MediaPod] = field(default_factory=dict)
    pods_by_uid: dict[str, set[Key]] = field(default_factory=dict)
    port_uses: dict[Key, PortUse] = field(default_factory=dict)
    nodes: dict[str, Node] = field(default_factory=dict)
    leases: dict[str, Lease] = field(default_factory=dict)
    host_digests: dict[str, dict[Key, tuple[str, ...]]] = field(default_factory=dict)
    first_seen: dict[Key, float] = field(default_factory=dict)

    # --- sessions ---------------------------------------------------------------------------

    def upsert_session(self, session: Session) -> bool:
        """Store unless older than what we have (a late watch event after our own patch)."""
        old = self.sessions.get(session.key)
        if old is not None and _rv(session.resource_version) < _rv(old.resource_version):
            return False
        self.sessions[session.key] = session
        self.by_uid[session.uid] = session.key
        self.first_seen.setdefault(session.key, time.monotonic())
        digests = tuple(d for d in session.code_digests if d)
        self._set_digests(session.host, session.key, digests)
        return True

    def remove_session(self, key: Key) -> None:
        session = self.sessions.pop(key, None)
        self.first_seen.pop(key, None)
        if session is not None:
            self.by_uid.pop(session.uid, None)
            self._set_digests(session.host, key, ())

    def _set_digests(self, host: str, key: Key, digests: tuple[str, ...]) -> None:
        per_host = self.host_digests.setdefault(host, {})
        if digests:
            per_host[key] = digests
        else:
            per_host.pop(key, None)
            if not per_host:
                self.host_digests.pop(host, None)

    def live_digests(self, host: str, exclude: Key) -> set[str]:
        return {d for k, ds in self.host_digests.get(host, {}).items() if k != exclude for d in ds}

    # --- pods ---------------------------------------------------------------------------------

    def upsert_pod(self, pod: MediaPod) -> None:
        key = (pod.namespace, pod.name)
        self.pods[key] = pod
        self.pods_by_uid.setdefault(pod.session_uid, set()).add(key)
        if pod.alive and pod.turn_port is not None:
            self.port_uses[key] = PortUse(pod.turn_port, pod.node_name)
        else:
            self.port_uses.pop(key, None)

    def remove_pod(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        pod = self.pods.pop(key, None)
        self.port_uses.pop(key, None)
        if pod is not None:
            keys = self.pods_by_uid.get(pod.session_uid)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self.pods_by_uid[pod.session_uid]

    def pods_of(self, uid: str) -> list[MediaPod]:
        return [self.pods[k] for k in self.pods_by_uid.get(uid, ())]

    def phase_counts(self) -> dict[tuple[str, str], int]:
        counts: dict[tuple[str, str], int] = {}
        for s in self.sessions.values():
            k = (s.phase.value if s.phase else "New", s.region.value)
            counts[k] = counts.get(k, 0) + 1
        return counts

    def pod_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for pod in self.pods.values():
            if pod.alive:
                key = self.by_uid.get(pod.session_uid)
                session = self.sessions.get(key) if key else None
                region = session.region.value if session else "unknown"
                counts[region] = counts.get(region, 0) + 1
        return counts


class Reconciler:
    def __init__(
        self,
        kube: Kube,
        settings: OperatorSettings,
        metrics: Metrics,
        *,
        identity: str,
        priority: int,
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.metrics = metrics
        self.identity = identity
        self.priority = priority
        self.index = Index()
        self._key = settings.shared_key.get_secret_value().encode()
        # (order, arrival, key): first come, first served, except that the bulk re-plan of
        # settled sessions after a takeover queues as if it had arrived ROUTINE_HEADSTART later.
        self._queue: asyncio.PriorityQueue[tuple[float, int, Key]] = asyncio.PriorityQueue()
        self._arrivals = itertools.count()
        self._queued: dict[Key, float] = {}  # key -> order of its live queue entry
        self._running: set[Key] = set()
        self._dirty: set[Key] = set()
        self._heap: list[tuple[float, int, Key]] = []
        self._wake_at: dict[Key, float] = {}
        self._seq = 0
        self._failures: dict[Key, int] = {}
        self._scheduler_wakeup = asyncio.Event()
        self._events: asyncio.Queue[dict[str, Any]] = asyncio.Queue(EVENT_QUEUE_SIZE)
        self.active = False
        self._activated = asyncio.Event()
        self.seeded = False
        self._tasks: list[asyncio.Task[None]] = []
        self.last_loop_tick = time.monotonic()
        metrics.observe_sessions(lambda: self.index.phase_counts(), lambda: self.index.pod_counts())

    # --- feeding --------------------------------------------------------------------------------

    def on_session(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        key = (str(meta.get("namespace")), str(meta.get("name")))
        if event_type == "DELETED":
            self.index.remove_session(key)
            self._wake_at.pop(key, None)
            return
        try:
            session = Session.parse(body)
        except (ValueError, KeyError, TypeError) as err:
            self.metrics.reconcile_errors.labels(kind="invalid").inc()
            logger.warning(
                "ignoring unreadable session",
                extra={"namespace": key[0], "session": key[1], "error": str(err)},
            )
            return
        if self.index.upsert_session(session):
            # A listing (event type None: start, takeover, watch restart) of a settled session
            # is a re-check; a watch event or an unsettled session is a step to take.
            self.enqueue(key, routine=event_type is None and not lifecycle.urgent(session))

    def on_pod(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        pod = MediaPod.parse(body)
        if event_type == "DELETED":
            self.index.remove_pod(pod.namespace, pod.name)
        else:
            self.index.upsert_pod(pod)
        key = self.index.by_uid.get(pod.session_uid)
        if key is not None:
            self.enqueue(key)

    def on_node(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        node = Node.parse(body)
        if event_type == "DELETED":
            self.index.nodes.pop(node.name, None)
        else:
            old = self.index.nodes.get(node.name)
            self.index.nodes[node.name] = node
            if old == node:
                return
        # A node's address or schedulability matters to sessions whose pod is on it.
        for pod in list(self.index.pods.values()):
            if pod.node_name == node.name:
                key = self.index.by_uid.get(pod.session_uid)
                if key is not None:
                    self.enqueue(key)

    def on_lease(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        if meta.get("namespace") != self.settings.presence_namespace:
            return
        lease = Lease.parse(body)
        if event_type == "DELETED":
            self.index.leases.pop(lease.name, None)
        else:
            self.index.leases[lease.name] = lease
        # Renewals only extend deadlines that are already scheduled; a lease coming or going
        # changes what presence counts, so every session it vouches for is looked at again.
        if event_type in ("ADDED", "DELETED", None):
            for s in self.index.sessions.values():
                if s.presence.vouched_by == lease.name or s.billing.voucher == lease.name:
                    self.enqueue(s.key)

    # --- queue and scheduler --------------------------------------------------------------------

    def enqueue(self, key: Key, *, routine: bool = False) -> None:
        if not self.active:
            return
        if key in self._running:
            self._dirty.add(key)
            return
        order = time.monotonic() + (ROUTINE_HEADSTART if routine else 0.0)
        queued = self._queued.get(key)
        if queued is None or order < queued:
            # A step for a session already queued as a re-check moves it forward: the earlier
            # entry is left in the heap and skipped when it comes up.
            self._queued[key] = order
            self._queue.put_nowait((order, next(self._arrivals), key))

    def schedule(self, key: Key, when: datetime | None, *, delay: float | None = None) -> None:
        if when is None and delay is None:
            return
        seconds = delay if delay is not None else (when - utcnow()).total_seconds()  # type: ignore[operator]
        deadline = time.monotonic() + max(0.0, seconds)
        current = self._wake_at.get(key)
        if current is not None and current <= deadline and current > time.monotonic():
            return  # an earlier wake-up is already due; it re-plans anyway
        self._wake_at[key] = deadline
        self._seq += 1
        heapq.heappush(self._heap, (deadline, self._seq, key))
        if self._heap[0][2] == key:
            self._scheduler_wakeup.set()

    async def _scheduler(self) -> None:
        while True:
            now = time.monotonic()
            self.last_loop_tick = now
            while self._heap and self._heap[0][0] <= now:
                deadline, _, key = heapq.heappop(self._heap)
                if self._wake_at.get(key) == deadline:
                    del self._wake_at[key]
                    self.enqueue(key)
            timeout = min(self._heap[0][0] - now, 1.0) if self._heap else 1.0
            self._scheduler_wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._scheduler_wakeup.wait(), timeout)

    async def _worker(self) -> None:
        while True:
            order, _, key = await self._queue.get()
            if self._queued.get(key) != order:
                continue  # superseded by an earlier entry for the same session
            del self._queued[key]
            self.metrics.queue_depth.set(len(self._queued))
            if not self.active:
                continue
            self._running.add(key)
            try:
                await self._reconcile_one(key)
            finally:
                self._running.discard(key)
            if key in self._dirty:
                self._dirty.discard(key)
                self.enqueue(key)

    async def _reconcile_one(self, key: Key) -> None:
        started = time.perf_counter()
        try:
            await self.reconcile(key)
            self._failures.pop(key, None)
        except Retry as err:
            self._retry(key, "retry", str(err))
        except Permanent as err:
            self.metrics.reconcile_errors.labels(kind="permanent").inc()
            logger.error(
                "reconcile failed",
                extra={"namespace": key[0], "session": key[1], "error": str(err)},
            )
            self.schedule(key, None, delay=PERMANENT_DELAY)
        except Exception as err:
            logger.exception("reconcile crashed", extra={"namespace": key[0], "session": key[1]})
            self._retry(key, "unexpected", type(err).__name__)
        finally:
            self.metrics.reconcile_duration.observe(time.perf_counter() - started)

    def _retry(self, key: Key, kind: str, why: str) -> None:
        self.metrics.reconcile_errors.labels(kind=kind).inc()
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        delay = RETRY_DELAYS[min(n, len(RETRY_DELAYS) - 1)]
        logger.info(
            "reconcile will be retried",
            extra={"namespace": key[0], "session": key[1], "error": why, "delay": delay},
        )
        self._wake_at.pop(key, None)
        self.schedule(key, None, delay=delay)

    # --- one reconcile ---------------------------------------------------------------------------

    async def reconcile(self, key: Key) -> None:
        session = self.index.sessions.get(key)
        if session is None:
            return
        now = utcnow()
        observed = lifecycle.Observed(
            session=session,
            pods=self.index.pods_of(session.uid),
            nodes=self.index.nodes,
            leases=self.index.leases,
            port_uses=self.index.port_uses.values(),
            now=now,
        )
        plan = lifecycle.plan(observed, self.settings)
        # Reserve planned ports before the first await, so concurrent plans never pick the same.
        reserved = [a for a in plan.actions if isinstance(a, lifecycle.CreateMediaPod)]
        for action in reserved:
            name = manifests.media_pod_name(session, action.incarnation)
            self.index.port_uses.setdefault(
                (session.namespace, name), PortUse(action.turn_port, None)
            )
        try:
            await self._apply(session, plan, now)
        except Gone:
            self.index.remove_session(key)
            return
        finally:
            for action in reserved:
                pod_key = (session.namespace, manifests.media_pod_name(session, action.incarnation))
                if pod_key not in self.index.pods:
                    self.index.port_uses.pop(pod_key, None)
        self._record(session, plan)
        for ev in plan.events:
            self._post_event(session, ev, now)
        if plan.next_wakeup is not None:
            self.schedule(key, plan.next_wakeup)

    def _record(self, session: Session, plan: lifecycle.Plan) -> None:
        region = session.region.value
        if plan.billed_minutes_delta > 0:
            self.metrics.billed_minutes.labels(region=region).inc(plan.billed_minutes_delta)
        if plan.phase is Phase.EXPIRED and session.phase is not Phase.EXPIRED:
            self.metrics.expirations.labels(region=region).inc()
        if plan.placement_failed:
            self.metrics.placement_failures.labels(region=region).inc()
        first_ready = plan.phase in (Phase.READY, Phase.ACTIVE) and session.phase in (
            None,
            Phase.SCHEDULED,
        )
        if first_ready and session.media.incarnation <= 1:
            seen = self.index.first_seen.get(session.key)
            if (
                seen is not None
                and session.scheduled_start - self.settings.lead_time <= session.created_at
            ):
                mode = session.join_mode.value
                self.metrics.create_to_ready.labels(mode=mode).observe(time.monotonic() - seen)
        if plan.phase != session.phase:
            logger.info(
                "phase",
                extra={
                    "namespace": session.namespace,
                    "session": session.name,
                    "from": session.phase.value if session.phase else None,
                    "to": plan.phase.value,
                },
            )

    async def _apply(self, s: Session, plan: lifecycle.Plan, now: datetime) -> None:
        billing_override: dict[str, Any] | None = None
        for action in plan.actions:
            match action:
                case lifecycle.IssueCodes():
                    await self._issue_codes(s)
                case lifecycle.EnsureMediaSecret():
                    await self.kube.create(
                        manifests.media_secret(
                            s,
                            control_token=keys.control_token(self._key, s.uid),
                            turn_secret=keys.turn_secret(self._key, s.uid),
                        )
                    )
                case lifecycle.CreateMediaPod(incarnation=incarnation, turn_port=port):
                    body = manifests.media_pod(
                        s,
                        incarnation=incarnation,
                        turn_port=port,
                        expires_at=expires_at(s),
                        now=now,
                        allowed_regions=self.settings.allowed_regions(s.region),
                        settings=self.settings,
                    )
                    pod, created = await self.kube.create(body)
                    self.index.upsert_pod(MediaPod.parse(pod))
                    if created:
                        self.metrics.media_pods_created.labels(region=s.region.value).inc()
                case lifecycle.DeletePod(name=name):
                    await self.kube.delete_pod(s.namespace, name)
                    self.index.remove_pod(s.namespace, name)
                case lifecycle.WriteUsageRecord(reason=reason, body=body):
                    record, created = await self.kube.create(body)
                    if created:
                        self.metrics.usage_records.labels(reason=reason.value).inc()
                        logger.info(
                            "usage record written",
                            extra={"namespace": s.namespace, "session": s.name},
                        )
                    else:
                        spec = record.get("spec") or {}
                        billing_override = {
                            "billableSeconds": int(spec.get("durationSeconds") or 0),
                            "billedMinutes": int(spec.get("billedMinutes") or 0),
                        }
                case lifecycle.RevokeCodes():
                    await self.kube.delete_secret(s.namespace, manifests.codes_secret_name(s))
                    await self.kube.delete_secret(s.namespace, manifests.media_secret_name(s))
                case lifecycle.ScrubSession():
                    patch: dict[str, Any] = {
                        "metadata": {
                            "labels": {
                                LABEL_HOST_CODE_DIGEST: None,
                                LABEL_CLIENT_CODE_DIGEST: None,
                                LABEL_HOST_LINK_DIGEST: None,
                                LABEL_CLIENT_LINK_DIGEST: None,
                            }
                        }
                    }
                    if s.has_note:
                        patch["spec"] = {"note": None}
                    self._store(await self.kube.patch_session(s.namespace, s.name, patch))
                case lifecycle.PatchStatus(patch=planned):
                    status_patch = dict(planned)
                    if billing_override is not None and "billing" in status_patch.get("status", {}):
                        status = dict(status_patch["status"])
                        status["billing"] = {**status["billing"], **billing_override}
                        status_patch["status"] = status
                    self._store(
                        await self.kube.patch_session_status(s.namespace, s.name, status_patch)
                    )
                case lifecycle.ReleaseFinalizer():
                    current = self.index.sessions.get(s.key, s)
                    remaining = [f for f in current.finalizers if f != FINALIZER]
                    patch = {
                        "metadata": {
                            "finalizers": remaining,
                            "resourceVersion": current.resource_version,
                        }
                    }
                    with contextlib.suppress(Gone):
                        self._store(await self.kube.patch_session(s.namespace, s.name, patch))
                case lifecycle.DeleteSession():
                    await self.kube.delete_session(s.namespace, s.name)

    async def _issue_codes(self, s: Session) -> None:
        current = self.index.sessions.get(s.key, s)
        pair = codes.issue_codes(
            key=self._key,
            host=s.host,
            live_digests=self.index.live_digests(s.host, exclude=s.key),
            random_bytes=secrets.token_bytes,
        )
        # Claim the digests before the first await: two sessions of a host planned at once
        # can never draw the same code.
        digests = (
            keys.code_digest(self._key, s.host, pair.host_code),
            keys.code_digest(self._key, s.host, pair.client_code),
        )
        self.index._set_digests(s.host, s.key, digests)
        secret, created = await self.kube.create(
            manifests.codes_secret(s, pair, self.settings.signaling_url)
        )
        if not created:  # a previous attempt created it: its codes are the session's codes
            data = secret.get("data") or {}
            stored = {k: base64.b64decode(v).decode() for k, v in data.items()}
            pair = codes.CodePair(
                host_code=stored[SecretKey.HOST_CODE.value],
                client_code=stored[SecretKey.CLIENT_CODE.value],
                host_link_token=stored[SecretKey.HOST_LINK_TOKEN.value],
                client_link_token=stored[SecretKey.CLIENT_LINK_TOKEN.value],
            )
            digests = (
                keys.code_digest(self._key, s.host, pair.host_code),
                keys.code_digest(self._key, s.host, pair.client_code),
            )
            self.index._set_digests(s.host, s.key, digests)
        finalizers = list(current.finalizers)
        if FINALIZER not in finalizers:
            finalizers.append(FINALIZER)
        patch = {
            "metadata": {
                "resourceVersion": current.resource_version,
                "finalizers": finalizers,
                "labels": {
                    LABEL_HOST_CODE_DIGEST: digests[0],
                    LABEL_CLIENT_CODE_DIGEST: digests[1],
                    LABEL_HOST_LINK_DIGEST: keys.link_digest(self._key, pair.host_link_token),
                    LABEL_CLIENT_LINK_DIGEST: keys.link_digest(self._key, pair.client_link_token),
                },
            }
        }
        self._store(await self.kube.patch_session(s.namespace, s.name, patch))

    def _store(self, body: Mapping[str, Any]) -> None:
        with contextlib.suppress(ValueError, KeyError, TypeError):
            self.index.upsert_session(Session.parse(body))

    # --- events -----------------------------------------------------------------------------------

    def _post_event(self, s: Session, ev: lifecycle.Event, now: datetime) -> None:
        body = manifests.event(
            s,
            name_suffix=secrets.token_hex(8),
            type_=ev.type,
            reason=ev.reason,
            message=ev.message,
            now=now,
            instance=self.identity,
        )
        try:
            self._events.put_nowait(body)
        except asyncio.QueueFull:
            self.metrics.events_dropped.inc()

    async def _event_poster(self) -> None:
        while True:
            body = await self._events.get()
            try:
                await self.kube.post_event(body)
            except (Retry, Permanent, Gone):
                self.metrics.events_dropped.inc()

    # --- leadership and seeding ------------------------------------------------------------------

    async def _leadership(self) -> None:
        if self.settings.standalone:
            await self._become_active()
            return
        with contextlib.suppress(Retry, Permanent):
            await self.kube.ensure_peering(self.settings.peering_name)
        while True:
            try:
                peers = await self.kube.peering_status(self.settings.peering_name)
            except (Retry, Permanent) as err:
                logger.warning("cannot read peering", extra={"error": str(err)})
                peers = None
            if peers is not None:
                active = leadership.is_active(peers, self.identity, self.priority, utcnow())
                # Our own keep-alive must be visible first: Kopf has not started otherwise.
                if active and self.identity not in peers:
                    active = False
                if active and not self.active:
                    await self._become_active()
                elif not active and self.active:
                    self._become_standby()
            await asyncio.sleep(LEADERSHIP_POLL_SECONDS)

    async def _become_active(self) -> None:
        logger.info("becoming active", extra={"identity": self.identity})
        await self._seed()
        self.active = True
        self._activated.set()
        self.metrics.active.set(1)
        for key, session in list(self.index.sessions.items()):
            self.enqueue(key, routine=not lifecycle.urgent(session))

    def _become_standby(self) -> None:
        logger.info("standing by", extra={"identity": self.identity})
        self.active = False
        self._activated.clear()
        self.metrics.active.set(0)
        self._heap.clear()
        self._wake_at.clear()
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queued.clear()
        # Kopf pauses our watches now: what we know goes stale. On resuming, Kopf lists all
        # sessions again and we start from that.
        for key in list(self.index.sessions):
            self.index.remove_session(key)

    async def _seed(self) -> None:
        """List pods, nodes and Leases before the first plan: host ports and placement must
        never be decided on a half-filled index."""
        while True:
            try:
                async for body in self.kube.list_nodes():
                    self.index.nodes[body["metadata"]["name"]] = Node.parse(body)
                async for body in self.kube.list_media_pods():
                    self.index.upsert_pod(MediaPod.parse(body))
                async for body in self.kube.list_presence_leases(self.settings.presence_namespace):
                    lease = Lease.parse(body)
                    self.index.leases[lease.name] = lease
                self.seeded = True
                return
            except (Retry, Permanent, Gone) as err:
                logger.warning("seeding failed, retrying", extra={"error": str(err)})
                await asyncio.sleep(1.0)

    async def _usage_sweeper(self) -> None:
        """Sweep once soon after becoming active, then hourly: an operator restarted more often
        than hourly (rollouts, failovers) must still sweep."""
        while True:
            await self._activated.wait()
            if self.active:
                try:
                    refs = []
                    async for body in self.kube.list_usage_records(self.settings.usage_namespace):
                        meta = body.get("metadata") or {}
                        created = parse_time(meta.get("creationTimestamp"))
                        if created is not None:
                            refs.append(usage.RecordRef(meta["namespace"], meta["name"], created))
                    for ref in usage.expired_records(
                        refs, utcnow(), self.settings.usage_record_retention
                    ):
                        await self.kube.delete_usage_record(ref.namespace, ref.name)
                        logger.info(
                            "usage record past retention deleted",
                            extra={"namespace": ref.namespace},
                        )
                except (Retry, Permanent, Gone) as err:
                    logger.warning("usage record sweep failed", extra={"error": str(err)})
            await asyncio.sleep(USAGE_SWEEP_SECONDS)

    # --- running ---------------------------------------------------------------------------------

    def start(self) -> None:
        coros = [self._scheduler(), self._leadership(), self._usage_sweeper()]
        coros += [self._worker() for _ in range(self.settings.workers)]
        coros += [self._event_poster() for _ in range(EVENT_POSTERS)]
        self._tasks = [asyncio.create_task(c) for c in coros]
        self.last_loop_tick = time.monotonic()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def healthy(self) -> bool:
        """No background task crashed and the scheduler loop ticked recently."""
        crashed = any(
            t.done() and not t.cancelled() and t.exception() is not None for t in self._tasks
        )
        return not crashed and time.monotonic() - self.last_loop_tick < 30
