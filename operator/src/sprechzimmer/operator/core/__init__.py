"""Pure lifecycle decisions of the operator: no I/O, no clocks, no randomness except injected.

One module per concern; every rule a reader looks for lives here:

- ``settings`` — the typed, validated configuration.
- ``model`` — typed views of VideoSession, Pod, Node and Lease bodies.
- ``codes`` — access codes, link tokens and the keyed digests signaling verifies against.
- ``expiry`` — start window, expiry, idle and retention deadlines.
- ``presence`` — whether presence is vouched for by a live signaling Lease.
- ``billing`` — billable seconds and billed minutes, checkpointed.
- ``placement`` — region allow-list, node affinity, reading the scheduler's verdict.
- ``hostports`` — collision-free TURN host ports per node.
- ``conditions`` — Kubernetes-style conditions.
- ``manifests`` — the objects the operator creates (Secret, Pod, UsageRecord, Event).
- ``usage`` — the usage record and its retention.
- ``lifecycle`` — the phase machine: one plan per reconcile.
- ``leadership`` — whether this replica is the active one among Kopf peers.
"""
