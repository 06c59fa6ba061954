"""Prometheus metrics of the operator, and the HTTP server for /metrics, /healthz, /readyz.

Names follow ``sprechzimmer_operator_*`` with base units; labels are bounded (phase, region,
reason, action) — never session, host or participant ids.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sprechzimmer.contract import Phase, Region
from sprechzimmer.contract.mediapod import JoinMode
from sprechzimmer.operator.core.actions import EndReason, Plan

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0)
HANDLER_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """All metrics of one operator process, on an injectable registry (``ports.MetricsSink``)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)  # process_resident_memory_bytes, process_cpu_seconds_total
        self.media_pods_created = Counter(
            "sprechzimmer_operator_media_pods_created_total",
            "Media pods created (including re-creations).",
            ["region"],
            registry=r,
        )
        self.create_to_ready = Histogram(
            "sprechzimmer_operator_create_to_ready_seconds",
            "Time from a session's creation to its first Ready phase (sessions starting now).",
            ["mode"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.billed_minutes = Counter(
            "sprechzimmer_operator_billed_minutes_total",
            "Minutes billed (checkpointed in status).",
            ["region"],
            registry=r,
        )
        self.expirations = Counter(
            "sprechzimmer_operator_expirations_total", "Sessions expired.", ["region"], registry=r
        )
        self.usage_records = Counter(
            "sprechzimmer_operator_usage_records_total",
            "Usage records written (created, not found existing).",
            ["reason"],
            registry=r,
        )
        self.placement_failures = Counter(
            "sprechzimmer_operator_placement_failures_total",
            "Group calls that failed closed because no allowed node could take the media pod.",
            ["region"],
            registry=r,
        )
        self.reconcile_errors = Counter(
            "sprechzimmer_operator_reconcile_errors_total",
            "Reconciles that failed and were retried.",
            ["kind"],
            registry=r,
        )
        self.reconcile_duration = Histogram(
            "sprechzimmer_operator_reconcile_duration_seconds",
            "Duration of one reconcile (plan and apply).",
            buckets=HANDLER_BUCKETS,
            registry=r,
        )
        self.event_handler_duration = Histogram(
            "sprechzimmer_operator_handler_duration_seconds",
            "Duration of Kopf event handlers (indexing and enqueueing).",
            ["resource"],
            buckets=HANDLER_BUCKETS,
            registry=r,
        )
        self.queue_depth_gauge = Gauge(
            "sprechzimmer_operator_queue_depth", "Sessions waiting for a reconcile.", registry=r
        )
        self.active = Gauge(
            "sprechzimmer_operator_leader",
            "1 if this replica is the active one among its peers, else 0.",
            registry=r,
        )
        self.events_dropped = Counter(
            "sprechzimmer_operator_events_dropped_total",
            "Kubernetes events not posted because the queue was full or posting failed.",
            registry=r,
        )
        for region in Region:
            for metric in (
                self.media_pods_created,
                self.billed_minutes,
                self.expirations,
                self.placement_failures,
            ):
                metric.labels(region=region.value)
        for mode in JoinMode:
            self.create_to_ready.labels(mode=mode.value)
        for reason in EndReason:
            self.usage_records.labels(reason=reason.value)
        for kind in ("retry", "permanent", "invalid", "unexpected"):
            self.reconcile_errors.labels(kind=kind)

    # --- ports.MetricsSink ------------------------------------------------------------------

    def observe_sessions(
        self, counts: Callable[[], dict[tuple[str, str], int]], pods: Callable[[], dict[str, int]]
    ) -> None:
        """Gauges computed on scrape from the in-memory index."""
        self.registry.register(_IndexCollector(counts, pods))

    def planned(self, region: str, plan: Plan) -> None:
        if plan.billed_minutes_delta > 0:
            self.billed_minutes.labels(region=region).inc(plan.billed_minutes_delta)
        if plan.expired:
            self.expirations.labels(region=region).inc()
        if plan.placement_failed:
            self.placement_failures.labels(region=region).inc()

    def created_to_ready(self, mode: str, seconds: float) -> None:
        self.create_to_ready.labels(mode=mode).observe(seconds)

    def media_pod_created(self, region: str) -> None:
        self.media_pods_created.labels(region=region).inc()

    def usage_record_written(self, reason: str) -> None:
        self.usage_records.labels(reason=reason).inc()

    def reconciled(self, seconds: float) -> None:
        self.reconcile_duration.observe(seconds)

    def reconcile_error(self, kind: str) -> None:
        self.reconcile_errors.labels(kind=kind).inc()

    def queue_depth(self, depth: int) -> None:
        self.queue_depth_gauge.set(depth)

    def leading(self, active: bool) -> None:
        self.active.set(1 if active else 0)

    def event_dropped(self) -> None:
        self.events_dropped.inc()


class _IndexCollector(Collector):
    def __init__(
        self, counts: Callable[[], dict[tuple[str, str], int]], pods: Callable[[], dict[str, int]]
    ) -> None:
        self._counts = counts
        self._pods = pods

    def collect(self):  # type: ignore[no-untyped-def]
        sessions = GaugeMetricFamily(
            "sprechzimmer_operator_sessions",
            "Sessions by phase and region.",
            labels=["phase", "region"],
        )
        counts = self._counts()
        for phase in [*Phase, None]:
            for region in Region:
                name = phase.value if phase else "New"
                sessions.add_metric([name, region.value], counts.get((name, region.value), 0))
        yield sessions
        pods = GaugeMetricFamily(
            "sprechzimmer_operator_media_pods", "Live media pods by region.", labels=["region"]
        )
        by_region = self._pods()
        for region in Region:
            pods.add_metric([region.value], by_region.get(region.value, 0))
        yield pods


def http_app(
    metrics: Metrics, healthy: Callable[[], bool], ready: Callable[[], bool]
) -> web.Application:
    """/metrics, /healthz (event loop and watchers alive), /readyz (index seeded)."""

    async def get_metrics(_: web.Request) -> web.Response:
        body = generate_latest(metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def get_healthz(_: web.Request) -> web.Response:
        return (
            web.Response(text="ok\n") if healthy() else web.Response(status=503, text="unhealthy\n")
        )

    async def get_readyz(_: web.Request) -> web.Response:
        return (
            web.Response(text="ok\n") if ready() else web.Response(status=503, text="not ready\n")
        )

    app = web.Application()
    app.router.add_get("/metrics", get_metrics)
    app.router.add_get("/healthz", get_healthz)
    app.router.add_get("/readyz", get_readyz)
    return app
