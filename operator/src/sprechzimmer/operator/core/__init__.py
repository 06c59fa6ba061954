"""Pure lifecycle decisions of the operator: no I/O, no clocks, no randomness except injected.

One module per concern; every rule a reader looks for lives here:

- ``settings`` — the typed, validated configuration.
- ``model`` — typed views of VideoSession, Pod, Node and Lease bodies.
- ``codes`` — access codes and link tokens, and the digest labels signaling verifies against.
- ``expiry`` — start window, expiry, idle and retention deadlines.
- ``presence`` — whether presence is vouched for by a live signaling Lease.
- ``billing`` — billable seconds and billed minutes, checkpointed.
- ``placement`` — region allow-list, node affinity, reading the scheduler's verdict, endpoints.
- ``hostports`` — collision-free TURN host ports per node.
- ``conditions`` — Kubernetes-style conditions.
- ``manifests`` — the objects the operator creates (Secrets, media Pod, Event).
- ``usage`` — the usage record and its retention.
- ``actions`` — the vocabulary of plans: ``Observed`` in, ``Plan`` of finished actions out.
- ``lifecycle`` — the phase machine: one plan per reconcile; live sessions.
- ``media`` — a live group call's media pod: place, start, watch, release.
- ``teardown`` — expiry and deletion, in crash-safe order.
- ``status`` — the status patch (only what differs) and the events.
- ``leadership`` — whether this replica is the active one among Kopf peers.
"""
