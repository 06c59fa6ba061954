"""The Sprechzimmer operator: turns each VideoSession into what the call needs.

Layers (imports point downwards only):

- ``handlers`` — Kopf registrations: feed watch events into the reconciler.
- ``reconciler`` — one work queue and one wake-up scheduler; executes plans.
- ``adapters`` — the only code that talks to the Kubernetes API or serves HTTP (metrics, probes).
- ``core`` — pure decisions (spec + observed state + now → plan), no I/O.
"""
