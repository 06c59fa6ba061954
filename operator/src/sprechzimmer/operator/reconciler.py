"""Executes lifecycle plans: feeds the index, runs the workers, applies actions in order.

Kopf's watch streams feed the ``Index`` (sessions, media pods, nodes, presence Leases) and
queue the affected session (``WorkQueue``). A fixed pool of workers takes one session at a time,
asks ``core.lifecycle.plan`` what to do, sends each action's finished body to the API in order,
and schedules the session's next wake-up (``Timers``) — an absolute time from the plan, so a
restarted operator recomputes every deadline from the objects. Nothing here decides about a
session; it only executes and records.

Only the active replica (see ``core.leadership``) reconciles; a standby keeps nothing queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from sprechzimmer.operator.core import actions as act
from sprechzimmer.operator.core import leadership, lifecycle, manifests, usage
from sprechzimmer.operator.core.model import Lease, MediaPod, Node, Session
from sprechzimmer.operator.core.settings import OperatorSettings
from sprechzimmer.operator.index import Index, Key
from sprechzimmer.operator.ports import Gone, KubeAPI, MetricsSink, Permanent, Retry
from sprechzimmer.operator.workqueue import Backoff, Timers, WorkQueue

logger = logging.getLogger("sprechzimmer.operator")

PERMANENT_DELAY = 60.0
EVENT_QUEUE_SIZE = 10_000
EVENT_POSTERS = 4
LEADERSHIP_POLL_SECONDS = 1.0
SCHEDULER_TICK_SECONDS = 1.0
USAGE_SWEEP_SECONDS = 3600.0


def utcnow() -> datetime:
    return datetime.now(UTC)


class Reconciler:
    def __init__(
        self,
        kube: KubeAPI,
        settings: OperatorSettings,
        metrics: MetricsSink,
        *,
        identity: str,
        priority: int,
        clock: Callable[[], float] = time.monotonic,
        wallclock: Callable[[], datetime] = utcnow,
        random_bytes: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.metrics = metrics
        self.identity = identity
        self.priority = priority
        self._clock = clock
        self._wallclock = wallclock
        self._random_bytes = random_bytes
        self.index = Index(clock=clock)
        self.queue = WorkQueue(clock)
        self.timers = Timers(clock)
        self._backoff = Backoff()
        self._scheduler_wakeup = asyncio.Event()
        self._events: asyncio.Queue[dict[str, Any]] = asyncio.Queue(EVENT_QUEUE_SIZE)
        self.active = False
        self._activated = asyncio.Event()
        self.seeded = False
        self._tasks: list[asyncio.Task[None]] = []
        self.last_loop_tick = clock()
        metrics.observe_sessions(self.index.phase_counts, self.index.pod_counts)

    # --- feeding --------------------------------------------------------------------------------

    def on_session(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        key = (str(meta.get("namespace")), str(meta.get("name")))
        if event_type == "DELETED":
            self.index.remove_session(key)
            self.timers.cancel(key)
            return
        try:
            session = Session.parse(body)
        except (ValueError, KeyError, TypeError) as err:
            self.metrics.reconcile_error("invalid")
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
        for key in self.index.sessions_on_node(node.name):
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
            for key in self.index.sessions_vouched_by(lease.name):
                self.enqueue(key)

    # --- queue and scheduler --------------------------------------------------------------------

    def enqueue(self, key: Key, *, routine: bool = False) -> None:
        if self.active:
            self.queue.add(key, routine=routine)

    def schedule(self, key: Key, seconds: float) -> None:
        if self.timers.wake_in(key, seconds):
            self._scheduler_wakeup.set()

    async def _scheduler(self) -> None:
        while True:
            self.last_loop_tick = self._clock()
            for key in self.timers.due():
                self.enqueue(key)
            self._scheduler_wakeup.clear()
            with contextlib.suppress(TimeoutError):
                timeout = self.timers.seconds_to_next(SCHEDULER_TICK_SECONDS)
                await asyncio.wait_for(self._scheduler_wakeup.wait(), timeout)

    async def _worker(self) -> None:
        while True:
            key = await self.queue.take()
            self.metrics.queue_depth(len(self.queue))
            try:
                if self.active:
                    await self._reconcile_one(key)
            finally:
                self.queue.done(key)

    async def _reconcile_one(self, key: Key) -> None:
        started = time.perf_counter()
        try:
            await self.reconcile(key)
            self._backoff.succeeded(key)
        except Retry as err:
            self._retry(key, "retry", str(err))
        except Permanent as err:
            self.metrics.reconcile_error("permanent")
            logger.error(
                "reconcile failed",
                extra={"namespace": key[0], "session": key[1], "error": str(err)},
            )
            self.schedule(key, PERMANENT_DELAY)
        except Exception as err:
            logger.exception("reconcile crashed", extra={"namespace": key[0], "session": key[1]})
            self._retry(key, "unexpected", type(err).__name__)
        finally:
            self.metrics.reconciled(time.perf_counter() - started)

    def _retry(self, key: Key, kind: str, why: str) -> None:
        self.metrics.reconcile_error(kind)
        delay = self._backoff.failed(key)
        logger.info(
            "reconcile will be retried",
            extra={"namespace": key[0], "session": key[1], "error": why, "delay": delay},
        )
        self.timers.cancel(key)
        self.schedule(key, delay)

    # --- one reconcile ---------------------------------------------------------------------------

    async def reconcile(self, key: Key) -> None:
        session = self.index.sessions.get(key)
        if session is None:
            return
        now = self._wallclock()
        observed = act.Observed(
            session=session,
            pods=self.index.pods_of(session.uid),
            nodes=self.index.nodes,
            leases=self.index.leases,
            port_uses=self.index.port_uses.values(),
            now=now,
            host_digests=self.index.digests_of_host(session.host),
            random_bytes=self._random_bytes,
        )
        plan = lifecycle.plan(observed, self.settings)
        # Reserve planned ports before the first await, so concurrent plans never pick the same.
        for pod in plan.pods_to_create:
            self.index.reserve_port(session.namespace, pod.name, pod.turn_port)
        try:
            await self._apply(session, plan)
        except Gone:
            self.index.remove_session(key)
            return
        finally:
            for pod in plan.pods_to_create:
                self.index.release_reservation(session.namespace, pod.name)
        self._record(session, plan)
        for ev in plan.events:
            self._post_event(session, ev, now)
        if plan.next_wakeup is not None:
            self.schedule(key, (plan.next_wakeup - self._wallclock()).total_seconds())

    def _record(self, session: Session, plan: act.Plan) -> None:
        region = session.region.value
        self.metrics.planned(region, plan)
        seen = self.index.first_seen.get(session.key)
        if plan.first_ready is not None and seen is not None:
            self.metrics.created_to_ready(plan.first_ready.value, self._clock() - seen)
        if plan.transition is not None:
            old, new = plan.transition
            logger.info(
                "phase",
                extra={
                    "namespace": session.namespace,
                    "session": session.name,
                    "from": old.value if old else None,
                    "to": new.value,
                },
            )

    async def _apply(self, s: Session, plan: act.Plan) -> None:
        """Send each action's finished body, in order. The only data passed between actions is
        the API's answer an action's own finishing function asks for."""
        record: Mapping[str, Any] | None = None  # the usage record written or found
        for action in plan.actions:
            match action:
                case act.IssueCodes(secret=secret, digests=digests):
                    # Claim before the first await: two sessions of one host planned at once
                    # can never draw the same code.
                    self.index.claim_digests(s.host, s.key, digests)
                    stored, _ = await self.kube.create(secret)
                    await self._patch(s, action.metadata_patch(stored))
                case act.EnsureMediaSecret(body=body):
                    await self.kube.create(body)
                case act.CreateMediaPod(body=body):
                    pod, created = await self.kube.create(body)
                    self.index.upsert_pod(MediaPod.parse(pod))
                    if created:
                        self.metrics.media_pod_created(s.region.value)
                case act.DeletePod(name=name):
                    await self.kube.delete_pod(s.namespace, name)
                    self.index.remove_pod(s.namespace, name)
                case act.WriteUsageRecord(reason=reason, body=body):
                    record, created = await self.kube.create(body)
                    if created:
                        self.metrics.usage_record_written(reason.value)
                        logger.info(
                            "usage record written",
                            extra={"namespace": s.namespace, "session": s.name},
                        )
                case act.RevokeCodes(secret_names=names):
                    for name in names:
                        await self.kube.delete_secret(s.namespace, name)
                case act.ScrubSession(patch=patch):
                    await self._patch(s, patch)
                case act.PatchStatus():
                    patch = action.finished(record)
                    self._store(await self.kube.patch_session_status(s.namespace, s.name, patch))
                case act.ReleaseFinalizer(patch=patch):
                    with contextlib.suppress(Gone):
                        await self._patch(s, patch)
                case act.DeleteSession():
                    await self.kube.delete_session(s.namespace, s.name)

    async def _patch(self, s: Session, patch: Mapping[str, Any]) -> None:
        self._store(await self.kube.patch_session(s.namespace, s.name, patch))

    def _store(self, body: Mapping[str, Any]) -> None:
        with contextlib.suppress(ValueError, KeyError, TypeError):
            self.index.upsert_session(Session.parse(body))

    # --- events -----------------------------------------------------------------------------------

    def _post_event(self, s: Session, ev: act.Event, now: datetime) -> None:
        body = manifests.event(
            s,
            name_suffix=self._random_bytes(8).hex(),
            type_=ev.type,
            reason=ev.reason,
            message=ev.message,
            now=now,
            instance=self.identity,
        )
        try:
            self._events.put_nowait(body)
        except asyncio.QueueFull:
            self.metrics.event_dropped()

    async def _event_poster(self) -> None:
        while True:
            body = await self._events.get()
            try:
                await self.kube.post_event(body)
            except (Retry, Permanent, Gone):
                self.metrics.event_dropped()

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
                active = leadership.leads(peers, self.identity, self.priority, self._wallclock())
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
        self.metrics.leading(True)
        for key, session in list(self.index.sessions.items()):
            self.enqueue(key, routine=not lifecycle.urgent(session))

    def _become_standby(self) -> None:
        logger.info("standing by", extra={"identity": self.identity})
        self.active = False
        self._activated.clear()
        self.metrics.leading(False)
        self.timers.clear()
        self.queue.clear()
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

    async def sweep_usage_records(self) -> None:
        """Delete the usage records in ``usage_namespace`` past their retention."""
        listed = [b async for b in self.kube.list_usage_records(self.settings.usage_namespace)]
        retention = self.settings.usage_record_retention
        for ref in usage.past_retention(listed, self._wallclock(), retention):
            await self.kube.delete_usage_record(ref.namespace, ref.name)
            logger.info("usage record past retention deleted", extra={"namespace": ref.namespace})

    async def _usage_sweeper(self) -> None:
        """Sweep once soon after becoming active, then hourly: an operator restarted more often
        than hourly (rollouts, failovers) must still sweep."""
        while True:
            await self._activated.wait()
            if self.active:
                try:
                    await self.sweep_usage_records()
                except (Retry, Permanent, Gone) as err:
                    logger.warning("usage record sweep failed", extra={"error": str(err)})
            await asyncio.sleep(USAGE_SWEEP_SECONDS)

    # --- running ---------------------------------------------------------------------------------

    def start(self) -> None:
        coros = [self._scheduler(), self._leadership(), self._usage_sweeper()]
        coros += [self._worker() for _ in range(self.settings.workers)]
        coros += [self._event_poster() for _ in range(EVENT_POSTERS)]
        self._tasks = [asyncio.create_task(c) for c in coros]
        self.last_loop_tick = self._clock()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def healthy(self) -> bool:
        """No background task crashed and the scheduler loop ticked recently."""
        crashed = any(
            t.done() and not t.cancelled() and t.exception() is not None for t in self._tasks
        )
        return not crashed and self._clock() - self.last_loop_tick < 30
