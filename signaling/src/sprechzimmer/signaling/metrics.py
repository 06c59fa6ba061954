"""Prometheus metrics of signaling (``sprechzimmer_signaling_*``), in an injected registry.

Labels are bounded (results, message types, close reasons); every label value exists from the
start at 0. Never a session, peer, code, name or address in a label.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from .core.protocol import ErrorCode

JOIN_RESULTS: Final = ("ok", *(c.value for c in ErrorCode))
RELAYED_TYPES: Final = ("sdp", "ice", "e2e")
MEDIA_RESULTS: Final = ("ok", "error")
WRITE_RESULTS: Final = ("ok", "error")


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        p = "sprechzimmer_signaling"
        self.sockets = Gauge(f"{p}_sockets", "Open WebSockets (browsers and proxied).", registry=r)
        self.rooms = Gauge(
            f"{p}_rooms", "Calls with at least one seat on this replica.", registry=r
        )
        self.replicas = Gauge(
            f"{p}_replicas", "Signaling replicas with a presence Lease (live or not).", registry=r
        )
        self.sessions = Gauge(f"{p}_sessions_indexed", "VideoSessions in the index.", registry=r)
        self.joins = Counter(
            f"{p}_joins_total",
            "Admission results (hello → welcome or error).",
            ["result"],
            registry=r,
        )
        self.rejected = Counter(
            f"{p}_rejected_attempts_total",
            "Wrong codes or links (counted towards the growing delays).",
            registry=r,
        )
        self.rate_limited = Counter(
            f"{p}_rate_limited_total", "Attempts refused with a delay (429).", registry=r
        )
        self.relayed = Counter(
            f"{p}_relayed_messages_total", "Messages routed between people.", ["type"], registry=r
        )
        self.bad_messages = Counter(
            f"{p}_bad_messages_total",
            "Sockets closed for a malformed or oversized message.",
            registry=r,
        )
        self.join_latency = Histogram(
            f"{p}_join_latency_seconds",
            "From hello to welcome (admission, seat, credentials).",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )
        self.media_requests = Counter(
            f"{p}_media_requests_total",
            "Control API requests to media pods.",
            ["result"],
            registry=r,
        )
        self.presence_writes = Counter(
            f"{p}_presence_writes_total", "status.presence patches.", ["result"], registry=r
        )
        self.proxied = Counter(
            f"{p}_proxied_sockets_total",
            "Sockets forwarded to the session's owner replica.",
            registry=r,
        )
        for result in JOIN_RESULTS:
            self.joins.labels(result)
        for kind in RELAYED_TYPES:
            self.relayed.labels(kind)
        for result in MEDIA_RESULTS:
            self.media_requests.labels(result)
        for result in WRITE_RESULTS:
            self.presence_writes.labels(result)
