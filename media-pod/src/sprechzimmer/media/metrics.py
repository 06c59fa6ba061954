"""Prometheus metrics of the SFU, read from the call's plain counters at scrape time.

The forwarding path increments plain ints (a prometheus_client counter costs a lock per
increment); this collector turns them into ``sprechzimmer_sfu_*`` series. Labels are bounded:
direction, kind, reason, result.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .sfu import Call


class SfuCollector(Collector):
    def __init__(self, call: Call) -> None:
        self._call = call

    def collect(self) -> Iterator[Metric]:
        call = self._call
        c = call.counters
        packets = CounterMetricFamily(
            "sprechzimmer_sfu_forwarded_packets",
            "RTP packets received from publishers (in) and sent to subscribers (out).",
            labels=["direction", "kind"],
        )
        octets = CounterMetricFamily(
            "sprechzimmer_sfu_forwarded_bytes",
            "RTP bytes (after SRTP removal) received from publishers and sent to subscribers.",
            labels=["direction", "kind"],
        )
        for kind in ("audio", "video"):
            packets.add_metric(["in", kind], c.packets_in[kind])
            packets.add_metric(["out", kind], c.packets_out[kind])
            octets.add_metric(["in", kind], c.bytes_in[kind])
            octets.add_metric(["out", kind], c.bytes_out[kind])
        yield packets
        yield octets
        dropped = CounterMetricFamily(
            "sprechzimmer_sfu_dropped_packets",
            "Packets dropped instead of forwarded, by reason.",
            labels=["reason"],
        )
        for reason, value in c.dropped.items():
            dropped.add_metric([reason], value)
        yield dropped
        nacks = CounterMetricFamily(
            "sprechzimmer_sfu_nack_packets",
            "Packets asked for by subscriber NACKs: served from the cache or missing.",
            labels=["result"],
        )
        nacks.add_metric(["served"], c.retransmitted)
        nacks.add_metric(["missing"], c.retransmit_missing)
        yield nacks
        simple = (
            ("nacks_received", "RTCP NACK messages received from subscribers.", c.nacks_received),
            ("upstream_nacks_sent", "RTCP NACK messages sent to publishers.", c.nacks_sent),
            ("plis_received", "PLI/FIR requests received from subscribers.", c.plis_received),
            ("plis_sent", "PLIs sent to publishers.", c.plis_sent),
            ("plis_throttled", "Key-frame requests suppressed by throttling.", c.plis_throttled),
            ("rembs_sent", "REMB messages sent to publishers.", c.rembs_sent),
            ("sender_reports_sent", "Sender reports sent to subscribers.", c.sender_reports_sent),
            (
                "receiver_reports_sent",
                "Receiver reports sent to publishers.",
                c.receiver_reports_sent,
            ),
            ("upstream_lost_packets", "Publisher packets lost and not repaired.", c.upstream_lost),
            (
                "codec_entries",
                "Entries into aiortc's decoder/encoder paths (must stay 0).",
                c.codec_entries,
            ),
            ("joins", "Participants that joined.", c.joins),
        )
        for name, doc, value in simple:
            family = CounterMetricFamily(f"sprechzimmer_sfu_{name}", doc)
            family.add_metric([], value)
            yield family
        leaves = CounterMetricFamily(
            "sprechzimmer_sfu_leaves", "Participants that left, by reason.", labels=["reason"]
        )
        for reason, value in c.leaves.items():
            leaves.add_metric([reason], value)
        yield leaves
        yield GaugeMetricFamily(
            "sprechzimmer_sfu_participants",
            "Participants in the call.",
            value=len(call.participants),
        )
        worst = max(
            (s.fraction_lost for p in call.participants.values() for pair in p.slots for s in pair),
            default=0,
        )
        yield GaugeMetricFamily(
            "sprechzimmer_sfu_downstream_loss_ratio",
            "Highest fraction lost reported by any subscriber for any slot (0..1).",
            value=worst / 256,
        )
        yield GaugeMetricFamily(
            "sprechzimmer_sfu_event_loop_lag_seconds",
            "How late the SFU's 50 ms housekeeping tick last ran.",
            value=call.loop_lag,
        )
        yield GaugeMetricFamily(
            "sprechzimmer_sfu_draining",
            "1 while shutting down after SIGTERM.",
            value=int(call.draining),
        )


class ControlCollector(Collector):
    """Control API requests by result; the dict is owned by the app's middleware."""

    def __init__(self, results: dict[str, int]) -> None:
        self._results = results

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "sprechzimmer_sfu_control_requests",
            "Control API requests by result (ok, rejected, unauthorized).",
            labels=["result"],
        )
        for result, value in self._results.items():
            family.add_metric([result], value)
        yield family
