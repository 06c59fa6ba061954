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
TEST_CREDENTIAL_RESULTS: Final = ("ok", "rate-limited")


PREFIX: Final = "sprechzimmer_signaling"
JOIN_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)

        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(f"{PREFIX}_{name}", doc, registry=self.registry)

        def counter(name: str, doc: str, label: str = "", values: tuple[str, ...] = ()) -> Counter:
            made = Counter(
                f"{PREFIX}_{name}", doc, [label] if label else [], registry=self.registry
            )
            for value in values:  # every series exists from the start, at 0
                made.labels(value)
            return made

        self.sockets = gauge("sockets", "Open WebSockets (browsers and proxied).")
        self.rooms = gauge("rooms", "Calls with at least one seat on this replica.")
        self.replicas = gauge("replicas", "Signaling replicas with a presence Lease.")
        self.sessions = gauge("sessions_indexed", "VideoSessions in the index.")
        self.joins = counter(
            "joins_total", "Admission results (hello → welcome or error).", "result", JOIN_RESULTS
        )
        self.rejected = counter("rejected_attempts_total", "Wrong codes or links.")
        self.rate_limited = counter("rate_limited_total", "Attempts refused with a delay (429).")
        self.relayed = counter(
            "relayed_messages_total", "Messages routed between people.", "type", RELAYED_TYPES
        )
        self.bad_messages = counter(
            "bad_messages_total", "Sockets closed for a malformed or oversized message."
        )
        self.media_requests = counter(
            "media_requests_total", "Control API requests to media pods.", "result", MEDIA_RESULTS
        )
        self.presence_writes = counter(
            "presence_writes_total", "status.presence patches.", "result", WRITE_RESULTS
        )
        self.proxied = counter(
            "proxied_sockets_total", "Sockets forwarded to the session's owner replica."
        )
        self.test_credentials = counter(
            "test_credentials_total",
            "TURN credentials requested by the connection test page (/test).",
            "result",
            TEST_CREDENTIAL_RESULTS,
        )
        self.join_latency = Histogram(
            f"{PREFIX}_join_latency_seconds",
            "From hello to welcome (admission, seat, credentials).",
            buckets=JOIN_BUCKETS,
            registry=self.registry,
        )
